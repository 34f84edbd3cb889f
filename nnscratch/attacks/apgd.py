"""Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble
of diverse parameter-free attacks", ICML, Algorithm 1): PGD with momentum whose step size halves
by itself when progress stalls, so that it needs no step size.

Per image, for x (C, H, W) in [0, 1], the ball B = {x': ||x' - x|| <= eps, 0 <= x' <= 1} and P
the projection onto it (``project`` of norms.py), f the loss to ascend, s(g) = sign(g) (linf) or
g / ||g||_2 (l2), alpha = 0.75, eta^(0) = 2 eps::

    x^(1)   = P(x^(0) + eta s(grad f(x^(0))))
    z       = P(x^(k) + eta s(grad f(x^(k))))                                  k >= 1
    x^(k+1) = P(x^(k) + alpha (z - x^(k)) + (1 - alpha)(x^(k) - x^(k-1)))

x_max is the point of highest f so far. At the checkpoints w_j = ceil(p_j N) (N = steps; p_0 = 0,
p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06): 0, 22, 41, 57, 70, 80, 87, 93, 99
for N = 100; ``checkpoints``) eta halves and x^(k+1) restarts from x_max (with its gradient) if

    1. f rose at no more than rho (w_j - w_{j-1}) of the steps since the last checkpoint, or
    2. eta was not halved at the last checkpoint and f_max has not risen since it (checked from
       the second checkpoint on: at the first there is no last one).

Losses f of the logits z (n, K), each with its exact gradient df/dz (``objective``), pulled back
through ``logit_gradient``; pi sorts z in decreasing order:
    "ce"          cross-entropy of y; targeted: minus the cross-entropy of the target t
    "dlr"         -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)     (K >= 3)
                  targeted: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)      (K >= 4)
    "reject_dlr"  for a model with a reject class (its last logit s_R, as ``RejectingModel``):
                  -(max(z_y, s_R) - max_{i not in {y, R}} z_i) / (z_pi1 - z_pi3 + 1e-12), pi over
                  all K + 1 columns; > 0 exactly when a wrong class beats both y and the reject
                  score, the success of ``MisclassificationNotRejected``. Untargeted only.
The DLR losses are invariant to shifting and to positive scaling of z (but for the 1e-12).

Targeted: with a target (``generate(..., target=t)``) the target's loss, success = reaching t.
Without one (APGD-T of Croce & Hein): one run per target among the ``n_target_classes`` best
classes other than y at x (the 2nd, 3rd, ... highest logits; at most K - 1), each on the images
not yet misclassified; success = misclassified. ``restarts`` runs per target (or one set of
runs untargeted), each from a new random start, on the images not yet successful.

An image stops at its first adversarial iterate, which is its x_adv; a failed image gets the
point of highest loss over its runs. An image already adversarial at x is returned as x.

Choices, where the paper leaves room (the first three as the authors' code, so that results
match AutoAttack's and torchattacks'): condition 1 is "no more than" (the paper writes "less
than"; at N = 100 they differ only for exactly 12 rises in 16 steps); a rise compares f at
consecutive iterates, f(x^(k)) as computed even where a restart then replaced x^(k) by x_max;
the random start is on the sphere of the ball, x + eps t / ||t|| with t uniform in [-1, 1]^D
(linf) or Gaussian (l2), clipped to [0, 1] and drawn from ``new_rng(seed)`` on x's array module
(``random_start=False``: x itself). The first checkpoint counts the rise from x^(0) to x^(1)
(the authors' code compares f(x^(1)) with 0 there, an index that wraps).

info: "failure" (N,) host strings: "", "zero gradient" (the gradient was zero at every step)
or "not adversarial"; "step_size" (N,) eta at the end of the image's last run (2 eps if it
never ran). Queries per image: 1 (the logits at x), then per run 1 (the start's logits) and 2
per step it takes: the gradient, then the logits at the new point, which give the loss, its
weights df/dz for the next gradient (``logit_gradient`` takes them before its forward pass) and
success; plus 1 when y is defaulted. x, x_adv: (N, C, H, W).
"""

import math

from nnscratch.attacks.base import Attack, failure_reasons
from nnscratch.attacks.criteria import MisclassificationNotRejected
from nnscratch.attacks.norms import STEEPEST, any_nonzero, normalized, project
from nnscratch.attacks.reject_aware import best_other
from nnscratch.backend import get_array_module, new_rng
from nnscratch.checks import (check_choice, check_flag, check_integer, check_real,
                              check_seed)
from nnscratch.losses import softmax_cross_entropy

MOMENTUM = 0.75                       # alpha, the paper's
DLR_FLOOR = 1e-12                     # keeps the DLR denominator away from 0


