"""FAB (nnscratch/attacks/fab.py, fab_projection.py): the box-constrained projections against
scipy's optima, the exact distance on a linear model, the contract on every backend, random
starts, query counts, eps as a bound on the minimal-norm result, targets, a reject class,
refusals; and parity with torchattacks 3.5.1's FAB on the PyTorch twin of small_cnn trained on
digits."""

import numpy as np
import pytest
from scipy.optimize import linprog, minimize

from nnscratch import data
from nnscratch.attacks import FAB
from nnscratch.attacks.criteria import (Misclassification, MisclassificationNotRejected,
                                        TargetedMisclassification)
from nnscratch.attacks.fab_projection import project_onto_hyperplane
from nnscratch.backend import device_of, to_numpy
from nnscratch.layers import Dense, Flatten
from nnscratch.model import Sequential

from test_attacks import Counting, images, tiny_model

NORMS = {"linf": np.inf, "l2": 2, "l1": 1}


# ------------------------------------------------------------------ the projection

def hyperplane_problems(d, n=40, seed=0):
    """float64 t (n, d) in [0, 1] (some entries at 0 or 1), w (n, d) (some zeros), b (n,): the
    hyperplane through a random point near t, often outside the box."""
    rng = np.random.default_rng(seed + d)
    t, w = rng.random((n, d)), rng.normal(size=(n, d))
    w[rng.random((n, d)) < 0.15] = 0
    edge = rng.random((n, d)) < 0.1
    t[edge] = rng.integers(0, 2, int(edge.sum()))
    scale = rng.choice([0.05, 0.3, 2.0], size=(n, 1))
    b = (w * (t + scale * rng.normal(size=(n, d)))).sum(axis=1)
    return t, w, b


def least_l1_move(t, w, rho):
    """scipy's L1 optimum (linprog, delta = p - q): the move, or None if the box misses the
    hyperplane <w, delta> = rho."""
    d = len(t)
    r = linprog(np.ones(2 * d), A_eq=np.r_[w, -w][None], b_eq=[rho],
                bounds=[(0, 1 - v) for v in t] + [(0, v) for v in t], method="highs")
    return r.x[:d] - r.x[d:] if r.status == 0 else None


def optimum(t, w, rho, norm):
    """scipy's least ||delta||_p with <w, delta> = rho and t + delta in the box (feasible)."""
    d, box = len(t), list(zip(-t, 1 - t))
    if norm == "l1":
        return np.abs(least_l1_move(t, w, rho)).sum()
    if norm == "linf":                       # variables (delta, s): min s, -s <= delta <= s
        r = linprog(np.r_[np.zeros(d), 1], A_ub=np.block([[np.eye(d), -np.ones((d, 1))],
                                                          [-np.eye(d), -np.ones((d, 1))]]),
                    b_ub=np.zeros(2 * d), A_eq=np.r_[w, 0][None], b_eq=[rho],
                    bounds=box + [(0, None)], method="highs")
        assert r.status == 0
        return r.fun
    r = minimize(lambda v: v @ v, least_l1_move(t, w, rho), jac=lambda v: 2 * v, bounds=box,
                 constraints=[{"type": "eq", "fun": lambda v: w @ v - rho,
                               "jac": lambda v: w}],
                 method="SLSQP", options={"ftol": 1e-15, "maxiter": 1000})
    assert r.success
    return np.sqrt(r.fun)


@pytest.mark.parametrize("norm", list(NORMS))
def test_the_projection_is_scipys_optimum(norm):
    """float64, d = 5, 8, 13, 20, 40 problems each in one call. Where the box meets the
    hyperplane (linprog decides): delta is on it (1e-9), in the box, and its norm is scipy's
    optimum (linprog for L-inf and L1, SLSQP from the L1 solution for L2) within a relative
    1e-6. Where it does not: delta is the box's point furthest towards it (linprog's maximum of
    sigma <w, delta>, 1e-9). Measured: relative errors below 1e-12."""
    feasible = infeasible = 0
    for d in (5, 8, 13, 20):
        t, w, b = hyperplane_problems(d)
        delta = project_onto_hyperplane(t, w, b, norm)
        assert delta.dtype == np.float64
        assert (t + delta >= -1e-12).all() and (t + delta <= 1 + 1e-12).all()
        for t_i, w_i, b_i, delta_i in zip(t, w, b, delta):
            rho = b_i - w_i @ t_i
            if least_l1_move(t_i, w_i, rho) is None:
                infeasible += 1
                sigma = 1 if rho >= 0 else -1
                furthest = -linprog(-sigma * w_i, bounds=list(zip(-t_i, 1 - t_i)),
                                    method="highs").fun
                assert sigma * w_i @ delta_i == pytest.approx(furthest, abs=1e-9)
                continue
            feasible += 1
            assert w_i @ (t_i + delta_i) == pytest.approx(b_i, abs=1e-9)
            assert np.linalg.norm(delta_i, NORMS[norm]) == pytest.approx(
                optimum(t_i, w_i, rho, norm), rel=1e-6, abs=1e-12)
    assert feasible > 60 and infeasible > 10


