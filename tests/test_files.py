"""nnscratch.files: whole files or none, ordinary permissions, staging folders, and the clean-up
of what a killed write leaves."""

import os

import numpy as np
import pytest

from nnscratch import files


def temporaries_beside(path):
    """The temporaries beside ``path``: what a write to it left, or leaves while in progress."""
    return [p for p in path.parent.iterdir() if files.is_unfinished(p)]


# ------------------------------------------------------------------------------- atomic_write

def test_bytes_str_and_arrays_round_trip(tmp_path):
    assert files.atomic_write(tmp_path / "a.bin", b"\x00\xffbytes").read_bytes() == b"\x00\xffbytes"
    assert files.atomic_write(tmp_path / "b.txt", "grüße\n").read_text("utf-8") == "grüße\n"
    arrays = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "y": np.array([3, 1])}
    path = files.atomic_write(tmp_path / "c.npz", arrays)
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["x", "y"]
        for key, value in arrays.items():
            assert archive[key].dtype == value.dtype
            np.testing.assert_array_equal(archive[key], value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.txt", "c.npz"]


def test_write_replaces_old_content_and_creates_folders(tmp_path):
    path = tmp_path / "a" / "b" / "file.txt"
    files.atomic_write(path, "old")
    files.atomic_write(path, "new")
    assert path.read_text() == "new" and temporaries_beside(path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_and_folders_get_ordinary_permissions(tmp_path, umask):
    old_umask = os.umask(umask)
    try:
        written = files.atomic_write(tmp_path / "file.npz", {"w": np.zeros(2)})
        with files.atomic_dir(tmp_path / "folder") as staging:
            files.atomic_write(staging / "inside.txt", "x")
    finally:
        os.umask(old_umask)
    assert os.stat(written).st_mode & 0o777 == 0o666 & ~umask
    assert os.stat(tmp_path / "folder").st_mode & 0o777 == 0o777 & ~umask


def test_an_error_inside_atomic_open_changes_nothing_and_leaves_no_temporary(tmp_path):
    path = files.atomic_write(tmp_path / "data.bin", b"the old content")
    with pytest.raises(OSError, match="disk full"):
        with files.atomic_open(path) as f:
            f.write(b"half of the new")
            assert len(temporaries_beside(path)) == 1        # the write in progress
            raise OSError("disk full")
    assert path.read_bytes() == b"the old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_an_interrupted_first_write_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_open(tmp_path / "new.bin") as f:
            f.write(b"partial")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------- atomic_dir

def test_atomic_dir_renames_the_staging_folder_on_success(tmp_path):
    out = tmp_path / "report"
    with files.atomic_dir(out) as staging:
        assert files.is_unfinished(staging) and staging.parent == tmp_path
        assert not out.exists()                              # nothing under the real name yet
        (staging / "a.txt").write_text("a")
    assert (out / "a.txt").read_text() == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_atomic_dir_removes_the_staging_folder_on_error(tmp_path):
    with pytest.raises(RuntimeError, match="failed"):
        with files.atomic_dir(tmp_path / "report") as staging:
            (staging / "a.txt").write_text("a")
            raise RuntimeError("failed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_refuses_an_existing_path_unless_asked_to_replace_it(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="already exists"):
        with files.atomic_dir(out):
            pytest.fail("the block must not run")
    assert (out / "old.txt").read_text() == "old"
    with files.atomic_dir(out, replace=True) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"]   # the old folder is gone too


def test_a_failed_replacement_keeps_the_old_folder(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with files.atomic_dir(out, replace=True) as staging:
            (staging / "new.txt").write_text("new")
            raise RuntimeError
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


# -------------------------------------------------------------------------------- scratch_dir

def test_scratch_dir_is_removed_whatever_happens_and_named_as_unfinished(tmp_path):
    with files.scratch_dir(tmp_path / "work") as scratch:
        assert files.is_unfinished(scratch) and scratch.parent == tmp_path
        (scratch / "download.gz").write_bytes(b"x")
    with pytest.raises(ValueError):
        with files.scratch_dir(tmp_path / "work") as scratch:
            (scratch / "download.gz").write_bytes(b"x")
            raise ValueError
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------- remove_unfinished

def test_remove_unfinished_removes_temporaries_and_nothing_else(tmp_path):
    killed_file = tmp_path / ".model.npz.0123abcd.tmp"
    killed_file.write_bytes(b"PK half")
    killed_folder = tmp_path / ".report.89abcdef.tmp"
    (killed_folder / "figures").mkdir(parents=True)
    (killed_folder / "figures" / "a.png").write_bytes(b"png")
    ordinary = {"model.npz": b"PK", "notes.tmp": b"mine", ".notes.tmp": b"hidden, mine",
                ".model.npz.kill.tmp": b"not 8 hex digits", ".model.npz.0123ABCD.tmp": b"upper",
                "model.npz.0123abcd.tmp": b"not hidden"}
    for name, content in ordinary.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "runs.tmp").mkdir()

    removed = files.remove_unfinished(tmp_path)
    assert sorted(removed) == sorted([killed_file, killed_folder])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*ordinary, "runs.tmp"])
    for name, content in ordinary.items():
        assert (tmp_path / name).read_bytes() == content
    assert files.remove_unfinished(tmp_path) == []
    assert files.remove_unfinished(tmp_path / "absent") == []


def test_remove_unfinished_can_keep_to_some_targets(tmp_path):
    mine = tmp_path / ".mnist.npz.0123abcd.tmp"
    another = tmp_path / ".cifar10.npz.0123abcd.tmp"     # another writer's, perhaps still busy
    mine.write_bytes(b"")
    another.write_bytes(b"")
    assert files.remove_unfinished(tmp_path, targets=["mnist.npz"]) == [mine]
    assert [p.name for p in tmp_path.iterdir()] == [another.name]



# ------------------------------------------------------------------------------------- locked

def test_locked_keeps_a_second_holder_out_and_cleans_up(tmp_path):
    with files.locked(tmp_path) as lock:
        assert lock == tmp_path / files.LOCK
        assert lock.read_text().strip() == str(os.getpid())     # who holds it, for the message
        with pytest.raises(files.FolderInUse, match=f"process {os.getpid()}"):
            with files.locked(tmp_path):                 # another open file: refused, at once
                pytest.fail("the block must not run")
        assert lock.exists()                             # the refusal left the holder's lock
    assert list(tmp_path.iterdir()) == []                # released: the file is gone
    with files.locked(tmp_path):                         # and can be taken again
        pass


def test_a_stale_lock_file_is_taken_over_and_an_error_releases_the_lock(tmp_path):
    (tmp_path / files.LOCK).write_text("12345\n")        # left by a killed process: not held
    with pytest.raises(ValueError):
        with files.locked(tmp_path):
            raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_a_lock_held_by_another_process_is_refused(tmp_path):
    import subprocess
    import sys
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom nnscratch import files\n"
         f"with files.locked({str(tmp_path)!r}):\n    print('held', flush=True)\n"
         "    sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(files.FolderInUse, match=f"process {holder.pid}"):
            with files.locked(tmp_path):
                pass
    finally:
        holder.communicate("go\n")
    with files.locked(tmp_path):                         # released when it ended
        pass


def test_refuse_unwritable_names_the_path(tmp_path, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError, match="afile is a file"):
        files.refuse_unwritable(afile / "run")
    files.refuse_unwritable(tmp_path / "new" / "deeper")     # its nearest existing parent is
    monkeypatch.setattr(os, "access", lambda path, mode: False)   # writable; now it is not:
    with pytest.raises(PermissionError, match="is not writable"):
        files.refuse_unwritable(tmp_path / "new" / "deeper")


def test_a_folder_is_replaceable_only_when_it_holds_nothing_but_its_writers_files(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = files.absolute("out")
    assert out == tmp_path / "out"

    def check():
        files.refuse_unless_replaceable(out, "the writer", ("a.json",), ("figures",))
    check()                                                 # absent: nothing to lose
    (out / "figures").mkdir(parents=True)
    (out / "a.json").write_text("{}")
    (out / "figures" / "curve.png").write_bytes(b"png")
    check()                                                 # its own files only
    (out / "figures" / "notes.txt").write_text("the user's")
    with pytest.raises(ValueError, match="holds figures, which the writer did not write"):
        check()
    (out / "figures" / "notes.txt").unlink()
    (out / "b.json").symlink_to(out / "a.json")
    with pytest.raises(ValueError, match=r"holds b\.json.*\(a\.json, figures/\)"):
        check()
    with pytest.raises(ValueError, match="current folder"):
        files.refuse_unless_replaceable(files.absolute("."), "the writer", ())
