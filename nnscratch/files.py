"""The one way nnscratch writes files: whole, or not at all.

::

    atomic_write(path, content)          bytes, str (UTF-8), or {name: array} (an .npz)
    with atomic_open(path) as f: ...     a binary file, for content written in pieces
    with atomic_dir(path) as staging:    a folder filled under a temporary name, then
        ...                              renamed to ``path``
    with scratch_dir(path) as scratch:   a folder for intermediate files (downloads),
        ...                              removed whole when the block ends
    remove_unfinished(folder)            delete what killed writes left in ``folder``
    with locked(folder): ...             one process at a time in ``folder`` (FolderInUse)
    refuse_unwritable(path)              PermissionError now, not after an hour's work
    refuse_unless_replaceable(out, ...)  ValueError unless replacing the folder ``out`` whole
                                         loses nothing but an earlier output of its writer

How: the content goes to a hidden sibling ``.NAME.XXXXXXXX.tmp`` of ``path`` (the same folder,
so the same file system, so the final ``os.replace`` is atomic), is flushed and fsynced, then
renamed over ``path``. A reader, or a run killed mid-write, sees the old content or the new,
never half of it. On any error the temporary is removed and the error goes on.

Permissions are those of an ordinary ``open(path, "w")``: 0o666 (files) or 0o777 (folders)
less the umask, because the temporary is created with ``open(..., "x")`` and ``os.mkdir``
(``tempfile.mkstemp`` would make it private to the user, 0o600).

Only SIGKILL (or a power cut) can leave a temporary behind. Nothing reads it; it is recognised
by its name, here and nowhere else, and ``remove_unfinished`` deletes it.
"""

import contextlib
import os
import re
import secrets
import shutil
from pathlib import Path

import numpy as np

_UNFINISHED = re.compile(r"^\.(.+)\.[0-9a-f]{8}\.tmp$")    # group 1: the name written


def _temporary_sibling(path):
    """A fresh hidden name beside ``path``, matching ``_UNFINISHED``."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def atomic_open(path):
    """A binary file opened for writing that becomes ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path, content):
    """Write ``content`` to ``path`` atomically; returns ``path`` as a Path.

    content: bytes; str (written as UTF-8); or a dict {name: array}, written as an
    uncompressed NumPy archive (``np.savez``, no pickle: object arrays are refused).
    """
    path = Path(path)
    if isinstance(content, str):
        content = content.encode("utf-8")
    with atomic_open(path) as f:
        if isinstance(content, dict):
            np.savez(f, **content)
        else:
            f.write(content)
    return path


@contextlib.contextmanager
def atomic_dir(path, replace=False):
    """A staging folder that is renamed to ``path`` when the block succeeds.

    The block fills the yielded folder (a hidden sibling of ``path``); on any error it is
    removed whole. An existing ``path`` is an error (FileExistsError) unless ``replace``: then
    it is renamed aside, the new folder takes its place, and only then is the old one deleted,
    so that ``path`` is at every moment either the old folder or the new one. Whether an
    existing folder may be replaced is the caller's judgement; this function replaces it
    whatever it holds.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not replace:
        raise FileExistsError(f"{path} already exists")
    staging = _temporary_sibling(path)
    os.mkdir(staging)
    try:
        yield staging
        if path.exists():
            old = _temporary_sibling(path)
            os.rename(path, old)
            os.rename(staging, path)
            shutil.rmtree(old)
        else:
            os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def scratch_dir(path):
    """A folder for intermediate files (downloads, extracted archives), removed whole when the
    block ends, however it ends.

    It is a hidden sibling named like a write of ``path`` in progress (nothing is ever renamed
    to ``path``), so that ``remove_unfinished`` deletes it if a kill leaves it behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = _temporary_sibling(path)
    os.mkdir(scratch)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def is_unfinished(path):
    """True when ``path`` is named like the temporary of a write in progress or killed."""
    return bool(_UNFINISHED.match(Path(path).name))


