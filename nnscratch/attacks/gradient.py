"""Single-step gradient attacks: FGSM (Goodfellow et al. 2015) and FGV (Rozsa et al. 2016), at a
given step size or at the smallest step that changes the class (Günther et al.'s use).

Both move x along one direction d computed from the gradient g of the loss at x::

    x_adv = clip(x + w * d, 0, 1)        FGSM: d = sign(g);  FGV: d = g / ||g|| (linf or l2)

With ``minimal=True``, w is searched per image (``minimal_search``): the smallest w for which
the class "just switches" (Günther, Rozsa & Boult, "On the Robustness of Deep Neural Networks").
"""

from nnscratch.backend import get_array_module, to_numpy

from nnscratch.attacks.base import Attack, check_eps, failure_reasons
from nnscratch.attacks.norms import any_nonzero, normalized, per_image
from nnscratch.checks import check_choice, check_flag, check_real

# The minimal search starts at this fraction of its bound: doubling reaches the bound in 8 probes.
START_FRACTION = 1 / 256
# Below this, a float32 bisection could stall on neighbouring floats.
MIN_TOLERANCE = 1e-6


def check_tolerance(tolerance):
    """The relative tolerance of ``minimal_search``: a number in [MIN_TOLERANCE, 1)."""
    tolerance = check_real(tolerance, "tolerance", positive=True, below=1)
    if tolerance < MIN_TOLERANCE:
        raise ValueError(f"tolerance must be at least {MIN_TOLERANCE:g}, got {tolerance!r}")
    return tolerance


def step(x, d, w):
    """clip(x + w * d, 0, 1): x, d (n, C, H, W); w a scalar of x's dtype, or (n,)."""
    xp = get_array_module(x)
    if getattr(w, "ndim", 0):
        w = w.reshape(-1, 1, 1, 1)
    return xp.clip(x + w * d, 0, 1)


def saturation(x, d):
    """(N,) the step w beyond which clip(x + w * d, 0, 1) stops changing: every pixel that moves
    has then reached 0 or 1 (0 for an image whose d is zero)."""
    xp = get_array_module(x)
    safe = xp.where(d == 0, 1, d)
    reach = xp.where(d > 0, (1 - x) / safe, xp.where(d < 0, -x / safe, 0))
    return per_image(reach).max(axis=1)


def minimal_search(oracle, x, d, tolerance, max_eps=None):
    """Per image, the smallest w with clip(x + w * d, 0, 1) adversarial, to a relative tolerance.

    The bound is the saturation step (beyond it the image no longer changes), or ``max_eps`` if
    that is smaller. Bracketing: w starts at bound / 256 and doubles (capped at the bound) until
    the image is adversarial; an image still not adversarial at the bound fails there. Then
    bisection between the largest step that was not adversarial (``lo``, 0 at first) and the
    smallest that was (``hi``) until hi - lo <= tolerance * hi. The class need not change
    monotonically along the ray: the search finds a switching point, not always the first one.
    Every probe is one prediction of the images still searching.

    Returns (x_adv, success, info): x_adv at w = hi, or at the bound for a failed image;
    info["w"] (N,) that step, info["w_below"] (N,) the largest step probed that was not
    adversarial, info["failure"] (N,) host strings: "", "zero gradient", "clipping" (not
    adversarial even when every moving pixel is at 0 or 1) or "bound reached" (max_eps).
    """
    xp = get_array_module(x)
    n = len(x)
    moving = any_nonzero(d)
    bound = saturation(x, d)
    by_clipping = xp.ones(n, dtype=bool)
    if max_eps is not None:
        by_clipping = bound <= max_eps
        bound = xp.minimum(bound, x.dtype.type(max_eps))
    lo = xp.zeros(n, dtype=x.dtype)
    hi = bound.copy()
    found = xp.zeros(n, dtype=bool)

    w = bound * x.dtype.type(START_FRACTION)
    searching = xp.flatnonzero(moving)
    while searching.size:                                    # bracketing
        adv = oracle.is_adversarial(step(x[searching], d[searching], w[searching]), searching)
        hit, miss = searching[adv], searching[~adv]
        hi[hit], found[hit] = w[hit], True
        lo[miss] = w[miss]
        at_bound = w[miss] >= bound[miss]
        w[miss] = xp.minimum(2 * w[miss], bound[miss])
        searching = miss[~at_bound]

    while True:                                              # bisection
        mid = (lo + hi) / 2
        unsettled = found & (hi - lo > tolerance * hi) & (lo < mid) & (mid < hi)
        idx = xp.flatnonzero(unsettled)
        if not idx.size:
            break
        adv = oracle.is_adversarial(step(x[idx], d[idx], mid[idx]), idx)
        hi[idx[adv]] = mid[idx[adv]]
        lo[idx[~adv]] = mid[idx[~adv]]

    w = xp.where(found, hi, bound)
    reasons = failure_reasons(found, ~moving, "bound reached")
    reasons[(reasons == "bound reached") & to_numpy(by_clipping)] = "clipping"
    return step(x, d, w), found, {"w": w, "w_below": lo, "failure": reasons}


