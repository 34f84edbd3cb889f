"""Save and load models: weights as plain arrays in one .npz, architecture as JSON beside them.

A file written by ``save`` is an ordinary NumPy archive, readable without pickle::

    "architecture"        a 0-d string array holding the JSON below
    "conv2d_1.W", ...     one array per parameter, "layer name.parameter name"

    {"format": "nnscratch.Sequential", "version": 1, "input_shape": [1, 28, 28],
     "layers": [{"type": "Conv2D", "name": "conv2d_1", "config": {...}}, ...]}

``load`` rebuilds the layers from their types and configs, then checks that the archive holds
exactly the parameters the architecture needs, with the right shapes, before using any of them.
"""

import json

import numpy as np

from nnscratch import files
from nnscratch import layers as layer_types
from nnscratch.backend import to_numpy
from nnscratch.model import Sequential

FORMAT, VERSION = "nnscratch.Sequential", 1


def architecture(model):
    """The JSON-ready description of ``model``'s layers."""
    return {"format": FORMAT, "version": VERSION,
            "input_shape": list(model.input_shape) if model.input_shape else None,
            "layers": [{"type": type(layer).__name__, "name": layer.name, "config": layer.config()}
                       for layer in model.layers]}


def weights(model):
    """{"layer.param": NumPy array} for every parameter of ``model``: a copy, which later
    training steps (they update the parameters in place) leave alone."""
    return {name: to_numpy(value).copy() for name, value, _ in model.parameters()}


def save(model, path):
    """Write ``model`` to ``path`` (a .npz file), atomically; returns ``path`` as a Path."""
    arrays = weights(model)
    arrays["architecture"] = np.array(json.dumps(architecture(model)))
    return files.atomic_write(path, arrays)


def build_from_architecture(spec):
    """A Sequential with freshly initialised parameters, from ``architecture(model)``'s output."""
    if spec.get("format") != FORMAT or spec.get("version") != VERSION:
        raise ValueError(f"not an nnscratch model file (format {spec.get('format')!r}, "
                         f"version {spec.get('version')!r})")
    known = [name for name in layer_types.__all__ if name != "Layer"]   # not the base class
    built = []
    for entry in spec["layers"]:
        if entry["type"] not in known:
            raise ValueError(f"unknown layer type {entry['type']!r} (layer {entry['name']!r}); "
                             f"known: {known}")
        cls = getattr(layer_types, entry["type"])
        built.append(cls(**entry["config"], name=entry["name"]))
    return Sequential(built, input_shape=spec["input_shape"])


def set_weights(model, arrays):
    """Copy ``arrays`` ({"layer.param": array}) into ``model``, after checking that names and
    shapes match exactly; the arrays keep the model's dtype and device."""
    expected = {name: value for name, value, _ in model.parameters()}
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise ValueError(f"parameters do not match the architecture: missing {missing}, "
                         f"unexpected {extra}")
    for name, value in expected.items():
        if tuple(arrays[name].shape) != tuple(value.shape):
            raise ValueError(f"parameter {name} has shape {tuple(arrays[name].shape)}, "
                             f"the architecture needs {tuple(value.shape)}")
    for name, value in expected.items():
        value[...] = arrays[name]


def load(path):
    """The model saved at ``path``; its logits equal the saved model's exactly."""
    with np.load(path, allow_pickle=False) as archive:
        if "architecture" not in archive.files:
            raise ValueError(f"{path}: no 'architecture' entry; not an nnscratch model file")
        model = build_from_architecture(json.loads(str(archive["architecture"])))
        arrays = {k: archive[k] for k in archive.files if k != "architecture"}
    dtypes = {a.dtype for a in arrays.values()}
    if len(dtypes) == 1:          # a float64 model comes back as float64
        model.astype(dtypes.pop())
    set_weights(model, arrays)
    return model
