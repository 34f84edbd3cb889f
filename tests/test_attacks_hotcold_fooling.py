"""HotCold (nnscratch/attacks/hotcold.py) and FoolingImages (nnscratch/attacks/fooling.py): the
contract on every backend on a tiny untrained model (rows, dtype, range, norms, input
untouched), the minimal step and the confidence reached on a small CNN trained on digits, clean
failure on a constant model, exact query counts, refusals."""

import numpy as np
import pytest

from nnscratch.attacks.fooling import FoolingImages
from nnscratch.attacks.hotcold import HotCold
from nnscratch.backend import device_of, to_numpy

from test_attacks import Counting, images, tiny_model, trained  # noqa: F401 (a fixture)


def unit_hot_cold_direction(model, x, y, target):
    """Host (n, C, H, W): grad (z_t - z_y) / max |grad| per image, from the model directly."""
    k = model.logits(x[:1]).shape[1]
    w = np.zeros((len(x), k))
    w[np.arange(len(x)), target] = 1
    w[np.arange(len(x)), y] = -1
    g = to_numpy(model.logit_gradient(x, w)[1])
    return g / np.abs(g).reshape(len(g), -1).max(axis=1).reshape(-1, 1, 1, 1)


def check_result(result, x_rows, model):
    """What every result must satisfy: x_adv in [0, 1] with x's dtype and device, norms those
    of x_adv - x_rows, success and failure consistent."""
    x_adv, before = to_numpy(result.x_adv), to_numpy(x_rows)
    assert result.x_adv.dtype == x_rows.dtype and device_of(result.x_adv) == device_of(x_rows)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    delta = (x_adv - before).reshape(len(x_adv), -1).astype(np.float64)
    np.testing.assert_allclose(to_numpy(result.norms["l2"]), np.linalg.norm(delta, axis=1),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(to_numpy(result.norms["l0"]), (delta != 0).sum(axis=1))
    assert result.success.dtype == bool
    assert ((result.info["failure"] == "") == to_numpy(result.success)).all()


# ------------------------------------------------------------------ HotCold

@pytest.mark.parametrize("mode", ["hc1", "hc"])
def test_hot_cold_rows_targets_and_contract(xp, mode):
    """float32 images on a float64 model with 5 classes: HC-1 one row per image towards the
    runner-up, HC four rows per image (image-major) towards every other class."""
    model, x = tiny_model(xp, dtype=np.float64), images(xp)
    before = to_numpy(x).copy()
    y = model.predict(x)
    result = HotCold(mode).generate(model, x)
    assert np.array_equal(to_numpy(x), before)
    source, target = to_numpy(result.info["source"]), to_numpy(result.target)
    z, labels = to_numpy(model.logits(x)), to_numpy(y)
    if mode == "hc1":
        np.testing.assert_array_equal(source, np.arange(6))
        np.testing.assert_array_equal(target, np.argsort(z, axis=1)[:, -2])
    else:
        np.testing.assert_array_equal(source, np.repeat(np.arange(6), 4))
        for n in range(6):
            np.testing.assert_array_equal(target[source == n],
                                          [k for k in range(5) if k != labels[n]])
    check_result(result, x[result.info["source"]], model)
    predicted = to_numpy(model.predict(result.x_adv))
    np.testing.assert_array_equal(to_numpy(result.success), predicted == target)
    assert result.success.any()


def test_hc1_just_reaches_the_closest_class(trained):
    """At the step found the image is classified as the target, x + w * d clipped (d the unit
    linf hot/cold direction); at the largest step below it that was tried, it is not."""
    model, x, y = trained
    attack = HotCold("hc1")
    result = attack.generate(model, x, y)
    assert result.success_rate >= 0.8
    target, w, below = result.target, result.info["w"], result.info["w_below"]
    d = unit_hot_cold_direction(model, x, y, target)
    ok = np.flatnonzero(result.success & (w > 0))
    assert len(ok) >= 0.8 * len(x) - 1
    at = np.clip(x[ok] + w[ok].reshape(-1, 1, 1, 1) * d[ok], 0, 1).astype(x.dtype)
    np.testing.assert_allclose(at, result.x_adv[ok], rtol=0, atol=1e-6)
    assert (model.predict(result.x_adv[ok]) == target[ok]).all()
    short = np.clip(x[ok] + below[ok].reshape(-1, 1, 1, 1) * d[ok], 0, 1).astype(x.dtype)
    assert (model.predict(short) != target[ok]).all()
    assert (w[ok] - below[ok] <= attack.tolerance * w[ok] * (1 + 1e-6)).all()
    failed = ~result.success
    assert set(result.info["failure"][failed]) <= {"clipping"}


def test_hc_gives_k_minus_1_adversarials_per_image(trained):
    model, x, y = trained
    x, y = x[:20], y[:20]
    result = HotCold("hc").generate(model, x, y)
    assert len(result.success) == 20 * 9 and result.x_adv.shape == (180,) + x.shape[1:]
    np.testing.assert_array_equal(result.info["source"], np.repeat(np.arange(20), 9))
    for n in range(20):
        rows = result.info["source"] == n
        assert sorted(result.target[rows]) == [k for k in range(10) if k != y[n]]
    assert result.success_rate >= 0.8
    np.testing.assert_array_equal(result.success, model.predict(result.x_adv) == result.target)
    check_result(result, x[result.info["source"]], model)


def test_hc_row_at_its_target_already_needs_no_search(trained):
    """y given as a class the model does not predict: the HC-1 target is then the prediction,
    reached at w = 0."""
    model, x, _ = trained
    predicted = model.predict(x[:4])
    result = HotCold("hc1").generate(model, x[:4], (predicted + 1) % 10)
    np.testing.assert_array_equal(result.target, predicted)
    assert result.success.all() and (result.info["w"] == 0).all()
    np.testing.assert_array_equal(result.x_adv, x[:4])
    assert (result.queries == 2).all()                  # logits, gradient, no probe


@pytest.mark.parametrize("mode", ["hc1", "hc"])
def test_hot_cold_on_a_constant_model_fails_cleanly(xp, mode):
    model, x = tiny_model(xp, constant=True), images(xp)
    result = HotCold(mode).generate(model, x)
    assert not to_numpy(result.success).any()
    assert (result.info["failure"] == "zero gradient").all()
    np.testing.assert_array_equal(to_numpy(result.x_adv), to_numpy(x[result.info["source"]]))
    expected = [2] if mode == "hc1" else [2, 1, 1, 1]   # shared logits on a source's first row
    np.testing.assert_array_equal(to_numpy(result.queries), np.tile(expected, 6))


@pytest.mark.parametrize("mode", ["hc1", "hc"])
def test_hot_cold_queries_are_the_images_the_model_saw(mode):
    model = Counting(tiny_model(np))
    result = HotCold(mode).generate(model, images(np))
    assert int(result.queries.sum()) == model.seen
    assert (result.queries[result.success] >= 3).all()  # logits, gradient, at least one probe


# ------------------------------------------------------------------ FoolingImages

@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.99])
def test_fooling_images_reach_their_confidence(trained, confidence):
    model, x, _ = trained
    target = np.arange(20) % 10
    blank = np.zeros((20,) + x.shape[1:], dtype=x.dtype)
    result = FoolingImages(confidence).generate(model, blank, target=target)
    assert result.success.all()
    p = model.predict_proba(result.x_adv)[np.arange(20), target]
    assert (p >= confidence - 1e-5).all()
    np.testing.assert_allclose(result.info["confidence"], p, rtol=1e-4)
    np.testing.assert_array_equal(result.queries, result.info["steps"] + 1)
    start = result.info["start"]
    at_start = model.predict_proba(start)[np.arange(20), target] >= confidence
    np.testing.assert_array_equal(result.info["steps"] == 0, at_start)    # none stops early
    assert (~at_start).sum() >= 15
    check_result(result, start, model)


