"""Feinman et al.'s KDE + uncertainty detector: the hand-written KDE against scikit-learn's
KernelDensity (chunked or not), its gradient and the detector's score_gradient against central
finite differences in float64, Feinman's uncertainty from the dropout passes, the regression
against scikit-learn's probabilities, separation of far-away points on synthetic clusters,
the default noisy images, determinism, backends and bad input."""

import copy

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KernelDensity

from nnscratch import zoo
from nnscratch.backend import to_numpy
from nnscratch.defenses import kde
from nnscratch.defenses.kde import KDEUncertaintyDetector, kde_log_density
from nnscratch.gradcheck import assert_gradients_close, compare_input_gradient
from nnscratch.layers import Dense, Dropout, Flatten
from nnscratch.model import Sequential
from nnscratch.ops import softmax

from test_model import inputs, small_model

# ------------------------------------------------------------------ the KDE itself


@pytest.mark.parametrize("entries", [kde.KERNEL_ENTRIES, 7])    # 7: one row per chunk
def test_log_density_agrees_with_scikit_learn(monkeypatch, entries):
    monkeypatch.setattr(kde, "KERNEL_ENTRIES", entries)
    rng = np.random.default_rng(0)
    points, f = rng.normal(size=(40, 5)), rng.normal(size=(9, 5)) * 1.5
    for bandwidth in (0.3, 1.2):
        expected = KernelDensity(kernel="gaussian", bandwidth=bandwidth).fit(points)
        log_p, _ = kde_log_density(f, points, bandwidth)
        # both are exact up to rounding; 1e-10 relative leaves room for summation order
        np.testing.assert_allclose(log_p, expected.score_samples(f), rtol=1e-10)


def test_far_points_have_lower_density_even_where_every_kernel_underflows():
    points = np.random.default_rng(1).normal(size=(30, 4))
    log_p, _ = kde_log_density(np.array([[0.0] * 4, [3.0] * 4, [200.0] * 4]), points, 0.5)
    assert log_p[0] > log_p[1] > log_p[2] and np.isfinite(log_p).all()    # logsumexp


def test_log_density_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    points, f = rng.normal(size=(25, 3)), rng.normal(size=(4, 3))
    w = rng.normal(size=4)
    comparisons = compare_input_gradient(
        "d log p / df", lambda v: w[:, None] * kde_log_density(v, points, 0.7, gradient=True)[1],
        lambda v: (w * kde_log_density(v, points, 0.7)[0]).sum(), f)
    assert_gradients_close(comparisons)                # norm-wise 1e-7, element-wise 1e-6


# ------------------------------------------------------------------ the detector on clusters

def cluster_model():
    """features "ip1" = the 6 pixels (identity); dropout; logits "ip2" = 10 x the first three
    pixels, so class c is the cluster along pixel c. Float64."""
    ip1, ip2 = Dense(6, 6, name="ip1"), Dense(6, 3, name="ip2")
    ip1.params = {"W": np.eye(6), "b": np.zeros(6)}
    ip2.params = {"W": 10 * np.eye(6)[:, :3], "b": np.zeros(3)}
    return Sequential([Flatten(), ip1, Dropout(0.5), ip2], input_shape=(1, 2, 3))


