"""Adversarial patches (nnscratch/attacks/patch.py): the contract on every backend, the patch's
gradient against finite differences, pixels outside the mask untouched, one array for a
universal patch, larger patches fool more on a trained model, the reject-aware loss, query
counts, refusals."""

import numpy as np
import pytest

from nnscratch.attacks.patch import AdversarialPatch, cut, paste
from nnscratch.backend import device_of, to_numpy
from nnscratch.gradcheck import assert_gradients_close, compare_input_gradient

from test_attacks import Counting, images, tiny_model, trained  # noqa: F401 (a fixture)


def outside_untouched(x, x_adv, locations, size):
    inside = np.zeros(x.shape, dtype=bool)
    for i, (row, col) in enumerate(locations):
        inside[i, :, row:row + size, col:col + size] = True
    return np.array_equal(x[~inside], x_adv[~inside])


@pytest.mark.parametrize("universal", [False, True])
def test_contract_on_every_backend(xp, universal):
    """float32 images, float64 model: x unchanged, x_adv float32 on x's device in [0, 1], only
    the patch's pixels changed, L0 at most the patch's area."""
    model, x = tiny_model(xp, dtype=np.float64), images(xp)
    before = to_numpy(x).copy()
    result = AdversarialPatch(3, steps=5, universal=universal).generate(model, x)
    assert np.array_equal(to_numpy(x), before)
    assert result.x_adv.dtype == np.float32 and device_of(result.x_adv) == device_of(x)
    x_adv = to_numpy(result.x_adv)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert outside_untouched(before, x_adv, result.info["location"], 3)
    assert (to_numpy(result.norms["l0"]) <= 9).all()
    patch = to_numpy(result.info["patch"])
    assert patch.shape == ((1, 3, 3) if universal else (6, 1, 3, 3))
    for i, (row, col) in enumerate(result.info["location"]):
        np.testing.assert_array_equal(x_adv[i, :, row:row + 3, col:col + 3],
                                      patch if universal else patch[i])


def test_the_gradient_with_respect_to_the_patch():
    """d(sum of the cross-entropies)/dP, as the attack computes it (the input gradient cut out
    at each image's patch), against central differences in float64."""
    model = tiny_model(np, dtype=np.float64)
    x = images(np).astype(np.float64)
    y = model.predict(x)
    places = np.array([[0, 0], [5, 5], [2, 3], [4, 1], [1, 4], [3, 3]])
    patch = np.random.default_rng(4).random((6, 1, 3, 3))

    def loss(p):
        return model.loss_gradient(paste(x, p, places), y)[0].sum()

    def gradient(p):
        return cut(model.loss_gradient(paste(x, p, places), y)[1], places, 3)

    assert_gradients_close(compare_input_gradient("patch", gradient, loss, patch))


def test_a_fixed_location_and_a_universal_patch_pasted_elsewhere():
    model, x = tiny_model(np), images(np)
    result = AdversarialPatch(2, location=(6, 1), steps=3).generate(model, x)
    assert (result.info["location"] == [6, 1]).all()
    universal = AdversarialPatch(4, universal=True, steps=3).generate(model, x)
    other = images(np, seed=9)
    pasted = paste(other, universal.info["patch"], np.array([[0, 0]] * 6))
    assert np.array_equal(pasted[:, :, :4, :4], np.broadcast_to(universal.info["patch"],
                                                                 (6, 1, 4, 4)))


def test_larger_patches_fool_more(trained):
    """small_cnn on 8x8 digits: a 5x5 patch (39% of the image) fools far more than a 2x2 one,
    per image and universal. Measured on the 60 test images (50 steps): per image 2x2 0.35,
    5x5 1.00; universal 2x2 0.10, 5x5 0.68; asserted: 0.3 more each."""
    model, x, y = trained
    for universal in (False, True):
        small = AdversarialPatch(2, universal=universal, steps=50).generate(model, x, y)
        large = AdversarialPatch(5, universal=universal, steps=50).generate(model, x, y)
        assert large.success_rate >= small.success_rate + 0.3, (universal, small.success_rate,
                                                                large.success_rate)


def test_reject_aware_success_is_a_wrong_class_not_rejected():
    """On a model whose last logit is a reject class: success exactly where the final class is
    neither y nor the reject class."""
    model, x = tiny_model(np), images(np)              # 5 outputs: 4 classes and "reject"
    y = np.array([0, 1, 2, 3, 0, 1])
    result = AdversarialPatch(4, steps=10, loss="reject_aware").generate(model, x, y)
    predicted = model.predict(result.x_adv)
    np.testing.assert_array_equal(result.success, (predicted != y) & (predicted != 4))


def test_queries_count_every_image_the_model_sees():
    for attack in (AdversarialPatch(3, steps=4), AdversarialPatch(3, steps=4, universal=True),
                   AdversarialPatch(3, steps=4, loss="reject_aware")):
        model, x = Counting(tiny_model(np)), images(np)
        y = model.predict(x)
        model.seen = 0
        result = attack.generate(model, x, y)
        assert int(result.queries.sum()) == model.seen


@pytest.mark.parametrize("make, message", [
    (lambda: AdversarialPatch(0), "size"),
    (lambda: AdversarialPatch(3, location=(1,)), "location"),
    (lambda: AdversarialPatch(3, location=(-1, 2)), "location"),
    (lambda: AdversarialPatch(3, step_size=0), "step_size"),
    (lambda: AdversarialPatch(3, loss="dlr"), "loss"),
    (lambda: AdversarialPatch(3, loss="reject_aware", targeted=True), "untargeted"),
])
def test_bad_settings_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("attack, message", [
    (AdversarialPatch(9), "does not fit 8x8"),
    (AdversarialPatch(3, location=(6, 0)), r"at \[6, 0\] leaves the 8x8 image"),
])
def test_a_patch_that_does_not_fit_is_refused(attack, message):
    with pytest.raises(ValueError, match=message):
        attack.generate(tiny_model(np), images(np))
