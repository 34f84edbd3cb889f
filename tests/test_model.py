"""The model interface: input gradients, Jacobians and feature taps against finite differences
and against each other; MC dropout; what the interface must leave alone; bad input. The
interface tests run on ``Sequential`` and on a wrapper written here in a few lines, which gets
the whole interface from the per-batch methods of ``Model``; the multi-tap pullback against
finite differences of sum g1 * f1 + g2 * f2; a model written for the one-tap primitive."""

import math

import numpy as np
import pytest

from nnscratch import backend, zoo
from nnscratch.backend import device_of, to_numpy
from nnscratch.gradcheck import (GradientComparison, assert_gradients_close, check_feature_gradient,
                                 check_jacobian, check_logit_gradient, check_loss_gradient,
                                 compare_input_gradient, numerical_gradient)
from nnscratch.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Tanh
from nnscratch.losses import softmax_cross_entropy
from nnscratch.model import LOGITS, Model, Sequential
from nnscratch.ops import softmax


def small_model(xp, dtype=np.float64, dropout=0.0):
    """conv, ReLU, max-pool, dropout, dense, tanh, dense: every kind of layer an attack meets."""
    rng = np.random.default_rng(0)
    model = Sequential([Conv2D(2, 3, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2),
                        Dropout(dropout), Flatten(), Dense(3 * 3 * 4, 6, rng=rng), Tanh(),
                        Dense(6, 4, rng=rng)], input_shape=(2, 7, 8), batch_size=2)
    return model.astype(dtype).to(device_of(xp.zeros(0)))


class AfterLinearMap(Model):
    """``model`` applied to M x (x flattened): the model interface from two short methods.
    pullback: d(sum g * out)/dx = M^T (d(sum g * out)/d(Mx)), for every tap at once."""

    def __init__(self, model, matrix):
        self.model, self.matrix = model, matrix
        self.input_shape, self.batch_size = model.input_shape, 2

    def transform(self, x, matrix):
        flat = x.reshape(len(x), math.prod(x.shape[1:]))
        return (flat @ matrix.astype(x.dtype, copy=False)).reshape(x.shape)

    def batch_logits(self, x, rng=None):
        return self.model.batch_logits(self.transform(x, self.matrix.T), rng)

    def batch_vjp(self, x, rng=None, taps=(LOGITS,)):
        outputs, pullback = self.model.vjp(self.transform(x, self.matrix.T), rng, taps)
        return outputs, lambda grads: self.transform(pullback(grads), self.matrix)

    device = property(lambda self: self.model.device)


def wrapped_model(xp, dtype=np.float64, dropout=0.0):
    matrix = np.random.default_rng(4).standard_normal((2 * 7 * 8, 2 * 7 * 8)) / 10
    return AfterLinearMap(small_model(xp, dtype, dropout), xp.asarray(matrix.astype(dtype)))


@pytest.fixture(params=[small_model, wrapped_model], ids=["sequential", "wrapped"])
def make_model(request):
    return request.param


def inputs(xp, n=3, dtype=np.float64, seed=1):
    return xp.asarray(np.random.default_rng(seed).random((n, 2, 7, 8)).astype(dtype))


def labels(xp, n=3):
    return xp.asarray(np.arange(n) % 4)


def test_loss_gradient_matches_finite_differences(xp, make_model):
    model = make_model(xp)
    assert_gradients_close(check_loss_gradient(model, inputs(xp), labels(xp)))


def test_logit_gradient_matches_finite_differences(xp, make_model):
    model = make_model(xp)
    w = xp.asarray(np.random.default_rng(2).standard_normal((3, 4)))
    assert_gradients_close(check_logit_gradient(model, inputs(xp), w))


def test_jacobian_matches_finite_differences(xp, make_model):
    assert_gradients_close(check_jacobian(make_model(xp), inputs(xp)))


@pytest.mark.parametrize("tap", ["relu_1", "maxpool2d_1", "tanh_1"])
def test_feature_gradient_matches_finite_differences(xp, make_model, tap):
    model = make_model(xp)
    x = inputs(xp)
    shape = model.features(x, [tap])[tap].shape
    w = xp.asarray(np.random.default_rng(3).standard_normal(shape))
    assert_gradients_close(check_feature_gradient(model, x, tap, w))


