"""Saving and loading models: an ordinary .npz (no pickle) with the architecture as JSON."""

import json
import os
import re

import numpy as np
import pytest

from nnscratch import files, zoo
from nnscratch.io import architecture, load, save
from nnscratch.layers import (AvgPool2D, Conv2D, Conv2DTranspose, Dense, Dropout, Flatten,
                              GaussianBlur, LeakyReLU, MaxPool2D, ReLU, Reshape, Sigmoid, Tanh)
from nnscratch.model import Sequential


def images(model, n=2, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).random((n,) + model.input_shape).astype(dtype)


def every_layer_type():
    """One model with every layer type and the less common constructor arguments."""
    return Sequential([
        Conv2D(2, 4, (3, 2), padding=(1, 0), rng=1), LeakyReLU(alpha=0.2), AvgPool2D(2),
        GaussianBlur(0.8, radius=2), Conv2D(4, 5, 3, padding="same", rng=2), Tanh(),
        MaxPool2D(3, stride=2), Dropout(0.3), Flatten(), Dense(10, 6, rng=3), Sigmoid(),
        Reshape((1, 2, 3)), Conv2DTranspose(1, 2, 3, stride=2, padding=1, rng=5), Flatten(),
        ReLU(), Dense(30, 3, rng=4),
    ], input_shape=(2, 11, 9))


def assert_same_model(loaded, model, x):
    assert architecture(loaded) == architecture(model)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    for (name, ours, _), (_, theirs, _) in zip(loaded.parameters(), model.parameters()):
        assert ours.dtype == theirs.dtype, name
        np.testing.assert_array_equal(ours, theirs, err_msg=name)
    np.testing.assert_array_equal(loaded.logits(x), model.logits(x))


# --------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("name", sorted(zoo.BUILDERS))
def test_round_trip_zoo_model(name, tmp_path):
    model = zoo.build(name, seed=3)
    path = save(model, tmp_path / f"{name}.npz")
    loaded = load(path)
    assert loaded.input_shape == model.input_shape
    assert all(p.dtype == np.float32 for _, p, _ in loaded.parameters())
    assert_same_model(loaded, model, images(model))


@pytest.mark.parametrize("options", [
    pytest.param({"dropout": 0.5}, id="dropout"),
    pytest.param({"blur_sigma": 1.25}, id="blur")])
def test_round_trip_lenet_variants(options, tmp_path):
    model = zoo.build("lenet", seed=1, **options)
    assert_same_model(load(save(model, tmp_path / "lenet.npz")), model, images(model))


def test_round_trip_every_layer_type(tmp_path):
    model = every_layer_type()
    loaded = load(save(model, tmp_path / "m.npz"))
    assert_same_model(loaded, model, images(model, n=3))
    blur = loaded.layers[3]
    assert (blur.sigma, blur.radius) == (0.8, 2)
    assert loaded.layers[0].pads == ((1, 1), (0, 0))
    assert loaded.layers[1].alpha == 0.2 and loaded.layers[7].p == 0.3
    assert (loaded.layers[6].kernel_size, loaded.layers[6].stride) == (3, 2)


