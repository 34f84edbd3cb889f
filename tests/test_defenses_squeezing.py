"""Feature squeezing (MedianFilter, BitDepth) and the blur's scipy border modes: values equal to
scipy.ndimage's on every supported mode, the 1 x 2 median as a max, exact bit-depth levels,
every exact pullback against central finite differences in float64, the BPDA pullbacks are the
identity, a model behind a median filter has the input gradient its finite differences give,
and bad input is refused."""

import numpy as np
import pytest
from scipy import ndimage

from nnscratch.backend import to_numpy
from nnscratch.defenses import BPDA, BitDepth, Blur, Compose, MedianFilter, Preprocessed
from nnscratch.defenses.padding import MODES
from nnscratch.gradcheck import (assert_gradients_close, check_logit_gradient,
                                 check_loss_gradient, compare_input_gradient)

from test_model import labels, small_model


def images(xp, shape=(3, 2, 7, 9), dtype=np.float64, seed=0):
    return xp.asarray(np.random.default_rng(seed).random(shape).astype(dtype))


def distinct_images(xp, shape=(2, 2, 5, 6), seed=0):
    """Values (k + 1/2) / n in a random order: no two closer than 1/n (far more than the finite
    differences' step), so no window has a tie to break, none within a step of 0 or 1."""
    n = int(np.prod(shape))
    values = (np.random.default_rng(seed).permutation(n) + 0.5) / n
    return xp.asarray(values.reshape(shape))


