"""The Wang & Zhang study end to end in quick mode: every stage on a few thousand MNIST 6s and
7s, the study's own property checks asserted (``wang.checks``: the baseline learnt; JSMA turns
at least 95% of the images; the FGSM-trained network keeps an F1 of 0.9 under FGSM; PGD through
the median filter beats FGSM made before it; the substitute agrees with its oracle), then a
second run that finds every stage in the cache. The tables carry the paper's numbers beside
the measured ones, and say which variant lands nearer where the paper and its authors' code
differ.

Needs MNIST in the data cache (the ``mnist_cached`` fixture of conftest.py).
"""

from nnscratch.experiments import wang

from quick_study import run_twice


def test_quick_run_passes_its_checks_and_resumes_from_the_cache(mnist_cached, tmp_path, capsys):
    text, figures = run_twice(wang, tmp_path, capsys)
    for title in ("Table I", "Table II", "Table III", "Table IV", "Table V", "Table VI",
                  "Table VII", "Beyond the paper"):
        assert f"## {title}" in text
    assert text.count("nearer the paper:") == 4        # the spatial sets, Tables III, V, VII
    assert figures == ["confusion_matrices.png", "examples.png", "samples.png", "table7.png"]
