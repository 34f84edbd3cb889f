"""The training loop: minibatch SGD over epochs, validation, early stopping, checkpoints.

One epoch::

    lr = schedule(base_lr, epoch)                       (if a schedule is given; during the
                                                        first warmup_steps steps, ramped up)
    for each shuffled minibatch (x_b, y_b):
        loss = model.compute_gradients(x_b, y_b, rng)   forward with dropout, backward
        optimizer.step()                                (or objective.gradients(...), below)
    evaluate on the validation set; checkpoint; maybe stop early

Randomness is derived from ``(seed, epoch)``: the shuffling order and the dropout masks of an
epoch depend on nothing else. So the "RNG state" a checkpoint needs is the seed and the epoch
reached, and a run resumed from the checkpoint of epoch e gives bitwise the same weights as one
that never stopped (on the CPU; it also holds on one GPU with one CuPy version).

A checkpoint, written atomically after every epoch to ``checkpoint_dir/checkpoint.npz``, holds
the weights, the optimizer state, the best weights so far (for early stopping) and, as JSON,
the epoch, the history and the run's plan (seed, batch size, warm-up, number of training
images, objective). Resuming refuses a run whose plan differs, or whose schedule would have
given the epochs already trained other learning rates (a cosine over more epochs, say): that
would not continue the same run. Asking for more epochs under a constant rate is fine.

What a step minimises is the mean cross-entropy, or an ``objective`` (label smoothing,
adversarial training: ``nnscratch.defenses.training``), an object with
    gradients(model, x_b, y_b, index, rng) -> (mean loss, logits of x_b): fills the parameter
        gradients; index: the batch's positions in train_data; rng: the dropout generator
    settings() -> a JSON-ready dict, kept in the plan (so resuming refuses other settings)
    start_epoch(model, x, y, epoch, progress), optional: called before every epoch (after a
        resume too) with the whole training set; progress: whether fit shows bars.
Resuming stays bitwise exact when these depend only on the weights, the data and rng.
"""

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from nnscratch import files, io
from nnscratch.backend import array_module_on, new_rng, to_device
from nnscratch.checks import check_integer, check_labels, check_seed
from nnscratch.losses import softmax_cross_entropy
from nnscratch.optim import make_optimizer, make_schedule

CHECKPOINT = "checkpoint.npz"


