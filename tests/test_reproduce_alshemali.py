"""The Alshemali et al. reproduction end to end in quick mode: every stage on a few hundred
MNIST images, the study's own property checks asserted (``alshemali.checks``: the detector
flags at least 20 points more of the BIM adversarials than of the clean images, the accuracy on
the images it flags clean beats the undefended accuracy on each mix, Feinman's detector beats
chance), then a second run that finds every stage in the cache.

Needs MNIST in the data cache (the ``mnist_cached`` fixture of conftest.py).
"""

from nnscratch.experiments import alshemali

from quick_study import run_twice


def test_quick_run_passes_its_checks_and_resumes_from_the_cache(mnist_cached, tmp_path, capsys):
    text, figures = run_twice(alshemali, tmp_path, capsys)
    assert "Table 1" in text and "Tables 2 and 3" in text
    assert figures == ["example_outcomes.png", "roc_feinman.png", "uncertainty_histograms.png"]
