"""2-D convolution (cross-correlation, as in every deep-learning framework)."""

import numpy as np

from nnscratch.backend import get_array_module
from nnscratch.layers.base import Layer, check_integer, glorot_uniform
from nnscratch.ops import batch_slices, col2im, conv_output_size, im2col, pad_hw, unpad_hw

GROUP_BYTES = 4 * 2 ** 20


def _pair(value, what, minimum=1):
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"Conv2D: {what} must be an int or a pair of ints, got {value!r}")
    return tuple(check_integer(v, f"Conv2D: {what}", minimum) for v in pair)


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
    if isinstance(padding, str):
        raise ValueError(f"Conv2D: padding must be 'valid', 'same' or integers, got {padding!r}")
    ph, pw = _pair(padding, "padding", minimum=0)
    return (ph, ph), (pw, pw)


class Conv2D(Layer):
    """y[n, o] = b[o] + sum_{c,i,j} W[o, c, i, j] * x_pad[n, c, s*p + i, s*q + j].

    x: (N, C, H, W) -> y: (N, O, H', W'), H' = (H + pad_top + pad_bottom - kh) // s + 1.
    params: W (O, C, kh, kw) (the layout of ``torch.nn.Conv2d.weight``), b (O,).

    Computed as one matrix product on im2col columns in channels-last layout::

        cols (N*H'*W', kh*kw*C) @ W_mat (kh*kw*C, O) -> (N*H'*W', O)

    The result is handed out as an NCHW *view* of that channels-last array, so a following
    layer that transposes back to channels-last (the next convolution) gets contiguous memory
    for free. Backward runs the same products the other way::

        dL/dW_mat = cols^T @ grad_y          dL/dcols = grad_y @ W_mat^T -> col2im -> dL/dx

    The work goes a few images at a time (``image_groups``), so that the columns of a group
    are still in cache when they are multiplied; backward rebuilds them instead of caching
    them. With ``input_grad=False`` (the first layer of a network in training, whose input
    needs no gradient) backward skips dL/dx and returns None.

    The same convolution as seven plain loops, one output element at a time, is
    ``tests/reference.py``'s ``conv2d``: read it first, and the tests check this one against it.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, rng=None,
                 name=None):
        super().__init__(name)
        self.in_channels = check_integer(in_channels, "Conv2D: in_channels")
        self.out_channels = check_integer(out_channels, "Conv2D: out_channels")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = check_integer(stride, "Conv2D: stride")
        self.padding = padding
        self.pads = spatial_padding(padding, *self.kernel_size, stride)
        shapes = self.param_shapes(self.config())
        kh, kw = self.kernel_size
        rng = np.random.default_rng(rng)   # a seed, a Generator, or None (fresh entropy)
        self.params = {"W": glorot_uniform(rng, shapes["W"], in_channels * kh * kw,
                                           out_channels * kh * kw),
                       "b": np.zeros(shapes["b"], dtype=np.float32)}

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": self.stride,
                "padding": self.padding if isinstance(self.padding, (int, str))
                else list(self.padding)}

    @staticmethod
    def param_shapes(config):
        kh, kw = _pair(config["kernel_size"], "kernel_size")
        return {"W": (config["out_channels"], config["in_channels"], kh, kw),
                "b": (config["out_channels"],)}

    def check_input(self, x):
        kh, kw = self.kernel_size
        (top, bottom), (left, right) = self.pads
        if (x.ndim != 4 or x.shape[1] != self.in_channels
                or x.shape[2] + top + bottom < kh or x.shape[3] + left + right < kw):
            self.reject_input(x, f"(N, {self.in_channels}, H, W) with H + padding >= {kh} and "
                                 f"W + padding >= {kw}")

    def image_groups(self, xp, n, ho, wo):
        """Slices of the batch, a few images each, whose im2col columns take about
        ``GROUP_BYTES``: small enough to stay in the processor's cache between being written
        and being multiplied (one im2col of a whole batch of 128 28x28 images with 32
        channels is 110 MiB, and copying it through main memory costs more than the product).
        On a GPU, one group: there large products are what is fast."""
        if xp is not np:
            return batch_slices(n, max(n, 1))
        kh, kw = self.kernel_size
        row_bytes = ho * wo * kh * kw * self.in_channels * self.params["W"].itemsize
        return batch_slices(n, max(1, GROUP_BYTES // max(row_bytes, 1)))

    def weight_matrix(self):
        """W (O, C, kh, kw) as the (kh*kw*C, O) matrix that multiplies im2col's columns."""
        kh, kw = self.kernel_size
        return self.params["W"].transpose(2, 3, 1, 0).reshape(
            kh * kw * self.in_channels, self.out_channels)

    def forward(self, x, training=False, rng=None):
        self.check_input(x)
        xp = get_array_module(x)
        kh, kw = self.kernel_size
        o, c = self.out_channels, self.in_channels
        x_pad = pad_hw(x.transpose(0, 2, 3, 1), self.pads)              # (N, Hp, Wp, C)
        n, hp, wp, _ = x_pad.shape
        ho, wo = conv_output_size(hp, kh, self.stride), conv_output_size(wp, kw, self.stride)
        weights = self.weight_matrix()                                  # (kh*kw*C, O)
        y = xp.empty((n, ho, wo, o), dtype=x.dtype)                      # channels-last
        for group in self.image_groups(xp, n, ho, wo):
            cols = im2col(x_pad[group], kh, kw, self.stride)            # (m, H', W', kh, kw, C)
            m = cols.shape[0]
            # explicit sizes, never -1: reshape(0, -1) is ambiguous for an empty batch
            xp.matmul(cols.reshape(m * ho * wo, kh * kw * c), weights,
                      out=y[group].reshape(m * ho * wo, o))
        y += self.params["b"]
        self._x_pad = x_pad
        return y.transpose(0, 3, 1, 2)                                  # (N, O, H', W') view

    def backward(self, grad_y, param_grads=True, input_grad=True):
        xp = get_array_module(grad_y)
        x_pad = self._x_pad
        kh, kw = self.kernel_size
        o, c = self.out_channels, self.in_channels
        n, _, ho, wo = grad_y.shape
        weights = self.weight_matrix()                                  # (kh*kw*C, O)
        grad_y = grad_y.transpose(0, 2, 3, 1)                           # (N, H', W', O)
        grad_w = xp.zeros((kh * kw * c, o), dtype=grad_y.dtype)
        grad_b = xp.zeros(o, dtype=grad_y.dtype)
        grad_x_pad = xp.empty(x_pad.shape, dtype=grad_y.dtype) if input_grad else None
        for group in self.image_groups(xp, n, ho, wo):
            g = xp.ascontiguousarray(grad_y[group])
            m = g.shape[0]
            g = g.reshape(m * ho * wo, o)                               # (m*H'*W', O)
            if param_grads:
                # the columns are rebuilt rather than kept from forward: cheaper than a
                # round trip through main memory
                cols = im2col(x_pad[group], kh, kw, self.stride).reshape(m * ho * wo, kh * kw * c)
                grad_w += cols.T @ g                                    # dL/dW_mat = cols^T g
                grad_b += g.sum(axis=0)
            if input_grad:
                # dL/dcols = g W_mat^T, then every column entry goes back where im2col took it
                grad_cols = (g @ weights.T).reshape(m, ho, wo, kh, kw, c)
                grad_x_pad[group] = col2im(grad_cols, (m,) + x_pad.shape[1:], self.stride)
        if param_grads:
            self.grads["W"] = xp.ascontiguousarray(
                grad_w.reshape(kh, kw, c, o).transpose(3, 2, 0, 1))    # (O, C, kh, kw)
            self.grads["b"] = grad_b
        if not input_grad:
            return None
        return unpad_hw(grad_x_pad, self.pads).transpose(0, 3, 1, 2)   # (N, C, H, W) view
