"""CIFAR-10 from its python-version archive (Krizhevsky 2009, "Learning Multiple Layers of
Features from Tiny Images"; https://www.cs.toronto.edu/~kriz/cifar.html).

``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/data_batch_1`` .. ``data_batch_5``
(10,000 training images each) and ``test_batch``, Python 2 pickles of dicts::

    {b"data": (10000, 3072) uint8, b"labels": [10000 ints 0..9],
     b"batch_label": ..., b"filenames": [...]}

where each row of data is 1024 red, then 1024 green, then 1024 blue bytes of a 32x32 image in
row-major order: reshaped, exactly (N, 3, 32, 32). The batches are read straight from the
archive (nothing is extracted) with the array-only unpickler. Cached as x_train
(50000, 3, 32, 32), y_train (50000,), x_test (10000, 3, 32, 32), y_test (10000,), all uint8.
"""

import tarfile
from pathlib import Path

import numpy as np

from nnscratch.data import safe_pickle
from nnscratch.data.cache import ChecksumError, sha256_file, workspace
from nnscratch.data.download import download, is_url

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# The official archive (its MD5 on the CIFAR page is c58f30108f718f92721af3b95e74349a); Keras
# and many others pin this SHA-256.
ARCHIVE_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
FETCH_HINT = ("nnscratch data fetch cifar10 (downloads the official archive), or offline "
              "nnscratch data fetch cifar10 --source PATH_OF/cifar-10-python.tar.gz")

_FOLDER = "cifar-10-batches-py"


def fetch_arrays(source=None):
    """The verified arrays (cache layout above) from ``source``.

    source: None: the official URL; a URL; or the path of a local cifar-10-python.tar.gz.
    The archive must have the official SHA-256, else ChecksumError.
    """
    if source is None or is_url(source):
        with workspace("cifar10") as tmp:
            archive = download(source or URL, tmp / "cifar-10-python.tar.gz", ARCHIVE_SHA256)
            return read_archive(archive)
    archive = Path(source)
    if not archive.is_file():
        raise FileNotFoundError(f"no CIFAR-10 archive at {archive}")
    digest = sha256_file(archive)
    if digest != ARCHIVE_SHA256:
        raise ChecksumError(f"{archive}: SHA-256 {digest}, expected {ARCHIVE_SHA256} "
                            f"(the official cifar-10-python.tar.gz)")
    return read_archive(archive)


def read_archive(path):
    """x_train, y_train, x_test, y_test (uint8, cache layout) from the archive at ``path``."""
    with tarfile.open(path, "r:gz") as tar:
        train = [_read_batch(tar, f"data_batch_{i}") for i in range(1, 6)]
        x_test, y_test = _read_batch(tar, "test_batch")
    return {"x_train": np.concatenate([x for x, _ in train]),
            "y_train": np.concatenate([y for _, y in train]),
            "x_test": x_test, "y_test": y_test}


def _read_batch(tar, name):
    """One batch: images (N, 3, 32, 32) uint8 and labels (N,) uint8, checked."""
    try:
        member = tar.extractfile(f"{_FOLDER}/{name}")
    except KeyError:
        raise ValueError(f"not a CIFAR-10 python archive: no {_FOLDER}/{name}") from None
    batch = safe_pickle.load(member, encoding="bytes")
    if not (isinstance(batch, dict) and b"data" in batch and b"labels" in batch):
        raise ValueError(f"{name}: expected a dict with b'data' and b'labels'")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3072):
        raise ValueError(f"{name}: b'data' should be (N, 3072) uint8")
    if not (labels.shape == (len(data),) and labels.dtype.kind in "iu"
            and (labels.size == 0 or (labels.min() >= 0 and labels.max() <= 9))):
        raise ValueError(f"{name}: b'labels' should be {len(data)} integers 0..9")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.uint8)
