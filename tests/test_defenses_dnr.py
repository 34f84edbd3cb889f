"""Deep Neural Rejection and NR: the hand-evaluated one-vs-all RBF SVMs against scikit-learn and
finite differences, cross-validation against scikit-learn's, DNR's out-of-fold combiner
training (checked with a spy on the SVM fits), the taps, the reject threshold, the exact
gradient of the reject score in float64, the contract and bad input.

Gradient checks: central differences (eps 1e-5) in float64, every input entry, with
``gradcheck``'s default tolerances: norm-wise relative error < 1e-7 and, element-wise,
|a - b| <= 1e-6 (|a| + |b|) + 1e-9.

A tiny random-weight CNN on scikit-learn's digits stands in for ``dnr_cnn``: the SVMs need
informative features, not a trained network, and it keeps the file at a few seconds."""

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import SVC

from nnscratch import data, zoo
from nnscratch.backend import to_numpy
from nnscratch.defenses import svm as svm_module
from nnscratch.defenses.dnr import DeepNeuralRejection, NeuralRejection
from nnscratch.defenses.svm import RBFOneVsRest, cross_validate_svm
from nnscratch.gradcheck import (GradientComparison, assert_gradients_close,
                                 compare_input_gradient, numerical_gradient)
from nnscratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from nnscratch.model import Sequential

TAPS = ("flatten_1", "relu_2", "relu_3")          # widths 64, 16, 12
SETTINGS = {"layers": TAPS, "layer_svms": ((10.0, 1.0), (10.0, 10.0), (10.0, 30.0)),
            "combiner": (1.0, 0.1)}


def tiny_cnn(dtype=np.float64):
    """conv3x3x4 (same), ReLU, maxpool2, flatten (64), dense16, ReLU, dense12, ReLU, dense10."""
    rng = np.random.default_rng(0)
    model = Sequential([Conv2D(1, 4, 3, padding="same", rng=rng), ReLU(), MaxPool2D(2),
                        Flatten(), Dense(64, 16, rng=rng), ReLU(), Dense(16, 12, rng=rng), ReLU(),
                        Dense(12, 10, rng=rng)], input_shape=(1, 8, 8), batch_size=64)
    return model.astype(dtype)


def digits(dtype=np.float64):
    """(x_fit, y_fit) 300 images, (x_val, y_val) 100, (x_test, y_test) 100, from digits' train
    split in random order, plus a little noise so that no max-pool window holds a tie (for gradient checks)."""
    x, y = data.load("digits", split="train")
    rng = np.random.default_rng(1)
    pick = rng.permutation(len(x))[:500]                 # the split's order groups writers
    x = (0.98 * x[pick] + 0.02 * rng.random(x[pick].shape)).astype(dtype)     # in [0, 1]
    y = y[pick]
    return (x[:300], y[:300]), (x[300:400], y[300:400]), (x[400:], y[400:])


def fitted_dnr(seed=0, dtype=np.float64, **options):
    (x, y), (x_val, _), _ = digits(dtype)
    return DeepNeuralRejection(**{**SETTINGS, "seed": seed, **options}).fit(
        tiny_cnn(dtype), x, y, x_val=x_val)


@pytest.fixture(scope="module")
def dnr():
    return fitted_dnr()


def flat_features(model, x, name):
    h = model.features(x, [name])[name]
    return h.reshape(len(h), -1)


# ------------------------------------------------------------------ the SVMs


