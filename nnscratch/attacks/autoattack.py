"""AutoAttack (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble
of diverse parameter-free attacks", ICML): four attacks of different kinds run one after the
other, each on the images that the ones before left robust; an image is robust only if every
attack failed on it. None of them needs a step size tuned, so the same run serves every model.

``worst_case(results, x)`` is that verdict for any attacks' results on the same images: per
image, robust where all failed, else broken by the first that succeeded, whose image it keeps.

The standard version (the authors' code, for L-inf and L2; every attack with the same seed):

    apgd-ce   APGD, cross-entropy, 100 steps, one random start            (``apgd.py``)
    apgd-t    APGD-T, the targeted DLR loss, one run of 100 steps towards each of the 9 best
              other classes at x
    fab-t     FAB-T within eps, 100 steps towards each of the 9 best other classes (``fab.py``)
    square    Square, margin loss, 5,000 queries, p_init 0.8, p's schedule on the raw
              iteration (``rescale=False``: the authors' AutoAttack does not rescale it to the
              budget)                                                          (``square.py``)

(9 targets, or K - 1 for a model of K < 10 classes.) ``steps`` and ``n_queries`` change the
budget (100 and 5,000 are the authors'); torchattacks 3.5.1's AutoAttack runs its APGD, APGD-T
and FAB-T for their default 10 steps and rescales Square's schedule.

``reject_class=True`` is for a model whose last logit is a reject score (``RejectingModel``,
``OpenMaxModel``): success is a wrong class that is not rejected
(``MisclassificationNotRejected``), and each attack runs its reject-aware form:

    apgd-reject           APGD, loss "reject_dlr" (in place of the cross-entropy)
    apgd-reject-restarts  APGD, loss "reject_dlr", 9 random restarts: the targeted DLR has no
                          reject-aware form, so 9 runs from new starts take the place of the 9
                          targeted runs (seed + 1, so that its draws are not the first run's)
    fab-reject            FAB, reject_class=True, untargeted (FAB-T has no reject-aware form):
                          one run whose every step weighs all boundaries, of the known classes
                          against the larger of z_y and the reject score
    square-reject         Square, loss "reject_margin"

Each attack is given the images that no attack before it broke (the authors' code), so an image
costs the later attacks nothing once broken. An image already adversarial at x counts as broken
by the first attack, which returns it as x at one query (the authors' code sets such images
aside before attacking: the robust accuracy is the same). x_adv is, per image, the image of the attack
that broke it, x where robust.

info: "attacks" the names above, in order; "broken_by" (N,) int64: the index of the attack that
broke each image, -1 where robust; "robust_accuracy": after each attack, a list of floats,
non-increasing; "queries": per attack, (N,) int64 (0 for the images it was not run on);
"seconds": per attack. Queries per image: the sum over the attacks (each asks for the logits at
x again), plus 1 when y is defaulted. x, x_adv: (N, C, H, W).
"""

import math
import time
from dataclasses import dataclass

from nnscratch.attacks.apgd import APGD
from nnscratch.attacks.base import Attack, AttackResult, perturbation_norms
from nnscratch.attacks.criteria import MisclassificationNotRejected
from nnscratch.attacks.fab import FAB
from nnscratch.attacks.square import Square
from nnscratch.backend import get_array_module
from nnscratch.checks import check_choice, check_flag, check_integer, check_real, check_seed

TARGETS = 9                  # target classes of APGD-T and FAB-T, the authors' standard


@dataclass
class WorstCase:
    """The per-image worst case over several attacks' results on N images (``worst_case``).

    robust:    (N,) bool: every attack failed on the image
    broken_by: (N,) int64: the index (in the results) of the first attack that succeeded, -1
               where robust
    x_adv:     (N, C, H, W): that attack's image, x where robust
    queries:   (N,) int64: the attacks' queries, summed

    Not an ``AttackResult``: it is a verdict over attacks, each with its own target, criterion
    and info, not one attack's output (``AutoAttack`` turns it into one).
    """

    robust: object
    broken_by: object
    x_adv: object
    queries: object

    @property
    def robust_accuracy(self):
        """The fraction of images robust to every attack (for correctly labelled, unbroken
        images: the accuracy under the worst case of the attacks)."""
        return float(self.robust.mean()) if len(self.robust) else math.nan


