"""Fully connected (affine) layer."""

import numpy as np

from nnscratch.checks import check_integer
from nnscratch.layers.base import Layer, glorot_uniform


class Dense(Layer):
    """y = x @ W + b.

    x: (N, F_in) -> y: (N, F_out). params: W (F_in, F_out) (the transpose of
    ``torch.nn.Linear.weight``), b (F_out,).
    """

    def __init__(self, in_features, out_features, rng=None, name=None):
        super().__init__(name)
        self.in_features = check_integer(in_features, "Dense: in_features")
        self.out_features = check_integer(out_features, "Dense: out_features")
        shapes = self.param_shapes(self.config())
        rng = np.random.default_rng(rng)   # a seed, a Generator, or None (fresh entropy)
        self.params = {"W": glorot_uniform(rng, shapes["W"], in_features, out_features),
                       "b": np.zeros(shapes["b"], dtype=np.float32)}

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features}

    @staticmethod
    def param_shapes(config):
        n_in, n_out = config["in_features"], config["out_features"]
        return {"W": (n_in, n_out), "b": (n_out,)}

    def forward(self, x, training=False, rng=None):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            self.reject_input(x, f"(N, {self.in_features})")
        self._x = x
        y = x @ self.params["W"]
        y += self.params["b"]
        return y

    def backward(self, grad_y, param_grads=True, input_grad=True):
        if param_grads:
            self.grads["W"] = self._x.T @ grad_y          # (F_in, F_out)
            self.grads["b"] = grad_y.sum(axis=0)          # (F_out,)
        if not input_grad:
            return None
        return grad_y @ self.params["W"].T                # (N, F_in)
