"""Auto-PGD (nnscratch/attacks/apgd.py): the DLR losses and their logit gradients, the
checkpoint schedule, the step size's halving, the contract on every backend, query counts,
refusals; and parity with torchattacks 3.5.1's APGD and APGDT on the PyTorch twin of small_cnn
trained on digits."""

import numpy as np
import pytest

from nnscratch import data
from nnscratch.attacks import APGD
from nnscratch.attacks.apgd import checkpoints
from nnscratch.attacks.criteria import Misclassification, MisclassificationNotRejected
from nnscratch.backend import device_of, get_array_module, to_numpy
from nnscratch.gradcheck import assert_gradients_close, compare_input_gradient
from nnscratch.model import Model

from test_attacks import Counting, images, tiny_model

LOSSES = {"ce": APGD(0.1), "dlr": APGD(0.1, loss="dlr"),
          "targeted ce": APGD(0.1, targeted=True), "targeted dlr": APGD(0.1, loss="dlr",
                                                                         targeted=True),
          "reject_dlr": APGD(0.1, loss="reject_dlr")}


def logits_and_labels(n=8, k=10, seed=0):
    """float64 logits (n, k), labels y and targets t != y."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 3
    y = rng.integers(0, k, n)
    return z, y, (y + 1 + rng.integers(0, k - 1, n)) % k


def objective(name, z, y, t):
    return LOSSES[name].objective(z, y, t if name.startswith("targeted") else None)


# ------------------------------------------------------------------ the losses

@pytest.mark.parametrize("name", ["dlr", "targeted dlr", "reject_dlr"])
def test_dlr_losses_are_invariant_to_shift_and_positive_scale(name):
    z, y, t = logits_and_labels()
    value = objective(name, z, y, t)[0]
    np.testing.assert_allclose(objective(name, 2.5 * z - 7.0, y, t)[0], value, rtol=1e-9)
    np.testing.assert_allclose(objective(name, 0.1 * z + 3.0, y, t)[0], value, rtol=1e-9)


@pytest.mark.parametrize("name", list(LOSSES))
def test_logit_gradients_match_central_differences(name):
    """d(sum u * f(z))/dz, u a random upstream, against central differences (step 1e-5) in
    float64, to gradcheck's tolerances: norm-wise relative error 1e-7, element-wise rtol 1e-6,
    atol 1e-9. The denominators' dependence on z is in the gradient."""
    z, y, t = logits_and_labels()
    assert np.diff(np.sort(z, axis=1), axis=1).min() > 1e-3     # no tie a 1e-5 step can flip
    u = np.random.default_rng(1).normal(size=len(z))

    def gradient(v):
        return u[:, None] * objective(name, v, y, t)[1]

    def value(v):
        return float((u * objective(name, v, y, t)[0]).sum())

    assert_gradients_close(compare_input_gradient(name, gradient, value, z))


def test_dlr_on_hand_made_logits():
    """pi1, pi3 (pi4) of the sorted logits; y's margin to the best other class."""
    z = np.array([[4.0, 1.0, 3.0, 0.0],          # y = 0: -(4 - 3) / (4 - 1)
                  [1.0, 2.0, 5.0, 3.0]])         # y = 0: -(1 - 5) / (5 - 2)
    y = np.array([0, 0])
    np.testing.assert_allclose(objective("dlr", z, y, None)[0], [-1 / 3, 4 / 3])
    t = np.array([2, 3])                          # -(z_y - z_t) / (pi1 - (pi3 + pi4) / 2)
    np.testing.assert_allclose(objective("targeted dlr", z, y, t)[0], [-1 / 3.5, 2 / 3.5])


def test_reject_dlr_is_positive_exactly_when_misclassified_and_not_rejected():
    """The last column is the reject score; y may be the reject class itself."""
    z, y, _ = logits_and_labels(n=200, k=5, seed=3)
    value = objective("reject_dlr", z, y, None)[0]
    np.testing.assert_array_equal(value > 0, MisclassificationNotRejected(y)(z))
    assert 0 < (value > 0).mean() < 1


# ------------------------------------------------------------------ the schedule

