"""Optimizers and learning-rate schedules against hand computations.

The update rules are written out again here, in float64, from their textbook form (the
formulas in ``nnscratch/optim.py``'s docstring, PyTorch's conventions) and compared with what the
optimizers do to a one-layer model whose gradients the test sets by hand. In float64 the two
computations differ only by reassociation, a few ulps, hence ``rtol=1e-12``.
"""

import math

import numpy as np
import pytest

from nnscratch.layers import Dense, ReLU
from nnscratch.model import Sequential
from nnscratch.optim import SGD, Adam, CosineLR, StepLR

RTOL = 1e-12

# three steps' gradients for W (3, 2) and b (2,): mixed signs and magnitudes
GRADIENTS = [
    {"W": np.array([[0.5, -1.0], [2.0, 0.25], [-0.125, 3.0]]), "b": np.array([1.0, -0.5])},
    {"W": np.array([[-0.25, 0.5], [1.0, -2.0], [0.75, 0.1]]), "b": np.array([-0.3, 0.2])},
    {"W": np.array([[1e-3, -4.0], [0.5, 0.5], [-2.0, 1e-4]]), "b": np.array([0.05, 0.6])},
]


def tiny_model(dtype=np.float64):
    return Sequential([Dense(3, 2, rng=0)]).astype(dtype)


def run(optimizer_factory, dtype=np.float64):
    """Apply the optimizer for each of GRADIENTS; returns the initial params and the params
    after every step ({"W", "b"} dicts of copies)."""
    model = tiny_model(dtype)
    layer = model.layers[0]
    optimizer = optimizer_factory(model)
    initial = {k: v.copy() for k, v in layer.params.items()}
    history = []
    for grads in GRADIENTS:
        layer.grads = {k: g.astype(dtype) for k, g in grads.items()}
        optimizer.step()
        history.append({k: v.copy() for k, v in layer.params.items()})
    assert optimizer.steps == len(GRADIENTS)
    return initial, history


def assert_history(history, expected):
    assert len(history) == len(expected)
    for got, want in zip(history, expected):
        for key in ("W", "b"):
            np.testing.assert_allclose(got[key], want[key], rtol=RTOL, atol=0)