class FastGradient(Attack):
    """x_adv = clip(x + w * d, 0, 1), d from the gradient at x: what FGSM and FGV share.

    A subclass gives ``direction(g) -> d``. Fixed step (``eps``): one gradient and one
    prediction per image (queries 2, plus 1 when y defaults to the model's predictions).
    ``minimal=True``: one gradient, then one prediction per probe of ``minimal_search``.
    info["failure"] (N,) host strings says why an image failed ("" where it succeeded).
    """

    def __init__(self, eps, targeted, minimal, max_eps, tolerance):
        name = type(self).__name__
        self.targeted = check_flag(targeted, "targeted")
        self.minimal = check_flag(minimal, "minimal")
        self.tolerance = check_tolerance(tolerance)           # used by the minimal search only
        if minimal:
            if eps is not None:
                raise ValueError(f"{name}(minimal=True) searches the step: give max_eps (the "
                                 "largest step to try) instead of eps")
            self.eps = None
            self.max_eps = None if max_eps is None else check_eps(max_eps, "max_eps")
        else:
            if eps is None:
                raise TypeError(f"{name} needs eps, the step size (or minimal=True to search it)")
            if max_eps is not None:
                raise ValueError("max_eps bounds the minimal search: it needs minimal=True")
            self.eps, self.max_eps = check_eps(eps), None

    def direction(self, g):
        raise NotImplementedError

    def run(self, oracle, x):
        d = self.direction(oracle.gradient(x))                            # (N, C, H, W)
        if self.minimal:
            return minimal_search(oracle, x, d, self.tolerance, self.max_eps)
        x_adv = step(x, d, x.dtype.type(self.eps))
        success = oracle.is_adversarial(x_adv)
        zero = ~any_nonzero(d)
        return x_adv, success, {"failure": failure_reasons(success, zero, "not adversarial")}


class FGSM(FastGradient):
    """Fast gradient sign method (Goodfellow, Shlens & Szegedy 2015):
    x_adv = clip(x + eps * sign(grad_x L(x, y)), 0, 1), L the cross-entropy.

    targeted=True (``generate(..., target=t)``): x_adv = clip(x - eps * sign(grad_x L(x, t)), 0, 1),
    a step down the loss of the target; success means predicted == t.
    minimal=True: Günther et al.'s x + w * sign(grad) with w "such that the classification just
    switches", found per image by ``minimal_search`` (bracketing from bound / 256 by doubling up
    to min(max_eps, saturation), then bisection to ``tolerance``, relative); info["w"] is the step
    found. Goodfellow et al. fix eps; the search's start, growth, tolerance and bound are ours.
    """

    def __init__(self, eps=None, *, targeted=False, minimal=False, max_eps=None,
                 tolerance=1e-3):
        super().__init__(eps, targeted, minimal, max_eps, tolerance)

    def direction(self, g):
        return normalized(g, "sign")


class FGV(FastGradient):
    """Fast gradient value (Rozsa, Rudd & Boult 2016): the gradient itself, not its sign,
    x_adv = clip(x + eps * g / ||g||, 0, 1), g = grad_x L(x, y), the norm taken per image:
    ``norm="linf"`` (max |g|: eps is the largest pixel change, as for FGSM) or ``"l2"``.

    Rozsa et al. and Günther et al. write x + w * g with w searched; scaling g to unit norm is our
    choice, so that eps (and the searched w) reads as the size of the step before clipping.
    targeted and minimal as for ``FGSM``; an image whose gradient is zero stays unchanged.
    """

    def __init__(self, eps=None, norm="linf", *, targeted=False, minimal=False, max_eps=None,
                 tolerance=1e-3):
        self.norm = check_choice(norm, "norm", ("linf", "l2"))
        super().__init__(eps, targeted, minimal, max_eps, tolerance)

    def direction(self, g):
        return normalized(g, self.norm)