def remove_unfinished(folder, targets=None):
    """Delete the temporaries (files and staging folders) that killed writes left directly
    inside ``folder``; returns the paths removed.

    targets: names in ``folder`` (e.g. ``["mnist.npz"]``); when given, only the temporaries of
    writes to those go. Call it only when no process is writing them: a write in progress has
    a temporary of the same form.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        unfinished = _UNFINISHED.match(entry.name)
        if unfinished and (targets is None or unfinished.group(1) in targets):
            removed.append(entry)
    for entry in removed:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return removed


# ------------------------------------------------------------------------------------ locking

LOCK = ".lock"      # the lock file ``locked`` keeps in a folder while it holds it


class FolderInUse(OSError):
    """``locked(folder)`` found the folder held by another process."""


@contextlib.contextmanager
def locked(folder):
    """Hold ``folder``'s lock for the block, or raise FolderInUse at once if another process
    holds it.

    The lock is an advisory ``fcntl.flock`` on ``folder/.lock``, which holds the holder's
    process id while it lasts and is removed when the block ends. It keeps out only processes
    that ask for it, and the kernel releases it when its process ends, however it ends: a killed
    run never leaves a folder locked (its stale ``.lock`` is simply taken over). Without fcntl
    (Windows), the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:
        yield None
        return
    path = Path(folder) / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise FolderInUse(f"{folder} is in use by another run (process {holder}, holding "
                              f"{path}): wait for it to end, or use another folder") from None
        # the holder before us may have removed the file as we opened it: lock the new one
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        path.unlink(missing_ok=True)    # while still held, so no one locks a removed file
        os.close(fd)


def refuse_unwritable(path):
    """Raise an OSError naming ``path`` now if it could not be created or written later: the
    nearest of ``path`` and its parents that exists must be a folder this process may write
    in. (A check in advance, for the user's sake; the writes themselves stay careful.)"""
    path = Path(path).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(f"{existing} is a file, not a folder: cannot write {path}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{existing} is not writable: cannot write {path}")


# --------------------------------------------------------------------- replacing a folder whole

def absolute(path):
    """``path`` as an absolute Path ending in a real name (``.`` and ``..`` resolved), its last
    part left unresolved, so that a link is still seen as a link."""
    path = Path(path).absolute()
    if path.name in ("", ".", ".."):
        return path.resolve()
    return path.parent.resolve() / path.name


def refuse_unless_replaceable(out, writer, own_files, figure_folders=()):
    """Raise ValueError unless replacing the folder ``out`` whole (``atomic_dir(out,
    replace=True)``) loses nothing but an earlier output of ``writer`` (the demo, the attack
    report, a reproduction): ``out`` must be absent, or a folder holding nothing but the plain
    files named in ``own_files`` and the folders named in ``figure_folders`` holding nothing but
    plain .png files. Links count as the user's. The current folder and those that hold it are
    refused whatever they hold (replacing one would pull the folder from under the user's
    shell). ``out`` is absolute (``absolute``); call this before the work, and again inside
    ``atomic_dir``, just before the replacement, in case files appeared meanwhile."""
    here = Path.cwd().resolve()
    if os.path.realpath(out) in map(str, (here, *here.parents)):
        raise ValueError(f"--out {out} is the current folder or holds it, which {writer} "
                         "would replace whole: choose a new folder")
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_symlink() or not out.is_dir():
        raise ValueError(f"--out {out} is a file or a link, not a folder: choose another --out")
    others = [entry.name for entry in sorted(out.iterdir())
              if not _is_own(entry, own_files, figure_folders)]
    if others:
        listed = ", ".join([*own_files, *(f"{name}/" for name in figure_folders)])
        raise ValueError(f"{out} holds {', '.join(others)}, which {writer} did not write: it "
                         f"replaces only a folder of its own files ({listed}). Choose another "
                         "--out, or move them")


def _is_own(entry, own_files, figure_folders):
    """True for a plain file named in ``own_files``, or a folder named in ``figure_folders``
    that holds nothing but plain .png files."""
    if entry.is_symlink():
        return False
    if entry.name in own_files:
        return entry.is_file()
    return entry.name in figure_folders and entry.is_dir() and all(
        figure.suffix == ".png" and figure.is_file() and not figure.is_symlink()
        for figure in entry.iterdir())
