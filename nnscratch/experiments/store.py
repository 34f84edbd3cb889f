"""A finished stage's output on disk and back: ``save(folder, output, record)``, ``load(folder)``.

An output is a dict {name: value}, each name a Python identifier, each value one of::

    a NumPy array (not of objects)       arrays.npz, one member per array, read without pickle
    an nnscratch Sequential              NAME.model.npz (``nnscratch.io``: weights, architecture)
    JSON: None, bool, int, float, str,   stage.json, under "values"
          lists and str-keyed dicts of them

stage.json also keeps the stage's ``record`` (study, stage, version, hash, configuration slice,
the hashes of the stages it used, how long it took) and the kind of every value. The folder is
written through ``files.atomic_dir``, so it exists only once complete.

What ``load`` returns equals what ``save`` was given: arrays of the same dtype, shape and
values; models with the same weights (on the CPU); the same JSON. What JSON would silently
change (a tuple into a list, an int key into a str) and what it cannot hold (a NumPy integer)
is refused when saved, with a message saying what to return instead. Loaded arrays are
read-only: a stage that changed its inputs in place would make a run that computed them
differ from one that found them cached.
"""

import json
import math
import zipfile

import numpy as np

from nnscratch import files, io
from nnscratch.model import Sequential

RECORD = "stage.json"
ARRAYS = "arrays.npz"
MODEL_SUFFIX = ".model.npz"


def kind_of(name, value, stage):
    """"array", "model" or "json": how ``value`` (the output ``name`` of ``stage``) is kept;
    a TypeError or ValueError that says what is wrong with one that cannot be kept exactly."""
    where = f"stage {stage!r}, output {name!r}"
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"{where}: an array of Python objects cannot be stored without "
                            "pickle; return a numeric array, or JSON")
        return "array"
    if isinstance(value, Sequential):
        return "model"
    problem = json_problem(value)
    if problem:
        raise TypeError(f"{where}: {problem}; an output holds NumPy arrays (on the host: "
                        "backend.to_numpy), Sequential models and JSON values")
    return "json"


def json_problem(value):
    """What keeps ``value`` from coming back from JSON as it is (None: nothing)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return None      # (NumPy's float64 is a float, and comes back equal)
    if isinstance(value, list):
        return next(filter(None, map(json_problem, value)), None)
    if isinstance(value, dict):
        keys = [key for key in value if not isinstance(key, str)]
        if keys:
            return f"dict keys must be strings (JSON makes them so), got {keys[0]!r}"
        return next(filter(None, map(json_problem, value.values())), None)
    if isinstance(value, tuple):
        return f"a tuple comes back from JSON as a list: return a list, got {value!r}"
    if isinstance(value, np.generic):
        return (f"a NumPy {value.dtype} scalar is not JSON: return int(...), float(...) or "
                f"bool(...), got {value!r}")
    return f"a {type(value).__name__} cannot be stored"


def check_output(output, stage):
    """{name: kind} of a stage's ``output``, after checking it can be stored exactly."""
    if not isinstance(output, dict):
        raise TypeError(f"stage {stage!r} must return a dict {{name: value}}, got "
                        f"{type(output).__name__}")
    for name in output:
        if not (isinstance(name, str) and name.isidentifier() and name.isascii()):
            raise ValueError(f"stage {stage!r}: output names must be Python identifiers, "
                             f"got {name!r}")
    return {name: kind_of(name, value, stage) for name, value in output.items()}


def write_arrays(path, arrays):
    """An uncompressed .npz holding ``arrays`` ({name: array}), as ``np.savez`` writes it but
    for any name (savez takes names as keywords, so "file" would clash), without pickle."""
    with files.atomic_open(path) as f, zipfile.ZipFile(f, "w") as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def save(folder, output, record):
    """Write the stage ``record["stage"]``'s ``output`` into the new folder ``folder``."""
    kinds = check_output(output, record["stage"])
    values = {name: value for name, value in output.items() if kinds[name] == "json"}
    text = json.dumps({**record, "kinds": kinds, "values": values}, indent=1)
    with files.atomic_dir(folder) as staging:
        arrays = {name: value for name, value in output.items() if kinds[name] == "array"}
        if arrays:
            write_arrays(staging / ARRAYS, arrays)
        for name, kind in kinds.items():
            if kind == "model":
                io.save(output[name], staging / f"{name}{MODEL_SUFFIX}")
        files.atomic_write(staging / RECORD, text)


def load(folder):
    """(output, record) of the stage saved in ``folder``; a ValueError naming the folder, and
    saying to delete it, when it is not a complete stage output."""
    try:
        saved = json.loads((folder / RECORD).read_text())
        kinds = saved.pop("kinds")
        values = saved.pop("values")
        arrays = {}
        if "array" in kinds.values():
            arrays = io.read_npz(folder / ARRAYS, "stage output")
        output = {}
        for name, kind in kinds.items():
            if kind == "array":
                output[name] = arrays[name]
                output[name].flags.writeable = False
            elif kind == "model":
                output[name] = io.load(folder / f"{name}{MODEL_SUFFIX}")
            else:
                output[name] = values[name]
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"{folder} is not a complete stage output ({type(error).__name__}: "
                         f"{error}); delete it to compute the stage again") from error
    return output, saved


def outputs_equal(a, b):
    """True when two outputs hold the same names and equal values (arrays: same dtype and
    values; models: same architecture and weights; JSON: equal, NaN equal to NaN)."""
    if a.keys() != b.keys():
        return False
    return all(values_equal(a[name], b[name]) for name in a)


def values_equal(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, Sequential) or isinstance(b, Sequential):
        return (isinstance(a, Sequential) and isinstance(b, Sequential)
                and io.architecture(a) == io.architecture(b)
                and outputs_equal(io.weights(a), io.weights(b)))
    if isinstance(a, float) and isinstance(b, float):     # NumPy's float64 equals its float
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(values_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return outputs_equal(a, b)
    return type(a) is type(b) and a == b
