"""Günther, Rozsa & Boult, "On the Robustness of Deep Neural Networks" (2017), on MNIST with
LeNet: adversarial fine-tuning (Table 1), preprocessing and five crops (Table 2), OpenMax
against adversarial and fooling images (Table 3), the aliasing experiment (section 3), and
beyond the paper the same defences against an attacker who knows them.

    nnscratch reproduce gunther [--quick]

The stages are in ``stages.py`` (and ``adaptive.py``), the paper's numbers,
tables and figures in ``report.py``. The full run scales the paper's training down
(12 LeNet epochs instead of 100k Caffe iterations; fine-tuning on a part of the training set)
so that it runs in about 21 minutes on 2 cores; ``tables.md`` says so under each table.
"""

import numpy as np

from nnscratch.experiments.gunther import report
from nnscratch.experiments.gunther.adaptive import adaptive
from nnscratch.experiments.gunther.stages import (NETWORKS, aliasing, base, blurred, finetune,
                                                  fooling, openmax, preprocessing, saturation,
                                                  table1, test_adversarials)
from nnscratch.experiments.runner import Stage

NAME = "gunther"
TITLE = ("Günther, Rozsa & Boult 2017, On the Robustness of Deep Neural Networks: Tables 1-3, "
         "the aliasing experiment, Figures 3-5, and the defences against adaptive attacks")
FULL_RUN = ("about 21 minutes on 2 cores (1,252 s of stage compute, x86_64 with NumPy's "
            "OpenBLAS, 2026-11-22)")

TRAINING = ("train_images", "epochs", "test_images")
FINETUNING = TRAINING + ("finetune_epochs", "finetune_lr")
FINETUNE_IMAGES = {"fgs": "finetune_images", "fgv": "finetune_images", "hc": "finetune_hc_images"}
TABLE1 = ("test_images", "hc_test_images", "pass_images")
FOOLING = ("fooling_per_digit", "fooling_confidences", "fooling_steps", "fooling_step_size")
OPENMAX = ("test_images", "openmax_train_images", "openmax_layers", "openmax_tailsizes",
           "openmax_tailsize", "openmax_alpha", "fooling_confidences")

STAGES = [
    Stage("base", base, keys=TRAINING),
    *[Stage(f"finetune_{kind}", finetune(kind), uses=("base",),
            keys=FINETUNING + (FINETUNE_IMAGES[kind],)) for kind in ("fgs", "fgv", "hc")],
    *[Stage(f"table1_{network}", table1(network), uses=(network,), keys=TABLE1)
      for network in NETWORKS],
    Stage("saturation", saturation, uses=NETWORKS, keys=("test_images",)),
    Stage("test_adversarials", test_adversarials, uses=("base",), keys=("test_images",)),
    Stage("preprocessing", preprocessing, uses=("base", "test_adversarials"),
          keys=("test_images",)),
    Stage("fooling", fooling, uses=("base",), keys=FOOLING),
    Stage("openmax", openmax, uses=("base", "test_adversarials", "fooling"), keys=OPENMAX),
    Stage("blurred", blurred, keys=TRAINING + ("alias_sigma",)),
    Stage("aliasing", aliasing, uses=("base", "blurred"),
          keys=("test_images", "alias_pass_images")),
    Stage("adaptive", adaptive, uses=("base",),
          keys=("test_images", "adaptive_images", "pgd_eps", "pgd_step", "pgd_steps",
                "adaptive_fooling_per_digit", *FOOLING, *OPENMAX)),
]


def config(quick):
    """Every setting. Full: 12 epochs on the 55,000 training images (the paper: 100k Caffe
    iterations of 64, about 116 epochs), the 10,000 test images. Quick: the same stages on a
    few thousand images, minutes on 2 cores."""
    full = {"train_images": 55_000, "epochs": 12, "test_images": 10_000,
            "finetune_images": 20_000, "finetune_hc_images": 10_000, "finetune_epochs": 3,
            "finetune_lr": 0.001, "hc_test_images": 2_000, "pass_images": 300,
            "fooling_per_digit": 100, "fooling_confidences": [0.5, 0.9, 0.99],
            "fooling_steps": 500, "fooling_step_size": 0.01,
            "openmax_train_images": 55_000, "openmax_layers": ["relu_1", "dense_2"],
            "openmax_tailsizes": [20, 200, 1000], "openmax_tailsize": 200, "openmax_alpha": 2,
            "alias_sigma": 1.25, "alias_pass_images": 500,
            "adaptive_images": 1_000, "pgd_eps": [0.1, 0.2, 0.3], "pgd_step": 0.01,
            "pgd_steps": 40, "adaptive_fooling_per_digit": 20}
    if not quick:
        return full
    return dict(full, train_images=4_000, epochs=2, test_images=300, finetune_images=500,
                finetune_hc_images=60, finetune_epochs=1, hc_test_images=60, pass_images=20,
                fooling_per_digit=4, fooling_steps=150, openmax_train_images=4_000,
                openmax_tailsizes=[20, 200], alias_pass_images=20, adaptive_images=60,
                pgd_eps=[0.2], pgd_steps=10, adaptive_fooling_per_digit=2)


def tables(config, outputs):
    return report.tables(config, outputs)


def figures(config, outputs):
    return report.figures(config, outputs)


def checks(config, outputs):
    """Properties a broken pipeline fails, whatever the scale: the network learnt, minimal
    adversarials are adversarial, five crops correct at least half of the FGV adversarials,
    OpenMax rejects more F50 fooling images than test images, and the adaptive attacks do at
    least as well through the defences as the transferred ones."""
    preprocessing_table = outputs["preprocessing"]
    openmax_results = outputs["openmax"]["settings"][f"{config['openmax_layers'][0]}/"
                                         f"{config['openmax_tailsize']}"]
    pgd = outputs["adaptive"]["attacks"][f"PGD eps {config['pgd_eps'][-1]:g}"]
    return [
        ("the base network classifies over 90% of the test images",
         outputs["base"]["test_accuracy"] > 0.9),
        # minimal adversarials sit within float32 rounding of the decision boundary:
        # classified again in other batches, a few can flip back (logits equal to 1e-6)
        ("at most 1% of the minimal adversarials are classified correctly without preprocessing",
         all(preprocessing_table["none"][kind] <= 0.01 for kind in ("fgs", "fgv", "hc1"))),
        ("five-crop averaging classifies at least half of the minimal FGV adversarials correctly",
         preprocessing_table["crops"]["fgv"] >= 0.5),
        ("OpenMax rejects more F50 fooling images than test images",
         openmax_results["f50"]["unknown"] > openmax_results["test"]["unknown"]),
        ("PGD through the five crops succeeds at least as often as PGD made on the bare network",
         pgd["crops"]["adaptive"] >= pgd["crops"]["transfer"]),
        ("fine-tuning kept the accuracy within 2 points",
         all(outputs[f"finetune_{kind}"]["test_accuracy"] > outputs["base"]["test_accuracy"] - 0.02
             for kind in ("fgs", "fgv", "hc"))),
        ("every aliasing confusion matrix counts the adversarials found",
         all(int(np.sum(outputs["aliasing"][f"{n}_confusion"])) == outputs["aliasing"][f"{n}_found"]
             for n in ("base", "blurred"))),
    ]