def test_round_trip_without_input_shape(tmp_path):
    model = Sequential([Dense(4, 3, rng=0), ReLU(), Dense(3, 2, rng=1)])
    loaded = load(save(model, tmp_path / "mlp.npz"))
    assert loaded.input_shape is None
    x = np.random.default_rng(0).random((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.logits(x), model.logits(x))


def test_float64_model_comes_back_float64(tmp_path):
    model = zoo.build("lenet", seed=2).astype(np.float64)
    loaded = load(save(model, tmp_path / "lenet64.npz"))
    assert {p.dtype for _, p, _ in loaded.parameters()} == {np.dtype(np.float64)}
    x = images(model, dtype=np.float64)
    assert loaded.logits(x).dtype == np.float64
    assert_same_model(loaded, model, x)


# --------------------------------------------------------------------------- the file format

def test_file_is_an_ordinary_npz(tmp_path):
    model = every_layer_type()
    path = save(model, tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as archive:
        names = [name for name, _, _ in model.parameters()]
        assert set(archive.files) == set(names) | {"architecture"}
        for name, value, _ in model.parameters():
            np.testing.assert_array_equal(archive[name], value)
            assert archive[name].dtype == np.float32
        spec = archive["architecture"]
        assert spec.shape == () and spec.dtype.kind == "U"
        spec = json.loads(str(spec))
    assert spec["format"] == "nnscratch.Sequential" and spec["version"] == 1
    assert spec["input_shape"] == [2, 11, 9]
    assert [entry["type"] for entry in spec["layers"]] == [type(l).__name__ for l in model.layers]
    assert [entry["name"] for entry in spec["layers"]] == [l.name for l in model.layers]
    assert spec["layers"][0]["config"]["kernel_size"] == [3, 2]


def test_save_creates_folders_and_returns_the_path(tmp_path):
    model = zoo.build("binary_cnn")
    path = save(model, tmp_path / "a" / "b" / "model.npz")
    assert path == tmp_path / "a" / "b" / "model.npz" and path.is_file()
    assert_same_model(load(str(path)), model, images(model))


# --------------------------------------------------------------------------- damaged files

def rewrite(source, target, change_arrays=None, change_spec=None):
    """Copy the archive at ``source`` to ``target``, editing its arrays and/or its JSON."""
    with np.load(source, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    spec = json.loads(str(arrays.pop("architecture")))
    if change_arrays:
        change_arrays(arrays)
    if change_spec:
        change_spec(spec)
    np.savez(target, architecture=np.array(json.dumps(spec)), **arrays)
    return target


@pytest.fixture
def saved_lenet(tmp_path):
    return save(zoo.build("lenet"), tmp_path / "lenet.npz")


def test_missing_parameter(saved_lenet, tmp_path):
    path = rewrite(saved_lenet, tmp_path / "bad.npz", lambda a: a.pop("dense_2.b"))
    with pytest.raises(ValueError, match=r"missing.*dense_2\.b"):
        load(path)


def test_extra_parameter(saved_lenet, tmp_path):
    def add(arrays):
        arrays["dense_2.gamma"] = np.ones(10, dtype=np.float32)
    with pytest.raises(ValueError, match=r"dense_2\.gamma"):
        load(rewrite(saved_lenet, tmp_path / "bad.npz", add))


@pytest.mark.parametrize("name,shape", [("conv2d_1.W", (20, 1, 5, 4)), ("dense_1.W", (500, 800)),
                                        ("conv2d_2.b", (49,))])
def test_misshaped_parameter(saved_lenet, tmp_path, name, shape):
    def reshape(arrays):
        arrays[name] = np.zeros(shape, dtype=np.float32)
    with pytest.raises(ValueError) as error:
        load(rewrite(saved_lenet, tmp_path / "bad.npz", reshape))
    assert name in str(error.value) and str(shape) in str(error.value)


def test_pickled_array_is_refused(saved_lenet, tmp_path):
    """An object array (which np.savez pickles) is never unpickled."""
    def poison(arrays):
        arrays["dense_2.b"] = np.array([{"not": "an array"}] * 10, dtype=object)
    with pytest.raises(ValueError, match="allow_pickle"):
        load(rewrite(saved_lenet, tmp_path / "bad.npz", poison))


@pytest.mark.parametrize("kind", ["Conv3D", "BatchNorm2D", "Sequential", "__class__"])
def test_unknown_layer_type(saved_lenet, tmp_path, kind):
    def rename(spec):
        spec["layers"][2]["type"] = kind
    with pytest.raises(ValueError, match=re.escape(f"unknown layer type '{kind}'")):
        load(rewrite(saved_lenet, tmp_path / "bad.npz", change_spec=rename))


def test_base_layer_is_not_a_layer_type(tmp_path):
    model = Sequential([Dense(4, 3, rng=0), ReLU(), Dense(3, 2, rng=1)])
    path = save(model, tmp_path / "mlp.npz")

    def rename(spec):
        spec["layers"][1]["type"] = "Layer"
    with pytest.raises(ValueError, match="unknown layer type 'Layer'"):
        load(rewrite(path, tmp_path / "bad.npz", change_spec=rename))


def test_not_an_nnscratch_file(tmp_path):
    np.savez(tmp_path / "plain.npz", w=np.zeros(3))
    with pytest.raises(ValueError, match="architecture"):
        load(tmp_path / "plain.npz")


def test_wrong_format_or_version(saved_lenet, tmp_path):
    def bump(spec):
        spec["version"] = 2
    with pytest.raises(ValueError, match="version 2"):
        load(rewrite(saved_lenet, tmp_path / "bad.npz", change_spec=bump))


# --------------------------------------------------------------------------- atomic save

def test_save_leaves_no_temporary_file(tmp_path):
    first, second = zoo.build("lenet", seed=0), zoo.build("lenet", seed=1)
    save(first, tmp_path / "model.npz")
    save(second, tmp_path / "model.npz")          # overwrite in place
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    assert_same_model(load(tmp_path / "model.npz"), second, images(second))


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    """A writer that dies half-way (disk full, say) leaves the previous file untouched and no
    temporary file behind."""
    old = zoo.build("lenet", seed=0)
    save(old, tmp_path / "model.npz")

    def dies_half_way(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("No space left on device")

    monkeypatch.setattr(files.np, "savez", dies_half_way)       # the writer save goes through
    with pytest.raises(OSError, match="No space"):
        save(zoo.build("lenet", seed=1), tmp_path / "model.npz")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    assert_same_model(load(tmp_path / "model.npz"), old, images(old))


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saved_file_has_ordinary_permissions(tmp_path):
    old_umask = os.umask(0o022)
    try:
        np.savez(tmp_path / "plain.npz", w=np.zeros(2))
        path = save(Sequential([Dense(2, 2, rng=0)]), tmp_path / "model.npz")
    finally:
        os.umask(old_umask)
    plain_mode = os.stat(tmp_path / "plain.npz").st_mode & 0o777
    assert plain_mode == 0o644
    assert os.stat(path).st_mode & 0o777 == plain_mode
