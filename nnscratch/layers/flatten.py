"""Flatten and Reshape: the same numbers in another shape, and the gradient reshaped back."""

import math

from nnscratch.backend import get_array_module
from nnscratch.checks import check_integer
from nnscratch.layers.base import Layer


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W) in row-major (C, H, W) order, as ``torch.flatten(x, 1)``.

    Whatever the memory layout of x, the vector order is that of the logical NCHW array, so
    Dense weights map one-to-one onto other frameworks.
    """

    def forward(self, x, training=False, rng=None):
        if x.ndim < 2:
            self.reject_input(x, "(N, ...)")
        self._x = x
        # an explicit width (not -1): reshape(0, -1) is ambiguous for an empty batch
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def backward(self, grad_y, param_grads=True, input_grad=True):
        grad_x = grad_y.reshape(self._x.shape)
        if self._x.flags.c_contiguous:
            return grad_x
        # x came channels-last from a convolution: hand the gradient back in that layout too,
        # so the layers below keep working on contiguous channels-last memory
        xp = get_array_module(grad_y)
        laid_out = xp.empty_like(self._x, dtype=grad_y.dtype)
        laid_out[...] = grad_x
        return laid_out


class Reshape(Layer):
    """(N, ...) -> (N, *shape) in row-major order, as ``x.view(N, *shape)``: a generator's
    dense output (N, 4096) as feature maps (N, 256, 4, 4)."""

    def __init__(self, shape, name=None):
        super().__init__(name)
        self.shape = tuple(check_integer(size, "Reshape: shape") for size in shape)

    def config(self):
        return {"shape": list(self.shape)}

    def forward(self, x, training=False, rng=None):
        if x.ndim < 2 or math.prod(x.shape[1:]) != math.prod(self.shape):
            self.reject_input(x, f"(N, ...) with {math.prod(self.shape)} values an image")
        self._shape = x.shape
        return x.reshape((x.shape[0],) + self.shape)

    def backward(self, grad_y, param_grads=True, input_grad=True):
        return grad_y.reshape(self._shape)
