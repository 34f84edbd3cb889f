"""JSMA (nnscratch/attacks/saliency.py): its definition on every backend on a tiny untrained
model (the pixel budget, steps of theta, the variant's direction, the pair chosen against a
slow loop over all pairs), success on a small CNN trained on digits, clean failure on a
constant model, exact query counts, refusals, and torchattacks 3.5.1's JSMA as a reference."""

import math

import numpy as np
import pytest

from nnscratch.attacks.saliency import JSMA, best_pairs
from nnscratch.backend import device_of, to_numpy

from test_attacks import Counting, images, tiny_model, trained  # noqa: F401 (a fixture)

PIXELS = 64                                   # the 1 x 8 x 8 images of both models


def targets_away_from(xp, model, x, classes):
    """(y, target): the model's predictions and a target that differs from them."""
    y = model.predict(x)
    return y, (y + 1 + xp.arange(len(x)) % (classes - 1)) % classes


def slow_best_pair(alpha, beta, domain, increase):
    """The pairwise saliency map by a loop over every pair p < q: (score, p, q) of the best,
    or None. alpha, beta, domain: host arrays (D,)."""
    best = None
    for p in range(len(alpha)):
        for q in range(p + 1, len(alpha)):
            if not (domain[p] and domain[q]):
                continue
            a, b = float(alpha[p]) + float(alpha[q]), float(beta[p]) + float(beta[q])
            if (a > 0 and b < 0) if increase else (a < 0 and b > 0):
                if best is None or -a * b > best[0]:
                    best = (-a * b, p, q)
    return best


# ------------------------------------------------------------------ definitions, every backend

@pytest.mark.parametrize("theta, gamma, variant", [
    (1.0, 0.1, "increase"), (0.3, 0.25, "increase"), (1.0, 0.25, "decrease"),
    (0.4, 0.5, "decrease")])
def test_budget_steps_of_theta_and_the_contract(xp, theta, gamma, variant):
    """At most 2 * floor(gamma * D / 2) pixels change, each by a whole number of theta steps in
    the variant's direction unless clipped at 1 (or 0); x untouched; float32 kept on a float64
    model; norms exact; success means predicted == target."""
    model, x = tiny_model(xp, dtype=np.float64), images(xp, n=8)
    y, target = targets_away_from(xp, model, x, 5)
    before = to_numpy(x).copy()
    attack = JSMA(theta, gamma, variant=variant)
    result = attack.generate(model, x, y, target=target)
    assert np.array_equal(to_numpy(x), before)
    assert result.x_adv.dtype == np.float32 and device_of(result.x_adv) == device_of(x)
    budget = math.floor(gamma * PIXELS / 2)
    steps = to_numpy(result.info["steps"])
    assert steps.max() <= budget and steps.max() > 0
    delta = (to_numpy(result.x_adv) - before).reshape(8, -1).astype(np.float64)
    assert (to_numpy(result.norms["l0"]) <= 2 * steps).all()
    assert (to_numpy(result.norms["l0"]) <= 2 * budget).all()
    sign = 1 if variant == "increase" else -1
    assert (sign * delta >= 0).all()                          # only in the variant's direction
    changed = delta != 0
    end = to_numpy(result.x_adv).reshape(8, -1)[changed]
    clipped = end == (1 if variant == "increase" else 0)
    multiples = sign * delta[changed] / theta
    whole = np.abs(multiples - np.round(multiples)) < 1e-5
    assert (clipped | whole).all()
    if theta == 1.0:
        assert clipped.all()
    expected = {"l0": changed.sum(1), "l1": np.abs(delta).sum(1),
                "l2": np.linalg.norm(delta, axis=1), "linf": np.abs(delta).max(1)}
    for key, value in expected.items():
        np.testing.assert_allclose(to_numpy(result.norms[key]), value, rtol=1e-5, atol=1e-7)
    success = to_numpy(result.success)
    assert np.array_equal(success, to_numpy(model.predict(result.x_adv) == target))
    failure = result.info["failure"]
    assert failure.shape == (8,) and ((failure == "") == success).all()
    assert set(failure) <= {"", "budget reached", "no saliency"}
    assert (steps[failure == "budget reached"] == budget).all()