def blobs(n=240, k=4, width=6, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return rng.standard_normal((n, width)) * 0.6 + np.eye(width)[y] * 2, y


def test_decision_is_scikit_learns_one_vs_rest_decision_function():
    x, y = blobs()
    x_test, _ = blobs(50, seed=1)
    ours = RBFOneVsRest(C=2.0, gamma=0.3).fit(x, y)
    reference = OneVsRestClassifier(SVC(kernel="rbf", C=2.0, gamma=0.3)).fit(x, y)
    expected = reference.decision_function(x_test)
    np.testing.assert_allclose(ours.decision(x_test), expected, rtol=1e-8, atol=1e-10)
    assert ours.dual_coef.shape == (len(ours.support_vectors), 4)
    # the stacked support vectors are the union of the four machines' own
    union = np.unique(np.concatenate([e.support_ for e in reference.estimators_]))
    np.testing.assert_array_equal(ours.support_index, union)
    kernel_rows = ours.kernel(x_test, x)
    np.testing.assert_allclose(ours.decision_from_kernel(kernel_rows), expected, rtol=1e-8,
                               atol=1e-10)


def test_decision_vjp_matches_finite_differences():
    x, y = blobs()
    svm = RBFOneVsRest(C=1.0, gamma=0.3).fit(x, y)
    h = blobs(5, seed=2)[0]
    w = np.random.default_rng(3).standard_normal((5, 4))
    analytic = svm.decision_vjp(h, w)
    numeric = numerical_gradient(lambda: (w * svm.decision(h)).sum(), h)
    assert np.abs(analytic).max() > 1e-2                     # the kernels are not all ~0
    assert_gradients_close([GradientComparison("decision_vjp", analytic, numeric)])


def test_chunks_and_backends_give_the_same_decision(xp, monkeypatch):
    x, y = blobs()
    svm = RBFOneVsRest(C=1.0, gamma=0.3).fit(x, y)
    h, w = blobs(7, seed=2)[0], np.random.default_rng(3).standard_normal((7, 4))
    whole = svm.decision(h), svm.decision_vjp(h, w)
    monkeypatch.setattr(svm_module, "CHUNK_ENTRIES", 2 * len(svm.support_vectors))  # 2 rows
    chunked = svm.decision(xp.asarray(h)), svm.decision_vjp(xp.asarray(h), xp.asarray(w))
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(to_numpy(b), a, rtol=1e-12, atol=1e-14)
    assert chunked[0].dtype == np.float64


def test_float32_features_are_evaluated_in_float64():
    x, y = blobs()
    svm = RBFOneVsRest(C=1.0, gamma=0.3).fit(x, y)
    h = blobs(5, seed=2)[0]
    np.testing.assert_allclose(svm.decision(h.astype(np.float32)),
                               svm.decision(h.astype(np.float32).astype(np.float64)), rtol=1e-12)


def test_cross_validation_agrees_with_scikit_learn():
    x, y = blobs()
    grid = [(1.0, 0.3), (1.0, 30.0), (10.0, 0.3)]
    best, table = cross_validate_svm(x, y, grid, folds=3, seed=4)
    assert list(table) == grid
    folds = StratifiedKFold(3, shuffle=True, random_state=4)
    for c, gamma in grid:
        expected = cross_val_score(OneVsRestClassifier(SVC(kernel="rbf", C=c, gamma=gamma)),
                                   x, y, cv=folds).mean()
        assert table[(c, gamma)] == pytest.approx(expected, abs=1e-12)
    assert table[(1.0, 30.0)] < 0.6 < table[(1.0, 0.3)]     # gamma 30 memorises the blobs
    assert table[best] == max(table.values())
    tied_best, _ = cross_validate_svm(x, y, [(1.0, 0.3), (1.0, 0.3)], folds=3)
    assert tied_best == (1.0, 0.3)


def test_svm_bad_input():
    x, y = blobs()
    with pytest.raises(RuntimeError, match=r"not fitted: call fit"):
        RBFOneVsRest().decision(x)
    svm = RBFOneVsRest().fit(x, y)
    with pytest.raises(ValueError, match="fitted on 6 features, got an array of shape"):
        svm.decision(x[:, :5])
    with pytest.raises(ValueError, match=r"w must be \(3, 4\)"):
        svm.decision_vjp(x[:3], np.zeros((3, 5)))
    with pytest.raises(ValueError, match="3 samples for 10 classes"):
        RBFOneVsRest().fit(x[:3], np.array([0, 9, 5]))
    with pytest.raises(ValueError, match="class 2 has no sample"):
        RBFOneVsRest().fit(x, np.where(y == 2, 3, y))
    with pytest.raises(ValueError, match="gamma must be a finite number > 0"):
        RBFOneVsRest(gamma=0)
    with pytest.raises(ValueError, match="every class needs at least folds=3"):
        cross_validate_svm(x[:8], y[:8], [(1.0, 1.0)])


# ------------------------------------------------------------------ DNR: fitting


def test_combiner_learns_only_out_of_fold_scores(monkeypatch):
    """A spy on RBFOneVsRest.fit: every row of the combiner's training matrix, block by block,
    is the decision of a layer SVM that was fitted without that sample."""
    fits, original = [], RBFOneVsRest.fit

    def spy(self, features, y, gram=None):
        fits.append((self, np.array(features, copy=True)))
        return original(self, features, y, gram)

    monkeypatch.setattr(RBFOneVsRest, "fit", spy)
    (x, y), (x_val, _), _ = digits()
    dnr = DeepNeuralRejection(**SETTINGS, folds=5).fit(tiny_cnn(), x, y, x_val=x_val)
    assert len(fits) == 3 * 5 + 3 + 1                    # folds per layer, refits, combiner
    combiner, z = fits[-1]
    assert combiner is dnr.combiner_svm and z.shape == (300, 30)
    for layer, name in enumerate(TAPS):
        h = flat_features(dnr.model, x, name)
        fold_fits = [(svm, rows) for svm, rows in fits[:-1]
                     if rows.shape[1] == h.shape[1] and len(rows) < len(h)]
        assert len(fold_fits) == 5
        seen = [{row.tobytes() for row in rows} for _, rows in fold_fits]
        assert all(len(s) == 240 for s in seen)           # 4 of 5 folds, every row distinct
        for i in range(len(h)):
            unseen = [svm for (svm, _), s in zip(fold_fits, seen) if h[i].tobytes() not in s]
            assert len(unseen) == 1                       # exactly one fold left sample i out
            np.testing.assert_allclose(z[i, 10 * layer:10 * layer + 10],
                                       unseen[0].decision(h[i:i + 1])[0], rtol=1e-9, atol=1e-12)


def test_layer_svms_are_refitted_on_the_named_taps(dnr):
    (x, y), _, _ = digits()
    for name, svm in zip(TAPS, dnr.svms):
        h = flat_features(dnr.model, x, name)
        assert svm.support_vectors.shape[1] == h.shape[1]
        np.testing.assert_array_equal(svm.support_vectors, h[svm.support_index])
        assert len(svm.support_index) > 50                # fitted on all 300, not a fold
    assert [svm.support_vectors.shape[1] for svm in dnr.svms] == [64, 16, 12]


def test_scores_are_the_combiner_on_the_layer_scores(dnr):
    _, _, (x, _) = digits()
    layer_scores = [svm.decision(flat_features(dnr.model, x, name))
                    for name, svm in zip(TAPS, dnr.svms)]
    expected = dnr.combiner_svm.decision(np.concatenate(layer_scores, axis=1))
    np.testing.assert_allclose(dnr.scores(x), expected, rtol=1e-12)
    np.testing.assert_allclose(dnr.score(x), -expected.max(axis=1), rtol=1e-12)


def test_threshold_rejects_the_rate_on_validation_and_predicts_otherwise(dnr):
    (x_fit, y_fit), (x_val, _), (x, y) = digits()
    val_scores = dnr.scores(x_val)
    rejected_val = dnr.predict(x_val) == -1
    assert abs(rejected_val.mean() - 0.1) <= 0.02
    np.testing.assert_array_equal(rejected_val, val_scores.max(axis=1) < dnr.theta)
    predicted, scores = dnr.predict(x), dnr.scores(x)
    np.testing.assert_array_equal(predicted, np.where(scores.max(axis=1) < dnr.theta, -1,
                                                      scores.argmax(axis=1)))
    assert predicted.dtype == np.int64
    kept = predicted != -1
    assert (predicted[kept] == y[kept]).mean() > 0.7      # the SVMs learnt the digits
    assert (dnr.predict(x_fit) == y_fit).mean() > 0.8


def test_neural_rejection_is_one_svm_on_one_layer():
    (x, y), (x_val, _), (x_test, _) = digits()
    nr = NeuralRejection(layer="relu_2", C=10.0, gamma=10.0, reject_rate=0.2).fit(
        tiny_cnn(), x, y, x_val=x_val)
    assert len(nr.svms) == 1 and nr.combiner_svm is None
    np.testing.assert_allclose(nr.scores(x_test),
                               nr.svms[0].decision(flat_features(nr.model, x_test, "relu_2")),
                               rtol=1e-12)
    assert abs((nr.predict(x_val) == -1).mean() - 0.2) <= 0.02


def test_fitting_is_deterministic_given_the_seed(dnr):
    _, _, (x, _) = digits()
    np.testing.assert_array_equal(fitted_dnr(seed=0).scores(x), dnr.scores(x))
    assert not np.allclose(fitted_dnr(seed=1).scores(x), dnr.scores(x))   # other folds


# ------------------------------------------------------------------ the gradient


def test_a_saved_state_gives_back_the_same_defence(dnr):
    """state() is plain arrays; load_state on a fresh object gives the same scores, decisions
    and gradient without fitting again."""
    state = dnr.state()
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in state.values())
    _, _, (x_test, _) = digits()
    again = DeepNeuralRejection(**SETTINGS).load_state(dnr.model, state)
    np.testing.assert_array_equal(again.scores(x_test), dnr.scores(x_test))
    np.testing.assert_array_equal(again.predict(x_test), dnr.predict(x_test))
    np.testing.assert_array_equal(again.score_gradient(x_test[:5]), dnr.score_gradient(x_test[:5]))
    nr = NeuralRejection(layer=SETTINGS["layers"][-1])
    with pytest.raises(ValueError, match="missing"):
        nr.load_state(dnr.model, {"theta": np.array(0.0)})


