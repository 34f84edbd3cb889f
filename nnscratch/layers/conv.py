"""2-D convolution (cross-correlation, as in every deep-learning framework)."""

import numpy as np

from nnscratch.backend import get_array_module
from nnscratch.layers.base import Layer, uniform_init
from nnscratch.ops import im2col, pad_hw, unpad_hw, window_slice


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def spatial_padding(padding, kh, kw, stride):
    """Normalise a padding argument to ((top, bottom), (left, right)).

    ``int`` or ``(ph, pw)``: symmetric; "valid": none; "same" (stride 1 only): the output keeps
    H and W, with the odd pixel of an even kernel at the bottom/right, as PyTorch does.
    """
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        if stride != 1:
            raise ValueError("padding='same' needs stride 1")
        return ((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2)
    ph, pw = _pair(padding)
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return (ph, ph), (pw, pw)


class Conv2D(Layer):
    """y[n, o] = b[o] + sum_{c,i,j} W[o, c, i, j] * x_pad[n, c, s*p + i, s*q + j].

    x: (N, C, H, W) -> y: (N, O, H', W'), H' = (H + pad_top + pad_bottom - kh) // s + 1.
    params: W (O, C, kh, kw) (the layout of ``torch.nn.Conv2d.weight``), b (O,).

    Computed as one matrix product on im2col columns in channels-last layout::

        cols (N*H'*W', kh*kw*C) @ W_mat (kh*kw*C, O) -> (N*H'*W', O)

    The result is handed out as an NCHW *view* of that channels-last array, so a following
    layer that transposes back to channels-last (the next convolution) gets contiguous memory
    for free. The input gradient is kh*kw matrix products, one per kernel offset (i, j), each
    added onto the strided slice of the padded input that offset touched::

        grad_x_pad[:, i::s, j::s, :] += grad_y (N*H'*W', O) @ W[:, :, i, j] (O, C)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, rng=None,
                 name=None):
        super().__init__(name)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = stride
        self.padding = padding
        self.pads = spatial_padding(padding, *self.kernel_size, stride)
        kh, kw = self.kernel_size
        fan_in = in_channels * kh * kw
        rng = np.random.default_rng(rng)   # a seed, a Generator, or None (fresh entropy)
        self.params = {"W": uniform_init(rng, (out_channels, in_channels, kh, kw), fan_in),
                       "b": uniform_init(rng, (out_channels,), fan_in)}

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": self.stride,
                "padding": self.padding if isinstance(self.padding, (int, str))
                else list(self.padding)}

    def check_input(self, x):
        kh, kw = self.kernel_size
        (top, bottom), (left, right) = self.pads
        if (x.ndim != 4 or x.shape[1] != self.in_channels
                or x.shape[2] + top + bottom < kh or x.shape[3] + left + right < kw):
            self.reject_input(x, f"(N, {self.in_channels}, H, W) with H + padding >= {kh} and "
                                 f"W + padding >= {kw}")

    def forward(self, x, training=False, rng=None):
        self.check_input(x)
        kh, kw = self.kernel_size
        x_pad = pad_hw(x.transpose(0, 2, 3, 1), self.pads)              # (N, Hp, Wp, C)
        cols = im2col(x_pad, kh, kw, self.stride)                       # (N, H', W', kh, kw, C)
        n, ho, wo = cols.shape[:3]
        o, c = self.out_channels, self.in_channels
        # explicit sizes, never -1: reshape(0, -1) is ambiguous for an empty batch
        cols = cols.reshape(n * ho * wo, kh * kw * c)                   # (N*H'*W', kh*kw*C)
        weights = self.params["W"].transpose(2, 3, 1, 0).reshape(kh * kw * c, o)
        y = cols @ weights                                              # (N*H'*W', O)
        y += self.params["b"]
        self._cache = (cols, x_pad.shape)
        return y.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)            # (N, O, H', W') view

    def backward(self, grad_y, param_grads=True):
        xp = get_array_module(grad_y)
        cols, padded_shape = self._cache
        n, o, ho, wo = grad_y.shape
        g = grad_y.transpose(0, 2, 3, 1).reshape(n * ho * wo, o)       # (N*H'*W', O)
        W = self.params["W"]
        kh, kw = self.kernel_size
        c = self.in_channels
        if param_grads:
            # dL/dW_mat = cols^T @ g, then back to the (O, C, kh, kw) layout
            grad_w = (cols.T @ g).reshape(kh, kw, c, o).transpose(3, 2, 0, 1)
            self.grads["W"] = xp.ascontiguousarray(grad_w)
            self.grads["b"] = g.sum(axis=0)
        w_offsets = W.transpose(2, 3, 0, 1).copy()                     # (kh, kw, O, C)
        grad_x_pad = xp.zeros(padded_shape, dtype=grad_y.dtype)          # (N, Hp, Wp, C)
        for i in range(kh):
            for j in range(kw):
                rows, columns = window_slice(i, ho, self.stride), window_slice(j, wo, self.stride)
                grad_x_pad[:, rows, columns, :] += (g @ w_offsets[i, j]).reshape(n, ho, wo, c)
        return unpad_hw(grad_x_pad, self.pads).transpose(0, 3, 1, 2)  # (N, C, H, W) view
