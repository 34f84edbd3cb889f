"""Query-only attacks (nnscratch/attacks/query.py): OnePixel and LocalSearch. Exact query counts
through a wrapper model that counts the images it sees; no gradient asked for (a wrapper whose
gradient primitive raises); the pixel budget of OnePixel; the pixel range; determinism; a
constant model fails after exactly its budget; success on a small CNN trained on digits;
refusals of bad hyper-parameters."""


import numpy as np
import pytest

from nnscratch import data
from nnscratch.attacks.query import MAX_PROBES, LocalSearch, OnePixel
from nnscratch.backend import device_of, to_numpy
from nnscratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from nnscratch.model import Model, Sequential

from test_attacks import Counting, images, tiny_model


def rgb_model(xp):
    """A tiny untrained model of 3-channel 8x8 images, 5 classes."""
    rng = np.random.default_rng(0)
    model = Sequential([Conv2D(3, 4, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2), Flatten(),
                        Dense(4 * 4 * 4, 5, rng=rng)], input_shape=(3, 8, 8))
    return model.to(device_of(xp.zeros(0)))


class NoGradient(Model):
    """``model`` with its one gradient primitive refusing: every gradient method of the model
    interface (loss_gradient, logit_gradient, jacobian, feature_gradient) goes through it."""

    def __init__(self, model):
        self.model, self.input_shape = model, model.input_shape

    def batch_logits(self, x, rng=None):
        return self.model.batch_logits(x, rng)

    def batch_features(self, x, names):
        return self.model.batch_features(x, names)

    def batch_vjp(self, x, rng=None, tap=None):
        raise AssertionError("a query-only attack asked for a gradient")

    device = property(lambda self: self.model.device)


SMALL = {"onepixel": lambda: OnePixel(population=20, max_iterations=3),
         "onepixel-3": lambda: OnePixel(pixels=3, population=20, max_iterations=3),
         "localsearch": lambda: LocalSearch(rounds=4)}


# ------------------------------------------------------------------ every backend

@pytest.mark.parametrize("name", SMALL)
def test_input_untouched_dtype_kept_range_and_norms(xp, name):
    """float32 images on a float64 model: x_adv float32 on x's device, in [0, 1]; x unchanged;
    the norms are those of x_adv - x; failure "" exactly where the attack succeeded."""
    model, x = tiny_model(xp, dtype=np.float64), images(xp)
    before = to_numpy(x).copy()
    result = SMALL[name]().generate(model, x)
    assert np.array_equal(to_numpy(x), before)
    assert result.x_adv.dtype == np.float32 and device_of(result.x_adv) == device_of(x)
    x_adv = to_numpy(result.x_adv)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    delta = (x_adv - before).reshape(6, -1).astype(np.float64)
    np.testing.assert_allclose(to_numpy(result.norms["l0"]), (delta != 0).sum(1))
    np.testing.assert_allclose(to_numpy(result.norms["l2"]), np.linalg.norm(delta, axis=1),
                               rtol=1e-5)
    success = to_numpy(result.success)
    assert success.shape == (6,) and success.dtype == bool
    assert ((result.info["failure"] == "") == success).all()
    assert set(result.info["failure"]) <= {"", "budget reached"}
    assert np.array_equal(success, to_numpy(model.predict(result.x_adv) != model.predict(x)))


@pytest.mark.parametrize("pixels", [1, 2, 3])
def test_one_pixel_changes_at_most_its_pixels(xp, pixels):
    """l0_pixels (changed positions) <= pixels on 3-channel images, and the positions changed
    are among those info["pixels"] names, set to info["values"]."""
    model = rgb_model(xp)
    x = xp.asarray(np.random.default_rng(2).random((5, 3, 8, 8)).astype(np.float32))
    result = OnePixel(pixels=pixels, population=20, max_iterations=3).generate(model, x)
    assert (to_numpy(result.norms["l0_pixels"]) <= pixels).all()
    assert (to_numpy(result.norms["l0_pixels"]) >= 1).all()
    assert result.info["pixels"].shape == (5, pixels, 2)
    assert result.info["values"].shape == (5, pixels, 3)
    x_adv = to_numpy(result.x_adv)
    for i in range(5):
        named = {tuple(p) for p in result.info["pixels"][i]}
        changed = {tuple(p) for p in np.argwhere((x_adv[i] != to_numpy(x)[i]).any(axis=0))}
        assert changed <= named
        row, column = result.info["pixels"][i, -1]           # the last one written wins
        assert np.array_equal(x_adv[i, :, row, column], result.info["values"][i, -1])


