"""Attacks (nnscratch/attacks): each checked against its definition on every backend, on a tiny
untrained model; success checked on a small CNN trained on digits; exact query counts through a
wrapper model that counts the images it sees; refusals of bad input."""


import numpy as np
import pytest

from nnscratch import data
from nnscratch.attacks import (BIM, FGSM, FGV, PGD, HotCold, LocalSearch, SpatialGrid,
                               perturbation_norms)
from nnscratch.attacks.base import Oracle
from nnscratch.backend import device_of, to_numpy
from nnscratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from nnscratch.model import Model, Sequential


def tiny_model(xp, dtype=np.float32, constant=False):
    """conv3x3x4, ReLU, maxpool, dense 5: every kind of layer on 8x8 images. ``constant``: the
    dense layer's weights are zero, so the logits are the bias whatever x (zero gradient)."""
    rng = np.random.default_rng(0)
    dense = Dense(4 * 4 * 4, 5, rng=rng)
    if constant:
        dense.params["W"][...] = 0
    model = Sequential([Conv2D(1, 4, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2), Flatten(),
                        dense], input_shape=(1, 8, 8))
    return model.astype(dtype).to(device_of(xp.zeros(0)))


def images(xp, n=6, seed=1):
    return xp.asarray(np.random.default_rng(seed).random((n, 1, 8, 8)).astype(np.float32))


class Counting(Model):
    """``model`` behind a wrapper that counts the images it runs forward (logits or gradient):
    a wrapper, too, has the whole interface, and attacks use nothing else."""

    def __init__(self, model):
        self.model, self.input_shape, self.seen = model, model.input_shape, 0

    def batch_logits(self, x, rng=None):
        self.seen += len(x)
        return self.model.batch_logits(x, rng)

    def batch_features(self, x, names):
        return self.model.batch_features(x, names)

    def batch_vjp(self, x, rng=None, tap=None):
        self.seen += len(x)
        return self.model.batch_vjp(x, rng, tap)

    device = property(lambda self: self.model.device)


ATTACKS = {"fgsm": lambda: FGSM(0.1), "fgv": lambda: FGV(0.5, norm="l2"),
           "fgsm-minimal": lambda: FGSM(minimal=True), "fgv-minimal": lambda: FGV(minimal=True),
           "bim": lambda: BIM(0.1, step=0.03, steps=4), "bim-a": lambda: BIM(0.1, early_stop=True),
           "pgd": lambda: PGD(0.1, steps=4), "pgd-l2": lambda: PGD(0.5, steps=4, norm="l2")}


# ------------------------------------------------------------------ definitions, every backend

