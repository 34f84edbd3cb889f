"""Alshemali et al.'s Algorithm 1: the MC-dropout uncertainty against a per-image computation
from the model's dropout passes, the refusal of a model without dropout, the information-gain
thresholds against a brute-force search and on scores with a known split, the three stages of
the detector and its k-of-5 labels, detection of FGSM images on digits, backends, bad input."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from nnscratch import data
from nnscratch.attacks import FGSM
from nnscratch.backend import to_numpy
from nnscratch.defenses.crops import CropResizeVote
from nnscratch.defenses.uncertainty import (Decision, UncertaintyCropDetector,
                                            information_gain_thresholds, mc_uncertainty)
from nnscratch.ops import softmax

from test_model import inputs, small_model


def dropout_model(xp=np):
    """test_model's small network (input (2, 7, 8), 4 classes) with dropout 0.5, float64."""
    return small_model(xp, dropout=0.5)


# ------------------------------------------------------------------ mc_uncertainty

def test_uncertainty_is_computed_from_the_dropout_passes_image_by_image():
    model, x = dropout_model(), inputs(np, n=6)
    z = model.mc_logits(x, 20, seed=3)                                  # (S, N, K)
    u, provisional = mc_uncertainty(model, x, n_samples=20, seed=3)
    u_mean, provisional_mean = mc_uncertainty(model, x, 20, 3, statistic="mean")
    for n in range(6):
        c = int(np.argmax(z[:, n].mean(axis=0)))
        p = softmax(z[:, n])                                            # (S, K)
        assert provisional[n] == provisional_mean[n] == c
        assert u[n] == pytest.approx(np.sqrt(np.mean((p[:, c] - p[:, c].mean()) ** 2)),
                                     rel=1e-12)
        assert u_mean[n] == pytest.approx(np.mean(np.std(p, axis=0)), rel=1e-12)
    assert u.shape == (6,) and provisional.dtype == np.int64 and (u > 0).all()


def test_uncertainty_is_deterministic_given_the_seed_and_on_every_backend(xp):
    model, x = dropout_model(xp), inputs(xp, n=5)
    before = to_numpy(x).copy()
    u1, c1 = mc_uncertainty(model, x, 10, seed=1)
    u2, c2 = mc_uncertainty(model, x, 10, seed=1)
    u3, _ = mc_uncertainty(model, x, 10, seed=2)
    assert type(u1) is type(x) and u1.dtype == x.dtype
    np.testing.assert_array_equal(to_numpy(u1), to_numpy(u2))
    np.testing.assert_array_equal(to_numpy(c1), to_numpy(c2))
    assert not np.array_equal(to_numpy(u1), to_numpy(u3))
    np.testing.assert_array_equal(to_numpy(x), before)
    if xp is not np:                         # the same generator stream as NumPy's here
        np.testing.assert_allclose(to_numpy(u1), mc_uncertainty(dropout_model(), inputs(np, n=5),
                                                                10, seed=1)[0], rtol=1e-12)


def test_a_model_without_dropout_is_refused():
    with pytest.raises(ValueError, match="identical dropout passes.*needs a model with dropout"):
        mc_uncertainty(small_model(np), inputs(np), 5)
    with pytest.raises(ValueError, match="n_samples must be an integer >= 2"):
        mc_uncertainty(dropout_model(), inputs(np), 1)
    with pytest.raises(ValueError, match="statistic must be one of 'provisional', 'mean'"):
        mc_uncertainty(dropout_model(), inputs(np), 5, statistic="max")
    with pytest.raises(TypeError, match="model interface"):
        mc_uncertainty(lambda v: v, inputs(np), 5)


# ------------------------------------------------------------------ information gain

def entropy(labels):
    q = labels.mean() if len(labels) else 0.0
    return 0.0 if q in (0.0, 1.0) else -(q * np.log2(q) + (1 - q) * np.log2(1 - q))


def brute_force_thresholds(scores, labels, candidates):
    """Every pair low <= high of the candidates, image by image: the first best pair."""
    best, best_pair = -np.inf, None
    for i, low in enumerate(candidates):
        for high in candidates[i:]:
            bins = [labels[scores < low], labels[(scores >= low) & (scores <= high)],
                    labels[scores > high]]
            gain = entropy(labels) - sum(len(b) / len(labels) * entropy(b) for b in bins)
            if gain > best + 1e-12:
                best, best_pair = gain, (low, high)
    return best_pair


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thresholds_agree_with_a_brute_force_search(seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=150)
    labels = rng.random(150) < 1 / (1 + np.exp(-3 * scores))
    candidates = np.unique(np.quantile(scores, np.linspace(0, 1, 30)))
    assert information_gain_thresholds(scores, labels, 30) == pytest.approx(
        brute_force_thresholds(scores, labels, candidates), abs=0)
    explicit = np.sort(rng.normal(size=12))
    assert information_gain_thresholds(scores, labels, explicit) == pytest.approx(
        brute_force_thresholds(scores, labels, explicit), abs=0)


