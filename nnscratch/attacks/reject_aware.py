"""The defence-aware attack of Sotgiu et al. (2019, "Deep Neural Rejection against Adversarial
Examples", arXiv 1910.00470, the defence-aware attack): push an image towards a wrong class that
is not rejected.

The model's logits are z = [s_1 .. s_K, s_R] (N, K + 1), the last column the reject score (a
``RejectingModel``: s_R = theta, argmax == K means "rejected"); any model with the model
interface works, its last logit then playing the reject class. For the label y of an image:

    minimise  f(x') = s_y(x') - max_{l not in {y, R}} s_l(x')
    s.t.      ||x' - x||_2 <= eps,  0 <= x' <= 1

and while x' is rejected (argmax z(x') == R), s_y is replaced by s_R, held constant (theta),
so the step only raises the best wrong class. f < 0 means x' is classified as a wrong class
and not rejected (a rejected point has f = s_R - max_l s_l > 0).

Projected gradient descent with a normalised gradient and an exponential line search:

    d_k = -grad f(x_k) / ||grad f(x_k)||_2          (-sign(grad f) for norm="linf")
    candidates x_k(j) = P(x_k + step 2^j d_k),  j = 0 .. line_search
    x_{k+1} = the candidate of lowest f, if lower than f(x_k); else the image stops there

P is PGD's projection: the perturbation scaled back onto the eps-ball (clipped per pixel for
linf), then the pixels clipped to [0, 1]. The result lies in both sets (clipping to the box
only shortens a perturbation that starts from an image in the box); it is the usual stand-in
for the exact projection onto their intersection. grad f is ``model.logit_gradient(x, w)`` with
w = e_y - e_l* (w = -e_l* while rejected), l* the best wrong class at x_k.

Choices, where the paper leaves room:
- the line search tries all ``line_search`` + 1 step sizes in one batch and keeps the best
  (the authors' line search doubles while the objective improves); an image whose best
  candidate does not lower f (a zero gradient included) stops: with the same gradient, the
  next step would try the same points. So f never increases.
- the attack keeps minimising after f < 0 (deeper into the wrong class), as the authors' does.
- the paper's second start (from the training sample of lowest objective, projected into the
  feasible set, keeping the better result) is the option ``starts``: images (M, C, H, W)
  (the attacker's training samples); each image starts a second run from P(the start of lowest
  f for its label) and keeps the run of lower final f. Off (None) by default.
- y defaults to the model's prediction (the contract); an image predicted "rejected" then has
  y = R, and any non-rejected class counts as success.

Result: success = the final prediction is neither y nor the reject class
(``MisclassificationNotRejected`` of criteria.py).
info: "objective" (N,) f at x_adv; "rejected" (N,) bool; "failure" (N,) host strings: "",
"rejected", "zero gradient" (the gradient was zero at every step taken) or "not adversarial".
Queries per image: 1 for the start's logits, then per step while the image runs 1 (gradient)
+ line_search + 1 (candidates), then 1 for the final prediction; with ``starts``, M (the
starts' logits) plus the second run's; plus 1 when y is defaulted.
"""

import numpy as np

from nnscratch.attacks.base import Attack, check_eps
from nnscratch.attacks.criteria import MisclassificationNotRejected
from nnscratch.attacks.norms import STEEPEST, any_nonzero, normalized, project
from nnscratch.checks import check_choice, check_integer, check_real
from nnscratch.backend import get_array_module, to_numpy
from nnscratch.model.interface import check_image_batch


def best_other(scores, y):
    """(index (n,), value (n,)) of the largest column of scores (n, K) other than y (n,)."""
    xp = get_array_module(scores)
    others = xp.where(xp.arange(scores.shape[1])[None, :] == y[:, None], -xp.inf, scores)
    best = others.argmax(axis=1)
    return best, others[xp.arange(len(scores)), best]