def test_gradients_agree_with_each_other(xp, make_model):
    """A Jacobian row is logit_gradient with a one-hot weight; loss_gradient is
    logit_gradient with w = softmax - onehot."""
    model, x, y = make_model(xp), inputs(xp), labels(xp)
    jac = model.jacobian(x)
    assert jac.shape == (3, 4, 2, 7, 8)
    for k in range(4):
        w = xp.zeros((3, 4))
        w[:, k] = 1
        np.testing.assert_allclose(to_numpy(jac[:, k]), to_numpy(model.logit_gradient(x, w)[1]),
                                   rtol=1e-12, atol=1e-14)
    logits = model.logits(x)
    onehot = xp.eye(4)[y]
    losses, grad = model.loss_gradient(x, y)
    np.testing.assert_allclose(to_numpy(grad), to_numpy(
        model.logit_gradient(x, softmax(logits) - onehot)[1]), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(to_numpy(losses), to_numpy(softmax_cross_entropy(logits, y)[0]))


def test_each_image_gets_the_gradient_of_its_own_loss(xp, make_model):
    """Batching (batch_size=2 splits 5 images) and neighbours do not change a sample's gradient."""
    model, x, y = make_model(xp), inputs(xp, 5), labels(xp, 5)
    _, together = model.loss_gradient(x, y)
    for i in range(5):
        _, alone = model.loss_gradient(x[i:i + 1], y[i:i + 1])
        np.testing.assert_allclose(to_numpy(alone[0]), to_numpy(together[i]), rtol=1e-12,
                                   atol=1e-15)


def test_parameter_gradients_match_finite_differences(xp):
    """compute_gradients: d(mean loss)/d(param) for every parameter of the model."""
    model, x, y = small_model(xp), inputs(xp), labels(xp)
    model.compute_gradients(x, y, rng=None)
    for name, param, grad in model.parameters():
        numeric = numerical_gradient(
            lambda: softmax_cross_entropy(model.forward(x), y)[0].mean(), param, eps=1e-5)
        assert_gradients_close([GradientComparison(name, grad, numeric)])


def test_interface_never_touches_parameter_gradients(xp):
    model, x, y = small_model(xp, dropout=0.5), inputs(xp), labels(xp)
    model.compute_gradients(x, y, rng=xp.random.default_rng(0))
    before = [(name, to_numpy(grad).copy()) for name, _, grad in model.parameters()]
    weights = [to_numpy(p).copy() for _, p, _ in model.parameters()]
    model.logits(x)
    model.loss_gradient(x, y)
    model.loss_gradient(x, y, mc_seed=3)
    model.logit_gradient(x, xp.ones((3, 4)))
    model.jacobian(x)
    model.feature_gradient(x, "relu_1", xp.ones((3, 3, 7, 8)))
    model.mc_logits(x, 2, seed=0)
    for (name, grad), (_, _, now) in zip(before, model.parameters()):
        np.testing.assert_array_equal(to_numpy(now), grad, err_msg=name)
    for w, (_, p, _) in zip(weights, model.parameters()):
        np.testing.assert_array_equal(to_numpy(p), w)


def test_mc_dropout(xp, make_model):
    model, x, y = make_model(xp, dropout=0.5), inputs(xp), labels(xp)
    eval_logits = to_numpy(model.logits(x))
    samples = model.mc_logits(x, 4, seed=5)
    assert samples.shape == (4, 3, 4)
    np.testing.assert_array_equal(to_numpy(samples), to_numpy(model.mc_logits(x, 4, seed=5)))
    assert not np.allclose(to_numpy(samples[0]), to_numpy(samples[1]))
    assert not np.allclose(to_numpy(samples[0]), eval_logits)
    np.testing.assert_array_equal(to_numpy(model.logits(x)), eval_logits)   # no sticky mode
    mc_loss, mc_grad = model.loss_gradient(x, y, mc_seed=1)
    np.testing.assert_array_equal(to_numpy(mc_grad), to_numpy(model.loss_gradient(x, y, 1)[1]))
    assert not np.allclose(to_numpy(mc_grad), to_numpy(model.loss_gradient(x, y)[1]))


def test_features_are_the_activations_of_the_named_layers(xp, make_model):
    model, x = make_model(xp), inputs(xp, 5)
    taps = model.features(x, ["relu_1", "dense_2"])
    assert set(taps) == {"relu_1", "dense_2"}
    np.testing.assert_allclose(to_numpy(taps["dense_2"]), to_numpy(model.logits(x)), rtol=1e-12)
    assert taps["relu_1"].shape == (5, 3, 7, 8)
    with pytest.raises(KeyError, match="no layer named 'nope'"):
        model.features(x, ["nope"])


def test_float32_stays_float32(xp, make_model):
    model = make_model(xp, np.float32, dropout=0.5)
    x, y = inputs(xp, dtype=np.float32), labels(xp)
    assert model.logits(x).dtype == np.float32
    assert model.predict_proba(x).dtype == np.float32
    losses, grad = model.loss_gradient(x, y, mc_seed=0)
    assert losses.dtype == np.float32 and grad.dtype == np.float32
    assert model.jacobian(x).dtype == np.float32
    assert model.mc_logits(x, 2).dtype == np.float32
    assert model.features(x, "relu_1")["relu_1"].dtype == np.float32


def test_float32_training_step_stays_float32(xp):
    model = small_model(xp, np.float32, dropout=0.5)
    model.compute_gradients(inputs(xp, dtype=np.float32), labels(xp), xp.random.default_rng(0))
    assert all(g.dtype == np.float32 for _, _, g in model.parameters())


def test_inputs_are_not_modified(xp):
    model, x, y = small_model(xp, dropout=0.5), inputs(xp), labels(xp)
    w = xp.ones((3, 4))
    copies = [to_numpy(a).copy() for a in (x, y, w)]
    model.loss_gradient(x, y, mc_seed=0)
    model.logit_gradient(x, w)
    model.jacobian(x)
    model.compute_gradients(x, y, rng=xp.random.default_rng(0))
    for array, copy in zip((x, y, w), copies):
        np.testing.assert_array_equal(to_numpy(array), copy)


def test_empty_batch(xp, make_model):
    model = make_model(xp, np.float32)
    x = xp.zeros((0, 2, 7, 8), dtype=np.float32)
    assert model.logits(x).shape == (0, 4)
    assert model.predict(x).shape == (0,)
    losses, grad = model.loss_gradient(x, xp.zeros(0, dtype=np.int64))
    assert losses.shape == (0,) and grad.shape == (0, 2, 7, 8)
    assert model.jacobian(x).shape == (0, 4, 2, 7, 8)
    assert model.mc_logits(x, 3).shape == (3, 0, 4)


@pytest.mark.parametrize("bad, message", [
    (lambda x: x.copy().astype(np.int64), "floating point"),
    (lambda x: (x * 255).astype(np.uint8), "floating point"),
    (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), "NaN or inf"),
    (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 5, np.inf, x), "NaN or inf"),
    (lambda x: x[:, :1], r"expected input of shape \(N, 2, 7, 8\)"),
    (lambda x: x[0], r"expected input of shape \(N, 2, 7, 8\)"),
])
def test_entry_points_refuse_bad_images(bad, message):
    model = small_model(np)
    x = bad(np.random.default_rng(0).random((3, 2, 7, 8)))
    for call in (model.logits, lambda v: model.loss_gradient(v, np.zeros(len(v), np.int64)),
                 lambda v: model.compute_gradients(v, np.zeros(len(v), np.int64), None)):
        with pytest.raises(ValueError, match=message):
            call(x)


