"""RejectAwarePGD, Sotgiu et al.'s defence-aware attack: its objective on hand-made logits, the
descent on a synthetic linear model whose last logit is a constant reject score and on a tiny
fitted DNR (lower objective, inside the eps-ball and the box, better than a random perturbation
of the same norm), the second start, and the attack contract."""

import numpy as np
import pytest

from nnscratch.attacks.reject_aware import RejectAwarePGD
from nnscratch.backend import get_array_module, to_numpy
from nnscratch.model import Model

from test_defenses_dnr import digits, fitted_dnr


class LinearWithReject(Model):
    """z = [x_flat @ W, theta] (N, K + 1): K linear scores and a constant reject score."""

    input_shape, batch_size = (1, 4, 4), 16

    def __init__(self, weights, theta):
        self.weights, self.theta = weights, theta

    def batch_logits(self, x, rng=None):
        xp = get_array_module(x)
        scores = x.reshape(len(x), 16) @ xp.asarray(self.weights).astype(x.dtype)
        return xp.concatenate([scores, xp.full((len(x), 1), self.theta, dtype=x.dtype)], axis=1)

    def batch_features(self, x, names):
        return {}

    def batch_vjp(self, x, rng=None, tap=None):
        xp = get_array_module(x)
        weights = xp.asarray(self.weights).astype(x.dtype)
        return self.batch_logits(x), lambda g: (g[:, :-1] @ weights.T).reshape(x.shape)

    device = property(lambda self: None)


def linear_setup(dtype=np.float64, n=12):
    rng = np.random.default_rng(0)
    model = LinearWithReject(rng.standard_normal((16, 3)), theta=0.5)
    x = rng.random((n, 1, 4, 4)).astype(dtype)
    return model, x


def random_perturbation(x, eps, seed=0):
    """x + a random direction of L2 norm eps, clipped to [0, 1]."""
    d = np.random.default_rng(seed).standard_normal(x.shape)
    d /= np.linalg.norm(d.reshape(len(x), -1), axis=1).reshape(-1, 1, 1, 1)
    return np.clip(x + eps * d, 0, 1).astype(x.dtype)


def objective_of(model, x, y):
    return RejectAwarePGD.objective(model.logits(x), y)[0]


# ------------------------------------------------------------------ the objective


def test_objective_on_hand_made_logits():
    z = np.array([[3.0, 1.0, 2.0, 0.5],       # accepted, y = 0: s_0 - s_2 = 1
                  [0.2, 0.1, 0.3, 0.5],       # rejected: theta - max(s_1, s_2) = 0.2
                  [1.0, 4.0, 2.0, 0.5],       # accepted as 1, y = 0: 1 - 4 = -3 (adversarial)
                  [0.2, 0.1, 0.3, 0.5]])      # y = reject: theta - max(s_0, s_1, s_2) = 0.2
    y = np.array([0, 1, 0, 3])
    value, w = RejectAwarePGD.objective(z, y)
    np.testing.assert_allclose(value, [1.0, 0.2, -3.0, 0.2])
    np.testing.assert_array_equal(w, [[1, 0, -1, 0], [0, 0, -1, 0], [1, -1, 0, 0],
                                      [0, 0, -1, 0]])


# ------------------------------------------------------------------ the descent


def test_linear_model_descent_stays_feasible_and_beats_random():
    model, x = linear_setup()
    y = np.zeros(len(x), dtype=np.int64)
    eps = 0.5
    result = RejectAwarePGD(eps, steps=10, step=0.05, line_search=4).generate(model, x, y)
    assert (result.norms["l2"] <= eps + 1e-9).all()
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    before, after = objective_of(model, x, y), objective_of(model, result.x_adv, y)
    np.testing.assert_allclose(result.info["objective"], after)
    assert (after < before).all()
    assert (after < objective_of(model, random_perturbation(x, eps), y)).all()
    predicted = model.predict(result.x_adv)
    np.testing.assert_array_equal(result.success, (predicted != y) & (predicted != 3))
    np.testing.assert_array_equal(result.success, after < 0)
    assert result.success.any()


def test_dnr_attack_lowers_the_objective_and_beats_a_random_perturbation():
    dnr = fitted_dnr()
    model = dnr.as_model()
    _, _, (x, y) = digits()
    x, y = x[:16], y[:16]
    eps = 1.0
    result = RejectAwarePGD(eps, steps=8, step=0.1, line_search=5).generate(model, x, y)
    assert (result.norms["l2"] <= eps * (1 + 1e-9)).all()
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    before, after = objective_of(model, x, y), objective_of(model, result.x_adv, y)
    assert (after <= before).all() and (after < before).mean() > 0.9
    random = objective_of(model, random_perturbation(x, eps), y)
    assert (after < random).mean() > 0.9
    predicted = dnr.predict(result.x_adv)
    np.testing.assert_array_equal(result.success, (predicted != y) & (predicted != -1))
    np.testing.assert_array_equal(result.info["rejected"], predicted == -1)
    assert result.success.mean() > (dnr.predict(x) != y).mean() + 0.2
    failure = result.info["failure"]
    assert ((failure == "") == result.success).all()
    assert set(failure[result.info["rejected"]]) <= {"rejected"}