def test_checkpoints_are_the_papers():
    """p_j: 0, .22, .41, .57, .70, .80, .87, .93, .99 (then 1.05 > 1); w_j = ceil(p_j N)."""
    assert checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(200) == [0, 44, 82, 114, 140, 160, 174, 186, 198]
    assert checkpoints(10) == [0, 3, 5, 6, 7, 8, 9, 10]
    assert checkpoints(1) == [0, 1]


def test_checkpoints_for_100_steps_are_torchattacks():
    """torchattacks' APGD run for 100 steps, its step-size check recorded: the same steps."""
    torch = pytest.importorskip("torch")
    torchattacks = pytest.importorskip("torchattacks")
    from torch_twin import twin
    model, x = tiny_model(np), images(np)
    attack = torchattacks.APGD(twin(model), eps=0.1, steps=100)
    original, seen = attack.check_oscillation, []

    def recording(losses, j, k, *args, **kwargs):
        seen.append(j + 1)                        # j: the index of the step just taken
        return original(losses, j, k, *args, **kwargs)

    attack.check_oscillation = recording
    attack(torch.from_numpy(x), torch.from_numpy(model.predict(x)))
    assert [0] + seen == checkpoints(100)


class Rising(Model):
    """Logits [4, c, 0, 0] whatever x, c = 0.01 * the forward passes so far: the loss of class
    0 rises at every step of an attack, and the class stays 0 for 400 passes (100 steps take
    about 200). Its pullback is w[:, 1] on every pixel (a nonzero gradient to follow)."""

    input_shape, device = (1, 8, 8), None

    def __init__(self):
        self.passes = 0

    def batch_logits(self, x, rng=None):
        self.passes += 1
        z = get_array_module(x).zeros((len(x), 4), dtype=x.dtype)
        z[:, 0], z[:, 1] = 4, 0.01 * self.passes
        return z

    def batch_vjp(self, x, rng=None, taps=("logits",)):
        return ({"logits": self.batch_logits(x)},
                lambda grads: grads["logits"][:, 1].reshape(-1, 1, 1, 1) * (0 * x + 1))


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_the_step_size_halves_when_the_loss_stalls_and_not_while_it_rises(loss):
    """A constant model (its loss cannot rise): eta halves at each of the 8 checkpoints of 100
    steps, 2 eps / 2^8. A model whose loss rises every step: eta stays 2 eps."""
    x = images(np)
    y = np.zeros(6, dtype=np.int64)
    stalled = APGD(0.1, loss=loss, steps=100).generate(tiny_model(np, constant=True), x, y)
    np.testing.assert_allclose(stalled.info["step_size"], 0.2 / 2 ** 8)
    rising = APGD(0.1, loss=loss, steps=100).generate(Rising(), x, y)
    assert not rising.success.any()
    np.testing.assert_allclose(rising.info["step_size"], 0.2)


# ------------------------------------------------------------------ the contract

@pytest.mark.parametrize("attack", [APGD(0.1, steps=5), APGD(0.5, norm="l2", steps=5),
                                    APGD(0.1, loss="dlr", steps=5, restarts=2),
                                    APGD(0.5, norm="l2", loss="reject_dlr", steps=5)],
                         ids=["linf-ce", "l2-ce", "linf-dlr-restarts", "l2-reject"])
def test_contract_on_every_backend(xp, attack):
    """float32 images, float64 model: x unchanged; x_adv float32 on x's device, in [0, 1] and
    in the ball; success is the criterion on the logits of x_adv; the same seed gives the same
    images, another seed others."""
    model, x = tiny_model(xp, dtype=np.float64), images(xp)
    before = to_numpy(x).copy()
    result = attack.generate(model, x)
    assert np.array_equal(to_numpy(x), before)
    assert result.x_adv.dtype == np.float32 and device_of(result.x_adv) == device_of(x)
    x_adv = to_numpy(result.x_adv)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (to_numpy(result.norms[attack.norm]) <= attack.eps * (1 + 1e-6) + 1e-7).all()
    y = model.predict(x)
    criterion = (MisclassificationNotRejected if attack.loss == "reject_dlr"
                 else Misclassification)(y)
    np.testing.assert_array_equal(to_numpy(result.success),
                                  to_numpy(criterion(model.logits(result.x_adv))))
    again = attack.generate(model, x).x_adv
    assert np.array_equal(to_numpy(again), x_adv)
    other = APGD(**{**attack.settings(), "seed": 1}).generate(model, x).x_adv
    assert not np.array_equal(to_numpy(other), x_adv)


