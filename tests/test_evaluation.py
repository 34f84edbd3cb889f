"""evaluate_attack, the one evaluation loop: the same images as one generate call, predictions
and the report consistent with the attack's result, host arrays, bad input refused."""

import numpy as np
import pytest

from nnscratch import data, metrics
from nnscratch.attacks import FGSM, PGD
from nnscratch.evaluation import evaluate_attack


@pytest.fixture(scope="module")
def test_images():
    x, y = data.load("digits", split="test")
    return x[:60], y[:60]


def test_batches_give_the_images_of_one_call(small_cnn_on_digits, test_images):
    x, y = test_images
    attack = FGSM(eps=0.1)
    outcome = evaluate_attack(small_cnn_on_digits, attack, x, y, batch=25)
    whole = attack.generate(small_cnn_on_digits, x, y)
    np.testing.assert_array_equal(outcome.x_adv, whole.x_adv)
    np.testing.assert_array_equal(outcome.success, whole.success)
    np.testing.assert_array_equal(outcome.queries, whole.queries)
    np.testing.assert_array_equal(outcome.norms["l2"], whole.norms["l2"])
    np.testing.assert_array_equal(outcome.clean, small_cnn_on_digits.predict(x))
    np.testing.assert_array_equal(outcome.adversarial, small_cnn_on_digits.predict(whole.x_adv))


def test_report_agrees_with_the_outcome(small_cnn_on_digits, test_images):
    x, y = test_images
    outcome = evaluate_attack(small_cnn_on_digits, PGD(eps=0.2, steps=5), x, y)
    report = outcome.report()
    assert report["n"] == len(x)
    assert report["clean_accuracy"] == pytest.approx(np.mean(outcome.clean == y))
    assert report["accuracy_under_attack"] == pytest.approx(np.mean(outcome.robust))
    assert report["success_rate"] == pytest.approx(outcome.success.mean())
    assert report["mean_queries"] == pytest.approx(outcome.queries.mean())
    assert report["mean_linf"] <= 0.2 + 1e-6
    scores = np.ones(len(x))
    assert outcome.report(pass_scores=scores)["mean_pass"] == (1.0 if outcome.success.any()
                                                               else pytest.approx(np.nan))
    assert report == pytest.approx(metrics.attack_report(
        y, outcome.clean, outcome.adversarial, outcome.success,
        {k: outcome.norms[k] for k in ("l0", "l2", "linf")}) | {
            "mean_queries": report["mean_queries"], "seconds": report["seconds"]}, nan_ok=True)


def test_targets_reach_the_attack(small_cnn_on_digits, test_images):
    x, y = test_images
    target = (y + 1) % 10
    outcome = evaluate_attack(small_cnn_on_digits, PGD(eps=0.3, steps=10, targeted=True), x, y,
                              target=target, batch=16)
    np.testing.assert_array_equal(outcome.success, outcome.adversarial == target)
    np.testing.assert_array_equal(outcome.target, target)


@pytest.mark.parametrize("batch, error", [(0, ValueError), (2.5, ValueError), (True, TypeError)])
def test_bad_batch_is_refused(small_cnn_on_digits, test_images, batch, error):
    x, y = test_images
    with pytest.raises(error, match="batch"):
        evaluate_attack(small_cnn_on_digits, FGSM(eps=0.1), x, y, batch=batch)


def test_no_images_is_refused(small_cnn_on_digits, test_images):
    x, y = test_images
    with pytest.raises(ValueError, match="no images"):
        evaluate_attack(small_cnn_on_digits, FGSM(eps=0.1), x[:0], y[:0])
