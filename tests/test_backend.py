"""The backend switch, and proof that the CuPy stand-in catches code that bypasses it."""

import subprocess
import sys

import numpy as np
import pytest

import standin_cupy
from nnscratch import backend
from nnscratch.backend import get_array_module, new_rng, to_device, to_numpy
from nnscratch.layers import Layer, ReLU


class HostAllocatingReLU(Layer):
    """A buggy layer: allocates with numpy instead of the input's array module."""

    def forward(self, x, training=False, rng=None):
        return np.maximum(x, np.zeros(x.shape, dtype=x.dtype))


class HostRandomDropout(Layer):
    """A buggy layer: draws its mask from numpy.random instead of the passed generator."""

    def forward(self, x, training=False, rng=None):
        return x * (np.random.default_rng(0).random(x.shape) > 0.5)


@pytest.fixture
def standin(monkeypatch):
    monkeypatch.setattr(backend, "cupy", standin_cupy.module)
    return standin_cupy.module


@pytest.mark.parametrize("buggy", [HostAllocatingReLU(), HostRandomDropout()])
def test_standin_catches_operations_that_bypass_the_array_module(standin, buggy):
    x = standin.asarray(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="array"):
        buggy.forward(x)
    assert isinstance(ReLU().forward(x), standin.ndarray)    # the correct layer passes


def test_standin_dispatch_and_transfers(standin):
    x = standin.asarray(np.arange(6.0).reshape(2, 3))
    assert get_array_module(x) is standin
    assert get_array_module(np.ones(2)) is np
    assert backend.device_of(x) == "gpu"
    host = to_numpy(x)
    assert type(host) is np.ndarray
    np.testing.assert_array_equal(host, np.arange(6.0).reshape(2, 3))
    assert isinstance(to_device(host, "gpu"), standin.ndarray)
    assert isinstance(new_rng(0, standin).random((2, 2), dtype=np.float32), standin.ndarray)


def test_numpy_backend_round_trip():
    x = np.arange(4.0)
    assert to_device(x, "cpu") is x
    assert to_numpy(x) is x
    with pytest.raises(ValueError, match="'cpu' or 'gpu'"):
        to_device(x, "tpu")
    draws = new_rng(3).random(5)
    np.testing.assert_array_equal(draws, new_rng(3).random(5))


def test_importing_nnscratch_never_needs_cupy():
    code = ("import sys; sys.modules['cupy'] = None\n"
            "import nnscratch.backend as b, nnscratch.model, nnscratch.zoo\n"
            "assert b.cupy is None and not b.gpu_available()\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
def test_real_cupy_round_trip():
    if backend.cupy is None:
        pytest.skip("CuPy with a GPU is not available")
    x = np.arange(6, dtype=np.float32)
    on_gpu = to_device(x, "gpu")
    assert get_array_module(on_gpu) is backend.cupy
    np.testing.assert_array_equal(to_numpy(on_gpu), x)