def test_the_projection_of_a_point_on_the_hyperplane_is_zero():
    t, w, _ = hyperplane_problems(6)
    for norm in NORMS:
        np.testing.assert_array_equal(project_onto_hyperplane(t, w, (w * t).sum(1), norm), 0)


# ------------------------------------------------------------------ a linear model

def linear_model(seed=0):
    """logits = W x + b on (1, 4, 4) images, 4 classes, float64."""
    rng = np.random.default_rng(seed)
    dense = Dense(16, 4, rng=rng)
    return Sequential([Flatten(), dense], input_shape=(1, 4, 4)).astype(np.float64)


def test_l2_finds_the_exact_distance_to_the_nearest_boundary_of_a_linear_model():
    """Images in [0.4, 0.6], so that the box does not bind: the least L2 adversarial distance is
    min_l |z_l - z_y| / ||W_l - W_y|| (the adversarial set is the union of the half-spaces
    z_l >= z_y). FAB finds it within 1% (measured: within 0.6%), never below it."""
    model = linear_model()
    x = 0.4 + 0.2 * np.random.default_rng(1).random((20, 1, 4, 4))
    y = model.predict(x)
    W, b = model.layers[1].params["W"], model.layers[1].params["b"]         # (16, 4), (4,)
    z = x.reshape(20, -1) @ W + b
    gaps = np.abs(z - z[np.arange(20), y][:, None])
    lengths = np.linalg.norm(W.T[None] - W.T[y][:, None], axis=2)           # (20, 4)
    exact = np.where(np.arange(4) == y[:, None], np.inf, gaps / np.where(lengths, lengths, 1))
    exact = exact.min(axis=1)
    result = FAB(norm="l2").generate(model, x, y)
    assert result.success.all()
    assert 0 < result.x_adv.min() and result.x_adv.max() < 1                # the box is free
    assert (result.norms["l2"] >= exact * (1 - 1e-9)).all()
    assert (result.norms["l2"] <= exact * 1.01).all()


# ------------------------------------------------------------------ the contract

CONTRACT = [FAB(steps=5), FAB(0.3, norm="l2", restarts=2, steps=5),
            FAB(norm="l1", targeted=True, n_target_classes=2, steps=4),
            FAB(norm="l2", reject_class=True, steps=5)]


@pytest.mark.parametrize("attack", CONTRACT, ids=["linf", "l2-eps-restarts", "l1-targeted",
                                                  "l2-reject"])
def test_contract_on_every_backend(xp, attack):
    """float32 images, float64 model: x unchanged; x_adv float32 on x's device, in [0, 1],
    within eps when given; success is the criterion on the logits of x_adv, and where it failed
    x_adv is x; the same seed gives the same images."""
    model, x = tiny_model(xp, dtype=np.float64), images(xp)
    before = to_numpy(x).copy()
    result = attack.generate(model, x)
    assert np.array_equal(to_numpy(x), before)
    assert result.x_adv.dtype == np.float32 and device_of(result.x_adv) == device_of(x)
    x_adv, success = to_numpy(result.x_adv), to_numpy(result.success)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    if attack.eps is not None:
        assert (to_numpy(result.norms[attack.norm]) <= np.float32(attack.eps)).all()
    y = model.predict(x)
    criterion = (MisclassificationNotRejected if attack.reject_class else Misclassification)(y)
    np.testing.assert_array_equal(success, to_numpy(criterion(model.logits(result.x_adv))))
    assert success.any()
    assert np.array_equal(x_adv[~success], before[~success])
    assert np.array_equal(to_numpy(attack.generate(model, x).x_adv), x_adv)


