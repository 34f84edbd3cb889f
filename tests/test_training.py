"""fit(): learning, schedules, early stopping, and checkpoints that survive SIGKILL."""

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from nnscratch.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from nnscratch.model import Sequential
from nnscratch.optim import SGD, Adam, StepLR, make_schedule
from nnscratch.training import CHECKPOINT, fit

REPO = Path(__file__).resolve().parents[1]

# The model and data of the subprocess runs and of the in-process ones: a small CNN with
# dropout on scikit-learn's digits (embedded, no download).
SETUP = textwrap.dedent("""
    import numpy as np
    from sklearn.datasets import load_digits
    from nnscratch.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
    from nnscratch.model import Sequential
    from nnscratch.optim import SGD

    digits = load_digits()
    x = (digits.images / 16).astype(np.float32)[:, None]     # (1797, 1, 8, 8)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(0)
    model = Sequential([Conv2D(1, 8, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2),
                        Dropout(0.25), Flatten(), Dense(128, 32, rng=rng), ReLU(),
                        Dense(32, 10, rng=rng)], input_shape=(1, 8, 8))
    optimizer = SGD(model, lr=0.05, momentum=0.9)
""")


def run_script(body, *args):
    return subprocess.Popen([sys.executable, "-c", SETUP + textwrap.dedent(body), *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


TRAIN = """
    import sys
    from nnscratch import io
    from nnscratch.training import fit
    out = sys.argv[1]
    fit(model, optimizer, (x[:1500], y[:1500]), epochs=int(sys.argv[2]), batch_size=16,
        validation=(x[1500:], y[1500:]), seed=3, checkpoint_dir=out, resume=True,
        progress=False)
    io.save(model, out + "/final.npz")
"""


def test_resume_after_sigkill_gives_bitwise_the_same_weights(tmp_path):
    epochs = 12
    straight = run_script(TRAIN, str(tmp_path / "straight"), str(epochs))
    assert straight.wait(timeout=300) == 0, straight.stderr.read().decode()

    interrupted = tmp_path / "interrupted"
    victim = run_script(TRAIN, str(interrupted), str(epochs))
    checkpoint = interrupted / CHECKPOINT
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)                                    # into the next epoch
    assert victim.poll() is None, "the run finished before it could be interrupted"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    with np.load(checkpoint, allow_pickle=False) as archive:
        reached = json.loads(str(archive["meta"]))["epoch"] + 1
    assert 1 <= reached < epochs
    assert not (interrupted / "final.npz").exists()
    # A kill during a checkpoint write may leave that write's temporary file (never the
    # checkpoint half-written, as loading it above shows); resuming removes it.

    resumed = run_script(TRAIN, str(interrupted), str(epochs))
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    assert not list(interrupted.glob("*.tmp"))
    with np.load(tmp_path / "straight" / "final.npz") as a, \
            np.load(interrupted / "final.npz") as b:
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def digits_model(dropout=0.25, seed=0):
    rng = np.random.default_rng(seed)
    return Sequential([Conv2D(1, 8, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2),
                       Dropout(dropout), Flatten(), Dense(128, 32, rng=rng), ReLU(),
                       Dense(32, 10, rng=rng)], input_shape=(1, 8, 8))


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    data = load_digits()
    return (data.images / 16).astype(np.float32)[:, None], data.target.astype(np.int64)


def test_fit_learns_and_reports_history(digits):
    x, y = digits
    model = digits_model()
    history = fit(model, Adam(model, lr=0.01), (x[:1500], y[:1500]), epochs=4,
                  batch_size=32, validation=(x[1500:], y[1500:]), progress=False)
    assert history["epoch"] == [1, 2, 3, 4]
    assert set(history) == {"epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy",
                            "seconds"}
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] > 0.85
    assert (model.predict(x[1500:]) == y[1500:]).mean() == pytest.approx(
        history["val_accuracy"][-1])


