"""OpenMax: the Weibull tail fit against scipy (parameters recovered from Weibull data, libMR's
translation), the recalibration against a per-image loop written from OSDN's description,
rejection of far-away points on synthetic clusters, the exact gradient of OpenMaxModel against
finite differences in float64, and bad input."""

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from nnscratch import zoo
from nnscratch.backend import to_numpy
from nnscratch.defenses import OpenMax, OpenMaxModel, fit_tail
from nnscratch.defenses.weibull import weibull_cdf_and_pdf, weibull_mle
from nnscratch.gradcheck import (assert_gradients_close, check_jacobian, check_logit_gradient,
                                 check_loss_gradient)
from nnscratch.layers import Dense, Flatten
from nnscratch.model import Sequential

from test_model import inputs, small_model

# ------------------------------------------------------------------ the Weibull tail fit


def assert_same_fit_as_scipy(t, shape, scale):
    """(shape, scale) agree with scipy's maximum-likelihood fit (whose optimiser stops at
    about 1e-5 relative) and have at least its likelihood: the root of the likelihood
    equation is the maximum."""
    scipy_shape, _, scipy_scale = stats.weibull_min.fit(t, floc=0)
    np.testing.assert_allclose([shape, scale], [scipy_shape, scipy_scale], rtol=1e-4)
    assert (stats.weibull_min.logpdf(t, shape, 0, scale).sum()
            >= stats.weibull_min.logpdf(t, scipy_shape, 0, scipy_scale).sum() - 1e-9)


def test_fit_recovers_the_parameters_of_weibull_data():
    data = stats.weibull_min.rvs(2.5, scale=0.7, size=5000, random_state=1)
    tail = fit_tail(data, tailsize=5000, translation=None)
    assert tail.shift == 0
    assert abs(tail.shape / 2.5 - 1) < 0.05 and abs(tail.scale / 0.7 - 1) < 0.02
    assert_same_fit_as_scipy(data, tail.shape, tail.scale)


@pytest.mark.parametrize("shape, scale, n", [(0.5, 3.0, 50), (1.0, 1.0, 200), (40.0, 2.0, 100)])
def test_maximum_likelihood_agrees_with_scipy(shape, scale, n):
    data = stats.weibull_min.rvs(shape, scale=scale, size=n, random_state=2)
    assert_same_fit_as_scipy(data, *weibull_mle(data))


