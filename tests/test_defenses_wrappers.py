"""Defended models with the model interface: Preprocessed and FiveCropAverage.

The five crops of a hand-made ramp are exact; the wrappers' logits are the model's on the
transformed or cropped images; their input gradients, Jacobians and feature gradients pass the
model interface's finite-difference checks (float64, the default gradcheck tolerances) on the
small model of test_model.py; rounding's BPDA gradient is the model's at the rounded image;
randomness is reproducible from the wrapper's seed; an attack runs against a wrapped model."""

import numpy as np
import pytest

from nnscratch import zoo
from nnscratch.attacks import FGSM
from nnscratch.backend import to_numpy
from nnscratch.defenses import (Blur, Compose, FiveCropAverage, GaussianNoise, Preprocessed,
                                Round, Shift, five_crops)
from nnscratch.defenses.wrappers import five_crops_pullback
from nnscratch.gradcheck import (assert_gradients_close, check_feature_gradient, check_jacobian,
                                 check_logit_gradient, check_loss_gradient)

from test_model import inputs, labels, small_model


def ramp_image():
    """A 30 x 30 ramp P[i, j] = 30 i + j + 1 with a black (0) border, and its 28 x 28 inside."""
    padded = np.zeros((30, 30))
    i, j = np.mgrid[1:29, 1:29]
    padded[1:29, 1:29] = 30 * i + j + 1
    return padded, padded[1:29, 1:29].reshape(1, 1, 28, 28)


def test_five_crops_of_a_ramp_are_exact():
    padded, x = ramp_image()
    crops = five_crops(x)[:, 0, 0]                                    # (5, 28, 28)
    expected = [padded[:28, :28], padded[:28, 2:], padded[2:, :28], padded[2:, 2:],
                padded[1:29, 1:29]]
    for crop, reference in zip(crops, expected):
        np.testing.assert_array_equal(crop, reference)
    np.testing.assert_array_equal(crops[4], x[0, 0])                  # the centre is the image
    assert crops[0][0, 0] == 0 and crops[0][1, 1] == x[0, 0, 0, 0]     # top-left: black corner
    assert crops[3][-1, -1] == 0 and crops[3][-2, -2] == x[0, 0, -1, -1]


def test_five_crops_pullback_is_the_transpose(xp):
    x = inputs(xp)
    g = xp.asarray(np.random.default_rng(3).standard_normal((5,) + tuple(x.shape)))
    np.testing.assert_allclose(float((five_crops(x) * g).sum()),
                               float((x * five_crops_pullback(g)).sum()), rtol=1e-12)


def test_five_crop_logits_are_the_average_over_the_crops(xp):
    model = small_model(xp)
    x = inputs(xp, 5)
    expected = sum(to_numpy(model.logits(crop)) for crop in five_crops(x)) / 5
    np.testing.assert_allclose(to_numpy(FiveCropAverage(model).logits(x)), expected, rtol=1e-12)
    features = FiveCropAverage(model).features(x, ["tanh_1", "dense_2"])
    np.testing.assert_allclose(to_numpy(features["dense_2"]), expected, rtol=1e-12)
    assert features["tanh_1"].shape == (5, 6)


def test_preprocessed_logits_are_the_models_on_the_transformed_images(xp):
    model = small_model(xp)
    x = inputs(xp)                                                     # one batch of 2, then 1
    t = Compose(Shift(), Blur(), GaussianNoise(), Round())
    wrapped = Preprocessed(model, t, seed=4, fixed_draw=True)
    expected = np.concatenate([to_numpy(model.logits(t(x[:2], rng=4))),
                               to_numpy(model.logits(t(x[2:], rng=4)))])
    np.testing.assert_allclose(to_numpy(wrapped.logits(x)), expected, rtol=1e-12)
    np.testing.assert_array_equal(to_numpy(wrapped.logits(x)), to_numpy(wrapped.logits(x)))


def test_preprocessed_draws_afresh_and_reproducibly_from_its_seed(xp):
    x = inputs(xp, 2)
    runs = [Preprocessed(small_model(xp), GaussianNoise(0.05), seed=1) for _ in range(2)]
    first = [to_numpy(runs[0].logits(x)) for _ in range(2)]
    assert not np.allclose(first[0], first[1])                        # a new draw per pass
    for logits in first:
        np.testing.assert_array_equal(to_numpy(runs[1].logits(x)), logits)   # same sequence
    other_seed = Preprocessed(small_model(xp), GaussianNoise(0.05), seed=2)
    assert not np.allclose(to_numpy(other_seed.logits(x)), first[0])


def exact_preprocessed(xp, dtype=np.float64, dropout=0.0):
    return Preprocessed(small_model(xp, dtype, dropout), Compose(Shift(), Blur(), GaussianNoise()),
                        seed=3, fixed_draw=True)


