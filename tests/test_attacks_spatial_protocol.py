"""Wang & Zhang's spatial grid protocol (nnscratch/attacks/spatial.py, warps.py): the shrink in
TensorFlow 1's legacy bilinear convention against an independent reference, the shrink-pad-
warp-crop of the reference code equal to one warp of the framed image, the mass rule on
hand-made images, the 275-transform grid and its queries, the choice rule (misclassified valid
transform of highest loss) on a linear model built by hand, x_adv rebuilt from info, every
backend, and refusals of bad settings."""

import numpy as np
import pytest
from scipy import ndimage

from nnscratch.attacks.spatial import SpatialGrid, keeps_mass
from nnscratch.attacks.warps import framed, resize_bilinear, warp
from nnscratch.backend import device_of, to_numpy
from nnscratch.layers import Dense, Flatten
from nnscratch.model import Sequential

from test_attacks import Counting, images, tiny_model

WANG_ZHANG = dict(max_rotation=10, max_translation=10, rotations=11, translations=5, border=2,
                  mass_tolerance=0.1)


def digits_like(xp, n=4, seed=0):
    """(n, 1, 28, 28) float32: a random blob in the middle 14x14 on black, as MNIST digits sit."""
    x = np.zeros((n, 1, 28, 28), dtype=np.float32)
    x[:, :, 7:21, 7:21] = np.random.default_rng(seed).random((n, 1, 14, 14))
    return xp.asarray(x)


def linear_28(xp, seed=0):
    model = Sequential([Flatten(), Dense(28 * 28, 2, rng=np.random.default_rng(seed))],
                       input_shape=(1, 28, 28))
    return model.to(device_of(xp.zeros(0)))


# ------------------------------------------------------------------ the shrink

def test_resize_is_tensorflow_1_legacy_bilinear(xp):
    """Output index o samples the input at o * in / out (no half-pixel offset), the last index
    repeated: scipy's linear interpolation at those points is the reference. PyTorch's
    align_corners=False (half-pixel centres) is another convention and differs."""
    x = np.random.default_rng(0).random((2, 3, 28, 20))
    ours = to_numpy(resize_bilinear(xp.asarray(x), 24, 15))
    rows, columns = np.meshgrid(np.arange(24) * 28 / 24, np.arange(15) * 20 / 15, indexing="ij")
    reference = np.stack([[ndimage.map_coordinates(channel, [rows, columns], order=1)
                           for channel in image] for image in x])
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-14)
    ramp = xp.asarray(np.arange(4.0).reshape(1, 1, 1, 4))
    assert to_numpy(resize_bilinear(ramp, 1, 2)).ravel().tolist() == [0.0, 2.0]  # not .5, 2.5
    pair = xp.asarray(np.array([[[[0.0, 2.0]]]]))
    assert to_numpy(resize_bilinear(pair, 1, 4)).ravel().tolist() == [0.0, 1.0, 2.0, 2.0]


def test_a_constant_image_stays_constant_inside_its_black_border(xp):
    x = xp.asarray(np.full((2, 1, 28, 28), 0.7, dtype=np.float32))
    out = to_numpy(framed(x, 2))
    assert out.dtype == np.float32 and out.shape == (2, 1, 28, 28)
    assert (out[:, :, 2:26, 2:26] == np.float32(0.7)).all()
    out[:, :, 2:26, 2:26] = 0
    assert not out.any()


def test_the_reference_codes_pad_warp_crop_is_one_warp_of_the_framed_image():
    """Brown et al.'s code: shrink 28 -> 24, pad 4 to 32x32, rotate and translate, keep the
    centred 28x28. The same image (float64, up to rounding) as warping the framed 28x28."""
    rng = np.random.default_rng(1)
    x = rng.random((3, 1, 28, 28))
    padded = np.zeros((3, 1, 32, 32))
    padded[:, :, 4:28, 4:28] = resize_bilinear(x, 24, 24)
    angle, shift = rng.uniform(-10, 10, 3), rng.choice([-10, -5, 0, 5, 10], (3, 2))
    np.testing.assert_allclose(warp(padded, angle, shift)[:, :, 2:30, 2:30],
                               warp(framed(x, 2), angle, shift), rtol=0, atol=1e-12)


# ------------------------------------------------------------------ the mass rule

