"""The adversarial-patch study end to end in quick mode: the DNR study's network and fitted
defences (borrowed: found in the cache when the DNR study's quick test ran first in the
session), patches of 2 and 8 pixels on 200 test images, the study's own property checks
asserted (``patches.checks``: the network learnt; per-image patches of 8 px fool the
undefended CNN on at least 30 points more images than those of 2 px, and a universal one of
8 px on more; the patch that knows DNR does better against it than the patch made on the
network alone), then a second run that finds
every stage in the cache. CIFAR-10 is not in the test's data cache: its stage says it was
skipped; another test trains it on a small archive in CIFAR-10's format.

Needs MNIST in the data cache (the ``mnist_cached`` fixture of conftest.py).
"""

import numpy as np

from nnscratch.experiments import dnr, patches

from quick_study import run_twice


def test_quick_run_passes_its_checks_and_resumes_from_the_cache(mnist_cached, stage_cache,
                                                                tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(patches, "cifar10_cached", lambda: False)
    text, figures = run_twice(patches, tmp_path, capsys, cache=stage_cache)
    for title in ("Per-image patches made on the network: accuracy of each reject option",
                  "Universal patches made on the network: accuracy of each reject option",
                  "Unoptimised (noise) patches: accuracy of each reject option",
                  "DNR against the defence-aware patch", "dnr_cnn on CIFAR-10 (skipped)"):
        assert f"## {title}\n" in text
    assert figures == ["accuracy_vs_size.png", "patched_examples.png", "rejection_vs_size.png",
                       "universal_patches.png"]


def test_the_borrowed_stages_are_the_dnr_studys_own():
    """Same functions, keys, uses and versions, under the DNR study's name, with the DNR
    study's settings in both configurations, so that the two share their cached outputs."""
    own = {stage.name: stage for stage in dnr.STAGES}
    borrowed = [stage for stage in patches.STAGES if stage.study is not None]
    assert [stage.name for stage in borrowed] == ["network", "svm_selection", "defences"]
    for stage in borrowed:
        assert stage.study == dnr.NAME
        assert (stage.run, stage.keys, stage.uses, stage.version) == (
            own[stage.name].run, own[stage.name].keys, own[stage.name].uses,
            own[stage.name].version)
    for quick in (False, True):
        config, theirs = patches.config(quick), dnr.config(quick)
        assert all(config[key] == theirs[key] for stage in borrowed for key in stage.keys)
        assert set(config) == {key for stage in patches.STAGES for key in stage.keys}


def test_the_cifar10_network_trains_on_a_cifar_format_archive(tmp_path, monkeypatch):
    """A synthetic archive in the real format (random images): the stage builds dnr_cnn for
    (3, 32, 32), with the report's parameter counts, trains it and measures it."""
    from nnscratch.experiments.context import Context, StageLines
    from nnscratch.experiments.patches.stages import cifar10_network
    from test_data import fetch_fake_cifar

    monkeypatch.setenv("NNSCRATCH_DATA", str(tmp_path / "data"))
    assert patches.config(True)["cifar10_cached"] is False
    fetch_fake_cifar(tmp_path, monkeypatch)
    config = dict(patches.config(True), cifar10_train_images=60, cifar10_test_images=12)
    assert config["cifar10_cached"] is True
    stage = next(stage for stage in patches.STAGES if stage.name == "cifar10_network")
    cfg = {key: config[key] for key in stage.keys} | {"seed": 0}
    context = Context(tmp_path / "checkpoints", StageLines(False))
    context.checkpoint_dir.mkdir()
    out = cifar10_network(cfg, {}, context)
    assert out["parameters"] == 896 + 9_248 + 18_496 + 36_928 + 819_400 + 40_200 + 2_010
    assert 0 <= out["test_accuracy"] <= 1 and out["training_seconds"] > 0
    assert np.isfinite(out["test_accuracy"])
