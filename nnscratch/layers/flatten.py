"""Flatten (C, H, W) feature maps into vectors."""

import math

from nnscratch.layers.base import Layer


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W) in row-major (C, H, W) order, as ``torch.flatten(x, 1)``.

    Whatever the memory layout of x, the vector order is that of the logical NCHW array, so
    Dense weights map one-to-one onto other frameworks.
    """

    def forward(self, x, training=False, rng=None):
        if x.ndim < 2:
            self.reject_input(x, "(N, ...)")
        self._shape = x.shape
        # an explicit width (not -1): reshape(0, -1) is ambiguous for an empty batch
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def backward(self, grad_y, param_grads=True):
        return grad_y.reshape(self._shape)
