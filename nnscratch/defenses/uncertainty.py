"""MC-dropout uncertainty with a crop-vote check in the uncertain middle: Alshemali, Graham &
Kalita, "Toward Robust Image Classification" (section 3, Algorithm 1).

For each image x, S stochastic passes with dropout on give logits z_1(x) .. z_S(x) (K,) and
probabilities p_s = softmax(z_s). Then

    provisional class  c = argmax_k mean_s z_s,k           ("the mean of the logit vector")
    uncertainty        u = std_s p_s,c                      (statistic="provisional")
                       u = mean_k std_s p_s,k               (statistic="mean")

and, with thresholds low <= high,

    u < low            -> stage 0: clean, label c
    low <= u <= high   -> stage 1: the five resized crops vote (``crops.CropResizeVote``):
                          label c if at least ``votes`` of them are classified c, else -1
    u > high           -> stage 2: adversarial, label -1

``UncertaintyCropDetector`` runs this (fit / decide / predict / score); ``mc_uncertainty``
computes (u, c); ``information_gain_thresholds`` picks (low, high) from labelled scores.

Choices where the paper is silent:
- "the standard deviation of the predictions": of the softmax probability of the provisional
  class (default), or the mean over classes of the per-class standard deviations
  (statistic="mean"). Population standard deviation (ddof = 0) over the S passes.
- S = ``n_samples`` = 50 passes (the paper says N passes without a number).
- The thresholds, "adjusted based on the information gain": we take (low, high) among
  candidate thresholds (quantiles of the scores) maximising the information gain of the
  three bins u < low, low <= u <= high, u > high about the clean/adversarial label
  (``information_gain_thresholds``), on the uncertainties of the clean and adversarial
  images given to ``fit``. Ties go to the smallest low, then the smallest high.
- The crops are classified by ``model.predict`` (eval mode, dropout off), each compared with
  the provisional class c; ``fit``'s y may be None and is otherwise only checked (the
  thresholds need only the clean/adversarial label; the crop stage plays no part in them).
- One random generator seeded with ``seed`` drives all passes (``model.mc_logits``), so a
  result is reproducible for the same batch on one backend; an image's dropout masks depend on
  its position in the batch, as they would in any batched MC-dropout run.
"""

from dataclasses import dataclass

import numpy as np

from nnscratch.backend import get_array_module, to_numpy
from nnscratch.defenses.base import Defence
from nnscratch.defenses.crops import CropResizeVote, check_vote_count
from nnscratch.checks import check_choice, check_integer, check_labels, check_real, check_seed
from nnscratch.model import Model
from nnscratch.ops import softmax

STATISTICS = ("provisional", "mean")


def mc_passes(model, x, n_samples, seed):
    """Logits of ``n_samples`` >= 2 dropout passes (S, N, K), refused when all passes agree.

    A model without (active) dropout gives S identical passes and so no uncertainty at all;
    that is detected from the logits (a defence may not look at layers) and is an error.
    """
    if not isinstance(model, Model):
        raise TypeError(f"MC-dropout uncertainty takes a model with the model interface "
                        f"(nnscratch.model.Model), got {type(model).__name__}")
    n_samples = check_integer(n_samples, "n_samples", minimum=2)
    z = model.mc_logits(x, n_samples, seed)                             # checks x
    if z.shape[1] and bool((z == z[0]).all()):
        raise ValueError(f"the model gave {n_samples} identical dropout passes: MC-dropout "
                         "uncertainty needs a model with dropout (e.g. "
                         "zoo.build('lenet', dropout=0.5))")
    return z


def mc_uncertainty(model, x, n_samples=50, seed=0, statistic="provisional"):
    """Alshemali et al.'s stochastic prediction and uncertainty (module docstring).

    x: (N, C, H, W). Returns (uncertainty (N,) in the logits' dtype, provisional (N,) int64).
    statistic: "provisional" (std of the provisional class's probability over the passes) or
    "mean" (mean over classes of the per-class std). ValueError for a model without dropout.
    """
    check_choice(statistic, "statistic", STATISTICS)
    z = mc_passes(model, x, n_samples, seed)                            # (S, N, K)
    xp = get_array_module(z)
    provisional = z.mean(axis=0).argmax(axis=1).astype(xp.int64)        # (N,)
    p = softmax(z)                                                      # (S, N, K)
    if statistic == "mean":
        return p.std(axis=0).mean(axis=1), provisional
    p_provisional = p[:, xp.arange(z.shape[1]), provisional]            # (S, N)
    return p_provisional.std(axis=0), provisional


