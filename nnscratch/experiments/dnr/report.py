"""The DNR study's tables and figures. Sotgiu et al. (2019) give their curves as plots without
their values, so the tables give the measured values and, for each claim of the paper, whether
this run bears it out.
"""

import numpy as np
from matplotlib.figure import Figure

from nnscratch.experiments.common import pct
from nnscratch.experiments.dnr.stages import CURVES, OPTIONS
from nnscratch.experiments.report import Row, Table

NAMES = {"cnn": "undefended CNN", "softmax": "softmax threshold", "nr": "NR",
         "dnr": "DNR", "openmax": "OpenMax"}
CURVE_NAMES = {"fgsm_linf": "FGSM L-inf", "pgd_linf": "PGD L-inf", "pgd_l2": "PGD L2"}
MEANING = (
    "What the numbers mean. Every reject option but the undefended CNN gives up about a tenth "
    "of the clean images by construction (its threshold is set for that rate on validation "
    "images), so its clean accuracy is at most about 90%, and what it buys is measured on "
    "the accepted images and under attack, where a rejected adversarial counts as a correct "
    "decision. Attacks made against the network alone (FGSM, PGD) move images away from the "
    "training data, where RBF scores fall towards their intercepts: DNR and NR reject them "
    "rather than misclassify them. The defence-aware attack instead climbs the best wrong "
    "class's score inside the L2 ball. Far from the training data every combined score sits "
    "near its intercept, below the threshold, and its gradient vanishes: started from the "
    "image alone, the attack stalls in the reject region, so it also starts from the training "
    "image of lowest objective and keeps the better run. Where it still does no better than "
    "PGD made against the network (the row beside it, same images), the lower of the two is "
    "the accuracy to trust, not evidence of robustness. A curve that falls towards 0 at "
    "larger budgets is the defence being bypassed, not a flaw of the evaluation.")


def verdict(holds):
    return "borne out" if holds else "NOT borne out"


def clean_table(config, outputs):
    rows = [Row("dnr_cnn test accuracy", pct(outputs["network"]["test_accuracy"]))]
    for name in OPTIONS:
        measured = outputs["evaluation"]["clean"][name]
        rows.append(Row(f"{NAMES[name]}: clean images rejected", pct(measured["rejected"])))
        rows.append(Row(f"{NAMES[name]}: accuracy on the accepted images",
                        pct(measured["accuracy_accepted"])))
        rows.append(Row(f"{NAMES[name]}: accuracy (a rejected clean image is an error)",
                        pct(measured["accuracy"])))
    svms = ", ".join(f"C {c:g} gamma {g:g}" for c, g in outputs["svm_selection"]["layer_svms"])
    note = (f"{config['test_images']} test images. dnr_cnn trained {config['epochs']} epochs "
            f"on {config['train_images'] // 2} training images; DNR, NR and OpenMax fitted on "
            f"{config['dnr_images']} others; thresholds for {pct(config['reject_rate']):.0f}% "
            f"rejection on {config['validation_images']} validation images. Layer SVMs "
            f"({', '.join(config['dnr_layers'])}) chosen by {config['selection_folds']}-fold "
            f"cross-validation: {svms}; combiner C {config['dnr_combiner'][0]:g}, gamma "
            f"{config['dnr_combiner'][1]:g} on {config['folds']}-fold out-of-fold scores.")
    return Table("Clean images: rejection and accuracy of each reject option", rows, note)


def security_table(config, outputs):
    rows = []
    for curve in CURVES:
        for name in OPTIONS:
            for point in outputs["evaluation"]["curves"][name][curve]:
                rows.append(Row(f"{CURVE_NAMES[curve]} eps {point['eps']:g}: {NAMES[name]}",
                                pct(point["accuracy"]),
                                unit=f"% ({pct(point['rejected']):.1f}% rejected)"))
    return Table("Security evaluation: accuracy under attacks made on the network", rows,
                 f"{config['attack_images']} test images; PGD {config['pgd_steps']} steps; a "
                 "rejected adversarial counts as correct (eps 0: plain accuracy).")


def aware_table(config, outputs):
    rows = []
    for name in ("dnr", "nr"):
        for point in outputs["defence_aware"][name]:
            rows.append(Row(f"L2 eps {point['eps']:g}: {NAMES[name]}", pct(point["accuracy"]),
                            unit=f"% ({pct(point['rejected']):.1f}% rejected)"))
            if point["eps"] > 0:
                rows.append(Row(f"L2 eps {point['eps']:g}: {NAMES[name]}, PGD made against the "
                                "network (same images)", pct(point["transfer_accuracy"]),
                                unit=f"% ({pct(point['transfer_rejected']):.1f}% rejected)"))
    return Table("The defence-aware attack (Sotgiu et al.)", rows,
                 f"{config['aware_images']} test images; {config['aware_steps']} steps of the "
                 f"normalised gradient from {config['aware_step']:g}, doubled up to "
                 f"{config['line_search']} times, "
                 f"from the image and from the DNR training image of lowest objective (the "
                 f"better run kept); beside it PGD L2 ({config['pgd_steps']} steps) made "
                 "against the network alone. A rejected adversarial counts as correct.")


