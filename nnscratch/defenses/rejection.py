"""Reject options behind one contract, and the model view of a rejecting classifier.

Every reject option here (and ``dnr.DeepNeuralRejection`` / ``dnr.NeuralRejection``) follows
the defences' ``fit`` convention (``base.Defence``), with x_val keyword-only:

    option.fit(model, x, y, x_adv=None, *, x_val)   learn on clean (x, y); set the reject
                                                    threshold on the clean validation images
                                                    x_val for the option's ``reject_rate``
    option.predict(x) -> (N,) int64                 the label, or -1 for "rejected"
    option.score(x) -> (N,)                         higher = more likely rejected

so one evaluation loop serves them all. Thresholds come from ``threshold_for_rate``: reject
when score(x) > t, with t set so that ``reject_rate`` of the clean validation scores lie above
it (Sotgiu et al. 2019: the threshold that rejects 10% of the clean samples).

``RejectingModel(defence)`` gives a score-based defence (DNR, NR) the model interface: logits
[s_1 .. s_K, theta] (N, K + 1), so argmax == K means "rejected" (max_k s_k < theta) and any
attack that reads logits and their gradients can aim at "network + rejection". It lives here,
not in dnr.py, so that dnr.py imports it and nothing imports dnr.py back.
"""

import numpy as np

from nnscratch.backend import get_array_module, to_numpy
from nnscratch.defenses.base import Defence
from nnscratch.defenses.wrappers import EvalModeHead
from nnscratch.checks import check_labels, check_real


def threshold_for_rate(scores, rate):
    """The threshold t for "reject when score > t" that rejects ``rate`` of ``scores``.

    scores: (n,) clean scores (any array module), rate in [0, 1]. With m = floor(rate * n) and
    s_(1) <= ... <= s_(n) the sorted scores, t = s_(n - m): exactly m scores lie strictly
    above t when the scores are distinct. Ties at t are accepted (not rejected), so with ties
    the rejected share can fall below ``rate``; it never exceeds it. m = 0 gives t = max(scores)
    (nothing rejected), m = n gives t = -inf (everything rejected). Returns a Python float.
    """
    rate = check_real(rate, "rate")
    if rate > 1:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    scores = np.sort(to_numpy(scores).astype(np.float64).reshape(-1))
    if not scores.size:
        raise ValueError("threshold_for_rate needs at least one score")
    if not np.isfinite(scores).all():
        raise ValueError("threshold_for_rate: the scores contain NaN or inf")
    m = int(np.floor(rate * len(scores)))
    return -np.inf if m == len(scores) else float(scores[len(scores) - m - 1])


def negative_max_softmax(z):
    """-max_k softmax(z)_k (N,) float64 from logits z (N, K): -1 / sum_k exp(z_k - max z)."""
    xp = get_array_module(z)
    z = z.astype(xp.float64)
    return -1 / xp.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1)


class SoftmaxThreshold(Defence):
    """Reject when the network is unsure: score(x) = -max_k softmax(z(x))_k.

    fit(model, x, y, x_adv=None, *, x_val) -> self: the threshold t = threshold_for_rate(
    score(x_val), reject_rate); predict(x) = argmax z, or -1 where score(x) > t. x and y are
    checked (images, labels) but not used: the only thing learnt is t, from x_val.
    The score is computed in float64 from the logits: a float32 softmax saturates at exactly 1
    for confident images, and the ties at the threshold would then reject fewer than asked.
    """

    def __init__(self, reject_rate=0.1):
        self.reject_rate = check_real(reject_rate, "SoftmaxThreshold: reject_rate", below=1)
        self.threshold = None

    def __repr__(self):
        return f"SoftmaxThreshold(reject_rate={self.reject_rate})"

    fit_call = "fit(model, x, y, x_val=...)"

    def fit(self, model, x, y, x_adv=None, *, x_val):
        self.check_fit_arguments(model, x_adv)
        self.check_images(x, model)
        check_labels(y, len(x))
        self.check_images(x_val, model)
        threshold = threshold_for_rate(negative_max_softmax(model.logits(x_val)),
                                       self.reject_rate)
        self.model, self.threshold = model, threshold
        return self

    def score(self, x):
        """-max softmax probability (N,) float64: higher = more likely rejected."""
        self.check_fitted()
        self.check_images(x)
        return negative_max_softmax(self.model.logits(x))

    def predict(self, x):
        """(N,) int64: the network's class, or -1 where score(x) > threshold."""
        self.check_fitted()
        self.check_images(x)
        z = self.model.logits(x)
        xp = get_array_module(z)
        rejected = negative_max_softmax(z) > self.threshold
        return xp.where(rejected, -1, z.argmax(axis=1)).astype(xp.int64)