def five_crop_average(xp, dtype=np.float64, dropout=0.0):
    return FiveCropAverage(small_model(xp, dtype, dropout))


def crops_after_preprocessing(xp, dtype=np.float64, dropout=0.0):
    return FiveCropAverage(exact_preprocessed(xp, dtype, dropout))


@pytest.fixture(params=[exact_preprocessed, five_crop_average, crops_after_preprocessing],
                ids=["preprocessed", "five_crops", "crops_after_preprocessing"])
def make_wrapper(request):
    return request.param


def test_loss_gradient_matches_finite_differences(xp, make_wrapper):
    assert_gradients_close(check_loss_gradient(make_wrapper(xp), inputs(xp), labels(xp)))


def test_logit_gradient_and_jacobian_match_finite_differences(xp, make_wrapper):
    model = make_wrapper(xp)
    w = xp.asarray(np.random.default_rng(2).standard_normal((3, 4)))
    assert_gradients_close(check_logit_gradient(model, inputs(xp), w))
    assert_gradients_close(check_jacobian(model, inputs(xp, 2)))


@pytest.mark.parametrize("tap", ["relu_1", "tanh_1"])
def test_feature_gradient_matches_finite_differences(make_wrapper, tap):
    model, x = make_wrapper(np), inputs(np)
    w = np.random.default_rng(3).standard_normal(model.features(x, [tap])[tap].shape)
    assert_gradients_close(check_feature_gradient(model, x, tap, w))


def test_mc_dropout_passes_through(make_wrapper):
    model, x, y = make_wrapper(np, dropout=0.5), inputs(np), labels(np)
    samples = model.mc_logits(x, 2, seed=1)
    assert samples.shape == (2, 3, 4) and not np.allclose(samples[0], samples[1])
    np.testing.assert_array_equal(model.mc_logits(x, 2, seed=1), samples)
    assert not np.allclose(model.loss_gradient(x, y, mc_seed=1)[1], model.loss_gradient(x, y)[1])


def test_rounding_gradient_is_the_models_at_the_rounded_image(xp):
    """BPDA: d/dx model(round(x)) is taken as model'(round(x)), the pullback of rounding
    being the identity."""
    model, x, y = small_model(xp), inputs(xp), labels(xp)
    _, grad = Preprocessed(model, Round()).loss_gradient(x, y)
    np.testing.assert_allclose(to_numpy(grad), to_numpy(model.loss_gradient(Round()(x), y)[1]),
                               rtol=1e-12, atol=1e-15)


def test_float32_empty_batches_and_inputs_left_alone(xp, make_wrapper):
    model = make_wrapper(xp, np.float32)
    x, y = inputs(xp, dtype=np.float32), labels(xp)
    before = to_numpy(x).copy()
    assert model.logits(x).dtype == np.float32
    losses, grad = model.loss_gradient(x, y)
    assert losses.dtype == np.float32 and grad.dtype == np.float32 and grad.shape == x.shape
    np.testing.assert_array_equal(to_numpy(x), before)
    empty = xp.zeros((0, 2, 7, 8), dtype=np.float32)
    assert model.logits(empty).shape == (0, 4) and model.jacobian(empty).shape == (0, 4, 2, 7, 8)


def test_an_attack_targets_a_defended_model():
    model = zoo.build("small_cnn")
    x = np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32)
    for defended in (FiveCropAverage(model), Preprocessed(model, Compose(Blur(), Round()))):
        result = FGSM(eps=0.1).generate(defended, x)
        assert result.x_adv.shape == x.shape and result.x_adv.dtype == np.float32
        assert np.abs(result.x_adv - x).max() <= 0.1 + 1e-6


def test_wrong_input_is_refused():
    model = small_model(np)
    for wrapper in (FiveCropAverage(model), Preprocessed(model, Blur())):
        with pytest.raises(ValueError, match=r"expected input of shape \(N, 2, 7, 8\)"):
            wrapper.logits(np.zeros((1, 1, 7, 8)))
    with pytest.raises(TypeError, match="model interface"):
        FiveCropAverage(lambda x: x)
    with pytest.raises(TypeError, match="model interface"):
        Preprocessed("lenet", Blur())
    with pytest.raises(TypeError, match="takes a Transform"):
        Preprocessed(model, np.round)
    with pytest.raises(ValueError, match="seed"):
        Preprocessed(model, Blur(), seed=-1)
    with pytest.raises(TypeError, match="fixed_draw"):
        Preprocessed(model, Blur(), fixed_draw=1)
    with pytest.raises(ValueError, match="pad"):
        FiveCropAverage(model, pad=0)
