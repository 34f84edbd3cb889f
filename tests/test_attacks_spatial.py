"""The spatial attack (nnscratch/attacks/spatial.py, warps.py): the warp's conventions
(identity, np.rot90, whole-pixel shifts), x_adv is exactly the warp at the reported parameters,
the hand-written derivative of the warp with respect to (angle, dx, dy) against central
differences in float64, exact query counts through a counting wrapper, clean failure on a
constant model, success on a small CNN trained on digits, refusals of bad hyper-parameters."""


import numpy as np
import pytest

from nnscratch import data
from nnscratch.attacks.spatial import SpatialGrid
from nnscratch.attacks.warps import warp, warp_gradient
from nnscratch.backend import device_of, to_numpy

from test_attacks import Counting, images, tiny_model

MODES = {"grid": lambda: SpatialGrid(),
         "grid-small": lambda: SpatialGrid(rotations=5, translations=3),
         "random": lambda: SpatialGrid(mode="random"),
         "first_order": lambda: SpatialGrid(mode="first_order", steps=4)}


# ------------------------------------------------------------------ the warp, every backend

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_identity_returns_x(xp, dtype):
    x = images(xp).astype(dtype)
    out = warp(x, 0, (0, 0))
    assert out.dtype == dtype and np.array_equal(to_numpy(out), to_numpy(x))
    nothing = SpatialGrid(max_rotation=0, max_translation=0, rotations=1, translations=1)
    assert np.array_equal(to_numpy(nothing.generate(tiny_model(xp), x).x_adv), to_numpy(x))