def test_same_seed_same_weights_other_seed_other_weights(digits):
    x, y = digits
    runs = []
    for seed in (1, 1, 2):
        model = digits_model()
        fit(model, SGD(model, 0.05, momentum=0.9), (x[:300], y[:300]), epochs=2,
            batch_size=32, seed=seed, progress=False)
        runs.append(model.layers[0].params["W"].copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_schedule_sets_the_learning_rate_per_epoch(digits):
    x, y = digits
    model = digits_model()
    history = fit(model, SGD(model, 0.1), (x[:64], y[:64]), epochs=5, batch_size=32,
                  schedule=StepLR(step_size=2, gamma=0.5), progress=False)
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_early_stopping_stops_and_restores_the_best_weights(digits):
    x, y = digits
    model = digits_model()
    # plain SGD with a large step: it learns, then validation accuracy wobbles and stalls
    history = fit(model, SGD(model, 0.5), (x[:500], y[:500]), epochs=30, batch_size=50,
                  validation=(x[1500:], y[1500:]), early_stopping=2, progress=False)
    assert 3 < len(history["epoch"]) < 30
    best = max(history["val_accuracy"])
    assert history["val_accuracy"].index(best) == len(history["epoch"]) - 3
    assert (model.predict(x[1500:]) == y[1500:]).mean() == pytest.approx(best)


def test_bad_arguments_are_clear_errors(digits, tmp_path):
    x, y = digits
    model = digits_model()
    optimizer = SGD(model, 0.1)
    with pytest.raises(ValueError, match="as many labels"):
        fit(model, optimizer, (x[:10], y[:9]), epochs=1, progress=False)
    with pytest.raises(ValueError, match="early_stopping needs validation"):
        fit(model, optimizer, (x, y), epochs=1, early_stopping=3, progress=False)
    with pytest.raises(ValueError, match="floating point"):
        fit(model, optimizer, ((x * 16).astype(np.int64), y), epochs=1, progress=False)
    with pytest.raises(ValueError, match="needs a checkpoint_dir"):
        fit(model, optimizer, (x, y), epochs=1, resume=True, progress=False)
    fit(model, optimizer, (x[:32], y[:32]), epochs=1, checkpoint_dir=tmp_path, seed=0,
        progress=False)
    with pytest.raises(ValueError, match="seed 0, not 1"):
        fit(model, optimizer, (x[:32], y[:32]), epochs=2, checkpoint_dir=tmp_path, seed=1,
            resume=True, progress=False)


def test_warmup_ramps_the_rate_over_the_first_steps(digits):
    x, y = digits
    model = digits_model()
    rates = []

    class RecordingSGD(SGD):
        def step(self):
            rates.append(self.lr)
            super().step()

    history = fit(model, RecordingSGD(model, 0.1), (x[:64], y[:64]), epochs=3, batch_size=16,
                  warmup_steps=6, progress=False)
    assert rates == pytest.approx([0.1 * k / 6 for k in range(1, 7)] + [0.1] * 6)
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.1])


def test_resume_refuses_a_run_that_would_not_continue_the_same_one(digits, tmp_path):
    x, y = digits
    train = (x[:64], y[:64])
    model = digits_model()
    cosine = make_schedule("cosine", 3)
    fit(model, SGD(model, 0.1), train, epochs=2, batch_size=16, schedule=cosine,
        checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="batch_size 16, not 32"):
        fit(model, SGD(model, 0.1), train, epochs=3, batch_size=32, schedule=cosine,
            checkpoint_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="train_images 64, not 48"):
        fit(model, SGD(model, 0.1), (x[:48], y[:48]), epochs=3, batch_size=16,
            schedule=cosine, checkpoint_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="another schedule or number of epochs"):
        fit(model, SGD(model, 0.1), train, epochs=5, batch_size=16,
            schedule=make_schedule("cosine", 5), checkpoint_dir=tmp_path, resume=True,
            progress=False)
    history = fit(model, SGD(model, 0.1), train, epochs=3, batch_size=16, schedule=cosine,
                  checkpoint_dir=tmp_path, resume=True, progress=False)
    assert history["epoch"] == [1, 2, 3]
    with np.load(tmp_path / CHECKPOINT) as archive:      # as written before plans were kept
        arrays = dict(archive)
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({k: v for k, v in meta.items() if k != "plan"}))
    np.savez(tmp_path / CHECKPOINT, **arrays)
    with pytest.raises(ValueError, match="start the run afresh"):
        fit(model, SGD(model, 0.1), train, epochs=3, batch_size=16, schedule=cosine,
            checkpoint_dir=tmp_path, resume=True, progress=False)


def test_resume_may_train_longer_at_a_constant_rate(digits, tmp_path):
    x, y = digits
    model = digits_model()
    fit(model, SGD(model, 0.1), (x[:64], y[:64]), epochs=2, batch_size=16,
        checkpoint_dir=tmp_path, progress=False)
    debris = tmp_path / f".{CHECKPOINT}.0badc0de.tmp"   # a write that a kill cut short
    debris.write_bytes(b"PK\x03")
    history = fit(model, SGD(model, 0.1), (x[:64], y[:64]), epochs=4, batch_size=16,
                  checkpoint_dir=tmp_path, resume=True, progress=False)
    assert history["epoch"] == [1, 2, 3, 4]
    assert not debris.exists()


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_a_diverging_run_stops_with_a_message_and_saves_nothing(digits, tmp_path):
    """A rate so large that the loss overflows: fit says so, before any checkpoint is written."""
    x, y = digits
    model = digits_model()
    with pytest.raises(ValueError, match="training diverged: the loss became .* lower the "
                                         "learning rate"):
        fit(model, SGD(model, 1e30), (x[:64], y[:64]), epochs=3, batch_size=16,
            checkpoint_dir=tmp_path, progress=False)
    assert not (tmp_path / CHECKPOINT).exists()