@pytest.mark.parametrize("size", [(1, 1), (1, 2), (2, 1), (2, 2), (3, 3), (4, 4), (3, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_filter_equals_scipy(xp, size, dtype):
    x = images(xp, dtype=dtype)
    before = to_numpy(x).copy()
    for mode in MODES:
        out = MedianFilter(size, mode)(x)
        assert out.shape == x.shape and out.dtype == dtype
        expected = ndimage.median_filter(before, size=(1, 1) + size, mode=mode)
        np.testing.assert_array_equal(to_numpy(out), expected, err_msg=mode)
    np.testing.assert_array_equal(to_numpy(x), before)


def test_a_window_as_large_as_the_image_equals_scipy():
    x = images(np, shape=(2, 1, 4, 3))
    for mode in MODES:
        np.testing.assert_array_equal(MedianFilter((4, 3), mode)(x),
                                      ndimage.median_filter(x, size=(1, 1, 4, 3), mode=mode))


def test_a_one_by_two_median_is_the_max_of_a_pixel_and_its_left_neighbour():
    """Wang & Zhang's squeezer: out[i, j] = max(x[i, j-1], x[i, j]), the reflect border giving
    x[i, -1] = x[i, 0]; and with four values (2 x 2) the median is the third smallest."""
    x = images(np)
    left = np.concatenate([x[..., :1], x[..., :-1]], axis=-1)
    np.testing.assert_array_equal(MedianFilter((1, 2))(x), np.maximum(left, x))
    out = MedianFilter((2, 2), mode="constant")(x)
    i, j = 3, 4
    assert out[1, 1, i, j] == np.sort(x[1, 1, i - 1:i + 1, j - 1:j + 1].ravel())[2]


EXACT = {f"median_{h}x{w}_{mode}": lambda h=h, w=w, mode=mode: MedianFilter((h, w), mode)
         for h, w in [(1, 2), (2, 2), (3, 3), (4, 4)] for mode in MODES}
EXACT.update({"blur_reflect_sigma2_truncate4": lambda: Blur(2.0, mode="reflect", truncate=4),
              "blur_reflect_sigma1": lambda: Blur(1.0, mode="reflect", truncate=4),
              "blur_mirror": lambda: Blur(1.0, mode="mirror"),
              "blur_nearest": lambda: Blur(1.5, mode="nearest"),
              "median_then_blur": lambda: Compose(MedianFilter(), Blur(mode="reflect"))})


@pytest.mark.parametrize("name", EXACT)
def test_exact_pullbacks_match_finite_differences(xp, name):
    """d(sum g * t(x))/dx on 5 x 6 images of distinct values (radius 8 reflects past the far
    border); float64, eps 1e-5, the default tolerances of gradcheck (norm-wise 1e-7,
    element-wise rtol 1e-6, atol 1e-9). The reflect blur is a symmetric matrix, the mirror and
    nearest blurs are not: they are the ones that catch a pullback A instead of A^T."""
    t = EXACT[name]()
    assert t.exact
    x = distinct_images(xp)
    g = xp.asarray(np.random.default_rng(1).standard_normal(x.shape))
    assert_gradients_close(compare_input_gradient(name, lambda v: t.vjp(v, g),
                                                  lambda v: (g * t(v)).sum(), x))


def test_the_median_gradient_goes_to_the_selected_pixel():
    x = distinct_images(np, shape=(1, 1, 5, 6))
    g = np.zeros_like(x)
    g[0, 0, 2, 3] = 1.0
    grad = MedianFilter((3, 3)).vjp(x, g)
    window = x[0, 0, 1:4, 2:5]
    assert grad.sum() == 1 and grad[x == np.sort(window.ravel())[4]] == 1


def test_bpda_pullbacks_are_the_identity(xp):
    x, g = images(xp), images(xp, seed=2)
    for t in (BPDA(MedianFilter()), BitDepth(1), BitDepth(8)):
        assert not t.exact
        np.testing.assert_array_equal(to_numpy(t.vjp(x, g)), to_numpy(g))
    np.testing.assert_array_equal(to_numpy(BPDA(MedianFilter())(x)),
                                  to_numpy(MedianFilter()(x)))
    assert not Compose(MedianFilter(), BitDepth(1)).exact


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_depth_levels(xp, dtype):
    """1 bit: 0 or 1, with 0.5 (an exact tie) to even, 0; 3 bits: k / 7, 3.5 / 7 to 4 / 7."""
    x = xp.asarray(np.array([0, 0.2, 0.49, 0.5, 0.51, 1], dtype=dtype).reshape(1, 1, 2, 3))
    out = BitDepth(1)(x)
    assert out.dtype == dtype
    np.testing.assert_array_equal(to_numpy(out).ravel(), [0, 0, 0, 0, 1, 1])
    x = xp.asarray(np.array([0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1], dtype=dtype).reshape(1, 1, 2, 4))
    expected = (np.array([0, 1, 1, 2, 4, 5, 6, 7]) / 7).astype(dtype)
    np.testing.assert_array_equal(to_numpy(BitDepth(3)(x)).ravel(), expected)


@pytest.mark.parametrize("sigma, truncate, shape", [(2.0, 4.0, (2, 1, 28, 28)),
                                                    (2.0, 4.0, (2, 2, 5, 6)),
                                                    (1.0, 4.0, (2, 2, 9, 7))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blur_modes_equal_scipys_gaussian_filter(xp, sigma, truncate, shape, dtype):
    """Up to rounding: 1e-14 in float64, 1e-6 in float32 (scipy sums in float64)."""
    x = images(xp, shape=shape, dtype=dtype)
    for mode in ("reflect", "mirror", "nearest"):
        out = Blur(sigma, mode=mode, truncate=truncate)(x)
        assert out.shape == x.shape and out.dtype == dtype
        expected = ndimage.gaussian_filter(to_numpy(x), (0, 0, sigma, sigma), mode=mode,
                                           truncate=truncate)
        np.testing.assert_allclose(to_numpy(out), expected, rtol=0,
                                   atol=1e-14 if dtype == np.float64 else 1e-6, err_msg=mode)


def test_blur_radius_from_truncate_as_scipy():
    assert Blur(2.0, mode="reflect", truncate=4).radius == 8             # Wang & Zhang's blur
    assert Blur(1.0, truncate=4).radius == 4 and Blur(1.2, truncate=2.5).radius == 3
    assert Blur(2.0).radius == 6 and Blur(2.0).mode == "constant"       # the 3-sigma default
    x = images(np)
    np.testing.assert_array_equal(Blur(2.0, radius=8, mode="reflect")(x),
                                  Blur(2.0, mode="reflect", truncate=4)(x))


@pytest.mark.parametrize("transform", [lambda: MedianFilter((2, 2)),
                                       lambda: MedianFilter((1, 2)),
                                       lambda: Blur(2.0, mode="reflect", truncate=4)],
                         ids=["median_2x2", "median_1x2", "blur_reflect"])
def test_a_model_behind_the_transform_has_the_finite_difference_gradient(xp, transform):
    """small_model (float64) after the transform, on images of distinct values; gradcheck's
    default tolerances."""
    model = Preprocessed(small_model(xp), transform())
    x = distinct_images(xp, shape=(3, 2, 7, 8), seed=4)
    assert_gradients_close(check_loss_gradient(model, x, labels(xp)))
    w = xp.asarray(np.random.default_rng(2).standard_normal((3, 4)))
    assert_gradients_close(check_logit_gradient(model, x, w))


def test_bad_arguments_are_refused():
    x = images(np, shape=(1, 1, 3, 4))
    for bad, error, message in [
            (lambda: MedianFilter((0, 2)), ValueError, r"MedianFilter: size must be a positive"),
            (lambda: MedianFilter((2, -1)), ValueError, "MedianFilter: size"),
            (lambda: MedianFilter((2, 1.5)), ValueError, "MedianFilter: size"),
            (lambda: MedianFilter(2), TypeError, r"size must be a pair \(h, w\), got 2"),
            (lambda: MedianFilter((1, 1, 2, 2)), TypeError, "size must be a pair"),
            (lambda: MedianFilter(mode="wrap"), ValueError, "MedianFilter: mode must be one of"),
            (lambda: MedianFilter((4, 4))(x), ValueError,
             r"window \(4, 4\) is larger than the images \(3, 4\)"),
            (lambda: MedianFilter((1, 5)).vjp(x, x), ValueError, "larger than the images"),
            (lambda: BitDepth(0), ValueError, "BitDepth: bits must be a positive integer"),
            (lambda: BitDepth(17), ValueError, "BitDepth: bits must be at most 16, got 17"),
            (lambda: BitDepth(1.5), ValueError, "BitDepth: bits"),
            (lambda: Blur(mode="wrap"), ValueError, "Blur: mode must be one of"),
            (lambda: Blur(radius=3, truncate=4), ValueError, "radius or truncate, not both"),
            (lambda: Blur(truncate=0), ValueError, "Blur: truncate"),
            (lambda: Blur(sigma=-1, truncate=4), ValueError, "Blur: sigma"),
            (lambda: MedianFilter()(x + 1), ValueError, r"values in \[0, 1\]")]:
        with pytest.raises(error, match=message):
            bad()
