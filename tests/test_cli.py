"""The nnscratch command, end to end on the embedded digits (no download)."""

import json

import pytest

from nnscratch import cli


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NNSCRATCH_DATA", str(tmp_path / "cache"))


def test_info(capsys):
    assert cli.main(["info"]) == 0
    text = capsys.readouterr().out
    assert "nnscratch" in text and "numpy" in text and "GPU backend" in text


def test_train_refuses_to_overwrite_then_resumes_and_evaluates(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--model", "small_cnn", "--dataset", "digits", "--epochs", "2",
            "--limit", "300", "--out", str(out), "--quiet"]
    assert cli.main(args) == 0
    for name in ("model.npz", "history.json", "training_curves.png", "config.json",
                 "checkpoint.npz"):
        assert (out / name).exists(), name
    with pytest.raises(SystemExit, match="--resume"):
        cli.main(args)
    more = args[:6] + ["3"] + args[7:] + ["--resume"]
    assert cli.main(more) == 0
    assert json.loads((out / "history.json").read_text())["epoch"] == [1, 2, 3]
    capsys.readouterr()
    assert cli.main(["evaluate", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "evaluation_test.json").read_text())
    assert report["n"] == 359 and 0 <= report["accuracy"] <= 1
    assert f"accuracy {report['accuracy']:.4f}" in printed
    assert len(report["f1"]) == 10 and (out / "confusion_matrix_test.png").exists()


def test_missing_dataset_names_the_fetch_command(tmp_path, capsys):
    code = cli.main(["train", "--model", "lenet", "--dataset", "mnist", "--out",
                     str(tmp_path / "r")])
    assert code == 2
    assert "nnscratch data fetch mnist" in capsys.readouterr().err


def test_data_list_on_an_empty_cache(capsys):
    assert cli.main(["data", "list"]) == 0
    assert "nothing cached yet" in capsys.readouterr().out


def test_demo_writes_a_report(tmp_path, capsys):
    out = tmp_path / "demo"
    cli.main(["demo", "--out", str(out), "--epochs", "2"])
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
    assert cli.main(["data", "fetch", "cifar10", "--source", str(archive)]) == 0
    out = tmp_path / "cifar_run"
    assert cli.main(["train", "--model", "cifar_cnn_harms", "--dataset", "cifar10",
                     "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2] and all(loss > 0 for loss in history["loss"])
    assert cli.main(["evaluate", str(out)]) == 0