def test_targeted_with_and_without_a_target(trained_digits):
    """With a target: success = reaching it. Without (APGD-T over the best other classes):
    success = misclassified, and no target in the result."""
    model, x, y = trained_digits
    x, y = x[:20], y[:20]
    target = (y + 1) % 10
    towards = APGD(0.3, loss="dlr", targeted=True, steps=20).generate(model, x, y, target)
    np.testing.assert_array_equal(towards.success, model.predict(towards.x_adv) == target)
    assert towards.success.mean() > 0.5
    any_other = APGD(0.1, loss="dlr", targeted=True, steps=20, n_target_classes=3).generate(
        model, x, y)
    assert any_other.target is None
    np.testing.assert_array_equal(any_other.success, model.predict(any_other.x_adv) != y)


def test_an_image_already_adversarial_is_returned_as_it_is():
    model, x = tiny_model(np), images(np)
    y = model.predict(x)
    y[0] = (y[0] + 1) % 5
    result = APGD(0.1, steps=5).generate(model, x, y)
    assert np.array_equal(result.x_adv[0], x[0]) and result.success[0]
    assert result.queries[0] == 1


def test_a_constant_model_fails_with_a_zero_gradient():
    result = APGD(0.1, steps=5).generate(tiny_model(np, constant=True), images(np))
    assert not result.success.any()
    assert (result.info["failure"] == "zero gradient").all()


@pytest.mark.parametrize("attack", [APGD(0.1, steps=7), APGD(0.1, steps=7, restarts=3),
                                    APGD(0.1, loss="dlr", targeted=True, steps=4)])
def test_queries_count_every_image_the_model_sees(attack):
    model, x = Counting(tiny_model(np)), images(np)
    result = attack.generate(model, x)
    assert int(result.queries.sum()) == model.seen


def test_query_counts_when_nothing_succeeds():
    """y given: the logits at x, then per run the start's logits and 2 per step."""
    model, x = tiny_model(np, constant=True), images(np)
    y = model.predict(x)
    assert (APGD(0.1, steps=7).generate(model, x, y).queries == 1 + 1 + 2 * 7).all()
    assert (APGD(0.1, steps=7, restarts=3).generate(model, x, y).queries == 1 + 3 * 15).all()


@pytest.mark.parametrize("make, message", [
    (lambda: APGD(0), "eps"), (lambda: APGD(-0.1), "eps"),
    (lambda: APGD(0.1, norm="l1"), "norm"), (lambda: APGD(0.1, loss="hinge"), "loss"),
    (lambda: APGD(0.1, steps=0), "steps"), (lambda: APGD(0.1, restarts=0), "restarts"),
    (lambda: APGD(0.1, rho=0), "rho"), (lambda: APGD(0.1, rho=1), "rho"),
    (lambda: APGD(0.1, n_target_classes=0), "n_target_classes"),
    (lambda: APGD(0.1, loss="reject_dlr", targeted=True), "untargeted"),
    (lambda: APGD(0.1, restarts=2, random_start=False), "random_start"),
])
def test_bad_settings_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_too_few_classes_for_the_dlr_are_refused():
    """The tiny model has 5 logits: enough for the DLR (3) and the targeted DLR (4); a model of
    3 is too few for the targeted one."""
    from nnscratch.layers import Dense, Flatten
    from nnscratch.model import Sequential
    model = Sequential([Flatten(), Dense(64, 3, rng=np.random.default_rng(0))],
                       input_shape=(1, 8, 8))
    x = images(np)
    y = model.predict(x)
    with pytest.raises(ValueError, match="loss='dlr' needs logits of at least 4 classes"):
        APGD(0.1, loss="dlr", targeted=True).generate(model, x, y, (y + 1) % 3)


