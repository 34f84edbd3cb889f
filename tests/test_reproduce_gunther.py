"""The Günther et al. reproduction end to end in quick mode: every stage on a few thousand
MNIST images, the study's own property checks asserted (``gunther.checks``: five crops correct
at least half of the minimal FGV adversarials, OpenMax rejects more F50 fooling images than test
images, ...), then a second run that finds every stage in the cache.

Needs MNIST in the data cache (the ``mnist_cached`` fixture of conftest.py).
"""

from nnscratch.experiments import gunther

from quick_study import run_twice


def test_quick_run_passes_its_checks_and_resumes_from_the_cache(mnist_cached, tmp_path, capsys):
    text, figures = run_twice(gunther, tmp_path, capsys)
    assert "Table 2" in text
    assert figures == ["fig3_adversarial_examples.png", "fig4_fooling_openmax.png",
                       "fig5_aliasing.png"]