def test_the_mass_rule_at_its_threshold():
    """Valid iff |sum |x_t| - sum |x|| < tolerance * sum |x|: a change of exactly 10% is
    invalid, of 5% valid; the mass is absolute; a black image has no valid transform."""
    x = np.zeros((1, 1, 4, 5))
    x.ravel()[:10] = 1                                            # mass 10
    lost_one, lost_half = x.copy(), x.copy()
    lost_one.ravel()[0] = 0                                       # mass 9: changed by 10%
    lost_half.ravel()[0] = 0.5                                    # mass 9.5: by 5%
    batch = np.concatenate([lost_one, lost_half, -x])
    assert keeps_mass(np.repeat(x, 3, axis=0), batch, 0.1).tolist() == [False, True, True]
    assert not keeps_mass(np.zeros((1, 1, 4, 5)), np.zeros((1, 1, 4, 5)), 0.1).any()


def test_a_blob_pushed_out_of_the_frame_is_invalid_a_rotated_one_valid(xp):
    """Through the protocol's own transform (shrink into a 2-pixel border, then the warp): a
    centred disc rotated by 10 degrees keeps its mass, the same disc near the right edge moved
    10 pixels further right loses a part of it."""
    rows, columns = np.mgrid[:28, :28]
    centred = ((rows - 13.5) ** 2 + (columns - 13.5) ** 2 <= 25).astype(np.float32)
    near_edge = ((rows - 13.5) ** 2 + (columns - 19.5) ** 2 <= 25).astype(np.float32)
    x = xp.asarray(np.stack([centred, near_edge])[:, None])
    attack = SpatialGrid(**WANG_ZHANG)
    before = attack.apply(x, 0, (0, 0))
    after = attack.apply(x, [10, 0], [(0, 0), (10, 0)])
    assert keeps_mass(before, after, 0.1).tolist() == [True, False]


# ------------------------------------------------------------------ the grid and the choice

def test_the_protocol_grid_has_275_transforms_and_costs_275_queries():
    attack = SpatialGrid(**WANG_ZHANG)
    angles, shifts = attack.transforms(2)
    assert angles.shape == (2, 275) and shifts.shape == (2, 275, 2)
    assert sorted(set(angles[0])) == list(range(-10, 11, 2))
    assert sorted(set(shifts[0].ravel())) == [-10, -5, 0, 5, 10]
    assert len({(a, dx, dy) for a, (dx, dy) in zip(angles[0], shifts[0])}) == 275
    model, x = Counting(linear_28(np)), digits_like(np)
    result = attack.generate(model, x)
    assert (result.queries == 275 + 1).all() and int(result.queries.sum()) == model.seen


def hand_made_model(bias):
    """Linear on 8x8 images, class 0's logit 0, class 1's w.x + bias with w = (column - 3.5) +
    0.01 (row - 3.5) - 10: a blob moved right (and down) raises it, and so does any mass lost
    (10 per unit), so a blob pushed out of the frame has the highest loss for label 0."""
    dense = Dense(64, 2)
    rows, columns = np.mgrid[:8, :8]
    dense.params["W"][...] = 0
    dense.params["W"][:, 1] = ((columns - 3.5) + 0.01 * (rows - 3.5) - 10).ravel()
    dense.params["b"][...] = [0, bias]
    return Sequential([Flatten(), dense], input_shape=(1, 8, 8))


@pytest.mark.parametrize("bias, protocol, today", [
    (40, ((3, 3), True, ""), ((4, 4), True)),
    (27, ((3, 3), False, "no adversarial transform"), ((4, 4), True))],
    ids=["misclassified-valid", "none-misclassified"])
def test_the_choice_is_the_valid_transform_of_highest_loss(bias, protocol, today):
    """A 2x2 blob in the middle of a black 8x8 image, shifts -4..4 pixels per axis. A shift of
    3 keeps the blob inside (mass 4, logit 12.12 + bias - 40), a shift of 4 pushes half of it
    out (mass 2, invalid) and gives higher losses. The protocol keeps the valid shift (3, 3),
    misclassified (bias 40) or not (bias 27: the valid transform of highest loss, no success);
    without the mass rule (today's default) the attack takes (4, 4). The black second image has
    no valid transform: the identity, a failure."""
    x = np.zeros((2, 1, 8, 8))
    x[0, 0, 3:5, 3:5] = 1
    box = dict(max_rotation=0, rotations=1, max_translation=4, translations=9)
    y = np.zeros(2, dtype=np.int64)
    model = hand_made_model(bias)
    result = SpatialGrid(**box, mass_tolerance=0.1).generate(model, x, y)
    shift, success, failure = protocol
    assert result.info["shift"][0].tolist() == list(shift)
    assert result.success.tolist() == [success, False]
    assert result.info["valid"].tolist() == [True, False]
    assert result.info["failure"].tolist() == [failure, "no valid transform"]
    assert result.info["shift"][1].tolist() == [0, 0] and result.info["angle"][1] == 0
    assert not result.x_adv[1].any()
    default = SpatialGrid(**box).generate(model, x, y)
    assert default.info["shift"][0].tolist() == list(today[0])
    assert default.success[0] == today[1] and default.info["valid"].all()


