"""A generative adversarial network on nnscratch's own layers: the report's DCGAN-style
discriminator and generator (``networks.py``), trained against each other (``training.py``),
and a check that the generator learned (``judge.py``).

    from nnscratch.gan import GAN, discriminator, generator, train
    gan = GAN(generator((1, 28, 28)), discriminator((1, 28, 28)))
    history = train(gan, x_train, epochs=5)               # x_train in [0, 1]
    images = gan.sample(64, numpy.random.default_rng(0))  # (64, 1, 28, 28) in [0, 1]

``nnscratch gan`` runs it with checkpoints, samples and curves.
"""

from nnscratch.gan.networks import discriminator, generator
from nnscratch.gan.training import GAN, sigmoid_cross_entropy, train

__all__ = ["GAN", "discriminator", "generator", "sigmoid_cross_entropy", "train"]
