"""Check hand-written gradients against central finite differences.

For a scalar function f and an input x (float64), the numerical gradient is

    df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)

with error O(eps^2 |f'''|) from truncation and O(u |f| / eps) from rounding (u ~ 1e-16).
eps = 1e-5 balances the two for the functions checked here (|f| ~ 10: rounding ~ 1e-10,
truncation ~ 1e-10 relative, none at all for the piecewise-linear layers). A layer's
backward pass is checked on f(x) = sum(g * layer.forward(x)) with a *random* upstream gradient
g (with g = 1, a bug that permutes or transposes the gradient could pass), for the input and
for every parameter. Two measures of agreement between analytic a and numerical b:

    norm-wise     ||a - b|| / (||a|| + ||b||)                  (small for a correct gradient)
    element-wise  |a_i - b_i| <= rtol (|a_i| + |b_i|) + atol    for every i

The element-wise test with a small ``atol`` keeps entries that are zero up to rounding from
making the check flaky. Inputs of ReLU and max pooling must stay away from kinks and ties (at a
kink, the two sides of the central difference see different slopes).

For inputs too large to perturb one entry at a time (a real-sized image through a wrapped
model, a detector's score), the directional check of Chainer compares, for a few random unit
directions d, the projection <grad, d> with (f(x + eps d) - f(x - eps d)) / (2 eps): two
evaluations per direction. A wrong gradient almost surely has the wrong projection on a random
direction, so a handful of directions catch what the element-wise check catches.

Usage on your own layer, and on any model with the model interface::

    assert_gradients_close(check_layer(MyLayer(...).astype(np.float64), x64))
    assert_gradients_close(check_loss_gradient(model, x64, y, directions=8))
"""

from dataclasses import dataclass

import numpy as np

from nnscratch.backend import get_array_module, new_rng, to_numpy
from nnscratch.losses import softmax_cross_entropy

NORM_TOLERANCE = 1e-7
ELEMENT_RTOL, ELEMENT_ATOL = 1e-6, 1e-9


def numerical_gradient(f, x, eps=1e-5):
    """Central differences of the scalar ``f()`` with respect to every entry of ``x``.

    ``x`` is perturbed in place (so it may be a layer parameter that ``f`` reads) and restored
    exactly afterwards. It must be a contiguous float64 array.
    """
    if x.dtype != np.float64:
        raise ValueError(f"gradient checks need float64, got {x.dtype}")
    if not x.flags.c_contiguous:
        raise ValueError("x must be C-contiguous, so that reshape(-1) is a view of it")
    xp = get_array_module(x)
    flat = x.reshape(-1)
    grad = xp.zeros(x.size, dtype=x.dtype)
    for i in range(x.size):
        original = flat[i].copy()
        flat[i] = original + eps
        f_plus = float(f())
        flat[i] = original - eps
        f_minus = float(f())
        flat[i] = original
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad.reshape(x.shape)


def relative_error(a, b):
    """Norm-wise relative error ||a - b|| / (||a|| + ||b||) (0 when both are 0)."""
    a, b = to_numpy(a).astype(np.float64), to_numpy(b).astype(np.float64)
    denominator = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denominator == 0 else float(np.linalg.norm(a - b) / denominator)


def elementwise_violation(a, b, rtol=ELEMENT_RTOL, atol=ELEMENT_ATOL):
    """max_i (|a_i - b_i| - rtol (|a_i| + |b_i|) - atol): <= 0 when every entry agrees."""
    a, b = to_numpy(a).astype(np.float64), to_numpy(b).astype(np.float64)
    if a.size == 0:
        return -atol
    return float(np.max(np.abs(a - b) - rtol * (np.abs(a) + np.abs(b)) - atol))


def random_upstream(shape, seed=0, xp=np):
    """A float64 standard-normal upstream gradient, seeded."""
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape))


@dataclass
class GradientComparison:
    """Analytic vs numerical gradient of one quantity (an input or a parameter)."""

    name: str
    analytic: object
    numerical: object

    @property
    def relative_error(self):
        return relative_error(self.analytic, self.numerical)

    @property
    def elementwise_violation(self):
        return elementwise_violation(self.analytic, self.numerical)

    def agrees(self, norm_tolerance=NORM_TOLERANCE, rtol=ELEMENT_RTOL, atol=ELEMENT_ATOL):
        return (self.analytic.shape == self.numerical.shape
                and relative_error(self.analytic, self.numerical) < norm_tolerance
                and elementwise_violation(self.analytic, self.numerical, rtol, atol) <= 0)


def assert_gradients_close(comparisons, norm_tolerance=NORM_TOLERANCE, rtol=ELEMENT_RTOL,
                           atol=ELEMENT_ATOL):
    """Raise AssertionError naming every comparison that fails either measure."""
    failures = [f"{c.name}: shapes {c.analytic.shape} vs {c.numerical.shape}, norm-wise "
                f"{c.relative_error:.2e} (tolerance {norm_tolerance:.0e}), element-wise "
                f"violation {c.elementwise_violation:.2e}"
                for c in comparisons if not c.agrees(norm_tolerance, rtol, atol)]
    if failures:
        raise AssertionError("gradient check failed:\n  " + "\n  ".join(failures))


