"""Bagging with noise (Harms et al.): each member's replicate is a bootstrap of the training set's
size with fresh, clipped Gaussian noise, reproducible from (seed, member); the ensemble's logits
are the log of the members' mean probability, with input gradients that pass finite
differences (float64, gradcheck's default tolerances) on NumPy and the CuPy stand-in; prefixes
are ensembles; the vote and its tie rule; training checkpoints per member and resumes bitwise;
bad input is refused with errors that name it."""

import dataclasses

import numpy as np
import pytest

from nnscratch import data, io, zoo
from nnscratch.backend import device_of, to_numpy
from nnscratch.defenses import BaggingNoiseEnsemble
from nnscratch.gradcheck import (assert_gradients_close, check_jacobian, check_logit_gradient,
                                 check_loss_gradient)
from nnscratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Tanh
from nnscratch.model import Sequential
from nnscratch.ops import log_softmax, softmax


def member(xp, seed, classes=3):
    """A small float64 network on (1, 8, 8) images with its own weights."""
    rng = np.random.default_rng(seed)
    model = Sequential([Conv2D(1, 3, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2), Flatten(),
                        Dense(48, 6, rng=rng), Tanh(), Dense(6, classes, rng=rng)],
                       input_shape=(1, 8, 8), batch_size=3)
    return model.astype(np.float64).to(device_of(xp.zeros(0)))


def images(xp, n=4, seed=5):
    """Distinct pixel values (no max-pooling ties), float64."""
    values = np.random.default_rng(seed).permutation(n * 64).reshape(n, 1, 8, 8) / (n * 64)
    return xp.asarray(values)


def fixed(biases, weights=None):
    """A builder handing out, in order, networks on (1, 1, 1) images with logits W x + b: their
    votes are known by hand."""
    nets = []
    for i, b in enumerate(biases):
        net = Sequential([Flatten(), Dense(1, len(b))], input_shape=(1, 1, 1))
        net.layers[1].params["W"][...] = 0 if weights is None else weights[i]
        net.layers[1].params["b"][...] = b
        nets.append(net)
    parts = iter(nets)
    return lambda seed: next(parts)


def test_replicates_are_bootstraps_with_fresh_clipped_noise():
    n = 200
    x = np.full((n, 1, 2, 2), 0.5)
    y = np.arange(n)                        # the label names the image drawn
    ensemble = BaggingNoiseEnsemble(lambda s: member(np, s), 3, noise_sigma=0.05, seed=1)
    (x0, i0), (x1, i1) = ensemble.member_data(x, y, 0), ensemble.member_data(x, y, 1)
    assert x0.shape == x.shape and len(i0) == n and x0.dtype == x.dtype
    assert len(np.unique(i0)) < 0.8 * n     # about 63% of the images, some drawn repeatedly
    assert not np.array_equal(i0, i1)
    again = BaggingNoiseEnsemble(lambda s: member(np, s), 3, noise_sigma=0.05, seed=1)
    np.testing.assert_array_equal(again.member_data(x, y, 1)[0], x1)
    other_seed = BaggingNoiseEnsemble(lambda s: member(np, s), 3, noise_sigma=0.05, seed=2)
    assert not np.array_equal(other_seed.member_data(x, y, 1)[1], i1)
    noise0, noise1 = x0 - 0.5, x1 - 0.5
    assert 0.045 < noise0.std() < 0.055 and abs(noise0.mean()) < 0.005
    repeated = np.flatnonzero(i0 == i0[np.argmax(np.bincount(i0))])
    np.testing.assert_array_equal(noise0[repeated[0]], noise0[repeated[1]])  # noise, then draws
    both = np.intersect1d(i0, i1)[0]        # one image in both replicates: different noise
    assert not np.allclose(noise0[i0 == both][0], noise1[i1 == both][0])
    loud = BaggingNoiseEnsemble(lambda s: member(np, s), 1, noise_sigma=1.0)
    x_loud = loud.member_data(x.astype(np.float32), y, 0)[0]
    assert x_loud.dtype == np.float32 and x_loud.min() == 0 and x_loud.max() == 1
    silent = BaggingNoiseEnsemble(lambda s: member(np, s), 1, noise_sigma=0.0)
    x_clean, index = silent.member_data(np.random.default_rng(0).random((n, 1, 2, 2)), y, 0)
    np.testing.assert_array_equal(x_clean, np.random.default_rng(0).random((n, 1, 2, 2))[index])