def test_fooling_images_from_a_pattern_and_from_grey(trained):
    model, x, y = trained
    target = (y[:10] + 1) % 10
    from_x = FoolingImages(0.9, start="x").generate(model, x[:10], target=target)
    assert from_x.success.all()
    np.testing.assert_array_equal(from_x.info["start"], x[:10])
    check_result(from_x, x[:10], model)
    grey = FoolingImages(0.9, start="uniform").generate(model, x[:10], target=target)
    assert grey.success.all() and (grey.info["start"] == 0.5).all()


def test_fooling_images_contract_and_seed(xp):
    model, x = tiny_model(xp, dtype=np.float64), images(xp)
    before = to_numpy(x).copy()
    target = xp.asarray(np.arange(6) % 5)
    attack = FoolingImages(0.5, steps=30, step_size=0.05, seed=3)
    result = attack.generate(model, x, target=target)
    assert np.array_equal(to_numpy(x), before)
    check_result(result, result.info["start"], model)
    again = attack.generate(model, x, target=target)
    other = FoolingImages(0.5, steps=30, step_size=0.05, seed=4).generate(model, x, target=target)
    assert np.array_equal(to_numpy(result.x_adv), to_numpy(again.x_adv))
    assert not np.array_equal(to_numpy(result.info["start"]), to_numpy(other.info["start"]))


