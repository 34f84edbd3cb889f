"""nnscratch: convolutional networks from scratch in NumPy (and CuPy), with hand-written
gradients, and the adversarial attacks and defences built on them."""

__version__ = "0.1.0"
