"""The nnscratch command, end to end on the embedded digits (no download)."""

import dataclasses
import json
import subprocess
import sys

import pytest

from nnscratch import commands, data, io, zoo
from nnscratch.commands import demo, info, train


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NNSCRATCH_DATA", str(tmp_path / "cache"))


def contents(folder):
    """Every file under ``folder`` and its bytes: what a refused command must leave alone."""
    return {path.relative_to(folder): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_info(capsys):
    assert commands.main(["info"]) == 0
    text = capsys.readouterr().out
    assert "nnscratch" in text and "numpy" in text and "GPU backend" in text


def test_info_hints_at_faster_blas_kernels_only_where_the_processor_has_them():
    assert "OPENBLAS_CORETYPE=SKYLAKEX" in info.blas_hint("Haswell", {"avx2", "avx512f"})
    assert info.blas_hint("Haswell", {"avx2", "fma"}) is None        # no AVX-512: nothing better
    assert info.blas_hint("SkylakeX", {"avx2", "avx512f"}) is None   # already the AVX-512 ones
    assert info.blas_hint(None, {"avx512f"}) is None                 # not OpenBLAS


def modules_loaded_by(argv):
    """The modules a fresh interpreter has loaded after ``commands.main(argv)``."""
    code = (f"import sys\nfrom nnscratch import commands\n"
            f"try:\n    commands.main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print(' '.join(sys.modules), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    return set(result.stderr.split())


def test_help_and_info_leave_the_heavy_modules_unloaded():
    heavy = {"matplotlib", "scipy", "sklearn", "tqdm", "nnscratch.zoo", "nnscratch.data"}
    assert not heavy & modules_loaded_by(["info"])
    # the top level knows the commands by name: none of their modules is imported for --help
    others = {f"nnscratch.commands.{name}" for name in commands.COMMANDS}
    assert not (heavy | others | {"numpy"}) & modules_loaded_by(["--help"])


def test_the_classes_that_train_offers_are_those_of_the_data():
    assert tuple(train.CLASSES) == data.DATASETS
    for name in data.DATASETS:           # digits is embedded; the others: their known labels
        if name == "digits":
            assert train.CLASSES[name] == len(set(data.load(name, "test")[1].tolist()))
        else:
            assert train.CLASSES[name] == 10
    assert train.CLASSES["cifar10"] == len(data.cifar.CLASSES)


def test_the_recipe_defaults_in_the_help_are_the_recipes(monkeypatch):
    assert train.recipe_default("lr") == ("default: the recipe's: lenet 0.01, dnr_cnn 0.1, "
                                          "small_cnn 0.005, the others 0.001")
    # read from zoo.RECIPES, not copied: a changed recipe shows in the help
    monkeypatch.setitem(zoo.RECIPES, "lenet", dataclasses.replace(zoo.RECIPES["lenet"], lr=0.02))
    assert "lenet 0.02" in train.recipe_default("lr")
    assert [demo.default_epochs(name) for name in demo.SETTINGS] == [
        zoo.RECIPES["small_cnn"].epochs, 2]


def every_parser(parser=None):
    """The parser of the command line and those of all its commands, recursively."""
    import argparse
    parser = parser or commands.build_parser()
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from every_parser(sub)


def test_every_option_of_every_command_has_a_help_line(capsys):
    undocumented = [f"{parser.prog} {action.dest}" for parser in every_parser()
                    for action in parser._actions if not action.help]
    assert not undocumented
    commands.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("lenet 0.01", "lenet 64", "lenet sgd", "lenet 0.9", "lenet 0.0005",
                  "small_cnn 30", "progress bars", "line per epoch"):
        assert shown in text, shown


def test_no_command_prints_the_help_and_exits_2(capsys):
    assert commands.main([]) == 2
    err = capsys.readouterr().err
    assert "usage: nnscratch" in err and "train" in err and "nnscratch: error:" in err
    assert commands.main(["data"]) == 2
    assert "nnscratch: error:" in capsys.readouterr().err
    assert commands.main(["--version"]) == 0


def test_quiet_hides_the_progress_and_the_lines_per_epoch(tmp_path, capsys):
    assert commands.main(small_run(tmp_path / "a", "--epochs", "2")) == 0
    quiet = capsys.readouterr()
    assert "epoch 1:" not in quiet.err + quiet.out and "done in" in quiet.out
    loud = [arg for arg in small_run(tmp_path / "b", "--epochs", "2") if arg != "--quiet"]
    assert commands.main(loud) == 0
    assert "epoch 2:" in capsys.readouterr().err


def test_train_refuses_to_overwrite_then_resumes_and_evaluates(tmp_path, monkeypatch, capsys):
    # at a constant rate a finished run may be resumed for more epochs (not under a schedule)
    monkeypatch.setitem(zoo.RECIPES, "small_cnn",
                        dataclasses.replace(zoo.RECIPES["small_cnn"], schedule=None))
    out = tmp_path / "run"
    args = ["train", "--model", "small_cnn", "--dataset", "digits", "--epochs", "2",
            "--limit", "300", "--out", str(out), "--quiet"]
    assert commands.main(args) == 0
    for name in ("model.npz", "history.json", "training_curves.png", "config.json",
                 "checkpoint.npz"):
        assert (out / name).exists(), name
    assert commands.main(args) == 2
    assert "pass --resume" in capsys.readouterr().err
    more = args[:6] + ["3"] + args[7:] + ["--resume"]
    assert commands.main(more) == 0
    assert json.loads((out / "history.json").read_text())["epoch"] == [1, 2, 3]
    assert json.loads((out / "config.json").read_text())["recipe"]["epochs"] == 3
    capsys.readouterr()
    assert commands.main(["evaluate", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "evaluation_test.json").read_text())
    assert report["n"] == 359 and 0 <= report["accuracy"] <= 1
    assert f"accuracy {report['accuracy']:.4f}" in printed
    assert len(report["f1"]) == 10 and (out / "confusion_matrix_test.png").exists()


def test_missing_dataset_names_the_fetch_command(tmp_path, capsys):
    code = commands.main(["train", "--model", "lenet", "--dataset", "mnist", "--out",
                     str(tmp_path / "r")])
    assert code == 2
    assert "nnscratch data fetch mnist" in capsys.readouterr().err


def test_data_list_on_an_empty_cache(capsys):
    assert commands.main(["data", "list"]) == 0
    assert "nothing cached yet" in capsys.readouterr().out


def test_data_list_shows_what_a_killed_fetch_left(tmp_path, capsys):
    leftover = tmp_path / "cache" / ".cifar10.fetch.0badc0de.tmp"
    leftover.mkdir(parents=True)
    (leftover / "cifar-10-python.tar.gz").write_bytes(b"x" * 2_000_000)
    assert commands.main(["data", "list"]) == 0
    line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("unfinished")]
    assert len(line) == 1 and "2.0 MB" in line[0] and str(leftover) in line[0]


def test_demo_writes_a_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert commands.main(["demo", "--out", str(out), "--epochs", "2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "small_cnn" and len(report["history"]["epoch"]) == 2
    for name in ("report.md", "model.npz", "training_curves.png", "confusion_matrix.png"):
        assert (out / name).exists(), name
    assert "test accuracy" in capsys.readouterr().out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".demo")]   # no staging left


def test_cifar_network_trains_end_to_end_on_a_cifar_format_archive(tmp_path, monkeypatch):
    """CIFAR-10 cannot be downloaded here: a small archive in the real format stands in."""
    from nnscratch.data import cache, cifar
    from test_data import write_cifar_archive
    archive = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_archive(archive, per_batch=30)
    monkeypatch.setattr(cifar, "ARCHIVE_SHA256", cache.sha256_file(archive))
    assert commands.main(["data", "fetch", "cifar10", "--source", str(archive)]) == 0
    out = tmp_path / "cifar_run"
    assert commands.main(["train", "--model", "cifar_cnn_harms", "--dataset", "cifar10",
                     "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2] and all(loss > 0 for loss in history["loss"])
    assert commands.main(["evaluate", str(out)]) == 0


def small_run(out, *options):
    return ["train", "--model", "small_cnn", "--dataset", "digits", "--limit", "200",
            "--out", str(out), "--quiet", *options]


def test_resume_keeps_the_runs_settings_and_names_those_that_differ(tmp_path, capsys):
    out = tmp_path / "run"
    assert commands.main(small_run(out, "--epochs", "2")) == 0
    assert json.loads((out / "config.json").read_text())["recipe"] == dataclasses.asdict(
        dataclasses.replace(zoo.RECIPES["small_cnn"], epochs=2))
    assert commands.main(small_run(out, "--resume")) == 0       # --epochs 2 from config.json
    assert json.loads((out / "history.json").read_text())["epoch"] == [1, 2]
    before = contents(out)
    capsys.readouterr()
    assert commands.main(small_run(out, "--resume", "--lr", "0.01")) == 2
    assert "lr 0.005 there, 0.01 now" in capsys.readouterr().err
    for options in (["--lr", "-1"], ["--dropout", "0.5"], ["--batch-size", "0"]):
        assert commands.main(small_run(out, "--resume", *options)) == 2
    assert contents(out) == before


def test_a_run_whose_config_predates_recipes_is_not_resumed(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"model": "small_cnn", "lr": 0.005}))
    (out / "checkpoint.npz").write_bytes(b"an old checkpoint")
    assert commands.main(small_run(out, "--resume")) == 2
    assert "written by an earlier nnscratch" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "config.json"]


