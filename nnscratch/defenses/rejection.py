"""Reject options behind one contract, and the model view of a rejecting classifier.

Every reject option here (and ``dnr.DeepNeuralRejection`` / ``dnr.NeuralRejection``) follows

    option.fit(model, x, y, x_adv=None, *, x_val)   learn on clean (x, y); set the reject
                                                    threshold on the clean validation images
                                                    x_val for the option's ``reject_rate``
    option.predict(x) -> (N,) int64                 the label, or -1 for "rejected"
    option.score(x) -> (N,)                         higher = more likely rejected

so one evaluation loop serves them all. Thresholds come from ``threshold_for_rate``: reject
when score(x) > t, with t set so that ``reject_rate`` of the clean validation scores lie above
it (Sotgiu et al. 2019: "the score below which 10% of clean samples fall", dnr-notes.md).

``RejectingModel(defence)`` gives a score-based defence (DNR, NR) the model interface: logits
[s_1 .. s_K, theta] (N, K + 1), so argmax == K means "rejected" (max_k s_k < theta) and any
attack that reads logits and their gradients can aim at "network + rejection". It lives here,
not in dnr.py, so that dnr.py imports it and nothing imports dnr.py back.
"""

import numpy as np

from nnscratch.backend import get_array_module, to_numpy
from nnscratch.defenses.wrappers import EvalModeHead
from nnscratch.checks import check_labels, check_real
from nnscratch.model import Model


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


def check_fit_arguments(what, model, x_adv):
    if not isinstance(model, Model):
        raise TypeError(f"{what}.fit takes a model with the model interface, got "
                        f"{type(model).__name__}")
    if x_adv is not None:
        raise ValueError(f"{what} is fitted on clean images only: x_adv must be None")


def negative_max_softmax(z):
    """-max_k softmax(z)_k (N,) float64 from logits z (N, K): -1 / sum_k exp(z_k - max z)."""
    xp = get_array_module(z)
    z = z.astype(xp.float64)
    return -1 / xp.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1)


class SoftmaxThreshold:
    """Reject when the network is unsure: score(x) = -max_k softmax(z(x))_k.

    fit(model, x, y, x_adv=None, *, x_val) -> self: the threshold t = threshold_for_rate(
    score(x_val), reject_rate); predict(x) = argmax z, or -1 where score(x) > t. x and y are
    checked (images, labels) but not used: the only thing learnt is t, from x_val.
    The score is computed in float64 from the logits: a float32 softmax saturates at exactly 1
    for confident images, and the ties at the threshold would then reject fewer than asked.
    """

    def __init__(self, reject_rate=0.1):
        self.reject_rate = check_real(reject_rate, "SoftmaxThreshold: reject_rate", below=1)
        self.model = self.threshold = None

    def __repr__(self):
        return f"SoftmaxThreshold(reject_rate={self.reject_rate})"

    def fit(self, model, x, y, x_adv=None, *, x_val):
        check_fit_arguments("SoftmaxThreshold", model, x_adv)
        model.check_images(x)
        check_labels(y, len(x))
        self.model = model
        self.threshold = threshold_for_rate(self.confidence_score(x_val), self.reject_rate)
        return self

    def check_fitted(self):
        if self.threshold is None:
            raise RuntimeError("SoftmaxThreshold is not fitted: call fit(model, x, y, "
                               "x_val=...) first")

    def confidence_score(self, x):
        return negative_max_softmax(self.model.logits(x))

    def score(self, x):
        """-max softmax probability (N,) float64: higher = more likely rejected."""
        self.check_fitted()
        return self.confidence_score(x)

    def predict(self, x):
        """(N,) int64: the network's class, or -1 where score(x) > threshold."""
        self.check_fitted()
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
    taps); the theta column is constant, its gradient 0.

    ``defence`` must be fitted and provide ``model`` (its network), ``theta``, and
    ``batch_scores_vjp(x) -> (scores (n, K) float64, pullback)`` for one batch.
    Feature taps are the network's own; no dropout mode (``EvalModeHead``): the SVMs describe
    the network in eval mode.
    """

    def __init__(self, defence):
        check_fitted = getattr(defence, "check_fitted", None)
        if check_fitted is None or not hasattr(defence, "batch_scores_vjp"):
            raise TypeError(f"RejectingModel takes a fitted score-based defence (DNR, NR), got "
                            f"{type(defence).__name__}")
        check_fitted()
        super().__init__(defence.model)
        self.defence = defence

    def __repr__(self):
        return f"RejectingModel({self.defence!r})"

    def with_theta(self, scores, x):
        xp = get_array_module(scores)
        theta = xp.full((len(scores), 1), self.defence.theta, dtype=xp.float64)
        return xp.concatenate([scores, theta], axis=1).astype(x.dtype)

    def batch_logits(self, x, rng=None):
        self.refuse_dropout(rng)
        return self.with_theta(self.defence.batch_scores_vjp(x)[0], x)

    def head_vjp(self, x):
        scores, scores_pullback = self.defence.batch_scores_vjp(x)
        return self.with_theta(scores, x), lambda g: scores_pullback(g[:, :-1])


class AtRejectRate:
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
        self.model = self.threshold = None

    def __repr__(self):
        return f"AtRejectRate({self.defence!r}, reject_rate={self.reject_rate})"

    def fit(self, model, x, y, x_adv=None, *, x_val):
        check_fit_arguments("AtRejectRate", model, x_adv)
        self.defence.fit(model, x, y)
        self.model = model
        self.threshold = threshold_for_rate(self.defence.score(x_val), self.reject_rate)
        return self

    def score(self, x):
        """The defence's score (N,): higher = more likely rejected."""
        if self.threshold is None:
            raise RuntimeError("AtRejectRate is not fitted: call fit(model, x, y, x_val=...) "
                               "first")
        return self.defence.score(x)

    def predict(self, x):
        """(N,) int64: the network's class, or -1 where score(x) > threshold."""
        rejected = self.score(x) > self.threshold
        labels = self.model.predict(x)
        xp = get_array_module(labels)
        return xp.where(rejected, -1, labels).astype(xp.int64)
