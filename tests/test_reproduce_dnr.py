"""The Deep Neural Rejection study end to end in quick mode: every stage on a few thousand
MNIST images, the study's own property checks asserted (``dnr.checks``: DNR rejects its target
rate of clean test images within 2 points and at least 20 points more PGD (L-inf 0.3)
adversarials than the same images clean, the defence-aware attack takes its accuracy below
that of PGD made against the network, on the same images at the same budget), then a second
run that finds every stage in the cache.

Needs MNIST in the data cache (the ``mnist_cached`` fixture of conftest.py).
"""

from nnscratch.experiments import dnr

from quick_study import run_twice


def test_quick_run_passes_its_checks_and_resumes_from_the_cache(mnist_cached, stage_cache,
                                                                tmp_path, capsys):
    text, figures = run_twice(dnr, tmp_path, capsys, cache=stage_cache)
    assert "whether this run bears them out" in text and "What the numbers mean" in text
    assert figures == ["accuracy_rejection.png", "examples.png", "score_histograms.png",
                       "security_curves.png", "tradeoff_under_attack.png"]
