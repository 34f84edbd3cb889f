"""Papernot et al.'s black-box attack (nnscratch/attacks/substitute.py): substitute training
doubles its set each round by the Jacobian step of its sign schedule, with one oracle query per
labelled point, and learns to agree with a trained oracle; TransferAttack hands on the images
of the attack it wraps, made on the substitute, and judges them on the target; bad input is
refused."""

import numpy as np
import pytest

from nnscratch import data, zoo
from nnscratch.attacks import FGSM, PGD, HotCold, TransferAttack, train_substitute
from nnscratch.attacks.substitute import jacobian_augmentation
from nnscratch.backend import device_of, to_numpy
from nnscratch.layers import Dense, Flatten
from nnscratch.model import Sequential

from test_attacks import Counting, images, tiny_model


def linear(W, b):
    """z = flatten(x) @ W + b on 2x2 images: the Jacobian row of class k is W[:, k]."""
    model = Sequential([Flatten(), Dense(4, W.shape[1])], input_shape=(1, 2, 2))
    model.layers[1].params.update(W=np.asarray(W, np.float32), b=np.asarray(b, np.float32))
    return model


ORACLE_W = np.array([[1.0, -1.0], [-0.5, 0.7], [0.3, 0.2], [-1.1, 0.4]])
ORACLE_B = np.array([0.05, 0.0])
SUBSTITUTE_W = np.array([[2.0, -1.5], [-2.0, 1.5], [2.0, 1.5], [-2.0, -1.5]])
SEEDS = np.random.default_rng(0).random((3, 1, 2, 2)).astype(np.float32)


def expected_set(steps):
    """S grown by hand: each round adds S + step * sign(W_s[:, O(x)]), O the oracle's label."""
    x = SEEDS
    for step in steps:
        labels = (x.reshape(len(x), 4) @ ORACLE_W + ORACLE_B).argmax(axis=1)
        moves = np.sign(SUBSTITUTE_W[:, labels].T).reshape(x.shape).astype(np.float32)
        x = np.concatenate([x, x + np.float32(step) * moves])
    return x


def test_the_set_doubles_by_the_jacobian_step_of_the_schedule_one_query_per_point():
    """A linear substitute whose Jacobian signs are fixed (its weights far from zero, lr 1e-9:
    training moves them by ~1e-8): the set it grows is the hand-made one, bit for bit."""
    oracle = Counting(linear(ORACLE_W, ORACLE_B))
    substitute = linear(SUBSTITUTE_W, [0.0, 0.0])
    record = train_substitute(oracle, substitute, SEEDS, rounds=5, epochs=2, lam=0.1,
                              lr=1e-9, progress=False)
    assert record["sizes"] == [3, 6, 12, 24, 48]
    assert record["steps"] == [-0.1, -0.1, -0.1, 0.1]         # cleverhans: flips after round 2
    np.testing.assert_array_equal(record["x"], expected_set(record["steps"]))
    assert record["x"].min() < 0 < 1 < record["x"].max()      # not clipped, as cleverhans
    np.testing.assert_array_equal(record["y"], oracle.model.predict(record["x"]))
    assert record["queries"] == oracle.seen == 48               # each point labelled once
    assert record["accuracy"] is None
    constant = train_substitute(oracle, substitute, SEEDS, rounds=3, epochs=1, flip_round=0,
                                lr=1e-9, progress=False)
    assert constant["steps"] == [0.1, 0.1]                     # the paper's constant step
    np.testing.assert_array_equal(constant["x"], expected_set([0.1, 0.1]))


def test_jacobian_augmentation_follows_the_row_of_the_label(xp):
    substitute = linear(SUBSTITUTE_W, [0.0, 0.0]).to(device_of(xp.zeros(0)))
    x, labels = xp.asarray(SEEDS), xp.asarray(np.array([1, 0, 1]))
    moved = to_numpy(jacobian_augmentation(substitute, x, labels, -0.25))
    rows = np.sign(SUBSTITUTE_W[:, [1, 0, 1]].T).reshape(3, 1, 2, 2)
    np.testing.assert_array_equal(moved, SEEDS - np.float32(0.25) * rows.astype(np.float32))


def test_substitute_training_runs_where_the_models_are(xp):
    """Oracle and substitute on the device (the stand-in checks every array op); the training
    set stays NumPy, as ``training.fit`` takes it."""
    device = device_of(xp.zeros(0))
    oracle, substitute = tiny_model(xp), zoo.build("substitute_mlp", input_shape=(1, 8, 8),
                                                   num_classes=5).to(device)
    record = train_substitute(oracle, substitute, to_numpy(images(xp, n=4)), rounds=2,
                              epochs=1, progress=False)
    assert record["sizes"] == [4, 8] and record["queries"] == 8
    assert isinstance(record["x"], np.ndarray) and record["x"].dtype == np.float32


