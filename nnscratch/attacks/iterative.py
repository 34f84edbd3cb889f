"""Iterative gradient attacks: BIM (Kurakin et al. 2017; BIM-A of Feinman et al. 2017) and PGD
(Madry et al. 2018). Each repeats a gradient step and projects back into the eps-ball around x
and into the pixel range [0, 1].

Queries (see ``Oracle``): one per image per gradient step, one per image per early-stopping
check, one per image for the final prediction that decides success, plus one when y defaults to
the model's predictions.
"""

import math

from nnscratch.backend import get_array_module, new_rng

from nnscratch.attacks.base import Attack, check_eps, failure_reasons
# project is imported from here by studies: it lives in norms.py, beside normalized
from nnscratch.attacks.norms import STEEPEST, any_nonzero, normalized, per_image_norm, project
from nnscratch.checks import check_choice, check_flag, check_integer, check_real, check_seed


def iterative_result(oracle, x_adv, moved):
    """(x_adv, success, info) with info["failure"]: "zero gradient" for an image whose gradient
    was zero at every step it took, "not adversarial" for the other failures."""
    success = oracle.is_adversarial(x_adv)
    return x_adv, success, {"failure": failure_reasons(success, ~moved, "not adversarial")}


class BIM(Attack):
    """Basic iterative method (Kurakin, Goodfellow & Bengio 2017), "I-FGSM"::

        x_0 = x,  x_{k+1} = clip_[0,1]( x + clip_[-eps, eps]( x_k + step * s_k - x ) ),
        s_k = sign(grad L(x_k, y))

    for ``steps`` steps (L the cross-entropy), through ``project`` of norms.py as PGD (the
    paper's clip_[x-eps, x+eps](x_k + step s_k) is the same but for the rounding of the last
    bit). Defaults are the paper's: step = 1/255 (one grey level) and
    steps = ceil(min(255 * eps + 4, 1.25 * 255 * eps)) (the paper writes min(eps + 4, 1.25 eps)
    with eps in grey levels; the rounding up is ours).
    early_stop=True is BIM-A (Feinman et al. 2017, "Detecting adversarial samples from
    artifacts"): before each step every image is checked, and an image stops at its first
    misclassification (BIM-B, the default, runs every step).
    targeted=True: the step descends the target's loss, x_k - step * sign(grad L(x_k, t)), and
    success (and BIM-A's stop) means predicted == t.
    info["failure"]: "", "zero gradient" or "not adversarial" per image.
    """

    def __init__(self, eps, step=1 / 255, steps=None, early_stop=False, *, targeted=False):
        self.eps = check_eps(eps)
        self.step = check_real(step, "step", positive=True)
        if steps is None:
            steps = math.ceil(min(255 * self.eps + 4, 1.25 * 255 * self.eps))
        self.steps = check_integer(steps, "steps", minimum=0)
        self.early_stop = check_flag(early_stop, "early_stop")
        self.targeted = check_flag(targeted, "targeted")

    def run(self, oracle, x):
        xp = get_array_module(x)
        step = x.dtype.type(self.step)
        x_adv = x.copy()
        moved = xp.zeros(len(x), dtype=bool)
        idx = xp.arange(len(x)) if self.early_stop else slice(None)   # the images still running
        for _ in range(self.steps):
            if self.early_stop:
                idx = idx[~oracle.is_adversarial(x_adv[idx], idx)]
                if not idx.size:
                    break
            g = oracle.gradient(x_adv[idx], idx)
            moved[idx] |= any_nonzero(g)
            x_adv[idx] = project(x[idx], x_adv[idx] + step * normalized(g, "sign"), self.eps,
                                 "linf")
        return iterative_result(oracle, x_adv, moved)


class PGD(Attack):
    """Projected gradient descent (Madry, Makelov, Schmidt, Tsipras & Vladu 2018), on the loss::

        x_0 = clip_[0,1](x + delta_0),   delta_0 random in the eps-ball (random_start) or 0
        x_{k+1} = clip_[0,1]( x + P_eps( x_k + step * s(g_k) - x ) ),   g_k = grad L(x_k, y)

    norm="linf": s(g) = sign(g), P_eps clips each pixel of the perturbation to [-eps, eps];
    norm="l2": s(g) = g / ||g||_2 (0 where g is 0), P_eps scales the perturbation down to l2
    norm eps when it is longer.
    Choices the paper leaves open: the random start is uniform in the ball, per pixel
    U(-eps, eps) for linf (the paper's), and for l2 uniform in the l2 ball (a Gaussian direction,
    radius eps * U^(1/D), D = C*H*W); the default step is 2.5 * eps / steps (the rule Madry et al.
    give), steps = 40 (their MNIST setting, with eps = 0.3 and step = 0.01). The random start is
    drawn from ``nnscratch.backend.new_rng(seed)`` on x's array module: the same seed gives the
    same images on one backend. targeted=True descends the target's loss (success: predicted
    == target). info["failure"]: "", "zero gradient" or "not adversarial" per image.

    A subclass changes what is ascended by overriding ``ascent`` (EOT, detector-aware PGD).
    """

    def __init__(self, eps, step=None, steps=40, norm="linf", random_start=True, seed=0, *,
                 targeted=False):
        self.eps = check_eps(eps)
        self.steps = check_integer(steps, "steps", minimum=0)
        self.step = (2.5 * self.eps / max(self.steps, 1) if step is None
                     else check_real(step, "step", positive=True))
        self.norm = check_choice(norm, "norm", ("linf", "l2"))
        self.random_start = check_flag(random_start, "random_start")
        self.seed = check_seed(seed)
        self.targeted = check_flag(targeted, "targeted")

    def random_delta(self, x):
        """delta_0 (N, C, H, W): uniform in the linf or l2 ball of radius eps."""
        xp = get_array_module(x)
        rng = new_rng(self.seed, xp)
        eps = x.dtype.type(self.eps)
        if self.norm == "linf":
            return eps * (2 * rng.random(x.shape, dtype=x.dtype) - 1)
        direction = rng.standard_normal(x.shape, dtype=x.dtype)
        length = per_image_norm(direction, "l2")
        dims = x[0].size
        radius = eps * rng.random(len(x), dtype=x.dtype) ** x.dtype.type(1 / dims)
        return direction * (radius / xp.where(length == 0, 1, length)).reshape(-1, 1, 1, 1)

    def ascent(self, oracle, x_adv, k):
        """g_k (like x_adv): the gradient to ascend at step k, grad L(x_k, y) (minus the
        target's for a targeted attack)."""
        return oracle.gradient(x_adv)

    def run(self, oracle, x):
        xp = get_array_module(x)
        step = x.dtype.type(self.step)
        x_adv = xp.clip(x + self.random_delta(x), 0, 1) if self.random_start else x.copy()
        moved = xp.zeros(len(x), dtype=bool)
        for k in range(self.steps):
            g = self.ascent(oracle, x_adv, k)
            moved |= any_nonzero(g)
            s = normalized(g, STEEPEST[self.norm])
            x_adv = project(x, x_adv + step * s, self.eps, self.norm)
        return iterative_result(oracle, x_adv, moved)
