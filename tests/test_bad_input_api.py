"""Nonsense given to the API is refused where it is given, with an error that names the
argument (or the file) and says what is expected: never a raw traceback from deep inside, never
a run that "succeeds" having done nothing.

Grouped by module. Each case states the exception type and what its message must say. The
rule throughout: a value of the wrong kind (a string, None, a list where a number or an array
goes) is a TypeError; a number out of range, not whole, NaN or inf is a ValueError; a file
that cannot be read is a ValueError naming it (a missing file or a folder: the usual OSError).
"""

import json
import math
import re
import tracemalloc

import numpy as np
import pytest

from nnscratch import data, io, zoo
from nnscratch.data.subsets import balanced_indices, first_n_per_class
from nnscratch.layers import (AvgPool2D, Conv2D, Conv2DTranspose, Dense, Dropout, Flatten,
                              GaussianBlur, LeakyReLU, MaxPool2D, ReLU, Reshape, Tanh)
from nnscratch.model import Sequential
from nnscratch.optim import SGD, Adam, CosineLR, StepLR, make_optimizer, make_schedule
from nnscratch.training import CHECKPOINT, fit, load_checkpoint

NAN, INF = math.nan, math.inf


# ------------------------------------------------------------------ layers: the constructors

@pytest.mark.parametrize("make, error, message", [
    # Conv2D: channels, kernel and stride are positive integers; padding "valid", "same" or >= 0
    (lambda: Conv2D(1, 4, 3, stride=0), ValueError,
     r"Conv2D: stride must be a positive integer, got 0"),
    (lambda: Conv2D(1, 4, 3, stride=-1), ValueError, r"Conv2D: stride .* got -1"),
    (lambda: Conv2D(1, 4, 3, stride=1.5), ValueError, r"Conv2D: stride .* got 1\.5"),
    (lambda: Conv2D(1, 4, 3, stride=INF), ValueError, r"Conv2D: stride .* got inf"),
    (lambda: Conv2D(1, 4, 3, stride="2"), TypeError, r"Conv2D: stride .* got '2'"),
    (lambda: Conv2D(1, 4, 0), ValueError, r"Conv2D: kernel_size must be a positive integer, got 0"),
    (lambda: Conv2D(1, 4, -3), ValueError, r"Conv2D: kernel_size .* got -3"),
    (lambda: Conv2D(1, 4, (3, 0)), ValueError, r"Conv2D: kernel_size .* got 0"),
    (lambda: Conv2D(1, 4, 2.5), ValueError, r"Conv2D: kernel_size .* got 2\.5"),
    (lambda: Conv2D(1, 4, None), TypeError, r"Conv2D: kernel_size .* got None"),
    (lambda: Conv2D(1, 4, (3, 3, 3)), ValueError, r"Conv2D: kernel_size must be an int or a pair"),
    (lambda: Conv2D(1, 4, 3, padding="bogus"), ValueError,
     r"Conv2D: padding must be 'valid', 'same' or integers, got 'bogus'"),
    (lambda: Conv2D(1, 4, 3, padding=-1), ValueError,
     r"Conv2D: padding must be an integer >= 0, got -1"),
    (lambda: Conv2D(1, 4, 3, padding=(1, -2)), ValueError, r"Conv2D: padding .* got -2"),
    (lambda: Conv2D(1, 4, 3, padding=None), TypeError, r"Conv2D: padding .* got None"),
    (lambda: Conv2D(1, 4, 3, stride=2, padding="same"), ValueError,
     r"padding='same' needs stride 1"),
    (lambda: Conv2D(0, 4, 3), ValueError, r"Conv2D: in_channels must be a positive integer, got 0"),
    (lambda: Conv2D(-1, 4, 3), ValueError, r"Conv2D: in_channels .* got -1"),
    (lambda: Conv2D(1.5, 4, 3), ValueError, r"Conv2D: in_channels .* got 1\.5"),
    (lambda: Conv2D(1, 0, 3), ValueError,
     r"Conv2D: out_channels must be a positive integer, got 0"),
    (lambda: Conv2D(1, -4, 3), ValueError, r"Conv2D: out_channels .* got -4"),
    (lambda: Conv2D(True, 4, 3), TypeError, r"Conv2D: in_channels .* got True"),
    # Dense: positive integer sizes
    (lambda: Dense(0, 5), ValueError, r"Dense: in_features must be a positive integer, got 0"),
    (lambda: Dense(-1, 5), ValueError, r"Dense: in_features .* got -1"),
    (lambda: Dense(2.5, 5), ValueError, r"Dense: in_features .* got 2\.5"),
    (lambda: Dense(NAN, 5), ValueError, r"Dense: in_features .* got nan"),
    (lambda: Dense("4", 5), TypeError, r"Dense: in_features .* got '4'"),
    (lambda: Dense(None, 5), TypeError, r"Dense: in_features .* got None"),
    (lambda: Dense(4, 0), ValueError, r"Dense: out_features .* got 0"),
    # pooling: positive integer window and stride
    (lambda: MaxPool2D(0), ValueError, r"MaxPool2D: kernel_size must be a positive integer, got 0"),
    (lambda: AvgPool2D(-1), ValueError, r"AvgPool2D: kernel_size .* got -1"),
    (lambda: MaxPool2D(2, stride=0), ValueError, r"MaxPool2D: stride .* got 0"),
    (lambda: MaxPool2D(2.0), ValueError, r"MaxPool2D: kernel_size .* got 2\.0"),
    (lambda: AvgPool2D("2"), TypeError, r"AvgPool2D: kernel_size .* got '2'"),
    # Dropout: a probability in [0, 1)
    (lambda: Dropout(1.0), ValueError, r"Dropout: p must be a number in \[0, 1\), got 1\.0"),
    (lambda: Dropout(-0.1), ValueError, r"Dropout: p .* got -0\.1"),
    (lambda: Dropout(NAN), ValueError, r"Dropout: p .* got nan"),
    (lambda: Dropout(INF), ValueError, r"Dropout: p .* got inf"),
    (lambda: Dropout("0.5"), TypeError, r"Dropout: p .* got '0\.5'"),
    (lambda: Dropout(None), TypeError, r"Dropout: p .* got None"),
    # GaussianBlur: sigma > 0 and finite; radius an integer >= 0
    (lambda: GaussianBlur(0), ValueError,
     r"GaussianBlur: sigma must be a finite number > 0, got 0"),
    (lambda: GaussianBlur(-1.25), ValueError, r"GaussianBlur: sigma .* got -1\.25"),
    (lambda: GaussianBlur(NAN), ValueError, r"GaussianBlur: sigma .* got nan"),
    (lambda: GaussianBlur(INF), ValueError, r"GaussianBlur: sigma .* got inf"),
    (lambda: GaussianBlur("1"), TypeError, r"GaussianBlur: sigma .* got '1'"),
    (lambda: GaussianBlur(1.0, radius=-1), ValueError,
     r"GaussianBlur: radius must be an integer >= 0"),
    (lambda: GaussianBlur(1.0, radius=1.5), ValueError, r"GaussianBlur: radius .* got 1\.5"),
    # LeakyReLU: a finite slope >= 0
    (lambda: LeakyReLU(NAN), ValueError, r"LeakyReLU: alpha must be a finite number >= 0, got nan"),
    (lambda: LeakyReLU(-0.1), ValueError, r"LeakyReLU: alpha .* got -0\.1"),
    # Conv2DTranspose: a padding that leaves every input an output; Reshape: sizes >= 1
    (lambda: Conv2DTranspose(3, 4, 4, padding=2), ValueError,
     r"Conv2DTranspose: padding must be less than half the kernel \(4x4\), got 2"),
    (lambda: Conv2DTranspose(3, 4, 3, stride=0), ValueError, r"Conv2DTranspose: stride"),
    (lambda: Conv2DTranspose(0, 4, 3), ValueError, r"Conv2DTranspose: in_channels"),
    (lambda: Reshape((4, 0)), ValueError, r"Reshape: shape must be a positive integer, got 0"),
    (lambda: Reshape((4, 2.0)), ValueError, r"Reshape: shape"),
])
def test_layer_constructors_refuse_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_layers_take_numpy_integers_and_keep_plain_numbers_in_their_config():
    conv = Conv2D(np.int64(1), np.int32(4), (np.int64(3), 3), stride=np.int64(1))
    pool = MaxPool2D(np.int64(2))
    json.dumps([conv.config(), pool.config(), Dropout(np.float32(0.5)).config()])
    assert conv.params["W"].shape == (4, 1, 3, 3) and pool.stride == 2