@pytest.mark.parametrize("variant", ["increase", "decrease"])
def test_one_step_moves_the_argmax_of_the_saliency_map(xp, variant):
    """gamma = 2/64 allows one pair step: the two pixels that moved are the best admissible pair
    of the saliency map at x, found here by a slow loop over all pairs (float64 model)."""
    model = tiny_model(xp, dtype=np.float64)
    x = images(xp, n=6, seed=3).astype(np.float64)
    y, target = targets_away_from(xp, model, x, 5)
    result = JSMA(gamma=2 / PIXELS, variant=variant).generate(model, x, y, target=target)
    jac = to_numpy(model.jacobian(x)).reshape(6, 5, -1)
    x_host = to_numpy(x).reshape(6, -1)
    for i in range(6):
        alpha = jac[i, int(target[i])]
        beta = jac[i].sum(axis=0) - alpha
        domain = x_host[i] < 1 if variant == "increase" else x_host[i] > 0
        best = slow_best_pair(alpha, beta, domain, variant == "increase")
        moved = np.flatnonzero(to_numpy(result.x_adv).reshape(6, -1)[i] != x_host[i])
        if best is None:
            assert result.info["failure"][i] == "no saliency" and moved.size == 0
            continue
        assert int(result.info["steps"][i]) == 1
        p, q = moved
        a, b = alpha[p] + alpha[q], beta[p] + beta[q]
        np.testing.assert_allclose(-a * b, best[0], rtol=1e-12)
        assert (p, q) == best[1:]                  # ties: the first pair in row-major order


def test_best_pairs_matches_the_loop_across_chunks(xp, monkeypatch):
    """The vectorised pair search equals the slow loop on random derivatives and domains, also
    when the images are split into chunks of two (and on a domain with no admissible pair)."""
    from nnscratch.attacks import saliency
    monkeypatch.setattr(saliency, "PAIR_CHUNK", 2 * 20 * 20)
    rng = np.random.default_rng(0)
    alpha = rng.standard_normal((5, 20)).astype(np.float32)
    beta = rng.standard_normal((5, 20)).astype(np.float32)
    domain = rng.random((5, 20)) < 0.7
    alpha[4] = -abs(alpha[4])                      # image 4: no alpha > 0, nothing to increase
    for increase in (True, False):
        p, q, found = best_pairs(xp.asarray(alpha), xp.asarray(beta), xp.asarray(domain),
                                 increase)
        for i in range(5):
            best = slow_best_pair(alpha[i], beta[i], domain[i], increase)
            assert bool(found[i]) == (best is not None)
            if best is not None:
                assert (int(p[i]), int(q[i])) == best[1:]
    assert not bool(best_pairs(xp.asarray(alpha), xp.asarray(beta), xp.asarray(domain),
                               True)[2][4])


@pytest.mark.parametrize("targeted", [True, False])
def test_constant_model_fails_cleanly(xp, targeted):
    """Zero Jacobian: every image stops after one Jacobian with "zero gradient", unchanged."""
    model, x = tiny_model(xp, constant=True), images(xp)
    y = model.predict(x)
    target = (y + 1) % 5 if targeted else None
    result = JSMA(gamma=1.0, targeted=targeted).generate(model, x, y, target=target)
    assert not to_numpy(result.success).any()
    assert (result.info["failure"] == "zero gradient").all()
    assert np.array_equal(to_numpy(result.x_adv), to_numpy(x))
    assert (to_numpy(result.info["steps"]) == 0).all()
    # one success check and one Jacobian; untargeted: one more for the target's choice
    assert (to_numpy(result.queries) == (2 if targeted else 3)).all()


def test_saturated_images_and_a_zero_budget_stop_at_once(xp):
    """A white image cannot increase (its domain is empty), a black one cannot decrease; a gamma
    below 2 / D allows no step: "no saliency" and "budget reached", x unchanged."""
    model = tiny_model(xp)
    white, black = xp.ones((2, 1, 8, 8), dtype=xp.float32), xp.zeros((2, 1, 8, 8), dtype=xp.float32)
    for x, variant in ((white, "increase"), (black, "decrease")):
        y = model.predict(x)
        result = JSMA(variant=variant).generate(model, x, y, target=(y + 1) % 5)
        assert (result.info["failure"] == "no saliency").all()
        assert np.array_equal(to_numpy(result.x_adv), to_numpy(x))
    x = images(xp)
    y, target = targets_away_from(xp, model, x, 5)
    result = JSMA(gamma=1 / PIXELS).generate(model, x, y, target=target)
    assert (result.info["failure"] == "budget reached").all()
    assert np.array_equal(to_numpy(result.x_adv), to_numpy(x))


