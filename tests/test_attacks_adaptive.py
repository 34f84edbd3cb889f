"""The adaptive attacks (nnscratch/attacks/adaptive.py): the same images as the Alshemali study's
functions they replace, EOT's gradient against finite differences, PGD when there is nothing
to adapt to, every backend, exact query counts, refusals."""

import numpy as np
import pytest

from nnscratch.attacks import PGD, DetectorAwarePGD, EOTPGD
from nnscratch.attacks.base import Oracle
from nnscratch.attacks.saliency import runner_up
from nnscratch.backend import device_of, get_array_module, to_numpy
from reference import eot_pgd, kde_aware_pgd
from nnscratch.gradcheck import assert_gradients_close, compare_input_gradient
from nnscratch.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from nnscratch.model import Sequential

from test_attacks import Counting, images, tiny_model
from test_defenses_kde import clusters, fitted_on_clusters


def dropout_model(xp, dtype=np.float32):
    """conv3x3x4, ReLU, maxpool, dropout .5, dense 5 on 8x8 images: MC dropout to average."""
    rng = np.random.default_rng(0)
    model = Sequential([Conv2D(1, 4, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2), Flatten(),
                        Dropout(0.5), Dense(4 * 4 * 4, 5, rng=rng)], input_shape=(1, 8, 8))
    return model.astype(dtype).to(device_of(xp.zeros(0)))


class Quadratic:
    """A stand-in detector, score(x) = ||x - 0.5||^2 per image: anything with score_gradient."""

    def score_gradient(self, x):
        return 2 * (x - x.dtype.type(0.5))


@pytest.fixture(scope="module")
def kde_on_clusters():
    """The cluster model (float64, dropout) and Feinman's detector fitted on it, and images
    halfway between two clusters with their true classes."""
    model, detector = fitted_on_clusters()
    x, y = clusters(6, 4, between=True)
    return model, detector, x, y


# ------------------------------------------------------------------ the study's images

@pytest.mark.parametrize("weight", [0.0, 1.0, 3.0])
def test_eot_pgd_gives_the_studys_images(weight):
    """The study's eot_pgd is EOTPGD, targeted at the runner-up class, step eps / 10, no start."""
    model, x = dropout_model(np), images(np)
    y = model.predict(x)
    study = eot_pgd(model, x, y, 0.1, 4, 3, weight, 7)
    attack = EOTPGD(0.1, step=0.1 / 10, steps=4, random_start=False, seed=7, samples=3,
                    uncertainty_weight=weight, targeted=True)
    ours = attack.generate(model, x, y, target=runner_up(model.logits(x), y))
    assert np.array_equal(ours.x_adv, study)
    assert not np.array_equal(ours.x_adv, x)


def test_eot_pgd_gives_the_studys_images_in_float64(kde_on_clusters):
    model, _, x, y = kde_on_clusters
    study = eot_pgd(model, x, y, 0.2, 5, 4, 1.0, 0)
    attack = EOTPGD(0.2, step=0.02, steps=5, samples=4, uncertainty_weight=1.0, targeted=True)
    ours = attack.generate(model, x, y, target=runner_up(model.logits(x), y))
    assert np.array_equal(ours.x_adv, study)


def test_detector_aware_pgd_gives_the_studys_images(kde_on_clusters):
    """The study's kde_aware_pgd is DetectorAwarePGD with step eps / 10, no random start."""
    model, detector, x, y = kde_on_clusters
    study = kde_aware_pgd(model, detector, x, y, 0.3, 6)
    attack = DetectorAwarePGD(detector, 0.3, step=0.3 / 10, steps=6, random_start=False)
    ours = attack.generate(model, x, y)
    assert np.array_equal(ours.x_adv, study)
    assert not np.array_equal(ours.x_adv, x)
    quadratic = DetectorAwarePGD(Quadratic(), 0.1, step=0.01, steps=4, random_start=False)
    conv, images_ = dropout_model(np), images(np)
    labels = conv.predict(images_)
    assert np.array_equal(quadratic.generate(conv, images_, labels).x_adv,
                          kde_aware_pgd(conv, Quadratic(), images_, labels, 0.1, 4))


# ------------------------------------------------------------------ what they compute

def test_eot_ascent_is_minus_the_gradient_of_the_objective(kde_on_clusters):
    """Targeted: the ascent is -dJ/dx, J = mean_s CE_s + w std_s p_s over the masks the seeds
    fix, against central differences (float64; the cluster model is linear but for dropout)."""
    model, _, x, y = kde_on_clusters
    t = runner_up(model.logits(x), y)
    attack = EOTPGD(0.2, steps=1, samples=5, uncertainty_weight=2.0, seed=3, targeted=True)
    r = np.random.default_rng(0).normal(size=len(x))

    def objective(v):
        ce = np.stack([model.loss_gradient(v, t, mc_seed=3 + 5 + s)[0] for s in range(5)])
        return (r * (ce.mean(axis=0) + 2.0 * np.exp(-ce).std(axis=0))).sum()

    def gradient(v):
        oracle = Oracle(model, y, t, np.zeros(len(v), dtype=np.int64))
        return -r[:, None, None, None] * attack.ascent(oracle, v, 1)     # step k = 1

    assert_gradients_close(compare_input_gradient("EOT objective", gradient, objective, x))


