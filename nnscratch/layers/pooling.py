"""Max and average pooling over (k, k) windows, as maxima / means of strided sub-grids.

A window of output position (p, q) covers input rows p*s .. p*s + k - 1. For a fixed offset
(i, j) inside the window, ``x[:, :, i::s, j::s]`` (cut to H' x W') holds that element of every
window at once, so pooling is k*k elementwise operations on whole sub-grids: no reshape, no
copy of the input, and it works whatever the memory layout of x.

Windows are square (one int ``kernel_size``, one int ``stride``): every network of the five
studies pools so, and a pair would add code none of them runs.
"""

from nnscratch.backend import get_array_module
from nnscratch.checks import check_integer
from nnscratch.layers.base import Layer
from nnscratch.ops import conv_output_size, window_slice


class _Pool2D(Layer):
    def __init__(self, kernel_size=2, stride=None, name=None):
        super().__init__(name)
        kind = type(self).__name__
        self.kernel_size = check_integer(kernel_size, f"{kind}: kernel_size")
        self.stride = check_integer(kernel_size if stride is None else stride, f"{kind}: stride")

    def config(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride}

    def offsets(self, x):
        """Index of the sub-grid of x (N, C, H, W) at every window offset, in row-major order."""
        k, s = self.kernel_size, self.stride
        ho, wo = conv_output_size(x.shape[2], k, s), conv_output_size(x.shape[3], k, s)
        for i in range(k):
            for j in range(k):
                yield (slice(None), slice(None), window_slice(i, ho, s), window_slice(j, wo, s))

    def check_input(self, x):
        k = self.kernel_size
        if x.ndim != 4 or x.shape[2] < k or x.shape[3] < k:
            self.reject_input(x, f"(N, C, H, W) with H >= {k} and W >= {k}")


class MaxPool2D(_Pool2D):
    """y[n, c, p, q] = max_{i,j < k} x[n, c, p*s + i, q*s + j].

    x: (N, C, H, W) -> (N, C, H', W'), H' = (H - k) // s + 1. The gradient of a window goes to
    its *first* maximum in row-major order (as PyTorch does), so a tie never doubles it.
    """

    def forward(self, x, training=False, rng=None):
        self.check_input(x)
        xp = get_array_module(x)
        grids = self.offsets(x)
        y = x[next(grids)].copy(order="K")    # keep x's memory layout (channels-last after a conv)
        for grid in grids:
            xp.maximum(y, x[grid], out=y)
        self._x, self._y = x, y
        return y

    def backward(self, grad_y, param_grads=True, input_grad=True):
        xp = get_array_module(grad_y)
        x, y = self._x, self._y
        grad_x = xp.zeros_like(x, dtype=grad_y.dtype)   # keeps x's memory layout
        disjoint = self.stride >= self.kernel_size      # no input in two windows
        routed = None                               # windows whose maximum was already found
        for grid in self.offsets(x):
            is_max = x[grid] == y
            if routed is None:
                routed = is_max
            else:
                is_max &= ~routed
                routed |= is_max
            if disjoint:                            # write each sub-grid once, no read-add
                xp.multiply(grad_y, is_max, out=grad_x[grid])
            else:
                grad_x[grid] += grad_y * is_max
        return grad_x


class AvgPool2D(_Pool2D):
    """y[n, c, p, q] = mean_{i,j < k} x[n, c, p*s + i, q*s + j].

    x: (N, C, H, W) -> (N, C, H', W'); every input of a window gets grad_y / k^2.
    """

    def forward(self, x, training=False, rng=None):
        self.check_input(x)
        grids = self.offsets(x)
        y = x[next(grids)].copy()
        for grid in grids:
            y += x[grid]
        y *= x.dtype.type(1.0 / self.kernel_size ** 2)
        self._x = x
        return y

    def backward(self, grad_y, param_grads=True, input_grad=True):
        xp = get_array_module(grad_y)
        grad_x = xp.zeros_like(self._x, dtype=grad_y.dtype)   # keeps x's memory layout
        share = grad_y * grad_y.dtype.type(1.0 / self.kernel_size ** 2)
        for grid in self.offsets(grad_x):
            grad_x[grid] += share
        return grad_x
