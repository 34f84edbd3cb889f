"""The Harms, Harper & Sunkara study end to end in quick mode: every MNIST stage on a few
thousand images with three ensemble members, the study's own property checks asserted
(``harms.checks``: the original learnt; an ensemble of one member has that member's accuracy,
and the stored members rebuilt into the ensemble predict as their mean softmax; BIM breaks the
model it is made on; L-BFGS reaches its targets; FGSM retraining holds against FGSM; white-box
PGD on the ensemble beats BIM transferred to it), then a second run that finds every stage in
the cache. CIFAR-10 is not in the test's data cache: its stages run and say they were skipped,
in the tables and in the verdict on the CIFAR-10 claim.

Needs MNIST in the data cache (the ``mnist_cached`` fixture of conftest.py).
"""

import pytest

from nnscratch.experiments import harms

from quick_study import run_twice


def test_quick_run_passes_its_checks_and_resumes_from_the_cache(mnist_cached, tmp_path, capsys,
                                                                monkeypatch):
    monkeypatch.setattr(harms, "cifar10_cached", lambda: False)
    assert harms.config(True)["cifar10_cached"] is False
    text, figures = run_twice(harms, tmp_path, capsys)
    for title in ("Table 4: adversarial retraining on MNIST",
                  "Table 5: adversarial retraining on CIFAR-10 (skipped)",
                  "Figures 7-8: the noise-bagging ensemble on MNIST",
                  "Figures 9-10: the noise-bagging ensemble on CIFAR-10 (skipped)",
                  "The report's claims, judged on this run", "The attacks on MNIST",
                  "Beyond the report: the defences on MNIST attacked white-box"):
        assert f"## {title}\n" in text
    assert "CIFAR-10 is not in the data cache" in text
    claims = text.split("## The report's claims")[1].split("\n## ")[0]
    verdicts = [line for line in claims.splitlines() if line.startswith("| ") and ". " in line]
    assert len(verdicts) == 7
    assert sum(": borne out |" in line or ": not borne out |" in line
               for line in verdicts) == 6
    assert ": not judged |" in verdicts[5]
    assert figures == ["mnist_ensemble_sizes.png", "mnist_examples.png", "mnist_settings.png"]


def test_the_cifar_stages_depend_on_whether_cifar10_is_cached(monkeypatch):
    keys = {stage.name: stage.keys for stage in harms.STAGES}
    assert all("cifar10_cached" in keys[name] for name in keys if name.startswith("cifar10_"))
    assert not any("cifar10_cached" in keys[name] for name in keys if name.startswith("mnist_"))
    for cached in (False, True):
        monkeypatch.setattr(harms, "cifar10_cached", lambda: cached)
        assert harms.config(False)["cifar10_cached"] is cached


@pytest.mark.parametrize("quick", [False, True])
def test_every_setting_is_used_and_the_member_exists(quick):
    config = harms.config(quick)
    used = {key for stage in harms.STAGES for key in stage.keys}
    assert set(config) == used
    for dataset in ("mnist", "cifar10"):
        assert 1 <= config[f"{dataset}_ith_member"] <= config[f"{dataset}_n_models"]
