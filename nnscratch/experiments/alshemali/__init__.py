"""Alshemali, Graham & Kalita, "Toward Robust Image Classification": MC-dropout uncertainty
with a five-crop vote (their Algorithm 1) on LeNet/MNIST under FGSM, JSMA and BIM (Tables 1-3),
beside Feinman et al.'s kernel-density + Bayesian-uncertainty detector, and beyond the paper
both detectors against attacks that know them.

    nnscratch reproduce alshemali [--quick]

The stages are in ``stages.py`` (LeNet, the mixed sets, Algorithm 1),
``feinman.py`` (Feinman et al.) and ``adaptive.py``; the paper's numbers,
tables and figures in ``report.py``.
"""

from nnscratch.experiments.alshemali import report
from nnscratch.experiments.alshemali.adaptive import adaptive_feinman, adaptive_uncertainty
from nnscratch.experiments.alshemali.feinman import FEINMAN_ATTACKS, feinman, feinman_network
from nnscratch.experiments.alshemali.stages import ATTACKS, adversarials, detector, lenet
from nnscratch.experiments.runner import Stage

NAME = "alshemali"
TITLE = ("Alshemali, Graham & Kalita, Toward Robust Image Classification: Tables 1-3, the "
         "k-of-5 vote, Feinman et al.'s detector beside it, and both against adaptive attacks")
FULL_RUN = ("about 45 minutes on 2 cores (2026-11-22, x86_64, NumPy's OpenBLAS): 4,447 s "
            "measured, of which feinman_cnn's training took 2,756 s beside another run (its "
            "epochs take about 75 s alone) and LeNet's 383 s in an earlier run")

TRAINING = ("train_images", "epochs", "test_images", "dropout")
STRENGTHS = ("test_images", "validation_images", "calibration_images", "table1_targets",
             "max_eps", "bisection_steps", "jsma_max_gamma", "bim_steps", "bim_step_divisor",
             "jsma_theta")
DETECTOR = ("test_images", "mc_samples", "votes", "crop")
FEINMAN_TRAINING = ("train_images", "test_images", "feinman_epochs")
FEINMAN = ("train_images", "test_images", "feinman_epochs", "feinman_images", "mc_samples")
ADAPTIVE = ("adaptive_images", "adaptive_steps", "eot_samples", "uncertainty_weight")

STAGES = [
    Stage("lenet", lenet, keys=TRAINING),
    Stage("feinman_network", feinman_network, keys=FEINMAN_TRAINING),
    *[Stage(f"adversarials_{kind}", adversarials(kind), uses=("lenet",), keys=STRENGTHS)
      for kind in ATTACKS],
    *[Stage(f"detector_{kind}", detector(kind), uses=("lenet", f"adversarials_{kind}"),
            keys=DETECTOR) for kind in ATTACKS],
    *[Stage(f"feinman_{kind}", feinman(kind), uses=("feinman_network",),
            keys=FEINMAN + (f"feinman_{kind}",)) for kind in FEINMAN_ATTACKS],
    Stage("adaptive_uncertainty", adaptive_uncertainty,
          uses=("lenet", "adversarials_fgsm", "adversarials_bim", "detector_fgsm",
                "detector_bim"), keys=DETECTOR + ADAPTIVE),
    Stage("adaptive_feinman", adaptive_feinman, uses=("feinman_network",),
          keys=FEINMAN + ADAPTIVE + ("feinman_bim_a",)),
]


def config(quick):
    """Every setting. Full: LeNet 12 epochs and feinman_cnn 10 epochs on the 55,000 training
    images, the 10,000 test images in two halves (the paper's 50/50 mixes of about 10,000),
    strengths chosen on 2,000 + 2,000 of the 5,000 validation images. Quick: the same stages on
    a few thousand images, minutes on 2 cores.

    The attacks' constants, with their sources: dropout 0.5 after the last pooling and after
    ip1 (Alshemali et al.'s LeNet); BIM ``bim_steps`` 10 steps of eps / ``bim_step_divisor``
    6, cleverhans 2.0's defaults (eps 0.3, eps_iter 0.05, nb_iter 10) scaled together, the
    library the paper used; JSMA ``jsma_theta`` +1 (Papernot et al.: pixels raised). Feinman
    et al.'s attacks (``feinman_fgsm``, ``feinman_bim_a``, ``feinman_jsma``), from their
    released code as their paper gives none: FGSM eps 0.3; BIM-A eps 0.3 in 50 steps of 0.01,
    each image stopping at its first misclassification; JSMA theta 1, gamma 0.1. The adaptive
    attack on Feinman's detector uses BIM-A's eps as its budget."""
    full = {"train_images": 55_000, "epochs": 12, "test_images": 10_000,
            "validation_images": 5_000, "calibration_images": 2_000,
            "table1_targets": {"fgsm": 0.59, "jsma": 0.52, "bim": 0.50},
            "max_eps": 0.5, "bisection_steps": 12, "jsma_max_gamma": 0.2,
            "dropout": 0.5, "bim_steps": 10, "bim_step_divisor": 6, "jsma_theta": 1.0,
            "mc_samples": 50, "votes": 4, "crop": 24,
            "feinman_epochs": 10, "feinman_images": 1_000,
            "feinman_fgsm": {"eps": 0.3}, "feinman_bim_a": {"eps": 0.3, "step": 0.01, "steps": 50},
            "feinman_jsma": {"theta": 1.0, "gamma": 0.1},
            "adaptive_images": 500, "adaptive_steps": 40, "eot_samples": 8,
            "uncertainty_weight": 1.0}
    if not quick:
        return full
    return dict(full, train_images=10_000, epochs=4, test_images=400, validation_images=400,
                calibration_images=150, bisection_steps=7, jsma_max_gamma=0.1, mc_samples=10,
                feinman_epochs=1, feinman_images=60, adaptive_images=40, adaptive_steps=10,
                eot_samples=4)


def tables(config, outputs):
    return report.tables(config, outputs)


def figures(config, outputs):
    return report.figures(config, outputs)


def checks(config, outputs):
    """Properties a broken pipeline fails, whatever the scale: the network learnt, the
    detector flags far more BIM adversarials than clean images, accuracy on the images it
    flags clean beats the undefended accuracy on the mix, and Feinman's detector is better
    than chance on the data it was fitted on."""
    bim = outputs["detector_bim"]["table2"]
    flagged_adversarial = bim["tp"] / max(bim["tp"] + bim["fn"], 1)
    flagged_clean = bim["fp"] / max(bim["fp"] + bim["tn"], 1)
    return [
        ("LeNet with dropout classifies over 90% of the test images",
         outputs["lenet"]["test_accuracy"] > 0.9),
        ("the detector flags at least 20 points more of the BIM adversarials than of the clean "
         "images", flagged_adversarial > flagged_clean + 0.2),
        ("accuracy on the images flagged clean exceeds the undefended accuracy on the mix, for "
         "every attack",
         all(outputs[f"detector_{kind}"]["table2"]["clean_flagged_accuracy"]
             > outputs[f"adversarials_{kind}"]["table1_accuracy"] for kind in ATTACKS)),
        ("Feinman et al.'s detector has a ROC-AUC above 0.6 on its fit data for every attack",
         all(outputs[f"feinman_{kind}"]["fit"]["kde_bu"] > 0.6 for kind in FEINMAN_ATTACKS)),
    ]
