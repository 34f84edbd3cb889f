"""The Layer contract every layer follows.

::

    y = layer.forward(x, training=False, rng=None)   # caches what backward needs
    grad_x = layer.backward(grad_y, param_grads=True, input_grad=True)

``backward`` always refers to the latest ``forward``. With ``param_grads=True`` it fills
``layer.grads`` (same keys and shapes as ``layer.params``); with ``False`` it leaves them alone,
which is what attacks and detectors use: they need ``grad_x`` only and must not disturb
training. ``input_grad=False`` tells a layer that nobody needs ``grad_x`` (the first layer of
a network in training): a layer with parameters may then skip that work and return None.
Neither call modifies its argument in place.
"""

import numpy as np

from nnscratch.backend import to_device


class Layer:
    """Base class: no parameters, shape checks, device and dtype moves."""

    def __init__(self, name=None):
        self.name = name
        self.params = {}
        self.grads = {}

    def forward(self, x, training=False, rng=None):
        raise NotImplementedError

    def backward(self, grad_y, param_grads=True, input_grad=True):
        raise NotImplementedError

    def config(self):
        """The constructor arguments that rebuild this layer (JSON-serialisable)."""
        return {}

    @staticmethod
    def param_shapes(config):
        """{name: shape} of the parameters of a layer built from ``config``, allocating none."""
        return {}

    def to(self, device):
        """Move the parameters to "cpu" or "gpu" (in place); returns the layer."""
        self.params = {k: to_device(v, device) for k, v in self.params.items()}
        self.grads = {}
        return self

    def astype(self, dtype):
        """Cast the parameters to ``dtype`` (float64 for gradient checks); returns the layer."""
        self.params = {k: v.astype(dtype) for k, v in self.params.items()}
        self.grads = {}
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def describe(self):
        """How error messages name this layer: its type, and its name once it has one."""
        kind = type(self).__name__
        return f"{kind} layer '{self.name}'" if self.name else f"{kind} layer"

    def reject_input(self, x, expected):
        """Raise the error for an input of the wrong shape; ``expected`` says what fits."""
        raise ValueError(f"{self.describe()}: expected input of shape {expected}, "
                         f"got {tuple(x.shape)}")


def glorot_uniform(rng, shape, fan_in, fan_out):
    """W ~ U(-a, a), a = sqrt(6 / (fan_in + fan_out)), in float32 (Glorot & Bengio, 2010).

    The default of Keras (``glorot_uniform``) and, up to the fan it averages, of Caffe's
    "xavier" filler: the frameworks the five studies trained their networks with. Biases start
    at zero, as there. rng: a numpy Generator (draws advance it).
    """
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)

