"""Wang & Zhang, "Towards robust image classification against adversarial examples" (2019), on
MNIST 6 vs 7: the baseline under spatial, JSMA and FGSM attacks (Table I); Gaussian blur, median
"feature squeezing", FGSM adversarial training and the black-box defence (Tables II-V); the
integrated model of six networks (Tables VI-VII); and beyond the paper the same defences
against attacks that know them.

    nnscratch reproduce wang [--quick]

The stages are in ``stages.py``, ``integrated.py`` and ``adaptive.py``, the paper's numbers,
tables and figures in ``report.py``. Where the paper and its authors' code differ (the black-box
defence, the median window, the integrated model's MLP), the paper's description is the primary
row and the code's variant stands beside it.
"""

from nnscratch.experiments.runner import Stage
from nnscratch.experiments.wang import report
from nnscratch.experiments.wang.adaptive import adaptive
from nnscratch.experiments.wang.integrated import MEMBERS, integrated
from nnscratch.experiments.wang.stages import (SPATIAL_SETS, baseline, evaluate, fgsm_trained,
                                               local_search_trained, spatial, substitute, table1,
                                               trained_on)

NAME = "wang"
TITLE = ("Wang & Zhang 2019, Towards robust image classification against adversarial examples: "
         "Tables I-VII on MNIST 6 vs 7, and the defences against attacks that know them")
FULL_RUN = ("about 44 minutes on 2 cores (2,626 s of stage compute, x86_64 with NumPy's "
            "OpenBLAS, 2026-12-03, while other work shared the cores)")

DATA = ("train_images", "holdout", "test_images")
PREPROCESSING = ("blur_sigma", "blur_truncate", "median_size", "median_code_size")
TRAINING = DATA + PREPROCESSING + ("epochs", "label_smoothing")
ADVERSARIAL = TRAINING + ("fgsm_eps", "adversarial_alpha")
SPATIAL = DATA + ("spatial_max_rotation", "spatial_max_translation", "spatial_rotations",
                  "spatial_translations", "spatial_border", "spatial_mass_tolerance")
SUBSTITUTE = TRAINING + ("substitute_rounds", "substitute_epochs", "substitute_lambda")
LOCAL_SEARCH = TRAINING + ("local_search_images", "local_search_rounds")
EVALUATE = DATA + PREPROCESSING + ("fgsm_eps",)
COMBINER = EVALUATE + ("combiner_hidden", "combiner_lr", "combiner_batch_size",
                       "combiner_epochs")

# the networks of Tables II-V: stage name -> (preprocessing, how it is trained)
NETWORKS = {"plain_none": ("none", None), "plain_blur": ("blur", None),
            "plain_median": ("median", None), "plain_median_code": ("median_code", None),
            "fgsm_none": ("none", fgsm_trained), "fgsm_blur": ("blur", fgsm_trained),
            "fgsm_median": ("median", fgsm_trained)}
EVALUATED = ("plain_blur", "plain_median", "plain_median_code", "fgsm_none", "local_search",
             "substitute_none")

STAGES = [
    Stage("baseline", baseline, keys=DATA + ("baseline_epochs",)),
    Stage("spatial", spatial("stated"), uses=("baseline",), keys=SPATIAL),
    Stage("spatial_as_run", spatial("as_run"), uses=("baseline",), keys=SPATIAL),
    Stage("table1", table1, uses=("baseline",) + SPATIAL_SETS,
          keys=DATA + ("jsma_images", "jsma_theta", "jsma_gamma", "fgsm_eps")),
    *[Stage(name, trained_on(preprocessing, objective),
            keys=ADVERSARIAL if objective else TRAINING)
      for name, (preprocessing, objective) in NETWORKS.items()],
    Stage("local_search", local_search_trained, uses=("plain_none",), keys=LOCAL_SEARCH),
    *[Stage(f"substitute_{p}", substitute(p), uses=(f"plain_{p}",), keys=SUBSTITUTE)
      for p in ("none", "blur", "median")],
    *[Stage(f"evaluate_{name}", evaluate(name), uses=(name,) + SPATIAL_SETS, keys=EVALUATE)
      for name in EVALUATED],
    Stage("integrated", integrated, uses=MEMBERS + SPATIAL_SETS, keys=COMBINER),
    Stage("adaptive", adaptive, uses=MEMBERS + ("plain_blur", "plain_median", "integrated"),
          keys=COMBINER + ("adaptive_images", "pgd_step", "pgd_steps")),
]


def config(quick):
    """Every setting. Full: all 12,183 training and 1,986 test images of the 6s and 7s, the
    code's 6 epochs per network. Quick: the same stages on a few thousand images, a smaller
    spatial grid and fewer substitute rounds, minutes on 2 cores."""
    full = {"train_images": None, "holdout": 150, "test_images": None,
            "baseline_epochs": 5, "epochs": 6, "label_smoothing": 0.1,
            "blur_sigma": 2.0, "blur_truncate": 4.0, "median_size": [2, 2],
            "median_code_size": [1, 2], "fgsm_eps": 0.3, "adversarial_alpha": 0.5,
            "jsma_images": 500, "jsma_theta": 1.0, "jsma_gamma": 0.1,
            "spatial_max_rotation": 10, "spatial_max_translation": 10,
            "spatial_rotations": 11, "spatial_translations": 5, "spatial_border": 2,
            "spatial_mass_tolerance": 0.1,
            "substitute_rounds": 6, "substitute_epochs": 10, "substitute_lambda": 0.1,
            "local_search_images": 200, "local_search_rounds": 30,
            "combiner_hidden": [256, 256], "combiner_lr": 0.001, "combiner_batch_size": 128,
            "combiner_epochs": 15,
            "adaptive_images": 500, "pgd_step": 0.01, "pgd_steps": 40}
    if not quick:
        return full
    return dict(full, train_images=3000, test_images=300, baseline_epochs=2, epochs=2,
                jsma_images=40, spatial_rotations=3, spatial_translations=3,
                substitute_rounds=2, substitute_epochs=3, local_search_images=20,
                local_search_rounds=5, combiner_epochs=3, adaptive_images=100, pgd_steps=10,
                pgd_step=0.03)


def tables(config, outputs):
    return report.tables(config, outputs)


def figures(config, outputs):
    return report.figures(config, outputs)


def checks(config, outputs):
    """Properties a broken pipeline fails, whatever the scale: the baseline learnt; JSMA turns
    nearly every image; adversarial training holds against its own attack; the median filter
    does not stop an attack made through it; a substitute learnt its oracle."""
    median = outputs["adaptive"]["median"]
    return [
        ("the baseline classifies over 95% of the clean test images correctly",
         outputs["baseline"]["test_accuracy"] > 0.95),
        ("JSMA succeeds on at least 95% of the images it attacks",
         outputs["table1"]["jsma_success"] >= 0.95),
        ("the FGSM-trained network keeps an F1 of at least 0.9 under FGSM",
         outputs["evaluate_fgsm_none"]["fgsm"]["f1"] >= 0.9),
        ("PGD through the median filter lowers its accuracy below FGSM made before it",
         median["PGD through it (exact gradient)"]["accuracy"]
         < median["FGSM before the preprocessing (the paper)"]["accuracy"]),
        ("the substitute agrees with its oracle on at least 80% of the test images",
         outputs["substitute_none"]["agreement"] >= 0.8),
    ]
