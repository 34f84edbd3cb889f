"""The report's DCGAN-style discriminator and generator (Thanthulage; the layer sizes follow
from the parameter counts the report prints for its CIFAR-10 GAN).

Discriminator: conv3x3x64 stride 1, then conv3x3 x128, x128, x256 each with stride 2 and
padding 1 (32 -> 16 -> 8 -> 4 on CIFAR-10; 28 -> 14 -> 7 -> 4 on MNIST, so both flatten to
4,096 values), a LeakyReLU after each, dropout, one logit (``Dense(4096, 1)``): the probability
that an image is real is its sigmoid, taken in the loss.

Generator: latent z (100) -> dense 256 * s * s, LeakyReLU, reshape (256, s, s), then transposed
convolutions 4x4 stride 2 padding 1 with ``width`` channels (238 in the report), each doubling
the side and followed by a LeakyReLU, and a 3x3 "same" convolution to the image's channels with
tanh: images in [-1, 1]. s is the image side halved while it is even and above 4: 32 -> 4
(three transposed convolutions, the report's), 28 -> 7 (two: how the sizes adapt to MNIST).

Not in the report, from the Keras CIFAR-10 GAN example it matches: LeakyReLU slope 0.2, dropout
0.4, a sigmoid output (here in the loss), tanh images in [-1, 1].
"""

import numpy as np

from nnscratch.checks import check_integer
from nnscratch.layers import (Conv2D, Conv2DTranspose, Dense, Dropout, Flatten, LeakyReLU,
                              Reshape, Tanh)
from nnscratch.model import Sequential
from nnscratch.zoo import _flat_size

SLOPE = 0.2
DROPOUT = 0.4


def seed_side(side):
    """(s, doublings): the side halved while it is even and above 4, and how many halvings."""
    doublings = 0
    while side % 2 == 0 and side > 4:
        side, doublings = side // 2, doublings + 1
    return side, doublings


def discriminator(image_shape=(1, 28, 28), seed=0, dropout=DROPOUT):
    """(N, C, H, W) images in [-1, 1] -> (N, 1) logits of "real"."""
    rng = np.random.default_rng(seed)
    channels = image_shape[0]
    trunk = [Conv2D(channels, 64, 3, padding=1, rng=rng), LeakyReLU(SLOPE)]
    for c_in, c_out in ((64, 128), (128, 128), (128, 256)):
        trunk += [Conv2D(c_in, c_out, 3, stride=2, padding=1, rng=rng), LeakyReLU(SLOPE)]
    return Sequential(trunk + [Flatten(), Dropout(dropout),
                               Dense(_flat_size(trunk, tuple(image_shape)), 1, rng=rng)],
                      input_shape=tuple(image_shape))


def generator(image_shape=(1, 28, 28), latent=100, width=238, seed=0):
    """(N, latent) -> (N, C, H, W) images in [-1, 1]."""
    check_integer(latent, "generator: latent")
    check_integer(width, "generator: width")
    rng = np.random.default_rng(seed)
    channels, height, _ = image_shape
    side, doublings = seed_side(height)
    if doublings == 0 or side * 2 ** doublings != image_shape[2]:
        raise ValueError(f"generator: a square image whose side halves at least once, got "
                         f"{tuple(image_shape)}")
    layers = [Dense(latent, 256 * side * side, rng=rng), LeakyReLU(SLOPE),
              Reshape((256, side, side))]
    c_in = 256
    for _ in range(doublings):
        layers += [Conv2DTranspose(c_in, width, 4, stride=2, padding=1, rng=rng),
                   LeakyReLU(SLOPE)]
        c_in = width
    layers += [Conv2D(c_in, channels, 3, padding="same", rng=rng), Tanh()]
    return Sequential(layers, input_shape=(latent,))