def test_score_gradient_matches_finite_differences(dnr):
    """Through the combiner, the three layer SVMs and the network's three taps, float64."""
    _, _, (x, _) = digits()
    x = x[:2].copy()
    comparisons = compare_input_gradient("score_gradient", dnr.score_gradient,
                                         lambda v: dnr.score(v).sum(), x)
    assert np.abs(comparisons[0].analytic).max() > 1e-3
    assert_gradients_close(comparisons)
    w = np.random.default_rng(5).standard_normal((2, 10))
    assert_gradients_close(compare_input_gradient(
        "scores_vjp", lambda v: dnr.scores_vjp(v, w), lambda v: (w * dnr.scores(v)).sum(), x))


def test_every_tap_contributes_to_the_gradient(dnr):
    _, _, (x, _) = digits()
    u = np.concatenate([svm.decision(flat_features(dnr.model, x[:3], name))
                        for name, svm in zip(TAPS, dnr.svms)], axis=1)
    g_u = dnr.combiner_svm.decision_vjp(u, np.ones((3, 10)))
    for block in range(3):
        assert np.abs(g_u[:, 10 * block:10 * block + 10]).max() > 1e-3


def test_nr_gradient_matches_finite_differences():
    (x, y), (x_val, _), (x_test, _) = digits()
    nr = NeuralRejection(layer="relu_3", C=10.0, gamma=10.0).fit(tiny_cnn(), x, y, x_val=x_val)
    assert_gradients_close(compare_input_gradient("score_gradient", nr.score_gradient,
                                                  lambda v: nr.score(v).sum(), x_test[:2].copy()))