@pytest.mark.parametrize("translation", [1.0, 10000.0])
def test_fit_is_libmr_fithigh_on_the_largest_distances(translation):
    """The tailsize largest values, translated so that the smallest of them sits at the
    translation, then a two-parameter Weibull by maximum likelihood; its CDF and density as
    scipy's."""
    d = np.random.default_rng(0).gamma(5, 0.05, 2000)
    tail = fit_tail(d, tailsize=200, translation=translation)
    largest = np.sort(d)[-200:]
    assert tail.shift == translation - largest[0]
    assert_same_fit_as_scipy(largest + tail.shift, tail.shape, tail.scale)
    points = np.linspace(0, d.max() + 0.1, 50)
    cdf, pdf = tail.cdf_and_pdf(points)
    fitted = stats.weibull_min(tail.shape, 0, tail.scale)
    np.testing.assert_allclose(cdf, fitted.cdf(points + tail.shift), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(pdf, fitted.pdf(points + tail.shift), rtol=1e-7, atol=1e-9)
    assert (np.diff(cdf) >= 0).all() and cdf[0] < 0.01 and cdf[-1] > 0.99


def test_translations_1_and_10000_give_similar_cdfs():
    d = np.random.default_rng(0).gamma(5, 0.05, 2000)
    points = np.linspace(0, d.max() + 0.1, 200)
    cdfs = [fit_tail(d, 200, translation).cdf_and_pdf(points)[0] for translation in (1.0, 1e4)]
    assert np.abs(cdfs[0] - cdfs[1]).max() < 0.05


def test_cdf_and_pdf_per_class_and_below_the_support():
    d = np.array([[0.5, -1.0], [2.0, 0.0]])
    cdf, pdf = weibull_cdf_and_pdf(d, np.array([2.0, 0.5]), np.array([1.0, 2.0]), 0.0)
    np.testing.assert_allclose(cdf, [[1 - np.exp(-0.25), 0], [1 - np.exp(-4), 0]])
    np.testing.assert_allclose(pdf, [[2 * 0.5 * np.exp(-0.25), 0], [4 * np.exp(-4), 0]])


def test_fit_errors():
    with pytest.raises(ValueError, match="tail of 20 values to 10 distances"):
        fit_tail(np.arange(1.0, 11.0), 20)
    with pytest.raises(ValueError, match="all equal"):
        fit_tail(np.ones(30), 10)
    with pytest.raises(ValueError, match="positive values"):
        fit_tail(np.linspace(-1, 1, 30), 30, translation=None)


# ------------------------------------------------------------------ OpenMax on synthetic clusters

def prototype_model():
    """features "ip1" = the 6 pixels; logits "ip2" = 10 x the first 3 (class c lies along
    pixel c)."""
    ip1, ip2 = Dense(6, 6, name="ip1"), Dense(6, 3, name="ip2")
    ip1.params = {"W": np.eye(6), "b": np.zeros(6)}
    ip2.params = {"W": 10 * np.eye(6)[:, :3], "b": np.zeros(3)}
    return Sequential([Flatten(), ip1, ip2], input_shape=(1, 2, 3))


def clusters(n_per_class, seed, far=0.0):
    """Images 0.1 + 0.6 e_c + noise, class c = 0, 1, 2; ``far`` adds far * (pixels 3 to 5)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per_class)
    x = 0.1 + 0.6 * np.eye(6)[y] + 0.03 * rng.standard_normal((len(y), 6))
    x[:, 3:] += far
    return np.clip(x, 0, 1).reshape(-1, 1, 2, 3), y          # images: defences refuse others


@pytest.mark.parametrize("distance_kind", ["cosine", "eucos"])
def test_far_points_are_rejected_and_near_ones_kept(distance_kind):
    openmax = OpenMax(layer="ip1", tailsize=20, distance=distance_kind)
    openmax.fit(prototype_model(), *clusters(300, 0))
    near, y_near = clusters(100, 1)
    far, _ = clusters(100, 2, far=0.6)
    assert (openmax.predict(near) == y_near).mean() > 0.9
    assert (openmax.predict(far) == -1).all()
    assert openmax.score(far).min() > 0.5 > np.median(openmax.score(near))
    proba = openmax.predict_proba(near)
    assert proba.shape == (300, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_allclose(openmax.score(near), proba[:, 3])


def test_threshold_rejects_uncertain_images():
    model, (x, y) = prototype_model(), clusters(300, 0)
    plain = OpenMax(layer="ip1", tailsize=20).fit(model, x, y)
    strict = OpenMax(layer="ip1", tailsize=20, threshold=0.99).fit(model, x, y)
    proba = plain.predict_proba(x)
    expected = np.where(proba.max(axis=1) < 0.99, -1, plain.predict(x))
    np.testing.assert_array_equal(strict.predict(x), expected)
    assert 0 < ((expected == -1) & (plain.predict(x) != -1)).sum() < len(x)


def naive_openmax(openmax, model, x):
    """OpenMax probabilities image by image, as OSDN's code computes them."""
    logits = model.logits(x)
    features = model.features(x, [openmax.layer])[openmax.layer].reshape(len(x), -1)
    alpha, rows = openmax.alpha, []
    for v, h in zip(logits, features):
        weights = np.zeros(len(v))
        for i, c in enumerate(np.argsort(v)[::-1][:alpha], start=1):
            weights[c] = (alpha + 1 - i) / alpha
        revised, unknown = [], 0.0
        for c, (mav, tail) in enumerate(zip(openmax.mavs, openmax.tails)):
            d = distance.cosine(mav, h)
            if openmax.distance == "eucos":
                d += distance.euclidean(mav, h) / 200
            w_score = stats.weibull_min.cdf(d + tail.shift, tail.shape, 0, tail.scale)
            revised.append(v[c] * (1 - weights[c] * w_score))
            unknown += v[c] - revised[-1]
        scores = np.exp(np.array(revised + [unknown]))
        rows.append(scores / scores.sum())
    return np.array(rows)


@pytest.mark.parametrize("distance_kind, alpha", [("cosine", 2), ("eucos", 3)])
def test_recalibration_matches_a_per_image_loop(xp, distance_kind, alpha):
    model, openmax = fitted_small(distance_kind, alpha=alpha)
    x = np.random.default_rng(7).random((20, 2, 7, 8))
    expected = naive_openmax(openmax, model, x)
    model.to("gpu" if xp is not np else "cpu")
    np.testing.assert_allclose(to_numpy(openmax.predict_proba(xp.asarray(x))), expected,
                               rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ the exact gradient

def fitted_small(distance_kind="cosine", translation=10000.0, alpha=2):
    """OpenMax on test_model's small network (tap tanh_1, 6 features, 4 classes), fitted on
    400 random images labelled with its predictions (biases shifted to balance the classes)."""
    model = small_model(np)
    x = np.random.default_rng(0).random((400, 2, 7, 8))
    model.layers[-1].params["b"] = model.layers[-1].params["b"] - model.logits(x).mean(axis=0)
    openmax = OpenMax(layer="tanh_1", tailsize=10, alpha=alpha, distance=distance_kind,
                      translation=translation)
    return model, openmax.fit(model, x, model.predict(x))


# translation 10000 adds 1e4 to distances of order 1 before the CDF: float64 rounding of that
# sum (~2e-12) divided by the finite-difference step makes ~1e-6 absolute noise in the
# numerical gradient, hence looser tolerances there (the analytic gradient is not affected).
LOOSE = {"norm_tolerance": 1e-5, "rtol": 1e-4, "atol": 1e-6}


@pytest.mark.parametrize("distance_kind, translation, tolerances", [
    ("cosine", 1.0, {}), ("eucos", 1.0, {}), ("cosine", 10000.0, LOOSE), ("eucos", None, {})])
def test_openmax_model_gradient_matches_finite_differences(distance_kind, translation,
                                                           tolerances):
    _, openmax = fitted_small(distance_kind, translation)
    model, x = openmax.as_model(), inputs(np)
    w = np.random.default_rng(2).standard_normal((3, 5))
    assert_gradients_close(check_logit_gradient(model, x, w), **tolerances)
    assert_gradients_close(check_loss_gradient(model, x, np.array([0, 4, 2])), **tolerances)


def test_the_weibull_term_is_active_at_the_checked_points():
    """The gradient checks mean something only if the CDFs are neither 0 nor 1 there."""
    model, openmax = fitted_small()
    h = model.features(inputs(np), ["tanh_1"])["tanh_1"]
    mavs, shape, scale, shift = openmax.fitted_arrays(np)
    d = 1 - (h / np.linalg.norm(h, axis=1, keepdims=True)) @ (
        mavs / np.linalg.norm(mavs, axis=1, keepdims=True)).T
    cdf, pdf = weibull_cdf_and_pdf(d, shape, scale, shift)
    assert ((cdf > 0.01) & (cdf < 0.99)).sum() >= 6 and (pdf > 0.1).sum() >= 6


def test_openmax_model_jacobian_and_backends(xp):
    model, openmax = fitted_small("eucos", 1.0)
    model.to("gpu" if xp is not np else "cpu")
    om_model, x = openmax.as_model(), inputs(xp, 2)
    assert_gradients_close(check_jacobian(om_model, x))
    log_p = om_model.logits(x)
    assert log_p.shape == (2, 5)
    np.testing.assert_allclose(to_numpy(xp.exp(log_p)), to_numpy(openmax.predict_proba(x)),
                               rtol=1e-12)
    np.testing.assert_array_equal(to_numpy(om_model.features(x, "tanh_1")["tanh_1"]),
                                  to_numpy(model.features(x, "tanh_1")["tanh_1"]))


def test_empty_batches():
    _, openmax = fitted_small()
    x = np.zeros((0, 2, 7, 8))
    assert openmax.predict_proba(x).shape == (0, 5) and openmax.predict(x).shape == (0,)
    assert openmax.as_model().loss_gradient(x, np.zeros(0, np.int64))[1].shape == (0, 2, 7, 8)


def test_float32_model_gives_float32():
    model, openmax = fitted_small()
    model.astype(np.float32)
    x = inputs(np, dtype=np.float32)
    assert openmax.predict_proba(x).dtype == np.float32
    assert openmax.as_model().loss_gradient(x, np.array([0, 1, 4]))[1].dtype == np.float32
    assert openmax.predict(x).dtype == np.int64


# ------------------------------------------------------------------ defaults and bad input

def test_default_layer_taps_lenets_500_unit_layer_after_its_relu():
    model = zoo.build("lenet")
    openmax = OpenMax()
    assert (openmax.layer, openmax.tailsize, openmax.alpha, openmax.distance) == (
        "relu_1", 200, 2, "cosine")
    before = model.layers[model.index(openmax.layer) - 1]
    assert before.name == "dense_1" and before.out_features == 500
    x = np.zeros((1, 1, 28, 28), dtype=np.float32)
    assert model.features(x, [openmax.layer])[openmax.layer].shape == (1, 500)


def test_unfitted_openmax_is_a_clear_error():
    x = inputs(np)
    for call in (OpenMax().predict, OpenMax().score, OpenMax().predict_proba,
                 lambda v: OpenMax().as_model(), lambda v: OpenMaxModel(OpenMax())):
        with pytest.raises(RuntimeError, match="not fitted"):
            call(x)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"tailsize": 1}, ValueError, "tailsize must be an integer >= 2"),
    ({"tailsize": 2.5}, ValueError, "tailsize"),
    ({"alpha": 0}, ValueError, "alpha must be a positive integer"),
    ({"alpha": "2"}, TypeError, "alpha"),
    ({"distance": "euclid"}, ValueError, "distance must be one of 'cosine', 'eucos'"),
    ({"translation": 0}, ValueError, "translation"),
    ({"threshold": 1.5}, ValueError, "threshold"),
    ({"layer": 3}, TypeError, "layer must be a layer name"),
])
def test_bad_settings_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        OpenMax(**kwargs)


