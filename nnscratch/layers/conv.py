"""2-D convolution (cross-correlation, as in every deep-learning framework)."""

import numpy as np

from nnscratch.backend import get_array_module
from nnscratch.checks import check_integer
from nnscratch.layers.base import Layer, glorot_uniform
from nnscratch.ops import (batch_slices, col2im, column_sums, conv_output_size, im2col, pad_hw,
                           unpad_hw)

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

or, for stride 1 where it unfolds fewer numbers, dL/dx as the convolution of grad_y with the
flipped kernel (``input_gradient_by_correlation``).

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

    def image_groups(self, xp, n, ho, wo, channels=None):
        """Slices of the batch, a few images each, whose im2col columns take about
        ``GROUP_BYTES``: small enough to stay in the processor's cache between being written
        and being multiplied (one im2col of a whole batch of 128 28x28 images with 32
        channels is 110 MiB, and copying it through main memory costs more than the product).
        On a GPU, one group: there large products are what is fast."""
        if xp is not np:
            return batch_slices(n, max(n, 1))
        kh, kw = self.kernel_size
        channels = self.in_channels if channels is None else channels   # of what is unfolded
        row_bytes = ho * wo * kh * kw * channels * self.params["W"].itemsize
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
        grad_y = grad_y.transpose(0, 2, 3, 1)                           # (N, H', W', O)
        if param_grads:
            self.weight_gradients(xp, grad_y)
        if not input_grad:
            return None
        if self.correlation_is_cheaper(grad_y.shape):
            grad_x = self.input_gradient_by_correlation(xp, grad_y)
        else:
            grad_x = unpad_hw(self.input_gradient_by_col2im(xp, grad_y), self.pads)
        return grad_x.transpose(0, 3, 1, 2)                            # (N, C, H, W) view

    def weight_gradients(self, xp, grad_y):
        """dL/dW_mat = cols^T g and dL/db = sum of g over positions, into ``self.grads``.

        grad_y: (N, H', W', O). The columns are rebuilt rather than kept from forward: cheaper
        than a round trip through main memory."""
        kh, kw = self.kernel_size
        o, c = self.out_channels, self.in_channels
        n, ho, wo, _ = grad_y.shape
        grad_w = xp.zeros((kh * kw * c, o), dtype=grad_y.dtype)
        grad_b = xp.zeros(o, dtype=grad_y.dtype)
        for group in self.image_groups(xp, n, ho, wo):
            g = xp.ascontiguousarray(grad_y[group])
            m = g.shape[0]
            g = g.reshape(m * ho * wo, o)                               # (m*H'*W', O)
            cols = im2col(self._x_pad[group], kh, kw, self.stride)
            grad_w += cols.reshape(m * ho * wo, kh * kw * c).T @ g
            grad_b += column_sums(g)
        self.grads["W"] = xp.ascontiguousarray(
            grad_w.reshape(kh, kw, c, o).transpose(3, 2, 0, 1))        # (O, C, kh, kw)
        self.grads["b"] = grad_b

    def input_gradient_by_col2im(self, xp, grad_y):
        """dL/dx_pad: dL/dcols = g W_mat^T, then col2im adds every column entry back where
        im2col took it. grad_y: (N, H', W', O) -> (N, Hp, Wp, C), padding included."""
        kh, kw = self.kernel_size
        n, ho, wo, o = grad_y.shape
        grad_x_pad = xp.empty(self._x_pad.shape, dtype=grad_y.dtype)
        weights = self.weight_matrix()                                  # (kh*kw*C, O)
        for group in self.image_groups(xp, n, ho, wo):
            g = xp.ascontiguousarray(grad_y[group])
            m = g.shape[0]
            grad_cols = (g.reshape(m * ho * wo, o) @ weights.T).reshape(
                m, ho, wo, kh, kw, self.in_channels)
            grad_x_pad[group] = col2im(grad_cols, (m,) + self._x_pad.shape[1:], self.stride)
        return grad_x_pad

    def correlation_is_cheaper(self, grad_y_shape):
        """Whether ``input_gradient_by_correlation`` unfolds fewer numbers than col2im's
        dL/dcols: kh*kw*O*H*W against kh*kw*C*H'*W' (so for a "same"-padded convolution with
        as many outputs as inputs, it is the one used). It needs stride 1 and a padding of at
        most the kernel less one. Measured on 128 images, 28x28 32->32 and 14x14 64->64 3x3
        "same": 25 -> 18 ms and 15 -> 12 ms; on LeNet's 12x12 20->50 5x5 "valid" col2im is
        three times faster (its dL/dcols is the smaller array), and so is chosen."""
        kh, kw = self.kernel_size
        (top, bottom), (left, right) = self.pads
        n, ho, wo, o = grad_y_shape
        h, w = ho + kh - 1 - top - bottom, wo + kw - 1 - left - right  # the unpadded input
        return (self.stride == 1 and max(top, bottom) < kh and max(left, right) < kw
                and o * h * w <= self.in_channels * ho * wo)

    def input_gradient_by_correlation(self, xp, grad_y):
        """dL/dx for stride 1, as a convolution of grad_y with the flipped kernel.

        dL/dx_pad[a, b, c] = sum_{i,j,o} g[a - i, b - j, o] W[o, c, i, j]: a "full"
        correlation of g, zero-padded by kh - 1 and kw - 1, with the kernel flipped in both
        axes and its channel axes swapped. Padding g by kh - 1 - top above (and so on) gives
        exactly the interior rows, the unpadded x. The unfolding (im2col of g) is written
        once, where col2im reads and adds back kh*kw slabs. grad_y: (N, H', W', O) ->
        (N, H, W, C)."""
        kh, kw = self.kernel_size
        (top, bottom), (left, right) = self.pads
        o, c = self.out_channels, self.in_channels
        g_pad = pad_hw(grad_y, ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right)))
        n, gh, gw, _ = g_pad.shape
        h, w = gh - kh + 1, gw - kw + 1
        flipped = self.params["W"][:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(kh * kw * o, c)
        grad_x = xp.empty((n, h, w, c), dtype=grad_y.dtype)
        for group in self.image_groups(xp, n, h, w, channels=o):
            cols = im2col(g_pad[group], kh, kw, 1)                      # (m, H, W, kh, kw, O)
            m = cols.shape[0]
            xp.matmul(cols.reshape(m * h * w, kh * kw * o), flipped,
                      out=grad_x[group].reshape(m * h * w, c))
        return grad_x