def test_the_cupy_path_gives_the_numpy_results(xp):
    dnr = fitted_dnr()
    _, _, (x, _) = digits()
    expected = dnr.scores(x[:5]), dnr.score_gradient(x[:5]), dnr.predict(x[:5])
    dnr.model.to("gpu" if xp is not np else "cpu")
    got = dnr.scores(xp.asarray(x[:5])), dnr.score_gradient(xp.asarray(x[:5])), dnr.predict(
        xp.asarray(x[:5]))
    for a, b in zip(expected, got):
        np.testing.assert_allclose(to_numpy(b), a, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ the contract


def test_inputs_are_left_alone_and_outputs_have_the_contract_shapes():
    (x, y), (x_val, _), (x_test, _) = digits(np.float32)
    copies = [a.copy() for a in (x, y, x_val, x_test)]
    dnr = DeepNeuralRejection(**SETTINGS).fit(tiny_cnn(np.float32), x, y, x_val=x_val)
    outputs = {"scores": dnr.scores(x_test), "score": dnr.score(x_test),
               "predict": dnr.predict(x_test), "gradient": dnr.score_gradient(x_test)}
    for a, b in zip(copies, (x, y, x_val, x_test)):
        np.testing.assert_array_equal(a, b)
    assert outputs["scores"].shape == (100, 10) and outputs["scores"].dtype == np.float32
    assert outputs["score"].shape == (100,) and outputs["score"].dtype == np.float32
    assert outputs["predict"].shape == (100,) and outputs["predict"].dtype == np.int64
    assert outputs["gradient"].shape == x_test.shape and outputs["gradient"].dtype == np.float32
    empty = x_test[:0]
    assert dnr.scores(empty).shape == (0, 10) and dnr.predict(empty).shape == (0,)
    assert dnr.score_gradient(empty).shape == (0, 1, 8, 8)


def test_defaults_tap_dnr_cnns_last_three_hidden_layers():
    dnr = DeepNeuralRejection()
    assert dnr.layers == ("flatten_1", "relu_5", "relu_6")
    assert dnr.layer_svms == ((10.0, 1e-3), (10.0, 1e-2), (1.0, 1e-2))
    assert (dnr.combiner, dnr.folds, dnr.reject_rate, dnr.seed) == ((0.1, 1.0), 5, 0.1, 0)
    nr = NeuralRejection()
    assert (nr.layer, nr.C, nr.gamma, nr.reject_rate) == ("relu_6", 1.0, 1e-2, 0.1)
    model = zoo.build("dnr_cnn")
    taps = model.features(np.zeros((1, 1, 28, 28), np.float32), list(dnr.layers))
    assert [taps[name].shape for name in dnr.layers] == [(1, 3136), (1, 200), (1, 200)]
    assert [model.layers[model.index(name) - 1].name for name in dnr.layers] == [
        "dropout_2", "dense_1", "dense_2"]
    assert model.layers[-1].name == "dense_3" and "dense_3" not in dnr.layers


def test_unfitted_defences_say_to_call_fit():
    x = digits()[2][0][:2]
    for defence in (DeepNeuralRejection(), NeuralRejection()):
        for call in (defence.predict, defence.score, defence.scores, defence.score_gradient,
                     lambda v: defence.as_model()):
            with pytest.raises(RuntimeError, match=r"not fitted: call fit\(model, x, y"):
                call(x)


def test_bad_fits_are_refused():
    (x, y), (x_val, _), _ = digits()
    model = tiny_cnn()
    with pytest.raises(KeyError, match="no layer to tap.*'relu_9'"):
        DeepNeuralRejection(**{**SETTINGS, "layers": ("flatten_1", "relu_2", "relu_9")}).fit(
            model, x, y, x_val=x_val)
    with pytest.raises(ValueError, match="8 samples for 10 classes"):
        NeuralRejection(layer="relu_2").fit(model, x[:8], y[:8], x_val=x_val)
    few = np.flatnonzero(y == 3)[:4]
    keep = np.concatenate([np.flatnonzero(y != 3), few])
    with pytest.raises(ValueError, match=r"class 3 has 4 samples, fewer than 5 \(folds=5\)"):
        DeepNeuralRejection(**SETTINGS).fit(model, x[keep], y[keep], x_val=x_val)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 10\)"):
        NeuralRejection(layer="relu_2").fit(model, x, y + 1, x_val=x_val)
    with pytest.raises(ValueError, match="x_adv must be None"):
        NeuralRejection(layer="relu_2").fit(model, x, y, x, x_val=x_val)
    with pytest.raises(ValueError, match="x_val is empty"):
        NeuralRejection(layer="relu_2").fit(model, x, y, x_val=x_val[:0])
    with pytest.raises(TypeError, match="model interface"):
        NeuralRejection().fit(lambda v: v, x, y, x_val=x_val)
    with pytest.raises(TypeError, match="x_val"):
        NeuralRejection().fit(model, x, y)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"layers": "relu_5"}, TypeError, "sequence of layer names"),
    ({"layer_svms": ((1.0, 1.0),)}, ValueError, "one \\(C, gamma\\) per layer \\(3\\)"),
    ({"layer_svms": ((1.0, 1.0), (1.0, 0.0), (1.0, 1.0))}, ValueError, r"layer_svms\[1\]: gamma"),
    ({"combiner": None}, ValueError, "needs a combiner"),
    ({"folds": 1}, ValueError, "folds must be an integer >= 2"),
    ({"reject_rate": 1.0}, ValueError, "reject_rate"),
    ({"seed": -1}, ValueError, "seed"),
])
def test_bad_settings_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        DeepNeuralRejection(**kwargs)


def test_bad_inputs_after_fitting_are_refused(dnr):
    x = digits()[2][0][:3]
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 1, 8, 8\)"):
        dnr.predict(np.zeros((2, 1, 7, 8)))
    with pytest.raises(ValueError, match=r"w must have shape \(3, 10\)"):
        dnr.scores_vjp(x, np.zeros((3, 11)))
    with pytest.raises(ValueError, match="no dropout mode"):
        dnr.as_model().mc_logits(x, 2)