class RejectAwarePGD(Attack):
    """Sotgiu et al.'s defence-aware PGD on "network + rejection" (see the module docstring).

    eps: the L2 (or linf) radius; steps: descent steps; step: the smallest line-search step;
    line_search: doublings tried per step; norm: "l2" (the paper's) or "linf";
    starts: None, or images (M, C, H, W) in [0, 1] for the second start.
    """

    can_target = False
    objects = ("starts",)               # images, not a setting (see ``Attack.settings``)

    def __init__(self, eps, steps=30, step=0.1, line_search=10, norm="l2", starts=None):
        self.eps = check_eps(eps)
        self.steps = check_integer(steps, "steps", minimum=0)
        self.step = check_real(step, "step", positive=True)
        self.line_search = check_integer(line_search, "line_search", minimum=0)
        self.norm = check_choice(norm, "norm", ("l2", "linf"))
        if starts is not None:
            check_image_batch(starts, "starts")
            if not len(starts):
                raise ValueError("starts must hold at least one image (or be None)")
            if not (0 <= float(starts.min()) and float(starts.max()) <= 1):
                raise ValueError("starts must have values in [0, 1]")
        self.starts = starts

    def __repr__(self):
        return (f"RejectAwarePGD(eps={self.eps}, steps={self.steps}, step={self.step}, "
                f"line_search={self.line_search}, norm={self.norm!r}, "
                f"starts={None if self.starts is None else len(self.starts)})")

    # ---------------------------------------------- the objective

    @staticmethod
    def objective(z, y):
        """f (n,) and the weights w (n, K + 1) with d f/dx = d(sum w * z)/dx, for logits z
        (n, K + 1) whose last column is the reject score, labels y (n,)."""
        xp = get_array_module(z)
        reject = z.shape[1] - 1
        columns = xp.arange(reject + 1)[None, :]
        held = (z.argmax(axis=1) == reject) | (y == reject)     # s_y replaced by s_R, constant
        own = xp.where(held, z[:, reject], z[xp.arange(len(z)), y])
        wrong, wrong_value = best_other(z[:, :reject], y)
        w = ((columns == y[:, None]) & ~held[:, None]).astype(z.dtype)
        w = w - (columns == wrong[:, None]).astype(z.dtype)
        return own - wrong_value, w

    # ---------------------------------------------- the descent

    def success_criterion(self, y, target):
        return MisclassificationNotRejected(y)

    def direction(self, g):
        """The descent direction: -g / ||g||_2 (0 where g is 0), or -sign(g) for linf."""
        return -normalized(g, STEEPEST[self.norm])

    def descend(self, oracle, x, start):
        """Run the descent from ``start`` (N, C, H, W); returns (x_adv, f (N,), moved (N,))."""
        xp, y = get_array_module(x), oracle.y
        x_cur = start.copy()
        z = oracle.logits(x_cur)
        if z.shape[1] < 3:
            raise ValueError(f"RejectAwarePGD needs logits of at least two classes and the "
                             f"reject score, got {z.shape[1]} columns")
        if len(x) and (int(y.min()) < 0 or int(y.max()) >= z.shape[1]):
            raise ValueError(f"y must be in [0, {z.shape[1]}) (the last is the reject class)")
        value, w = self.objective(z, y)
        moved = xp.zeros(len(x), dtype=bool)
        sizes = [x.dtype.type(self.step * 2 ** j) for j in range(self.line_search + 1)]
        active = xp.arange(len(x))
        for _ in range(self.steps):
            if not active.size:
                break
            _, g = oracle.logit_gradient(x_cur[active], w[active], active)
            moved[active] |= any_nonzero(g)
            d = self.direction(g)
            candidates = xp.concatenate(
                [project(x[active], x_cur[active] + a * d, self.eps, self.norm)
                 for a in sizes])                                   # (J n, C, H, W), j-major
            repeated = xp.concatenate([active] * len(sizes))
            values, weights = self.objective(oracle.logits(candidates, repeated), y[repeated])
            n = len(active)
            best = values.reshape(len(sizes), n).argmin(axis=0) * n + xp.arange(n)
            improved = values[best] < value[active]
            chosen, active = best[improved], active[improved]
            x_cur[active], value[active], w[active] = (candidates[chosen], values[chosen],
                                                       weights[chosen])
        return x_cur, value, moved

    def second_start(self, oracle, x):
        """P(the start of lowest f for each image's label) (N, C, H, W)."""
        xp, y, starts = get_array_module(x), oracle.y, self.starts
        z = oracle.model.logits(starts.astype(x.dtype, copy=False))        # (M, K + 1)
        oracle.queries += len(starts)                  # every image's choice reads all M
        reject = z.shape[1] - 1
        rejected = z.argmax(axis=1) == reject                              # (M,)
        own = xp.where(rejected[None, :] | (y == reject)[:, None], z[:, reject][None, :],
                       z[:, y].T)                                          # (N, M)
        first, first_value = best_other(z[:, :reject], xp.full(len(z), reject))
        _, second_value = best_other(z[:, :reject], first)
        wrong = xp.where(first[None, :] == y[:, None], second_value[None, :],
                         first_value[None, :])
        start = starts[(own - wrong).argmin(axis=1)].astype(x.dtype, copy=False)
        return project(x, start, self.eps, self.norm)

    def run(self, oracle, x):
        xp, y, starts = get_array_module(x), oracle.y, self.starts
        if starts is not None and (get_array_module(starts) is not xp
                                   or tuple(starts.shape[1:]) != tuple(x.shape[1:])):
            raise ValueError(f"starts must be images like x, (M, {', '.join(map(str, x.shape[1:]))}"
                             f") on x's device, got {tuple(starts.shape)}")
        x_adv, value, moved = self.descend(oracle, x, x)
        if starts is not None:
            x_two, value_two, moved_two = self.descend(oracle, x, self.second_start(oracle, x))
            better = value_two < value
            x_adv = xp.where(better[:, None, None, None], x_two, x_adv)
            moved = moved | moved_two
        z = oracle.logits(x_adv)
        success = oracle.criterion(z)
        rejected = z.argmax(axis=1) == z.shape[1] - 1
        failure = np.where(to_numpy(success), "", np.where(
            to_numpy(rejected), "rejected", np.where(to_numpy(moved), "not adversarial",
                                                     "zero gradient")))
        return x_adv, success, {"objective": self.objective(z, y)[0], "rejected": rejected,
                                "failure": failure}
