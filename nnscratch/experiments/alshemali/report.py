"""Alshemali, Graham & Kalita's tables beside the measured values, Feinman et al.'s ROC-AUC,
the adaptive attacks, and the figures (uncertainty histograms, ROC curves, example outcomes).

The paper's numbers are copied from its Tables 1-3 (MNIST, LeNet with dropout, 50/50 mixes of
about 10,000 images; Table 2's counts sum to 9,907, 9,907 and 9,907) and from its text for
Feinman et al.'s ROC-AUC.
"""

import numpy as np
from matplotlib.figure import Figure

from nnscratch.experiments.alshemali.feinman import FEINMAN_ATTACKS
from nnscratch.experiments.alshemali.stages import ATTACKS
from nnscratch.experiments.common import pct
from nnscratch.experiments.report import Row, Table

NAMES = {"fgsm": "FGSM", "jsma": "JSMA", "bim": "BIM", "bim_a": "BIM-A"}
PAPER_TABLE1 = {"fgsm": 59.0, "jsma": 52.0, "bim": 50.0}
PAPER_TABLE2 = {"fgsm": {"fn": 252, "fp": 134, "tn": 4796, "tp": 4725, "accuracy": 96.1},
                "jsma": {"fn": 85, "fp": 74, "tn": 4856, "tp": 4892, "accuracy": 98.3},
                "bim": {"fn": 249, "fp": 104, "tn": 4826, "tp": 4728, "accuracy": 96.4}}
PAPER_TABLE3 = {"fgsm": 99.0, "jsma": 99.9, "bim": 99.0}
PAPER_FEINMAN = {"fgsm": 90.57, "bim_a": 97.23, "jsma": 98.13}
SETTING = {"fgsm": "eps", "bim": "eps", "jsma": "gamma"}

TRAINING = ("our LeNet ({epochs} epochs of the LeNet recipe) is not the paper's; how far the "
            "uncertainty separates the two halves depends on the trained weights and on the "
            "attack strengths, which the paper does not give")
FEINMAN = ("our feinman_cnn ({epochs} epochs), {images} test images, noisy negatives of the "
           "adversarials' L2 norm; Feinman et al. fit and score the regression on the whole "
           "test set")


def rate(numerator, denominator):
    return pct(numerator / denominator) if denominator else float("nan")


def table1(config, outputs):
    rows = []
    for kind in ATTACKS:
        made = outputs[f"adversarials_{kind}"]
        rows.append(Row(f"{NAMES[kind]}: undefended accuracy on the mix",
                        pct(made["table1_accuracy"]), PAPER_TABLE1[kind], tolerance=1.0,
                        reason="the strength chosen on validation data gives "
                               f"{pct(made['validation_accuracy']):.1f}% there"))
        rows.append(Row(f"{NAMES[kind]}: {SETTING[kind]} chosen on validation data",
                        made["setting"], unit=""))
        rows.append(Row(f"{NAMES[kind]}: adversarials whose class did not change",
                        made["failed"], unit=f"of {made['adversarials']}"))
        rows.append(Row(f"{NAMES[kind]}: mean L2 of the successful perturbations",
                        made["mean_l2"], unit="L2"))
    note = (f"LeNet with dropout {config['dropout']:g}: "
            f"{pct(outputs['lenet']['test_accuracy']):.2f}% on the "
            f"{config['test_images']} test images (the paper: 98%). Clean images: the first "
            "half of the test images; adversarials: made from the correctly classified images "
            "of the second half. Strengths chosen by bisection (JSMA: truncation of one run) "
            f"on {config['calibration_images']} + {config['calibration_images']} validation "
            f"images; BIM runs {config['bim_steps']} steps of eps / "
            f"{config['bim_step_divisor']:g} (cleverhans 2.0's ratio).")
    return Table("Table 1: accuracy of the undefended network on the 50/50 mixes", rows, note)


