"""What every attack shares (nnscratch/attacks/base.py, criteria.py, norms.py): settings that
rebuild the attack, success criteria as objects, the one per-image normalisation and
projection, and docstrings that point inside the repository."""

import inspect
import json
from pathlib import Path

import numpy as np
import pytest

import nnscratch.attacks
from nnscratch.attacks import (APGD, BIM, EOTPGD, FAB, FGSM, FGV, JSMA, LBFGS, PGD,
                               AdversarialPatch, Attack, AutoAttack, CarliniWagnerL2,
                               DetectorAwarePGD, FoolingImages, HotCold, LocalSearch,
                               Misclassification, MisclassificationNotRejected, OnePixel,
                               RejectAwarePGD, SpatialGrid, Square, TargetConfidence,
                               TargetedMisclassification, TransferAttack)
from nnscratch.attacks.base import Oracle
from nnscratch.attacks.norms import normalized, project
from nnscratch.backend import to_numpy
from nnscratch.ops import softmax

from test_attacks import images, tiny_model
from test_attacks_adaptive import Quadratic

# Every attack class, with settings other than its defaults where it has any to change.
EXAMPLES = [
    FGSM(0.2, targeted=True), FGSM(minimal=True, max_eps=0.5, tolerance=1e-2),
    FGV(0.3, norm="l2"), FGV(minimal=True, targeted=True),
    BIM(0.1), BIM(0.2, step=0.05, steps=3, early_stop=True, targeted=True),
    PGD(0.3), PGD(1.0, step=0.1, steps=7, norm="l2", random_start=False, seed=4, targeted=True),
    APGD(0.3), APGD(1.0, norm="l2", loss="dlr", targeted=True, steps=7, restarts=2, rho=0.5,
                    n_target_classes=3, seed=4),
    FAB(), FAB(0.5, norm="l1", steps=7, restarts=2, alpha_max=0.2, eta=1.1, beta=0.8,
               targeted=True, n_target_classes=3, seed=4), FAB(norm="l2", reject_class=True),
    AutoAttack(0.3), AutoAttack(1.0, norm="l2", seed=2, reject_class=True, steps=3, n_queries=9),
    EOTPGD(0.1, steps=5, samples=3, uncertainty_weight=0.5, seed=2, targeted=True),
    DetectorAwarePGD(Quadratic(), 0.2, steps=3, norm="l2", detector_weight=2.0),
    JSMA(theta=0.5, gamma=0.2, targeted=False, variant="decrease"),
    CarliniWagnerL2(confidence=1.0, steps=20, binary_search_steps=3, initial_const=0.1,
                    lr=0.05, abort_early=False, targeted=True),
    LBFGS(targeted=False, initial_const=0.1, binary_search_steps=3, max_iterations=9, memory=5,
          batch_size=2),
    OnePixel(pixels=3, population=50, max_iterations=4, seed=1, targeted=True),
    LocalSearch(r=1.2, p=5.0, d=2, t=3, rounds=9, seed=3),
    Square(0.5, norm="l2", n_queries=30, p_init=0.3, loss="ce", restarts=2, targeted=True,
           rescale=False, seed=3),
    SpatialGrid(max_rotation=10, max_translation=2, rotations=5, translations=3,
                mode="random", random_trials=4, steps=3, seed=5),
    HotCold("hc", "l2", max_eps=0.4, tolerance=1e-2),
    FoolingImages(0.9, steps=10, step_size=0.02, start="x", seed=4),
    RejectAwarePGD(1.0, steps=3, step=0.2, line_search=2, norm="linf",
                   starts=np.zeros((2, 1, 8, 8), dtype=np.float32)),
    TransferAttack(tiny_model(np), FGSM(0.1, targeted=True)),
    AdversarialPatch(4, location=(1, 2), targeted=True, universal=True, steps=7, step_size=0.1,
                     seed=3),
]


def test_the_examples_cover_every_attack_class():
    exported = {value for value in vars(nnscratch.attacks).values()
                if isinstance(value, type) and issubclass(value, Attack) and value is not Attack}
    assert exported == {type(a) for a in EXAMPLES}


@pytest.mark.parametrize("attack", EXAMPLES, ids=lambda a: type(a).__name__)
def test_settings_are_the_constructors_parameters_and_rebuild_the_attack(attack):
    """Exactly the constructor's parameters (less the objects it works with), JSON-able, and
    type(a)(**settings, **objects) has the same settings."""
    settings = attack.settings()
    parameters = [name for name in inspect.signature(type(attack).__init__).parameters
                  if name != "self"]
    assert list(settings) == [name for name in parameters if name not in attack.objects]
    assert json.loads(json.dumps(settings)) == settings
    objects = {name: getattr(attack, name) for name in attack.objects}
    assert type(attack)(**settings, **objects).settings() == settings


def test_settings_give_worked_out_defaults_as_the_values_they_took():
    assert PGD(0.3, steps=40).settings()["step"] == pytest.approx(2.5 * 0.3 / 40)
    assert BIM(0.1).settings()["steps"] == 30                 # ceil(min(25.5 + 4, 31.875))
    assert FGSM(0.1).settings() == {"eps": 0.1, "targeted": False, "minimal": False,
                                    "max_eps": None, "tolerance": 1e-3}
    assert "starts" not in RejectAwarePGD(1.0).settings()
    assert "detector" not in DetectorAwarePGD(Quadratic(), 0.1).settings()
    assert TransferAttack(tiny_model(np), FGSM(0.1)).settings() == {}     # two objects