class RejectingModel(EvalModeHead):
    """A score-based rejecting classifier with the model interface: logits (N, K + 1).

    z(x) = [s_1(x) .. s_K(x), theta]: the defence's K scores, then the constant threshold, so
    argmax z == K exactly when max_k s_k(x) < theta (ties go to the class, as the defence's own
    rule "reject when max_k s_k < theta"). Logits are computed in float64 and cast to x's dtype.
    pullback(g) = the defence's pullback of g[:, :K] (exact: through the SVMs and the network's
    taps, one forward and one backward pass, ``EvalModeHead``); the theta column is constant,
    its gradient 0.

    ``defence`` must be fitted and provide ``model`` (its network), ``theta``, ``layers`` (the
    network's layers it reads) and ``scores_from(taps) -> (scores (n, K) float64, pullback)``
    for one batch's activations {layer: (n, ...)}, the pullback giving {layer: gradient}.
    Feature taps are the network's own; no dropout mode: the SVMs describe the network in eval
    mode.
    """

    def __init__(self, defence):
        if not (isinstance(defence, Defence) and hasattr(defence, "scores_from")):
            raise TypeError(f"RejectingModel takes a fitted score-based defence (DNR, NR), got "
                            f"{type(defence).__name__}")
        defence.check_fitted()
        super().__init__(defence.model)
        self.defence, self.head_taps = defence, tuple(defence.layers)

    def __repr__(self):
        return f"RejectingModel({self.defence!r})"

    def head(self, outputs, x):
        scores, scores_pullback = self.defence.scores_from(outputs)
        xp = get_array_module(scores)
        theta = xp.full((len(scores), 1), self.defence.theta, dtype=xp.float64)
        logits = xp.concatenate([scores, theta], axis=1).astype(x.dtype)
        return logits, lambda g: scores_pullback(g[:, :-1])


class AtRejectRate(Defence):
    """Any fitted score (OpenMax's P(unknown), say) turned into a reject rule at a chosen rate:
    the network's class, or -1 where defence.score(x) > t, with t = threshold_for_rate(
    defence.score(x_val), reject_rate). So that every reject option in a comparison rejects the
    same share of clean validation images (OpenMax's own rule, argmax over K + 1, rejects at no
    chosen rate).

    fit(model, x, y, x_adv=None, *, x_val) fits ``defence`` on (x, y), then sets t.
    """

    def __init__(self, defence, reject_rate=0.1):
        self.defence = defence
        self.reject_rate = check_real(reject_rate, "AtRejectRate: reject_rate", below=1)
        self.threshold = None

    def __repr__(self):
        return f"AtRejectRate({self.defence!r}, reject_rate={self.reject_rate})"

    fit_call = "fit(model, x, y, x_val=...)"

    def fit(self, model, x, y, x_adv=None, *, x_val):
        self.check_fit_arguments(model, x_adv)
        self.defence.fit(model, x, y)
        self.threshold = threshold_for_rate(self.defence.score(x_val), self.reject_rate)
        self.model = model
        return self

    def score(self, x):
        """The defence's score (N,): higher = more likely rejected (it checks x)."""
        self.check_fitted()
        return self.defence.score(x)

    def predict(self, x):
        """(N,) int64: the network's class, or -1 where score(x) > threshold."""
        rejected = self.score(x) > self.threshold
        labels = self.model.predict(x)
        xp = get_array_module(labels)
        return xp.where(rejected, -1, labels).astype(xp.int64)