def one_pixel_table(config, outputs):
    measured, rows = outputs["one_pixel"], []
    for pixels in config["one_pixel_pixels"]:
        cell = measured[f"pixels_{pixels}"]
        rows += [Row(f"{pixels} px against the network: success", pct(cell["network"]["success"])),
                 Row(f"{pixels} px against the network: queries",
                     cell["network"]["queries"], unit="per image"),
                 Row(f"{pixels} px, the network's adversarials shown to DNR: accepted and wrong",
                     pct(cell["transfer"]["success"])),
                 Row(f"{pixels} px, the network's adversarials shown to DNR: rejected",
                     pct(cell["transfer"]["rejected"])),
                 Row(f"{pixels} px against DNR: accepted and wrong", pct(cell["dnr"]["success"])),
                 Row(f"{pixels} px against DNR: rejected", pct(cell["dnr"]["rejected"])),
                 Row(f"{pixels} px against DNR: queries", cell["dnr"]["queries"],
                     unit="per image")]
    return Table("The one-pixel attack (Su et al.)", rows,
                 f"{measured['images']} correctly classified test images (DNR rejects "
                 f"{pct(measured['clean_rejected']):.0f}% of them clean); differential "
                 f"evolution with population {config['one_pixel_population']}, at most "
                 f"{config['one_pixel_iterations']} generations (the paper: 400 and 100).")


def claims_table(config, outputs):
    aware = outputs["defence_aware"]
    gaps = [d["accuracy"] - n["accuracy"] for d, n in zip(aware["dnr"], aware["nr"]) if d["eps"] > 0]
    gap = float(np.mean(gaps)) if gaps else float("nan")
    clean = outputs["evaluation"]["clean"]
    cnn_l2 = outputs["evaluation"]["curves"]["cnn"]["pgd_l2"]
    small = next((p for p in cnn_l2 if p["eps"] >= 1.0), cnn_l2[-1])
    rows = [Row(f"DNR keeps higher accuracy than NR under the defence-aware attack: mean "
                f"difference over the L2 budgets ({verdict(gap > 0)})", pct(gap), unit="pts")]
    for name in ("dnr", "nr"):
        rate = clean[name]["rejected"]
        rows.append(Row(f"{NAMES[name]} rejects about 10% of clean images "
                        f"({verdict(abs(rate - config['reject_rate']) <= 0.02)})", pct(rate)))
    pgd = outputs["evaluation"]["curves"]["dnr"]["pgd_linf"]
    margin = pgd[-1]["rejected"] - pgd[0]["rejected"]
    rows.append(Row(f"DNR rejects PGD adversarials (L-inf {pgd[-1]['eps']:g}) far more often than "
                    f"the same images clean: the difference in rejected share "
                    f"({verdict(margin >= 0.3)}: 30 points asked)", pct(margin), unit="pts"))
    rows.append(Row(f"the undefended CNN collapses under small L2 budgets: accuracy at L2 "
                    f"{small['eps']:g} ({verdict(small['accuracy'] < 0.2)})",
                    pct(small["accuracy"])))
    return Table("The paper's claims, and whether this run bears them out", rows, MEANING)


def tables(config, outputs):
    return [claims_table(config, outputs), clean_table(config, outputs),
            security_table(config, outputs), aware_table(config, outputs),
            one_pixel_table(config, outputs)]


