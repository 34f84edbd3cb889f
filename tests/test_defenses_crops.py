"""Five crops resized back (Alshemali et al. after Graese et al.): exact values on a linear
ramp (bilinear interpolation reproduces linear functions, and the edge clamping is visible),
the identity at crop == H, agreement with scipy's zoom (an independent bilinear resize with
the same pixel-centre convention), the k-of-5 vote counted crop by crop, backends, bad input."""

import numpy as np
import pytest
from scipy import ndimage

from nnscratch import data
from nnscratch.backend import to_numpy
from nnscratch.defenses.crops import CROP_NAMES, CropResizeVote, crop_resize
from nnscratch.layers import Dense, Flatten
from nnscratch.model import Sequential


def ramp(n=2, channels=2, height=10, width=12):
    """x[n, c, i, j] = 0.01 (3 i + 2 j) + 0.1 c + 0.05 n: linear in the pixel position."""
    n_, c, i, j = np.meshgrid(np.arange(n), np.arange(channels), np.arange(height),
                              np.arange(width), indexing="ij")
    return 0.01 * (3 * i + 2 * j) + 0.1 * c + 0.05 * n_


def expected_ramp_crop(x, top, left, crop):
    """Resizing a crop of a ramp reads the ramp at the (clamped) source coordinates
    s = (d + 1/2) crop / size - 1/2, clamp to [0, crop - 1]: the ramp at top + s_row,
    left + s_column."""
    n, channels, height, width = x.shape
    s_row = np.clip((np.arange(height) + 0.5) * crop / height - 0.5, 0, crop - 1)
    s_col = np.clip((np.arange(width) + 0.5) * crop / width - 0.5, 0, crop - 1)
    rows, cols = np.meshgrid(top + s_row, left + s_col, indexing="ij")
    offsets = 0.1 * np.arange(channels)[None, :, None, None] + 0.05 * np.arange(n)[:, None,
                                                                                  None, None]
    return 0.01 * (3 * rows + 2 * cols)[None, None] + offsets


