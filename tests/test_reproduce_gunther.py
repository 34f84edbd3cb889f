"""The Günther et al. reproduction end to end in quick mode: every stage on a few thousand
MNIST images, the study's own property checks asserted (``gunther.checks``: five crops correct
at least half of the minimal FGV adversarials, OpenMax rejects more F50 fooling images than test
images, ...), then a second run that finds every stage in the cache.

Needs MNIST in the data cache (the ``mnist_cached`` fixture of conftest.py).
"""

import json

from nnscratch.experiments import gunther, runner


def test_quick_run_passes_its_checks_and_resumes_from_the_cache(mnist_cached, tmp_path, capsys):
    results = runner.run_study(gunther, tmp_path / "out", quick=True,
                               cache_dir=tmp_path / "cache")   # raises ChecksFailed on a failure
    assert all(check["passed"] for check in results["checks"])
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {stage["name"] for stage in written["stages"]} == {s.name for s in gunther.STAGES}
    assert "Table 2" in (tmp_path / "out" / "tables.md").read_text()
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == [
        "fig3_adversarial_examples.png", "fig4_fooling_openmax.png", "fig5_aliasing.png"]
    capsys.readouterr()
    again = runner.run_study(gunther, tmp_path / "out", quick=True, cache_dir=tmp_path / "cache")
    assert all(stage["cached"] for stage in again["stages"])
    assert again["tables"] == results["tables"]
