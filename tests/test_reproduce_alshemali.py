"""The Alshemali et al. reproduction end to end in quick mode: every stage on a few hundred
MNIST images, the study's own property checks asserted (``alshemali.checks``: the detector
flags at least 20 points more of the BIM adversarials than of the clean images, the accuracy on
the images it flags clean beats the undefended accuracy on each mix, Feinman's detector beats
chance), then a second run that finds every stage in the cache.

Needs MNIST in the data cache (the ``mnist_cached`` fixture of conftest.py).
"""

import json

from nnscratch.experiments import alshemali, runner


def test_quick_run_passes_its_checks_and_resumes_from_the_cache(mnist_cached, tmp_path, capsys):
    results = runner.run_study(alshemali, tmp_path / "out", quick=True,
                               cache_dir=tmp_path / "cache")   # raises ChecksFailed on a failure
    assert all(check["passed"] for check in results["checks"])
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {stage["name"] for stage in written["stages"]} == {s.name for s in alshemali.STAGES}
    text = (tmp_path / "out" / "tables.md").read_text()
    assert "Table 1" in text and "Tables 2 and 3" in text
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == [
        "example_outcomes.png", "roc_feinman.png", "uncertainty_histograms.png"]
    capsys.readouterr()
    again = runner.run_study(alshemali, tmp_path / "out", quick=True,
                             cache_dir=tmp_path / "cache")
    assert all(stage["cached"] for stage in again["stages"])
    assert again["tables"] == results["tables"]
