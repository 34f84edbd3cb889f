"""FAB, the fast adaptive boundary attack (Croce & Hein 2020, "Minimally distorted adversarial
examples with a fast adaptive boundary attack", ICML, Algorithm 1): the smallest perturbation
in L-inf, L2 or L1 that changes the class, found by stepping onto the linearised decision
boundary while being pulled back towards the original image.

Per image, x (C, H, W) in [0, 1] with label y, logits z, D = C H W and the box C = [0, 1]^D.
The boundary between y and a class l is f_l = z_l - z_y = 0; at the current point x^(i) it is
linearised into the hyperplane

    pi_l:  f_l(x^(i)) + <w_l, x' - x^(i)> = 0,       w_l = grad z_l - grad z_y  (at x^(i)),

at distance |f_l| / ||w_l||_q from x^(i) (q the dual norm: 1 for L-inf, 2 for L2, inf for L1;
1e-12 added to ||w_l||_q, as the authors' code, so that a zero gradient is far away). With s the
class of the closest, and proj(u) the least move of u onto pi_s within the box
(``fab_projection.py``):

    delta   = proj(x^(i)),    delta_0 = proj(x)
    alpha   = min(||delta|| / (||delta|| + ||delta_0||), alpha_max)      (norms floored at 1e-8)
    x^(i+1) = clip_[0,1]((1 - alpha)(x^(i) + eta delta) + alpha (x + eta delta_0))

eta >= 1 overshoots the linearised boundary (eta = 1.05); alpha biases the step towards x, the
more the closer x^(i) is to the boundary compared with x. When x^(i+1) is adversarial it is
kept if its norm ||x^(i+1) - x|| is the least so far, and the search goes back towards x:
x^(i+1) <- x + beta (x^(i+1) - x) (the backward step, beta = 0.9). ``steps`` iterations; the
result is the adversarial of least norm found.

Targeted (FAB-T): the one boundary of the target t, f_t = z_t - z_c (no choice of s). With
``targeted=True`` and no target, c = y: one run per target among the ``n_target_classes`` best
other classes at x (the 2nd, 3rd, ... highest logits, at most K - 1: the paper's FAB-T, as
AutoAttack and torchattacks' multi-targeted FAB), success being misclassification, the least
norm over the targets kept. With a target given (``generate(..., target=t)``) success is
reaching t, for which beating y is not enough: c is the best class other than t at x^(i) (the
active piece of z_t - max_{l != t} z_l; c = y while y is the runner-up, as the paper; on
digits, 29 of 30 targets reached in 10 steps where c = y reaches 14).

``reject_class=True`` is for a model whose last logit is a reject score s_R (``RejectingModel``):
the boundaries are those of the known classes l not in {y, R} against max(z_y, s_R), linearised
on the side that is larger at x^(i) (the gradient of a max is that of its active term), and
success is a wrong known class that is not rejected (``MisclassificationNotRejected``).
Untargeted only.

eps: None for the minimal-norm attack: success = some adversarial found, x_adv the one of least
norm (``result.norms``). With eps (AutoAttack's use): success = an adversarial within eps; an
image whose least adversarial lies beyond eps is returned as x, failed. ``restarts`` runs (per
target), each on the images without an adversarial within eps: the first from x, the others from
a random point on the sphere of radius eps / 2 around x, x + eps/2 u / ||u||, clipped to the box,
u uniform in [-1, 1]^D (L-inf) or Gaussian (L2, L1) (the authors' code: radius min(eps, v) / 2, v
the least norm found so far, which is eps / 2 for the images still running). Restarts need eps.

Choices left open, as the authors' code and torchattacks 3.5.1 unless said: the projections are
exact (module docstring of ``fab_projection.py``); the dual norm q chooses the boundary (the
authors' first, TensorFlow, L2 code uses the L1 norm of w there; torchattacks the L2 norm); the
optional final search of the authors' code (a few secant steps between x and x_adv) is left out,
as AutoAttack and torchattacks leave it; every image runs all ``steps``, also after its first
adversarial (each backward step may find a smaller one). An image adversarial at x is returned as
x. Random starts come from a host generator seeded by ``seed``, moved to x's array module, so a
seed gives the same draws on every backend.

Queries per image: 1 (the logits at x), then 3 per step of each run: the logits at x^(i), then
the Jacobian (untargeted: every w_l) or the gradient of z_t - z_c (targeted: one pullback) there,
and the logits at x^(i+1); plus 1 when y is defaulted. info: "failure" (N,) host strings: "",
"zero gradient" (the chosen boundary's gradient was zero at every step), "beyond eps"
(adversarials found, none within eps) or "not adversarial". x, x_adv: (N, C, H, W).
"""