def test_bad_labels_are_refused():
    model, x = small_model(np), inputs(np)
    with pytest.raises(ValueError, match="labels must be integers of shape"):
        model.loss_gradient(x, np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="labels must be integers"):
        model.loss_gradient(x, np.zeros(3))
    for wrong in ([0, 1, 4], [-1, 0, 1]):              # 4 classes: 4 and -1 are out of range
        with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
            model.loss_gradient(x, np.array(wrong))


def test_construction_checks_the_stack():
    with pytest.raises(ValueError, match="unique"):
        Sequential([ReLU(name="a"), ReLU(name="a")])
    with pytest.raises(ValueError, match=r"Dense layer 'dense_1'.*\(N, 10\)"):
        Sequential([Flatten(), Dense(10, 2)], input_shape=(1, 4, 4))


def test_summary_and_parameter_count():
    model = zoo.build("dnr_cnn")
    counts = [sum(p.size for p in layer.params.values()) for layer in model.layers
              if layer.params]
    assert counts == [320, 9248, 18496, 36928, 627400, 40200, 2010]
    assert model.n_params == sum(counts)
    text = model.summary()
    assert "conv2d_1" in text and "(32, 28, 28)" in text and "(3136,)" in text
    assert f"total parameters: {sum(counts):,}" in text


def test_gpu_without_cupy_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(backend, "cupy", None)
    with pytest.raises(RuntimeError, match="CuPy"):
        small_model(np).to("gpu")