@pytest.mark.parametrize("crop", [7, 9, 10])
def test_resized_crops_of_a_ramp_are_known_exactly(xp, crop):
    x = ramp()
    out = crop_resize(xp.asarray(x), crop)
    assert out.shape == (5,) + x.shape
    bottom, right = 10 - crop, 12 - crop
    corners = [(0, 0), (bottom, 0), (0, right), (bottom, right), (bottom // 2, right // 2)]
    for k, (top, left) in enumerate(corners):
        np.testing.assert_allclose(to_numpy(out[k]), expected_ramp_crop(x, top, left, crop),
                                   rtol=0, atol=1e-12, err_msg=CROP_NAMES[k])


def test_the_edges_are_replicated_not_extrapolated():
    """Upscaling 2 pixels to 4: outputs 0 and 3 sit outside the pixel centres and copy the
    edge pixels; outputs 1 and 2 read s = 0.25 and 0.75."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, :2] = [0.0, 1.0]                       # top-left crop of size 2: [[0, 1], [0, 0]]
    np.testing.assert_allclose(crop_resize(x, 2)[0, 0, 0, 0], [0, 0.25, 0.75, 1])


def test_crop_of_the_whole_image_is_the_identity(xp):
    x = xp.asarray(np.random.default_rng(0).random((3, 1, 8, 8)))
    out = crop_resize(x, 8)
    for k in range(5):
        np.testing.assert_array_equal(to_numpy(out[k]), to_numpy(x))


def test_agrees_with_scipy_zoom_with_pixel_centre_sampling():
    """scipy's zoom with grid_mode=True (pixel edges aligned, so centres at (d + 1/2) scale)
    and mode="nearest" (edges replicated) is OpenCV's INTER_LINEAR for upscaling."""
    x = np.random.default_rng(1).random((4, 3, 28, 28))
    out = crop_resize(x, 24)
    for k, (top, left) in enumerate([(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)]):
        reference = ndimage.zoom(x[:, :, top:top + 24, left:left + 24], (1, 1, 28 / 24, 28 / 24),
                                 order=1, mode="nearest", grid_mode=True)
        np.testing.assert_allclose(out[k], reference, rtol=0, atol=1e-12)


def test_keeps_dtype_and_leaves_the_input_alone(xp):
    x = xp.asarray(np.random.default_rng(2).random((2, 1, 8, 8)).astype(np.float32))
    before = to_numpy(x).copy()
    out = crop_resize(x, 6)
    assert out.dtype == np.float32 and type(out) is type(x)
    np.testing.assert_array_equal(to_numpy(x), before)
    assert 0 <= float(out.min()) and float(out.max()) <= 1      # a convex combination of pixels


@pytest.mark.parametrize("x, crop, error, message", [
    (np.zeros((2, 1, 8, 8)), 9, ValueError, r"crop=9 is larger than the image \(8 x 8\)"),
    (np.zeros((2, 1, 8, 6)), 7, ValueError, "larger than the image"),
    (np.zeros((2, 1, 8, 8)), 0, ValueError, "crop must be a positive integer"),
    (np.zeros((2, 1, 8, 8)), 2.5, ValueError, "crop must be a positive integer"),
    (np.zeros((1, 8, 8)), 4, ValueError, r"shape \(N, C, H, W\)"),
    (np.zeros((2, 1, 8, 8), dtype=np.uint8), 4, ValueError, "floating point"),
    ([[0.0]], 4, TypeError, "array of images"),
])
def test_bad_input_is_refused(x, crop, error, message):
    with pytest.raises(error, match=message):
        crop_resize(x, crop)


# ------------------------------------------------------------------ the vote

def test_agreements_count_the_crops_classified_as_the_label(small_cnn_on_digits):
    model = small_cnn_on_digits
    x, _ = data.load("digits", split="test", limit=40)
    labels = model.predict(x)
    vote = CropResizeVote(model, crop=6, votes=3)
    counts = vote.agreements(x, labels)
    crops = crop_resize(x, 6)
    by_hand = sum((model.predict(crops[k]) == labels).astype(np.int64) for k in range(5))
    np.testing.assert_array_equal(counts, by_hand)
    assert counts.dtype == np.int64 and counts.shape == (40,)
    assert len(np.unique(counts)) > 1                     # not a trivially constant vote
    np.testing.assert_array_equal(vote.agree(x, labels), counts >= 3)
    assert vote.crop_predictions(x).shape == (5, 40)


def test_constant_images_get_five_votes_for_their_class_and_none_for_another(xp):
    """Every crop of a constant image is the image: all five crops get its label."""
    dense = Dense(16, 3)                 # z_k = a_k mean(x) + b_k: the class changes with c
    dense.params = {"W": np.tile([0.0, 2.0, 4.0], (16, 1)) / 16, "b": np.array([1.0, 0, -1.4])}
    model = Sequential([Flatten(), dense], input_shape=(1, 4, 4))
    model.to("gpu" if xp is not np else "cpu")
    x = xp.asarray(np.linspace(0.1, 0.9, 6)[:, None, None, None] * np.ones((6, 1, 4, 4)))
    before = to_numpy(x).copy()
    labels = model.predict(x)
    assert len(np.unique(to_numpy(labels))) > 1
    vote = CropResizeVote(model, crop=3)
    counts = vote.agreements(x, labels)
    assert type(counts) is type(x) and counts.dtype == np.int64
    np.testing.assert_array_equal(to_numpy(counts), 5)
    np.testing.assert_array_equal(to_numpy(vote.agreements(x, (labels + 1) % 3)), 0)
    assert bool(vote.agree(x, labels).all()) and not bool(vote.agree(x, (labels + 1) % 3).any())
    np.testing.assert_array_equal(to_numpy(x), before)


def test_vote_bad_settings_and_labels():
    model = Sequential([Flatten(), Dense(16, 3)], input_shape=(1, 4, 4))
    with pytest.raises(ValueError, match=r"votes must be in 1..5"):
        CropResizeVote(model, votes=6)
    with pytest.raises(ValueError, match="votes must be a positive integer"):
        CropResizeVote(model, votes=0)
    with pytest.raises(TypeError, match="model interface"):
        CropResizeVote(lambda v: v)
    vote = CropResizeVote(model, crop=3)
    with pytest.raises(ValueError, match=r"labels must be integers of shape \(2,\)"):
        vote.agreements(np.zeros((2, 1, 4, 4)), np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="larger than the image"):
        CropResizeVote(model, crop=5).agreements(np.zeros((2, 1, 4, 4)), np.zeros(2, np.int64))