def clusters(n_per_class, seed, between=False):
    """Images 0.1 + 0.6 e_c + noise, class c = 0, 1, 2; ``between``: halfway between the
    clusters of c and c + 1 (what an attack that just crosses the boundary leaves)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per_class)
    centres = 0.6 * np.eye(6)[y]
    if between:
        centres = 0.5 * (centres + 0.6 * np.eye(6)[(y + 1) % 3])
    x = np.clip(0.1 + centres + 0.03 * rng.standard_normal((len(y), 6)), 0, 1)  # images
    return x.reshape(-1, 1, 2, 3), y


def fitted_on_clusters(**options):
    model = cluster_model()
    x, y = clusters(40, 1)
    x_adv, _ = clusters(40, 2, between=True)
    detector = KDEUncertaintyDetector(layer="ip1", bandwidth=0.1, n_samples=20, **options)
    return model, detector.fit(model, x, y, x_adv, density_data=clusters(100, 0))


@pytest.fixture(scope="module")
def on_clusters():
    """(model, detector) fitted once (a fit's LogisticRegressionCV takes about a second);
    tests that change either take a deep copy."""
    return fitted_on_clusters()


def test_log_densities_agree_with_scikit_learn_under_the_predicted_class(on_clusters):
    model, detector = on_clusters
    x, _ = clusters(20, 3)
    x[::2] = x[::-2].copy()                                # mix the classes' order
    predicted = model.predict(x)
    train_x, train_y = clusters(100, 0)
    features = train_x.reshape(-1, 6)
    expected = np.empty(len(x))
    for c in range(3):
        density = KernelDensity(kernel="gaussian", bandwidth=0.1).fit(features[train_y == c])
        expected[predicted == c] = density.score_samples(x.reshape(-1, 6)[predicted == c])
    np.testing.assert_allclose(detector.log_densities(x), expected, rtol=1e-10)


def test_points_between_clusters_score_higher_than_cluster_points(on_clusters):
    model, detector = on_clusters
    x, _ = clusters(50, 4)
    x_between, _ = clusters(50, 5, between=True)
    log_p, u = detector.features(x)
    log_p_between, u_between = detector.features(x_between)
    assert np.median(log_p) > np.median(log_p_between) + 5
    assert np.median(u_between) > np.median(u)
    scores = np.r_[detector.score(x), detector.score(x_between)]
    assert roc_auc_score(np.r_[np.zeros(150), np.ones(150)], scores) > 0.95
    assert (detector.predict(x) == model.predict(x)).mean() > 0.9
    assert (detector.predict(x_between) == -1).mean() > 0.6


def test_uncertainty_is_feinmans_formula_over_the_dropout_passes(on_clusters):
    model, detector = on_clusters
    x, _ = clusters(5, 6, between=True)
    p = softmax(model.mc_logits(x, 20, seed=0))                         # (T, N, K)
    feinman = (p ** 2).sum(axis=2).mean(axis=0) - (p.mean(axis=0) ** 2).sum(axis=1)
    np.testing.assert_allclose(detector.uncertainties(x), feinman, rtol=1e-9, atol=1e-15)
    assert (feinman > 1e-3).all()


def test_score_is_the_regressions_probability_on_the_standardised_features(on_clusters):
    _, detector = on_clusters
    x, _ = clusters(10, 7, between=True)
    log_p, u = detector.features(x)
    values = (np.stack([log_p, u], axis=1) - detector.mean) / detector.std
    np.testing.assert_allclose(detector.score(x),
                               detector.regression.predict_proba(values)[:, 1], rtol=1e-12)
    assert detector.std.shape == (2,) and (detector.std > 0).all()


def test_predict_rejects_above_the_threshold(on_clusters):
    model, detector = copy.deepcopy(on_clusters)
    detector.threshold = 0.3
    x = np.concatenate([clusters(10, 8)[0], clusters(10, 9, between=True)[0]])
    expected = np.where(detector.score(x) > 0.3, -1, model.predict(x))
    labels = detector.predict(x)
    np.testing.assert_array_equal(labels, expected)
    assert labels.dtype == np.int64 and 0 < (labels == -1).sum() < len(x)


def test_default_noisy_images_have_the_perturbations_norm_and_stay_in_range():
    detector = KDEUncertaintyDetector(seed=4)
    rng = np.random.default_rng(0)
    x = (0.3 + 0.4 * rng.random((5, 1, 6, 6))).astype(np.float32)
    x_adv = x + (0.02 * rng.standard_normal(x.shape)).astype(np.float32)
    noisy = detector.noisy_like(x, x_adv)
    norm = lambda d: np.sqrt((d.astype(np.float64) ** 2).sum(axis=(1, 2, 3)))   # noqa: E731
    np.testing.assert_allclose(norm(noisy - x), norm(x_adv - x), rtol=1e-5)
    assert noisy.dtype == np.float32 and not np.allclose(noisy - x, x_adv - x, atol=1e-3)
    np.testing.assert_array_equal(noisy, KDEUncertaintyDetector(seed=4).noisy_like(x, x_adv))
    far = detector.noisy_like(x, x + 5.0)                              # clipping to [0, 1]
    assert far.min() >= 0 and far.max() <= 1


def test_fit_and_scores_are_deterministic_given_the_seed_and_leave_inputs_alone():
    model = cluster_model()
    x, y = clusters(30, 1)
    x_adv, _ = clusters(30, 2, between=True)
    copies = [a.copy() for a in (x, x_adv)]
    scores = [KDEUncertaintyDetector(layer="ip1", bandwidth=0.1, n_samples=10, seed=5)
              .fit(model, x, labels, x_adv, density_data=clusters(50, 0)).score(x_adv)
              for labels in (y, None)]                   # y is optional (and not used)
    np.testing.assert_array_equal(scores[0], scores[1])
    u5, u6 = (KDEUncertaintyDetector(n_samples=10, seed=s).uncertainties(x_adv, model)
              for s in (5, 6))
    assert not np.array_equal(u5, u6)
    for a, before in zip((x, x_adv), copies):
        np.testing.assert_array_equal(a, before)


# ------------------------------------------------------------------ the gradient

@pytest.fixture(scope="module")
def small_fitted():
    """test_model's small network (float64, dropout 0.5, 4 classes), KDE on its 6 tanh
    features of 200 random images with random labels (bandwidth 0.5: many training points
    share each image's softmax weight, so the gradient is not that of one kernel). Tests
    take deep copies."""
    model = small_model(np, dropout=0.5)
    rng = np.random.default_rng(0)
    x_train, y_train = rng.random((200, 2, 7, 8)), np.arange(200) % 4
    x, x_adv = rng.random((20, 2, 7, 8)), rng.random((20, 2, 7, 8))
    detector = KDEUncertaintyDetector(layer="tanh_1", bandwidth=0.5, n_samples=10)
    detector.fit(model, x, model.predict(x), x_adv, density_data=(x_train, y_train))
    return model, detector


def test_score_gradient_matches_finite_differences_of_the_density_term(xp, small_fitted):
    """Central differences (float64, eps 1e-5) of sum_n w_d (log p(x_n) - mean_d) / std_d, the
    decision value with the uncertainty held fixed; norm-wise 1e-7 and element-wise 1e-6
    relative agreement (gradcheck's defaults), every entry of 3 images (2, 7, 8)."""
    model, detector = copy.deepcopy(small_fitted)
    model.to("gpu" if xp is not np else "cpu")
    x = inputs(xp)
    before = to_numpy(x).copy()

    def density_term(v):
        log_p = detector.log_densities(v)
        return (detector.coef[0] * (log_p - detector.mean[0]) / detector.std[0]).sum()

    gradient = detector.score_gradient(x)
    assert gradient.shape == x.shape and gradient.dtype == x.dtype and type(gradient) is type(x)
    np.testing.assert_array_equal(to_numpy(x), before)
    assert float(abs(gradient).max()) > 1e-5                     # the check is not vacuous
    if xp is np:
        assert_gradients_close(compare_input_gradient(
            "score_gradient", lambda v: detector.score_gradient(v), density_term, x))
    else:                                  # the device path gives the host path's numbers
        _, host = small_fitted
        np.testing.assert_allclose(to_numpy(gradient), host.score_gradient(inputs(np)),
                                   rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(to_numpy(detector.score(x)), host.score(inputs(np)),
                                   rtol=1e-10)


def test_float32_model_gives_float32_gradient_and_float64_scores(small_fitted):
    model, detector = copy.deepcopy(small_fitted)
    model.astype(np.float32)
    x = inputs(np, dtype=np.float32)
    assert detector.score_gradient(x).dtype == np.float32
    assert detector.score(x).dtype == np.float64 and detector.log_densities(x).dtype == np.float64
    assert detector.predict(x).dtype == np.int64


# ------------------------------------------------------------------ defaults and bad input

def test_defaults_tap_feinmans_128_unit_layer():
    detector = KDEUncertaintyDetector()
    assert (detector.layer, detector.bandwidth, detector.n_samples, detector.threshold) == (
        "relu_3", 1.2, 50, 0.5)
    model = zoo.build("feinman_cnn")
    assert model.layers[model.index("relu_3") - 1].name == "dense_1"
    x = np.zeros((1, 1, 28, 28), dtype=np.float32)
    assert model.features(x, ["relu_3"])["relu_3"].shape == (1, 128)


def test_unfitted_detector_is_a_clear_error():
    x = clusters(2, 0)[0]
    for call in ("predict", "score", "score_gradient", "log_densities", "features"):
        with pytest.raises(RuntimeError, match=r"not fitted: call fit\(model, x, y, x_adv, "
                                               r"density_data="):
            getattr(KDEUncertaintyDetector(), call)(x)


def test_bad_fits_are_refused():
    model, (x, y) = cluster_model(), clusters(10, 1)
    x_adv = clusters(10, 2, between=True)[0]
    train = clusters(20, 0)
    detector = KDEUncertaintyDetector(layer="ip1", n_samples=4)
    no_class_2 = (train[0][train[1] != 2], train[1][train[1] != 2])
    with pytest.raises(ValueError, match=r"every class 0..2.*missing classes: \[2\]"):
        detector.fit(model, x, y, x_adv, density_data=no_class_2)
    with pytest.raises(ValueError, match=r"other labels: \[5\]"):
        detector.fit(model, x, y, x_adv, density_data=(train[0], np.where(train[1] == 0, 5,
                                                                           train[1])))
    with pytest.raises(ValueError, match="x_adv must have the shape of x"):
        detector.fit(model, x, y, x_adv[:5], density_data=train)
    with pytest.raises(ValueError, match="x_noisy must have the shape of x"):
        detector.fit(model, x, y, x_adv, density_data=train, x_noisy=x[:, :, :1])
    with pytest.raises(ValueError, match="needs x_adv"):
        detector.fit(model, x, y, None, density_data=train)
    with pytest.raises(ValueError, match=r"density_data must be \(x_train, y_train\)"):
        detector.fit(model, x, y, x_adv, density_data=train[0])
    with pytest.raises(ValueError, match="y_train must be integers"):
        detector.fit(model, x, y, x_adv, density_data=(train[0], train[1][:-1]))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 1, 2, 3\)"):
        detector.fit(model, x, y, x_adv, density_data=(np.zeros((4, 1, 3, 2)), train[1][:4]))
    with pytest.raises(KeyError, match="no layer to tap.*'relu_3'"):
        KDEUncertaintyDetector(n_samples=4).fit(model, x, y, x_adv, density_data=train)
    no_dropout = Sequential(cluster_model().layers[:2] + cluster_model().layers[3:],
                            input_shape=(1, 2, 3))
    with pytest.raises(ValueError, match="identical dropout passes"):
        detector.fit(no_dropout, x, y, x_adv, density_data=train)
    with pytest.raises(TypeError, match="model interface"):
        detector.fit(lambda v: v, x, y, x_adv, density_data=train)
    with pytest.raises(RuntimeError, match="not fitted"):       # failed fits leave it unfitted
        detector.predict(x)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"bandwidth": 0}, ValueError, "bandwidth must be a finite number > 0"),
    ({"n_samples": 1}, ValueError, "n_samples must be an integer >= 2"),
    ({"threshold": 1.0}, ValueError, "threshold"),
    ({"seed": -1}, ValueError, "seed"),
    ({"layer": 3}, TypeError, "layer must be a layer name"),
])
def test_bad_settings_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        KDEUncertaintyDetector(**kwargs)


def test_wrong_images_after_fitting_are_refused(on_clusters):
    _, detector = on_clusters
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 1, 2, 3\)"):
        detector.score(np.zeros((2, 1, 3, 2)))
    with pytest.raises(ValueError, match="floating point"):
        detector.predict(np.zeros((2, 1, 2, 3), dtype=np.uint8))
