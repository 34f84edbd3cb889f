"""Preprocessing transforms (Günther et al., Table 2): the contract (shape, dtype, input left
alone, determinism given a seed), each transform's values against a plain reference, every
exact pullback against central finite differences in float64, rounding's BPDA pullback is the
identity, and bad input."""

import numpy as np
import pytest
from scipy import ndimage

from nnscratch.backend import to_numpy
from nnscratch.defenses import (Blur, Compose, GaussianNoise, Round, Shift, Transform,
                                table2_transforms)
from nnscratch.gradcheck import assert_gradients_close, compare_input_gradient
from nnscratch.layers.blur import gaussian_kernel


def images(xp, n=3, dtype=np.float64, shape=(2, 6, 7), seed=0):
    return xp.asarray(np.random.default_rng(seed).random((n,) + shape).astype(dtype))


TRANSFORMS = {"noise": GaussianNoise, "blur": Blur, "shift": Shift, "round": Round,
              "combined": lambda: Compose(Shift(), Blur(), GaussianNoise(), Round())}
RANDOM = {"noise", "shift", "combined"}
EXACT = {"noise": GaussianNoise, "blur": Blur, "shift": Shift, "shift2": lambda: Shift(2),
         "exact_combination": lambda: Compose(Shift(), Blur(), GaussianNoise())}


@pytest.mark.parametrize("name", TRANSFORMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_contract(xp, name, dtype):
    t = TRANSFORMS[name]()
    x = images(xp, dtype=dtype)
    before = to_numpy(x).copy()
    out, pullback = t.forward(x, rng=7)
    assert out.shape == x.shape and out.dtype == dtype
    grad = pullback(xp.ones_like(out))
    assert grad.shape == x.shape and grad.dtype == dtype
    np.testing.assert_array_equal(to_numpy(x), before)
    np.testing.assert_array_equal(to_numpy(t(x, rng=7)), to_numpy(out))       # same seed
    if name in RANDOM:
        assert not np.array_equal(to_numpy(t(x, rng=8)), to_numpy(out))
    g = images(xp, dtype=dtype, seed=5)
    g_before = to_numpy(g).copy()
    t.vjp(x, g, rng=7)
    np.testing.assert_array_equal(to_numpy(g), g_before)     # the upstream gradient is kept


def test_a_generator_is_used_and_advanced():
    x = images(np)
    rng = np.random.default_rng(3)
    first, second = GaussianNoise()(x, rng), GaussianNoise()(x, rng)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, GaussianNoise()(x, np.random.default_rng(3)))
    assert not np.array_equal(GaussianNoise()(x), GaussianNoise()(x))      # None: fresh entropy


def test_float32_and_float64_get_the_same_draw():
    x = images(np)
    np.testing.assert_allclose(GaussianNoise()(x.astype(np.float32), 4), GaussianNoise()(x, 4),
                               atol=1e-6)


def test_noise_is_one_grey_level():
    x = np.full((4, 1, 50, 50), 0.5)
    noise = GaussianNoise()(x, rng=0) - x
    assert abs(noise.mean()) < 2e-4 and abs(noise.std() * 255 - 1) < 0.02
    assert GaussianNoise(sigma=0)(x, 0).tolist() == x.tolist()


@pytest.mark.parametrize("pixels", [1, 2])
def test_shift_rolls_each_image_in_one_of_four_directions(pixels):
    x = images(np, n=200, shape=(1, 5, 6))
    out = Shift(pixels)(x, rng=1)
    rolls = [(3, -pixels), (3, pixels), (2, -pixels), (2, pixels)]  # left, right, up, down
    counts = np.zeros(4, dtype=int)
    for image, shifted in zip(x, out):
        matches = [k for k, (axis, step) in enumerate(rolls)
                   if np.array_equal(np.roll(image, step, axis=axis - 1), shifted)]
        assert len(matches) == 1
        counts[matches[0]] += 1
    assert counts.min() >= 30                     # each direction, about 50 of 200


def test_blur_is_a_zero_padded_gaussian_of_one_pixel():
    x = images(np, shape=(2, 9, 10))
    t = Blur()
    assert (t.sigma, t.radius) == (1.0, 3)
    kernel = np.outer(gaussian_kernel(1.0, 3), gaussian_kernel(1.0, 3))        # 7 x 7
    reference = np.stack([[ndimage.convolve(channel, kernel, mode="constant")
                           for channel in image] for image in x])
    np.testing.assert_allclose(t(x), reference, rtol=1e-12, atol=1e-14)