def table2_and_3(config, outputs):
    rows = []
    for kind in ATTACKS:
        measured, paper = outputs[f"detector_{kind}"]["table2"], PAPER_TABLE2[kind]
        clean, adversarial = measured["tn"] + measured["fp"], measured["tp"] + measured["fn"]
        for key, label in (("tp", "true positives"), ("fp", "false positives"),
                           ("tn", "true negatives"), ("fn", "false negatives")):
            rows.append(Row(f"{NAMES[kind]}: {label} (paper: {paper[key]:,})", measured[key],
                            unit=f"of {adversarial if key in ('tp', 'fn') else clean:,}"))
        rows.append(Row(f"{NAMES[kind]}: adversarials flagged", rate(measured["tp"], adversarial),
                        rate(paper["tp"], paper["tp"] + paper["fn"]),
                        reason=TRAINING.format(epochs=config["epochs"])))
        rows.append(Row(f"{NAMES[kind]}: clean images flagged", rate(measured["fp"], clean),
                        rate(paper["fp"], paper["fp"] + paper["tn"]),
                        reason=TRAINING.format(epochs=config["epochs"])))
        rows.append(Row(f"{NAMES[kind]}: detection accuracy (Table 2)",
                        pct(measured["accuracy"]), paper["accuracy"],
                        reason=TRAINING.format(epochs=config["epochs"])))
        rows.append(Row(f"{NAMES[kind]}: accuracy on the images flagged clean (Table 3)",
                        pct(measured["clean_flagged_accuracy"]), PAPER_TABLE3[kind],
                        reason=TRAINING.format(epochs=config["epochs"])))
    note = (f"Algorithm 1 with {config['mc_samples']} MC-dropout passes, the standard deviation "
            f"of the provisional class's probability, {config['votes']} of 5 crops of "
            f"{config['crop']}x{config['crop']} resized back; thresholds by information gain on "
            "each attack's validation mix. Adversarial is the positive class. The paper's counts "
            "are of 4,930 clean and 4,977 adversarial images; the rates compare.")
    return Table("Tables 2 and 3: detection, and accuracy on the images flagged clean", rows,
                 note)


def vote_sweep(config, outputs):
    rows = []
    for kind in ATTACKS:
        measured = outputs[f"detector_{kind}"]
        rows.append(Row(f"{NAMES[kind]}: thresholds low / high", measured["low"],
                        unit=f"/ {measured['high']:.4g}"))
        rows.append(Row(f"{NAMES[kind]}: share of the mix that reached the crop stage",
                        pct(measured["crop_share"])))
        rows.append(Row(f"{NAMES[kind]}: ROC-AUC of the uncertainty alone",
                        pct(measured["roc_auc"])))
        for votes, cell in measured["sweep"].items():
            rows.append(Row(f"{NAMES[kind]}, {votes} of 5 crops: detection accuracy / "
                            "accuracy flagged clean", pct(cell["accuracy"]),
                            unit=f"% / {pct(cell['clean_flagged_accuracy']):.2f}%"))
    return Table("The k-of-5 crop vote (the paper found 4 of 5 best) and the crop stage's share",
                 rows, "Each k re-decides only the images in the crop stage; the thresholds "
                       "stay those fitted for 4 of 5.")


def feinman_table(config, outputs):
    rows = []
    reason = FEINMAN.format(epochs=config["feinman_epochs"], images=config["feinman_images"])
    for kind in FEINMAN_ATTACKS:
        measured = outputs[f"feinman_{kind}"]
        rows.append(Row(f"{NAMES[kind]}: KDE + BU ROC-AUC on the data it was fitted on",
                        pct(measured["fit"]["kde_bu"]), PAPER_FEINMAN[kind], reason=reason))
        for part, where in (("held_out", "held out"), ("fit", "fit half")):
            for key, label in (("kde_bu", "KDE + BU"), ("density", "density alone"),
                               ("feinman_uncertainty", "Feinman's uncertainty alone"),
                               ("alshemali_uncertainty", "Alshemali's uncertainty alone")):
                if part == "fit" and key == "kde_bu":
                    continue
                rows.append(Row(f"{NAMES[kind]}: {label} ROC-AUC, {where}",
                                pct(measured[part][key])))
        rows.append(Row(f"{NAMES[kind]}: attack success on feinman_cnn", pct(measured["success"])))
    accuracy = pct(outputs["feinman_network"]["test_accuracy"])
    fgsm, bim_a, jsma = (config[f"feinman_{kind}"] for kind in ("fgsm", "bim_a", "jsma"))
    return Table("Feinman et al.'s detector (feinman_cnn) and the uncertainty score on the same "
                 "images", rows,
                 f"feinman_cnn: {accuracy:.2f}% on the test images. FGSM eps "
                 f"{fgsm['eps']:g}; BIM-A eps {bim_a['eps']:g}, steps of {bim_a['step']:g}; "
                 f"JSMA theta {jsma['theta']:g}, gamma {jsma['gamma']:g} (Feinman et al.'s "
                 "code).")