def test_a_step_that_would_raise_the_objective_is_not_taken():
    """One long step (3 in L2, no line search) overshoots for some images: they stay put."""
    model = fitted_dnr().as_model()
    _, _, (x, y) = digits()
    x, y = x[:16], y[:16]
    result = RejectAwarePGD(5.0, steps=1, step=3.0, line_search=0).generate(model, x, y)
    before, after = objective_of(model, x, y), objective_of(model, result.x_adv, y)
    stayed = result.norms["l2"] == 0
    assert stayed.any() and not stayed.all()
    assert (after[~stayed] < before[~stayed]).all()
    np.testing.assert_array_equal(after[stayed], before[stayed])
    np.testing.assert_array_equal(result.queries, 4)   # start, gradient, one candidate, final


def test_a_rejected_start_only_raises_the_best_wrong_class():
    """Far below theta (everything rejected), the step direction is that of +s_l* alone."""
    model, x = linear_setup(n=4)
    model.theta = 1e3
    y = np.zeros(4, dtype=np.int64)
    result = RejectAwarePGD(0.3, steps=1, step=0.01, line_search=0).generate(model, x, y)
    z = model.logits(x)
    best_wrong = z[:, 1:3].argmax(axis=1) + 1
    g = model.weights[:, best_wrong].T.reshape(x.shape)      # d s_l*/dx
    step = g / np.linalg.norm(g.reshape(4, -1), axis=1).reshape(-1, 1, 1, 1) * 0.01
    np.testing.assert_allclose(result.x_adv, np.clip(x + step, 0, 1), rtol=1e-12)
    assert result.info["rejected"].all() and not result.success.any()
    assert (result.info["failure"] == "rejected").all()


def test_second_start_is_never_worse_and_counts_its_queries():
    dnr = fitted_dnr()
    model = dnr.as_model()
    (x_train, _), _, (x, y) = digits()
    x, y = x[:8], y[:8]
    settings = {"eps": 0.5, "steps": 3, "step": 0.1, "line_search": 3}
    one = RejectAwarePGD(**settings).generate(model, x, y)
    two = RejectAwarePGD(**settings, starts=x_train[:40]).generate(model, x, y)
    assert (two.info["objective"] <= one.info["objective"] + 1e-12).all()
    assert (two.norms["l2"] <= 0.5 * (1 + 1e-9)).all()
    assert (two.queries >= one.queries + 40 + 2).all()


# ------------------------------------------------------------------ the contract


def test_contract_inputs_dtype_determinism_and_queries(xp):
    model, x64 = linear_setup()
    x = xp.asarray(x64.astype(np.float32))
    copy = x.copy()
    attack = RejectAwarePGD(0.5, steps=4, step=0.05, line_search=2)
    first, second = attack.generate(model, x), attack.generate(model, x)
    np.testing.assert_array_equal(to_numpy(x), to_numpy(copy))
    assert first.x_adv.dtype == np.float32 and get_array_module(first.x_adv) is xp
    np.testing.assert_array_equal(to_numpy(first.x_adv), to_numpy(second.x_adv))
    assert first.success.shape == (12,) and first.norms["l2"].shape == (12,)
    # y defaulted (1), start (1), up to 4 steps of 1 gradient + 3 candidates, final (1)
    queries = to_numpy(first.queries)
    assert queries.min() >= 1 + 1 + 4 + 1 and queries.max() <= 1 + 1 + 4 * 4 + 1
    zero = RejectAwarePGD(0.5, steps=0).generate(model, x)
    np.testing.assert_array_equal(to_numpy(zero.queries), 3)
    np.testing.assert_array_equal(to_numpy(zero.x_adv), to_numpy(x))


def test_bad_input_is_refused():
    model, x = linear_setup()
    with pytest.raises(ValueError, match="untargeted only"):
        RejectAwarePGD(0.5).generate(model, x, target=np.ones(12, np.int64))
    with pytest.raises(ValueError, match="norm must be one of"):
        RejectAwarePGD(0.5, norm="l1")
    with pytest.raises(ValueError, match="line_search must be an integer >= 0"):
        RejectAwarePGD(0.5, line_search=-1)
    with pytest.raises(ValueError, match=r"y must be in \[0, 4\)"):
        RejectAwarePGD(0.5, steps=1).generate(model, x, np.full(12, 4))
    with pytest.raises(ValueError, match="starts must have values in"):
        RejectAwarePGD(0.5, starts=x + 2)
    with pytest.raises(ValueError, match="starts must be images like x"):
        RejectAwarePGD(0.5, steps=1, starts=np.zeros((3, 1, 5, 5))).generate(model, x)
    two_columns = LinearWithReject(np.ones((16, 1)), theta=0.0)
    with pytest.raises(ValueError, match="at least two classes and the reject score"):
        RejectAwarePGD(0.5).generate(two_columns, x, np.zeros(12, np.int64))