@pytest.mark.parametrize("targeted", [True, False])
def test_queries_count_every_image_the_model_sees(targeted):
    """One Jacobian (one forward, K pullbacks) counts one query, as the counting wrapper sees it:
    queries = labels + (steps + 1) checks + steps Jacobians (+ 1 untargeted)."""
    model, x = Counting(tiny_model(np)), images(np)
    y = model.predict(x)
    model.seen = 0
    target = (y + 1) % 5 if targeted else None
    result = JSMA(gamma=0.25, targeted=targeted).generate(model, x, target=target)
    assert int(result.queries.sum()) == model.seen
    steps = result.info["steps"]
    assert (result.queries == 1 + (steps + 1) + steps + (0 if targeted else 1)).all()


# ------------------------------------------------------------------ on a trained model

def test_targeted_jsma_reaches_most_targets(trained):
    model, x, y = trained
    for shift in (1, 5):
        target = (y + shift) % 10
        result = JSMA(gamma=0.5).generate(model, x, y, target=target)
        assert result.success_rate >= 0.9
        assert np.array_equal(result.success, model.predict(result.x_adv) == target)
        assert (result.norms["l0"] <= 32).all()


def test_untargeted_jsma_aims_at_the_runner_up(trained):
    model, x, y = trained
    result = JSMA(gamma=0.5, targeted=False).generate(model, x, y)
    logits = model.logits(x)
    logits[np.arange(len(y)), y] = -np.inf
    assert np.array_equal(result.info["target"], logits.argmax(axis=1))
    assert result.target is None and result.success_rate >= 0.95
    assert np.array_equal(result.success, model.predict(result.x_adv) != y)


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("make, error, match", [
    (lambda: JSMA(theta=0), ValueError, "theta"), (lambda: JSMA(theta=-1), ValueError, "theta"),
    (lambda: JSMA(theta=1.5), ValueError, "theta"), (lambda: JSMA(theta="1"), TypeError, "theta"),
    (lambda: JSMA(gamma=0), ValueError, "gamma"), (lambda: JSMA(gamma=1.01), ValueError, "gamma"),
    (lambda: JSMA(gamma=float("nan")), ValueError, "gamma"),
    (lambda: JSMA(variant="up"), ValueError, "variant"),
    (lambda: JSMA(targeted=1), TypeError, "targeted")])
def test_bad_hyper_parameters_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_targeted_jsma_needs_a_target():
    model, x = tiny_model(np), images(np)
    with pytest.raises(ValueError, match="target"):
        JSMA().generate(model, x)
    with pytest.raises(ValueError, match="targeted=True"):
        JSMA(targeted=False).generate(model, x, target=np.zeros(6, dtype=np.int64))


# ------------------------------------------------------------------ reference: torchattacks

@pytest.mark.parametrize("gamma", [0.25, 0.5])
def test_jsma_agrees_with_torchattacks(trained, gamma):
    """torchattacks 3.5.1's JSMA (increasing, logits, theta = 1) on a PyTorch twin, 60 digits
    test images, target (y + 1) mod 10. gamma * 64 / 2 is whole, so both budgets agree (it
    rounds up, we round down); on digits (values k/16) its domain x < 0.99 is ours, x < 1.
    The issue's criterion: success within 3 points, mean L0 of the successes within 10%; and
    as both run the same algorithm on the same logits, nearly all images are identical.
    Measured on these 60 images: identical images; gamma 0.25: 75% success, mean L0 9.5;
    gamma 0.5: 98.3%, 12.3 (on 200 images, 199 identical). At the default gamma 0.1 the budgets
    differ (our 3 steps, its 4): 16.7% against 38.3% success, so it is not compared.
    """
    torch = pytest.importorskip("torch")
    torchattacks = pytest.importorskip("torchattacks")
    from torch_twin import twin
    torch.set_num_threads(1)
    model, x, y = trained
    target = (y + 1) % 10
    ours = JSMA(theta=1.0, gamma=gamma).generate(model, x, y, target=target)
    attack = torchattacks.JSMA(twin(model), theta=1.0, gamma=gamma)
    attack.set_mode_targeted_by_label(quiet=True)
    theirs = attack(torch.from_numpy(x), torch.from_numpy(target)).numpy()
    success = model.predict(theirs) == target
    l0 = (theirs != x).reshape(len(x), -1).sum(axis=1)
    assert abs(ours.success_rate - success.mean()) <= 0.03
    ours_l0 = ours.norms["l0"][ours.success].mean()
    assert abs(ours_l0 - l0[success].mean()) <= 0.1 * l0[success].mean()
    identical = (theirs == ours.x_adv).reshape(len(x), -1).all(axis=1)
    assert identical.mean() >= 0.95