def adaptive_table(config, outputs):
    rows = []
    measured = outputs["adaptive_uncertainty"]
    cases = [(f"uncertainty + crops, {NAMES[kind]} budget eps {measured[kind]['eps']:.3g}",
              measured[kind]) for kind in ("fgsm", "bim")]
    cases.append((f"Feinman's detector, BIM-A budget eps {outputs['adaptive_feinman']['eps']:g}",
                  outputs["adaptive_feinman"]))
    for name, case in cases:
        for attack in ("non_adaptive", "adaptive"):
            cell = case[attack]
            flagged = rate(cell["tp"], cell["tp"] + cell["fn"])
            label = "adaptive PGD" if attack == "adaptive" else "the paper's attack"
            rows.append(Row(f"{name}, {label}: detection accuracy", pct(cell["accuracy"])))
            rows.append(Row(f"{name}, {label}: adversarials flagged", flagged))
            rows.append(Row(f"{name}, {label}: accuracy on the images flagged clean",
                            pct(cell["clean_flagged_accuracy"])))
        rows.append(Row(f"{name}: adaptive adversarials misclassified by the network",
                        pct(case["adaptive_misclassified"])))
    note = (f"{measured['images']} adversarials and as many clean test images per case (Feinman: "
            f"{outputs['adaptive_feinman']['images']} held-out images); PGD "
            f"{config['adaptive_steps']} steps of eps / 10; EOT over {config['eot_samples']} "
            f"dropout masks per step, uncertainty weight {config['uncertainty_weight']:g}.")
    return Table("Beyond the paper: the detectors against attacks that know them", rows, note)


def tables(config, outputs):
    return [table1(config, outputs), table2_and_3(config, outputs), vote_sweep(config, outputs),
            feinman_table(config, outputs), adaptive_table(config, outputs)]


def histograms(outputs):
    """Uncertainty of clean and adversarial test images per attack, with the thresholds."""
    fig = Figure(figsize=(12, 3.4), dpi=120)
    for ax, kind in zip(fig.subplots(1, len(ATTACKS)), ATTACKS):
        measured = outputs[f"detector_{kind}"]
        scores, adversarial = measured["uncertainty"], measured["is_adversarial"]
        bins = np.linspace(0, max(float(scores.max()), 1e-6), 50)
        ax.hist(scores[~adversarial], bins=bins, alpha=0.6, label="clean")
        ax.hist(scores[adversarial], bins=bins, alpha=0.6, label="adversarial")
        for name in ("low", "high"):
            ax.axvline(measured[name], color="black", linestyle="--" if name == "low" else "-")
        ax.set_yscale("log")
        ax.set_title(f"{NAMES[kind]}: low (dashed) and high thresholds", fontsize=9)
        ax.set_xlabel("std of the provisional class's probability")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def roc_curves(outputs):
    """Feinman's detector: ROC on the fit half and on the held-out half, per attack."""
    fig = Figure(figsize=(12, 3.6), dpi=120)
    for ax, kind in zip(fig.subplots(1, len(FEINMAN_ATTACKS)), FEINMAN_ATTACKS):
        measured = outputs[f"feinman_{kind}"]
        for part, label in (("fit", "fit half"), ("held_out", "held out")):
            fpr, tpr = measured[f"{part}_curve"]
            ax.plot(fpr, tpr, label=f"{label} (AUC {pct(measured[part]['kde_bu']):.1f}%)")
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.5)
        ax.set_title(f"KDE + BU, {NAMES[kind]} (paper {PAPER_FEINMAN[kind]}%)", fontsize=9)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def examples(outputs, per_outcome=4):
    """Per attack, a row of images for each outcome: TP, FP, TN, FN."""
    outcomes = ("TP", "FP", "TN", "FN")
    fig = Figure(figsize=(len(ATTACKS) * per_outcome * 0.9, 4 * 1.0), dpi=120)
    axes = fig.subplots(4, len(ATTACKS) * per_outcome, squeeze=False)
    for a, kind in enumerate(ATTACKS):
        images = outputs[f"detector_{kind}"]["x_examples"]
        for o, outcome in enumerate(outcomes):
            for i in range(per_outcome):
                ax = axes[o, a * per_outcome + i]
                image = images[o * per_outcome + i].reshape(28, 28)
                ax.imshow(image, cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_ylabel(outcome, fontsize=8)
                if o == 0 and i == 0:
                    ax.set_title(NAMES[kind], fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def figures(config, outputs):
    return {"uncertainty_histograms": histograms(outputs), "roc_feinman": roc_curves(outputs),
            "example_outcomes": examples(outputs)}