def checkpoints(steps):
    """[w_0, w_1, ...] = ceil(p_j steps) for p_j <= 1 (module docstring), repeats dropped.
    Computed in hundredths, in integers: ceil(0.22 * 100) in floats is 23."""
    p = [0, 22]
    while p[-1] + max(p[-1] - p[-2] - 3, 6) <= 100:
        p.append(p[-1] + max(p[-1] - p[-2] - 3, 6))
    return sorted({-(-q * steps // 100) for q in p})


def one_hot(classes, k, dtype):
    """(n, k) rows e_c for the classes (n,)."""
    xp = get_array_module(classes)
    return (xp.arange(k)[None, :] == classes[:, None]).astype(dtype)


def dlr_ratio(z, a, b, c):
    """f = -(z_a - z_b) / (c . z + 1e-12) (n,) and df/dz (n, K), for logits z (n, K), classes
    a, b (n,) and the denominator's weights c (n, K) (e_pi1 - e_pi3, say):

        df/dz = -(e_a - e_b) / D + (z_a - z_b) / D^2 c,      D = c . z + 1e-12
    """
    xp = get_array_module(z)
    rows, k = xp.arange(len(z)), z.shape[1]
    margin = z[rows, a] - z[rows, b]
    scale = (c * z).sum(axis=1) + z.dtype.type(DLR_FLOOR)
    w = -(one_hot(a, k, z.dtype) - one_hot(b, k, z.dtype)) / scale[:, None]
    return -margin / scale, w + (margin / scale ** 2)[:, None] * c


class APGD(Attack):
    """Auto-PGD in the ``norm`` ball of radius ``eps`` for ``steps`` steps (module docstring)."""

    targets_best_classes = True      # targeted, no target: over the best other classes

    def __init__(self, eps, norm="linf", loss="ce", targeted=False, steps=100, restarts=1,
                 rho=0.75, n_target_classes=9, random_start=True, seed=0):
        self.eps = check_real(eps, "eps", positive=True)
        self.norm = check_choice(norm, "norm", ("linf", "l2"))
        self.loss = check_choice(loss, "loss", ("ce", "dlr", "reject_dlr"))
        self.targeted = check_flag(targeted, "targeted")
        if self.loss == "reject_dlr" and self.targeted:
            raise ValueError("loss='reject_dlr' is untargeted: any wrong class not rejected")
        self.steps = check_integer(steps, "steps")
        self.restarts = check_integer(restarts, "restarts")
        self.rho = check_real(rho, "rho", positive=True, below=1)
        self.n_target_classes = check_integer(n_target_classes, "n_target_classes")
        self.random_start = check_flag(random_start, "random_start")
        if self.restarts > 1 and not self.random_start:
            raise ValueError("restarts > 1 needs random_start=True: from x, every restart "
                             "would repeat the first")
        self.seed = check_seed(seed)

    def success_criterion(self, y, target):
        if self.loss == "reject_dlr":
            return MisclassificationNotRejected(y)
        return super().success_criterion(y, target)


    def objective(self, z, y, t):
        """The loss f (n,) to ascend and df/dz (n, K), for logits z (n, K), labels y (n,) and
        targets t (n,), or None untargeted."""
        xp = get_array_module(z)
        k = z.shape[1]
        if self.loss == "ce":
            ce, grad = softmax_cross_entropy(z, y if t is None else t)
            return (ce, grad) if t is None else (-ce, -grad)
        order = xp.argsort(-z, axis=1)                       # classes by decreasing logit
        top, third = one_hot(order[:, 0], k, z.dtype), one_hot(order[:, 2], k, z.dtype)
        if t is not None:
            fourth = one_hot(order[:, 3], k, z.dtype)
            return dlr_ratio(z, y, t, top - (third + fourth) / 2)
        if self.loss == "dlr":
            return dlr_ratio(z, y, best_other(z, y)[0], top - third)
        rows, reject = xp.arange(len(z)), k - 1
        own = xp.where(z[rows, reject] > z[rows, y], reject, y)         # max(z_y, s_R)
        return dlr_ratio(z, own, best_other(z[:, :reject], y)[0], top - third)

    def check_classes(self, k):
        """The DLR losses read the third (targeted: the fourth) largest logit."""
        least = 1 if self.loss == "ce" else 4 if self.targeted else 3
        if k < least:
            raise ValueError(f"loss={self.loss!r} needs logits of at least {least} classes, "
                             f"got {k}")

    def start(self, x, rng):
        """x^(0) (n, C, H, W): on the sphere of the ball (module docstring), or x."""
        if not self.random_start:
            return x.copy()
        xp = get_array_module(x)
        if self.norm == "linf":
            t = 2 * rng.random(x.shape, dtype=x.dtype) - 1
        else:
            t = rng.standard_normal(x.shape, dtype=x.dtype)
        return xp.clip(x + x.dtype.type(self.eps) * normalized(t, self.norm), 0, 1)

    def descend(self, oracle, x, idx, t, rng):
        """One run of Algorithm 1 on the images ``idx`` (n,) of x, towards targets t (n,) or
        None. Returns, for them: x_found (n, C, H, W) (the first adversarial iterate, else
        x_max), found (n,), f (n,) (at x_found), eta (n,) at the end, moved (n,) (a nonzero
        gradient at some step). An image stops when adversarial: the arrays of the running
        images are cut to them, ``rows`` says where they are among the n."""
        xp = get_array_module(x)
        centre, y, n = x[idx], oracle.y[idx], len(idx)
        alpha, dtype = x.dtype.type(MOMENTUM), x.dtype
        x_cur = self.start(centre, rng)
        z = oracle.logits(x_cur, idx)
        f, w = self.objective(z, y, t)
        adv = oracle.criterion(z, idx)
        x_found, f_found = x_cur.copy(), f.copy()
        found, moved = xp.zeros(n, dtype=bool), xp.zeros(n, dtype=bool)
        eta = xp.full(n, 2 * self.eps, dtype=dtype)
        eta_found, rows = eta.copy(), xp.arange(n)
        x_prev, x_max, f_max, w_max, f_last = x_cur, x_cur.copy(), f.copy(), w.copy(), f
        rises, halved_last, f_max_last = xp.zeros(n, dtype=xp.int64), xp.ones(n, dtype=bool), f
        marks = checkpoints(self.steps)
        spans = {w_j: w_j - before for before, w_j in zip(marks, marks[1:])}
        for k in range(1, self.steps + 1):
            if adv.any():                                # stop them where they are
                done, keep = rows[adv], ~adv
                x_found[done], f_found[done], eta_found[done] = x_cur[adv], f[adv], eta[adv]
                found[done] = True
                (rows, adv, x_cur, x_prev, x_max, eta, w, f_max, w_max, f_last, rises,
                 halved_last, f_max_last) = (a[keep] for a in (
                    rows, adv, x_cur, x_prev, x_max, eta, w, f_max, w_max, f_last, rises,
                    halved_last, f_max_last))
                if not rows.size:
                    break
            g = oracle.logit_gradient(x_cur, w, idx[rows])[1].astype(dtype, copy=False)
            moved[rows] |= any_nonzero(g)
            here = centre[rows]
            step = eta.reshape(-1, 1, 1, 1) * normalized(g, STEEPEST[self.norm])
            x_new = project(here, x_cur + step, self.eps, self.norm)
            if k > 1:
                x_new = project(here, x_cur + alpha * (x_new - x_cur) + (1 - alpha) *
                                (x_cur - x_prev), self.eps, self.norm)
            x_prev, x_cur = x_cur, x_new
            z = oracle.logits(x_cur, idx[rows])
            f, w = self.objective(z, y[rows], None if t is None else t[rows])
            adv = oracle.criterion(z, idx[rows])
            rises, f_last = rises + (f > f_last), f
            better = f > f_max
            x_max[better], f_max[better], w_max[better] = x_cur[better], f[better], w[better]
            if k in spans:                               # a checkpoint (adversarial ones stop)
                halve = ((rises <= self.rho * spans[k]) | (~halved_last & (f_max <= f_max_last))
                         ) & ~adv
                eta[halve] /= 2
                x_cur[halve], w[halve] = x_max[halve], w_max[halve]
                rises, halved_last, f_max_last = xp.zeros_like(rises), halve, f_max.copy()
        x_found[rows], f_found[rows], eta_found[rows] = x_max, f_max, eta
        x_found[rows[adv]], f_found[rows[adv]], found[rows[adv]] = x_cur[adv], f[adv], True
        return x_found, found, f_found, eta_found, moved

    def run(self, oracle, x):
        xp = get_array_module(x)
        z = oracle.logits(x)
        k = z.shape[1]
        self.check_classes(k)
        success = oracle.criterion(z)
        x_adv, rng = x.copy(), new_rng(self.seed, xp)
        best = xp.full(len(x), -math.inf, dtype=z.dtype)
        eta = xp.full(len(x), 2 * self.eps, dtype=x.dtype)
        moved = xp.zeros(len(x), dtype=bool)
        if self.targeted and oracle.target is None:          # APGD-T: the best other classes
            ranked = xp.argsort(-xp.where(one_hot(oracle.y, k, bool), -xp.inf, z), axis=1)
            targets = [ranked[:, j] for j in range(min(self.n_target_classes, k - 1))]
        else:
            targets = [oracle.target]
        for t in targets:
            for _ in range(self.restarts):
                idx = xp.flatnonzero(~success)
                if not idx.size:
                    break
                x_run, found, f, eta_end, moving = self.descend(
                    oracle, x, idx, None if t is None else t[idx], rng)
                keep = found | (f > best[idx])
                x_adv[idx[keep]], best[idx[keep]] = x_run[keep], f[keep]
                success[idx], eta[idx], moved[idx] = found, eta_end, moved[idx] | moving
        return x_adv, success, {"failure": failure_reasons(success, ~moved, "not adversarial"),
                                "step_size": eta}
