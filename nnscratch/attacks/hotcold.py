"""Hot/Cold adversarials (Rozsa, Rudd & Boult 2016, "Adversarial Diversity and Hard Positive
Generation"), as Günther, Rozsa & Boult use them ("On the Robustness of Deep Neural Networks"):
HC-1 towards the closest class, HC towards every other class.

For an image x of class y (the cold class) and a target t (the hot class), the direction raises
the target's logit while lowering the original's, and the step is the smallest that reaches t::

    d = g / ||g||,   g = grad_x (z_t(x) - z_y(x))        (model.logit_gradient, w = e_t - e_y)
    x_adv = clip(x + w * d, 0, 1),   w the smallest step with predict(x_adv) == t

w is found per image by ``minimal_search`` of gradient.py, the same bracketing and bisection as
minimal FGS/FGV.
"""

import numpy as np

from nnscratch.backend import to_numpy

from nnscratch.attacks.base import Attack, Oracle, check_eps
from nnscratch.attacks.criteria import TargetedMisclassification
from nnscratch.attacks.gradient import check_tolerance, minimal_search
from nnscratch.attacks.norms import normalized
from nnscratch.checks import check_choice


class HotCold(Attack):
    """HotCold(mode="hc1"|"hc", norm="linf"|"l2", max_eps=None, tolerance=1e-3).

    ``generate(model, x, y=None)``: x (N, C, H, W) in [0, 1], y (N,) the cold classes (default:
    the model's predictions). The attack picks its targets itself, so ``target`` must be None
    (``can_target`` is False).

    mode="hc1" (HC-1): one target per image, the class with the highest logit at x other than
    y (the second highest logit when y is the prediction). The result has N rows.
    mode="hc" (HC): every class but y is a target, K-1 adversarials per image (9 on MNIST). The
    result has N*(K-1) rows, image-major: rows n*(K-1) .. n*(K-1)+K-2 belong to input n, with
    the targets in increasing class order. info["source"] (rows,) is the input each row comes
    from; ``result.target`` (rows,) its target; norms are those of x_adv - x[source].

    Success (per row): predict(x_adv) == target, the hot class reached, as in Günther et al.'s
    Table 3 ("classified as the targeted class"; their minimal HC-1 perturbation leaves the
    adversarial class "only slightly higher" than the original). A class change to a third
    class is not success; an image at its target already at x (only when the given y is not the
    prediction) succeeds with w = 0 and no search.

    The logits, not the probabilities, are what the direction raises and lowers (Rozsa et al.
    take the derivatives at the layer before the softmax). The norm of d is ours, as for FGV:
    "linf" (the default: w is the largest pixel change before clipping) or "l2". The step search
    (``minimal_search``): bracketing from bound / 256 by doubling up to min(max_eps, the
    saturation step), then bisection to ``tolerance`` (relative).

    Queries per row: one for the logits at x (y and the targets come from it; in HC mode it is
    shared by the K-1 rows of an input and counted on the first of them, so the queries sum to
    the images the model saw), one for the logit gradient, one per probe of the search.
    info: "source", "w" (the step found, or the bound for a failed row), "w_below" (the largest
    step probed that was not at the target), "failure" ("", "zero gradient", "clipping",
    "bound reached"; see ``minimal_search``).
    """

    can_target = False                  # the caller gives no target: the attack picks them

    def __init__(self, mode="hc1", norm="linf", *, max_eps=None, tolerance=1e-3):
        self.mode = check_choice(mode, "mode", ("hc1", "hc"))
        self.norm = check_choice(norm, "norm", ("linf", "l2"))
        self.max_eps = None if max_eps is None else check_eps(max_eps, "max_eps")
        self.tolerance = check_tolerance(tolerance)

    def generate(self, model, x, y=None, target=None):
        """Adversarials of x towards the hot classes (see the class docstring for the rows).
        Never modifies x; x_adv keeps x's dtype and array module."""
        xp = self.check(x, y, target)
        n = len(x)
        seen = xp.zeros(n, dtype=xp.int64)
        z = Oracle(model, y, None, seen).logits(x)                     # (N, K), one query each
        k = z.shape[1]
        if k < 2:
            raise ValueError(f"HotCold needs a model with at least 2 classes, got {k}")
        predicted = z.argmax(axis=1)
        if y is None:
            y = predicted
        if self.mode == "hc1":
            others = xp.where(xp.arange(k) == y[:, None], -xp.inf, z)
            source, target = xp.arange(n), others.argmax(axis=1)
        else:
            source = xp.repeat(xp.arange(n), k - 1)
            j = xp.tile(xp.arange(k - 1), n)
            target = j + (j >= y[source])                              # the j-th class but y
        rows = len(source)
        queries = xp.zeros(rows, dtype=xp.int64)
        queries[::rows // n if n else 1] += seen                       # the logits at x
        x_rows, y_rows = x[source], y[source]
        reached = TargetedMisclassification(target)                     # success, per row
        oracle = Oracle(model, y_rows, target, queries, reached)

        w = xp.zeros((rows, k), dtype=z.dtype)
        w[xp.arange(rows), target] = 1                                 # hot: raise z_t
        w[xp.arange(rows), y_rows] = -1                                # cold: lower z_y
        d = normalized(oracle.logit_gradient(x_rows, w)[1].astype(x.dtype, copy=False),
                       self.norm)

        # a row already at its target at x (y given, not the prediction) needs no search: w = 0
        at_target = reached(z[source])
        x_adv, success = x_rows.copy(), at_target.copy()
        step, below = xp.zeros(rows, dtype=x.dtype), xp.zeros(rows, dtype=x.dtype)
        failure = np.full(rows, "", dtype=object)
        todo = xp.flatnonzero(~at_target)
        if todo.size:
            searched = xp.zeros(todo.size, dtype=xp.int64)
            search = Oracle(model, y_rows[todo], target[todo], searched,
                            TargetedMisclassification(target[todo]))
            x_found, found, extra = minimal_search(search, x_rows[todo], d[todo],
                                                   self.tolerance, self.max_eps)
            x_adv[todo], success[todo] = x_found, found
            step[todo], below[todo] = extra["w"], extra["w_below"]
            failure[to_numpy(todo)] = extra["failure"]
            queries[todo] += searched
        info = {"source": source, "w": step, "w_below": below, "failure": failure.astype(str)}
        return self.result(x_rows, x_adv, success, queries, target, info)