@pytest.mark.parametrize("bias, shift", [(40, (0, 1)), (27, (4, 4))],
                         ids=["first-misclassified-valid", "invalid-of-highest-loss"])
def test_the_choice_as_brown_et_als_code_runs_it(bias, shift):
    """The same blob. With bias 40 the code keeps the first misclassified valid shift in its
    order (dx, then dy): (0, 1), where class 1's logit is 0.04 (the stated rule: (3, 3)). With
    bias 27 no valid shift is misclassified, and it keeps the invalid shift of highest loss,
    (4, 4), where one pixel of the blob is left: misclassified, so a success."""
    x = np.zeros((1, 1, 8, 8))
    x[0, 0, 3:5, 3:5] = 1
    box = dict(max_rotation=0, rotations=1, max_translation=4, translations=9)
    result = SpatialGrid(**box, mass_tolerance=0.1, choice="as_run").generate(
        hand_made_model(bias), x, np.zeros(1, dtype=np.int64))
    assert result.info["shift"][0].tolist() == list(shift)
    assert result.success.tolist() == [True]
    with pytest.raises(ValueError, match="grid mode with a mass_tolerance"):
        SpatialGrid(**box, choice="as_run")


# ------------------------------------------------------------------ x_adv from info, backends

def test_x_adv_is_the_protocol_transform_at_the_reported_parameters(xp):
    """float32 images: x_adv keeps x's dtype and device and is exactly attack.apply(x, angle,
    shift), a valid transform; x is not modified; success agrees with the model; the same
    images as on NumPy."""
    model, x = linear_28(xp), digits_like(xp)
    before = to_numpy(x).copy()
    attack = SpatialGrid(**WANG_ZHANG)
    result = attack.generate(model, x)
    assert np.array_equal(to_numpy(x), before)
    assert result.x_adv.dtype == np.float32 and device_of(result.x_adv) == device_of(x)
    angle, shift = result.info["angle"], result.info["shift"]
    assert np.array_equal(to_numpy(result.x_adv), to_numpy(attack.apply(x, angle, shift)))
    assert keeps_mass(attack.apply(x, 0, (0, 0)), result.x_adv, 0.1).all()   # chosen: valid
    success = to_numpy(result.success)
    assert np.array_equal(success, to_numpy(model.predict(result.x_adv) != model.predict(x)))
    assert result.info["valid"].all() and np.array_equal(result.info["failure"] == "", success)
    on_numpy = attack.generate(linear_28(np), digits_like(np))
    assert np.array_equal(to_numpy(result.x_adv), on_numpy.x_adv)
    assert np.array_equal(angle, on_numpy.info["angle"])


@pytest.mark.parametrize("mode", ["random", "first_order"])
def test_the_border_applies_in_the_other_modes(xp, mode):
    """random (with the mass rule) and first_order (border only) transform the framed image."""
    model, x = tiny_model(xp, dtype=np.float64), images(xp)
    attack = SpatialGrid(mode=mode, steps=3, border=1,
                         mass_tolerance=0.5 if mode == "random" else None)
    result = attack.generate(model, x)
    assert np.array_equal(to_numpy(result.x_adv),
                          to_numpy(attack.apply(x, result.info["angle"], result.info["shift"])))
    assert result.info["valid"].shape == (6,)


def test_settings_rebuild_the_protocol():
    attack = SpatialGrid(**WANG_ZHANG)
    assert {k: attack.settings()[k] for k in WANG_ZHANG} == WANG_ZHANG
    assert SpatialGrid(**attack.settings()).settings() == attack.settings()


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("make, error, match", [
    (lambda: SpatialGrid(mass_tolerance=-0.1), ValueError, "mass_tolerance"),
    (lambda: SpatialGrid(mass_tolerance=0), ValueError, "mass_tolerance"),
    (lambda: SpatialGrid(mass_tolerance="0.1"), TypeError, "mass_tolerance"),
    (lambda: SpatialGrid(mode="first_order", mass_tolerance=0.1), ValueError, "first_order"),
    (lambda: SpatialGrid(border=0), ValueError, "border"),
    (lambda: SpatialGrid(border=1.5), ValueError, "border")])
def test_bad_protocol_settings_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_a_border_that_leaves_nothing_of_the_image_is_refused():
    with pytest.raises(ValueError, match="border"):
        SpatialGrid(border=4).generate(tiny_model(np), images(np))      # 8x8: 2 * 4 >= 8