def test_fooling_images_on_a_constant_model_fail_cleanly(xp):
    model, x = tiny_model(xp, constant=True), images(xp)
    result = FoolingImages(0.9).generate(model, x, target=xp.asarray(np.arange(6) % 5))
    assert not to_numpy(result.success).any()
    assert (result.info["failure"] == "zero gradient").all()
    assert (to_numpy(result.queries) == 1).all()
    np.testing.assert_array_equal(to_numpy(result.x_adv), to_numpy(result.info["start"]))


def test_fooling_images_queries_are_exact():
    model = Counting(tiny_model(np))
    target = np.arange(6) % 5
    result = FoolingImages(0.99, steps=7, step_size=0.001).generate(model, images(np),
                                                                   target=target)
    assert int(result.queries.sum()) == model.seen
    np.testing.assert_array_equal(result.queries, result.info["steps"] + 1)
    assert (result.queries[~result.success] == 8).all() and (~result.success).any()
    assert (result.info["failure"][~result.success] == "steps exhausted").all()
    zero = FoolingImages(0.99, steps=0).generate(model, images(np), target=target)
    assert (zero.queries == 1).all() and (zero.info["steps"] == 0).all()


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("make, error, match", [
    (lambda: HotCold("hc9"), ValueError, "mode"), (lambda: HotCold(norm="l1"), ValueError, "norm"),
    (lambda: HotCold(max_eps=-1), ValueError, "max_eps"),
    (lambda: HotCold(tolerance=0), ValueError, "tolerance"),
    (lambda: HotCold(tolerance=1e-9), ValueError, "tolerance"),
    (lambda: FoolingImages(1.0), ValueError, "target_confidence"),
    (lambda: FoolingImages(0), ValueError, "target_confidence"),
    (lambda: FoolingImages("0.9"), TypeError, "target_confidence"),
    (lambda: FoolingImages(steps=-1), ValueError, "steps"),
    (lambda: FoolingImages(steps=2.5), ValueError, "steps"),
    (lambda: FoolingImages(step_size=0), ValueError, "step_size"),
    (lambda: FoolingImages(start="pattern"), ValueError, "start"),
    (lambda: FoolingImages(seed=-1), ValueError, "seed")])
def test_bad_hyper_parameters_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs_are_refused():
    model, x = tiny_model(np), images(np)
    y = np.arange(6) % 5
    cases = [(lambda: HotCold().generate(model, x, y, target=(y + 1) % 5), ValueError, "target"),
             (lambda: HotCold().generate(model, x * 2), ValueError, r"\[0, 1\]"),
             (lambda: HotCold().generate(model, x, y[:5]), ValueError, "y"),
             (lambda: FoolingImages().generate(model, x), ValueError, "target"),
             (lambda: FoolingImages().generate(model, x, target=y[:5]), ValueError, "target"),
             (lambda: FoolingImages().generate(model, x, target=list(y)), TypeError, "target"),
             (lambda: FoolingImages().generate(model, x[0], target=y), ValueError, "N, C, H, W")]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()
