"""What the defences share (``defenses/base.py``): one ``fit`` convention, the fitted check, the
refusal of images outside [0, 1] at every public entry point; and the one-pass gradients of
OpenMax, DNR and KDE: one forward and one backward pass of the network per batch, equal (up to
float rounding) to the per-tap sums of single-tap gradients they replace."""

import inspect

import numpy as np
import pytest

from nnscratch.defenses import (AtRejectRate, Blur, Compose, DeepNeuralRejection,
                                KDEUncertaintyDetector, NeuralRejection, OpenMax, Round,
                                SoftmaxThreshold, UncertaintyCropDetector)
from nnscratch.defenses.base import Defence, flat
from nnscratch.model import LOGITS

from test_defenses_dnr import TAPS, digits, fitted_dnr
from test_defenses_kde import clusters, fitted_on_clusters
from test_defenses_openmax import fitted_small
from test_model import inputs

DEFENCES = [OpenMax, DeepNeuralRejection, NeuralRejection, SoftmaxThreshold, AtRejectRate,
            KDEUncertaintyDetector, UncertaintyCropDetector]


@pytest.mark.parametrize("kind", DEFENCES, ids=lambda k: k.__name__)
def test_one_fit_convention(kind):
    """fit(model, x, y, x_adv=None, *, named data): the same four positional arguments."""
    assert issubclass(kind, Defence)
    parameters = list(inspect.signature(kind.fit).parameters.values())
    assert [p.name for p in parameters[:5]] == ["self", "model", "x", "y", "x_adv"]
    assert parameters[4].default is None
    assert all(p.kind is p.KEYWORD_ONLY for p in parameters[5:])


def counted(model):
    """Count the calls of the network's first layer: whole or partial passes."""
    counts = {"forward": 0, "backward": 0}
    first = model.layers[0]
    for kind in counts:
        def call(*args, _inner=getattr(first, kind), _kind=kind, **kwargs):
            counts[_kind] += 1
            return _inner(*args, **kwargs)
        setattr(first, kind, call)
    return counts


def test_openmax_gradient_is_one_pass_and_the_two_pass_sum():
    model, openmax = fitted_small("eucos", 1.0)
    om_model, x = openmax.as_model(), inputs(np, 2)
    w = np.random.default_rng(4).standard_normal((2, 5))
    counts = counted(model)
    log_p, grad = om_model.logit_gradient(x, w)
    assert counts == {"forward": 1, "backward": 1}
    # the path it replaces: the network's logits and its tap pulled back separately
    head_logits, head_pullback = om_model.head(model.features(x, [LOGITS, "tanh_1"]), x)
    g = head_pullback(w)
    two_pass = (model.logit_gradient(x, g[LOGITS])[1]
                + model.feature_gradient(x, "tanh_1", g["tanh_1"]))
    np.testing.assert_array_equal(head_logits, log_p)
    np.testing.assert_allclose(grad, two_pass, rtol=1e-10, atol=1e-13)


def test_dnr_score_gradient_is_one_pass_and_the_per_tap_sum():
    dnr = fitted_dnr()
    _, _, (x, _) = digits()
    x = x[:5]
    counts = counted(dnr.model)
    grad = dnr.score_gradient(x)
    assert counts == {"forward": 1, "backward": 1}
    scores, pullback = dnr.scores_from(dnr.model.features(x, TAPS))
    g = pullback(-np.eye(10)[scores.argmax(axis=1)])
    per_tap = sum(dnr.model.feature_gradient(x, name, g[name]) for name in TAPS)
    np.testing.assert_allclose(grad, per_tap, rtol=1e-10, atol=1e-13)
    np.testing.assert_array_equal(scores, dnr.scores(x))


def test_kde_score_gradient_is_one_pass_and_the_tap_gradient():
    model, detector = fitted_on_clusters()
    x, _ = clusters(5, 3)
    counts = counted(model)
    grad = detector.score_gradient(x)
    assert counts == {"forward": 1, "backward": 1}
    f = flat(model.features(x, ["ip1"])["ip1"])
    _, grad_f = detector.density(f, model.logits(x), gradient=True)
    w = grad_f * (detector.coef[0] / detector.std[0])
    np.testing.assert_allclose(grad, model.feature_gradient(x, "ip1", w.reshape(len(x), 6)),
                               rtol=1e-12, atol=1e-15)


def outside(x):
    """x with one pixel at 1.5: outside [0, 1]."""
    bad = x.copy()
    bad.reshape(-1)[3] = 1.5
    return bad


def test_defences_refuse_images_outside_the_unit_range():
    (x, y), (x_val, _), _ = digits()
    dnr = fitted_dnr()
    calls = [lambda: dnr.predict(outside(x[:4])), lambda: dnr.score(outside(x[:4])),
             lambda: dnr.scores(outside(x[:4])), lambda: dnr.score_gradient(outside(x[:4])),
             lambda: dnr.scores_vjp(outside(x[:4]), np.zeros((4, 10))),
             lambda: DeepNeuralRejection(**{"layers": TAPS, "layer_svms": ((1, 1),) * 3})
             .fit(dnr.model, outside(x), y, x_val=x_val),
             lambda: SoftmaxThreshold().fit(dnr.model, x, y, x_val=outside(x_val))]
    model, openmax = fitted_small()
    z = inputs(np, 3)
    calls += [lambda: openmax.predict(outside(z)), lambda: openmax.score(outside(z)),
              lambda: openmax.predict_proba(outside(z)),
              lambda: OpenMax(layer="tanh_1").fit(model, outside(z), np.zeros(3, np.int64))]
    cluster_model, detector = fitted_on_clusters()
    c, _ = clusters(3, 4)
    calls += [lambda: detector.score(outside(c)), lambda: detector.predict(outside(c)),
              lambda: detector.score_gradient(outside(c)), lambda: detector.features(outside(c))]
    t = Compose(Blur(), Round())
    calls += [lambda: t(outside(z)), lambda: t.vjp(outside(z), z)]
    for call in calls:
        with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
            call()


def test_unfitted_defences_say_how_to_fit():
    for defence, how in ((OpenMax(), r"fit\(model, x, y\)"),
                         (SoftmaxThreshold(), r"fit\(model, x, y, x_val=...\)"),
                         (UncertaintyCropDetector(), r"fit\(model, x, y, x_adv\)")):
        with pytest.raises(RuntimeError, match=f"is not fitted: call {how} first"):
            defence.score(inputs(np))
