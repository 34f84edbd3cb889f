"""Deep Neural Rejection (Sotgiu et al. 2019) on the report's network, ``dnr_cnn``: layer SVMs
and an RBF combiner, compared with the undefended CNN, a softmax threshold, the single-layer
reject NR and OpenMax under FGSM, PGD (L-inf and L2), the defence-aware attack and the one-pixel
attack. The study Thanthulage's research report planned and did not finish.

    nnscratch reproduce dnr [--quick]

The stages are in ``stages.py`` (network, SVM selection, attacks, evaluation) and
``adaptive.py`` (defence-aware, one pixel); the claims, tables and figures in ``report.py``.
Sotgiu et al. give their security evaluation curves as plots, without their values: the
paper's claims are the anchor, and ``tables.md`` says whether the run bears each out.
"""

from nnscratch.experiments.dnr import report
from nnscratch.experiments.dnr.adaptive import defence_aware, one_pixel
from nnscratch.experiments.dnr.stages import (attacks, defences, evaluation, network,
                                              svm_selection)
from nnscratch.experiments.runner import Stage

NAME = "dnr"
TITLE = ("Deep Neural Rejection (Sotgiu et al. 2019) on dnr_cnn: reject options under FGSM, "
         "PGD, the defence-aware attack and the one-pixel attack")
FULL_RUN = ("about 30 minutes on 2 cores (2026-11-22, x86_64, NumPy's OpenBLAS): 2,294 s "
            "measured over two runs, of which the network's 1,022 s include epochs slowed by "
            "another run (15 epochs take about 480 s alone) and the defence-aware attack, re-run "
            "with its second start, 434 s")

TRAINING = ("train_images", "epochs", "test_images")
SVMS = ("dnr_layers", "authors_svms")
DEFENCES = ("train_images", "dnr_images", "validation_images", "reject_rate", "folds",
            "openmax_tailsize", "openmax_layer", "dnr_combiner") + SVMS
ATTACKS = ("attack_images", "fgsm_eps", "pgd_linf_eps", "pgd_l2_eps", "pgd_steps")

STAGES = [
    Stage("network", network, keys=TRAINING),
    Stage("svm_selection", svm_selection, uses=("network",),
          keys=("train_images", "selection_images", "svm_grid_c", "svm_gamma_scale",
                "selection_folds") + SVMS),
    Stage("defences", defences, uses=("network", "svm_selection"), keys=DEFENCES),
    Stage("attacks", attacks, uses=("network",), keys=ATTACKS),
    Stage("evaluation", evaluation, uses=("network", "svm_selection", "defences", "attacks"),
          keys=DEFENCES + ATTACKS + ("test_images", "histogram_index")),
    Stage("defence_aware", defence_aware, uses=("network", "svm_selection", "defences"),
          keys=DEFENCES + ("aware_images", "aware_eps", "aware_steps", "aware_step",
                           "line_search", "pgd_steps")),
    Stage("one_pixel", one_pixel, uses=("network", "svm_selection", "defences"),
          keys=DEFENCES + ("one_pixel_images", "one_pixel_pixels", "one_pixel_population",
                           "one_pixel_iterations")),
]


def config(quick):
    """Every setting. Full: the network on 27,500 training images for 15 epochs, DNR on 5,000
    of the other half (the authors' tutorial), thresholds on 2,000 validation images for 10%
    rejection, clean curves on the 10,000 test images, attack curves on 500, the defence-aware
    attack on 100 (the authors' re-run), one pixel on 100. Quick: the same stages, smaller.

    The defences' and attacks' constants, with their sources (Sotgiu et al. 2019 and the
    authors' DNR tutorial): DNR's layers ``dnr_layers`` (the last three of the network), their
    RBF SVMs' (C, gamma) ``authors_svms``, searched by ``selection_folds``-fold
    cross-validation over C in ``svm_grid_c`` and gamma / ``svm_gamma_scale``, gamma,
    gamma * ``svm_gamma_scale`` (our choice: the authors fixed them for their network, not
    ours), the combiner's (C, gamma) ``dnr_combiner`` (0.1, 1), NR on the last of the layers;
    OpenMax (Günther et al.'s) on ``openmax_layer``, the last hidden layer; the defence-aware
    attack's first step ``aware_step`` 0.1 (the authors' re-run)."""
    full = {"train_images": 55_000, "epochs": 15, "test_images": 10_000, "dnr_images": 5_000,
            "selection_images": 2_000, "validation_images": 2_000, "reject_rate": 0.1,
            "folds": 5, "openmax_tailsize": 20, "openmax_layer": "relu_6",
            "dnr_layers": ["flatten_1", "relu_5", "relu_6"],
            "authors_svms": [[10.0, 1e-3], [10.0, 1e-2], [1.0, 1e-2]],
            "dnr_combiner": [0.1, 1.0], "svm_grid_c": [1.0, 10.0], "svm_gamma_scale": 10,
            "selection_folds": 3,
            "attack_images": 500, "fgsm_eps": [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
            "pgd_linf_eps": [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
            "pgd_l2_eps": [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0], "pgd_steps": 40,
            "histogram_index": 4,
            "aware_images": 100, "aware_eps": [0, 0.5, 1.0, 2.0, 3.0, 5.0], "aware_steps": 30,
            "aware_step": 0.1, "line_search": 10,
            "one_pixel_images": 100, "one_pixel_pixels": [1, 3, 5],
            "one_pixel_population": 100, "one_pixel_iterations": 20}
    if not quick:
        return full
    return dict(full, train_images=24_000, epochs=4, test_images=2_000, dnr_images=2_000,
                selection_images=400, attack_images=100, fgsm_eps=[0, 0.3],
                pgd_linf_eps=[0, 0.3], pgd_l2_eps=[0, 2.0], pgd_steps=10, histogram_index=1,
                aware_eps=[0, 2.0], aware_steps=10, line_search=5,
                one_pixel_images=10, one_pixel_pixels=[1, 3], one_pixel_population=20,
                one_pixel_iterations=5)


def tables(config, outputs):
    return report.tables(config, outputs)


def figures(config, outputs):
    return report.figures(config, outputs)


def checks(config, outputs):
    """Properties a no-op or a reject-everything defence fails: the network learnt; DNR
    rejects its target rate of clean test images within 2 points, and at least 20 points more
    of the PGD (L-inf 0.3) adversarials than of the same images clean (the full run: 36); the
    defence-aware attack takes DNR's accuracy below that of PGD made against the network
    alone, on the same images at the same L2 budget."""
    clean = outputs["evaluation"]["clean"]["dnr"]
    pgd = outputs["evaluation"]["curves"]["dnr"]["pgd_linf"]
    aware = outputs["defence_aware"]["dnr"][-1]
    return [
        ("dnr_cnn classifies over 90% of the test images", outputs["network"]["test_accuracy"] > 0.9),
        (f"DNR rejects {100 * config['reject_rate']:.0f}% of clean test images within 2 points",
         abs(clean["rejected"] - config["reject_rate"]) <= 0.02),
        (f"DNR rejects at least 20 points more PGD adversarials (L-inf {pgd[-1]['eps']:g}) than "
         "the same images clean", pgd[-1]["rejected"] >= pgd[0]["rejected"] + 0.2),
        (f"the defence-aware attack (L2 {aware['eps']:g}) takes DNR's accuracy below that of "
         "PGD made against the network, on the same images",
         aware["accuracy"] < aware["transfer_accuracy"]),
    ]