def accuracy_rejection(outputs):
    """Clean accuracy on the accepted images against the rejection rate, per reject option."""
    measured = outputs["evaluation"]
    fig = Figure(figsize=(5.5, 4), dpi=120)
    ax = fig.subplots()
    rates = np.linspace(0, 0.5, 51)
    for name in OPTIONS[1:]:
        order = np.argsort(measured[f"scores_clean_{name}"])          # most accepted first
        correct = (measured[f"classes_clean_{name}"] == measured["y_test"])[order]
        kept = np.maximum(1, np.round((1 - rates) * len(order)).astype(int))
        ax.plot(100 * rates, [100 * correct[:k].mean() for k in kept], label=NAMES[name])
    ax.set_xlabel("clean test images rejected (%)")
    ax.set_ylabel("accuracy on the accepted (%)")
    ax.set_title("Accuracy-rejection curves (clean)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def security_curves(config, outputs):
    """Accuracy and rejection rate against the perturbation size, per attack and option."""
    fig = Figure(figsize=(13, 6.5), dpi=120)
    axes = fig.subplots(2, 3)
    for column, curve in enumerate(CURVES):
        for name in OPTIONS:
            points = outputs["evaluation"]["curves"][name][curve]
            eps = [p["eps"] for p in points]
            axes[0, column].plot(eps, [100 * p["accuracy"] for p in points], marker=".",
                                 label=NAMES[name])
            axes[1, column].plot(eps, [100 * p["rejected"] for p in points], marker=".")
        if curve == "pgd_l2":
            for name in ("dnr", "nr"):
                points = outputs["defence_aware"][name]
                eps = [p["eps"] for p in points]
                axes[0, column].plot(eps, [100 * p["accuracy"] for p in points], "--",
                                     marker="x", label=f"{NAMES[name]}, defence-aware")
                axes[1, column].plot(eps, [100 * p["rejected"] for p in points], "--",
                                     marker="x")
        axes[0, column].set_title(CURVE_NAMES[curve], fontsize=10)
        axes[1, column].set_xlabel("eps (L-inf)" if "linf" in curve else "eps (L2)")
    axes[0, 0].set_ylabel("accuracy, rejected = correct (%)")
    axes[1, 0].set_ylabel("rejected (%)")
    axes[0, 2].legend(fontsize=7)
    fig.tight_layout()
    return fig


def score_histograms(config, outputs):
    """Reject scores of clean test images and of PGD L2 adversarials, with each threshold."""
    measured = outputs["evaluation"]
    eps = config["pgd_l2_eps"][config["histogram_index"]]
    fig = Figure(figsize=(13, 3.2), dpi=120)
    for ax, name in zip(fig.subplots(1, 4), OPTIONS[1:]):
        clean, attacked = measured[f"scores_clean_{name}"], measured[f"scores_pgd_{name}"]
        bins = np.linspace(min(clean.min(), attacked.min()), max(clean.max(), attacked.max()), 50)
        ax.hist(clean, bins=bins, alpha=0.6, density=True, label="clean")
        ax.hist(attacked, bins=bins, alpha=0.6, density=True, label=f"PGD L2 {eps:g}")
        ax.axvline(measured["thresholds"][name], color="black")
        ax.set_title(f"{NAMES[name]} (reject right of the line)", fontsize=9)
        ax.set_xlabel("reject score")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def tradeoff_under_attack(config, outputs):
    """One glance: accuracy under PGD L2 (rejected = correct) against the clean rejection
    rate, as each option's threshold moves."""
    measured = outputs["evaluation"]
    eps = config["pgd_l2_eps"][config["histogram_index"]]
    fig = Figure(figsize=(5.5, 4), dpi=120)
    ax = fig.subplots()
    for name in OPTIONS[1:]:
        clean, attacked = measured[f"scores_clean_{name}"], measured[f"scores_pgd_{name}"]
        right = measured[f"classes_pgd_{name}"] == measured["y_attacked"]
        thresholds = np.quantile(clean, np.linspace(0.5, 1, 51))
        ax.plot([100 * np.mean(clean > t) for t in thresholds],
                [100 * np.mean((attacked > t) | right) for t in thresholds], label=NAMES[name])
    ax.axvline(100 * config["reject_rate"], color="grey", linewidth=0.5)
    ax.set_xlabel("clean test images rejected (%)")
    ax.set_ylabel(f"accuracy under PGD L2 {eps:g} (%)")
    ax.set_title("The price of rejection and what it buys under attack", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def examples(config, outputs, per_row=8):
    """PGD L2 adversarials DNR accepted (top: its label) and rejected (bottom)."""
    index = config["histogram_index"]
    images = outputs["attacks"][f"x_pgd_l2_{index}"]
    labels = outputs["evaluation"]["labels_pgd_dnr"]
    fig = Figure(figsize=(per_row * 0.9, 2.3), dpi=120)
    axes = fig.subplots(2, per_row, squeeze=False)
    for row, chosen in enumerate((np.flatnonzero(labels != -1), np.flatnonzero(labels == -1))):
        for column in range(per_row):
            ax = axes[row, column]
            ax.set_xticks([])
            ax.set_yticks([])
            if column >= len(chosen):
                ax.axis("off")
                continue
            i = chosen[column]
            ax.imshow(images[i].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            verdict = "rejected" if labels[i] == -1 else f"as {labels[i]}"
            ax.set_title(f"{outputs['evaluation']['y_attacked'][i]}: {verdict}", fontsize=7)
    fig.suptitle(f"PGD L2 {config['pgd_l2_eps'][index]:g} adversarials: accepted by DNR "
                 "(top), rejected (bottom)", fontsize=9)
    fig.tight_layout()
    return fig


def figures(config, outputs):
    return {"examples": examples(config, outputs),"accuracy_rejection": accuracy_rejection(outputs),
            "security_curves": security_curves(config, outputs),
            "score_histograms": score_histograms(config, outputs),
            "tradeoff_under_attack": tradeoff_under_attack(config, outputs)}