def entropy_bits(positives, total):
    """Binary entropy (bits) of bins holding ``positives`` of ``total`` items (0 for empty)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(total > 0, positives / np.maximum(total, 1), 0.0)
        terms = [np.where(a > 0, -a * np.log2(np.where(a > 0, a, 1.0)), 0.0) for a in (q, 1 - q)]
    return terms[0] + terms[1]


def information_gain_thresholds(scores, is_adversarial, candidates=256):
    """(low, high), low <= high, maximising the information gain of three bins about the label.

    scores: (N,) finite reals; is_adversarial: (N,) bool (or 0/1), both classes present.
    candidates: the number of candidate thresholds, taken as the distinct values of the
    scores' quantiles at ``candidates`` evenly spaced levels from 0 to 1 (so the minimum and
    the maximum are among them: a bin may be empty), or a 1-D array of explicit thresholds.

        IG(low, high) = H(Y) - sum_b (n_b / N) H(Y | bin b),
        bins: u < low,  low <= u <= high,  u > high;   H in bits

    Vectorised with cumulative counts: with the scores sorted, #{u < t} and #{u <= t} for every
    candidate t come from ``searchsorted``; the middle bin of (t_i, t_j) is #{u <= t_j} -
    #{u < t_i}: an (m, m) table, O(N log N + m^2) work. Ties go to the smallest low, then the
    smallest high. Runs on the host (NumPy): a fit step on N scalars.
    """
    scores = to_numpy(scores)
    labels = to_numpy(is_adversarial)
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(f"scores and is_adversarial must be 1-D of the same length, got "
                         f"shapes {scores.shape} and {labels.shape}")
    if not (np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)):
        raise ValueError(f"scores must be real numbers, got dtype {scores.dtype}")
    if labels.dtype != bool and not (labels.size and np.isin(labels, (0, 1)).all()):
        raise ValueError("is_adversarial must be booleans (or 0/1)")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf")
    labels = labels.astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("information_gain_thresholds needs clean and adversarial scores; "
                         f"got {labels.sum()} adversarial of {labels.size}")
    if isinstance(candidates, (int, np.integer)) and not isinstance(candidates, bool):
        levels = np.linspace(0, 1, check_integer(candidates, "candidates", minimum=2))
        thresholds = np.unique(np.quantile(scores.astype(np.float64), levels))
    else:
        thresholds = np.unique(np.asarray(candidates, dtype=np.float64))
        if thresholds.ndim != 1 or not thresholds.size or not np.isfinite(thresholds).all():
            raise ValueError("candidates must be an integer or a non-empty 1-D array of "
                             "finite thresholds")

    def counts(values, side):                                          # #{v < t} or #{v <= t}
        return np.searchsorted(np.sort(values), thresholds, side=side).astype(np.float64)

    pos, neg = scores[labels], scores[~labels]
    below_pos, below_neg = counts(pos, "left"), counts(neg, "left")     # u < t_i     (m,)
    upto_pos, upto_neg = counts(pos, "right"), counts(neg, "right")     # u <= t_j    (m,)
    n_pos, n = float(len(pos)), float(len(scores))
    mid_pos = upto_pos[None, :] - below_pos[:, None]                    # (m, m): [t_i, t_j]
    mid_all = (upto_pos + upto_neg)[None, :] - (below_pos + below_neg)[:, None]
    low_all = (below_pos + below_neg)[:, None]
    high_all = (n - upto_pos - upto_neg)[None, :]
    conditional = (low_all * entropy_bits(below_pos[:, None], low_all)
                   + mid_all * entropy_bits(mid_pos, mid_all)
                   + high_all * entropy_bits((n_pos - upto_pos)[None, :], high_all)) / n
    gain = entropy_bits(np.array(n_pos), np.array(n)) - conditional
    gain[np.tril_indices(len(thresholds), -1)] = -np.inf                # low <= high only
    i, j = np.unravel_index(np.argmax(gain), gain.shape)
    return float(thresholds[i]), float(thresholds[j])


@dataclass
class Decision:
    """What ``UncertaintyCropDetector.decide`` found for each of N images.

    label (N,) int64: final label, -1 = adversarial          uncertainty (N,)
    provisional (N,) int64: argmax of the mean MC logits     votes: the k of the k-of-5 rule
    stage (N,) int64: 0 = u < low (clean), 1 = crop vote, 2 = u > high (adversarial)
    agreements (N,) int64: crops agreeing with the provisional class, -1 where no vote ran
    """

    label: object
    uncertainty: object
    provisional: object
    stage: object
    agreements: object
    votes: int

    def labels(self, votes):
        """The final labels under a k-of-5 rule with k = ``votes``, from the stored stages and
        agreements (nothing is recomputed)."""
        votes = check_vote_count(votes, "votes")
        xp = get_array_module(self.provisional)
        accepted = (self.stage == 0) | ((self.stage == 1) & (self.agreements >= votes))
        return xp.where(accepted, self.provisional, -1).astype(xp.int64)


class UncertaintyCropDetector(Defence):
    """Alshemali et al.'s detector: MC-dropout uncertainty, crops in the uncertain middle.

    fit(model, x, y, x_adv) -> self      decide(x) -> Decision      predict(x) -> (N,) or -1
    score(x) -> (N,) the uncertainty (higher = more likely adversarial)
    low, high: the thresholds; None (both) = chosen at fit by ``information_gain_thresholds``.
    """

    def __init__(self, n_samples=50, low=None, high=None, votes=4, crop=24,
                 statistic="provisional", seed=0):
        self.n_samples = check_integer(n_samples, "UncertaintyCropDetector: n_samples", minimum=2)
        if (low is None) != (high is None):
            raise ValueError("UncertaintyCropDetector: give both low and high, or neither "
                             "(then fit chooses them)")
        if low is not None:
            low = check_real(low, "UncertaintyCropDetector: low")
            high = check_real(high, "UncertaintyCropDetector: high")
            if low > high:
                raise ValueError(f"UncertaintyCropDetector: low={low} exceeds high={high}")
        self.low, self.high, self.fixed_thresholds = low, high, low is not None
        self.votes = check_vote_count(votes, "UncertaintyCropDetector: votes")
        self.crop = check_integer(crop, "UncertaintyCropDetector: crop")
        self.statistic = check_choice(statistic, "UncertaintyCropDetector: statistic", STATISTICS)
        self.seed = check_seed(seed, "UncertaintyCropDetector: seed")

    def __repr__(self):
        return (f"UncertaintyCropDetector(n_samples={self.n_samples}, low={self.low}, "
                f"high={self.high}, votes={self.votes}, crop={self.crop}, "
                f"statistic={self.statistic!r}, seed={self.seed})")

    def uncertainty(self, x, model=None):
        """(uncertainty (N,), provisional (N,)) with this detector's settings, on the fitted
        model (or on ``model``)."""
        return mc_uncertainty(self.model if model is None else model, x, self.n_samples,
                              self.seed, self.statistic)

    def fit(self, model, x, y, x_adv=None):
        """Store ``model``; unless low and high were given, choose them by information gain on
        the uncertainties of clean ``x`` (negatives) and adversarial ``x_adv`` (positives).

        x, x_adv: (N, C, H, W), (M, C, H, W); y: (N,) int labels of x, or None (checked when
        given, otherwise unused: the thresholds need only the clean/adversarial label).
        The defences' ``fit`` convention (``base.py``). Returns self.
        """
        self.check_fit_arguments(model, x_adv, needs_adv=None)
        self.check_images(x, model)
        if y is not None:
            check_labels(y, len(x))
        if not self.fixed_thresholds:
            if x_adv is None:
                raise ValueError("UncertaintyCropDetector.fit needs x_adv to choose low and "
                                 "high (or give both thresholds to the constructor)")
            u_clean, _ = self.uncertainty(x, model)
            u_adv, _ = self.uncertainty(x_adv, model)
            scores = np.concatenate([to_numpy(u_clean), to_numpy(u_adv)])
            is_adversarial = np.repeat([False, True], [len(x), len(x_adv)])
            self.low, self.high = information_gain_thresholds(scores, is_adversarial)
        self.model = model
        return self

    fit_call = "fit(model, x, y, x_adv)"

    def decide(self, x):
        """Algorithm 1 on every image of x (N, C, H, W): a ``Decision``. Crops run only for
        the images whose uncertainty lies in [low, high] (the model's ``predict`` on them)."""
        self.check_fitted()
        self.check_images(x)
        u, provisional = self.uncertainty(x)
        xp = get_array_module(u)
        stage = xp.where(u < self.low, 0, xp.where(u > self.high, 2, 1)).astype(xp.int64)
        agreements = xp.full(len(x), -1, dtype=xp.int64)
        middle = xp.nonzero(stage == 1)[0]
        if len(middle):
            vote = CropResizeVote(self.model, self.crop, self.votes)
            agreements[middle] = vote.agreements(x[middle], provisional[middle])
        decision = Decision(None, u, provisional, stage, agreements, self.votes)
        decision.label = decision.labels(self.votes)
        return decision

    def predict(self, x):
        """(N,) int64: the provisional label, or -1 where Algorithm 1 says adversarial."""
        return self.decide(x).label

    def score(self, x):
        """(N,) the MC-dropout uncertainty: higher = more likely adversarial."""
        self.check_fitted()
        self.check_images(x)
        return self.uncertainty(x)[0]
