"""Elementwise nonlinearities. Each keeps the dtype and the memory layout of its input."""

from nnscratch.backend import get_array_module
from nnscratch.checks import check_real
from nnscratch.layers.base import Layer


class ReLU(Layer):
    """y = max(x, 0); dy/dx = 1 where x > 0, else 0."""

    def forward(self, x, training=False, rng=None):
        xp = get_array_module(x)
        self._x = x
        return xp.maximum(x, 0)

    def backward(self, grad_y, param_grads=True, input_grad=True):
        return grad_y * (self._x > 0)


class LeakyReLU(Layer):
    """y = x where x > 0, alpha * x elsewhere; dy/dx = 1 or alpha."""

    def __init__(self, alpha=0.01, name=None):
        super().__init__(name)
        self.alpha = check_real(alpha, "LeakyReLU: alpha")

    def config(self):
        return {"alpha": self.alpha}

    def forward(self, x, training=False, rng=None):
        xp = get_array_module(x)
        self._x = x
        return xp.where(x > 0, x, x * x.dtype.type(self.alpha))

    def backward(self, grad_y, param_grads=True, input_grad=True):
        xp = get_array_module(grad_y)
        return xp.where(self._x > 0, grad_y, grad_y * grad_y.dtype.type(self.alpha))


class Tanh(Layer):
    """y = tanh(x); dy/dx = 1 - y^2."""

    def forward(self, x, training=False, rng=None):
        xp = get_array_module(x)
        self._y = xp.tanh(x)
        return self._y

    def backward(self, grad_y, param_grads=True, input_grad=True):
        return grad_y * (1 - self._y * self._y)


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)), computed as (1 + tanh(x / 2)) / 2 (no overflow);
    dy/dx = y (1 - y)."""

    def forward(self, x, training=False, rng=None):
        xp = get_array_module(x)
        half = x.dtype.type(0.5)
        self._y = half * (1 + xp.tanh(half * x))
        return self._y

    def backward(self, grad_y, param_grads=True, input_grad=True):
        return grad_y * (self._y * (1 - self._y))