def test_thresholds_recover_a_known_split():
    """A pure clean cluster [0, 1), a mixed middle [2, 3] (adversarial, clean, ... alternating,
    starting adversarial and ending clean, so no mixed point can join a pure bin for free)
    and a pure adversarial cluster [4, 5]: low falls in the gap (1, 2], high in [3, 4)."""
    scores = np.concatenate([np.linspace(0, 1, 100, endpoint=False), np.linspace(2, 3, 100),
                             np.linspace(4, 5, 100)])
    labels = np.concatenate([np.zeros(100, bool), np.arange(100) % 2 == 0, np.ones(100, bool)])
    order = np.random.default_rng(0).permutation(300)                 # order must not matter
    for candidates in (256, 16):
        low, high = information_gain_thresholds(scores[order], labels[order], candidates)
        assert 1 < low <= 2 and 3 <= high < 4


def test_an_uninformative_split_still_gives_ordered_thresholds():
    scores = np.arange(20.0)
    low, high = information_gain_thresholds(scores, scores % 2 == 0)
    assert low <= high


@pytest.mark.parametrize("scores, labels, message", [
    (np.arange(5.0), np.zeros(5, bool), "needs clean and adversarial scores"),
    (np.arange(5.0), np.ones(5, bool), "needs clean and adversarial scores"),
    (np.array([0.1, np.nan, 0.3]), np.array([0, 1, 1]), "NaN or inf"),
    (np.arange(5.0), np.zeros(4, bool), "same length"),
    (np.arange(6.0).reshape(2, 3), np.zeros((2, 3), bool), "1-D"),
    (np.arange(3.0), np.array([0, 1, 2]), "booleans"),
])
def test_degenerate_scores_are_refused(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        information_gain_thresholds(scores, labels)


def test_bad_candidates_are_refused():
    scores, labels = np.arange(4.0), np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="candidates must be an integer >= 2"):
        information_gain_thresholds(scores, labels, 1)
    with pytest.raises(ValueError, match="finite thresholds"):
        information_gain_thresholds(scores, labels, np.array([np.inf]))


# ------------------------------------------------------------------ the detector

def thresholds_with_every_stage(model, x, n_samples=10):
    """(low, high) at the 30% and 70% quantiles of x's uncertainties: all stages occur."""
    u = to_numpy(mc_uncertainty(model, x, n_samples, seed=0)[0])
    return float(np.quantile(u, 0.3)), float(np.quantile(u, 0.7))


def test_decide_follows_the_three_stages(xp):
    model, x = dropout_model(xp), inputs(xp, n=30, seed=4)
    before = to_numpy(x).copy()
    low, high = thresholds_with_every_stage(model, x)
    detector = UncertaintyCropDetector(n_samples=10, low=low, high=high, crop=5, votes=3)
    decision = detector.fit(model, x, model.predict(x)).decide(x)
    u, provisional = mc_uncertainty(model, x, 10, seed=0)
    u, provisional = to_numpy(u), to_numpy(provisional)
    stage, agreements = to_numpy(decision.stage), to_numpy(decision.agreements)
    np.testing.assert_array_equal(to_numpy(decision.uncertainty), u)
    np.testing.assert_array_equal(to_numpy(decision.provisional), provisional)
    np.testing.assert_array_equal(stage, np.where(u < low, 0, np.where(u > high, 2, 1)))
    assert set(stage.tolist()) == {0, 1, 2}
    middle = stage == 1
    assert (agreements[~middle] == -1).all()
    vote = CropResizeVote(model, crop=5).agreements(x, xp.asarray(provisional))
    np.testing.assert_array_equal(agreements[middle], to_numpy(vote)[middle])
    expected = np.where((stage == 0) | (middle & (agreements >= 3)), provisional, -1)
    np.testing.assert_array_equal(to_numpy(decision.label), expected)
    for name in ("label", "provisional", "stage", "agreements"):
        value = getattr(decision, name)
        assert type(value) is type(x) and value.dtype == np.int64 and value.shape == (30,)
    np.testing.assert_array_equal(to_numpy(detector.predict(x)), expected)
    np.testing.assert_array_equal(to_numpy(detector.score(x)), u)
    np.testing.assert_array_equal(to_numpy(x), before)