def test_rotation_by_90_degrees_is_rot90_counter_clockwise(xp):
    """+90 degrees is np.rot90 (counter-clockwise on screen, row 0 at the top), -90 its inverse;
    exact up to cos(90 degrees) ~ 6e-17 not being 0."""
    x = images(xp).astype(np.float64)
    host = to_numpy(x)
    np.testing.assert_allclose(to_numpy(warp(x, 90, (0, 0))), np.rot90(host, 1, axes=(2, 3)),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(to_numpy(warp(x, -90, (0, 0))), np.rot90(host, -1, axes=(2, 3)),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(to_numpy(warp(x, 180, (0, 0))), host[:, :, ::-1, ::-1],
                               rtol=0, atol=1e-12)


def test_whole_pixel_shifts_move_right_and_down_with_zero_padding(xp):
    x = images(xp)
    host = to_numpy(x)
    right = np.zeros_like(host)
    right[..., 2:] = host[..., :-2]
    assert np.array_equal(to_numpy(warp(x, 0, (2, 0))), right)
    down = np.zeros_like(host)
    down[..., 1:, :] = host[..., :-1, :]
    assert np.array_equal(to_numpy(warp(x, 0, (0, 1))), down)
    assert not to_numpy(warp(x, 0, (9, 0))).any()          # shifted out of the image


def test_warp_gradient_matches_central_differences(xp):
    """d(sum g * warp)/d(angle, dx, dy) for a random upstream g, float64, at parameters whose
    sampling points are away from whole pixels (the bilinear kinks)."""
    rng = np.random.default_rng(3)
    x = images(xp).astype(np.float64)
    g = xp.asarray(rng.standard_normal(x.shape))
    angle = rng.uniform(-30, 30, 6)
    shift = rng.uniform(-2, 2, (6, 2))
    analytic = warp_gradient(x, angle, shift, g)
    h = 1e-6
    for k in range(3):
        step = np.zeros(3)
        step[k] = h
        plus = to_numpy((g * warp(x, angle + step[0], shift + step[1:])).sum(axis=(1, 2, 3)))
        minus = to_numpy((g * warp(x, angle - step[0], shift - step[1:])).sum(axis=(1, 2, 3)))
        numeric = (plus - minus) / (2 * h)
        np.testing.assert_allclose(analytic[:, k], numeric, rtol=1e-6, atol=1e-8)
        assert np.linalg.norm(analytic[:, k] - numeric) <= 1e-6 * np.linalg.norm(numeric)


def test_loss_gradient_through_the_warp_matches_central_differences():
    """The first-order attack's gradient: model.loss_gradient chained through warp_gradient,
    against central differences of the model's loss (float64)."""
    rng = np.random.default_rng(4)
    model, x = tiny_model(np, dtype=np.float64), images(np).astype(np.float64)
    y = model.predict(x)
    angle, shift = rng.uniform(-30, 30, 6), rng.uniform(-2, 2, (6, 2))
    analytic = warp_gradient(x, angle, shift, model.loss_gradient(warp(x, angle, shift), y)[1])
    h = 1e-6
    for k in range(3):
        step = np.zeros(3)
        step[k] = h
        plus = model.loss_gradient(warp(x, angle + step[0], shift + step[1:]), y)[0]
        minus = model.loss_gradient(warp(x, angle - step[0], shift - step[1:]), y)[0]
        np.testing.assert_allclose(analytic[:, k], (plus - minus) / (2 * h), rtol=1e-5,
                                   atol=1e-8)


# ------------------------------------------------------------------ the attack, every backend

@pytest.mark.parametrize("name", MODES)
def test_x_adv_is_the_warp_at_the_reported_parameters(xp, name):
    """float32 images on a float64 model: x_adv stays float32 and is exactly warp(x, angle,
    shift) for the reported parameters, inside the box; x is not modified; norms exact."""
    model, x = tiny_model(xp, dtype=np.float64), images(xp)
    before = to_numpy(x).copy()
    attack = MODES[name]()
    result = attack.generate(model, x)
    assert np.array_equal(to_numpy(x), before)
    assert result.x_adv.dtype == np.float32 and device_of(result.x_adv) == device_of(x)
    angle, shift = result.info["angle"], result.info["shift"]
    assert angle.shape == (6,) and shift.shape == (6, 2)
    assert (np.abs(angle) <= attack.max_rotation).all()
    assert (np.abs(shift) <= attack.max_translation).all()
    assert np.array_equal(to_numpy(result.x_adv), to_numpy(warp(x, angle, shift)))
    x_adv = to_numpy(result.x_adv)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    delta = (x_adv - before).reshape(6, -1).astype(np.float64)
    np.testing.assert_allclose(to_numpy(result.norms["l2"]), np.linalg.norm(delta, axis=1),
                               rtol=1e-5)
    success = to_numpy(result.success)
    assert success.shape == (6,) and success.dtype == bool
    assert np.array_equal(success, to_numpy(model.predict(result.x_adv) != model.predict(x)))
    assert np.array_equal(result.info["failure"] == "", success)


@pytest.mark.parametrize("name", MODES)
def test_constant_model_fails_cleanly(xp, name):
    result = MODES[name]().generate(tiny_model(xp, constant=True), images(xp))
    assert not to_numpy(result.success).any()
    expected = "zero gradient" if name == "first_order" else "no adversarial transform"
    assert (result.info["failure"] == expected).all()
    if name == "first_order":                     # no gradient: it stays at the identity
        assert np.array_equal(to_numpy(result.x_adv), to_numpy(images(xp)))


def test_random_mode_is_deterministic_given_its_seed():
    model, x = tiny_model(np), images(np)
    first, again, other = (SpatialGrid(mode="random", seed=s).generate(model, x).info["angle"]
                           for s in (5, 5, 6))
    assert np.array_equal(first, again) and not np.array_equal(first, other)


@pytest.mark.parametrize("name, per_image", [("grid", 31 * 5 * 5), ("grid-small", 5 * 3 * 3),
                                             ("random", 10), ("first_order", 4 + 1)])
def test_queries_are_exact(name, per_image):
    """One query per transformed image evaluated (first_order: per gradient, plus the final
    check), one more for the default labels; the sum is the images the model saw. The 775-image
    grid on 6 images also crosses a chunk boundary (5 images per call)."""
    model, x = Counting(tiny_model(np)), images(np)
    result = MODES[name]().generate(model, x)
    assert (result.queries == per_image + 1).all() and int(result.queries.sum()) == model.seen
    y = tiny_model(np).predict(x)
    assert (MODES[name]().generate(model, x, y).queries == per_image).all()


# ------------------------------------------------------------------ on a trained model

@pytest.fixture(scope="module")
def trained(small_cnn_on_digits):
    """small_cnn after 5 epochs on digits (about 95% on its test split), 60 test images."""
    model = small_cnn_on_digits
    x_test, y_test = data.load("digits", split="test", limit=60)
    return model, x_test, y_test


ROTATION_ONLY = dict(max_translation=0, translations=1)


@pytest.mark.parametrize("attack, floor", [
    (SpatialGrid(), 0.9),                                             # measured 60/60
    (SpatialGrid(**ROTATION_ONLY), 0.65),                             # measured 49/60
    (SpatialGrid(mode="random", **ROTATION_ONLY), 0.5),               # measured 41/60
    (SpatialGrid(mode="first_order", **ROTATION_ONLY), 0.55)],        # measured 43/60
    ids=["grid", "grid-rotation", "random-rotation", "first-order-rotation"])
def test_spatial_attacks_fool_a_trained_model(trained, attack, floor):
    """On 8x8 digits a shift of one pixel alone fools small_cnn on nearly every image, so the
    default box (3 pixels, 30 degrees) always wins; rotations alone (+-30 degrees) separate the
    modes. Success agrees with the model's predictions of x_adv."""
    model, x, y = trained
    result = attack.generate(model, x, y)
    assert result.success_rate >= floor
    assert np.array_equal(result.success, model.predict(result.x_adv) != y)


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("make, error, match", [
    (lambda: SpatialGrid(max_rotation=-1), ValueError, "max_rotation"),
    (lambda: SpatialGrid(max_translation=float("nan")), ValueError, "max_translation"),
    (lambda: SpatialGrid(rotations=0), ValueError, "rotations"),
    (lambda: SpatialGrid(translations=2.5), ValueError, "translations"),
    (lambda: SpatialGrid(mode="worst"), ValueError, "mode"),
    (lambda: SpatialGrid(random_trials=0), ValueError, "random_trials"),
    (lambda: SpatialGrid(steps=-1), ValueError, "steps"),
    (lambda: SpatialGrid(seed=-1), ValueError, "seed"),
    (lambda: SpatialGrid(max_rotation="30"), TypeError, "max_rotation")])
def test_bad_hyper_parameters_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_a_target_is_refused():
    x = images(np)
    with pytest.raises(ValueError, match="untargeted"):
        SpatialGrid().generate(tiny_model(np), x, target=np.zeros(6, dtype=np.int64))