def worst_case(results, x):
    """Combine ``results`` (AttackResults, in the order the attacks ran) of attacks on the same
    images x (N, C, H, W), with the same labels, into a ``WorstCase``: an image is robust only
    if every attack failed on it. The results cannot show their labels; their shapes are
    checked against x's."""
    if not results:
        raise ValueError("worst_case needs at least one AttackResult")
    for i, result in enumerate(results):
        if tuple(result.x_adv.shape) != tuple(x.shape) or tuple(result.success.shape) != (
                len(x),):
            raise ValueError(f"the results must be on the same images x {tuple(x.shape)}: "
                             f"result {i} has x_adv {tuple(result.x_adv.shape)} and success "
                             f"{tuple(result.success.shape)}")
    xp = get_array_module(x)
    robust = xp.ones(len(x), dtype=bool)
    broken_by = xp.full(len(x), -1, dtype=xp.int64)
    x_adv, queries = x.copy(), xp.zeros(len(x), dtype=xp.int64)
    for i, result in enumerate(results):
        first = robust & result.success                    # broken here and by none before
        broken_by[first], x_adv[first] = i, result.x_adv[first]
        robust &= ~result.success
        queries += result.queries
    return WorstCase(robust, broken_by, x_adv, queries)


def on_robust(attack, model, x, y, robust):
    """``attack``'s AttackResult on all N images x (N, C, H, W) with labels y (N,), run on the
    images ``robust`` (N,) bool only: the others are failed, left as x, at no query."""
    xp = get_array_module(x)
    idx = xp.flatnonzero(robust)
    x_adv, success = x.copy(), xp.zeros(len(x), dtype=bool)
    queries = xp.zeros(len(x), dtype=xp.int64)
    if idx.size:
        part = attack.generate(model, x[idx], y[idx])
        x_adv[idx], success[idx], queries[idx] = part.x_adv, part.success, part.queries
    return AttackResult(x_adv, success, perturbation_norms(x, x_adv), queries)


class AutoAttack(Attack):
    """Croce & Hein's AutoAttack in the ``norm`` ball of radius ``eps`` (module docstring)."""

    can_target = False

    def __init__(self, eps, norm="linf", version="standard", seed=0, reject_class=False,
                 steps=100, n_queries=5000):
        self.eps = check_real(eps, "eps", positive=True)
        self.norm = check_choice(norm, "norm", ("linf", "l2"))
        self.version = check_choice(version, "version", ("standard",))
        self.seed = check_seed(seed)
        self.reject_class = check_flag(reject_class, "reject_class")
        self.steps = check_integer(steps, "steps")
        self.n_queries = check_integer(n_queries, "n_queries")

    def sequence(self):
        """[(name, attack)]: the attacks of the version, in the order they run."""
        eps, norm, steps, seed = self.eps, self.norm, self.steps, self.seed
        if not self.reject_class:
            return [("apgd-ce", APGD(eps, norm, loss="ce", steps=steps, seed=seed)),
                    ("apgd-t", APGD(eps, norm, loss="dlr", targeted=True, steps=steps,
                                    n_target_classes=TARGETS, seed=seed)),
                    ("fab-t", FAB(eps, norm, steps=steps, targeted=True,
                                  n_target_classes=TARGETS, seed=seed)),
                    ("square", Square(eps, norm, n_queries=self.n_queries, rescale=False,
                                      seed=seed))]
        return [("apgd-reject", APGD(eps, norm, loss="reject_dlr", steps=steps, seed=seed)),
                ("apgd-reject-restarts", APGD(eps, norm, loss="reject_dlr", steps=steps,
                                              restarts=TARGETS, seed=seed + 1)),
                ("fab-reject", FAB(eps, norm, steps=steps, reject_class=True, seed=seed)),
                ("square-reject", Square(eps, norm, n_queries=self.n_queries,
                                         loss="reject_margin", rescale=False, seed=seed))]

    def success_criterion(self, y, target):
        if self.reject_class:
            return MisclassificationNotRejected(y)
        return super().success_criterion(y, target)

    def run(self, oracle, x):
        xp = get_array_module(x)
        names, results, accuracy, seconds = [], [], [], []
        robust = xp.ones(len(x), dtype=bool)
        for name, attack in self.sequence():
            began = time.perf_counter()
            results.append(on_robust(attack, oracle.model, x, oracle.y, robust))
            robust &= ~results[-1].success
            accuracy.append(float(robust.mean()) if len(x) else math.nan)     # syncs a GPU
            seconds.append(time.perf_counter() - began)
            names.append(name)
        worst = worst_case(results, x)
        oracle.queries += worst.queries
        return worst.x_adv, ~worst.robust, {
            "attacks": names, "broken_by": worst.broken_by, "robust_accuracy": accuracy,
            "queries": [result.queries for result in results], "seconds": seconds}
