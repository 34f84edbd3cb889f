"""nnscratch demo's report folder: written whole, and never at the cost of a user's files."""

import json

import pytest

from nnscratch.commands import demo


def contents(folder):
    """{name: bytes, or None for a folder} of what is directly in ``folder``: to show it is
    left as it was."""
    return {p.name: None if p.is_dir() else p.read_bytes() for p in folder.iterdir()}


def earlier_report(folder):
    """A folder holding what an earlier demo wrote (stand-ins with the demo's file names)."""
    folder.mkdir()
    for name in demo.REPORT_FILES:
        (folder / name).write_bytes(b"from an earlier demo")
    return folder


def test_an_earlier_report_is_replaced(tmp_path):
    out = earlier_report(tmp_path / "demo")
    report = demo.demo(out=out, epochs=1, seed=3, progress=False)
    assert sorted(contents(out)) == sorted(demo.REPORT_FILES)
    assert json.loads((out / "report.json").read_text())["seed"] == report["seed"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]     # no staging, no old folder


@pytest.mark.parametrize("user_entry", ["notes.txt", "model.npz.bak", "figures/"])
def test_a_folder_with_anything_else_is_refused_and_left_as_it_was(tmp_path, user_entry):
    out = earlier_report(tmp_path / "demo")
    if user_entry.endswith("/"):
        (out / user_entry).mkdir()
    else:
        (out / user_entry).write_text("the user's")
    before = contents(out)
    with pytest.raises(ValueError) as error:
        demo.demo(out=out, epochs=1, progress=False)
    message = str(error.value)
    assert str(out) in message and user_entry.rstrip("/") in message and "--out" in message
    assert contents(out) == before


def test_a_report_name_that_is_not_a_file_is_refused(tmp_path):
    out = tmp_path / "demo"
    (out / "report.json").mkdir(parents=True)
    with pytest.raises(ValueError, match="report.json"):
        demo.demo(out=out, epochs=1, progress=False)
    assert (out / "report.json").is_dir()


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    out = tmp_path / "demo"
    out.write_text("the user's")
    with pytest.raises(ValueError, match="not a folder"):
        demo.demo(out=out, epochs=1, progress=False)
    assert out.read_text() == "the user's"


def test_files_that_appear_during_training_stop_the_replacement(tmp_path, monkeypatch):
    out = earlier_report(tmp_path / "demo")
    draw = demo.plots.training_curves

    def user_saves_a_file_meanwhile(history, path):
        (out / "notes.txt").write_text("the user's")
        return draw(history, path)
    monkeypatch.setattr(demo.plots, "training_curves", user_saves_a_file_meanwhile)
    with pytest.raises(ValueError, match="notes.txt"):
        demo.demo(out=out, epochs=1, progress=False)
    assert sorted(contents(out)) == sorted([*demo.REPORT_FILES, "notes.txt"])
    assert (out / "report.json").read_bytes() == b"from an earlier demo"
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]


def test_the_report_has_the_accuracy_under_fgsm_and_pgd(tmp_path):
    report = demo.demo(out=tmp_path / "demo", epochs=2, progress=False)
    clean = report["test"]["accuracy"]
    assert set(report["attacks"]) == {"fgsm", "pgd"}
    for name, attack in report["attacks"].items():
        assert attack["eps"] == demo.EPS and attack["clean_accuracy"] == pytest.approx(clean)
        assert 0 <= attack["accuracy_under_attack"] <= clean
        assert 0 <= attack["success_rate"] <= 1
        assert f"under {name.upper()}" in (tmp_path / "demo" / "report.md").read_text()
    assert (tmp_path / "demo" / "adversarial_examples.png").exists()