@pytest.mark.parametrize("norm", list(NORMS))
def test_random_starts_lie_on_the_sphere_of_radius_eps_over_two_and_follow_the_seed(xp, norm):
    """Images at 0.5, eps 0.2: no clipping, so ||start - x|| = 0.1; another seed, another
    start."""
    x = xp.full((4, 1, 8, 8), 0.5, dtype=np.float32)
    starts = [FAB(0.2, norm=norm, seed=seed).start(x, np.random.default_rng(seed))
              for seed in (0, 0, 1)]
    size = np.linalg.norm(to_numpy(starts[0] - x).reshape(4, -1), NORMS[norm], axis=1)
    np.testing.assert_allclose(size, 0.1, rtol=1e-5)
    assert device_of(starts[0]) == device_of(x) and starts[0].dtype == np.float32
    assert np.array_equal(to_numpy(starts[0]), to_numpy(starts[1]))
    assert not np.array_equal(to_numpy(starts[0]), to_numpy(starts[2]))


@pytest.mark.parametrize("attack", [FAB(steps=4), FAB(1e-5, steps=3, restarts=2),
                                    FAB(norm="l2", targeted=True, steps=5)])
def test_queries_are_the_model_calls(attack):
    """y given (and a target): the logits at x, then per run and step the logits, the Jacobian
    (untargeted) or one logit_gradient (targeted), and the logits of the new point. eps 1e-5
    breaks no image, so that every image takes both runs."""
    model, x = Counting(tiny_model(np)), images(np)
    y = model.predict(x)
    model.seen = 0
    target = (y + 1) % 5 if attack.targeted else None
    result = attack.generate(model, x, y, target)
    assert int(result.queries.sum()) == model.seen
    np.testing.assert_array_equal(result.queries, 1 + attack.restarts * attack.steps * 3)


def test_eps_bounds_the_minimal_norm_result():
    """The first run starts at x, so with eps it is the minimal-norm run: success exactly where
    that found an adversarial within eps; the others are x, "beyond eps"."""
    model, x = tiny_model(np), images(np, n=20)
    minimal = FAB(norm="l2").generate(model, x)
    eps = float(np.median(minimal.norms["l2"]))
    bounded = FAB(eps, norm="l2").generate(model, x)
    np.testing.assert_array_equal(bounded.success, minimal.norms["l2"] <= np.float32(eps))
    assert 0 < bounded.success.mean() < 1
    np.testing.assert_array_equal(bounded.x_adv[bounded.success],
                                  minimal.x_adv[bounded.success])
    assert np.array_equal(bounded.x_adv[~bounded.success], x[~bounded.success])
    assert (bounded.info["failure"][~bounded.success] == "beyond eps").all()


def test_an_image_already_adversarial_is_returned_as_it_is():
    model, x = tiny_model(np), images(np)
    y = model.predict(x)
    y[0] = (y[0] + 1) % 5
    result = FAB(steps=3).generate(model, x, y)
    assert np.array_equal(result.x_adv[0], x[0]) and result.success[0]
    assert result.queries[0] == 1 and result.info["failure"][0] == ""


def test_a_zero_gradient_is_a_failure_that_says_so():
    model, x = tiny_model(np, constant=True), images(np)
    result = FAB(steps=3).generate(model, x)
    assert not result.success.any() and np.array_equal(result.x_adv, x)
    assert (result.info["failure"] == "zero gradient").all()


def test_reject_class_boundaries_are_against_the_larger_of_y_and_the_reject_score():
    """The tiny model's last logit plays the reject score, raised so that about half of the
    images start rejected: FAB succeeds on them too, by a known class that beats both."""
    model, x = tiny_model(np, dtype=np.float64), images(np, n=20)
    z = model.logits(x)
    model.layers[-1].params["b"][-1] += np.median(z[:, :4].max(axis=1) - z[:, 4])
    y = model.predict(x)
    assert (y == 4).any() and (y != 4).any()
    result = FAB(norm="l2", reject_class=True).generate(model, x, y)
    predicted = model.predict(result.x_adv)
    assert result.success.all() and ((predicted != y) & (predicted != 4)).all()


