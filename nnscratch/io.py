"""Save and load models: weights as plain arrays in one .npz, architecture as JSON beside them.

A file written by ``save`` is an ordinary NumPy archive, readable without pickle::

    "architecture"        a 0-d string array holding the JSON below
    "conv2d_1.W", ...     one array per parameter, "layer name.parameter name"

    {"format": "nnscratch.Sequential", "version": 1, "input_shape": [1, 28, 28],
     "layers": [{"type": "Conv2D", "name": "conv2d_1", "config": {...}}, ...]}

``load`` first checks that the archive holds exactly the parameters the architecture needs,
floating point and with the right shapes (computed from each layer's config, so that a file
that declares a huge layer allocates nothing), then rebuilds the layers and fills them in.
"""

import json
import zipfile

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


def layer_entries(spec):
    """(layer class, entry) for every layer of ``architecture(model)``'s output, checked."""
    if not isinstance(spec, dict):
        raise ValueError(f"the architecture must be a JSON object, got {type(spec).__name__}")
    if spec.get("format") != FORMAT or spec.get("version") != VERSION:
        raise ValueError(f"not an nnscratch model file (format {spec.get('format')!r}, "
                         f"version {spec.get('version')!r})")
    if not isinstance(spec.get("layers"), list) or "input_shape" not in spec:
        raise ValueError("the architecture needs a list of 'layers' and an 'input_shape'")
    known = [name for name in layer_types.__all__ if name != "Layer"]   # not the base class
    entries = []
    for i, entry in enumerate(spec["layers"]):
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)
                and isinstance(entry.get("config"), dict)):
            raise ValueError(f"layer {i} needs a 'type', a 'name' and a 'config' object, got "
                             f"{entry!r}")
        if entry.get("type") not in known:
            raise ValueError(f"unknown layer type {entry.get('type')!r} (layer "
                             f"{entry['name']!r}); known: {known}")
        entries.append((getattr(layer_types, entry["type"]), entry))
    return entries


def declared_shapes(spec):
    """{"layer.param": shape} of the model ``spec`` describes, from the layers' configs alone:
    nothing is built, so a file that declares a layer too big to allocate is refused cheaply."""
    shapes = {}
    for cls, entry in layer_entries(spec):
        try:
            for key, shape in cls.param_shapes(entry["config"]).items():
                shapes[f"{entry['name']}.{key}"] = tuple(shape)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"layer {entry['name']!r} ({entry['type']}): bad config "
                             f"{entry['config']!r} ({type(error).__name__}: {error})") from error
    return shapes


def build_from_architecture(spec):
    """A Sequential with freshly initialised parameters, from ``architecture(model)``'s output."""
    built = []
    for cls, entry in layer_entries(spec):
        try:
            built.append(cls(**entry["config"], name=entry["name"]))
        except (TypeError, ValueError) as error:   # an option it does not take, a bad value
            raise ValueError(f"layer {entry['name']!r} ({entry['type']}): {error}") from error
    return Sequential(built, input_shape=spec["input_shape"])


def check_arrays(shapes, arrays):
    """Refuse ``arrays`` ({"layer.param": array}) unless they are exactly the parameters
    ``shapes`` ({"layer.param": shape}) lists, with those shapes."""
    missing = sorted(set(shapes) - set(arrays))
    extra = sorted(set(arrays) - set(shapes))
    if missing or extra:
        raise ValueError(f"parameters do not match the architecture: missing {missing}, "
                         f"unexpected {extra}")
    for name, shape in shapes.items():
        if tuple(arrays[name].shape) != tuple(shape):
            raise ValueError(f"parameter {name} has shape {tuple(arrays[name].shape)}, "
                             f"the architecture needs {tuple(shape)}")


def set_weights(model, arrays):
    """Copy ``arrays`` ({"layer.param": array}) into ``model``, after checking that names and
    shapes match exactly; the arrays keep the model's dtype and device."""
    expected = {name: value for name, value, _ in model.parameters()}
    check_arrays({name: value.shape for name, value in expected.items()}, arrays)
    for name, value in expected.items():
        value[...] = arrays[name]


def read_npz(path, what):
    """Every array of the .npz archive at ``path``, read whole and without pickle: {name: array}.

    A missing file or a folder raises the usual OSError; a file that is not a complete,
    uncorrupted archive, a ValueError that names it as not a readable ``what``."""
    with open(path, "rb") as file:
        try:
            if not zipfile.is_zipfile(file):
                raise ValueError("not a complete .npz (zip) archive")
            file.seek(0)
            with np.load(file, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except (ValueError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"{path} is not a readable {what} ({error})") from error


def parse_architecture(entry):
    """The JSON of the "architecture" entry of a model file (None: the file has none)."""
    if entry is None:
        raise ValueError("no 'architecture' entry; not an nnscratch model file")
    try:
        return json.loads(str(entry))
    except json.JSONDecodeError as error:
        raise ValueError(f"its 'architecture' entry is not JSON ({error}); not an nnscratch "
                         "model file") from error


def load(path):
    """The model saved at ``path``; its logits equal the saved model's exactly.

    Everything is checked before a layer is built: a file that is not an nnscratch model, or
    whose arrays are not floating point or not shaped as its architecture declares, is a
    ValueError that names it."""
    arrays = read_npz(path, "nnscratch model file")
    try:
        spec = parse_architecture(arrays.pop("architecture", None))
        check_arrays(declared_shapes(spec), arrays)
        for name, value in arrays.items():
            if not np.issubdtype(value.dtype, np.floating):
                raise ValueError(f"parameter {name} is {value.dtype}, not floating point")
            if not np.isfinite(value).all():
                raise ValueError(f"parameter {name} holds NaN or inf")
        model = build_from_architecture(spec)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error
    dtypes = {a.dtype for a in arrays.values()}
    if len(dtypes) == 1:          # a float64 model comes back as float64
        model.astype(dtypes.pop())
    set_weights(model, arrays)
    return model
