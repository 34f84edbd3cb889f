"""The reject options' shared parts: ``threshold_for_rate`` (its rate, its ties, its edges),
``SoftmaxThreshold`` (the rate on its validation images, its float64 score), and
``RejectingModel``, the model interface on [s_1 .. s_K, theta] (its logits against the
defence's decisions, its exact gradient in float64, what it refuses).

Gradient checks: central differences (eps 1e-5) in float64 with ``gradcheck``'s default
tolerances (norm-wise < 1e-7; element-wise |a - b| <= 1e-6 (|a| + |b|) + 1e-9); every entry, or
for the Jacobian three random unit directions."""

import numpy as np
import pytest

from nnscratch.backend import to_numpy
from nnscratch.defenses.dnr import DeepNeuralRejection, NeuralRejection
from nnscratch.defenses.openmax import OpenMax
from nnscratch.defenses.rejection import (AtRejectRate, RejectingModel, SoftmaxThreshold,
                                          threshold_for_rate)
from nnscratch.gradcheck import (assert_gradients_close, check_jacobian, check_logit_gradient,
                                 check_loss_gradient)
from nnscratch.layers import Dense, Flatten
from nnscratch.model import Sequential

from test_defenses_dnr import digits, fitted_dnr, tiny_cnn

# ------------------------------------------------------------------ threshold_for_rate


@pytest.mark.parametrize("n, rate", [(100, 0.1), (1000, 0.1), (37, 0.25), (50, 0.0), (10, 0.55)])
def test_threshold_rejects_floor_of_rate_times_n_distinct_scores(xp, n, rate):
    scores = np.random.default_rng(n).standard_normal(n)
    t = threshold_for_rate(xp.asarray(scores), rate)
    assert isinstance(t, float)
    assert (scores > t).sum() == int(np.floor(rate * n))
    assert abs((scores > t).mean() - rate) < 1 / n + 1e-12


def test_threshold_ties_are_accepted_so_the_rate_is_never_exceeded():
    scores = np.array([0.0] * 5 + [1.0] * 4 + [2.0])        # the 80th percentile sits in a tie
    t = threshold_for_rate(scores, 0.3)
    assert t == 1.0 and (scores > t).mean() == 0.1            # 3 wanted, the tie keeps 2 of them
    assert threshold_for_rate(scores, 0.1) == 1.0


def test_threshold_edges():
    scores = np.array([3.0, 1.0, 2.0])
    assert threshold_for_rate(scores, 0.0) == 3.0             # nothing above the maximum
    assert threshold_for_rate(scores, 1.0) == -np.inf         # everything rejected
    assert threshold_for_rate(scores, 0.34) == 2.0
    with pytest.raises(ValueError, match="rate must be in \\[0, 1\\]"):
        threshold_for_rate(scores, 1.5)
    with pytest.raises(ValueError, match="rate must be a finite number >= 0"):
        threshold_for_rate(scores, -0.1)
    with pytest.raises(ValueError, match="at least one score"):
        threshold_for_rate(np.zeros(0), 0.1)
    with pytest.raises(ValueError, match="NaN or inf"):
        threshold_for_rate(np.array([0.0, np.nan]), 0.1)


# ------------------------------------------------------------------ SoftmaxThreshold


def test_softmax_threshold_rejects_the_rate_on_validation():
    (x, y), (x_val, _), (x_test, _) = digits()
    model = tiny_cnn()
    option = SoftmaxThreshold(reject_rate=0.15).fit(model, x, y, x_val=x_val)
    assert abs((option.predict(x_val) == -1).mean() - 0.15) <= 0.02
    score = option.score(x_test)
    np.testing.assert_allclose(score, -model.predict_proba(x_test).max(axis=1), rtol=1e-12)
    predicted = option.predict(x_test)
    np.testing.assert_array_equal(predicted, np.where(score > option.threshold, -1,
                                                      model.predict(x_test)))
    assert predicted.dtype == np.int64 and 0 < (predicted == -1).sum() < len(predicted)


def test_softmax_score_does_not_saturate_in_float32():
    """Confident float32 logits give a float32 softmax of exactly 1 for many images; the score
    is computed in float64, so the threshold still sees distinct values and keeps its rate."""
    layer = Dense(64, 10, rng=np.random.default_rng(0))
    layer.params["W"] = layer.params["W"] * 400
    model = Sequential([Flatten(), layer], input_shape=(1, 8, 8)).astype(np.float32)
    (x, y), (x_val, _), _ = digits(np.float32)
    assert (model.predict_proba(x_val).max(axis=1) == 1).mean() > 0.3
    option = SoftmaxThreshold(reject_rate=0.1).fit(model, x, y, x_val=x_val)
    assert (option.predict(x_val) == -1).mean() == pytest.approx(0.1)


def test_softmax_threshold_bad_input():
    (x, y), (x_val, _), _ = digits()
    with pytest.raises(RuntimeError, match="not fitted: call fit"):
        SoftmaxThreshold().predict(x)
    with pytest.raises(RuntimeError, match="not fitted: call fit"):
        SoftmaxThreshold().score(x)
    with pytest.raises(ValueError, match="x_adv must be None"):
        SoftmaxThreshold().fit(tiny_cnn(), x, y, x, x_val=x_val)
    with pytest.raises(ValueError, match="labels must be integers"):
        SoftmaxThreshold().fit(tiny_cnn(), x, y[:-1], x_val=x_val)
    with pytest.raises(TypeError, match="model interface"):
        SoftmaxThreshold().fit("model", x, y, x_val=x_val)
    with pytest.raises(ValueError, match="reject_rate"):
        SoftmaxThreshold(reject_rate=1.2)