def epoch_seed(seed, epoch):
    """An integer seed for one epoch's shuffling and dropout, a pure function of (seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def loss_and_accuracy(model, x, y):
    """Mean cross-entropy and accuracy of ``model`` on (x, y) (host arrays), in eval mode."""
    if len(x) == 0:
        return 0.0, 0.0
    device = model.device or "cpu"
    z = model.logits(to_device(x, device))
    y = to_device(y, device)
    return float(softmax_cross_entropy(z, y)[0].mean()), float((z.argmax(axis=1) == y).mean())


def fit(model, optimizer, train_data, epochs, batch_size=128, validation=None,
        early_stopping=None, schedule=None, warmup_steps=0, seed=0, checkpoint_dir=None,
        resume=False, progress=None, objective=None):
    """Train ``model`` in place; returns the history, a dict of per-epoch lists.

    train_data, validation: (x, y) NumPy arrays, x (N, C, H, W) float32 in [0, 1], y int.
    Batches move to the model's device one at a time.
    early_stopping: a patience, in epochs, on validation accuracy (needs ``validation``); when
        it stops the run, the model gets back the weights of its best epoch.
    schedule: ``schedule(base_lr, epoch) -> lr``, e.g. ``nnscratch.optim.StepLR``.
    warmup_steps: over the first steps (minibatches) of the run, the rate rises linearly from
        lr / warmup_steps to lr (Goyal et al., 2017): large rates from the very first step can
        kill a ReLU network's units before it learns anything.
    checkpoint_dir: where to write a checkpoint after every epoch; with ``resume=True`` the run
        continues after the last completed epoch found there (and deletes the temporary file
        of a checkpoint write that a kill cut short).
    progress: a progress bar per epoch and a line after each; default: the bar only when
        stderr is a terminal, the lines always; False: silent.
    objective: what each step minimises (see the module's docstring); None: the mean
        cross-entropy, ``model.compute_gradients``.

    History keys: epoch, lr, loss, accuracy, val_loss, val_accuracy (None without
    validation), seconds.
    """
    x, y = check_data(model, train_data, "train_data")
    if validation is not None:
        check_data(model, validation, "validation")
    epochs, batch_size = check_integer(epochs, "epochs"), check_integer(batch_size, "batch_size")
    warmup_steps = check_integer(warmup_steps, "warmup_steps", minimum=0)
    seed = check_seed(seed)
    if early_stopping is not None:
        early_stopping = check_integer(early_stopping, "early_stopping (a patience in epochs)")
        if validation is None:
            raise ValueError("early_stopping needs validation data")
    if schedule is not None and not callable(schedule):
        raise TypeError(f"schedule must be a function (base_lr, epoch) -> lr, got {schedule!r}")
    if objective is not None and not (callable(getattr(objective, "gradients", None))
                                      and callable(getattr(objective, "settings", None))):
        raise TypeError("objective must have gradients(model, x, y, index, rng) and settings() "
                        f"(see nnscratch.defenses.training), got {objective!r}")
    if optimizer.model is not model:
        raise ValueError("the optimizer updates another model's parameters: make it with "
                         "this model, e.g. SGD(model, lr)")
    device = model.device or "cpu"
    show_bar = sys.stderr.isatty() if progress is None else progress
    base_lr = optimizer.lr
    history = {key: [] for key in
               ("epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")}
    best = {"accuracy": -1.0, "epoch": -1, "weights": None}
    settings = None if objective is None else json.loads(json.dumps(objective.settings()))
    plan = {"seed": seed, "batch_size": batch_size, "warmup_steps": warmup_steps,
            "train_images": len(x), "objective": settings}   # settings as JSON gives them back
    epoch_lrs = [base_lr if schedule is None else schedule(base_lr, e) for e in range(epochs)]
    start = 0
    checkpoint = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    if checkpoint is not None and checkpoint.parent.exists() and not checkpoint.parent.is_dir():
        raise ValueError(f"checkpoint_dir {checkpoint_dir} is a file, not a folder")
    if resume:
        if checkpoint is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        files.remove_unfinished(checkpoint_dir)     # left if the run was killed mid-write
        if checkpoint.exists():
            start, history, best = load_checkpoint(checkpoint, model, optimizer, plan,
                                                   epoch_lrs)
    def out_of_patience(epoch):
        """Early stopping's rule after ``epoch``: ``early_stopping`` epochs without a better
        validation accuracy."""
        return early_stopping is not None and epoch - best["epoch"] >= early_stopping

    for epoch in range(start, epochs):
        if epoch > 0 and out_of_patience(epoch - 1):
            break           # checked before the epoch, so a resumed run that had stopped stays so
        began = time.perf_counter()
        epoch_lr = epoch_lrs[epoch]
        optimizer.lr = epoch_lr
        rng_seed = epoch_seed(seed, epoch)
        order = np.random.default_rng(rng_seed).permutation(len(x))
        dropout_rng = new_rng(rng_seed, array_module_on(device))
        if hasattr(objective, "start_epoch"):
            objective.start_epoch(model, x, y, epoch, show_bar)
        total_loss, correct = 0.0, 0
        batches = range(0, len(x), batch_size)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", disable=not show_bar,
                   leave=False, unit="batch")
        for step_in_epoch, i in enumerate(bar):
            step = epoch * len(batches) + step_in_epoch
            if step < warmup_steps:
                optimizer.lr = epoch_lr * (step + 1) / warmup_steps
            index = order[i:i + batch_size]
            xb, yb = to_device(x[index], device), to_device(y[index], device)
            loss, logits = (model.compute_gradients(xb, yb, dropout_rng) if objective is None
                            else objective.gradients(model, xb, yb, index, dropout_rng))
            if not math.isfinite(loss):     # stop before the step, and before any checkpoint
                raise ValueError(f"training diverged: the loss became {loss} at step "
                                 f"{step_in_epoch + 1} of epoch {epoch + 1} (lr "
                                 f"{optimizer.lr:g}): lower the learning rate")
            optimizer.step()
            total_loss += loss * len(index)
            correct += int((logits.argmax(axis=1) == yb).sum())
            bar.set_postfix(loss=f"{loss:.4f}")
        optimizer.lr = epoch_lr                     # the rate of the epoch, warm-up or not
        val_loss, val_accuracy = (loss_and_accuracy(model, *validation) if validation
                                  else (None, None))
        for key, value in (("epoch", epoch + 1), ("lr", optimizer.lr),
                           ("loss", total_loss / len(x)), ("accuracy", correct / len(x)),
                           ("val_loss", val_loss), ("val_accuracy", val_accuracy),
                           ("seconds", time.perf_counter() - began)):
            history[key].append(value)
        if progress is not False:
            tqdm.write(_epoch_line(history), file=sys.stderr)
        if val_accuracy is not None and val_accuracy > best["accuracy"]:
            best = {"accuracy": val_accuracy, "epoch": epoch, "weights": io.weights(model)}
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, plan, epoch, history, best)
    if early_stopping is not None and best["weights"] is not None:
        io.set_weights(model, best["weights"])
    return history


def check_data(model, data, what):
    """Refuse a ``train_data`` or ``validation`` pair that is not NumPy images and labels the
    model takes, with at least one image; returns (x, y)."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{what} must be a pair (x, y) of NumPy arrays, got {type(data).__name__}")
    x, y = data
    if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
        raise TypeError(f"{what} must be NumPy arrays (x, y), got ({type(x).__name__}, "
                        f"{type(y).__name__}); convert with np.asarray")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{what} needs as many labels as images, and at least one; got "
                         f"{len(x)} images and {len(y)} labels")
    check_labels(y, len(x), f"{what} labels")
    try:
        num_classes = model.logits(to_device(x[:1], model.device or "cpu")).shape[1]  # dtype, shape
        if not np.isfinite(x).all():
            raise ValueError("images contain NaN or inf")
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from error
    if not (0 <= y.min() and y.max() < num_classes):     # once, here: on a GPU, never per step
        raise ValueError(f"{what} labels must be in [0, {num_classes}), got values from "
                         f"{y.min()} to {y.max()}")
    return x, y