def test_round_to_integral_grey_levels():
    """Round clips what a step before it (noise) pushed out of [0, 1]: ``apply`` inside a
    Compose; its public entry points, like every transform's, take images in [0, 1] only."""
    x = np.array([-0.2, 0.0, 0.4 / 255, 0.6 / 255, 100.2 / 255, 0.5, 1.0, 1.3]).reshape(1, 1, 2, 4)
    expected = np.array([0, 0, 0, 1, 100, 128, 255, 255]) / 255     # 127.5 rounds to even
    np.testing.assert_allclose(Round().apply(x, None)[0].ravel(), expected, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match=r"values in \[0, 1\], got values from -0.2 to 1.3"):
        Round()(x)
    x = np.clip(x, 0, 1)
    x32 = x.astype(np.float32)
    assert Round()(x32).dtype == np.float32
    assert np.allclose(Round()(x32).ravel() * 255, np.round(Round()(x32).ravel() * 255))


def test_compose_applies_in_order_from_one_generator():
    x = images(np)
    t = Compose(Shift(), Blur(), GaussianNoise(), Round())
    rng = np.random.default_rng(9)
    expected = x
    for step in (Shift(), Blur(), GaussianNoise(), Round()):
        expected = step(expected, rng)
    np.testing.assert_array_equal(t(x, rng=9), expected)


@pytest.mark.parametrize("name", EXACT)
def test_exact_pullbacks_match_finite_differences(xp, name):
    """d(sum g * t(x))/dx, the draw fixed by the seed; float64, eps 1e-5, the default
    tolerances of gradcheck (norm-wise 1e-7, element-wise rtol 1e-6, atol 1e-9)."""
    t = EXACT[name]()
    assert t.exact
    x = images(xp, n=2, shape=(2, 5, 6))
    g = xp.asarray(np.random.default_rng(1).standard_normal(x.shape))
    assert_gradients_close(compare_input_gradient(
        name, lambda v: t.vjp(v, g, rng=3), lambda v: (g * t(v, rng=3)).sum(), x))


def test_round_pullback_is_the_identity_bpda(xp):
    x, g = images(xp), images(xp, seed=2)
    assert not Round().exact
    np.testing.assert_array_equal(to_numpy(Round().vjp(x, g)), to_numpy(g))
    combined = Compose(Shift(), Blur(), GaussianNoise(), Round())
    assert not combined.exact
    without_round = Compose(Shift(), Blur(), GaussianNoise())
    np.testing.assert_allclose(to_numpy(combined.vjp(x, g, rng=5)),
                               to_numpy(without_round.vjp(x, g, rng=5)), rtol=1e-15)


def test_table2_transforms():
    table = table2_transforms()
    assert set(table) == {"noise", "blur", "shift", "combined"}
    for t in table.values():
        assert isinstance(t, Compose) and isinstance(t.transforms[-1], Round) and not t.exact
    assert repr(table["combined"]) == ("Compose(Shift(pixels=1), Blur(sigma=1.0, radius=3, "
                                       "mode='constant'), GaussianNoise(sigma=0.003921568627"
                                       "45098), Round())")


@pytest.mark.parametrize("bad, error, message", [
    ([[0.5]], TypeError, "array of images"),
    (np.zeros((2, 1, 4, 4), dtype=np.uint8), ValueError, "floating point"),
    (np.zeros((1, 4, 4)), ValueError, r"shape \(N, C, H, W\)"),
])
def test_bad_images_are_refused(bad, error, message):
    for t in TRANSFORMS.values():
        with pytest.raises(error, match=message):
            t()(bad, rng=0)


def test_bad_arguments_are_refused():
    x = images(np)
    with pytest.raises(ValueError, match="shape of the transformed images"):
        Blur().vjp(x, x[:1])
    with pytest.raises(TypeError, match="rng must be"):
        Shift()(x, rng="seed")
    with pytest.raises(ValueError, match="sigma"):
        GaussianNoise(sigma=-1)
    with pytest.raises(ValueError, match="sigma"):
        Blur(sigma=0)
    with pytest.raises(ValueError, match="pixels"):
        Shift(pixels=0)
    with pytest.raises(ValueError, match="at least one"):
        Compose()
    with pytest.raises(TypeError, match="Transform objects"):
        Compose(Blur(), np.sqrt)
    with pytest.raises(NotImplementedError):
        Transform()(x)