def test_input_on_another_device_is_a_clear_error(monkeypatch):
    import standin_cupy
    monkeypatch.setattr(backend, "cupy", standin_cupy.module)
    model = small_model(np)
    with pytest.raises(ValueError, match="input is on gpu, the model on cpu"):
        model.logits(standin_cupy.module.asarray(inputs(np)))


# ------------------------------------------------------------------ several taps in one pass

def two_tap_upstream(model, x, taps, seed=5):
    outputs = model.features(x, taps)
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(outputs[name].shape) for name in taps}


@pytest.mark.parametrize("taps", [("relu_1", LOGITS), ("maxpool2d_1", "tanh_1", LOGITS),
                                  (LOGITS, "dense_2")])           # dense_2 is the logit layer
def test_multi_tap_pullback_matches_finite_differences(make_model, taps):
    """pullback({t: g_t}) = d(sum_t sum g_t * f_t)/dx, all taps in one backward pass."""
    model, x = make_model(np), inputs(np)
    grads = two_tap_upstream(model, x, taps)

    def gradient(v):
        return model.vjp(v, None, taps)[1](grads)

    def value(v):
        outputs = model.features(v, taps)
        return sum((grads[name] * outputs[name]).sum() for name in taps)

    assert_gradients_close(compare_input_gradient(f"pullback of {taps}", gradient, value, x))


def test_multi_tap_pullback_is_the_sum_of_one_tap_pullbacks(xp, make_model):
    """One forward and one backward pass give what two single-tap gradients give; a tap given
    None or no g adds nothing; the outputs are the features and the logits."""
    model, x = make_model(xp), inputs(xp, 2)
    taps = ("relu_1", LOGITS, "tanh_1")
    grads = {name: xp.asarray(g) for name, g in two_tap_upstream(model, x, taps).items()}
    outputs, pullback = model.vjp(x, None, taps)
    np.testing.assert_array_equal(to_numpy(outputs[LOGITS]), to_numpy(model.logits(x)))
    np.testing.assert_array_equal(to_numpy(outputs["relu_1"]),
                                  to_numpy(model.features(x, ["relu_1"])["relu_1"]))
    together = to_numpy(model.vjp(x, None, taps)[1]({"relu_1": grads["relu_1"],
                                                      LOGITS: grads[LOGITS], "tanh_1": None}))
    apart = (to_numpy(model.feature_gradient(x, "relu_1", grads["relu_1"]))
             + to_numpy(model.logit_gradient(x, grads[LOGITS])[1]))
    np.testing.assert_allclose(together, apart, rtol=1e-10, atol=1e-13)
    _, pullback = model.vjp(x, None, taps)
    assert not to_numpy(pullback({})).any() and pullback({}).shape == x.shape
    with pytest.raises(KeyError, match="relu_9"):
        pullback({"relu_9": grads["relu_1"]})


class OneTapLinear(Model):
    """A model written for the one-tap primitive that came before the multi-tap one:
    ``batch_vjp(x, rng, tap) -> (logits, pullback(g))``; z = x_flat @ W."""

    input_shape, batch_size = (2, 7, 8), 2

    def __init__(self, weights):
        self.weights = weights

    def batch_logits(self, x, rng=None):
        return x.reshape(len(x), 112) @ self.weights

    def batch_features(self, x, names):
        return {}

    def batch_vjp(self, x, rng=None, tap=None):
        return self.batch_logits(x), lambda g: (g @ self.weights.T).reshape(x.shape)

    device = property(lambda self: None)


class OneTapPassThrough(AfterLinearMap):
    """A wrapper written for the one-tap primitive, passing ``tap`` on positionally."""

    def batch_vjp(self, x, rng=None, tap=None):
        out, pullback = self.model.batch_vjp(self.transform(x, self.matrix.T), rng, tap)
        return out, lambda g: self.transform(pullback(g), self.matrix)


def test_models_written_for_the_one_tap_primitive_still_work():
    x, y = inputs(np), labels(np)
    old = OneTapLinear(np.random.default_rng(0).standard_normal((112, 4)))
    assert_gradients_close(check_loss_gradient(old, x, y))
    assert_gradients_close(check_jacobian(old, x))
    passing = OneTapPassThrough(small_model(np), wrapped_model(np).matrix)
    w = np.random.default_rng(3).standard_normal(passing.features(x, ["relu_1"])["relu_1"].shape)
    assert_gradients_close(check_feature_gradient(passing, x, "relu_1", w))
    assert_gradients_close(check_loss_gradient(passing, x, y))
