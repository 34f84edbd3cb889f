"""A fixed Gaussian blur, applied to every channel alone (depthwise, not learnable)."""

import math

import numpy as np

from nnscratch.backend import get_array_module
from nnscratch.checks import check_integer, check_real
from nnscratch.layers.base import Layer


def gaussian_kernel(sigma, radius):
    """Normalised 1-D Gaussian taps g[t] ~ exp(-t^2 / (2 sigma^2)), t = -radius .. radius."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    return g / g.sum()


class GaussianBlur(Layer):
    """y = x blurred by a separable Gaussian of standard deviation ``sigma``, per channel.

    x: (N, C, H, W) -> (N, C, H, W). Zero padding keeps the size; the 2-D kernel is the outer
    product of the 1-D taps ``g`` (radius ``ceil(3 sigma)`` unless given), applied along H, then
    along W.

    Günther et al. put such a layer (sigma = 1.25) before each max-pooling of LeNet to test
    whether adversarial images come from aliasing. The paper does not give the kernel size or
    the border handling; we take a 3-sigma radius and zero padding, which makes the operator
    a symmetric matrix: the backward pass is the same blur applied to the upstream gradient.
    """

    def __init__(self, sigma=1.25, radius=None, name=None):
        super().__init__(name)
        self.sigma = check_real(sigma, "GaussianBlur: sigma", positive=True)
        self.radius = check_integer(math.ceil(3 * sigma) if radius is None else radius,
                                    "GaussianBlur: radius", minimum=0)
        self.taps = gaussian_kernel(sigma, self.radius)

    def config(self):
        return {"sigma": self.sigma, "radius": self.radius}

    def blur(self, x):
        xp = get_array_module(x)
        taps = [x.dtype.type(t) for t in self.taps]
        r = self.radius
        for axis in (2, 3):
            size = x.shape[axis]
            padded_shape = list(x.shape)
            padded_shape[axis] += 2 * r
            padded = xp.zeros(padded_shape, dtype=x.dtype)
            padded[_along(axis, slice(r, r + size))] = x
            y = xp.zeros(x.shape, dtype=x.dtype)
            for t, weight in enumerate(taps):       # y[h] = sum_t g[t] * x_pad[h + t]
                y += weight * padded[_along(axis, slice(t, t + size))]
            x = y
        return x

    def forward(self, x, training=False, rng=None):
        if x.ndim != 4:
            self.reject_input(x, "(N, C, H, W)")
        return self.blur(x)

    def backward(self, grad_y, param_grads=True, input_grad=True):
        return self.blur(grad_y)   # the blur matrix is symmetric (see the class docstring)


def _along(axis, index):
    """An index tuple selecting ``index`` along ``axis`` of a 4-D array."""
    full = [slice(None)] * 4
    full[axis] = index
    return tuple(full)
