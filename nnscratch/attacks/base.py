"""What every attack shares: the result, the checks of ``generate``, counted model calls, and
the settings. The attack contract::

    attack = FGSM(eps=0.3)                                  hyper-parameters, checked here
    attack.settings()                                       {"eps": 0.3, ...}, JSON-able
    result = attack.generate(model, x, y=None, target=None)
    result.x_adv, result.success, result.norms, result.queries, result.target, result.info

Success is a criterion object (``criteria.py``); the normalisation of a gradient and the
projection into an eps-ball are in ``norms.py``.

``model`` is anything with the model interface (``nnscratch.model.Model``): an attack asks it for
predictions and input gradients and never looks at its layers, so the same attack serves a
defended model. Every array an attack makes comes from the input's array module, so attacks run
on NumPy and on CuPy alike.
"""

import inspect
import math
from dataclasses import dataclass, field

import numpy as np

from nnscratch.attacks.criteria import default_criterion
from nnscratch.backend import get_array_module, to_numpy
from nnscratch.checks import check_labels, check_real
from nnscratch.model.interface import check_image_batch


@dataclass
class AttackResult:
    """What ``Attack.generate`` returns; every array has N rows, on the input's device.

    x_adv:   (N, C, H, W) adversarial images, x's dtype, in [0, 1]
    success: (N,) bool: the attack's criterion (default: predicted class != y, untargeted, or
             == target, targeted; see ``criteria.py``)
    norms:   {"l0", "l0_pixels", "l1", "l2", "linf"}, each (N,): norms of x_adv - x per image
             (see ``perturbation_norms``)
    queries: (N,) int64: model calls per image (see ``Oracle``)
    target:  (N,) target classes of a targeted attack, else None
    info:    attack-specific extras, documented by each attack (e.g. "failure", "w")
    """

    x_adv: object
    success: object
    norms: dict
    queries: object
    target: object = None
    info: dict = field(default_factory=dict)

    @property
    def success_rate(self):
        """Fraction of images on which the attack succeeded (nan for none)."""
        return float(self.success.mean()) if len(self.success) else math.nan


def perturbation_norms(x, x_adv):
    """{"l0", "l0_pixels", "l1", "l2", "linf"} of delta = x_adv - x per image, each (N,);
    x, x_adv (N, C, H, W).

    l0 is the number of changed values (channels counted separately), l0_pixels the number of
    changed pixel positions (all C channels of a position count once: what OnePixel and JSMA
    are measured in), both int64 counts; the others are in x's dtype."""
    xp = get_array_module(x)
    changed = x_adv - x != 0                                      # (N, C, H, W)
    delta = (x_adv - x).reshape(len(x), -1)                       # (N, C*H*W)
    size = abs(delta)
    return {"l0": changed.reshape(len(x), -1).sum(axis=1).astype(xp.int64),
            "l0_pixels": changed.any(axis=1).reshape(len(x), -1).sum(axis=1).astype(xp.int64),
            "l1": size.sum(axis=1),
            "l2": xp.sqrt((delta * delta).sum(axis=1)),
            "linf": size.max(axis=1) if delta.shape[1] else xp.zeros(len(x), dtype=x.dtype)}


# ------------------------------------------------------------------ checks of hyper-parameters

def check_eps(value, what="eps"):
    """A perturbation size: a finite number >= 0 (0 leaves the images unchanged)."""
    return check_real(value, what)


# ------------------------------------------------------------------ checks of generate's inputs

def check_attack_images(x):
    """x must be float images (N, C, H, W) in [0, 1]: attacks clip to that range, so an image
    outside it (normalised data, say) would be silently changed. Returns x's array module.
    The range check reads the values once per ``generate`` (one device sync on a GPU)."""
    xp = check_image_batch(x)
    if x.size:
        low, high = float(x.min()), float(x.max())
        if not (0 <= low and high <= 1):     # False for NaN too
            raise ValueError(f"x must have values in [0, 1] (attacks clip to that range), got "
                             f"values from {low} to {high}")
    return xp


