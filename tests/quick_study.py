"""What every study's quick-mode test asserts, in one place: the quick run passes the study's
own checks, results.json names every stage, and a second run finds every stage in the cache
and gives the same tables. Each test_reproduce_*.py then asserts its own tables and figures."""

import json

from nnscratch.experiments import runner


def run_twice(study, tmp_path, capsys, cache=None):
    """Run ``study`` quick twice into tmp_path (``runner.run_study`` raises ChecksFailed when a
    check fails), its stages cached in ``cache`` (default: a folder of tmp_path); returns (the
    text of tables.md, the sorted names of the figures)."""
    out, cache = tmp_path / "out", cache or tmp_path / "cache"
    results = runner.run_study(study, out, quick=True, cache_dir=cache)
    assert all(check["passed"] for check in results["checks"])
    written = json.loads((out / "results.json").read_text())
    assert {stage["name"] for stage in written["stages"]} == {s.name for s in study.STAGES}
    text = (out / "tables.md").read_text()
    figures = sorted(p.name for p in (out / "figures").iterdir())
    capsys.readouterr()
    again = runner.run_study(study, out, quick=True, cache_dir=cache)
    assert all(stage["cached"] for stage in again["stages"])
    assert again["tables"] == results["tables"]
    return text, figures