def test_bad_fits_are_refused():
    model, (x, y) = prototype_model(), clusters(30, 0)
    with pytest.raises(KeyError, match="no layer to tap.*'ip9'"):
        OpenMax(layer="ip9", tailsize=10).fit(model, x, y)
    with pytest.raises(ValueError, match="class 0 has 30 correctly classified images, fewer "
                                         "than tailsize=50"):
        OpenMax(layer="ip1", tailsize=50).fit(model, x, y)
    with pytest.raises(ValueError, match="alpha=4 exceeds the number of classes 3"):
        OpenMax(layer="ip1", tailsize=10, alpha=4).fit(model, x, y)
    with pytest.raises(ValueError, match="x_adv must be None"):
        OpenMax(layer="ip1", tailsize=10).fit(model, x, y, x_adv=x)
    with pytest.raises(ValueError, match="labels must be integers of shape"):
        OpenMax(layer="ip1", tailsize=10).fit(model, x, y[:-1])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        OpenMax(layer="ip1", tailsize=10).fit(model, x, y + 1)
    with pytest.raises(TypeError, match="model interface"):
        OpenMax(layer="ip1").fit(lambda v: v, x, y)


def test_bad_inputs_after_fitting_are_refused():
    model, openmax = fitted_small()
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 2, 7, 8\)"):
        openmax.predict(np.zeros((2, 1, 7, 8)))
    with pytest.raises(ValueError, match="floating point"):
        openmax.score(np.zeros((2, 2, 7, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="no dropout mode"):
        openmax.as_model().mc_logits(inputs(np), 2)
    with pytest.raises(TypeError, match="takes a fitted OpenMax"):
        OpenMaxModel(model)
