"""``nnscratch attack``: a trained run's test split attacked, a report folder written whole, and
bad options refused before anything is touched."""

import json

import pytest

from nnscratch import commands
from nnscratch.commands import attack


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A small_cnn trained for two epochs on digits (about a second)."""
    run = tmp_path_factory.mktemp("attack") / "run"
    assert commands.main(["train", "--model", "small_cnn", "--dataset", "digits", "--epochs", "2",
                     "--out", str(run), "--quiet"]) == 0
    return run


def contents(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("options", [["--attack", "fgsm", "--eps", "0.1"],
                                     ["--attack", "pgd", "--eps", "0.1", "--steps", "10",
                                      "--limit", "60"]])
def test_attack_writes_a_sane_report(run_dir, options, capsys):
    name = options[1]
    assert commands.main(["attack", str(run_dir), *options]) == 0
    out = run_dir / f"attack_{name}"
    assert sorted(p.name for p in out.iterdir()) == sorted(attack.REPORT_FILES)
    report = json.loads((out / "report.json").read_text())
    assert report["attack"] == name and report["n"] == (60 if name == "pgd" else 359)
    assert 0 <= report["accuracy_under_attack"] <= report["clean_accuracy"] <= 1
    assert 0 < report["success_rate"] <= 1
    assert report["mean_linf"] == pytest.approx(0.1, abs=1e-6)      # eps-ball attacks fill it
    assert 0 < report["mean_pass"] <= 1 and report["pass_images"] > 0
    assert report["mean_queries"] >= 1 and report["seconds"] >= 0
    assert "accuracy under attack" in (out / "report.md").read_text()
    assert (out / "examples.png").read_bytes()[:4] == b"\x89PNG"
    assert "report written to" in capsys.readouterr().out


@pytest.mark.parametrize("options, settings", [
    (["--attack", "apgd", "--eps", "0.1", "--steps", "10"], {"steps": 10, "loss": "ce"}),
    (["--attack", "fab", "--steps", "5", "--norm", "l2"], {"eps": None, "norm": "l2"}),
    (["--attack", "fab", "--eps", "0.1", "--steps", "5"], {"eps": 0.1, "norm": "linf"}),
    (["--attack", "square", "--eps", "0.1", "--queries", "100", "--seed", "3"],
     {"n_queries": 100, "seed": 3}),
    (["--attack", "autoattack", "--eps", "0.1", "--steps", "5", "--queries", "100"],
     {"steps": 5, "n_queries": 100, "version": "standard", "reject_class": False}),
], ids=["apgd", "fab-minimal", "fab-eps", "square", "autoattack"])
def test_croce_and_heins_attacks_write_a_report(run_dir, tmp_path, options, settings):
    """40 images, small budgets: each attack built with the options given and its defaults."""
    out = tmp_path / "report"
    assert commands.main(["attack", str(run_dir), *options, "--limit", "40",
                          "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["attack"] == options[1] and report["n"] == 40
    assert settings.items() <= report["settings"].items()
    assert 0 <= report["accuracy_under_attack"] <= report["clean_accuracy"] <= 1
    assert 0 < report["success_rate"] <= 1 and report["mean_queries"] > 1
    if "--eps" in options:                                   # within the L-inf ball
        assert 0 < report["mean_linf"] <= 0.1 + 1e-6
    else:                                                    # minimal: every image broken
        assert report["accuracy_under_attack"] == 0


def test_a_second_attack_replaces_the_report(run_dir, tmp_path):
    out = tmp_path / "report"
    for eps in ("0.05", "0.2"):
        assert commands.main(["attack", str(run_dir), "--attack", "fgsm", "--eps", eps,
                         "--limit", "20", "--out", str(out)]) == 0
    assert json.loads((out / "report.json").read_text())["settings"]["eps"] == 0.2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]   # nothing left aside


def test_a_targeted_attack_leaves_out_the_target_class(run_dir, tmp_path):
    out = tmp_path / "jsma"
    assert commands.main(["attack", str(run_dir), "--attack", "jsma", "--target", "3",
                     "--limit", "5", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["target"] == 3 and report["n"] == 5 and 0 <= report["success_rate"] <= 1


@pytest.mark.parametrize("options, message", [
    (["--attack", "nope"], "invalid choice: 'nope'"),
    (["--attack", "fgsm", "--eps", "-0.1"], "argument --eps: must be a number >= 0"),
    (["--attack", "jsma"], "jsma is a targeted attack: give --target"),
    (["--attack", "lbfgs"], "lbfgs is a targeted attack: give --target"),
    (["--attack", "fgsm", "--steps", "5"], "fgsm does not take --steps"),
    (["--attack", "localsearch", "--target", "1"], "localsearch does not take --target"),
    (["--attack", "autoattack", "--target", "1"], "autoattack does not take --target"),
    (["--attack", "square", "--steps", "5"], "square does not take --steps (it takes --eps, "
                                             "--queries"),
    (["--attack", "pgd", "--queries", "5"], "pgd does not take --queries"),
    (["--attack", "apgd", "--eps", "0"], "eps must be a finite number > 0"),
    (["--attack", "pgd", "--steps", "-1"], "steps"),
    (["--attack", "fgsm", "--target", "12"], "--target 12 is not a class"),
])
def test_bad_options_are_refused_and_touch_nothing(run_dir, tmp_path, capsys, options,
                                                   message):
    before = contents(run_dir)
    out = tmp_path / "out"
    assert commands.main(["attack", str(run_dir), *options, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nnscratch: error:" in err and message in err
    assert not out.exists() and contents(run_dir) == before


def test_a_folder_with_other_files_is_refused_and_left_as_it_was(run_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert commands.main(["attack", str(run_dir), "--attack", "fgsm", "--out", str(out)]) == 2
    assert "notes.txt, which the attack report did not write" in capsys.readouterr().err
    assert contents(out) == {"notes.txt": b"mine"}


def test_a_missing_run_is_a_message(tmp_path, capsys):
    assert commands.main(["attack", str(tmp_path / "none"), "--attack", "fgsm"]) == 2
    assert "does not exist" in capsys.readouterr().err