import numpy as np

from nnscratch.attacks.apgd import one_hot
from nnscratch.attacks.base import Attack, failure_reasons
from nnscratch.attacks.criteria import MisclassificationNotRejected
from nnscratch.attacks.fab_projection import project_onto_hyperplane
from nnscratch.attacks.norms import any_nonzero, normalized, per_image, per_image_norm
from nnscratch.attacks.reject_aware import best_other
from nnscratch.backend import get_array_module, new_rng, to_numpy
from nnscratch.checks import (check_choice, check_flag, check_integer, check_real,
                              check_seed)

DUAL = {"linf": "l1", "l2": "l2", "l1": "linf"}     # q with 1/p + 1/q = 1


def check_fraction(value, what):
    """A number in (0, 1]."""
    value = check_real(value, what, positive=True)
    if value > 1:
        raise ValueError(f"{what} must be a number in (0, 1], got {value!r}")
    return value


class FAB(Attack):
    """The fast adaptive boundary attack in ``norm``, minimal-norm or within ``eps`` (module
    docstring)."""

    targets_best_classes = True      # targeted, no target: over the best other classes

    def __init__(self, eps=None, norm="linf", steps=10, restarts=1, alpha_max=0.1, eta=1.05,
                 beta=0.9, targeted=False, n_target_classes=9, reject_class=False, seed=0):
        self.eps = None if eps is None else check_real(eps, "eps", positive=True)
        self.norm = check_choice(norm, "norm", ("linf", "l2", "l1"))
        self.steps = check_integer(steps, "steps")
        self.restarts = check_integer(restarts, "restarts")
        if self.restarts > 1 and self.eps is None:
            raise ValueError("restarts > 1 needs eps: the random starts lie in the eps ball")
        self.alpha_max = check_fraction(alpha_max, "alpha_max")
        self.eta = check_real(eta, "eta", positive=True)
        if self.eta < 1:
            raise ValueError(f"eta must be a number >= 1 (it overshoots the boundary), got "
                             f"{eta!r}")
        self.beta = check_fraction(beta, "beta")
        self.targeted = check_flag(targeted, "targeted")
        self.n_target_classes = check_integer(n_target_classes, "n_target_classes")
        self.reject_class = check_flag(reject_class, "reject_class")
        if self.reject_class and self.targeted:
            raise ValueError("reject_class=True is untargeted: any wrong class not rejected")
        self.seed = check_seed(seed)

    def success_criterion(self, y, target):
        if self.reject_class:
            return MisclassificationNotRejected(y)
        return super().success_criterion(y, target)


    def boundary(self, oracle, x_cur, idx, t, k):
        """f_s (n,) and w_s (n, D) at x_cur (n, C, H, W), the images ``idx`` of the oracle, K = k
        logits: the closest linearised boundary (untargeted), or that of the targets t (n,)."""
        xp = get_array_module(x_cur)
        n, y, rows, dtype = len(x_cur), oracle.y[idx], xp.arange(len(x_cur)), x_cur.dtype
        z = oracle.logits(x_cur, idx)
        if t is not None:                                  # one pullback: grad (z_t - z_own)
            own = y if oracle.target is None else best_other(z, t)[0]
            grad = oracle.logit_gradient(x_cur, one_hot(t, k, z.dtype) - one_hot(own, k, z.dtype),
                                         idx)[1]
            return (z[rows, t] - z[rows, own]).astype(dtype), per_image(grad).astype(dtype)
        jac = oracle.jacobian(x_cur, idx).reshape(n, k, -1)                 # (n, K, D)
        own = y
        if self.reject_class:
            reject = k - 1
            own = xp.where(z[rows, reject] > z[rows, y], reject, y)        # max(z_y, s_R)
        f = (z - z[rows, own][:, None]).astype(dtype)                       # (n, K)
        w = jac - jac[rows, own][:, None]                                   # (n, K, D)
        dual = per_image_norm(w.reshape(n * k, -1), DUAL[self.norm]).reshape(n, k)
        distance = abs(f) / (dual + dtype.type(1e-12))
        distance[rows, y] = xp.inf
        if self.reject_class:
            distance[:, reject] = xp.inf
        s = xp.argmin(distance, axis=1)
        return f[rows, s], w[rows, s]

    def start(self, centre, rng):
        """A random start (n, C, H, W): on the sphere of radius eps / 2 around centre, clipped
        (module docstring)."""
        xp, dtype = get_array_module(centre), centre.dtype
        if self.norm == "linf":
            u = 2 * rng.random(centre.shape, dtype=dtype) - 1
        else:
            u = rng.standard_normal(centre.shape, dtype=dtype)
        radius = dtype.type(self.eps / 2)
        return xp.clip(centre + radius * normalized(xp.asarray(u), self.norm), 0, 1)

    def descend(self, oracle, x, idx, t, k, rng):
        """One run of Algorithm 1 on the images ``idx`` (n,) of x, towards targets t (n,) or
        None, from x (rng None) or a random start. Returns, for them: the adversarial of least
        norm found (n, C, H, W) (x where none), its norm (n,) (inf where none), and (n,) bool: a
        nonzero gradient at some step."""
        xp = get_array_module(x)
        centre, n, dtype = x[idx], len(idx), x.dtype
        x_cur = centre.copy() if rng is None else self.start(centre, rng)
        x_best, best = centre.copy(), xp.full(n, xp.inf, dtype=dtype)
        moved = xp.zeros(n, dtype=bool)
        eta, beta, alpha_max = (dtype.type(a) for a in (self.eta, self.beta, self.alpha_max))
        for _ in range(self.steps):
            f, w = self.boundary(oracle, x_cur, idx, t, k)
            moved |= any_nonzero(w)
            b = (w * per_image(x_cur)).sum(axis=1) - f           # pi_s: <w, x'> = b
            delta, delta_0 = (project_onto_hyperplane(per_image(u), w, b, self.norm).reshape(
                u.shape) for u in (x_cur, centre))
            size, size_0 = (xp.maximum(per_image_norm(d, self.norm), dtype.type(1e-8))
                            for d in (delta, delta_0))
            alpha = xp.minimum(size / (size + size_0), alpha_max).reshape(-1, 1, 1, 1)
            x_new = xp.clip((1 - alpha) * (x_cur + eta * delta) +
                            alpha * (centre + eta * delta_0), 0, 1)
            adv = oracle.is_adversarial(x_new, idx)
            distance = per_image_norm(x_new - centre, self.norm)
            better = adv & (distance < best)
            x_best[better], best[better] = x_new[better], distance[better]
            x_cur = xp.where(adv.reshape(-1, 1, 1, 1), centre + beta * (x_new - centre), x_new)
        return x_best, best, moved

    def targets(self, oracle, z):
        """The target (N,) of each run: [None] untargeted, [the given target], or the 2nd, 3rd,
        ... best classes at x (logits z (N, K)) for FAB-T without a target."""
        if not self.targeted:
            return [None]
        if oracle.target is not None:
            return [oracle.target]
        xp, k = get_array_module(z), z.shape[1]
        ranked = xp.argsort(-xp.where(one_hot(oracle.y, k, bool), -xp.inf, z), axis=1)
        return [ranked[:, j] for j in range(min(self.n_target_classes, k - 1))]

    def run(self, oracle, x):
        xp = get_array_module(x)
        z = oracle.logits(x)
        at_x, x_adv, rng = oracle.criterion(z), x.copy(), new_rng(self.seed)
        best = xp.full(len(x), xp.inf, dtype=x.dtype)         # the least adversarial norm found
        moved = xp.zeros(len(x), dtype=bool)
        for t in self.targets(oracle, z):
            for restart in range(self.restarts):
                done = at_x if self.eps is None else at_x | self.within(best)
                idx = xp.flatnonzero(~done)
                if not idx.size:
                    break
                x_run, found, moving = self.descend(oracle, x, idx, None if t is None else t[idx],
                                                    z.shape[1], rng if restart else None)
                better = found < best[idx]
                x_adv[idx[better]], best[idx[better]] = x_run[better], found[better]
                moved[idx] |= moving
        success = at_x | self.within(best)
        x_adv[~success] = x[~success]                           # beyond eps: no success
        beyond = np.where(to_numpy(best < xp.inf), "beyond eps", "not adversarial")
        return x_adv, success, {"failure": failure_reasons(success, ~moved, beyond)}

    def within(self, norms):
        """(N,) bool: an adversarial of these norms (N,) (inf: none) is a success."""
        if self.eps is None:
            return norms < get_array_module(norms).inf
        return norms <= norms.dtype.type(self.eps)