def test_local_search_changes_only_its_pixels_by_the_cyclic_map(xp):
    """Every changed value is CYCLIC(1.5 * (x - 0.5)) + 0.5 applied one or more times; every other
    pixel keeps x's exact value."""
    model, x = tiny_model(xp), images(xp)
    result = LocalSearch(rounds=3).generate(model, x)
    before, after = to_numpy(x).astype(np.float64), to_numpy(result.x_adv).astype(np.float64)
    changed = after != before
    assert changed.any()
    reachable = before.copy()                                # up to 3 rounds of CYCLIC
    ok = np.zeros_like(changed)
    for _ in range(3):
        v = 1.5 * (reachable - 0.5)
        reachable = np.where(v < -0.5, v + 1, np.where(v > 0.5, v - 1, v)) + 0.5
        ok |= np.isclose(after, reachable, atol=1e-6)
    assert ok[changed].all()


# ------------------------------------------------------------------ queries, no gradients

@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("labels", ["given", "predicted"])
def test_queries_count_every_image_the_model_sees(name, labels):
    model = Counting(tiny_model(np))
    x = images(np)
    y = tiny_model(np).predict(x) if labels == "given" else None
    result = SMALL[name]().generate(model, x, y)
    assert result.queries.dtype == np.int64
    assert int(result.queries.sum()) == model.seen


def test_targeted_one_pixel_counts_and_reaches_its_target():
    model, x = Counting(tiny_model(np)), images(np)
    y = tiny_model(np).predict(x)
    target = (y + 1) % 5
    result = OnePixel(population=30, max_iterations=5, targeted=True).generate(
        model, x, y, target=target)
    assert int(result.queries.sum()) == model.seen
    assert np.array_equal(result.success, tiny_model(np).predict(result.x_adv) == target)
    assert np.array_equal(result.target, target)


@pytest.mark.parametrize("name", SMALL)
def test_no_gradient_is_asked_for(name):
    model, x = NoGradient(tiny_model(np)), images(np)
    SMALL[name]().generate(model, x)
    OnePixel(population=10, max_iterations=2, targeted=True).generate(
        model, x, np.zeros(6, dtype=np.int64), target=np.ones(6, dtype=np.int64))


def test_constant_model_fails_after_exactly_the_budget(xp):
    """The constant model's class never changes: every image runs its whole budget.
    OnePixel: the initial population and one population per generation. LocalSearch with d = 7
    (every neighbourhood is the whole 8x8 image): 10% of 64 = 6 probes and a check in the first
    round, 64 probes and a check in every later one."""
    model, x = tiny_model(xp, constant=True), images(xp)
    y = model.predict(x)
    result = OnePixel(population=12, max_iterations=4).generate(model, x, y)
    assert not to_numpy(result.success).any()
    assert (result.info["failure"] == "budget reached").all()
    assert (to_numpy(result.queries) == 12 * (4 + 1)).all()
    assert (result.info["generations"] == 4).all()
    result = LocalSearch(d=7, rounds=5).generate(model, x, y)
    assert not to_numpy(result.success).any()
    assert (result.info["failure"] == "budget reached").all()
    assert (to_numpy(result.queries) == (6 + 1) + 4 * (64 + 1)).all()
    assert (result.info["rounds"] == 5).all()
    assert (to_numpy(OnePixel(population=12, max_iterations=4).generate(model, x).queries)
            == 12 * 5 + 1).all()                       # labels from the model: one more