def _epoch_line(history):
    line = (f"epoch {history['epoch'][-1]}: loss {history['loss'][-1]:.4f}, "
            f"accuracy {history['accuracy'][-1]:.4f}")
    if history["val_accuracy"][-1] is not None:
        line += (f", val_loss {history['val_loss'][-1]:.4f}, "
                 f"val_accuracy {history['val_accuracy'][-1]:.4f}")
    return line + f" ({history['seconds'][-1]:.1f} s)"


def save_checkpoint(path, model, optimizer, plan, epoch, history, best):
    """Everything needed to continue after ``epoch``, in one .npz written atomically."""
    state = optimizer.state_dict()
    arrays = {f"model/{k}": v for k, v in io.weights(model).items()}
    arrays.update({f"optimizer/{k}": v for k, v in state["arrays"].items()})
    if best["weights"] is not None:
        arrays.update({f"best/{k}": v for k, v in best["weights"].items()})
    meta = {"epoch": epoch, "plan": plan, "history": history,
            "optimizer": {"type": type(optimizer).__name__, "lr": state["lr"],
                          "steps": state["steps"]},
            "best": {"accuracy": best["accuracy"], "epoch": best["epoch"]},
            "architecture": io.architecture(model)}
    arrays["meta"] = np.array(json.dumps(meta))
    files.atomic_write(path, arrays)


def load_checkpoint(path, model, optimizer, plan, epoch_lrs):
    """Restore model and optimizer from ``path``; returns (next epoch, history, best).

    Refuses a checkpoint written under another ``plan``, or whose epochs were trained at
    other rates than ``epoch_lrs`` (the resumed run's rate per epoch) gives them."""
    meta, groups = read_checkpoint(path)
    if "plan" not in meta:
        raise ValueError(f"{path} was written by an earlier nnscratch that did not record the "
                         "run's plan: start the run afresh in another folder")
    for key, value in plan.items():
        recorded = meta["plan"].get(key)       # a plan without "objective": cross-entropy
        if recorded != value:
            raise ValueError(f"{path} was written with {key} {recorded}, not {value}: "
                             "resuming would not continue the same run")
    trained = meta["history"]["lr"][:len(epoch_lrs)]
    if trained != epoch_lrs[:len(trained)]:
        raise ValueError(f"{path} trained its epochs at rates {trained}, but this run's "
                         f"schedule gives them {epoch_lrs[:len(trained)]} (another schedule "
                         "or number of epochs?): resuming would not continue the same run")
    if meta["optimizer"]["type"] != type(optimizer).__name__:
        raise ValueError(f"{path} holds {meta['optimizer']['type']} state, not "
                         f"{type(optimizer).__name__}")
    io.set_weights(model, groups["model"])
    optimizer.load_state_dict({"lr": meta["optimizer"]["lr"], "steps": meta["optimizer"]["steps"],
                               "arrays": groups["optimizer"]})
    best = dict(meta["best"], weights=groups["best"] or None)
    return meta["epoch"] + 1, meta["history"], best


def read_checkpoint(path):
    """(meta, {"model": ..., "optimizer": ..., "best": ...}) of the checkpoint at ``path``. A
    file that cannot be read (cut short, corrupt, not a checkpoint) is a ValueError naming it."""
    afresh = "delete it to start the run afresh, or put back a good copy"
    try:
        arrays = io.read_npz(path, "checkpoint")
    except ValueError as error:
        raise ValueError(f"{error}: {afresh}") from error
    try:
        meta = json.loads(str(arrays.pop("meta")))
        groups = {"model": {}, "optimizer": {}, "best": {}}
        for key, value in arrays.items():
            group, name = key.split("/", 1)
            groups[group][name] = value
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path} is not a readable checkpoint ({type(error).__name__}: "
                         f"{error}): {afresh}") from error
    return meta, groups


def fit_recipe(model, recipe, train_data, **options):
    """``fit`` with a training recipe, a ``nnscratch.zoo.Recipe`` such as
    ``zoo.RECIPES[name]``: its optimizer, learning rate, momentum, weight decay, batch size,
    schedule, warm-up and epochs (for other epochs, pass
    ``dataclasses.replace(recipe, epochs=...)``). ``options`` go to ``fit`` (validation,
    seed, checkpoint_dir, ...)."""
    optimizer = make_optimizer(model, recipe.optimizer, recipe.lr, recipe.momentum,
                               recipe.weight_decay)
    return fit(model, optimizer, train_data, recipe.epochs, batch_size=recipe.batch_size,
               schedule=make_schedule(recipe.schedule, recipe.epochs),
               warmup_steps=recipe.warmup_steps, **options)
