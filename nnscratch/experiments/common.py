"""What the studies' stages share: data subsets, training with resumable checkpoints, copies of
trained networks, and the summaries of an attack (success, PASS) that the papers' tables use.
"""

import dataclasses

import numpy as np

from nnscratch import data, io, metrics, zoo
from nnscratch.training import fit_recipe


def mnist(split, limit=None):
    """MNIST (x (N, 1, 28, 28) float32 in [0, 1], y (N,) int64): the first ``limit`` images of
    ``split`` ("train-rest" is the training set less the 5,000-image validation hold-out)."""
    return data.load("mnist", split=split, limit=limit)


def clone(model):
    """An independent copy of a Sequential (same architecture and weights): fine-tuning the
    copy leaves the original, which other stages read, untouched."""
    copy = io.build_from_architecture(io.architecture(model))
    io.set_weights(copy, io.weights(model))
    return copy


def train(model, recipe_name, train_data, ctx, epochs, seed, lr=None, objective=None):
    """``fit`` with the zoo recipe ``recipe_name`` for ``epochs`` (and ``lr``, if given), seeded
    with ``seed`` (the stage's cfg["seed"]), minimising ``objective`` (fit's default, the mean
    cross-entropy, when None), checkpointing every epoch into ``ctx.checkpoint_dir`` so a
    killed run resumes there. Returns fit's history."""
    changes = {"epochs": epochs} if lr is None else {"epochs": epochs, "lr": lr}
    recipe = dataclasses.replace(zoo.RECIPES[recipe_name], **changes)
    return fit_recipe(model, recipe, train_data, seed=seed, objective=objective,
                      checkpoint_dir=ctx.checkpoint_dir, resume=True)


def accuracy(model, x, y):
    """The share of (x, y) that ``model`` classifies correctly, in [0, 1] (NaN for none)."""
    return metrics.accuracy(y, model.predict(x))


def pass_sample(success, limit, seed):
    """Indices of at most ``limit`` of the successful rows, drawn at random (sorted): PASS costs
    about 13 ms an image, so its mean is taken over a sample."""
    chosen = np.flatnonzero(success)
    if len(chosen) > limit:
        chosen = np.sort(np.random.default_rng(seed).choice(chosen, limit, replace=False))
    return chosen


def pass_scores(x, x_adv, success, limit, seed, source=None):
    """PASS (Rozsa et al.) of at most ``limit`` successful adversarials against their originals:
    (N,) scores of the sampled rows. ``source`` (rows,): the image of x each row comes from
    (attacks with several rows per image); default: row i comes from image i."""
    chosen = pass_sample(success, limit, seed)
    source = np.arange(len(success)) if source is None else np.asarray(source)
    if not len(chosen):
        return np.zeros(0)
    return np.asarray(metrics.pass_score(x[source[chosen]], np.asarray(x_adv)[chosen]))


def mean(values):
    """The mean of ``values`` as a float, NaN for none (a table cell with nothing to average)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else float("nan")


def pct(value):
    """A share in [0, 1] as a percentage, the unit the papers' tables use."""
    return 100.0 * value
