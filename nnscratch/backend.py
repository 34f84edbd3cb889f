"""The one backend switch: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every operation in nnscratch asks its input which array module to use::

    xp = get_array_module(x)
    y = xp.maximum(x, 0)

so the same code runs on both. Importing nnscratch never requires CuPy: when it is absent (or
has no usable GPU), ``cupy`` below is ``None`` and every array is a NumPy array.
"""

import numpy as np

try:  # CuPy is an optional extra (pip install "nnscratch[gpu]").
    import cupy

    cupy.cuda.runtime.getDeviceCount()  # raises when no driver or GPU is present
except Exception:  # ImportError, or a CUDA error from a machine without a GPU
    cupy = None


def gpu_available():
    """True when CuPy is installed and sees at least one GPU."""
    return cupy is not None


def get_array_module(x):
    """The module (``numpy`` or ``cupy``) that owns array ``x``."""
    if cupy is not None and isinstance(x, cupy.ndarray):
        return cupy
    return np


def to_device(x, device):
    """Move array ``x`` to ``device`` ("cpu" or "gpu"); a no-op when it is already there."""
    if device == "cpu":
        return to_numpy(x)
    if device == "gpu":
        if cupy is None:
            raise RuntimeError("device 'gpu' needs CuPy and a GPU: pip install 'nnscratch[gpu]'")
        return cupy.asarray(x)
    raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")


def to_numpy(x):
    """A NumPy copy (or the array itself) of ``x``, wherever it lives."""
    if get_array_module(x) is np:
        return np.asarray(x)
    return cupy.asnumpy(x)


def array_module_on(device):
    """The array module of ``device``: numpy for "cpu", cupy for "gpu"."""
    if device == "cpu":
        return np
    if device == "gpu" and cupy is not None:
        return cupy
    to_device(np.empty(0), device)    # raises the message that says what is wrong


def device_of(x):
    """"gpu" for a CuPy array, "cpu" for anything else."""
    return "cpu" if get_array_module(x) is np else "gpu"


def new_rng(seed, xp=np):
    """A seeded random generator of module ``xp`` (``numpy`` or ``cupy``).

    Both provide ``Generator.random(size, dtype=...)`` and ``standard_normal``; the two
    modules' streams differ, so a seed reproduces results on one backend only.
    """
    return xp.random.default_rng(seed)