def test_a_tolerance_is_checked_even_without_the_minimal_search():
    with pytest.raises(ValueError, match="tolerance"):
        FGSM(0.1, tolerance=0)


# ------------------------------------------------------------------ criteria

def test_criteria_decide_from_the_logits_of_the_rows_asked(xp):
    z = xp.asarray(np.array([[3.0, 1.0, 0.0, 0.0],       # class 0
                             [0.0, 2.0, 1.0, 0.0],       # class 1
                             [0.0, 0.0, 0.0, 5.0]]))     # the last: "rejected"
    labels, target = xp.asarray(np.array([0, 0, 2, 1])), xp.asarray(np.array([1, 1, 3, 0]))
    rows = xp.asarray(np.array([0, 1, 3]))                 # z holds the rows 0, 1, 3 of four
    assert to_numpy(Misclassification(labels)(z, rows)).tolist() == [False, True, True]
    assert to_numpy(TargetedMisclassification(target)(z, rows)).tolist() == [False, True, False]
    assert to_numpy(MisclassificationNotRejected(labels)(z, rows)).tolist() == [False, True,
                                                                                False]
    confident = TargetConfidence(target, 0.6)
    p = to_numpy(softmax(z))[[0, 1, 2], [1, 1, 0]]
    assert to_numpy(confident(z, rows)).tolist() == (p >= 0.6).tolist() == [False, True, False]
    assert to_numpy(confident.reached(xp.asarray(p), rows)).tolist() == [False, True, False]


def test_the_oracle_decides_success_by_its_criterion():
    model, x = tiny_model(np), images(np)
    y = model.predict(x)
    queries = np.zeros(6, dtype=np.int64)
    assert not Oracle(model, y, None, queries).is_adversarial(x).any()         # the default
    assert Oracle(model, y, None, queries, Misclassification((y + 1) % 5)).is_adversarial(x).all()
    assert Oracle(model, y, y, queries).is_adversarial(x).all()       # targeted at y: reached
    np.testing.assert_array_equal(queries, 3)


def test_reject_aware_pgd_succeeds_by_misclassification_not_rejected():
    """The tiny model's last logit plays the reject class."""
    model, x = tiny_model(np), images(np)
    result = RejectAwarePGD(2.0, steps=3).generate(model, x)
    y = model.predict(x)
    np.testing.assert_array_equal(result.success,
                                  MisclassificationNotRejected(y)(model.logits(result.x_adv)))


# ------------------------------------------------------------------ normalisation, projection

def test_normalized_per_image(xp):
    g = np.random.default_rng(0).normal(size=(4, 1, 3, 3)).astype(np.float32)
    g[1] = 0                                               # no gradient: stays zero
    g[2] *= 1e-20                                          # shorter than 1e-12: unit length too
    flat = g.reshape(4, -1)
    for norm, size in (("linf", np.abs(flat).max(1)), ("l2", np.linalg.norm(flat, axis=1))):
        out = to_numpy(normalized(xp.asarray(g), norm))
        assert out.dtype == np.float32
        expected = g / np.where(size == 0, 1, size).reshape(-1, 1, 1, 1)
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_allclose(np.linalg.norm(out.reshape(4, -1), ord=np.inf if norm ==
                                                  "linf" else 2, axis=1), [1, 0, 1, 1],
                                   rtol=1e-6)
    np.testing.assert_array_equal(to_numpy(normalized(xp.asarray(g), "sign")), np.sign(g))


def test_bim_is_its_projected_sign_step_and_the_clip_chain_but_for_the_last_bit():
    """BIM steps through ``project``; Kurakin et al.'s clip_[x-eps, x+eps] chain (the form
    BIM had before) gives the same images up to one rounding of x + (x_k - x)."""
    model, x = tiny_model(np), images(np)
    y = model.predict(x)
    eps, step = np.float32(0.1), np.float32(0.03)
    x_proj, x_chain = x.copy(), x.copy()
    for _ in range(5):
        g = np.sign(model.loss_gradient(x_proj, y)[1])
        x_proj = project(x, x_proj + step * g, eps, "linf")
        g = np.sign(model.loss_gradient(x_chain, y)[1])
        x_chain = np.clip(np.clip(x_chain + step * g, x - eps, x + eps), 0, 1)
    ours = BIM(0.1, step=0.03, steps=5).generate(model, x, y).x_adv
    np.testing.assert_array_equal(ours, x_proj)
    np.testing.assert_allclose(ours, x_chain, rtol=0, atol=2 * np.finfo(np.float32).eps)


# ------------------------------------------------------------------ docstrings

def test_attack_sources_point_only_inside_the_repository():
    folder = Path(nnscratch.attacks.__file__).parent
    for path in folder.glob("*.py"):
        text = path.read_text()
        for outside in ("DESIGN.md", "shared/", "../"):
            assert outside not in text, f"{path.name} points outside the repository: {outside}"
