"""Harms, Harper & Sunkara, "CSCE496 Deep Learning: Final Project Report" (2019): a
noise-bagging ensemble of up to 10 networks and adversarial retraining against FGSM, BIM and
targeted L-BFGS, on MNIST and CIFAR-10 (Figures 4-5 and 7-10, Tables 4-5, and the claims of
sections 6-8 judged in a table), and beyond the report the same defences attacked white-box.

    nnscratch reproduce harms [--quick]

The stages are in ``stages.py``, ``adaptive.py``, ``epochs.py`` and ``sweep.py``, run once
per dataset; the tables and the verdicts in ``report.py``, the figures in ``charts.py``. The
CIFAR-10 stages run only when CIFAR-10 is in the data cache (``nnscratch data fetch cifar10 --source
cifar-10-python.tar.gz``: no package ships its images, and its home cannot always be
reached); otherwise they are reported as skipped. Whether it is cached is a setting
(``cifar10_cached``), so that fetching it later reruns them. The report's Tiny ImageNet part
(Figures 6 and 11, Inception V3) is out of scope: neither its weights nor its data are here.
"""

from nnscratch import data
from nnscratch.experiments.harms import charts
from nnscratch.experiments.harms import report
from nnscratch.experiments.harms.adaptive import adaptive
from nnscratch.experiments.harms.epochs import retraining_epochs
from nnscratch.experiments.harms.stages import (attacks, ensemble, examples, for_dataset,
                                                original, retrained, retraining, sizes)
from nnscratch.experiments.harms.sweep import sweep
from nnscratch.experiments.runner import Stage

NAME = "harms"
TITLE = ("Harms, Harper & Sunkara 2019, CSCE496 final project report: bagging with noise and "
         "adversarial retraining against FGSM, BIM and L-BFGS on MNIST and CIFAR-10 "
         "(Figures 7-10, Tables 4-5, the report's claims), and the defences attacked white-box")
FULL_RUN = ("about 77 minutes on 2 cores for MNIST (2026-12-03, x86_64, NumPy's OpenBLAS): "
            "4,194 s for the first 19 stages (the ensemble's 1,695 s slowed at times by other "
            "work on the machine), then 442 s for the epoch-by-epoch retraining and the eps "
            "sweep. CIFAR-10, when cached: up to about 2 hours more, estimated (not measured) "
            "from its network's cost per image, 43 MFLOP forward against MNIST's 44, and its "
            "up to 30 epochs")

TRAINING = ("model", "batch_size", "train_images", "validation_images", "test_images", "epochs",
            "patience")
ENSEMBLE = TRAINING + ("n_models", "noise_sigma")
FGSM_BIM = ("test_images", "fgsm_eps", "bim_eps", "bim_step", "bim_steps")
LBFGS_SEARCH = ("lbfgs_initial_const", "lbfgs_search_steps", "lbfgs_iterations", "lbfgs_batch")
LBFGS = ("lbfgs_images",) + LBFGS_SEARCH
RETRAINING = ("model", "batch_size", "train_images", "test_images", "retrain_images",
              "retrain_epochs", "retrain_alpha", "fgsm_eps", "bim_eps", "bim_step", "bim_steps")
ADAPTIVE = FGSM_BIM + ("adaptive_images", "pgd_eps", "pgd_step", "pgd_steps")
SWEEP = ("test_images", "sweep_eps", "sweep_images", "bim_eps", "bim_step", "bim_steps")


def stage(dataset, name, run, uses=(), keys=()):
    """The Stage ``DATASET_NAME`` of ``run`` (see ``stages.for_dataset``): its uses and keys
    prefixed with the dataset, and CIFAR-10's stages depending on whether it is cached."""
    prefixed = tuple(f"{dataset}_{key}" for key in keys)
    if dataset == "cifar10":
        prefixed += ("cifar10_cached",)
    return Stage(f"{dataset}_{name}", for_dataset(dataset, run),
                 uses=tuple(f"{dataset}_{used}" for used in uses), keys=prefixed)


def dataset_stages(dataset):
    return [
        stage(dataset, "original", original, keys=TRAINING),
        stage(dataset, "ensemble", ensemble, keys=ENSEMBLE),
        stage(dataset, "attacks_original", attacks("original"), uses=("original",),
              keys=FGSM_BIM + LBFGS),
        stage(dataset, "attacks_member", attacks("member"), uses=("ensemble",),
              keys=FGSM_BIM + LBFGS + ("ith_member",)),
        stage(dataset, "sizes", sizes,
              uses=("original", "ensemble", "attacks_original", "attacks_member"),
              keys=("test_images", "ith_member")),
        stage(dataset, "retrained_fgsm", retrained("fgsm"), uses=("original",), keys=RETRAINING),
        stage(dataset, "retrained_bim", retrained("bim"), uses=("original",), keys=RETRAINING),
        stage(dataset, "retraining", retraining,
              uses=("original", "retrained_fgsm", "retrained_bim", "attacks_original"),
              keys=FGSM_BIM),
        stage(dataset, "adaptive", adaptive,
              uses=("original", "ensemble", "retrained_fgsm", "retrained_bim",
                    "attacks_original"), keys=ADAPTIVE),
        stage(dataset, "retraining_epochs", retraining_epochs,
              uses=("original", "attacks_original"), keys=RETRAINING + ("adaptive_images",)),
        stage(dataset, "sweep", sweep,
              uses=("original", "ensemble", "retrained_fgsm", "retrained_bim"), keys=SWEEP),
    ]


STAGES = [*dataset_stages("mnist"),
          stage("mnist", "examples", examples, uses=("original",),
                keys=FGSM_BIM + LBFGS_SEARCH + ("example_digit", "example_target")),
          *dataset_stages("cifar10")]