@pytest.fixture(scope="module")
def digits_substitute(small_cnn_on_digits):
    """substitute_mlp trained by the oracle small_cnn_on_digits from 100 seeds of digits' test
    split (3 rounds: 400 points), measured on the other 259 against the oracle's labels."""
    x, y = data.load("digits", split="test")
    oracle = small_cnn_on_digits
    substitute = zoo.build("substitute_mlp", input_shape=(1, 8, 8), num_classes=10)
    held_out = (x[100:], oracle.predict(x[100:]))
    record = train_substitute(oracle, substitute, x[:100], rounds=3, epochs=10,
                              validation=held_out, progress=False)
    return oracle, substitute, record, x[100:], y[100:]


def test_the_substitute_agrees_with_the_oracle_well_above_chance(digits_substitute):
    """Measured: agreement 0.50, 0.81, 0.88 after rounds 0-2 (0.86 and 0.86 after round 2
    for substitute seeds 1 and 2; chance: about 0.1)."""
    _, _, record, _, _ = digits_substitute
    assert record["sizes"] == [100, 200, 400] and record["queries"] == 400
    assert record["accuracy"][-1] > 0.75


def test_transfer_hands_on_the_inner_attacks_images_and_judges_them_on_the_target(
        digits_substitute):
    """Measured: FGSM 0.3 made on the substitute fools the oracle on 39 of 40 images (40 of 40
    for substitute seeds 1 and 2)."""
    oracle, substitute, _, x, y = digits_substitute
    x, y = x[:40], y[:40]
    result = TransferAttack(substitute, FGSM(0.3)).generate(oracle, x, y)
    inner = FGSM(0.3).generate(substitute, x, y)
    np.testing.assert_array_equal(result.x_adv, inner.x_adv)
    np.testing.assert_array_equal(result.success, oracle.predict(result.x_adv) != y)
    np.testing.assert_array_equal(result.info["substitute_result"].success, inner.success)
    np.testing.assert_array_equal(result.queries, 1)            # the final prediction only
    assert result.success_rate > 0.8
    defaulted = TransferAttack(substitute, FGSM(0.3)).generate(oracle, x)
    np.testing.assert_array_equal(defaulted.queries, 2)         # and y, the oracle's labels
    np.testing.assert_array_equal(
        defaulted.x_adv, FGSM(0.3).generate(substitute, x, oracle.predict(x)).x_adv)


def test_a_targeted_transfer_succeeds_where_the_target_says_the_target_class(xp):
    """A substitute with the target's weights: the transfer is the white-box attack."""
    target_model, substitute = tiny_model(xp), tiny_model(xp)
    x = images(xp)
    y, t = target_model.predict(x), (target_model.predict(x) + 1) % 5
    attack = PGD(0.5, steps=5, targeted=True)
    result = TransferAttack(substitute, attack).generate(target_model, x, y, target=t)
    assert np.array_equal(to_numpy(result.x_adv),
                          to_numpy(attack.generate(substitute, x, y, target=t).x_adv))
    assert np.array_equal(to_numpy(result.success),
                          to_numpy(target_model.predict(result.x_adv) == t))
    assert to_numpy(result.success).all()
    substitute.layers[0].params["W"] *= -1                      # another model: none transfer
    result = TransferAttack(substitute, attack).generate(target_model, x, y, target=t)
    assert not to_numpy(result.success).any()
    assert to_numpy(result.info["substitute_result"].success).all()


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("options, error, message", [
    ({"rounds": 0}, ValueError, r"^rounds must be a positive integer, got 0"),
    ({"lam": -0.1}, ValueError, r"^lam must be a finite number > 0, got -0\.1"),
    ({"flip_round": -1}, ValueError, r"^flip_round must be an integer >= 0"),
    ({"lr": 0.0}, ValueError, r"^lr must be a finite number > 0"),
    ({"seed_images": SEEDS + 1}, ValueError, r"^seed_images must have values in \[0, 1\]"),
    ({"seed_images": SEEDS[:0]}, ValueError, r"^seed_images must hold at least one image"),
    ({"substitute": linear(np.ones((4, 3)), np.zeros(3))}, ValueError,
     r"^the substitute has 3 classes, the oracle 2: they must have the same"),
    ({"oracle": "api"}, TypeError, r"^oracle and substitute must be models"),
    ({"validation": (SEEDS, np.zeros(2, np.int64))}, ValueError,
     r"^validation needs as many labels as images"),
])
def test_train_substitute_refuses_bad_input(options, error, message):
    arguments = {"oracle": linear(ORACLE_W, ORACLE_B), "seed_images": SEEDS,
                 "substitute": linear(SUBSTITUTE_W, [0.0, 0.0]), "progress": False, **options}
    with pytest.raises(error, match=message):
        train_substitute(**arguments)


def test_transfer_attack_refuses_bad_input():
    model, x = tiny_model(np), images(np)
    with pytest.raises(TypeError, match="^substitute must be a model"):
        TransferAttack(x, FGSM(0.1))
    with pytest.raises(TypeError, match="^attack must be an attack"):
        TransferAttack(model, "fgsm")
    with pytest.raises(ValueError, match="^HotCold makes its own rows"):
        TransferAttack(model, HotCold("hc", "l2"))
    with pytest.raises(ValueError, match=r"pass targeted=True to FGSM\(\.\.\.\)"):
        TransferAttack(model, FGSM(0.1)).generate(model, x, target=model.predict(x))