def test_logits_are_the_log_of_the_mean_probability(xp):
    ensemble = BaggingNoiseEnsemble(lambda s: member(xp, s), 3, noise_sigma=0.1)
    x = images(xp)
    mean_p = np.mean([to_numpy(softmax(m.logits(x))) for m in ensemble.members], axis=0)
    np.testing.assert_allclose(to_numpy(softmax(ensemble.logits(x))), mean_p, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(ensemble.logits(x)), np.log(mean_p), rtol=1e-12)
    np.testing.assert_array_equal(to_numpy(ensemble.predict(x)), mean_p.argmax(axis=1))


def test_logits_stay_finite_for_confident_members():
    ensemble = BaggingNoiseEnsemble(fixed([[0, 2000, -2000], [-3000, 0, 3000]]), 2, 0.0)
    logits = ensemble.logits(np.zeros((1, 1, 1, 1)))
    # class 0: log((e^-2000 + e^-3000) / 2) = -2000 - log 2 (the naive log of the mean: -inf)
    np.testing.assert_allclose(logits, [[-2000 - np.log(2), -np.log(2), -np.log(2)]])


@pytest.mark.parametrize("n_models", [1, 3])
def test_gradients_match_finite_differences(xp, n_models):
    ensemble = BaggingNoiseEnsemble(lambda s: member(xp, s), n_models, noise_sigma=0.1)
    x = images(xp)
    assert_gradients_close(check_loss_gradient(ensemble, x, xp.asarray(np.array([0, 1, 2, 1]))))
    w = xp.asarray(np.random.default_rng(6).standard_normal((4, 3)))
    assert_gradients_close(check_logit_gradient(ensemble, x, w))
    assert_gradients_close(check_jacobian(ensemble, x[:1]))


def test_a_prefix_is_the_ensemble_of_its_members():
    big = BaggingNoiseEnsemble(lambda s: member(np, s), 4, noise_sigma=0.1, seed=7)
    small = BaggingNoiseEnsemble(lambda s: member(np, s), 2, noise_sigma=0.1, seed=7)
    x = images(np)
    part = big.prefix(2)
    assert part.members == big.members[:2] and len(big.members) == 4
    np.testing.assert_array_equal(part.logits(x), small.logits(x))   # same seeds, same members
    one = big.prefix(1)
    np.testing.assert_allclose(one.logits(x), log_softmax(big.members[0].logits(x)), rtol=1e-12)
    np.testing.assert_array_equal(one.predict(x), big.members[0].predict(x))
    np.testing.assert_array_equal(big.prefix(4).logits(x), big.logits(x))


def test_an_ensemble_rebuilt_from_its_members_is_the_same_ensemble():
    trained = BaggingNoiseEnsemble(lambda s: member(np, s), 3, noise_sigma=0.1, seed=7)
    rebuilt = BaggingNoiseEnsemble.from_members(trained.members, noise_sigma=0.1, seed=7)
    assert rebuilt.members == trained.members
    assert (rebuilt.noise_sigma, rebuilt.seed) == (0.1, 7)
    x = images(np)
    np.testing.assert_array_equal(rebuilt.logits(x), trained.logits(x))
    np.testing.assert_array_equal(rebuilt.prefix(2).logits(x), trained.prefix(2).logits(x))
    with pytest.raises(ValueError, match="n_models"):
        BaggingNoiseEnsemble.from_members([], noise_sigma=0.1)