def test_fgsm_is_the_clipped_signed_gradient_step(xp):
    model, x = tiny_model(xp), images(xp)
    y, t = xp.asarray(np.arange(6) % 5), xp.asarray((np.arange(6) + 1) % 5)
    grad = model.loss_gradient(x, y)[1]
    expected = xp.clip(x + 0.1 * xp.sign(grad), 0, 1)
    assert np.array_equal(to_numpy(FGSM(0.1).generate(model, x, y).x_adv), to_numpy(expected))
    towards = xp.clip(x - 0.1 * xp.sign(model.loss_gradient(x, t)[1]), 0, 1)
    result = FGSM(0.1, targeted=True).generate(model, x, y, target=t)
    assert np.array_equal(to_numpy(result.x_adv), to_numpy(towards))
    assert np.array_equal(to_numpy(result.target), to_numpy(t))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgv_is_the_gradient_scaled_to_eps(xp, norm):
    model, x = tiny_model(xp, dtype=np.float64), images(xp).astype(np.float64)
    y = model.predict(x)
    g = to_numpy(model.loss_gradient(x, y)[1]).reshape(6, -1)
    size = np.abs(g).max(axis=1) if norm == "linf" else np.linalg.norm(g, axis=1)
    expected = np.clip(to_numpy(x).reshape(6, -1) + 0.2 * g / size[:, None], 0, 1)
    x_adv = FGV(0.2, norm=norm).generate(model, x).x_adv
    np.testing.assert_allclose(to_numpy(x_adv).reshape(6, -1), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("attack", [BIM(0.05, step=0.02, steps=6), BIM(0.05, early_stop=True),
                                    PGD(0.05, steps=6), PGD(0.05, steps=6, random_start=False),
                                    PGD(0.4, steps=6, norm="l2")],
                         ids=["bim", "bim-a", "pgd", "pgd-no-start", "pgd-l2"])
def test_iterative_attacks_stay_in_the_ball_and_the_pixel_range(xp, attack):
    model, x = tiny_model(xp), images(xp)
    result = attack.generate(model, x)
    x_adv = to_numpy(result.x_adv)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    norm = to_numpy(result.norms[attack.norm if isinstance(attack, PGD) else "linf"])
    assert (norm <= attack.eps * (1 + 1e-6) + 1e-7).all()
    assert (norm > attack.eps / 2).any()       # it did move


@pytest.mark.parametrize("attack", [FGSM(0), FGV(0), FGV(0, norm="l2"), BIM(0), BIM(0, steps=5),
                                    PGD(0), PGD(0, norm="l2")],
                         ids=["fgsm", "fgv", "fgv-l2", "bim", "bim-5", "pgd", "pgd-l2"])
def test_eps_zero_returns_x_unchanged(xp, attack):
    model, x = tiny_model(xp), images(xp)
    assert np.array_equal(to_numpy(attack.generate(model, x).x_adv), to_numpy(x))


@pytest.mark.parametrize("name", ATTACKS)
def test_input_untouched_dtype_kept_norms_exact(xp, name):
    """float32 images on a float64 model: x_adv stays float32; x is not modified; the result's
    norms are those of x_adv - x."""
    model, x = tiny_model(xp, dtype=np.float64), images(xp)
    before = to_numpy(x).copy()
    result = ATTACKS[name]().generate(model, x)
    assert np.array_equal(to_numpy(x), before)
    assert result.x_adv.dtype == np.float32 and device_of(result.x_adv) == device_of(x)
    delta = (to_numpy(result.x_adv) - before).reshape(6, -1).astype(np.float64)
    expected = {"l0": (delta != 0).sum(1), "l1": np.abs(delta).sum(1),
                "l2": np.linalg.norm(delta, axis=1), "linf": np.abs(delta).max(1)}
    for key, value in expected.items():
        np.testing.assert_allclose(to_numpy(result.norms[key]), value, rtol=1e-5, atol=1e-7)
    assert result.success.shape == (6,) and result.success.dtype == bool
    assert result.info["failure"].shape == (6,)
    assert ((result.info["failure"] == "") == to_numpy(result.success)).all()


@pytest.mark.parametrize("name", ATTACKS)
def test_constant_model_fails_cleanly(xp, name):
    """No gradient to follow: every image fails with the reason "zero gradient", in few queries."""
    model, x = tiny_model(xp, constant=True), images(xp)
    result = ATTACKS[name]().generate(model, x)
    assert not to_numpy(result.success).any()
    assert (result.info["failure"] == "zero gradient").all()
    if not name.startswith("pgd"):                  # PGD's random start moves x
        assert np.array_equal(to_numpy(result.x_adv), to_numpy(x))
    if name.endswith("minimal"):                    # labels, one gradient, no probe
        assert (to_numpy(result.queries) == 2).all()


def test_pgd_is_deterministic_given_its_seed(xp):
    model, x = tiny_model(xp), images(xp)
    first, again = (PGD(0.1, steps=3, seed=5).generate(model, x).x_adv for _ in range(2))
    other = PGD(0.1, steps=3, seed=6).generate(model, x).x_adv
    assert np.array_equal(to_numpy(first), to_numpy(again))
    assert not np.array_equal(to_numpy(first), to_numpy(other))


@pytest.mark.parametrize("name", ATTACKS)
def test_queries_count_every_image_the_model_sees(name):
    """The model behind a counting wrapper: the queries reported sum to the images it saw."""
    model = Counting(tiny_model(np))
    result = ATTACKS[name]().generate(model, images(np))
    assert int(result.queries.sum()) == model.seen


def test_query_counts_of_the_fixed_budget_attacks():
    model, x = tiny_model(np), images(np)
    y = model.predict(x)
    assert (FGSM(0.1).generate(model, x).queries == 3).all()        # labels, gradient, check
    assert (FGSM(0.1).generate(model, x, y).queries == 2).all()
    assert (BIM(0.1, steps=7).generate(model, x, y).queries == 8).all()
    assert (PGD(0.1, steps=7).generate(model, x, y).queries == 8).all()


def test_oracle_counts_every_row_of_a_repeated_index():
    """Three candidates made from image 1 and one from image 3 cost them 3 and 1 queries."""
    model, x = tiny_model(np), images(np)
    oracle = Oracle(model, model.predict(x), None, np.zeros(6, dtype=np.int64))
    oracle.probabilities(x[[1, 1, 3, 1]], np.array([1, 1, 3, 1]))
    oracle.logits(x[[0, 0]], np.array([0, 0]))
    oracle.jacobian(x[2:4], np.array([2, 3]))
    np.testing.assert_array_equal(oracle.queries, [2, 3, 1, 2, 0, 0])


def test_l0_pixels_counts_positions_not_channels():
    """A 3-channel image with one pixel changed in all channels: l0 3, l0_pixels 1; a second
    image with two channels changed at two positions: l0 2, l0_pixels 2."""
    x = np.zeros((2, 3, 4, 4), dtype=np.float32)
    x_adv = x.copy()
    x_adv[0, :, 1, 2] = 0.5
    x_adv[1, 0, 0, 0], x_adv[1, 2, 3, 3] = 1, 0.25
    norms = perturbation_norms(x, x_adv)
    np.testing.assert_array_equal(norms["l0"], [3, 2])
    np.testing.assert_array_equal(norms["l0_pixels"], [1, 2])
    assert norms["l0_pixels"].dtype == np.int64


# ------------------------------------------------------------------ on a trained model

@pytest.fixture(scope="module")
def trained(small_cnn_on_digits):
    """small_cnn after 5 epochs on digits (about 95% on its test split), 60 test images."""
    model = small_cnn_on_digits
    x_test, y_test = data.load("digits", split="test", limit=60)
    return model, x_test, y_test


def test_pgd_and_fgsm_succeed_on_a_trained_model(trained):
    model, x, y = trained
    assert PGD(0.3, step=0.01, steps=40).generate(model, x, y).success_rate >= 0.9
    assert FGSM(0.3).generate(model, x, y).success_rate >= 0.8
    assert BIM(0.3).generate(model, x, y).success_rate >= 0.9
    target = (y + 1) % 10
    result = PGD(0.3, step=0.01, steps=40, targeted=True).generate(model, x, y, target=target)
    assert result.success_rate >= 0.8
    assert np.array_equal(result.success, model.predict(result.x_adv) == target)


def test_bim_a_stops_each_image_at_its_first_misclassification(trained):
    model, x, y = trained
    full, early = BIM(0.3).generate(model, x, y), BIM(0.3, early_stop=True).generate(model, x, y)
    assert np.array_equal(full.success, early.success) or early.success_rate >= full.success_rate
    assert early.norms["l2"][early.success].mean() < full.norms["l2"][full.success].mean()


@pytest.mark.parametrize("attack, fixed", [
    (FGSM(minimal=True), lambda w: FGSM(w)),
    (FGV(minimal=True), lambda w: FGV(w)),
    (FGV(minimal=True, norm="l2", tolerance=1e-2), lambda w: FGV(w, norm="l2")),
    (FGSM(minimal=True, targeted=True), lambda w: FGSM(w, targeted=True))],
    ids=["fgsm", "fgv", "fgv-l2", "fgsm-targeted"])
def test_minimal_step_just_switches_the_class(trained, attack, fixed):
    """At the step found the image is adversarial (and is the fixed-step attack's image); at the
    largest step below it that the search tried, it is not; the two are within the tolerance."""
    model, x, y = trained
    target = (y + 3) % 10 if attack.targeted else None
    result = attack.generate(model, x, y, target=target)
    assert result.success_rate >= 0.8
    for i in np.flatnonzero(result.success)[:15]:
        one = slice(i, i + 1)
        w, below = float(result.info["w"][i]), float(result.info["w_below"][i])
        t = None if target is None else target[one]
        at = fixed(w).generate(model, x[one], y[one], target=t)
        assert at.success[0]        # the same image, up to the rounding of a batch of one:
        np.testing.assert_allclose(at.x_adv[0], result.x_adv[i], rtol=0, atol=1e-6)
        assert not fixed(below).generate(model, x[one], y[one], target=t).success[0]
        assert w - below <= attack.tolerance * w * (1 + 1e-6)


def test_minimal_search_reports_the_bound(trained):
    model, x, y = trained
    result = FGSM(minimal=True, max_eps=0.01).generate(model, x, y)
    failed = ~result.success
    assert failed.any()
    assert (result.info["failure"][failed] == "bound reached").all()
    assert np.allclose(result.norms["linf"][failed], 0.01, atol=1e-6)


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("make, error, match", [
    (lambda: FGSM(-0.1), ValueError, "eps"), (lambda: FGSM(float("nan")), ValueError, "eps"),
    (lambda: FGSM("0.1"), TypeError, "eps"), (lambda: FGSM(), TypeError, "eps"),
    (lambda: FGSM(0.1, minimal=True), ValueError, "max_eps"),
    (lambda: FGSM(0.1, max_eps=1.0), ValueError, "minimal"),
    (lambda: FGSM(minimal=True, tolerance=0), ValueError, "tolerance"),
    (lambda: FGV(0.1, norm="l1"), ValueError, "norm"),
    (lambda: FGSM(0.1, targeted=1), TypeError, "targeted"),
    (lambda: BIM(0.1, step=0), ValueError, "step"), (lambda: BIM(0.1, steps=-1), ValueError, "steps"),
    (lambda: BIM(0.1, early_stop="yes"), TypeError, "early_stop"),
    (lambda: PGD(-1), ValueError, "eps"), (lambda: PGD(0.1, steps=2.5), ValueError, "steps"),
    (lambda: PGD(0.1, seed=-1), ValueError, "seed"),
    (lambda: PGD(0.1, random_start=None), TypeError, "random_start")])
def test_bad_hyper_parameters_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs_are_refused():
    model, x = tiny_model(np), images(np)
    y = np.arange(6) % 5
    cases = [(lambda: FGSM(0.1).generate(model, x * 2), ValueError, r"\[0, 1\]"),
             (lambda: FGSM(0.1).generate(model, x - 0.5), ValueError, r"\[0, 1\]"),
             (lambda: FGSM(0.1).generate(model, (x * 255).astype(np.uint8)), ValueError, "float"),
             (lambda: FGSM(0.1).generate(model, x[0]), ValueError, "N, C, H, W"),
             (lambda: FGSM(0.1).generate(model, x, y[:5]), ValueError, "y"),
             (lambda: FGSM(0.1).generate(model, x, y.astype(float)), ValueError, "y"),
             (lambda: FGSM(0.1).generate(model, x, list(y)), TypeError, "y"),
             (lambda: PGD(0.1, targeted=True).generate(model, x, y), ValueError, "target"),
             (lambda: PGD(0.1, targeted=True).generate(model, x, y, target=y[:3]), ValueError,
              "target"),
             (lambda: BIM(0.1, targeted=True).generate(model, x, y, target=y), ValueError,
              "target must differ"),
             (lambda: FGSM(0.1).generate(model, x, y, target=(y + 1) % 5), ValueError,
              "pass targeted=True to FGSM")]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()
    nan = x.copy()
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FGSM(0.1).generate(model, nan)


@pytest.mark.parametrize("attack", [LocalSearch(), SpatialGrid(), HotCold()],
                         ids=["LocalSearch", "SpatialGrid", "HotCold"])
def test_a_target_to_an_untargeted_only_attack_says_so(attack):
    """An attack that takes no target (can_target False) says it is untargeted only, rather than
    pointing at a targeted=True it does not have."""
    model, x = tiny_model(np), images(np)
    y = np.arange(6) % 5
    assert not attack.can_target
    name = type(attack).__name__
    with pytest.raises(ValueError, match=f"{name} is untargeted only") as refused:
        attack.generate(model, x, y, target=(y + 1) % 5)
    assert "targeted=True" not in str(refused.value)