def sgd_by_hand(initial, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """p <- p - lr * d, with g = grad + wd p; b = g (first step), b = mu b + g (later);
    d = g + mu b (Nesterov) or b (momentum) or g (plain)."""
    params = {k: v.copy() for k, v in initial.items()}
    velocity = {}
    expected = []
    for grads in GRADIENTS:
        for key in ("W", "b"):
            g = grads[key] + weight_decay * params[key]
            if momentum:
                velocity[key] = g if key not in velocity else momentum * velocity[key] + g
                d = g + momentum * velocity[key] if nesterov else velocity[key]
            else:
                d = g
            params[key] = params[key] - lr * d
        expected.append({k: v.copy() for k, v in params.items()})
    return expected


def adam_by_hand(initial, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """Kingma & Ba with bias correction: m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t),
    p <- p - lr m_hat / (sqrt(v_hat) + eps)."""
    params = {k: v.copy() for k, v in initial.items()}
    m = {k: np.zeros_like(v) for k, v in initial.items()}
    v = {k: np.zeros_like(p) for k, p in initial.items()}
    expected = []
    for t, grads in enumerate(GRADIENTS, start=1):
        for key in ("W", "b"):
            g = grads[key] + weight_decay * params[key]
            m[key] = beta1 * m[key] + (1 - beta1) * g
            v[key] = beta2 * v[key] + (1 - beta2) * g ** 2
            m_hat = m[key] / (1 - beta1 ** t)
            v_hat = v[key] / (1 - beta2 ** t)
            params[key] = params[key] - lr * m_hat / (np.sqrt(v_hat) + eps)
        expected.append({k: p.copy() for k, p in params.items()})
    return expected


# --------------------------------------------------------------------------- SGD

def test_sgd_plain():
    initial, history = run(lambda m: SGD(m, lr=0.1))
    # the first step by hand, literally: p1 = p0 - 0.1 g1
    np.testing.assert_allclose(history[0]["b"], initial["b"] - np.array([0.1, -0.05]), rtol=RTOL)
    assert_history(history, sgd_by_hand(initial, lr=0.1))


def test_sgd_momentum():
    initial, history = run(lambda m: SGD(m, lr=0.1, momentum=0.9))
    # step 2 by hand: b2 = 0.9 g1 + g2, p2 = p1 - 0.1 b2
    b2 = 0.9 * GRADIENTS[0]["b"] + GRADIENTS[1]["b"]
    np.testing.assert_allclose(history[1]["b"], history[0]["b"] - 0.1 * b2, rtol=RTOL)
    assert_history(history, sgd_by_hand(initial, lr=0.1, momentum=0.9))


def test_sgd_nesterov():
    initial, history = run(lambda m: SGD(m, lr=0.1, momentum=0.9, nesterov=True))
    # step 1: b1 = g1, d1 = g1 + 0.9 g1 = 1.9 g1
    np.testing.assert_allclose(history[0]["W"], initial["W"] - 0.1 * 1.9 * GRADIENTS[0]["W"],
                               rtol=RTOL)
    assert_history(history, sgd_by_hand(initial, lr=0.1, momentum=0.9, nesterov=True))


def test_sgd_weight_decay():
    initial, history = run(lambda m: SGD(m, lr=0.1, weight_decay=0.01))
    np.testing.assert_allclose(
        history[0]["W"], initial["W"] - 0.1 * (GRADIENTS[0]["W"] + 0.01 * initial["W"]), rtol=RTOL)
    assert_history(history, sgd_by_hand(initial, lr=0.1, weight_decay=0.01))


def test_sgd_nesterov_with_weight_decay():
    initial, history = run(lambda m: SGD(m, lr=0.05, momentum=0.8, nesterov=True,
                                         weight_decay=0.1))
    assert_history(history, sgd_by_hand(initial, lr=0.05, momentum=0.8, nesterov=True,
                                        weight_decay=0.1))


def test_weight_decay_alone_shrinks_weights():
    """Zero gradient: p <- (1 - lr wd) p."""
    model = tiny_model()
    layer = model.layers[0]
    before = layer.params["W"].copy()
    layer.grads = {k: np.zeros_like(v) for k, v in layer.params.items()}
    SGD(model, lr=0.5, weight_decay=0.1).step()
    np.testing.assert_allclose(layer.params["W"], 0.95 * before, rtol=RTOL)


# --------------------------------------------------------------------------- Adam

def test_adam_first_step_is_lr_times_sign():
    """Bias correction makes the first step lr * g / (|g| + eps), about lr * sign(g), whatever
    the gradient's scale (without it, the step would be (1 - beta1) / sqrt(1 - beta2) = 3.16
    times larger)."""
    initial, history = run(lambda m: Adam(m, lr=0.01))
    for key in ("W", "b"):
        g = GRADIENTS[0][key]
        step = initial[key] - history[0][key]
        np.testing.assert_allclose(step, 0.01 * g / (np.abs(g) + 1e-8), rtol=RTOL)
        np.testing.assert_allclose(step, 0.01 * np.sign(g), rtol=1e-4)


def test_adam():
    initial, history = run(lambda m: Adam(m, lr=0.01, betas=(0.8, 0.99), eps=1e-6))
    assert_history(history, adam_by_hand(initial, lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6))


def test_adam_weight_decay():
    initial, history = run(lambda m: Adam(m, lr=0.01, weight_decay=0.1))
    assert_history(history, adam_by_hand(initial, lr=0.01, weight_decay=0.1))


# --------------------------------------------------------------------------- common behaviour

@pytest.mark.parametrize("factory", [
    lambda m: SGD(m, lr=0.1), lambda m: SGD(m, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda m: SGD(m, lr=0.1, momentum=0.9, nesterov=True), lambda m: Adam(m, lr=0.01)],
    ids=["sgd", "momentum_weight_decay", "nesterov", "adam"])
def test_step_keeps_float32_and_leaves_gradients_alone(factory):
    """float32 parameters stay float32 (no silent upcast), are updated in place (the layer's
    arrays, which the model uses), and the gradients the step reads are not modified."""
    model = tiny_model(np.float32)
    layer = model.layers[0]
    arrays = dict(layer.params)
    optimizer = factory(model)
    for grads in GRADIENTS:
        layer.grads = {k: g.astype(np.float32) for k, g in grads.items()}
        copies = {k: g.copy() for k, g in layer.grads.items()}
        optimizer.step()
        for key in ("W", "b"):
            np.testing.assert_array_equal(layer.grads[key], copies[key])
            assert layer.params[key].dtype == np.float32
            assert layer.params[key] is arrays[key]


# --------------------------------------------------------------------------- schedules

def test_step_lr():
    schedule = StepLR(step_size=3, gamma=0.5)
    expected = {0: 0.1, 1: 0.1, 2: 0.1, 3: 0.05, 5: 0.05, 6: 0.025, 9: 0.0125}
    for epoch, lr in expected.items():
        assert schedule(0.1, epoch) == pytest.approx(lr, rel=1e-15)


def test_step_lr_default_gamma():
    assert StepLR(step_size=2)(1.0, 4) == pytest.approx(0.01, rel=1e-15)


def test_cosine_lr():
    schedule = CosineLR(total_epochs=10, min_lr=0.001)
    assert schedule(0.1, 0) == pytest.approx(0.1, rel=1e-15)
    assert schedule(0.1, 5) == pytest.approx(0.0505, rel=1e-15)      # half way: the mean
    assert schedule(0.1, 10) == pytest.approx(0.001, rel=1e-15)
    assert schedule(0.1, 15) == pytest.approx(0.001, rel=1e-15)      # stays at min_lr after
    # epoch 2: cos(0.2 pi) = (1 + sqrt 5) / 4
    assert schedule(0.1, 2) == pytest.approx(0.001 + 0.099 * (1 + (1 + math.sqrt(5)) / 4) / 2,
                                             rel=1e-14)
    lrs = [schedule(0.1, epoch) for epoch in range(11)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


def test_cosine_lr_default_min_is_zero():
    assert CosineLR(total_epochs=4)(0.2, 4) == pytest.approx(0.0, abs=1e-17)
    assert CosineLR(total_epochs=4)(0.2, 2) == pytest.approx(0.1, rel=1e-15)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("lr", [0.0, -0.1])
@pytest.mark.parametrize("cls", [SGD, Adam])
def test_learning_rate_must_be_positive(cls, lr):
    with pytest.raises(ValueError, match="learning rate"):
        cls(tiny_model(), lr=lr)


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="Nesterov"):
        SGD(tiny_model(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Nesterov"):
        SGD(tiny_model(), lr=0.1, momentum=0.0, nesterov=True)


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_step_before_any_gradient(cls):
    model = tiny_model()
    before = model.layers[0].params["W"].copy()
    with pytest.raises(RuntimeError, match=r"dense_1\.W.*compute_gradients"):
        cls(model, lr=0.1).step()
    np.testing.assert_array_equal(model.layers[0].params["W"], before)


def test_failed_step_changes_nothing():
    model = Sequential([Dense(3, 2, rng=0), ReLU(), Dense(2, 2, rng=1)]).astype(np.float64)
    first = model.layers[0]
    first.grads = {k: np.ones_like(v) for k, v in first.params.items()}   # dense_2: none
    before = {k: v.copy() for k, v in first.params.items()}
    optimizer = Adam(model, lr=0.1)
    with pytest.raises(RuntimeError, match=r"dense_2\.W"):
        optimizer.step()
    assert optimizer.steps == 0
    for key in ("W", "b"):
        np.testing.assert_array_equal(first.params[key], before[key])


# --------------------------------------------------------------------------- state_dict

OPTIMIZERS = {
    "sgd": lambda m: SGD(m, lr=0.1),
    "momentum": lambda m: SGD(m, lr=0.1, momentum=0.9),
    "nesterov_weight_decay": lambda m: SGD(m, lr=0.05, momentum=0.9, nesterov=True,
                                           weight_decay=0.01),
    "adam": lambda m: Adam(m, lr=0.01, weight_decay=0.01),
}
STATEFUL = ["momentum", "nesterov_weight_decay", "adam"]


def mlp(seed=0):
    """A float32 two-layer model for training-loop tests."""
    return Sequential([Dense(6, 5, rng=seed), ReLU(), Dense(5, 3, rng=seed + 1)],
                      input_shape=(6,))


def data(step):
    rng = np.random.default_rng(100 + step)
    return (rng.standard_normal((8, 6)).astype(np.float32),
            rng.integers(0, 3, size=8).astype(np.int64))


def train(model, optimizer, steps):
    for step in steps:
        x, y = data(step)
        model.compute_gradients(x, y, rng=None)
        optimizer.step()


def copy_of(model):
    other = mlp(seed=7)              # different initial weights, overwritten below
    for (_, dst, _), (_, src, _) in zip(other.parameters(), model.parameters()):
        dst[...] = src
    return other


def assert_same_weights(a, b):
    for (name, pa, _), (_, pb, _) in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa, pb, err_msg=name)


def reference_run(kind, total):
    model = mlp()
    train(model, OPTIMIZERS[kind](model), range(total))
    return model


def test_state_dict_contents():
    model = mlp()
    optimizer = Adam(model, lr=0.01)
    train(model, optimizer, range(2))
    state = optimizer.state_dict()
    assert state["lr"] == 0.01 and state["steps"] == 2
    names = [name for name, _, _ in model.parameters()]
    assert set(state["arrays"]) == {f"{n}/{slot}" for n in names for slot in ("m", "v")}
    assert all(isinstance(a, np.ndarray) for a in state["arrays"].values())


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_state_dict_round_trip_through_npz(kind, tmp_path):
    """A checkpoint written mid-way with numpy.savez and read back into a fresh optimizer on a
    copy of the model continues exactly as the uninterrupted run (bitwise)."""
    reference = reference_run(kind, 6)
    model = mlp()
    optimizer = OPTIMIZERS[kind](model)
    train(model, optimizer, range(3))
    state = optimizer.state_dict()
    np.savez(tmp_path / "opt.npz", lr=state["lr"], steps=state["steps"], **state["arrays"])
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as f:
        loaded = {"lr": float(f["lr"]), "steps": int(f["steps"]),
                  "arrays": {k: f[k] for k in f.files if k not in ("lr", "steps")}}
    resumed_model = copy_of(model)
    resumed = OPTIMIZERS[kind](resumed_model)
    resumed.load_state_dict(loaded)
    assert resumed.steps == 3
    train(resumed_model, resumed, range(3, 6))
    assert_same_weights(resumed_model, reference)


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_state_dict_round_trip_in_memory(kind):
    """Optimizer B loads A's state_dict mid-way; then A and B keep stepping side by side on
    identical batches: both end at the uninterrupted run's weights, bitwise."""
    reference = reference_run(kind, 6)
    model_a = mlp()
    optimizer_a = OPTIMIZERS[kind](model_a)
    train(model_a, optimizer_a, range(3))
    model_b = copy_of(model_a)
    optimizer_b = OPTIMIZERS[kind](model_b)
    optimizer_b.load_state_dict(optimizer_a.state_dict())
    for step in range(3, 6):
        train(model_a, optimizer_a, [step])
        train(model_b, optimizer_b, [step])
    assert_same_weights(model_a, reference)
    assert_same_weights(model_b, reference)


@pytest.mark.parametrize("kind", STATEFUL)
def test_state_dict_is_a_snapshot(kind):
    model = mlp()
    optimizer = OPTIMIZERS[kind](model)
    train(model, optimizer, range(2))
    state = optimizer.state_dict()
    saved = {k: v.copy() for k, v in state["arrays"].items()}
    train(model, optimizer, range(2, 4))
    for key, value in saved.items():
        np.testing.assert_array_equal(state["arrays"][key], value, err_msg=key)


def test_make_schedule_names_the_recipes_schedules():
    from nnscratch.optim import CosineLR, make_schedule
    assert make_schedule(None, 10) is None
    cosine = make_schedule("cosine", 10)
    assert isinstance(cosine, CosineLR) and cosine(0.1, 0) == pytest.approx(0.1)
    assert cosine(0.1, 5) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="unknown schedule 'inv'"):
        make_schedule("inv", 10)