def check_layer(layer, x, eps=1e-5, seed=0, dropout_seed=None):
    """Compare ``layer.backward`` with finite differences for the input and every parameter.

    f(x, params) = sum(g * layer.forward(x)) with g random (seeded). ``dropout_seed``: for
    stochastic layers, every forward call gets a fresh generator with this seed, so all calls
    draw the same mask. Returns a list of GradientComparison ("x", then each parameter).
    """
    x = x.copy()
    xp = get_array_module(x)

    def forward():
        rng = None if dropout_seed is None else new_rng(dropout_seed, xp)
        return layer.forward(x, rng=rng)

    g = random_upstream(forward().shape, seed, xp)
    grad_x = layer.backward(g.copy(), param_grads=True)
    comparisons = [GradientComparison("x", grad_x, numerical_gradient(
        lambda: (g * forward()).sum(), x, eps))]
    for key, value in layer.params.items():
        numeric = numerical_gradient(lambda: (g * forward()).sum(), value, eps)
        comparisons.append(GradientComparison(key, layer.grads[key], numeric))
    return comparisons


def directional_derivatives(value, x, directions, eps=1e-5):
    """Central differences of the scalar ``value()`` along each direction d (shaped like x):
    (value(x + eps d) - value(x - eps d)) / (2 eps), one pair of evaluations per direction.

    Chainer's check for large inputs: the analytic side is <grad, d>, so a gradient of any size
    is checked in 2 * len(directions) evaluations instead of 2 * x.size. ``x`` is perturbed in
    place and restored exactly, as in ``numerical_gradient``.
    """
    if x.dtype != np.float64:
        raise ValueError(f"gradient checks need float64, got {x.dtype}")
    xp = get_array_module(x)
    original = x.copy()
    slopes = []
    for d in directions:
        x[...] = original + eps * d
        f_plus = float(value())
        x[...] = original - eps * d
        f_minus = float(value())
        slopes.append((f_plus - f_minus) / (2 * eps))
    x[...] = original
    return xp.asarray(slopes, dtype=x.dtype)


def random_directions(shape, count, seed=0, xp=np):
    """``count`` float64 standard-normal directions, each scaled to unit norm, seeded."""
    rng = np.random.default_rng(seed)
    directions = [rng.standard_normal(shape) for _ in range(count)]
    return [xp.asarray(d / np.linalg.norm(d)) for d in directions]


def compare_input_gradient(name, gradient, value, x, eps=1e-5, directions=None, seed=0):
    """``gradient(x)`` (analytic d value/dx) against central differences of ``value(x)``.

    directions=None compares every entry (``numerical_gradient``); an integer compares the
    projections <grad, d> on that many random unit directions (``directional_derivatives``),
    which costs two evaluations per direction whatever the size of x. Works on a copy of x.
    Returns [GradientComparison].
    """
    x = x.copy()
    analytic = gradient(x)
    if directions is None:
        return [GradientComparison(name, analytic, numerical_gradient(lambda: value(x), x, eps))]
    xp = get_array_module(x)
    ds = random_directions(x.shape, directions, seed, xp)
    projected = xp.asarray([float((analytic * d).sum()) for d in ds], dtype=x.dtype)
    return [GradientComparison(f"{name} along {directions} directions", projected,
                               directional_derivatives(lambda: value(x), x, ds, eps))]


# The model interface's gradients, each against the quantity it differentiates, computed with
# the interface alone (logits, features): so any model, a wrapper included, can be checked.

def check_loss_gradient(model, x, y, eps=1e-5, directions=None):
    """``model.loss_gradient`` vs central differences of the summed per-sample losses."""
    return compare_input_gradient(
        "loss_gradient", lambda v: model.loss_gradient(v, y)[1],
        lambda v: softmax_cross_entropy(model.logits(v), y)[0].sum(), x, eps, directions)


def check_logit_gradient(model, x, w, eps=1e-5, directions=None):
    """``model.logit_gradient`` vs central differences of sum(w * logits)."""
    return compare_input_gradient(
        "logit_gradient", lambda v: model.logit_gradient(v, w)[1],
        lambda v: (w * model.logits(v)).sum(), x, eps, directions)


def check_feature_gradient(model, x, name, w, eps=1e-5, directions=None):
    """``model.feature_gradient`` vs central differences of sum(w * activation of ``name``)."""
    return compare_input_gradient(
        f"feature_gradient[{name}]", lambda v: model.feature_gradient(v, name, w),
        lambda v: (w * model.features(v, [name])[name]).sum(), x, eps, directions)


def check_jacobian(model, x, eps=1e-5, directions=None):
    """``model.jacobian`` (N, K, ...): row k vs central differences of the sum of logits k."""
    jac = model.jacobian(x.copy())
    comparisons = []
    for k in range(jac.shape[1]):
        comparisons += compare_input_gradient(
            f"jacobian[:, {k}]", lambda v: jac[:, k],
            lambda v: model.logits(v)[:, k].sum(), x, eps, directions)
    return comparisons