# ------------------------------------------------------------------ the model, as attacks see it

class Oracle:
    """The model as an attack uses it, with every call counted per image in ``queries`` (N,).

    Counting convention: each call counts one query for each row of ``x`` it is asked about,
    whatever it asks (a prediction, a gradient, a Jacobian). ``idx`` says which of the N images
    the rows of ``x`` are: an index array (n,), or ``slice(None)`` for all of them. An index may
    repeat (several candidate images made from one image, as the query attacks ask): each row is
    counted, with a bincount, where ``queries[idx] += 1`` would count a repeated index once.

    ``y`` (N,) and ``target`` (N,) or None are the labels of the loss (``gradient``);
    ``criterion`` decides success (``is_adversarial``), by default ``Misclassification(y)``, or
    ``TargetedMisclassification(target)`` when a target is given.
    """

    def __init__(self, model, y, target, queries, criterion=None):
        self.model, self.y, self.target, self.queries = model, y, target, queries
        self.criterion = default_criterion(y, target) if criterion is None else criterion

    def count(self, idx):
        """One query for each row that ``idx`` names (repeats counted, see the class)."""
        if isinstance(idx, slice):
            self.queries[idx] += 1
        else:
            xp = get_array_module(self.queries)
            self.queries += xp.bincount(xp.asarray(idx), minlength=len(self.queries))

    def gradient(self, x, idx=slice(None)):
        """The gradient to ascend, like x: grad of L(x, y) (untargeted, away from y), or minus
        grad of L(x, target) (targeted, towards the target); L the cross-entropy."""
        self.count(idx)
        if self.target is None:
            return self.model.loss_gradient(x, self.y[idx])[1].astype(x.dtype, copy=False)
        return -self.model.loss_gradient(x, self.target[idx])[1].astype(x.dtype, copy=False)

    def is_adversarial(self, x, idx=slice(None)):
        """(n,) bool: the criterion on the logits of x (n, C, H, W), the rows ``idx``."""
        self.count(idx)
        return self.criterion(self.model.logits(x), idx)

    def logits(self, x, idx=slice(None)):
        """The logits (n, K) of x (n, C, H, W)."""
        self.count(idx)
        return self.model.logits(x)

    def probabilities(self, x, idx=slice(None)):
        """The class probabilities (n, K) of x (n, C, H, W)."""
        self.count(idx)
        return self.model.predict_proba(x)

    def jacobian(self, x, idx=slice(None)):
        """dz_k/dx (n, K, C, H, W) for every class k: one query per row (K pullbacks of one
        forward pass)."""
        self.count(idx)
        return self.model.jacobian(x)

    def logit_gradient(self, x, w, idx=slice(None)):
        """The logits z (n, K) and d(sum w * z)/dx (like x), w (n, K): ``model.logit_gradient``."""
        self.count(idx)
        return self.model.logit_gradient(x, w)

    def loss_gradient(self, x, labels, idx=slice(None), mc_seed=None):
        """The cross-entropies (n,) at ``labels`` (n,) and their gradient (like x):
        ``model.loss_gradient``, unsigned (``gradient`` is the signed one to ascend); with
        ``mc_seed``, one pass with dropout on (one MC-dropout sample)."""
        self.count(idx)
        return self.model.loss_gradient(x, labels, mc_seed=mc_seed)