# ------------------------------------------------------------------ Sequential

@pytest.mark.parametrize("make, error, message", [
    (lambda: Sequential([ReLU]), TypeError, r"Sequential takes Layer objects, got <class"),
    (lambda: Sequential([Dense(2, 2), "relu"]), TypeError, r"Layer objects, got 'relu'"),
    (lambda: Sequential([Dense(2, 2)], batch_size=0), ValueError,
     r"batch_size must be a positive integer, got 0"),
    (lambda: Sequential([Dense(2, 2)], batch_size=None), TypeError, r"batch_size .* got None"),
    (lambda: Sequential([Flatten()], input_shape=(1, 0, 8)), ValueError,
     r"input_shape: every size must be a positive integer, got 0"),
    (lambda: Sequential([Flatten()], input_shape=(1, "8", 8)), TypeError,
     r"input_shape: .* got '8'"),
])
def test_sequential_refuses_what_is_not_a_stack_of_layers(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ------------------------------------------------------------------ the model interface

def small_model(batch_size=256):
    rng = np.random.default_rng(0)
    return Sequential([Conv2D(1, 3, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2),
                       Dropout(0.5), Flatten(), Dense(3 * 4 * 4, 5, rng=rng), Tanh(),
                       Dense(5, 4, rng=rng)], input_shape=(1, 8, 8), batch_size=batch_size)


def images(n=3, seed=0):
    return np.random.default_rng(seed).random((n, 1, 8, 8)).astype(np.float32)


@pytest.mark.parametrize("n_samples, error", [(0, ValueError), (-1, ValueError),
                                              (2.5, ValueError), (INF, ValueError),
                                              ("3", TypeError), (None, TypeError)])
def test_mc_logits_needs_a_positive_whole_number_of_samples(n_samples, error):
    with pytest.raises(error, match=r"n_samples must be a positive integer, got"):
        small_model().mc_logits(images(), n_samples)


def test_mc_logits_takes_a_numpy_integer():
    assert small_model().mc_logits(images(), np.int64(2)).shape == (2, 3, 4)


@pytest.mark.parametrize("x, error, message", [
    (images().tolist(), TypeError, r"images must be an array, got list"),
    (None, TypeError, r"images must be an array, got NoneType"),
    ("x", TypeError, r"images must be an array, got str"),
    ((images() * 255).astype(np.uint8), ValueError, r"images must be floating point"),
    (np.zeros(0, dtype=np.float32), ValueError,
     r"expected input of shape \(N, 1, 8, 8\), got \(0,\)"),
    (np.zeros((2, 8, 8), dtype=np.float32), ValueError, r"expected input of shape \(N, 1, 8, 8\)"),
    (np.full((2, 1, 8, 8), np.nan, dtype=np.float32), ValueError, r"input contains NaN or inf"),
    (np.full((2, 1, 8, 8), -np.inf, dtype=np.float32), ValueError, r"input contains NaN or inf"),
])
def test_every_entry_point_refuses_what_is_not_a_batch_of_images(x, error, message):
    model = small_model()
    for call in (model.logits, model.predict, lambda v: model.jacobian(v),
                 lambda v: model.mc_logits(v, 2), lambda v: model.features(v, ["relu_1"])):
        with pytest.raises(error, match=message):
            call(x)


def test_images_outside_0_1_are_accepted_by_the_model():
    """A model may be used on normalised data; only attacks and defences, which clip to
    [0, 1], refuse such images (``Model.check_images``)."""
    model = small_model()
    x = images() * 3 - 1                                        # in [-1, 2]
    assert x.min() < 0 and x.max() > 1
    assert np.isfinite(model.logits(x)).all()
    losses, grad = model.loss_gradient(x, np.array([0, 1, 2]))
    assert losses.shape == (3,) and grad.shape == x.shape
    assert model.jacobian(x).shape == (3, 4, 1, 8, 8)


@pytest.mark.parametrize("y, error, message", [
    ([0, 1, 2], TypeError, r"labels must be an integer array \(3,\), got list"),
    (None, TypeError, r"labels must be an integer array \(3,\), got NoneType"),
    (np.array([0.0, 1.0, 2.0]), ValueError,
     r"labels must be integers of shape \(3,\), got float64"),
    (np.array([0, 1]), ValueError, r"labels must be integers of shape \(3,\), got int64 \(2,\)"),
    (np.zeros((3, 1), dtype=np.int64), ValueError, r"labels must be integers of shape \(3,\)"),
    (np.array([0, 1, 4]), ValueError, r"labels must be in \[0, 4\), got values from 0 to 4"),
    (np.array([-1, 1, 2]), ValueError, r"labels must be in \[0, 4\)"),
])
def test_loss_gradient_refuses_bad_labels(y, error, message):
    with pytest.raises(error, match=message):
        small_model().loss_gradient(images(), y)


@pytest.mark.parametrize("w, error, message", [
    ([[1.0] * 4] * 3, TypeError, r"w must be an array shaped like the logits, got list"),
    (np.ones((3, 5), dtype=np.float32), ValueError, r"w must have the shape of the logits"),
])
def test_logit_gradient_refuses_a_bad_weighting(w, error, message):
    with pytest.raises(error, match=message):
        small_model().logit_gradient(images(), w)


def test_unknown_device_and_unknown_tap_are_named():
    with pytest.raises(ValueError, match=r"device must be 'cpu' or 'gpu', got 'tpu'"):
        small_model().to("tpu")
    with pytest.raises(KeyError, match=r"no layer named 'dense_9'"):
        small_model().features(images(), ["dense_9"])


def test_jacobian_needs_the_result_and_one_batch_of_memory():
    """The Jacobian is written into its result batch by batch: memory beyond the result is
    that of one batch, whatever N (joining per-batch results would need twice the result)."""
    model = small_model(batch_size=32)
    x = np.random.default_rng(0).random((4096, 1, 8, 8)).astype(np.float32)
    model.jacobian(x[:32])                                      # warm-up: caches, imports
    tracemalloc.start()
    try:
        jac = model.jacobian(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert jac.shape == (4096, 4, 1, 8, 8)
    assert peak < jac.nbytes + jac.nbytes // 4, (peak, jac.nbytes)


# ------------------------------------------------------------------ optimizers and schedules

@pytest.mark.parametrize("make, error, message", [
    (lambda m: SGD(m, lr=NAN), ValueError,
     r"SGD: learning rate lr must be a finite number > 0, got nan"),
    (lambda m: SGD(m, lr=INF), ValueError, r"SGD: learning rate lr .* got inf"),
    (lambda m: Adam(m, lr=-INF), ValueError, r"Adam: learning rate lr .* got -inf"),
    (lambda m: Adam(m, lr=0), ValueError, r"Adam: learning rate lr .* got 0"),
    (lambda m: SGD(m, lr="0.1"), TypeError, r"SGD: learning rate lr .* got '0\.1'"),
    (lambda m: SGD(m, lr=None), TypeError, r"SGD: learning rate lr .* got None"),
    (lambda m: SGD(m, 0.1, momentum=-0.9), ValueError,
     r"SGD: momentum must be a finite number >= 0"),
    (lambda m: SGD(m, 0.1, momentum=NAN), ValueError, r"SGD: momentum .* got nan"),
    (lambda m: SGD(m, 0.1, momentum=INF), ValueError, r"SGD: momentum .* got inf"),
    (lambda m: SGD(m, 0.1, momentum="0.9"), TypeError, r"SGD: momentum .* got '0\.9'"),
    (lambda m: SGD(m, 0.1, weight_decay=-1e-4), ValueError, r"SGD: weight_decay must be a finite"),
    (lambda m: SGD(m, 0.1, weight_decay=NAN), ValueError, r"SGD: weight_decay .* got nan"),
    (lambda m: Adam(m, 0.1, weight_decay=INF), ValueError, r"Adam: weight_decay .* got inf"),
    (lambda m: Adam(m, 0.1, betas=(1.0, 0.999)), ValueError,
     r"Adam: betas\[0\] must be a number in \[0, 1\)"),
    (lambda m: Adam(m, 0.1, betas=(0.9, 1.5)), ValueError, r"Adam: betas\[1\] .* got 1\.5"),
    (lambda m: Adam(m, 0.1, betas=(-0.1, 0.999)), ValueError, r"Adam: betas\[0\] .* got -0\.1"),
    (lambda m: Adam(m, 0.1, betas=(NAN, 0.999)), ValueError, r"Adam: betas\[0\] .* got nan"),
    (lambda m: Adam(m, 0.1, betas=0.9), TypeError, r"Adam: betas must be a pair \(beta1, beta2\)"),
    (lambda m: Adam(m, 0.1, betas=(0.9,)), TypeError, r"Adam: betas must be a pair"),
    (lambda m: Adam(m, 0.1, eps=0), ValueError, r"Adam: eps must be a finite number > 0, got 0"),
    (lambda m: Adam(m, 0.1, eps=-1e-8), ValueError, r"Adam: eps .* got -1e-08"),
    (lambda m: Adam(m, 0.1, eps=NAN), ValueError, r"Adam: eps .* got nan"),
    (lambda m: SGD(m, 0.1, nesterov=True), ValueError, r"Nesterov momentum needs momentum > 0"),
    (lambda m: make_optimizer(m, "rmsprop", 0.1), ValueError, r"unknown optimizer 'rmsprop'"),
    (lambda m: StepLR(0), ValueError, r"StepLR: step_size must be a positive integer, got 0"),
    (lambda m: StepLR(2.5), ValueError, r"StepLR: step_size .* got 2\.5"),
    (lambda m: StepLR(2, gamma=NAN), ValueError, r"StepLR: gamma must be a finite number > 0"),
    (lambda m: CosineLR(0), ValueError, r"CosineLR: total_epochs must be a positive integer"),
    (lambda m: CosineLR(10, min_lr=-0.1), ValueError,
     r"CosineLR: min_lr must be a finite number >= 0"),
    (lambda m: make_schedule("step", 10), ValueError, r"unknown schedule 'step'"),
])
def test_optimizers_and_schedules_refuse_bad_settings(make, error, message):
    with pytest.raises(error, match=message):
        make(Sequential([Dense(3, 2, rng=0)]))


# ------------------------------------------------------------------ training: fit

@pytest.fixture(scope="module")
def digits():
    return data.load("digits", limit=64)


def fit_small(digits, **changes):
    """fit() on 64 digits with ``changes`` to its arguments; the checks run before any epoch."""
    model = zoo.build("small_cnn")
    arguments = dict(optimizer=SGD(model, 0.1), train_data=digits, epochs=1, batch_size=16,
                     progress=False)
    arguments.update(changes)
    return fit(model, **arguments)


@pytest.mark.parametrize("changes, error, message", [
    ({"epochs": -1}, ValueError, r"epochs must be a positive integer, got -1"),
    ({"epochs": 0}, ValueError, r"epochs must be a positive integer, got 0"),
    ({"epochs": 2.5}, ValueError, r"epochs .* got 2\.5"),
    ({"epochs": INF}, ValueError, r"epochs .* got inf"),
    ({"epochs": "3"}, TypeError, r"epochs .* got '3'"),
    ({"epochs": None}, TypeError, r"epochs .* got None"),
    ({"batch_size": -4}, ValueError, r"batch_size must be a positive integer, got -4"),
    ({"batch_size": 0}, ValueError, r"batch_size .* got 0"),
    ({"batch_size": 2.5}, ValueError, r"batch_size .* got 2\.5"),
    ({"batch_size": NAN}, ValueError, r"batch_size .* got nan"),
    ({"batch_size": "32"}, TypeError, r"batch_size .* got '32'"),
    ({"early_stopping": 0}, ValueError, r"early_stopping .* must be a positive integer, got 0"),
    ({"early_stopping": -2}, ValueError, r"early_stopping .* got -2"),
    ({"early_stopping": 1.5}, ValueError, r"early_stopping .* got 1\.5"),
    ({"early_stopping": 3, "validation": None}, ValueError, r"early_stopping needs validation"),
    ({"warmup_steps": -1}, ValueError, r"warmup_steps must be an integer >= 0, got -1"),
    ({"warmup_steps": 0.5}, ValueError, r"warmup_steps .* got 0\.5"),
    ({"seed": -1}, ValueError, r"seed must be an integer >= 0, got -1"),
    ({"seed": "a"}, TypeError, r"seed .* got 'a'"),
    ({"schedule": "cosine"}, TypeError, r"schedule must be a function \(base_lr, epoch\) -> lr"),
    ({"resume": True}, ValueError, r"resume=True needs a checkpoint_dir"),
    ({"train_data": None}, TypeError, r"^train_data must be a pair \(x, y\) of NumPy arrays"),
])
def test_fit_refuses_bad_settings(digits, changes, error, message):
    with pytest.raises(error, match=message):
        fit_small(digits, **{"validation": digits, **changes})


def with_nan(x):
    return np.where(np.arange(len(x))[:, None, None, None] == len(x) - 1, np.float32("nan"), x)


@pytest.mark.parametrize("argument", ["train_data", "validation"])
@pytest.mark.parametrize("make, error, message", [
    pytest.param(lambda x, y: (x, list(y)), TypeError,
                 r"must be NumPy arrays \(x, y\), got \(ndarray, list\)", id="labels-as-a-list"),
    pytest.param(lambda x, y: (x.tolist(), y), TypeError,
                 r"must be NumPy arrays .* got \(list, ndarray\)", id="images-as-a-list"),
    pytest.param(lambda x, y: (x, y.astype(np.float64)), ValueError,
                 r"labels must be integers of shape \(64,\), got float64", id="float-labels"),
    pytest.param(lambda x, y: (x, y[:60]), ValueError,
                 r"needs as many labels as images.* 64 images and 60 labels", id="too-few-labels"),
    pytest.param(lambda x, y: (x, y + 10), ValueError, r"labels must be in \[0, 10\)",
                 id="labels-out-of-range"),
    pytest.param(lambda x, y: (x, y[:, None]), ValueError,
                 r"labels must be integers of shape \(64,\)", id="2-D-labels"),
    pytest.param(lambda x, y: (x[:0], y[:0]), ValueError, r"at least one; got 0 images",
                 id="no-images"),
    pytest.param(lambda x, y: ((x * 16).astype(np.int64), y), ValueError,
                 r"images must be floating point", id="integer-images"),
    pytest.param(lambda x, y: (with_nan(x), y), ValueError, r"images contain NaN or inf",
                 id="a-NaN-image"),
    pytest.param(lambda x, y: (x[:, :, :4], y), ValueError,
                 r"expected input of shape \(N, 1, 8, 8\)", id="misshaped-images"),
    pytest.param(lambda x, y: x, TypeError, r"must be a pair \(x, y\) of NumPy arrays, got ndarray",
                 id="not-a-pair"),
    pytest.param(lambda x, y: (x, y, y), TypeError, r"must be a pair \(x, y\)", id="a-triple"),
])
def test_fit_refuses_bad_data_naming_which(digits, argument, make, error, message):
    with pytest.raises(error, match=rf"^{argument}\b.*{message}"):
        fit_small(digits, **{argument: make(*digits)})


def test_fit_refuses_an_optimizer_of_another_model(digits):
    other = zoo.build("small_cnn")
    with pytest.raises(ValueError, match=r"the optimizer updates another model's parameters"):
        fit_small(digits, optimizer=SGD(other, 0.1))


def test_fit_refuses_a_checkpoint_dir_that_is_a_file(digits, tmp_path):
    (tmp_path / "run").write_text("not a folder")
    with pytest.raises(ValueError, match=r"checkpoint_dir .*run is a file, not a folder"):
        fit_small(digits, checkpoint_dir=tmp_path / "run")


def good_checkpoint(digits, folder):
    fit_small(digits, checkpoint_dir=folder)
    return (folder / CHECKPOINT).read_bytes()


@pytest.mark.parametrize("damage", [
    pytest.param(lambda raw: raw[:len(raw) // 2], id="truncated"),
    pytest.param(lambda raw: raw[:100], id="cut-to-100-bytes"),
    pytest.param(lambda raw: b"", id="empty"),
    pytest.param(lambda raw: raw[:2000] + bytes(64) + raw[2064:], id="corrupt"),
    pytest.param(lambda raw: b"not an archive at all\n" * 10, id="text"),
])
def test_resume_from_an_unreadable_checkpoint_says_to_delete_or_restore_it(digits, tmp_path,
                                                                           damage):
    raw = good_checkpoint(digits, tmp_path)
    (tmp_path / CHECKPOINT).write_bytes(damage(raw))
    with pytest.raises(ValueError, match=r"checkpoint\.npz is not a readable checkpoint .*"
                                         r"delete it to start the run afresh, or put back"):
        fit_small(digits, epochs=2, checkpoint_dir=tmp_path, resume=True)


@pytest.mark.parametrize("arrays", [
    pytest.param({"w": np.zeros(3)}, id="no-meta"),
    pytest.param({"meta": np.array("{not json")}, id="meta-not-json"),
    pytest.param({"meta": np.array("{}"), "weights": np.zeros(3)}, id="unknown-entry"),
])
def test_a_checkpoint_of_another_kind_is_unreadable_too(tmp_path, arrays):
    np.savez(tmp_path / CHECKPOINT, **arrays)
    model = zoo.build("small_cnn")
    with pytest.raises(ValueError, match=r"checkpoint\.npz is not a readable checkpoint.*afresh"):
        load_checkpoint(tmp_path / CHECKPOINT, model, SGD(model, 0.1), {}, [])


# ------------------------------------------------------------------ io: model files

def saved_mlp(tmp_path):
    model = Sequential([Dense(4, 3, rng=0), ReLU(), Dense(3, 2, rng=1)], input_shape=(4,))
    return io.save(model, tmp_path / "model.npz")


def rewrite(path, change_spec=None, change_arrays=None):
    """The model file at ``path`` with its JSON and/or arrays edited, written beside it."""
    with np.load(path) as archive:
        arrays = dict(archive)
    spec = json.loads(str(arrays.pop("architecture")))
    if change_spec:
        change_spec(spec)
    if change_arrays:
        change_arrays(arrays)
    target = path.with_name("edited.npz")
    np.savez(target, architecture=np.array(json.dumps(spec)), **arrays)
    return target


def set_in(spec, layer, key, value):
    spec["layers"][layer]["config"][key] = value


@pytest.mark.parametrize("change_spec, change_arrays, message", [
    (lambda s: s.pop("layers"), None, r"the architecture needs a list of 'layers'"),
    (lambda s: s.update(layers="Dense"), None, r"the architecture needs a list of 'layers'"),
    (lambda s: s.pop("input_shape"), None, r"and an 'input_shape'"),
    (lambda s: set_in(s, 0, "bogus", 1), None, r"layer 'dense_1' \(Dense\): .*'bogus'"),
    (lambda s: s["layers"][0].pop("config"), None,
     r"layer 0 needs a 'type', a 'name' and a 'config'"),
    (lambda s: s["layers"][2].update(type="Linear"), None, r"unknown layer type 'Linear'"),
    (lambda s: s.update(format="keras"), None, r"not an nnscratch model file \(format 'keras'"),
    (lambda s: s.update(input_shape=[5]), None,
     r"Dense layer 'dense_1': expected input of shape \(N, 4\)"),
    (lambda s: s.update(input_shape=["four"]), None, r"input_shape: every size .* got 'four'"),
    (lambda s: set_in(s, 0, "in_features", 0),
     lambda a: a.update({"dense_1.W": np.zeros((0, 3), np.float32)}),
     r"layer 'dense_1' \(Dense\): Dense: in_features must be a positive integer, got 0"),
    (lambda s: set_in(s, 0, "in_features", "4"), None,
     r"parameter dense_1\.W has shape \(4, 3\), the architecture needs \('4', 3\)"),
    (lambda s: s["layers"][0]["config"].pop("in_features"), None,
     r"layer 'dense_1' \(Dense\): bad config .*KeyError"),
    (None, lambda a: a.update({"dense_1.W": a["dense_1.W"].astype(np.int64)}),
     r"parameter dense_1\.W is int64, not floating point"),
    (None, lambda a: a.update({"dense_2.b": np.array(["a", "b"])}),
     r"parameter dense_2\.b is <U1, not floating"),
    (None, lambda a: a["dense_2.b"].__setitem__(0, np.nan),
     r"parameter dense_2\.b holds NaN or inf"),
    (None, lambda a: a["dense_1.W"].__setitem__((0, 0), np.inf),
     r"parameter dense_1\.W holds NaN or inf"),
    (None, lambda a: a.pop("dense_2.W"), r"missing \['dense_2\.W'\]"),
])
def test_load_refuses_a_model_file_that_does_not_hold_together(tmp_path, change_spec,
                                                               change_arrays, message):
    path = rewrite(saved_mlp(tmp_path), change_spec, change_arrays)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: .*{message}"):
        io.load(path)


def test_load_checks_declared_shapes_before_building_anything(tmp_path):
    """Dense(1000000, 1000000) would take 4 TB: the file is refused, allocating nothing."""
    def huge(spec):
        set_in(spec, 0, "in_features", 1_000_000)
        set_in(spec, 0, "out_features", 1_000_000)
        spec["input_shape"] = [1_000_000]
    path = rewrite(saved_mlp(tmp_path), huge)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"parameter dense_1\.W has shape \(4, 3\), the "
                                             r"architecture needs \(1000000, 1000000\)"):
            io.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 ** 20


def test_the_shapes_checked_are_the_shapes_the_layers_make():
    for layer in [Conv2D(2, 4, (3, 2), padding=(1, 0)), Conv2D(3, 5, 3, padding="same"),
                  Dense(6, 3), GaussianBlur(0.8), MaxPool2D(2), Dropout(0.3), ReLU()]:
        shapes = type(layer).param_shapes(layer.config())
        assert shapes == {k: v.shape for k, v in layer.params.items()}, layer


@pytest.mark.parametrize("content", [
    pytest.param(lambda raw: raw[:len(raw) // 2], id="truncated"),
    pytest.param(lambda raw: raw[:-1], id="last-byte-missing"),
    pytest.param(lambda raw: raw[:1000] + bytes(100) + raw[1100:], id="corrupt"),
    pytest.param(lambda raw: b"", id="empty"),
    pytest.param(lambda raw: b'{"format": "nnscratch.Sequential"}', id="json"),
    pytest.param(lambda raw: b"\x93NUMPY" + raw[6:200], id="npy-magic"),
])
def test_load_refuses_a_file_that_is_not_a_readable_archive_naming_it(tmp_path, content):
    raw = saved_mlp(tmp_path).read_bytes()
    path = tmp_path / "broken.npz"
    path.write_bytes(content(raw))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} is not a readable "
                                         r"nnscratch model file \("):
        io.load(path)


def test_load_of_other_files(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"one\.npy is not a readable nnscratch model file"):
        io.load(tmp_path / "one.npy")
    np.savez(tmp_path / "plain.npz", architecture=np.array("[not json"))
    with pytest.raises(ValueError, match=r"plain\.npz: its 'architecture' entry is not JSON"):
        io.load(tmp_path / "plain.npz")
    np.savez(tmp_path / "list.npz", architecture=np.array("[1, 2]"))
    with pytest.raises(ValueError, match=r"list\.npz: the architecture must be a JSON object"):
        io.load(tmp_path / "list.npz")
    with pytest.raises(IsADirectoryError, match=re.escape(str(tmp_path))):
        io.load(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"missing\.npz"):
        io.load(tmp_path / "missing.npz")


# ------------------------------------------------------------------ data.load and subsets

@pytest.mark.parametrize("options, error, message", [
    ({"limit": 10.5}, ValueError,
     r"limit \(None: every image\) must be a positive integer, got 10\.5"),
    ({"limit": 0}, ValueError, r"limit .* got 0"),
    ({"limit": -3}, ValueError, r"limit .* got -3"),
    ({"limit": NAN}, ValueError, r"limit .* got nan"),
    ({"limit": "100"}, TypeError, r"limit .* got '100'"),
    ({"classes": (3,)}, ValueError,
     r"classes must name at least two classes \(a classifier needs two\), got \[3\]"),
    ({"classes": (3, 3)}, ValueError, r"classes repeat: \[3, 3\]"),
    ({"classes": (11,)}, ValueError, r"classes must name at least two classes .* got \[11\]"),
    ({"classes": (3, 11)}, ValueError,
     r"classes: no images of class \[11\] \(labels present: \[0, 1,"),
    ({"classes": ()}, ValueError, r"classes must name at least two classes .* got \[\]"),
    ({"classes": 3}, TypeError,
     r"classes must be a sequence of class labels, e\.g\. \(6, 7\), got 3"),
    ({"classes": "37"}, TypeError, r"classes must be a sequence .* got '37'"),
    ({"classes": (3.5, 4)}, ValueError, r"classes: every class must be an integer >= 0, got 3\.5"),
    ({"classes": (-1, 4)}, ValueError, r"classes: every class .* got -1"),
    ({"classes": (None, 4)}, TypeError, r"classes: every class .* got None"),
    ({"split": "val"}, ValueError, r"unknown split 'val'; choose one of \('train', 'validation'"),
    ({"split": None}, ValueError, r"unknown split None"),
    ({"seed": -1, "limit": 5}, ValueError, r"seed must be an integer >= 0, got -1"),
    ({"seed": "a", "limit": 5}, TypeError, r"seed .* got 'a'"),
])
def test_load_refuses_bad_options(options, error, message):
    with pytest.raises(error, match=message):
        data.load("digits", **options)


def test_load_names_an_unknown_dataset():
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet'; choose one of"):
        data.load("imagenet")


def test_a_limit_above_the_split_size_gives_the_whole_split():
    """Documented in ``data.load``: ``limit`` is "at most this many"."""
    x, y = data.load("digits", split="test", limit=10 ** 9)
    assert len(x) == len(y) == 359


@pytest.mark.parametrize("call, error, message", [
    (lambda y: balanced_indices(y, -1), ValueError, r"n must be an integer >= 0, got -1"),
    (lambda y: balanced_indices(y, 2.5), ValueError, r"n must be an integer >= 0, got 2\.5"),
    (lambda y: first_n_per_class(y, 0), ValueError, r"n must be a positive integer, got 0"),
    (lambda y: first_n_per_class(y, 9), ValueError, r"class 0 has 3 images, fewer than 9"),
])
def test_samplers_refuse_bad_counts(call, error, message):
    with pytest.raises(error, match=message):
        call(np.arange(9) % 3)


# ------------------------------------------------------------------ zoo: networks and recipes

@pytest.mark.parametrize("name, options, error, message", [
    ("lenet", {"blur_sigma": -1}, ValueError,
     r"GaussianBlur: sigma must be a finite number > 0, got -1"),
    ("lenet", {"blur_sigma": NAN}, ValueError, r"GaussianBlur: sigma .* got nan"),
    ("lenet", {"dropout": 1.5}, ValueError, r"Dropout: p must be a number in \[0, 1\), got 1\.5"),
    ("lenet", {"dropout": -0.5}, ValueError, r"Dropout: p .* got -0\.5"),
    ("dnr_cnn", {"dropout": NAN}, ValueError, r"Dropout: p .* got nan"),
    ("lenet", {"num_classes": 1}, ValueError, r"num_classes must be an integer >= 2, got 1"),
    ("lenet", {"num_classes": 2.5}, ValueError, r"num_classes .* got 2\.5"),
    ("lenet", {"num_classes": "10"}, TypeError, r"num_classes .* got '10'"),
    ("lenet", {"input_shape": (28, 28)}, ValueError,
     r"input_shape must be \(C, H, W\), got \(28, 28\)"),
    ("lenet", {"input_shape": "1x28x28"}, ValueError, r"input_shape must be \(C, H, W\)"),
    ("lenet", {"input_shape": (1, 0, 28)}, ValueError,
     r"input_shape \(1, 0, 28\): every size must be"),
    ("lenet", {"input_shape": (1, 4, 4)}, ValueError,
     r"Conv2D layer 'conv2d_1': expected input .* got \(0, 1, 4, 4\)"),
    ("lenet", {"seed": -1}, ValueError, r"seed must be an integer >= 0, got -1"),
    ("lenet", {"seed": "a"}, TypeError, r"seed .* got 'a'"),
    ("resnet", {}, ValueError, r"unknown model 'resnet'; choose one of"),
    ("small_cnn", {"dropout": 0.5}, ValueError, r"'dropout' is not an option of small_cnn"),
])
def test_build_refuses_bad_options(name, options, error, message):
    with pytest.raises(error, match=message):
        zoo.build(name, **options)


def test_build_takes_zero_for_no_blur_and_no_dropout():
    plain = [type(layer) for layer in zoo.build("lenet").layers]
    assert [type(layer) for layer in zoo.build("lenet", blur_sigma=0, dropout=0).layers] == plain


@pytest.mark.parametrize("field, value, error", [
    ("lr", "0.01", TypeError), ("lr", None, TypeError), ("batch_size", "64", TypeError),
    ("epochs", INF, ValueError), ("momentum", INF, ValueError), ("warmup_steps", 2.5, ValueError),
])
def test_a_recipe_names_a_field_of_the_wrong_kind(field, value, error):
    import dataclasses
    with pytest.raises(error, match=f"^{field} must be"):
        dataclasses.replace(zoo.RECIPES["lenet"], **{field: value})
