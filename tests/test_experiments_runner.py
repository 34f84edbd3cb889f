"""The study runner (nnscratch/experiments/runner.py) and ``nnscratch reproduce``, on the toy
study of tests/study_toy.py (three stages: data, train, evaluate; about a second).

A finished stage is never computed again, a changed setting recomputes only the stages that
declare it and their dependants, a run killed mid-training resumes from fit's checkpoint and
ends as an uninterrupted run does, outputs come back from the cache equal, and the results
folder is written whole or not at all.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from nnscratch import commands, experiments, files, io, zoo
from nnscratch.experiments import report, runner, store

import study_toy

TESTS = Path(__file__).resolve().parent
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0     # root may write anywhere
STUDY_PARTS = ("NAME", "TITLE", "FULL_RUN", "STAGES", "tables", "figures", "checks")


@pytest.fixture(autouse=True)
def world(tmp_path, monkeypatch):
    """A data cache and a current folder of the test's own; the toy's counters at zero."""
    monkeypatch.setenv("NNSCRATCH_DATA", str(tmp_path / "cache"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    for record in (study_toy.CALLS, study_toy.RECEIVED, study_toy.COMPUTED):
        record.clear()


def reproduce(tmp_path, study=study_toy, out="out", **options):
    options = {"cache_dir": tmp_path / "stages", "progress": False, **options}
    return runner.run_study(study, tmp_path / out, **options)


def variant(settings=None, **parts):
    """The toy study with ``settings`` changed in its configuration, and ``parts`` (stages,
    tables, ...) in place of its own."""
    study = types.SimpleNamespace(**{name: getattr(study_toy, name) for name in STUDY_PARTS})
    study.config = lambda quick: {**study_toy.config(quick), **(settings or {})}
    for name, value in parts.items():
        setattr(study, name, value)
    return study


def stage_folder(cache, results, name):
    """The cache folder of stage ``name`` of the run that returned ``results``."""
    record = next(stage for stage in results["stages"] if stage["name"] == name)
    return cache / results["study"] / f"{name}-{record['hash'][:16]}"


def test_a_second_run_recomputes_nothing(tmp_path, capsys):
    first = reproduce(tmp_path)
    assert dict(study_toy.CALLS) == {"data": 1, "train": 1, "evaluate": 1}
    assert [stage["cached"] for stage in first["stages"]] == [False, False, False]
    second = reproduce(tmp_path, progress=True)
    assert dict(study_toy.CALLS) == {"data": 1, "train": 1, "evaluate": 1}
    assert [stage["cached"] for stage in second["stages"]] == [True, True, True]
    assert capsys.readouterr().err.splitlines() == [
        "[1/3] data ... cached", "[2/3] train ... cached", "[3/3] evaluate ... cached"]
    assert second["tables"] == first["tables"]
    assert [s["compute_seconds"] for s in second["stages"]] == [
        s["compute_seconds"] for s in first["stages"]]
    assert not list((tmp_path / "stages" / "toy").glob("*.checkpoints"))


@pytest.mark.parametrize("change, recomputed", [
    ({"settings": {"eps": 0.2}}, {"evaluate"}),
    ({"settings": {"epochs": 2}}, {"train", "evaluate"}),
    ({"settings": {"test_images": 90}}, {"data", "train", "evaluate"}),
    ({"settings": {"unused": "another value"}}, set()),
    ({"seed": 1}, {"data", "train", "evaluate"}),
])
def test_a_changed_setting_recomputes_only_its_dependants(tmp_path, change, recomputed):
    reproduce(tmp_path)
    study_toy.CALLS.clear()
    results = reproduce(tmp_path, variant(change.get("settings")), seed=change.get("seed", 0))
    assert set(study_toy.CALLS) == recomputed
    assert {stage["name"] for stage in results["stages"] if not stage["cached"]} == recomputed


def test_a_bumped_stage_version_recomputes_the_stage_and_its_dependants_only(tmp_path):
    """What a changed stage's code does to the cache (runner.py, "Code"): its version, bumped
    as tests/test_stage_versions.py asks, recomputes it and the stages after it."""
    reproduce(tmp_path)
    study_toy.CALLS.clear()
    data, train, evaluate = study_toy.STAGES
    bumped = [data, dataclasses.replace(train, version=2), evaluate]
    results = reproduce(tmp_path, variant(STAGES=bumped))
    assert set(study_toy.CALLS) == {"train", "evaluate"}
    assert [stage["cached"] for stage in results["stages"]] == [True, False, False]
    study_toy.CALLS.clear()
    reproduce(tmp_path, variant(STAGES=bumped))        # the new version is cached in turn
    assert not study_toy.CALLS
    with pytest.raises(ValueError, match="version must be an integer >= 1"):
        reproduce(tmp_path, variant(STAGES=[dataclasses.replace(data, version=0)]))


def test_each_stage_gets_only_the_settings_it_declares(tmp_path):
    reproduce(tmp_path, quick=True)
    assert study_toy.RECEIVED == {
        "data": {"train_images": 120, "test_images": 60, "seed": 0},
        "train": {"epochs": 2, "seed": 0},
        "evaluate": {"eps": 0.1, "seed": 0}}


def test_a_stage_s_messages_come_under_its_line(tmp_path, capsys):
    def talk(cfg, inputs, ctx):
        ctx.log("hello")
        return {"steps": sum(1 for _ in ctx.progress(range(3), what="steps"))}
    reproduce(tmp_path, variant(STAGES=[runner.Stage("talk", talk)], tables=lambda c, o: [],
                                figures=lambda c, o: {}, checks=lambda c, o: []),
              progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines[:2] == ["[1/1] talk ...", "    hello"]
    assert lines[2].startswith("[1/1] talk ... ") and lines[2].endswith(" s")


def test_cached_outputs_load_equal_to_the_computed_ones(tmp_path):
    results = reproduce(tmp_path)
    for name, computed in study_toy.COMPUTED.items():
        loaded, record = store.load(stage_folder(tmp_path / "stages", results, name))
        assert store.outputs_equal(loaded, computed), name
        assert record["cfg"] == study_toy.RECEIVED[name]
    data, _ = store.load(stage_folder(tmp_path / "stages", results, "data"))
    assert data["x_train"].dtype == np.float32 and data["y_train"].dtype == np.int64
    assert not data["x_train"].flags.writeable      # a stage cannot change what others see
    train, _ = store.load(stage_folder(tmp_path / "stages", results, "train"))
    x = data["x_test"]
    assert np.array_equal(train["model"].logits(x), study_toy.COMPUTED["train"]["model"].logits(x))


def test_the_store_keeps_values_exactly_and_refuses_what_json_would_change(tmp_path):
    model = zoo.build("small_cnn", seed=3)
    output = {"file": np.arange(6, dtype=np.uint8).reshape(2, 3), "mask": np.array([True]),
              "scalar": np.float64(2.5) * np.ones((), np.float64), "model": model,
              "table": {"rows": [1, 2.5, None, "x", True], "nan": float("nan")}}
    store.save(tmp_path / "stage", output, {"stage": "odd", "hash": "0" * 64})
    loaded, record = store.load(tmp_path / "stage")
    assert store.outputs_equal(loaded, output) and record["hash"] == "0" * 64
    assert io.weights(loaded["model"]).keys() == io.weights(model).keys()
    assert not store.outputs_equal(loaded, {**output, "file": output["file"].astype(np.int64)})
    for value, said in [((1, 2), "tuple"), (np.int64(3), "int64"), ({1: "a"}, "keys"),
                        (np.array([None]), "objects"), (object(), "object")]:
        with pytest.raises((TypeError, ValueError), match=said):
            store.check_output({"value": value}, "odd")
    with pytest.raises(ValueError, match="identifiers"):
        store.check_output({"not a name": 1}, "odd")
    with pytest.raises(TypeError, match="must return a dict"):
        store.check_output([1], "odd")


RUN_TOY = """
import sys
sys.path.insert(0, sys.argv[3])
import study_toy
from nnscratch.experiments import runner
runner.run_study(study_toy, sys.argv[1], cache_dir=sys.argv[2])
"""


def run_toy_process(tmp_path, kill):
    env = {key: value for key, value in os.environ.items() if key != "NNSCRATCH_TOY_KILL"}
    if kill:
        env["NNSCRATCH_TOY_KILL"] = "1"
    return subprocess.run([sys.executable, "-c", RUN_TOY, str(tmp_path / "out"),
                           str(tmp_path / "stages"), str(TESTS)],
                          env=env, capture_output=True, text=True, timeout=120)


def test_a_run_killed_mid_training_resumes_from_the_checkpoint(tmp_path):
    killed = run_toy_process(tmp_path, kill=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    cache = tmp_path / "stages" / "toy"
    checkpoints = list(cache.glob("train-*.checkpoints"))
    assert len(checkpoints) == 1 and (checkpoints[0] / "checkpoint.npz").is_file()
    assert not (cache / checkpoints[0].name.removesuffix(".checkpoints")).exists()
    assert not (tmp_path / "out").exists()
    left = cache / ".evaluate-0123456789abcdef.0badc0de.tmp"      # as a kill mid-write leaves
    left.mkdir()
    (left / "arrays.npz").write_bytes(b"half")

    resumed = run_toy_process(tmp_path, kill=False)
    assert resumed.returncode == 0, resumed.stderr
    assert "[1/3] data ... cached" in resumed.stderr
    assert "resuming from the checkpoint" in resumed.stderr
    assert not left.exists() and not checkpoints[0].exists()

    uninterrupted = reproduce(tmp_path, out="uninterrupted", cache_dir=tmp_path / "fresh")
    assert study_toy.CALLS["train"] == 1
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["tables"] == uninterrupted["tables"]
    for name in ("train", "evaluate"):
        after_kill, _ = store.load(stage_folder(tmp_path / "stages", results, name))
        fresh, _ = store.load(stage_folder(tmp_path / "fresh", uninterrupted, name))
        assert store.outputs_equal(after_kill, fresh), name


def test_results_are_written_whole_or_not_at_all(tmp_path):
    def broken_figures(config, outputs):
        raise RuntimeError("a figure failed")
    with pytest.raises(RuntimeError, match="a figure failed"):
        reproduce(tmp_path, variant(figures=broken_figures))
    assert not (tmp_path / "out").exists()
    assert [path.name for path in tmp_path.iterdir() if files.is_unfinished(path)] == []
    reproduce(tmp_path)                                 # the stages were kept: none reruns
    assert dict(study_toy.CALLS) == {"data": 1, "train": 1, "evaluate": 1}
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in before) == [
        "figures/accuracy.png", "results.json", "tables.md"]
    with pytest.raises(RuntimeError):
        reproduce(tmp_path, variant(figures=broken_figures))
    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()} == before

    (tmp_path / "out" / "notes.txt").write_text("mine")    # not the runner's: never replaced
    study_toy.CALLS.clear()
    with pytest.raises(ValueError, match="notes.txt"):
        reproduce(tmp_path, variant({"eps": 0.3}))
    assert not study_toy.CALLS                            # refused before any stage ran
    (tmp_path / "a file").write_text("")
    with pytest.raises(ValueError, match="not a folder"):
        reproduce(tmp_path, out="a file")


def test_tables_md_lists_the_differences_over_tolerance_with_their_reasons(tmp_path):
    results = reproduce(tmp_path)
    text = (tmp_path / "out" / "tables.md").read_text()
    accuracy = 100 * study_toy.COMPUTED["evaluate"]["accuracy"]
    assert f"| test accuracy | 100.00% | {accuracy:.2f}% | {accuracy - 100:+.2f} pts |" in text
    assert "| accuracy under FGSM (eps 0.1) | — |" in text
    assert "*scaled: a few hundred images*" in text
    differences = text.split("Differences over the tolerance:")[1].split("##")[0]
    assert differences.strip().splitlines() == [
        f"- test accuracy: {accuracy - 100:+.2f} pts (tolerance 3.00 pts): a toy: 3 epochs "
        "on 200 images",
        "- test images, as counted elsewhere: -10 (tolerance 1): reason not known"]
    rows = results["tables"][0]["rows"]
    assert [row["over_tolerance"] for row in rows] == [True, False, False, True]
    assert rows[2]["difference"] == 0 and rows[1]["difference"] is None
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == json.loads(
        json.dumps(results))
    tables = lambda config, outputs: [report.Table("t", [report.Row("x", np.float32(0.5))])]
    assert reproduce(tmp_path, variant(tables=tables))["tables"][0]["rows"][0]["measured"] == 0.5
    tables = lambda config, outputs: [report.Table("t", [report.Row("x", None)])]
    with pytest.raises(TypeError, match="row 'x': measured, paper and tolerance"):
        reproduce(tmp_path, variant(tables=tables))
    assert set(results["versions"]) == {"python", "numpy", "scipy", "matplotlib", "nnscratch"}
    assert results["machine"]["cpu_count"] == os.cpu_count()


def test_results_json_is_strict_json_with_nan_as_null(tmp_path):
    """A cell with nothing to average is NaN; results.json writes it as null, not as the
    NaN token strict JSON readers reject."""
    tables = lambda config, outputs: [report.Table("t", [report.Row("x", float("nan"), 1.0)])]
    reproduce(tmp_path, variant(tables=tables))
    text = (tmp_path / "out" / "results.json").read_text()
    assert "NaN" not in text
    row = json.loads(text, parse_constant=lambda token: pytest.fail(token))["tables"][0]["rows"][0]
    assert row["measured"] is None and row["difference"] is None and row["over_tolerance"]


def test_failed_checks_stop_a_quick_run_and_are_reported_in_a_full_one(tmp_path):
    failing = variant(checks=lambda config, outputs: [("always fails", False), ("fine", True)])
    with pytest.raises(runner.ChecksFailed, match="1 of 2 checks failed.*always fails"):
        reproduce(tmp_path, failing, quick=True)
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["checks"] == [{"check": "always fails", "passed": False},
                                 {"check": "fine", "passed": True}]
    reproduce(tmp_path, failing)
    assert "- FAILED: always fails" in (tmp_path / "out" / "tables.md").read_text()


def test_one_run_at_a_time_holds_a_studys_cache(tmp_path):
    folder = tmp_path / "stages" / "toy"
    folder.mkdir(parents=True)
    with files.locked(folder):
        with pytest.raises(files.FolderInUse, match="in use"):
            reproduce(tmp_path)
    assert not study_toy.CALLS


def test_studies_the_runner_cannot_run_are_refused(tmp_path):
    data, train, evaluate = study_toy.STAGES
    for stages, said in [([train, data], "not earlier stages"),
                         ([data, runner.Stage("x", train.run, keys=("lr",))], "'lr'"),
                         ([data, data], "must be new"),
                         ([data, runner.Stage("../up", data.run)], "must be new")]:
        with pytest.raises(ValueError, match=said):
            reproduce(tmp_path, variant(STAGES=stages))
    with pytest.raises(ValueError, match="seed"):
        reproduce(tmp_path, variant({"seed": 1}))
    with pytest.raises(TypeError, match="stage 'bad'.*tuple"):
        reproduce(tmp_path, variant(STAGES=[runner.Stage("bad", lambda cfg, i, ctx: {
            "pair": (1, 2)})]))
    assert not list((tmp_path / "stages" / "toy").glob("bad*"))


def test_a_borrowed_stage_is_shared_with_the_study_it_is_borrowed_from(tmp_path, monkeypatch):
    """A study running the toy's data and train stages as borrowed ones finds them in the toy's
    cache, computes only its own stage, and keeps that in its own folder; a stage that is not
    the lender's own is refused."""
    monkeypatch.setitem(experiments.STUDIES, "toy", "study_toy")
    data, train, evaluate = study_toy.STAGES
    reproduce(tmp_path)
    assert study_toy.CALLS == {"data": 1, "train": 1, "evaluate": 1}
    lent = [dataclasses.replace(stage, study="toy") for stage in (data, train)]
    borrower = variant(NAME="borrower", STAGES=lent + [evaluate])
    results = reproduce(tmp_path, borrower, out="borrowed")
    assert study_toy.CALLS == {"data": 1, "train": 1, "evaluate": 2}
    assert [(s["study"], s["cached"]) for s in results["stages"]] == [
        ("toy", True), ("toy", True), ("borrower", False)]
    assert list((tmp_path / "stages" / "borrower").glob("evaluate-*"))
    for stages in ([data, dataclasses.replace(train, study="toy")],     # uses a stage of its own
                   [dataclasses.replace(data, study="../toy")]):
        with pytest.raises(ValueError, match="borrowed stage"):
            reproduce(tmp_path, variant(NAME="borrower", STAGES=stages), out="refused")
    for stage in (dataclasses.replace(data, study="toy", version=2),
                  dataclasses.replace(data, study="toy", keys=("train_images",))):
        with pytest.raises(ValueError, match="not study toy's own stage"):
            reproduce(tmp_path, variant(NAME="borrower", STAGES=[stage]), out="refused")