@pytest.mark.parametrize("make, message", [
    (lambda: FAB(norm="l0"), "norm"), (lambda: FAB(steps=0), "steps"),
    (lambda: FAB(eps=0), "eps"), (lambda: FAB(eps=-0.1), "eps"),
    (lambda: FAB(alpha_max=0), "alpha_max"), (lambda: FAB(alpha_max=1.5), "alpha_max"),
    (lambda: FAB(beta=0), "beta"), (lambda: FAB(beta=1.01), "beta"),
    (lambda: FAB(eta=0.99), "eta"), (lambda: FAB(restarts=0), "restarts"),
    (lambda: FAB(restarts=2), "needs eps"),
    (lambda: FAB(n_target_classes=0), "n_target_classes"),
    (lambda: FAB(targeted=True, reject_class=True), "untargeted"),
])
def test_bad_settings_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_alpha_max_and_beta_may_be_one():
    attack = FAB(alpha_max=1, beta=1, eta=1)
    assert (attack.alpha_max, attack.beta, attack.eta) == (1.0, 1.0, 1.0)


# ------------------------------------------------------------------ on digits

@pytest.fixture(scope="module")
def trained_digits(small_cnn_on_digits):
    x, y = data.load("digits", split="test", limit=100)
    return small_cnn_on_digits, x, y


def test_targeted(trained_digits):
    """Success = reaching the target (the next class), at L2 norms no smaller on average than
    the untargeted ones (whose boundary is the closest of any class). Measured: 29 of 30 images
    (14 with the boundary against y only, the paper's FAB-T); asserted: 27."""
    model, x, y = trained_digits
    x, y = x[:30], y[:30]
    target = (y + 1) % 10
    result = FAB(norm="l2", targeted=True).generate(model, x, y, target)
    np.testing.assert_array_equal(result.success,
                                  TargetedMisclassification(target)(model.logits(result.x_adv)))
    assert result.success.sum() >= 27 and np.array_equal(result.target, target)
    untargeted = FAB(norm="l2").generate(model, x, y)
    both = result.success & untargeted.success
    assert result.norms["l2"][both].mean() >= untargeted.norms["l2"][both].mean()


def torchattacks_fab(net, x, y, norm, eps, **settings):
    """torchattacks' x_adv and its success (misclassified, within eps)."""
    import torch
    import torchattacks
    attack = torchattacks.FAB(net, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, **settings)
    x_adv = attack(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    with torch.no_grad():
        wrong = net(torch.from_numpy(x_adv)).argmax(1).numpy() != y
    size = np.linalg.norm((x_adv - x).reshape(len(x), -1), NORMS[norm], axis=1)
    return x_adv, wrong & (size <= np.float32(eps))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_minimal_norms_are_torchattacks(trained_digits, norm):
    """100 test images, 10 steps, one run from x (torchattacks with an eps too large to bind).
    Measured: the same 100 images broken, mean norms equal to 1e-6 (L-inf 0.1125, L2 0.566);
    asserted: mean norm over the images both break within 5%."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchattacks")
    from torch_twin import twin
    torch.set_num_threads(1)
    model, x, y = trained_digits
    x_theirs, broken = torchattacks_fab(twin(model), x, y, norm, 1e10)
    ours = FAB(norm=norm).generate(model, x, y)
    both = broken & ours.success
    assert both.mean() > 0.9
    theirs = np.linalg.norm((x_theirs - x).reshape(len(x), -1), NORMS[norm], axis=1)
    assert ours.norms[norm][both].mean() == pytest.approx(theirs[both].mean(), rel=0.05)


@pytest.mark.parametrize("norm, eps, settings", [
    ("linf", 0.1, {"restarts": 3}), ("l2", 0.5, {"restarts": 3}),
    ("linf", 0.1, {"targeted": True})])
def test_robust_accuracy_is_torchattacks(trained_digits, norm, eps, settings):
    """100 test images, 10 steps; three runs (random restarts at eps / 2, drawn by different
    generators), or FAB-T over the 9 best other classes (torchattacks' multi_targeted).
    Measured: robust accuracy 0.67 vs 0.67, 0.66 vs 0.66, 0.67 vs 0.67; asserted: within 3
    points."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchattacks")
    from torch_twin import twin
    torch.set_num_threads(1)
    model, x, y = trained_digits
    theirs = {"n_restarts": settings.get("restarts", 1),
              "multi_targeted": settings.get("targeted", False), "n_classes": 10}
    broken = torchattacks_fab(twin(model), x, y, norm, eps, **theirs)[1]
    ours = FAB(eps, norm=norm, **settings).generate(model, x, y)
    assert 0.1 < 1 - broken.mean() < 0.9
    assert abs(ours.success.mean() - broken.mean()) <= 0.03 + 1e-9
