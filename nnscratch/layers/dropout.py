"""Inverted dropout."""

from nnscratch.backend import get_array_module
from nnscratch.checks import check_real
from nnscratch.layers.base import Layer


class Dropout(Layer):
    """y = x * m / (1 - p), m ~ Bernoulli(1 - p) per element; dy/dx = m / (1 - p).

    Active when ``training=True`` or when an ``rng`` is passed (MC-dropout inference: the
    model passes one per stochastic pass); otherwise the identity. There is no mode flag to
    forget: a forward call without either is always deterministic. Scaling by 1/(1 - p) at
    training time keeps E[y] = x, so inference needs no rescaling. With p = 0 it is always the
    identity (and needs no rng).
    """

    def __init__(self, p=0.5, name=None):
        super().__init__(name)
        self.p = check_real(p, "Dropout: p", below=1)

    def config(self):
        return {"p": self.p}

    def forward(self, x, training=False, rng=None):
        if self.p == 0 or (not training and rng is None):
            self._mask = None
            return x
        if rng is None:
            raise ValueError(f"{self.describe()}: training=True needs an rng "
                             "(nnscratch.backend.new_rng(seed))")
        keep = rng.random(x.shape, dtype=x.dtype) >= self.p
        self._mask = keep * x.dtype.type(1 / (1 - self.p))
        # written in x's memory layout (channels-last after a convolution), not the mask's,
        # so that the layers after it keep working on contiguous channels-last memory
        xp = get_array_module(x)
        return xp.multiply(x, self._mask, out=xp.empty_like(x))

    def backward(self, grad_y, param_grads=True, input_grad=True):
        if self._mask is None:
            return grad_y
        xp = get_array_module(grad_y)
        return xp.multiply(grad_y, self._mask, out=xp.empty_like(grad_y))