def test_without_randomness_or_detector_both_are_pgd():
    """A model without dropout: every pass is the same, no spread, and EOT is PGD exactly; a
    detector weighted 0 leaves PGD's sign step."""
    model, x = tiny_model(np), images(np)
    pgd = PGD(0.1, steps=5, random_start=False).generate(model, x).x_adv
    eot = EOTPGD(0.1, steps=5, samples=4, uncertainty_weight=1.0).generate(model, x).x_adv
    blind = DetectorAwarePGD(Quadratic(), 0.1, steps=5, random_start=False,
                             detector_weight=0).generate(model, x).x_adv
    assert np.array_equal(eot, pgd) and np.array_equal(blind, pgd)


def test_detector_aware_pgd_lowers_the_detectors_score():
    model, x = dropout_model(np), images(np)
    y = model.predict(x)

    def score(v):
        return ((v - 0.5) ** 2).reshape(len(v), -1).sum(axis=1)

    plain = PGD(0.1, steps=5, random_start=False).generate(model, x, y).x_adv
    aware = DetectorAwarePGD(Quadratic(), 0.1, steps=5, random_start=False,
                             detector_weight=3.0).generate(model, x, y).x_adv
    assert (score(aware) < score(plain)).all()


# ------------------------------------------------------------------ every backend

@pytest.mark.parametrize("make", [
    lambda: EOTPGD(0.1, steps=3, samples=2, uncertainty_weight=1.0),
    lambda: EOTPGD(0.5, steps=3, samples=2, norm="l2", random_start=True, targeted=True),
    lambda: DetectorAwarePGD(Quadratic(), 0.1, steps=3),
    lambda: DetectorAwarePGD(Quadratic(), 0.5, steps=3, norm="l2", targeted=True)],
    ids=["eot", "eot-l2-targeted", "detector", "detector-l2-targeted"])
def test_runs_on_every_backend_in_the_ball_deterministically(xp, make):
    model, x = dropout_model(xp), images(xp)
    y = xp.asarray(np.arange(6) % 5)
    target = (y + 1) % 5 if make().targeted else None
    first, again = (make().generate(model, x, y, target=target) for _ in range(2))
    assert get_array_module(first.x_adv) is xp and first.x_adv.dtype == np.float32
    assert np.array_equal(to_numpy(first.x_adv), to_numpy(again.x_adv))
    x_adv, attack = to_numpy(first.x_adv), make()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (to_numpy(first.norms[attack.norm]) <= attack.eps * (1 + 1e-6)).all()
    assert (to_numpy(first.norms[attack.norm]) > 0).any()


# ------------------------------------------------------------------ queries

def test_queries_count_every_pass_and_every_detector_gradient():
    x = images(np)
    model = Counting(dropout_model(np))
    y = model.predict(x)
    model.seen = 0
    eot = EOTPGD(0.1, steps=3, samples=4).generate(model, x, y)
    assert (eot.queries == 3 * 4 + 1).all() and int(eot.queries.sum()) == model.seen
    model.seen = 0
    aware = DetectorAwarePGD(Quadratic(), 0.1, steps=3).generate(model, x)
    assert (aware.queries == 1 + 2 * 3 + 1).all()          # labels, 2 per step, the check
    assert int(aware.queries.sum()) == model.seen + 3 * len(x)     # the detector's gradients


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("make, error, match", [
    (lambda: EOTPGD(-0.1), ValueError, "eps"),
    (lambda: EOTPGD(0.1, samples=0), ValueError, "samples"),
    (lambda: EOTPGD(0.1, samples=2.5), ValueError, "samples"),
    (lambda: EOTPGD(0.1, uncertainty_weight=-1), ValueError, "uncertainty_weight"),
    (lambda: EOTPGD(0.1, uncertainty_weight="1"), TypeError, "uncertainty_weight"),
    (lambda: EOTPGD(0.1, norm="l1"), ValueError, "norm"),
    (lambda: EOTPGD(0.1, random_start=1), TypeError, "random_start"),
    (lambda: DetectorAwarePGD(object(), 0.1), TypeError, "score_gradient"),
    (lambda: DetectorAwarePGD(Quadratic(), 0.1, detector_weight=float("nan")), ValueError,
     "detector_weight"),
    (lambda: DetectorAwarePGD(Quadratic(), 0.1, steps=-1), ValueError, "steps"),
    (lambda: DetectorAwarePGD(Quadratic(), 0.1, seed=-1), ValueError, "seed")])
def test_bad_hyper_parameters_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()