def test_majority_vote_and_its_tie_rule():
    x = np.array([0.2, 0.8]).reshape(2, 1, 1, 1)
    # votes: member 0 says class 1, member 1 class 2, member 2 class 0 below 0.5 and 2 above
    ensemble = BaggingNoiseEnsemble(
        fixed([[0, 1, 0], [0, 0, 1], [2.5, 0, -2.5]], weights=[0, 0, [[-5, 0, 5]]]), 3, 0.0)
    np.testing.assert_array_equal(ensemble.predict_vote(x), [0, 2])    # a 3-way tie; 2 of 3
    np.testing.assert_array_equal(ensemble.prefix(2).predict_vote(x), [1, 1])   # 1-2 tie
    np.testing.assert_array_equal(ensemble.prefix(1).predict_vote(x), [1, 1])
    assert ensemble.predict_vote(x).dtype.kind == "i"


def test_members_train_checkpoint_and_resume_bitwise(tmp_path):
    x, y = data.load("digits", split="train", limit=150)
    recipe = dataclasses.replace(zoo.RECIPES["small_cnn"], epochs=1)
    builder = lambda s: zoo.build("small_cnn", seed=s)     # noqa: E731
    initial = [io.weights(m) for m in BaggingNoiseEnsemble(builder, 3, 0.1, seed=4).members]
    two = BaggingNoiseEnsemble(builder, 2, 0.1, seed=4)     # a run killed after member 1
    first = two.fit(x, y, recipe, checkpoint_dir=tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ensemble.json", "member-0",
                                                          "member-1"]
    assert all((tmp_path / f"member-{m}" / "checkpoint.npz").exists() for m in range(2))
    three = BaggingNoiseEnsemble(builder, 3, 0.1, seed=4)
    resumed = three.fit(x, y, recipe, checkpoint_dir=tmp_path, progress=False)
    assert resumed[:2] == first                     # reloaded (the timings too), not retrained
    fresh = BaggingNoiseEnsemble(builder, 3, 0.1, seed=4)
    fresh.fit(x, y, recipe, progress=False)
    for m in range(3):
        trained, again = io.weights(three.members[m]), io.weights(fresh.members[m])
        assert not np.array_equal(trained["conv2d_1.W"], initial[m]["conv2d_1.W"])
        for name in trained:
            np.testing.assert_array_equal(trained[name], again[name])
    with pytest.raises(ValueError, match="noise_sigma"):
        BaggingNoiseEnsemble(builder, 2, 0.2, seed=4).fit(x, y, recipe, checkpoint_dir=tmp_path,
                                                          progress=False)


def test_bad_input_is_refused():
    builder = lambda s: member(np, s)                       # noqa: E731
    for n_models in (0, -1):
        with pytest.raises(ValueError, match="n_models"):
            BaggingNoiseEnsemble(builder, n_models, 0.1)
    with pytest.raises(TypeError, match="n_models"):
        BaggingNoiseEnsemble(builder, "2", 0.1)
    with pytest.raises(ValueError, match="noise_sigma"):
        BaggingNoiseEnsemble(builder, 2, -0.1)
    with pytest.raises(ValueError, match="different numbers of classes"):
        classes = iter([3, 3, 2])
        BaggingNoiseEnsemble(lambda s: member(np, s, classes=next(classes)), 3, 0.1)
    with pytest.raises(ValueError, match="its own network"):
        shared = member(np, 0)
        BaggingNoiseEnsemble(lambda s: shared, 2, 0.1)
    with pytest.raises(TypeError, match="Sequential"):
        BaggingNoiseEnsemble(lambda s: None, 2, 0.1)
    with pytest.raises(TypeError, match="builder"):
        BaggingNoiseEnsemble("small_cnn", 2, 0.1)
    ensemble = BaggingNoiseEnsemble(builder, 2, 0.1)
    with pytest.raises(ValueError, match="prefix: k"):
        ensemble.prefix(0)
    with pytest.raises(ValueError, match="at most the 2 members"):
        ensemble.prefix(3)
    with pytest.raises(ValueError, match="only the 'logits' tap"):
        ensemble.features(images(np), ["0"])
    with pytest.raises(ValueError, match="values in"):
        ensemble.fit(images(np) * 2, np.zeros(4, np.int64), zoo.RECIPES["small_cnn"])