def test_local_search_probes_at_most_max_probes_per_round():
    """A 16x16 image: with d = 15 the neighbourhood is all 256 locations, probed 128 at a time."""
    rng = np.random.default_rng(0)
    model = Sequential([Flatten(), Dense(256, 5, rng=rng)], input_shape=(1, 16, 16))
    model.layers[-1].params["W"][...] = 0                  # constant: runs every round
    x = rng.random((2, 1, 16, 16)).astype(np.float32)
    result = LocalSearch(d=15, rounds=3).generate(model, x, model.predict(x))
    assert (result.queries == (25 + 1) + 2 * (MAX_PROBES + 1)).all()   # 10% of 256 = 25


def test_same_seed_same_result():
    model, x = tiny_model(np), images(np)
    for make in (lambda seed: OnePixel(population=20, max_iterations=3, seed=seed),
                 lambda seed: LocalSearch(rounds=4, seed=seed)):
        first, again, other = make(3).generate(model, x), make(3).generate(model, x), \
            make(4).generate(model, x)
        assert np.array_equal(first.x_adv, again.x_adv)
        assert np.array_equal(first.queries, again.queries)
        assert not np.array_equal(first.x_adv, other.x_adv)


# ------------------------------------------------------------------ on a trained model

@pytest.fixture(scope="module")
def trained(small_cnn_on_digits):
    """small_cnn after 5 epochs on digits (about 95% on its test split), 30 test images."""
    model = small_cnn_on_digits
    x_test, y_test = data.load("digits", split="test", limit=30)
    return model, x_test, y_test


@pytest.mark.parametrize("attack, floor", [
    (OnePixel(population=100, max_iterations=10), 0.2),         # measured 10/30
    (OnePixel(pixels=3, population=100, max_iterations=10), 0.4),   # measured 20/30
    (LocalSearch(rounds=10), 0.2)],                              # measured 10/30
    ids=["onepixel", "onepixel-3", "localsearch"])
def test_query_attacks_fool_a_trained_model(trained, attack, floor):
    """On 8x8 digits one pixel is 1.6% of the image; success agrees with the model's
    predictions of x_adv, and a successful image stopped within its budget."""
    model, x, y = trained
    result = attack.generate(model, x, y)
    assert result.success_rate >= floor
    assert np.array_equal(result.success, model.predict(result.x_adv) != y)
    assert np.array_equal(result.info["failure"] == "", result.success)
    if isinstance(attack, OnePixel):
        budget = attack.population * (attack.max_iterations + 1)
        assert (result.queries[~result.success] == budget).all()
        assert (result.queries[result.success] < budget).all() or attack.max_iterations == 0
        assert (result.norms["l0_pixels"] <= attack.pixels).all()


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("make, error, match", [
    (lambda: OnePixel(pixels=0), ValueError, "pixels"),
    (lambda: OnePixel(pixels=1.5), ValueError, "pixels"),
    (lambda: OnePixel(population=4), ValueError, "population"),
    (lambda: OnePixel(max_iterations=-1), ValueError, "max_iterations"),
    (lambda: OnePixel(seed=-1), ValueError, "seed"),
    (lambda: OnePixel(targeted=1), TypeError, "targeted"),
    (lambda: LocalSearch(r=2.5), ValueError, "r must"),
    (lambda: LocalSearch(r=-1), ValueError, "r must"),
    (lambda: LocalSearch(p=0), ValueError, "p must"),
    (lambda: LocalSearch(p=float("inf")), ValueError, "p must"),
    (lambda: LocalSearch(d=-1), ValueError, "d must"),
    (lambda: LocalSearch(t=0), ValueError, "t must"),
    (lambda: LocalSearch(rounds=1.5), ValueError, "rounds"),
    (lambda: LocalSearch(seed="0"), TypeError, "seed")])
def test_bad_hyper_parameters_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs_are_refused():
    model, x = tiny_model(np), images(np)
    y = np.arange(6) % 5
    with pytest.raises(ValueError, match="untargeted"):
        LocalSearch().generate(model, x, y, target=(y + 1) % 5)
    with pytest.raises(ValueError, match="target"):
        OnePixel(targeted=True).generate(model, x, y)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        OnePixel().generate(model, x * 2)
