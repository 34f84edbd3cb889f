"""Metrics: attack outcomes, SSIM against scikit-image, ECC alignment and PASS.

scikit-image is a test-only reference (``pip install scikit-image``); the tests that compare with
it skip without it. The ECC tests recover known warps, since an alignment that returns the
identity would pass the PASS tests that only compare scores."""

import math

import numpy as np
import pytest
from scipy import ndimage

from nnscratch import data, metrics


def digits(n=10):
    """n scikit-learn digits, (n, 1, 8, 8) float64 in [0, 1]."""
    x, _ = data.load("digits", limit=n)
    return x.astype(np.float64)


def mnist_like(n=10):
    """Digits enlarged to 20x20 and padded to 28x28 as MNIST is: (n, 1, 28, 28) in [0, 1]."""
    big = [np.pad(ndimage.zoom(image[0], 2.5, order=1), 4) for image in digits(n)]
    return np.clip(np.stack(big)[:, None], 0.0, 1.0)


def noisy(x, scale, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(x + scale * rng.standard_normal(x.shape), 0.0, 1.0)


def skimage_ssim(a, b, **options):
    """scikit-image's SSIM with Wang et al.'s settings, per image, averaged over channels."""
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    return np.array([np.mean([structural_similarity(
        a[n, c], b[n, c], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=1.0, **options) for c in range(a.shape[1])]) for n in range(len(a))])


# ------------------------------------------------------------------------------ attack outcomes

def test_success_rate_and_accuracy_under_attack():
    success = np.array([True, False, True, True])
    assert metrics.success_rate(success) == 0.75
    assert metrics.success_rate(success, where=np.array([True, True, False, False])) == 0.5
    assert math.isnan(metrics.success_rate(np.zeros(0, dtype=bool)))
    assert metrics.accuracy_under_attack([1, 2, 3, 4], [1, 0, 0, 4]) == 0.5
    with pytest.raises(ValueError, match="shape"):
        metrics.accuracy_under_attack([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="shape"):
        metrics.success_rate(success, where=np.array([True]))


def test_attack_report_averages_over_the_successful_images():
    norms = {"l2": np.array([1.0, 9.0, 3.0]), "linf": np.array([0.1, 0.9, 0.3])}
    report = metrics.attack_report([0, 1, 2], [0, 1, 0], [5, 1, 5], np.array([True, False, True]),
                                   norms, pass_scores=np.array([0.8, 0.0, 0.6]))
    assert report["clean_accuracy"] == pytest.approx(2 / 3)
    assert report["accuracy_under_attack"] == pytest.approx(1 / 3)
    assert report["success_rate"] == pytest.approx(2 / 3)
    assert report["mean_l2"] == 2.0 and report["mean_linf"] == pytest.approx(0.2)
    assert report["mean_pass"] == pytest.approx(0.7)
    assert math.isnan(metrics.attack_report([0], [0], [0], np.array([False]), norms={
        "l2": np.array([1.0])})["mean_l2"])


def test_metrics_take_arrays_of_any_backend(xp):
    success = xp.asarray(np.array([True, False]))
    assert metrics.success_rate(success) == 0.5
    assert metrics.accuracy_under_attack(xp.asarray(np.array([1, 2])),
                                         xp.asarray(np.array([1, 2]))) == 1.0
    x = mnist_like(2)
    assert np.allclose(metrics.ssim(xp.asarray(x), xp.asarray(x)), 1.0)


# ------------------------------------------------------------------------------------ SSIM

def test_ssim_matches_scikit_image_on_random_colour_images():
    rng = np.random.default_rng(1)
    a = rng.random((4, 3, 32, 32))
    b = noisy(a, 0.1)
    assert np.abs(metrics.ssim(a, b) - skimage_ssim(a, b)).max() < 1e-6
    c = rng.random((2, 1, 11, 13))        # the smallest size with the full 11x11 window
    d = noisy(c, 0.3)
    assert np.abs(metrics.ssim(c, d) - skimage_ssim(c, d)).max() < 1e-6


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ssim_matches_scikit_image_on_mnist_like_images(dtype):
    x = mnist_like().astype(dtype)
    for x_adv in (noisy(x, 0.1).astype(dtype), np.clip(x + 0.2, 0, 1).astype(dtype),
                  ndimage.shift(x, (0, 0, 1, 1), order=0)):
        # scikit-image computes in float32 for float32 images, we in float64
        assert np.abs(metrics.ssim(x, x_adv) - skimage_ssim(x, x_adv)).max() < 1e-6


@pytest.mark.parametrize("win_size", [7, 5, 3, 1])
def test_ssim_on_8x8_digits_matches_scikit_image_with_the_same_win_size(win_size):
    # 8x8 is smaller than the 11x11 window, which scikit-image refuses unless win_size is given;
    # win_size sets only the border left out of the mean there and here
    x = digits()
    x_adv = noisy(x, 0.2)
    ours = metrics.ssim(x, x_adv, win_size=win_size)
    assert np.abs(ours - skimage_ssim(x, x_adv, win_size=win_size)).max() < 1e-6
    if win_size == 7:             # the default for images under 11 pixels: the largest odd fit
        assert np.array_equal(metrics.ssim(x, x_adv), ours)


def test_ssim_values():
    x = mnist_like(3)
    assert np.array_equal(metrics.ssim(x, x), np.ones(3))
    assert metrics.ssim(x, x).dtype == np.float64 and metrics.ssim(x, x).shape == (3,)
    assert np.all(metrics.ssim(x, noisy(x, 0.3)) < metrics.ssim(x, noisy(x, 0.05)))


def test_ssim_and_pass_refuse_bad_input():
    x = mnist_like(2)
    for function in (metrics.ssim, metrics.pass_score):
        with pytest.raises(ValueError, match="shape"):
            function(x, x[:1])
        with pytest.raises(ValueError, match="shape"):
            function(x[0], x[0])
        with pytest.raises(ValueError, match=r"in \[0, 1"):
            function(x, x + 0.5)
        with pytest.raises(ValueError, match=r"in \[0, 1"):
            function(x - 0.5, x)
        with pytest.raises(ValueError, match=r"in \[0, 1"):
            function(x, np.full_like(x, np.nan))
    for win_size in (0, 2, 29, 3.0):
        with pytest.raises(ValueError, match="win_size"):
            metrics.ssim(x, x, win_size=win_size)
    with pytest.raises(ValueError, match="motion"):
        metrics.ecc_align(x[0, 0], x[0, 0], motion="perspective")


# ------------------------------------------------------------------- ECC alignment and PASS

@pytest.mark.parametrize("motion", ["translation", "affine", "homography"])
def test_ecc_recovers_a_known_shift(motion):
    # image(r) = template(r - d) for d = (1.5, -2) (rows, columns), so image(r + d) = template(r):
    # the warp that aligns it moves x (columns) by -2 and y (rows) by +1.5
    expected = np.array([[1.0, 0.0, -2.0], [0.0, 1.0, 1.5], [0.0, 0.0, 1.0]])
    for template in mnist_like(5)[:, 0]:
        image = ndimage.shift(template, (1.5, -2.0), order=3)
        matrix, rho = metrics.ecc_align(image, template, motion)
        assert np.abs(matrix[:2, 2] - expected[:2, 2]).max() < 0.1
        assert np.abs(matrix[:2, :2] - np.eye(2)).max() < 0.01
        assert np.abs(matrix[2, :2]).max() < 1e-3 and rho > 0.999
        aligned = metrics.warp_image(image, matrix)
        assert metrics.ssim(template[None, None], np.clip(aligned, 0, 1)[None, None])[0] > 0.97


def test_ecc_recovers_a_known_rotation():
    for template in mnist_like(5)[:, 0]:
        # scipy's rotate by +5 degrees (about the centre) is undone by a rotation of -5 degrees
        image = ndimage.rotate(template, 5.0, reshape=False, order=3)
        matrix, _ = metrics.ecc_align(image, template)
        angle = math.degrees(math.atan2(matrix[1, 0], matrix[0, 0]))
        assert angle == pytest.approx(-5.0, abs=0.1)
        assert np.abs(matrix[:2, :2].T @ matrix[:2, :2] - np.eye(2)).max() < 0.02   # a rotation
        assert np.abs(matrix[:2, 2]).max() < 0.1 and np.abs(matrix[2, :2]).max() < 1e-3
        aligned = metrics.warp_image(image, matrix)
        assert metrics.ssim(template[None, None], np.clip(aligned, 0, 1)[None, None])[0] > 0.97


def test_ecc_leaves_identical_and_constant_images_alone():
    template = mnist_like(1)[0, 0]
    matrix, rho = metrics.ecc_align(template, template)
    assert np.abs(matrix - np.eye(3)).max() < 1e-9 and rho == pytest.approx(1.0)
    matrix, rho = metrics.ecc_align(np.zeros_like(template), template)
    assert np.array_equal(matrix, np.eye(3)) and math.isnan(rho)


def test_pass_of_identical_images_is_one():
    for x in (mnist_like(), digits(), np.random.default_rng(2).random((2, 3, 16, 16))):
        assert np.allclose(metrics.pass_score(x, x), 1.0, atol=1e-9)


def test_pass_is_close_to_ssim_for_additive_noise():
    x = mnist_like()
    x_adv = noisy(x, 0.05)
    plain, aligned = metrics.ssim(x, x_adv), metrics.pass_score(x, x_adv)
    assert np.abs(aligned - plain).max() < 0.02


def test_pass_forgives_a_shift_that_ssim_punishes():
    x = mnist_like()
    x_adv = np.clip(ndimage.shift(x, (0, 0, 1.5, -2.0), order=3), 0.0, 1.0)
    plain, aligned = metrics.ssim(x, x_adv), metrics.pass_score(x, x_adv)
    assert np.all(plain < 0.6) and np.all(aligned > 0.95)
    colour = np.repeat(x[:3], 3, axis=1) * np.array([1.0, 0.7, 0.4])[:, None, None]
    shifted = np.clip(ndimage.shift(colour, (0, 0, 1.0, 1.0), order=3), 0.0, 1.0)
    assert np.all(metrics.pass_score(colour, shifted) > 0.95)
