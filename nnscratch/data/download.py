"""Download one file, checked against its SHA-256, with a progress bar on a terminal."""

import hashlib
import urllib.request
from pathlib import Path

from tqdm import tqdm

from nnscratch import files
from nnscratch.data.cache import ChecksumError

# A module attribute rather than a direct call, so tests can serve fake responses.
urlopen = urllib.request.urlopen


class IncompleteDownload(OSError):
    """The transfer ended before its Content-Length."""


def is_url(source):
    """True for "http://...", "https://..." and "file://..." strings."""
    return isinstance(source, str) and source.startswith(("http://", "https://", "file://"))


def download(url, dest, sha256, timeout=60):
    """Fetch ``url`` into ``dest`` and return ``dest`` (a Path).

    The bytes go to a temporary file (``files.atomic_open``) while their SHA-256 is computed;
    only a transfer that is complete (as long as its Content-Length, when the server sends one)
    and whose digest equals ``sha256`` is moved to ``dest``. Otherwise nothing is left behind
    and IncompleteDownload or ChecksumError is raised. The progress bar is silent when stderr
    is not a terminal.
    """
    dest = Path(dest)
    digest = hashlib.sha256()
    received = 0
    with urlopen(url, timeout=timeout) as response, files.atomic_open(dest) as f:
        length = response.headers.get("Content-Length")
        total = int(length) if length else None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False,
                  disable=None) as bar:   # disable=None: off when not a terminal
            for chunk in iter(lambda: response.read(1 << 16), b""):
                f.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if total is not None and received != total:
            raise IncompleteDownload(f"{url}: got {received} of {total} bytes")
        if digest.hexdigest() != sha256:
            raise ChecksumError(f"{url}: SHA-256 {digest.hexdigest()}, expected {sha256}")
    return dest