def test_the_hash_is_of_the_settings_not_of_their_order():
    hashed = runner.stage_hash("toy", "train", {"a": 1, "b": [1, 2]}, ["f", "e"])
    assert hashed == runner.stage_hash("toy", "train", {"b": [1, 2], "a": 1}, ["e", "f"])
    assert hashed != runner.stage_hash("other", "train", {"a": 1, "b": [1, 2]}, ["e", "f"])
    assert hashed != runner.stage_hash("toy", "train", {"a": 1.5, "b": [1, 2]}, ["e", "f"])
    assert hashed != runner.stage_hash("toy", "train", {"a": 1, "b": [1, 2]}, ["e", "f"], 2)


# ------------------------------------------------------------------ nnscratch reproduce

@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(experiments, "STUDIES", {
        "toy": "study_toy", "broken": "nnscratch.experiments.no_such_study"})


def test_reproduce_list_names_each_study_and_one_that_cannot_be_imported(registry, capsys):
    assert commands.main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert f"toy: {study_toy.TITLE}\n    full run: {study_toy.FULL_RUN}" in out
    assert "broken: cannot be imported (ModuleNotFoundError" in out


def test_reproduce_runs_a_quick_study_into_its_own_folder(registry, tmp_path, capsys):
    assert commands.main(["reproduce", "toy", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "| test accuracy | 100.00% |" in out and "reproduce-toy-quick/" in out
    results = json.loads(Path("reproduce-toy-quick/results.json").read_text())
    assert results["quick"] and results["configuration"] == study_toy.config(True)
    assert list((tmp_path / "cache" / "stages" / "toy").glob("train-*"))
    assert commands.main(["reproduce", "toy", "--quick", "--seed", "0"]) == 0
    results = json.loads(Path("reproduce-toy-quick/results.json").read_text())
    assert all(stage["cached"] for stage in results["stages"])


@pytest.mark.parametrize("argv, said", [
    (["reproduce", "nope"], "unknown study 'nope'; known: toy, broken"),
    (["reproduce"], "give the STUDY"),
    (["reproduce", "toy", "--list"], "not both"),
    (["reproduce", "broken"], "cannot be imported"),
    (["reproduce", "toy", "--out", "a file"], "not a folder"),
    (["reproduce", "toy", "--seed", "-1"], "--seed"),
])
def test_reproduce_refuses_bad_input_with_a_line_and_status_2(registry, argv, said, capsys):
    Path("a file").write_text("")
    assert commands.main(argv) == 2
    err = capsys.readouterr().err
    assert "nnscratch: error:" in err and said in err and "Traceback" not in err
    assert not study_toy.CALLS


@pytest.mark.skipif(AS_ROOT, reason="root may write anywhere")
def test_reproduce_refuses_an_unwritable_folder(registry, tmp_path, capsys):
    locked_away = tmp_path / "read-only"
    locked_away.mkdir(mode=0o555)
    assert commands.main(["reproduce", "toy", "--out", str(locked_away / "out")]) == 2
    assert "not writable" in capsys.readouterr().err and not study_toy.CALLS


def test_reproduce_exits_1_when_a_quick_runs_checks_fail(registry, monkeypatch, capsys):
    monkeypatch.setattr(study_toy, "checks", lambda config, outputs: [("broken", False)])
    assert commands.main(["reproduce", "toy", "--quick"]) == 1
    assert "checks failed in the quick run: broken" in capsys.readouterr().err


def test_the_studies_cite_papers_not_files_outside_the_repository():
    """A user who installs nnscratch has neither the design notes nor the paper notes."""
    package = TESTS.parent / "nnscratch" / "experiments"
    for path in package.rglob("*.py"):
        text = path.read_text()
        assert "DESIGN.md" not in text and "shared/" not in text and "-notes.md" not in text, path