class Attack:
    """Base class: ``generate`` checks its inputs once and calls ``run``.

    A subclass sets ``self.targeted`` in its constructor (checked there, with every other
    hyper-parameter, each kept in the attribute of its parameter's name: ``settings`` reads
    them) and implements ``run(oracle, x) -> (x_adv, success, info)``; an attack that takes no
    target at all sets the class attribute ``can_target = False``; one that, targeted without a
    target, runs over the best classes other than y (APGD-T, FAB-T) sets
    ``targets_best_classes = True``. Success is the oracle's
    criterion, ``success_criterion(y, target)``.

    ``generate`` assumes one result row per input, a caller-given target and a y that costs a
    query when defaulted. An attack for which that does not hold (HotCold picks its targets and
    returns rows per target; FoolingImages ignores y) overrides ``generate`` and calls ``check``
    and ``result`` itself.
    """

    targeted = False
    can_target = True           # False: untargeted only, refuse a target with that message
    targets_best_classes = False    # True: targeted without a target tries the best classes
    objects = ()                # constructor parameters that are objects, not settings

    def settings(self):
        """The constructor's hyper-parameters, {name: value} (scikit-learn's ``get_params``):
        every parameter of ``__init__`` but those named in ``objects`` (a detector, start images:
        things the attack works with, not numbers that set it), read from the attribute of the
        same name, as checked (a default worked out from others, like PGD's step, is given as
        the value it took). Numbers, strings, flags and None, so JSON-able; and
        ``type(a)(**a.settings(), **{name: getattr(a, name) for name in a.objects})`` builds an
        attack with the same settings."""
        names = [name for name in inspect.signature(type(self).__init__).parameters
                 if name != "self" and name not in self.objects]
        return {name: getattr(self, name) for name in names}

    def success_criterion(self, y, target):
        """The criterion ``generate`` gives the oracle (``criteria.py``): by default
        ``Misclassification(y)``, or ``TargetedMisclassification(target)`` when targeted."""
        return default_criterion(y, target)

    def check(self, x, y, target):
        """Check ``generate``'s inputs, before any model call: x (N, C, H, W) floating in
        [0, 1]; y None or (N,) integers; target (N,) integers if the attack is targeted, else
        None. Returns x's array module."""
        name = type(self).__name__
        xp = check_attack_images(x)
        if y is not None:
            check_labels(y, len(x), "y")
        if self.targeted:
            if target is None and self.targets_best_classes:
                return xp
            if target is None:
                raise ValueError(f"{name} is targeted: it needs target, the class (N,) each "
                                 "image should reach")
            check_labels(target, len(x), "target")
        elif target is not None:
            if not self.can_target:
                raise ValueError(f"target was given but {name} is untargeted only")
            raise ValueError(f"target was given but {name} is untargeted: "
                             f"pass targeted=True to {name}(...)")
        return xp

    def result(self, x_ref, x_adv, success, queries, target, info):
        """The ``AttackResult``, with the norms of x_adv - x_ref (x_ref (rows, C, H, W): the
        input each row of x_adv comes from, or the image it started from)."""
        return AttackResult(x_adv, success, perturbation_norms(x_ref, x_adv), queries, target,
                            info)

    def generate(self, model, x, y=None, target=None):
        """Attack images ``x`` (N, C, H, W) in [0, 1], labelled ``y`` (N,) (default: the model's
        predictions, one query per image), towards ``target`` (N,) if the attack is targeted.
        Never modifies x; x_adv keeps x's dtype and array module. Returns an ``AttackResult``."""
        xp = self.check(x, y, target)
        queries = xp.zeros(len(x), dtype=xp.int64)
        if y is None:
            y = model.predict(x)
            queries += 1
        if target is not None and len(x) and bool((target == y).any()):
            raise ValueError("target must differ from y (the true or predicted class) for "
                             "every image")
        oracle = Oracle(model, y, target, queries, self.success_criterion(y, target))
        x_adv, success, info = self.run(oracle, x)
        return self.result(x, x_adv, success, queries, target, info)

    def run(self, oracle, x):
        raise NotImplementedError


def failure_reasons(success, zero_gradient, otherwise):
    """(N,) host strings: "" where the attack succeeded, "zero gradient" where the gradient was
    exactly zero (nothing to follow), ``otherwise`` for the remaining failures."""
    success, zero_gradient = to_numpy(success), to_numpy(zero_gradient)
    return np.where(success, "", np.where(zero_gradient, "zero gradient", otherwise))
