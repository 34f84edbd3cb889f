"""Nonsense given to the ``nnscratch`` command: each is refused with one clear line, exit 2
(130 when interrupted), never a traceback, and never at the cost of a file that was there.

Most cases run ``commands.main`` in this process; a few run the real command, to show that no
traceback reaches the terminal. Training cases use the embedded digits, one epoch, few images.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnscratch import commands, files
from nnscratch.commands import train as train_command

NNSCRATCH = Path(sys.executable).parent / "nnscratch"
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0     # root may write anywhere


@pytest.fixture(autouse=True)
def world(tmp_path, monkeypatch):
    """A data cache and a current folder of the test's own, inside tmp_path."""
    monkeypatch.setenv("NNSCRATCH_DATA", str(tmp_path / "cache"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")


def snapshot(root):
    """{relative path: bytes, "folder", or "link -> target"} of everything under ``root``,
    links not followed: to show that a refused command changed nothing."""
    tree = {}
    for folder, names, filenames in os.walk(root):
        for name in names + filenames:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                tree[key] = f"link -> {os.readlink(path)}"
            elif path.is_dir():
                tree[key] = "folder"
            else:
                tree[key] = path.read_bytes()
    return tree


def refused(capsys, argv, *named, root, status=2):
    """Run ``nnscratch argv`` in this process and check the refusal: ``status``, one
    ``nnscratch: error:`` line naming each of ``named``, no traceback, and nothing under
    ``root`` changed. Returns the error text."""
    before = snapshot(root)
    capsys.readouterr()
    assert commands.main([str(arg) for arg in argv]) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "nnscratch: error:" in err if status == 2 else "nnscratch: interrupted" in err
    for name in named:
        assert str(name) in err, (name, err)
    assert snapshot(root) == before
    return err


def train(out, *options, model="small_cnn"):
    return ["train", "--model", model, "--dataset", "digits", "--epochs", "1", "--limit", "100",
            "--out", str(out), "--quiet", *options]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished one-epoch run folder (copied by each test that changes it)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert commands.main(train(out)) == 0        # digits: no data cache involved
    return out


@pytest.fixture
def run(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    return out


# --------------------------------------------------------------- train: options out of range

# (options, what the message must name); every one is refused before anything is written
OPTIONS_OUT_OF_RANGE = [
    # the list
    (["--batch-size", "-5"], "--batch-size"), (["--epochs", "0"], "--epochs"),
    (["--epochs", "-1"], "--epochs"), (["--batch-size", "0"], "--batch-size"),
    (["--lr", "nan"], "--lr"), (["--lr", "inf"], "--lr"), (["--lr", "0"], "--lr"),
    (["--classes", "3"], "--classes"), (["--momentum", "-1"], "--momentum"),
    (["--weight-decay", "-1"], "--weight-decay"), (["--early-stopping", "0"], "--early-stopping"),
    (["--limit", "0"], "--limit"), (["--limit", "5"], "--limit"),
    (["--blur-sigma", "-1"], "--blur-sigma"), (["--dropout", "1.5"], "--dropout"),
    (["--seed", "-1"], "--seed"),
    # NaN and infinities in every numeric option
    (["--lr", "-inf"], "--lr"), (["--momentum", "nan"], "--momentum"),
    (["--momentum", "inf"], "--momentum"), (["--weight-decay", "nan"], "--weight-decay"),
    (["--weight-decay", "inf"], "--weight-decay"), (["--dropout", "nan"], "--dropout"),
    (["--dropout", "-inf"], "--dropout"), (["--blur-sigma", "nan"], "--blur-sigma"),
    (["--blur-sigma", "inf"], "--blur-sigma"), (["--epochs", "nan"], "--epochs"),
    (["--batch-size", "inf"], "--batch-size"), (["--limit", "nan"], "--limit"),
    (["--early-stopping", "inf"], "--early-stopping"), (["--seed", "nan"], "--seed"),
    (["--classes", "nan", "3"], "--classes"),
    # negative, zero and huge
    (["--lr", "-0.01"], "--lr"), (["--dropout", "-0.5"], "--dropout"),
    (["--momentum", "1"], "--momentum"), (["--early-stopping", "-3"], "--early-stopping"),
    (["--classes", "-1", "3"], "--classes"), (["--epochs", "1000000000000"], "--epochs"),
    (["--lr", "1e308"], "--lr"), (["--lr", "1e-50"], "--lr"),
    (["--weight-decay", "1e39"], "--weight-decay"), (["--blur-sigma", "1e9"], "--blur-sigma"),
    (["--seed", str(2 ** 64)], "--seed"),
    # wrong types
    (["--epochs", "two"], "--epochs"), (["--batch-size", "3.5"], "--batch-size"),
    (["--lr", "fast"], "--lr"), (["--classes", "six", "seven"], "--classes"),
    (["--seed", "1e3"], "--seed"), (["--limit", ""], "--limit"),
    # values that cannot go together
    (["--classes", "3", "3"], "--classes"), (["--classes", "99", "3"], "--classes"),
    (["--classes", "6", "7", "--limit", "1"], "--limit"),
    (["--optimizer", "sgd"], "--lr"), (["--momentum", "0.9"], "--momentum"),
    (["--dropout", "0.5"], "--dropout"), (["--blur-sigma", "1.25"], "--blur-sigma"),
    (["--model", "resnet"], "--model"), (["--dataset", "imagenet"], "--dataset"),
]


@pytest.mark.parametrize("options, named", OPTIONS_OUT_OF_RANGE,
                         ids=[" ".join(options) for options, _ in OPTIONS_OUT_OF_RANGE])
def test_an_option_out_of_range_is_refused_before_anything_is_written(
        tmp_path, capsys, options, named):
    out = tmp_path / "run"
    refused(capsys, train(out, *options), named, root=tmp_path)
    assert not out.exists()


@pytest.mark.parametrize("options", [["--dropout", "1.5"], ["--blur-sigma", "-1"],
                                     ["--dropout", "nan"], ["--blur-sigma", "inf"]])
def test_lenets_own_options_are_checked_too(tmp_path, capsys, options):
    refused(capsys, train(tmp_path / "run", *options, model="lenet"), options[0],
            root=tmp_path)


def test_fewer_images_than_classes_is_refused_saying_how_many_are_needed(tmp_path, capsys):
    err = refused(capsys, train(tmp_path / "run", "--limit", "5"), "--limit 5", "10 classes",
                  "at least 10", root=tmp_path)
    assert "one image of each" in err
    assert commands.main(train(tmp_path / "run", "--limit", "10")) == 0      # one of each: fine


def test_a_network_that_does_not_fit_the_images_is_a_message(tmp_path, capsys):
    refused(capsys, train(tmp_path / "run", model="lenet"), "lenet", "1x8x8", root=tmp_path)


@pytest.mark.parametrize("options", [["--lr", "nan"], ["--epochs", "0"], ["--limit", "5"],
                                     ["--classes", "3"], ["--dropout", "0.5"]])
def test_bad_options_leave_an_existing_run_byte_identical(run, capsys, options):
    refused(capsys, train(run, "--resume", *options), options[0], root=run.parent)


# ------------------------------------------------------- train: a refused or failed run's folder

def test_the_corrected_command_works_after_a_refused_one(tmp_path, capsys):
    out = tmp_path / "run"
    refused(capsys, train(out, "--lr", "0"), "--lr", root=tmp_path)
    assert commands.main(train(out, "--lr", "0.01")) == 0
    assert json.loads((out / "config.json").read_text())["recipe"]["lr"] == 0.01
    out2 = tmp_path / "run2"
    refused(capsys, train(out2, "--lr", "0", "--resume"), "--lr", root=tmp_path)
    assert commands.main(train(out2, "--resume")) == 0


def fail_in_training(monkeypatch, error):
    def fit_recipe(*args, **options):
        raise error
    monkeypatch.setattr(train_command, "fit_recipe", fit_recipe)


@pytest.mark.parametrize("resume", [[], ["--resume"]])
def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing(
        tmp_path, capsys, monkeypatch, resume):
    out = tmp_path / "deep" / "run"
    with monkeypatch.context() as patch:
        fail_in_training(patch, ValueError("the loss is nan"))
        assert commands.main(train(out, *resume)) == 2
    assert "the loss is nan" in capsys.readouterr().err
    assert not (tmp_path / "deep").exists()              # the folders it made are gone
    assert commands.main(train(out)) == 0                     # so the same command works


def test_a_failure_in_an_existing_empty_folder_leaves_it_empty(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    fail_in_training(monkeypatch, ValueError("failed"))
    refused(capsys, train(out), "failed", root=tmp_path)
    assert list(out.iterdir()) == []


def test_a_run_killed_before_its_first_epoch_ended_can_be_started_again(tmp_path, run, capsys):
    """SIGKILL leaves config.json and nothing else: the same command, or --resume, starts
    the run (with any settings: nothing was trained)."""
    for options in ([], ["--resume"], ["--lr", "0.02"]):
        killed = tmp_path / f"killed{len(options)}"
        killed.mkdir()
        shutil.copy(run / "config.json", killed / "config.json")
        (killed / files.LOCK).write_text("4242\n")       # and a lock nobody holds
        assert commands.main(train(killed, *options)) == 0, options
        assert (killed / "model.npz").exists()


def test_a_folder_holding_the_users_own_config_json_is_not_taken(tmp_path, capsys):
    out = tmp_path / "project"
    out.mkdir()
    (out / "config.json").write_text('{"editor": "vim"}')
    refused(capsys, train(out), out, "--resume", root=tmp_path)
    refused(capsys, train(out, "--resume"), out / "config.json", root=tmp_path)


def test_resume_into_a_folder_of_other_files_is_refused(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "model.npz").write_bytes(b"the user's own model")
    refused(capsys, train(out, "--resume"), out, "config.json", root=tmp_path)


# ------------------------------------------------------------------- train: paths that are not

def test_out_paths_that_cannot_be_a_run_folder(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("the user's")
    refused(capsys, train(afile), "--out", afile, "is a file", root=tmp_path)
    refused(capsys, train(afile / "run"), afile, "is a file", root=tmp_path)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    refused(capsys, train(tmp_path / "dangling"), "--out", "link to nothing", root=tmp_path)
    (tmp_path / "filelink").symlink_to(afile)
    refused(capsys, train(tmp_path / "filelink"), "is a file", root=tmp_path)
    refused(capsys, train(""), "--out", root=tmp_path)


def test_a_link_to_a_folder_is_a_fine_run_folder(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert commands.main(train(tmp_path / "link")) == 0
    assert (tmp_path / "real" / "model.npz").exists() and (tmp_path / "link").is_symlink()


@pytest.mark.skipif(AS_ROOT, reason="root may write in any folder")
def test_an_unwritable_out_is_refused_before_training(tmp_path, capsys):
    locked_up = tmp_path / "readonly"
    locked_up.mkdir()
    locked_up.chmod(0o555)
    try:
        refused(capsys, train(locked_up / "run"), locked_up, "not writable", root=tmp_path)
        refused(capsys, train(locked_up), locked_up, "not writable", root=tmp_path)
    finally:
        locked_up.chmod(0o755)


def test_an_unwritable_out_is_refused_before_training_even_as_root(tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)    # as if read-only
    refused(capsys, train(tmp_path / "run"), tmp_path, "not writable", root=tmp_path)


# ------------------------------------------------------------------ train --resume: bad files

CORRUPT_CHECKPOINTS = {
    "truncated": lambda good: good[:len(good) // 2],
    "empty": lambda good: b"",
    "not an archive": lambda good: b"garbage\n",
    "flipped bytes": lambda good: good[:200] + bytes(b ^ 0xFF for b in good[200:400])
    + good[400:],
}


@pytest.mark.parametrize("damage", CORRUPT_CHECKPOINTS)
def test_resume_from_a_corrupt_checkpoint_names_it(run, capsys, damage):
    checkpoint = run / "checkpoint.npz"
    checkpoint.write_bytes(CORRUPT_CHECKPOINTS[damage](checkpoint.read_bytes()))
    refused(capsys, train(run, "--resume", "--epochs", "2"), checkpoint, root=run.parent)


BROKEN_CONFIGS = {
    "not JSON": b"{not json",
    "empty": b"",
    "binary": b"\xff\xfe\x00\x01",
    "a list": b"[1, 2]",
    "no keys": b"{}",
    "no recipe": json.dumps({"model": "small_cnn", "lr": 0.005}).encode(),
    "a bad recipe": None,       # built from the run's own below
    "bad classes": None,
}


def broken_config(run, kind):
    if BROKEN_CONFIGS[kind] is not None:
        return BROKEN_CONFIGS[kind]
    config = json.loads((run / "config.json").read_text())
    if kind == "a bad recipe":
        config["recipe"]["lr"] = "fast"
    else:
        config["classes"] = "six and seven"
    return json.dumps(config).encode()


@pytest.mark.parametrize("kind", BROKEN_CONFIGS)
def test_resume_with_a_broken_config_json_names_it(run, capsys, kind):
    (run / "config.json").write_bytes(broken_config(run, kind))
    refused(capsys, train(run, "--resume"), run / "config.json", root=run.parent)


def test_a_config_json_that_is_a_folder_is_refused(run, capsys):
    (run / "config.json").unlink()
    (run / "config.json").mkdir()
    refused(capsys, train(run, "--resume"), run, root=run.parent)


# ---------------------------------------------------------------------- evaluate: bad files

@pytest.mark.parametrize("damage", CORRUPT_CHECKPOINTS)
def test_evaluate_a_corrupt_model_names_it_and_what_to_do(run, capsys, damage):
    model = run / "model.npz"
    model.write_bytes(CORRUPT_CHECKPOINTS[damage](model.read_bytes()))
    err = refused(capsys, ["evaluate", run], model, root=run.parent)
    assert "--resume" in err                      # the checkpoint can write it again
    assert commands.main(train(run, "--resume")) == 0  # and does
    assert commands.main(["evaluate", str(run)]) == 0


@pytest.mark.parametrize("kind", [kind for kind in BROKEN_CONFIGS if "recipe" not in kind])
def test_evaluate_with_a_broken_config_json_names_it(run, capsys, kind):
    (run / "config.json").write_bytes(broken_config(run, kind))
    err = refused(capsys, ["evaluate", run], run / "config.json", root=run.parent)
    assert "--dataset" in err                     # what to do
    refused(capsys, ["evaluate", run, "--dataset", "digits"], run / "config.json",
            root=run.parent)


def test_evaluate_a_config_naming_an_unknown_dataset(run, capsys):
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "dataset": "imagenet"}))
    refused(capsys, ["evaluate", run], run / "config.json", "imagenet", root=run.parent)


def test_evaluate_paths_that_are_not_a_run(tmp_path, run, capsys):
    refused(capsys, ["evaluate", tmp_path / "nowhere"], "nowhere", "does not exist",
            root=tmp_path)
    refused(capsys, ["evaluate", run / "model.npz"], run / "model.npz", "is a file",
            root=tmp_path)
    (tmp_path / "empty").mkdir()
    refused(capsys, ["evaluate", tmp_path / "empty"], "model.npz not found", root=tmp_path)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    refused(capsys, ["evaluate", tmp_path / "dangling"], "dangling", root=tmp_path)
    (run / "model.npz").unlink()
    (run / "model.npz").mkdir()
    refused(capsys, ["evaluate", run], run / "model.npz", root=tmp_path)
    refused(capsys, ["evaluate", run, "--split", "all"], "--split", root=tmp_path)
    refused(capsys, ["evaluate", ""], "run", root=tmp_path)


# ------------------------------------------------------------------------- demo --out

def earlier_report(folder):
    from nnscratch.commands import demo
    folder.mkdir(parents=True, exist_ok=True)
    for name in demo.REPORT_FILES:
        (folder / name).write_bytes(b"from an earlier demo")
    return folder


def demo_args(out, *options):
    return ["demo", "--out", str(out), "--epochs", "1", *options]


@pytest.mark.parametrize("where", [".", "..", "/", "cwd absolute", "cwd/../cwd"])
def test_demo_never_replaces_the_current_folder_or_one_that_holds_it(tmp_path, capsys,
                                                                    where):
    """Even when the folder holds nothing but a demo's report (empty, at first)."""
    cwd = Path.cwd()
    out = {"cwd absolute": cwd, "cwd/../cwd": Path("..") / cwd.name}.get(where, where)
    refused(capsys, demo_args(out), "--out", "current folder", root=tmp_path)
    earlier_report(cwd)
    refused(capsys, demo_args(out), "--out", "current folder", root=tmp_path)


def test_demo_out_that_is_a_file_or_a_link(tmp_path, capsys):
    afile = tmp_path / "notes.txt"
    afile.write_text("the user's")
    refused(capsys, demo_args(afile), afile, "not a folder", root=tmp_path)
    report = earlier_report(tmp_path / "report")
    (tmp_path / "link").symlink_to(report)
    refused(capsys, demo_args(tmp_path / "link"), "link", root=tmp_path)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    refused(capsys, demo_args(tmp_path / "dangling"), "dangling", root=tmp_path)
    refused(capsys, demo_args(afile / "report"), afile, root=tmp_path)
    refused(capsys, demo_args(""), "--out", root=tmp_path)


@pytest.mark.skipif(AS_ROOT, reason="root may write in any folder")
def test_demo_into_an_unwritable_folder_is_refused_before_training(tmp_path, capsys):
    locked_up = tmp_path / "readonly"
    earlier_report(locked_up)
    (locked_up / "inside").mkdir()
    locked_up.chmod(0o555)
    try:
        refused(capsys, demo_args(locked_up / "inside"), locked_up, root=tmp_path)
        refused(capsys, demo_args(locked_up / "new"), locked_up, root=tmp_path)
    finally:
        locked_up.chmod(0o755)


def test_demo_checks_it_can_write_before_training(tmp_path, capsys, monkeypatch):
    from nnscratch.commands import demo
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    monkeypatch.setattr(demo, "fit_recipe", lambda *a, **k: pytest.fail("trained"))
    refused(capsys, demo_args(tmp_path / "new"), tmp_path, "not writable", root=tmp_path)


@pytest.mark.parametrize("options, named", [
    (["--epochs", "0"], "--epochs"), (["--epochs", "nan"], "--epochs"),
    (["--epochs", "-3"], "--epochs"), (["--seed", "-1"], "--seed"),
    (["--seed", "x"], "--seed"), (["--dataset", "cifar10"], "--dataset")])
def test_demo_options_out_of_range(tmp_path, capsys, options, named):
    refused(capsys, demo_args(tmp_path / "report", *options), named, root=tmp_path)


# ---------------------------------------------------------------- attack: options out of range

@pytest.mark.parametrize("options", [
    ["--eps", "-0.1"], ["--eps", "nan"], ["--eps", "inf"], ["--eps", "-inf"], ["--eps", "1e39"],
    ["--eps", "big"], ["--eps", ""],
    ["--step", "0"], ["--step", "-0.01"], ["--step", "nan"], ["--step", "inf"],
    ["--step", "1e-50"], ["--step", "fast"],
    ["--steps", "0"], ["--steps", "-1"], ["--steps", "2.5"], ["--steps", "nan"],
    ["--steps", "1e3"], ["--steps", "1000000000000"]])
def test_attack_options_out_of_range_are_refused_naming_the_option(run, capsys, options):
    """Refused by the parser, before the run is loaded or anything is written."""
    err = refused(capsys, ["attack", run, "--attack", "pgd", *options], options[0],
                  root=run.parent)
    assert err.splitlines()[-1].startswith(f"nnscratch: error: argument {options[0]}: ")


# -------------------------------------------------------------------------------- data fetch

def test_data_fetch_sources_that_are_not_one(tmp_path, capsys):
    (tmp_path / "not-a-wheel.whl").write_bytes(b"plain text, not a zip")
    (tmp_path / "notes.txt").write_text("the user's")
    (tmp_path / "archive.tar.gz").write_bytes(b"not gzip either")
    (tmp_path / "empty").mkdir()
    (tmp_path / "cache").mkdir()    # fetch makes it before it looks at the source; no matter
    for name, source in [("mnist", "not-a-wheel.whl"), ("mnist", "notes.txt"),
                         ("mnist", "empty"), ("mnist", "missing"),
                         ("fashion-mnist", "empty"), ("cifar10", "archive.tar.gz"),
                         ("cifar10", "empty"), ("cifar10", "missing"),
                         ("cifar10", "notes.txt")]:
        refused(capsys, ["data", "fetch", name, "--source", tmp_path / source], source,
                root=tmp_path)
    refused(capsys, ["data", "fetch", "mnist", "--source", ""], "--source", root=tmp_path)
    refused(capsys, ["data", "fetch", "digits"], "name", root=tmp_path)


# ------------------------------------------------------------------------- Ctrl-C and locks

def test_ctrl_c_before_the_first_checkpoint(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    fail_in_training(monkeypatch, KeyboardInterrupt())
    err = refused(capsys, train(out), "nothing was kept", "run the command again",
                  root=tmp_path, status=130)
    assert err.count("\n") == 1 and not out.exists()


def test_ctrl_c_after_a_checkpoint_says_how_to_resume(run, capsys, monkeypatch):
    fail_in_training(monkeypatch, KeyboardInterrupt())
    argv = train(run)
    argv[argv.index("--epochs") + 1] = "3"
    err = refused(capsys, argv + ["--resume"], root=run.parent, status=130)
    assert err.count("\n") == 1
    assert f"`nnscratch {' '.join(argv)} --resume` continues from the last checkpoint" in err
    err = refused(capsys, argv, "exists and is not empty", root=run.parent)


def test_ctrl_c_elsewhere_is_a_plain_interrupted(tmp_path, capsys, monkeypatch):
    from nnscratch.commands import demo

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(demo, "run", interrupted)
    err = refused(capsys, ["demo"], root=tmp_path, status=130)
    assert err == "nnscratch: interrupted\n"


def test_a_second_run_into_a_folder_in_use_is_refused(run, capsys):
    with files.locked(run):                                # the first run, still training
        refused(capsys, train(run, "--resume", "--epochs", "2"), run,
                "in use by another run", f"process {os.getpid()}", root=run.parent)
        refused(capsys, train(run, "--epochs", "2"), run, root=run.parent)
    assert commands.main(train(run, "--resume")) == 0          # the folder is free again


# -------------------------------------------------------------- the real command, in a terminal

def command(*argv, **options):
    return subprocess.run([str(NNSCRATCH), *map(str, argv)], capture_output=True, text=True,
                          timeout=120, **options)


def test_the_real_command_prints_one_line_and_no_traceback(tmp_path, run):
    result = command(*train(tmp_path / "new", "--lr", "nan"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("nnscratch: error: argument --lr:")
    (run / "model.npz").write_bytes(b"cut sh")
    result = command("evaluate", run)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("nnscratch: error: ") and str(run / "model.npz") in \
        result.stderr
    result = command()
    assert result.returncode == 2 and "usage: nnscratch" in result.stderr


def test_a_real_sigint_exits_130_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--model", "small_cnn", "--dataset", "digits", "--epochs", "100000",
            "--out", str(out)]
    # SIGINT back to its default in the child: a shell's background job may ignore it
    child = subprocess.Popen([str(NNSCRATCH), *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not (out / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and "Traceback" not in err
    assert err.splitlines()[-1] == (f"nnscratch: interrupted; `nnscratch {' '.join(argv)} "
                                    "--resume` continues from the last checkpoint")
    assert not (out / files.LOCK).exists()