def cifar10_cached():
    """True when a verified CIFAR-10 is in the data cache."""
    return any(name == "cifar10" and verified for name, _, _, verified in data.cached())


def config(quick):
    """Every setting, "DATASET_NAME".

    Full, scaled to about 75 minutes on 2 cores (the report's scale, 11 networks on all 55,000
    training images, would take some 4 hours of training alone: 206 s an epoch): every network
    on 8,000 training images (a sample balanced over the classes) for at most 6 epochs with
    early stopping on 2,000 validation images; the first 5,000 test images; L-BFGS on the first
    300 of them, 100 minimised together, 5 runs of at most 50 iterations each (c from 2, then
    doubled or bisected: the c MNIST needed here was 1-8); retraining 2 epochs; white-box PGD of
    20 steps on 500 images; FGSM and BIM at eps 0.1, 0.2, 0.3 on 1,000. CIFAR-10, when cached:
    the same scale, at most 30 epochs (patience 3), eps 8/255. Quick: the same stages on 1,200
    training and 200 test images, one epoch in batches of 16, 3 members, L-BFGS on 4 images,
    minutes on 2 cores."""
    mnist = {"model": "mnist_cnn_harms", "batch_size": 128, "train_images": 8000,
             "validation_images": 2000, "test_images": 5000, "epochs": 6, "patience": 2,
             "n_models": 10, "noise_sigma": 0.1, "ith_member": 6,
             "fgsm_eps": 0.3, "bim_eps": 0.3, "bim_step": 0.05, "bim_steps": 10,
             "lbfgs_images": 300, "lbfgs_initial_const": 2.0, "lbfgs_search_steps": 5,
             "lbfgs_iterations": 50, "lbfgs_batch": 100,
             "retrain_images": None, "retrain_epochs": 2, "retrain_alpha": 0.5,
             "adaptive_images": 500, "pgd_eps": 0.3, "pgd_step": 0.025, "pgd_steps": 20,
             "sweep_eps": [0.1, 0.2, 0.3], "sweep_images": 1000,
             "example_digit": 0, "example_target": 6}
    cifar10 = dict(mnist, model="cifar_cnn_harms", epochs=30, patience=3, ith_member=3,
                   fgsm_eps=8 / 255, bim_eps=8 / 255, bim_step=2 / 255, pgd_eps=8 / 255,
                   pgd_step=2 / 255, pgd_steps=20, sweep_eps=[2 / 255, 4 / 255, 8 / 255],
                   cached=cifar10_cached())
    del cifar10["example_digit"], cifar10["example_target"]
    if quick:
        smaller = {"batch_size": 16, "train_images": 1200, "validation_images": 200,
                   "test_images": 200, "epochs": 1, "patience": 1, "n_models": 3,
                   "ith_member": 2, "lbfgs_images": 4, "lbfgs_search_steps": 2,
                   "lbfgs_iterations": 20, "retrain_images": 300, "retrain_epochs": 1,
                   "adaptive_images": 50, "pgd_steps": 10, "sweep_images": 50}
        mnist = dict(mnist, **smaller, pgd_step=0.05)
        cifar10 = dict(cifar10, **smaller, pgd_step=2 / 255)
    return {f"{dataset}_{key}": value
            for dataset, settings in (("mnist", mnist), ("cifar10", cifar10))
            for key, value in settings.items()}


def tables(config, outputs):
    return report.tables(config, outputs)


def figures(config, outputs):
    return charts.figures(config, outputs)


def checks(config, outputs):
    """Properties a broken pipeline fails, whatever the scale: the original learnt; an
    ensemble of one member has that member's accuracy, and the stored members rebuilt into the
    ensemble predict as the mean of their softmax; BIM breaks the model it is made on; L-BFGS
    reaches its targets; the first epoch of FGSM retraining moves the model off the original's
    FGSM adversarials (a plain copy would stay on them); white-box PGD through the ensemble's
    gradient breaks it (a broken gradient would leave it near its clean accuracy)."""
    sizes_, made = outputs["mnist_sizes"], outputs["mnist_attacks_original"]
    tables4 = outputs["mnist_retraining"]
    ensemble_rows = outputs["mnist_adaptive"]["defences"]["ensemble"]
    return [
        ("the original model classifies over 85% of the clean test images",
         outputs["mnist_original"]["test_accuracy"] > 0.85),
        ("the ensemble of the first member alone has that member's clean accuracy",
         abs(sizes_["sets"]["clean"]["ensemble"][0]
             - outputs["mnist_ensemble"]["member_accuracy"][0]) < 1e-9),
        ("the stored members rebuilt into the ensemble predict as their mean softmax",
         abs(sizes_["ensemble_predict"] - sizes_["sets"]["clean"]["ensemble"][-1]) < 1e-9
         and abs(sizes_["ensemble_vote"] - sizes_["sets"]["clean"]["vote"]) < 1e-9),
        ("BIM leaves the original model under 10% accuracy on its own adversarials",
         made["on_source"]["bim"] < 0.1),
        ("L-BFGS reaches its target on at least half of the images it attacks",
         made["lbfgs_success"].mean() >= 0.5),
        ("after its first epoch (trained on the original's FGSM adversarials), the "
         "FGSM-retrained model classifies at least 20 points more of the original's FGSM "
         "adversarials correctly than the original",
         outputs["mnist_retraining_epochs"]["from_original"][0]
         >= tables4["original"]["white-box fgsm"] + 0.2),
        ("white-box PGD through the ensemble's mean softmax leaves it under 10% accuracy",
         ensemble_rows["white-box pgd"] < 0.1),
    ]