# ------------------------------------------------------------------ AtRejectRate


def test_at_reject_rate_turns_openmax_unknown_into_a_rule_at_the_rate(small_cnn_on_digits):
    """OpenMax's P(unknown), thresholded for 20% of the validation images: that share is
    rejected there, and an accepted image keeps the network's class."""
    (x, y), (x_val, _), (x_test, _) = digits(np.float32)
    model = small_cnn_on_digits
    option = AtRejectRate(OpenMax(layer="relu_2", tailsize=5), reject_rate=0.2)
    option.fit(model, x, y, x_val=x_val)
    assert abs((option.predict(x_val) == -1).mean() - 0.2) <= 0.02
    score = option.score(x_test)
    np.testing.assert_array_equal(score, option.defence.score(x_test))
    np.testing.assert_array_equal(option.predict(x_test),
                                  np.where(score > option.threshold, -1, model.predict(x_test)))


def test_at_reject_rate_bad_input():
    (x, y), (x_val, _), _ = digits()
    with pytest.raises(RuntimeError, match="not fitted: call fit"):
        AtRejectRate(OpenMax(layer="dense_1")).predict(x)
    with pytest.raises(ValueError, match="x_adv must be None"):
        AtRejectRate(OpenMax(layer="dense_1")).fit(tiny_cnn(), x, y, x, x_val=x_val)
    with pytest.raises(ValueError, match="reject_rate"):
        AtRejectRate(OpenMax(layer="dense_1"), reject_rate=1.0)


# ------------------------------------------------------------------ RejectingModel


@pytest.fixture(scope="module")
def dnr():
    return fitted_dnr()


def test_logits_are_the_scores_and_theta(dnr):
    _, (x_val, _), (x, _) = digits()
    model = dnr.as_model()
    assert isinstance(model, RejectingModel)
    z = model.logits(x)
    assert z.shape == (100, 11) and z.dtype == np.float64
    np.testing.assert_array_equal(z[:, :10], dnr.scores(x))
    np.testing.assert_array_equal(z[:, 10], dnr.theta)
    predicted = model.predict(x)
    np.testing.assert_array_equal(predicted == 10, dnr.predict(x) == -1)
    assert 0 < (predicted == 10).sum() < 100
    np.testing.assert_array_equal(model.predict(x_val) == 10, dnr.predict(x_val) == -1)


def test_rejecting_model_gradients_match_finite_differences(dnr):
    """Random weights on all K + 1 logits: the theta column must contribute nothing."""
    model, x = dnr.as_model(), digits()[2][0][:2].copy()
    w = np.random.default_rng(6).standard_normal((2, 11))
    assert_gradients_close(check_logit_gradient(model, x, w))
    assert_gradients_close(check_loss_gradient(model, x, np.array([3, 10])))
    assert_gradients_close(check_jacobian(model, x, directions=3))
    only_theta = np.zeros((2, 11))
    only_theta[:, 10] = 1
    assert not model.logit_gradient(x, only_theta)[1].any()


def test_rejecting_model_features_and_backends(xp):
    nr = NeuralRejection(layer="relu_2", C=10.0, gamma=10.0)
    (x, y), (x_val, _), (x_test, _) = digits()
    nr.fit(tiny_cnn(), x, y, x_val=x_val)
    expected = nr.as_model().logits(x_test[:4]), nr.as_model().jacobian(x_test[:2])
    nr.model.to("gpu" if xp is not np else "cpu")
    model = nr.as_model()
    got = model.logits(xp.asarray(x_test[:4])), model.jacobian(xp.asarray(x_test[:2]))
    for a, b in zip(expected, got):
        np.testing.assert_allclose(to_numpy(b), a, rtol=1e-10, atol=1e-12)
    tap = model.features(xp.asarray(x_test[:4]), ["relu_2"])["relu_2"]
    np.testing.assert_array_equal(to_numpy(tap), to_numpy(
        nr.model.features(xp.asarray(x_test[:4]), ["relu_2"])["relu_2"]))


def test_float32_in_float32_out():
    dnr = fitted_dnr(dtype=np.float32)
    model, x = dnr.as_model(), digits(np.float32)[2][0][:3]
    assert model.logits(x).dtype == np.float32
    assert model.loss_gradient(x, np.array([0, 1, 10]))[1].dtype == np.float32


def test_rejecting_model_refuses():
    with pytest.raises(TypeError, match="fitted score-based defence"):
        RejectingModel(tiny_cnn())
    with pytest.raises(RuntimeError, match="not fitted"):
        RejectingModel(DeepNeuralRejection())
    model = fitted_dnr().as_model()
    x = digits()[2][0][:2]
    with pytest.raises(ValueError, match="no dropout mode"):
        model.loss_gradient(x, np.array([0, 1]), mc_seed=0)