def test_a_resume_refused_by_the_schedule_leaves_the_run_as_it_was(tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.setitem(zoo.RECIPES, "small_cnn",
                        dataclasses.replace(zoo.RECIPES["small_cnn"], schedule="cosine"))
    out = tmp_path / "run"
    assert commands.main(small_run(out, "--epochs", "2")) == 0
    before = contents(out)
    assert commands.main(small_run(out, "--resume", "--epochs", "3")) == 2
    assert "another schedule or number of epochs" in capsys.readouterr().err
    assert contents(out) == before            # config.json byte-identical, never rewritten


@pytest.mark.parametrize("options, message", [
    (["--optimizer", "sgd"], "give its --lr too"),
    (["--momentum", "0.9"], "--momentum is an SGD option; Adam has none"),
    (["--dropout", "0.5"], "--dropout is not an option of small_cnn"),
    (["--lr", "-1"], "argument --lr: must be a positive number"),
    (["--epochs", "0"], "argument --epochs: must be an integer from 1"),
    (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1"),
    (["--weight-decay", "-0.1"], "argument --weight-decay: must be a number >= 0"),
    (["--limit", "0"], "argument --limit: must be an integer >= 1"),
    (["--early-stopping", "0"], "argument --early-stopping: must be an integer >= 1"),
    (["--classes", "3"], "--classes needs at least two classes"),
])
def test_train_options_that_cannot_apply_are_refused(tmp_path, capsys, options, message):
    assert commands.main(small_run(tmp_path / "run", *options)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_another_optimizer_keeps_only_the_recipes_batch_size_and_epochs():
    args = commands.build_parser().parse_args(
        ["train", "--model", "lenet", "--dataset", "mnist", "--out", "x",
         "--optimizer", "adam", "--lr", "0.001"])
    lenet = zoo.RECIPES["lenet"]
    assert train.run_recipe(args) == zoo.Recipe(optimizer="adam", lr=0.001,
                                                batch_size=lenet.batch_size,
                                                epochs=lenet.epochs)


def test_bad_paths_are_messages_not_tracebacks(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert commands.main(small_run(afile)) == 2
    assert "is a file" in capsys.readouterr().err
    assert commands.main(["data", "fetch", "cifar10", "--source",
                          str(tmp_path / "nope.tar.gz")]) == 2
    assert commands.main(["data", "fetch", "mnist", "--source", str(tmp_path / "nope")]) == 2
    assert "neither a URL nor a folder" in capsys.readouterr().err


def test_evaluate_a_model_folder_without_config_needs_the_dataset(tmp_path, capsys):
    out = tmp_path / "demo"
    assert commands.main(["demo", "--out", str(out), "--epochs", "1"]) == 0
    capsys.readouterr()
    assert commands.main(["evaluate", str(out)]) == 2
    assert "give --dataset" in capsys.readouterr().err
    assert commands.main(["evaluate", str(out), "--dataset", "digits"]) == 0


def test_fetch_list_and_demo_on_a_fake_mnist(tmp_path, monkeypatch, capsys):
    """The MNIST commands end to end on IDX files the test writes (real MNIST is not needed)."""
    from nnscratch.data import mnist
    from test_data import fake_mnist, write_idx_gz
    files = fake_mnist(n_train=120, n_test=30)
    monkeypatch.setitem(mnist.GZ_SHA256, "mnist", write_idx_gz(tmp_path / "idx", files))
    assert commands.main(["data", "fetch", "mnist", "--source", str(tmp_path / "idx")]) == 0
    capsys.readouterr()
    assert commands.main(["data", "list"]) == 0
    assert "verified" in capsys.readouterr().out
    out = tmp_path / "demo"
    assert commands.main(["demo", "--dataset", "mnist", "--out", str(out), "--epochs", "1"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "lenet" and report["test"]["n"] == 30
    run = tmp_path / "mc_lenet"           # the model options reach the network
    assert commands.main(["train", "--model", "lenet", "--dataset", "mnist", "--epochs", "1",
                     "--dropout", "0.5", "--blur-sigma", "1.25", "--out", str(run),
                     "--quiet"]) == 0
    kinds = [type(layer).__name__ for layer in io.load(run / "model.npz").layers]
    assert kinds.count("Dropout") == 2 and kinds.count("GaussianBlur") == 2
