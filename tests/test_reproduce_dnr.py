"""The Deep Neural Rejection study end to end in quick mode: every stage on a few thousand
MNIST images, the study's own property checks asserted (``dnr.checks``: DNR rejects its target
rate of clean test images within 2 points and at least 20 points more PGD (L-inf 0.3)
adversarials than the same images clean, the defence-aware attack takes its accuracy below
that of PGD made against the network, on the same images at the same budget), then a second
run that finds every stage in the cache.

Needs MNIST in the data cache (the ``mnist_cached`` fixture of conftest.py).
"""

import json

from nnscratch.experiments import dnr, runner


def test_quick_run_passes_its_checks_and_resumes_from_the_cache(mnist_cached, tmp_path, capsys):
    results = runner.run_study(dnr, tmp_path / "out", quick=True,
                               cache_dir=tmp_path / "cache")   # raises ChecksFailed on a failure
    assert all(check["passed"] for check in results["checks"])
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {stage["name"] for stage in written["stages"]} == {s.name for s in dnr.STAGES}
    text = (tmp_path / "out" / "tables.md").read_text()
    assert "whether this run bears them out" in text and "What the numbers mean" in text
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == [
        "accuracy_rejection.png", "examples.png", "score_histograms.png",
        "security_curves.png", "tradeoff_under_attack.png"]
    capsys.readouterr()
    again = runner.run_study(dnr, tmp_path / "out", quick=True, cache_dir=tmp_path / "cache")
    assert all(stage["cached"] for stage in again["stages"])
    assert again["tables"] == results["tables"]
