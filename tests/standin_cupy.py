"""A CPU stand-in for CuPy, to test the GPU code path on a machine without a GPU.

What can go wrong on CuPy that NumPy never shows: an operation that bypasses the input's array
module (``np.zeros`` instead of ``xp.zeros``, ``np.random`` instead of the model's generator,
a NumPy constant array mixed into device data). On CuPy those raise or silently copy to the
host. Here, ``DeviceArray`` is an ndarray subclass that behaves like a CuPy array in exactly
that respect:

- mixing it with a plain NumPy array (in arithmetic, ufuncs, indexing, assignment) raises
  ``TypeError``, as CuPy does;
- calling a ``numpy.*`` function on it raises ``TypeError`` (strictly: CuPy would dispatch
  some of these, but code that means to run on the device should call ``xp.*``);
- results of operations stay ``DeviceArray``.

``module`` imitates the ``cupy`` module: ``module.ndarray``, every NumPy function (taking and
returning device arrays, refusing host arrays), ``asarray``/``asnumpy`` for explicit
transfers, ``random.default_rng`` and ``lib.stride_tricks.as_strided``. The tests install it
as ``nnscratch.backend.cupy``, so
``get_array_module`` hands it to every layer, exactly as it would hand out real CuPy.
"""

import types

import numpy as np


class DeviceArray(np.ndarray):
    """An array "on the device": refuses to be mixed with host (NumPy) arrays."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        refuse_host_arrays(inputs + (out or ()), f"numpy.{ufunc.__name__}")
        inputs = to_host_views(inputs)
        if out is not None:
            kwargs["out"] = to_host_views(out)
        result = getattr(ufunc, method)(*inputs, **kwargs)
        return out[0] if out is not None and len(out) == 1 else to_device_views(result)

    def __array_function__(self, func, types_, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} called on a device array; "
                        f"use the input's array module (xp.{func.__name__})")

    def __getitem__(self, key):
        refuse_host_arrays(key if isinstance(key, tuple) else (key,), "indexing")
        return super().__getitem__(to_host_views(key) if isinstance(key, tuple) else
                                   to_host_views((key,))[0])

    def __setitem__(self, key, value):
        refuse_host_arrays((value,) + (key if isinstance(key, tuple) else (key,)), "assignment")
        key = to_host_views(key) if isinstance(key, tuple) else to_host_views((key,))[0]
        super().__setitem__(key, to_host_views((value,))[0])


def is_host_array(a):
    return isinstance(a, np.ndarray) and not isinstance(a, DeviceArray) and a.ndim > 0


def refuse_host_arrays(values, where):
    for a in values:
        if isinstance(a, (list, tuple)):
            refuse_host_arrays(a, where)
        elif is_host_array(a):
            raise TypeError(f"{where}: a NumPy (host) array of shape {a.shape} mixed with "
                            "device arrays; allocate it with the input's array module")


def to_host_views(values):
    """Plain-ndarray views of device arrays (recursing into lists and tuples)."""
    return type(values)(
        to_host_views(a) if isinstance(a, (list, tuple))
        else a.view(np.ndarray) if isinstance(a, DeviceArray) else a
        for a in values)


def to_device_views(result):
    if isinstance(result, tuple):
        return tuple(to_device_views(r) for r in result)
    if isinstance(result, np.ndarray) and not isinstance(result, DeviceArray):
        return result.view(DeviceArray)
    return result


def device_function(func, name):
    """``func`` from NumPy, taking and returning device arrays and refusing host arrays."""

    def wrapped(*args, **kwargs):
        refuse_host_arrays(args + tuple(kwargs.values()), f"xp.{name}")
        result = func(*to_host_views(args),
                      **dict(zip(kwargs, to_host_views(tuple(kwargs.values())))))
        return to_device_views(result)

    return wrapped


class DeviceGenerator:
    """``cupy.random.Generator``'s surface: draws land on the device."""

    def __init__(self, seed):
        self._host = np.random.default_rng(seed)

    def __getattr__(self, name):
        draw = getattr(self._host, name)
        return lambda *args, **kwargs: to_device_views(np.asarray(draw(*args, **kwargs)))


class StandinCupy(types.ModuleType):
    """The ``cupy`` module's surface, over NumPy."""

    ndarray = DeviceArray

    def __init__(self):
        super().__init__("standin_cupy")
        self.random = types.SimpleNamespace(default_rng=DeviceGenerator)
        self.lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(
            as_strided=device_function(np.lib.stride_tricks.as_strided, "lib.stride_tricks.as_strided")))

    @staticmethod
    def asarray(a, dtype=None):
        """Host -> device (an explicit transfer, allowed)."""
        a = a.view(np.ndarray) if isinstance(a, DeviceArray) else a
        return np.array(a, dtype=dtype).view(DeviceArray)

    @staticmethod
    def asnumpy(a):
        """Device -> host (an explicit transfer, allowed)."""
        return np.array(a.view(np.ndarray) if isinstance(a, DeviceArray) else a)

    def __getattr__(self, name):
        value = getattr(np, name)
        if callable(value) and not isinstance(value, type):
            return device_function(value, name)
        return value          # dtypes, scalar types and constants


module = StandinCupy()
