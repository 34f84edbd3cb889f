"""The Harms, Harper & Sunkara study end to end in quick mode: every MNIST stage on 1,200
training images with three ensemble members, the study's own property checks asserted
(``harms.checks``: the original learnt; an ensemble of one member has that member's accuracy,
and the stored members rebuilt into the ensemble predict as their mean softmax; BIM breaks the
model it is made on; L-BFGS reaches its targets; FGSM retraining moves the model off the
original's FGSM adversarials; white-box PGD through the ensemble's gradient breaks it), then a
second run that finds every stage in the cache. CIFAR-10 is not in the test's data cache: its
stages run and say they were skipped, in the tables and in the verdict on the CIFAR-10 claim.
Another test runs every CIFAR-10 stage on a small archive in CIFAR-10's format.

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
                  "The report's claims, judged on this run",
                  "The attacks on MNIST, on the models they are made on",
                  "Beyond the report: the defences on MNIST attacked white-box",
                  "FGSM and BIM over eps on MNIST"):
        assert f"## {title}\n" in text
    assert "CIFAR-10 is not in the data cache" in text
    claims = text.split("## The report's claims")[1].split("\n## ")[0]
    verdicts = [line for line in claims.splitlines() if line.startswith("| ") and ". " in line]
    assert len(verdicts) == 7
    assert sum(": borne out |" in line or ": not borne out |" in line
               for line in verdicts) == 6
    assert ": not judged |" in verdicts[5]
    assert figures == ["mnist_ensemble_sizes.png", "mnist_examples.png", "mnist_settings.png",
                       "mnist_sweep.png"]


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


def test_the_cifar10_stages_run_on_a_cifar_format_archive(tmp_path, monkeypatch):
    """A synthetic archive in the real format (random images), fetched into an empty data cache:
    every CIFAR-10 stage runs on a few images and fills Table 5, Figures 9-10 and the verdict on
    the CIFAR-10 claim."""
    from types import SimpleNamespace

    from nnscratch.experiments import runner
    from nnscratch.experiments.context import StageLines
    from nnscratch.experiments.harms import charts, report
    from test_data import fetch_fake_cifar

    monkeypatch.setenv("NNSCRATCH_DATA", str(tmp_path / "data"))
    assert harms.config(True)["cifar10_cached"] is False
    fetch_fake_cifar(tmp_path, monkeypatch)
    tiny = {"train_images": 60, "validation_images": 10, "test_images": 12, "epochs": 1,
            "n_models": 2, "ith_member": 2, "lbfgs_images": 2, "lbfgs_search_steps": 1,
            "lbfgs_iterations": 2, "retrain_images": 30, "adaptive_images": 6, "pgd_steps": 2,
            "sweep_images": 6}
    config = dict(harms.config(True), **{f"cifar10_{key}": value for key, value in tiny.items()})
    assert config["cifar10_cached"] is True
    study = SimpleNamespace(NAME="harms", STAGES=[stage for stage in harms.STAGES
                                                  if stage.name.startswith("cifar10_")])
    outputs, _ = runner.run_stages(study, config, 0, tmp_path / "stages", StageLines(False))
    assert not any("skipped" in output for output in outputs.values())
    table5 = report.retraining_table(config, outputs, "cifar10", 5)
    assert table5.title == "Table 5: adversarial retraining on CIFAR-10"
    assert [row.paper for row in table5.rows if row.paper] == [74.56, 66.78, 66.78, 73.65,
                                                               58.97, 58.97]
    ensemble = report.ensemble_table(config, outputs, "cifar10", "9-10")
    assert len(ensemble.rows) > 16 and "skipped" not in ensemble.title
    claim = report.cifar_claim(config, outputs)
    assert claim.label.endswith("borne out") and claim.measured == claim.measured   # not NaN
    assert charts.sizes_figure(config, outputs, "cifar10").axes
    assert charts.sweep_figure(outputs, "cifar10").axes
    assert len(report.sweep_table(config, outputs, "cifar10").rows) == 2 * 6 * 3
    assert charts.settings_figure(config, outputs, "cifar10").axes
