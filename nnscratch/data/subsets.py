"""Subsets of a labelled dataset: a class filter with relabelling (the 6-vs-7 task), a
balanced random sample, and n images of each class.

The samplers take labels y (N,) and return sorted indices into them, so one selection serves
x and y alike and keeps the dataset's order: ``keep = balanced_indices(y, 1000); x[keep], y[keep]``.
"""

import numpy as np

from nnscratch.checks import check_integer


def filter_classes(x, y, classes):
    """Keep the images of ``classes`` and relabel them 0..len(classes)-1, in the order given.

    x: (N, ...), y: (N,) -> (x[keep], new labels) with y's dtype. ``classes=(6, 7)`` makes the
    sixes 0 and the sevens 1; ``(7, 6)`` the other way round. Raises ValueError for fewer
    than two classes (a classifier needs two), a repeated class, or one with no images (a typo
    should not silently give a one-class task).
    """
    if isinstance(classes, str) or not hasattr(classes, "__iter__"):
        raise TypeError(f"classes must be a sequence of class labels, e.g. (6, 7), got "
                        f"{classes!r}")
    classes = [check_integer(c, "classes: every class", minimum=0) for c in classes]
    if len(classes) < 2:
        raise ValueError(f"classes must name at least two classes (a classifier needs two), "
                         f"got {classes}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes repeat: {classes}")
    missing = [c for c in classes if not np.any(y == c)]
    if missing:
        raise ValueError(f"classes: no images of class {missing} (labels present: "
                         f"{np.unique(y).tolist()})")
    keep = np.flatnonzero(np.isin(y, classes))
    new_y = np.empty(len(keep), dtype=y.dtype)
    for new, old in enumerate(classes):
        new_y[y[keep] == old] = new
    return x[keep], new_y


def balanced_indices(y, n, seed=0):
    """Sorted indices of min(n, N) images, spread over the classes as evenly as they allow.

    Each class gets n // K; a class with fewer images gives all it has and its shortfall is
    shared among the others, and the last n mod K images go to classes drawn at random. The
    images of each class are drawn at random too; everything is determined by ``seed``.
    """
    n = check_integer(n, "n", minimum=0)
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    labels, counts = np.unique(y, return_counts=True)
    quota = _quotas(counts, n, rng)
    picks = [rng.choice(np.flatnonzero(y == label), q, replace=False)
             for label, q in zip(labels, quota)]
    return np.sort(np.concatenate(picks))


def _quotas(counts, n, rng):
    """How many of n images each class gives: equal shares, capped by class size (water-filling)."""
    quota = np.zeros_like(counts)
    left = n
    while left > 0:
        open_ = np.flatnonzero(quota < counts)
        share, extra = divmod(left, len(open_))
        if share == 0:   # fewer images left than classes: one more each for `extra` of them
            quota[rng.choice(open_, extra, replace=False)] += 1
            break
        added = np.minimum(share, counts[open_] - quota[open_])
        quota[open_] += added
        left -= int(added.sum())
    return quota


def first_n_per_class(y, n, seed=None):
    """Sorted indices of n images of every class: the first n of each in dataset order, or,
    given a ``seed``, n drawn at random. Raises ValueError when a class has fewer than n."""
    n = check_integer(n, "n")
    rng = None if seed is None else np.random.default_rng(seed)
    picks = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if len(members) < n:
            raise ValueError(f"class {label} has {len(members)} images, fewer than {n}")
        picks.append(members[:n] if rng is None else rng.choice(members, n, replace=False))
    return np.sort(np.concatenate(picks)) if picks else np.arange(0)
