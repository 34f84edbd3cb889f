"""The dataset cache: where fetched datasets live, how they are written, how they are checked.

Each fetched dataset is one uncompressed ``NAME.npz`` in ``cache_dir()``::

    x_train (N, C, H, W) uint8    y_train (N,) uint8
    x_test  (M, C, H, W) uint8    y_test  (M,) uint8

beside ``NAME.npz.sha256``, a sidecar in ``sha256sum`` format (so ``sha256sum -c`` works in the
cache folder too). The sidecar is written only after the data passed its source's checks
(official SHA-256 sums), so "verified" means: this file is byte for byte what was checked then.
A dataset whose sidecar is missing or disagrees is never used: ``open_arrays`` raises.
Every write goes through ``nnscratch.files`` (a hidden temporary moved into place), so a crash
never leaves a half-written dataset under its real name; what a killed fetch leaves (that
temporary, or its download folder ``.NAME.fetch.XXXXXXXX.tmp``) the next fetch of NAME removes.
"""

import contextlib
import hashlib
import os
from pathlib import Path

import numpy as np

from nnscratch import files

# The datasets fetched into the cache (digits ships inside scikit-learn and never is).
FETCHABLE = ("mnist", "fashion-mnist", "cifar10")


class DatasetNotFound(FileNotFoundError):
    """A dataset is not in the cache; the message names the command that fetches it."""


class ChecksumError(ValueError):
    """Data whose SHA-256 differs from the one it must have."""


def cache_dir():
    """$NNSCRATCH_DATA if set, else ~/.cache/nnscratch (created on first write, not here)."""
    return Path(os.environ.get("NNSCRATCH_DATA") or Path.home() / ".cache" / "nnscratch")


def dataset_path(name):
    """Where dataset ``name`` is cached: cache_dir()/NAME.npz."""
    return cache_dir() / f"{name}.npz"


def _sidecar(path):
    return path.with_name(path.name + ".sha256")


def sha256_file(path):
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _workspace_name(name):
    """What the download folders of a fetch of ``name`` are temporaries of: ``NAME.fetch``."""
    return f"{name}.fetch"


@contextlib.contextmanager
def workspace(name):
    """A folder inside the cache for the downloads of a fetch of dataset ``name``, removed
    afterwards (``files.scratch_dir``; a kill leaves it to ``remove_unfinished``)."""
    with files.scratch_dir(cache_dir() / _workspace_name(name)) as scratch:
        yield scratch


def remove_unfinished(name):
    """Delete what killed fetches of dataset ``name`` left in the cache (a half-written .npz or
    sidecar, a download folder); returns the paths removed. Only ``name``'s, so that fetches
    of other datasets may run at the same time."""
    path = dataset_path(name)
    return files.remove_unfinished(cache_dir(), targets=[path.name, _sidecar(path).name,
                                                         _workspace_name(name)])


def save(name, arrays):
    """Write ``arrays`` (dict of uint8 arrays, layout above) as dataset ``name``; returns its path.

    Call this only with data that passed its checks: the sidecar it writes is what marks the
    file verified. The .npz is uncompressed: it loads in a fraction of a second.
    """
    path = dataset_path(name)
    files.atomic_write(path, arrays)
    files.atomic_write(_sidecar(path), f"{sha256_file(path)}  {path.name}\n")
    return path


def is_verified(path):
    """True when ``path`` has a sidecar and its SHA-256 matches it."""
    sidecar = _sidecar(Path(path))
    if not sidecar.exists():
        return False
    fields = sidecar.read_text().split()
    return bool(fields) and fields[0] == sha256_file(path)


def open_arrays(name, fetch_hint):
    """The cached arrays of dataset ``name`` (the dict written by ``save``), checked first.

    Raises DatasetNotFound when it is absent and ChecksumError when it fails its sidecar;
    both messages end with ``fetch_hint``, the command that (re)fetches it.
    """
    path = dataset_path(name)
    if not path.exists():
        raise DatasetNotFound(f"{name} is not in the cache ({path}). Fetch it with:\n"
                              f"    {fetch_hint}")
    if not is_verified(path):
        raise ChecksumError(f"{path} does not match its checksum file {_sidecar(path).name} "
                            f"(changed, truncated, or never verified). Fetch it again with:\n"
                            f"    {fetch_hint} --force")
    with np.load(path, allow_pickle=False) as f:
        return {key: f[key] for key in f.files}


def unfinished():
    """[(path, size_bytes)] of what killed fetches left in the cache (or fetches running now);
    the next fetch of the same dataset removes them."""
    folder = cache_dir()
    if not folder.is_dir():
        return []
    return [(path, sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
             if path.is_dir() else path.stat().st_size)
            for path in sorted(folder.iterdir()) if files.is_unfinished(path)]


def cached():
    """[(name, path, size_bytes, verified)] for each dataset present in the cache."""
    listing = []
    for name in FETCHABLE:
        path = dataset_path(name)
        if path.exists():
            listing.append((name, path, path.stat().st_size, is_verified(path)))
    return listing