def test_a_target_needs_targeted_true():
    model, x = tiny_model(np), images(np)
    with pytest.raises(ValueError, match="targeted=True"):
        APGD(0.1).generate(model, x, target=np.zeros(6, dtype=np.int64))


# ------------------------------------------------------------------ torchattacks

@pytest.fixture(scope="module")
def trained_digits(small_cnn_on_digits):
    x, y = data.load("digits", split="test", limit=100)
    return small_cnn_on_digits, x, y


def torchattacks_broken(attack, net, x, y):
    """(N,) bool: torchattacks' adversarial images misclassified by the twin."""
    import torch
    adv = attack(torch.from_numpy(x), torch.from_numpy(y))
    with torch.no_grad():
        return net(adv).argmax(1).numpy() != y


@pytest.mark.parametrize("loss, targeted", [("ce", False), ("dlr", False), ("dlr", True)])
def test_robust_accuracy_is_torchattacks(trained_digits, loss, targeted):
    """L-inf eps 0.1, 100 steps, one random start each (from different generators), 100 test
    images. Measured: robust accuracy CE 0.66 vs 0.67, DLR 0.67 vs 0.67, APGD-T (DLR, 9
    targets) 0.65 vs 0.65; asserted: within 2 points."""
    torch = pytest.importorskip("torch")
    torchattacks = pytest.importorskip("torchattacks")
    from torch_twin import twin
    torch.set_num_threads(1)
    model, x, y = trained_digits
    net = twin(model)
    ours = APGD(0.1, loss=loss, targeted=targeted, steps=100).generate(model, x, y)
    reference = (torchattacks.APGDT(net, eps=0.1, steps=100, n_classes=10) if targeted else
                 torchattacks.APGD(net, eps=0.1, steps=100, loss=loss))
    theirs = torchattacks_broken(reference, net, x, y)
    assert 0.2 < theirs.mean() < 0.8
    assert abs(ours.success.mean() - theirs.mean()) <= 0.02


@pytest.mark.parametrize("norm, eps, loss, targeted", [
    ("linf", 0.1, "ce", False), ("linf", 0.1, "dlr", False), ("linf", 0.1, "dlr", True),
    ("l2", 0.5, "ce", False), ("l2", 0.5, "dlr", False)])
def test_from_the_same_start_the_same_images_are_broken(trained_digits, monkeypatch, norm, eps,
                                                        loss, targeted):
    """The images the twin classifies right (98 of 100). L-inf: torchattacks' torch.rand
    replaced by the draws ``APGD.start`` makes from new_rng(0) (one per run, on the images
    still running, in the same order); L2: its torch.randn by zeros, a start at x, as
    random_start=False. Measured: the same images broken in all five (32, 31, 33, 31 and 31 of
    98); asserted: the same. APGD-T in L2 is left out: torchattacks 3.5.1 steps every image
    there by the first image's step size."""
    torch = pytest.importorskip("torch")
    torchattacks = pytest.importorskip("torchattacks")
    from torch_twin import twin
    torch.set_num_threads(1)
    model, x, y = trained_digits
    right = model.predict(x) == y
    x, y = x[right], y[right]
    net = twin(model)
    draws = np.random.default_rng(0)
    monkeypatch.setattr(torch, "rand", lambda shape: torch.from_numpy(
        draws.random(tuple(shape), dtype=np.float32)))
    monkeypatch.setattr(torch, "randn", lambda shape: torch.zeros(tuple(shape)))
    ours = APGD(eps, norm=norm, loss=loss, targeted=targeted, steps=100,
                random_start=norm == "linf").generate(model, x, y)
    name = {"linf": "Linf", "l2": "L2"}[norm]
    reference = (torchattacks.APGDT(net, norm=name, eps=eps, steps=100, n_classes=10)
                 if targeted else torchattacks.APGD(net, norm=name, eps=eps, steps=100,
                                                    loss=loss))
    theirs = torchattacks_broken(reference, net, x, y)
    assert 0 < theirs.mean() < 1
    np.testing.assert_array_equal(ours.success, theirs)
