"""2-D transposed convolution: the convolution's input-gradient path run forward."""

import numpy as np

from nnscratch.backend import get_array_module
from nnscratch.checks import check_integer
from nnscratch.layers.base import Layer, glorot_uniform
from nnscratch.layers.conv import GROUP_BYTES, _pair
from nnscratch.ops import batch_slices, col2im, column_sums, im2col, pad_hw, unpad_hw


class Conv2DTranspose(Layer):
    """y_full[n, o, s*p + i, s*q + j] += x[n, c, p, q] * W[c, o, i, j];  y = crop(y_full) + b[o].

    x: (N, C, H, W) -> y: (N, O, H', W'), H' = (H - 1) * s + kh - 2 * padding (PyTorch's
    ``ConvTranspose2d`` with output_padding 0; kernel 4, stride 2, padding 1 doubles H and W,
    as Keras' ``Conv2DTranspose(4, strides=2, padding="same")`` does). params: W (C, O, kh, kw)
    (the layout of ``torch.nn.ConvTranspose2d.weight``), b (O,).

    The duality with ``Conv2D``: a convolution with stride s from O channels to C, whose weight
    is this W read as (out=C, in=O, kh, kw), maps (N, O, H', W') to (N, C, H, W); its input
    gradient maps (N, C, H, W) back to (N, O, H', W'), and that linear map is this layer's
    forward. So forward is the convolution's backward (a product, then col2im adding every
    window back onto the output) and backward is the convolution's forward (im2col, then
    products)::

        forward:   cols = x (N*H*W, C) @ W_mat (C, kh*kw*O)  -> col2im -> crop    -> y
        backward:  g -> pad -> im2col -> g_cols (N*H*W, kh*kw*O)
                   dL/dx = g_cols @ W_mat^T      dL/dW_mat = x^T @ g_cols

    Channels-last inside, as ``Conv2D``, a few images at a time so that the columns stay small
    (the report's GAN unfolds 238 channels 16 times over).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, rng=None,
                 name=None):
        super().__init__(name)
        self.in_channels = check_integer(in_channels, "Conv2DTranspose: in_channels")
        self.out_channels = check_integer(out_channels, "Conv2DTranspose: out_channels")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = check_integer(stride, "Conv2DTranspose: stride")
        self.padding = check_integer(padding, "Conv2DTranspose: padding", minimum=0)
        kh, kw = self.kernel_size
        if 2 * self.padding >= min(kh, kw):          # then a 1x1 input would have no output
            raise ValueError(f"Conv2DTranspose: padding must be less than half the kernel "
                             f"({kh}x{kw}), got {self.padding}")
        rng = np.random.default_rng(rng)   # a seed, a Generator, or None (fresh entropy)
        shapes = self.param_shapes(self.config())
        # Keras' fans for a transposed kernel: (in, out) of the convolution it transposes
        self.params = {"W": glorot_uniform(rng, shapes["W"], out_channels * kh * kw,
                                           in_channels * kh * kw),
                       "b": np.zeros(shapes["b"], dtype=np.float32)}

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": self.stride,
                "padding": self.padding}

    @staticmethod
    def param_shapes(config):
        kh, kw = _pair(config["kernel_size"], "kernel_size")
        return {"W": (config["in_channels"], config["out_channels"], kh, kw),
                "b": (config["out_channels"],)}

    def weight_matrix(self):
        """W (C, O, kh, kw) as the (C, kh*kw*O) matrix from an input pixel to its window."""
        kh, kw = self.kernel_size
        return self.params["W"].transpose(0, 2, 3, 1).reshape(
            self.in_channels, kh * kw * self.out_channels)

    def image_groups(self, n, h, w, itemsize):
        kh, kw = self.kernel_size
        row_bytes = h * w * kh * kw * self.out_channels * itemsize
        return batch_slices(n, max(1, GROUP_BYTES // max(row_bytes, 1)))

    def forward(self, x, training=False, rng=None):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            self.reject_input(x, f"(N, {self.in_channels}, H, W)")
        xp = get_array_module(x)
        kh, kw = self.kernel_size
        s, p, o = self.stride, self.padding, self.out_channels
        x_last = x.transpose(0, 2, 3, 1)                                   # (N, H, W, C)
        n, h, w, c = x_last.shape
        full = (n, (h - 1) * s + kh, (w - 1) * s + kw, o)                  # before the crop
        y = xp.empty((n, full[1] - 2 * p, full[2] - 2 * p, o), dtype=x.dtype)
        weights = self.weight_matrix()                                     # (C, kh*kw*O)
        for group in self.image_groups(n, h, w, x.itemsize):
            rows = xp.ascontiguousarray(x_last[group])
            m = rows.shape[0]
            cols = (rows.reshape(m * h * w, c) @ weights).reshape(m, h, w, kh, kw, o)
            y[group] = unpad_hw(col2im(cols, (m,) + full[1:], s), ((p, p), (p, p)))
        y += self.params["b"]
        self._x_last = x_last
        return y.transpose(0, 3, 1, 2)                                     # (N, O, H', W') view

    def backward(self, grad_y, param_grads=True, input_grad=True):
        xp = get_array_module(grad_y)
        kh, kw = self.kernel_size
        s, p, o, c = self.stride, self.padding, self.out_channels, self.in_channels
        g_last = pad_hw(grad_y.transpose(0, 2, 3, 1), ((p, p), (p, p)))    # (N, Hf, Wf, O)
        n, h, w, _ = self._x_last.shape
        grad_x = xp.empty((n, h, w, c), dtype=grad_y.dtype) if input_grad else None
        grad_w = xp.zeros((c, kh * kw * o), dtype=grad_y.dtype)
        weights = self.weight_matrix()
        for group in self.image_groups(n, h, w, grad_y.itemsize):
            g_cols = im2col(g_last[group], kh, kw, s)                      # (m, H, W, kh, kw, O)
            m = g_cols.shape[0]
            g_cols = g_cols.reshape(m * h * w, kh * kw * o)
            if input_grad:
                xp.matmul(g_cols, weights.T, out=grad_x[group].reshape(m * h * w, c))
            if param_grads:
                grad_w += xp.ascontiguousarray(self._x_last[group]).reshape(m * h * w, c).T @ g_cols
        if param_grads:
            self.grads["W"] = xp.ascontiguousarray(
                grad_w.reshape(c, kh, kw, o).transpose(0, 3, 1, 2))        # (C, O, kh, kw)
            g = xp.ascontiguousarray(grad_y.transpose(0, 2, 3, 1))
            self.grads["b"] = column_sums(g.reshape(g.shape[0] * g.shape[1] * g.shape[2], o))
        return None if grad_x is None else grad_x.transpose(0, 3, 1, 2)    # (N, C, H, W) view
