"""The example scripts, run as a reader runs them: they must keep working."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def test_quickstart_trains_and_attacks():
    result = subprocess.run([sys.executable, "examples/quickstart.py"], cwd=REPO,
                            capture_output=True, text=True, timeout=300, check=True)
    clean = float(re.findall(r"epoch \d+: .*test accuracy ([0-9.]+)", result.stdout)[-1])
    attacked = [float(a) for a in re.findall(r"FGSM eps=[0-9.]+: test accuracy ([0-9.]+)",
                                             result.stdout)]
    assert clean > 0.9
    assert len(attacked) == 3 and attacked[-1] < clean        # the attack does something


def test_train_mnist_example_runs_on_a_cached_mnist(tmp_path, monkeypatch):
    """On 120 random "MNIST" images the test writes: the script runs, resumes, and saves."""
    from test_data import fake_mnist, fetch_fake_mnist
    monkeypatch.setenv("NNSCRATCH_DATA", str(tmp_path / "cache"))
    fetch_fake_mnist(tmp_path, monkeypatch, files=fake_mnist(n_train=120, n_test=30))
    for _ in range(2):                      # the second run finds the finished run and resumes
        result = subprocess.run([sys.executable, str(REPO / "examples" / "train_mnist.py")],
                                cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "test accuracy" in result.stdout
    assert (tmp_path / "runs" / "lenet_example" / "model.npz").exists()


def test_attack_example_runs_on_digits_without_mnist(tmp_path, monkeypatch):
    """With an empty cache it falls back to small_cnn on digits: three attacks and a grid."""
    monkeypatch.setenv("NNSCRATCH_DATA", str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, str(REPO / "examples" / "attack_lenet.py"),
                             "--images", "10", "--figure", "grid.png"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "small_cnn on" in result.stdout
    rates = [float(r) for r in re.findall(r"(?:FGSM|PGD|JSMA): success ([0-9.]+)",
                                          result.stdout)]
    assert len(rates) == 3 and all(0 <= r <= 1 for r in rates)
    assert (tmp_path / "grid.png").exists()


def test_wang_zhang_example_runs_on_mnist(mnist_cached):
    """The study's core in a page (its default 4,000 training images, 200 test images): PGD
    made through the median filter does better than FGSM made before it, and adversarial
    training holds against FGSM (measured: F1 0.342 and 0.000; 0.928 after FGSM training)."""
    result = subprocess.run([sys.executable, "examples/wang_zhang.py", "--test", "200"],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    before, through = (float(f) for f in re.findall(
        r"FGSM made before the filter F1 ([0-9.]+), PGD through it F1 ([0-9.]+)",
        result.stdout)[0])
    trained = float(re.findall(r"FGSM-trained: FGSM F1 ([0-9.]+)", result.stdout)[0])
    assert through < before and trained > 0.8


def test_noise_bagging_example_runs_on_mnist(mnist_cached):
    """Harms et al.'s defences in a page, small: FGSM made on the original transfers to the
    ensemble no better than it breaks the original, PGD through the ensemble's own gradient
    breaks it, and retraining moves the model off the original's FGSM adversarials."""
    result = subprocess.run([sys.executable, "examples/noise_bagging.py", "--images", "1000",
                             "--members", "2", "--epochs", "1", "--test", "100"], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    clean, own = (float(a) for a in re.findall(
        r"original: clean ([0-9.]+), its own FGSM ([0-9.]+)", result.stdout)[0])
    transferred, through = (float(a) for a in re.findall(
        r"FGSM from the original ([0-9.]+), PGD through it ([0-9.]+)", result.stdout)[0])
    retrained = float(re.findall(r"FGSM-retrained: clean [0-9.]+, FGSM from the original "
                                 r"([0-9.]+)", result.stdout)[0])
    assert clean > 0.8 and own <= transferred and through < 0.1 and retrained > own + 0.1


def test_gan_example_runs_on_mnist(mnist_cached, tmp_path):
    """The GAN in a page, tiny (256 images, one epoch, 8 channels): it trains and draws."""
    result = subprocess.run([sys.executable, str(REPO / "examples" / "gan.py"), "--images",
                             "256", "--epochs", "1", "--width", "8"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    losses = [float(v) for v in re.findall(r"(?:real|generated|G loss) ([0-9.]+)",
                                            result.stdout)]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert (tmp_path / "gan_samples.png").is_file()


def test_patch_vs_dnr_example_runs_on_mnist(mnist_cached):
    """Patches against DNR in a page, small (dnr_cnn on 4,000 images, 60 test images): the
    patch made on the network fools it, and the patch made on DNR fools DNR on more images than
    the patch made on the network does."""
    result = subprocess.run([sys.executable, "examples/patch_vs_dnr.py", "--train", "4000",
                             "--images", "60"], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    rows = {name: [float(v) / 100 for v in shares] for name, *shares in re.findall(
        r"^(clean|patch made on the network|patch made on DNR) +(\d+)% +(\d+)% +(\d+)%$",
        result.stdout, flags=re.MULTILINE)}
    assert set(rows) == {"clean", "patch made on the network", "patch made on DNR"}
    assert rows["patch made on the network"][0] > rows["clean"][0] + 0.2
    assert rows["patch made on DNR"][1] > rows["patch made on the network"][1]