def test_labels_for_every_k_of_5_rule_without_recomputing():
    model, x = dropout_model(), inputs(np, n=30, seed=4)
    low, high = thresholds_with_every_stage(model, x)
    detector = UncertaintyCropDetector(n_samples=10, low=low, high=high, crop=5)
    decision = detector.fit(model, x, model.predict(x)).decide(x)
    np.testing.assert_array_equal(decision.label, decision.labels(4))
    rejected = [(decision.labels(k) == -1).sum() for k in range(1, 6)]
    assert rejected == sorted(rejected)                    # a stricter vote rejects more
    assert (decision.labels(5)[decision.stage == 2] == -1).all()
    assert (decision.labels(1)[decision.stage == 0] == decision.provisional[decision.stage == 0]
            ).all()
    made = Decision(None, np.zeros(3), np.array([2, 3, 1]), np.array([0, 1, 1]),
                    np.array([-1, 2, 4]), 4)
    np.testing.assert_array_equal(made.labels(3), [2, -1, 1])
    np.testing.assert_array_equal(made.labels(2), [2, 3, 1])
    with pytest.raises(ValueError, match="votes must be in 1..5"):
        made.labels(6)


def test_detector_is_deterministic_given_its_seed():
    model, x = dropout_model(), inputs(np, n=12, seed=5)
    a, b, c = (UncertaintyCropDetector(n_samples=8, low=0.01, high=0.1, crop=5, seed=s)
               .fit(model, x, model.predict(x)) for s in (3, 3, 4))
    np.testing.assert_array_equal(a.score(x), b.score(x))
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    assert not np.array_equal(a.score(x), c.score(x))


def test_fitted_thresholds_detect_fgsm_on_digits(small_cnn_on_digits):
    """Fitted on clean test digits and FGSM images of them, the thresholds are ordered, the
    uncertainty separates the two (ROC-AUC about 0.85 here) and the detector rejects far more
    adversarial than clean images."""
    model = small_cnn_on_digits
    x, y = data.load("digits", split="test", limit=200)
    keep = model.predict(x) == y
    x, y = x[keep], y[keep]
    result = FGSM(eps=0.2).generate(model, x, y)
    x_adv = result.x_adv[result.success]
    detector = UncertaintyCropDetector(n_samples=30, crop=6).fit(model, x, y, x_adv)
    assert 0 < detector.low <= detector.high
    unlabelled = UncertaintyCropDetector(n_samples=30, crop=6).fit(model, x, None, x_adv)
    assert (unlabelled.low, unlabelled.high) == (detector.low, detector.high)  # y is not used
    u_clean, u_adv = detector.score(x), detector.score(x_adv)
    auc = roc_auc_score(np.r_[np.zeros(len(x)), np.ones(len(x_adv))], np.r_[u_clean, u_adv])
    assert auc > 0.75
    rejected_adv = (detector.predict(x_adv) == -1).mean()
    rejected_clean = (detector.predict(x) == -1).mean()
    assert rejected_adv > 0.8 and rejected_adv > rejected_clean + 0.2


def test_detector_bad_settings_and_calls():
    model, x = dropout_model(), inputs(np)
    y = model.predict(x)
    with pytest.raises(RuntimeError, match=r"not fitted: call fit\(model, x, y, x_adv\)"):
        UncertaintyCropDetector().predict(x)
    with pytest.raises(RuntimeError, match="not fitted"):
        UncertaintyCropDetector().score(x)
    with pytest.raises(ValueError, match="give both low and high, or neither"):
        UncertaintyCropDetector(low=0.1)
    with pytest.raises(ValueError, match="low=0.2 exceeds high=0.1"):
        UncertaintyCropDetector(low=0.2, high=0.1)
    with pytest.raises(ValueError, match=r"votes must be in 1..5"):
        UncertaintyCropDetector(votes=6)
    with pytest.raises(ValueError, match="statistic must be one of"):
        UncertaintyCropDetector(statistic="var")
    with pytest.raises(ValueError, match="n_samples must be an integer >= 2"):
        UncertaintyCropDetector(n_samples=1)
    with pytest.raises(ValueError, match="needs x_adv"):
        UncertaintyCropDetector().fit(model, x, y)
    with pytest.raises(ValueError, match="identical dropout passes"):
        UncertaintyCropDetector(n_samples=4).fit(small_model(np), x, y, x)
    with pytest.raises(ValueError, match="labels must be integers of shape"):
        UncertaintyCropDetector(low=0.1, high=0.2).fit(model, x, y[:2])
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 2, 7, 8\)"):
        UncertaintyCropDetector(low=0.1, high=0.2).fit(model, x, y).predict(np.zeros((2, 1, 7, 8)))
    with pytest.raises(TypeError, match="model interface"):
        UncertaintyCropDetector().fit(lambda v: v, x, y, x)
    failed = UncertaintyCropDetector(n_samples=4)
    with pytest.raises(ValueError):
        failed.fit(small_model(np), x, y, x)
    with pytest.raises(RuntimeError, match="not fitted"):        # a failed fit leaves it unfitted
        failed.predict(x)
