"""Harms et al.'s figures, redrawn from the run: accuracy against ensemble size (Figures 7 and
9), the four settings as bars (Figures 8 and 10), and one digit with its FGSM, BIM and L-BFGS
adversarials (Figures 4-5); beside the report, accuracy against eps. A skipped dataset
(CIFAR-10 not cached) has no figures.
"""

import numpy as np
from matplotlib.figure import Figure

from nnscratch.experiments.harms.report import (INPUTS, NAMES, SWEPT, TITLES, settings,
                                                skipped)


def accuracy_axes(ax, xlabel, title, legend_size=8):
    """Accuracy (%) from 0 to 100 against ``xlabel``, titled, with its legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=legend_size, loc="best")


def sizes_figure(config, outputs, dataset):
    """Left: adversarials made on the original model; right: made on member i."""
    s, i = outputs[f"{dataset}_sizes"]["sets"], config[f"{dataset}_ith_member"]
    fig = Figure(figsize=(10, 3.8), layout="tight")
    for ax, source, title in zip(fig.subplots(1, 2), ("original", "member"),
                                 ("adversarials made on the original model",
                                  f"adversarials made on member {i}")):
        for n in INPUTS:
            accuracies = 100 * np.asarray(s["clean" if n == "clean" else f"{source}/{n}"]
                                          ["ensemble"])
            ax.plot(np.arange(1, len(accuracies) + 1), accuracies, marker="o", label=NAMES[n])
        ax.set_xticks(np.arange(1, len(accuracies) + 1))
        accuracy_axes(ax, "models in the ensemble", f"{TITLES[dataset]}: {title}")
    return fig


def settings_figure(config, outputs, dataset):
    """Bars: no attack, FGSM, BIM, L-BFGS under each of the four settings."""
    grid = settings(config, outputs, dataset)
    fig = Figure(figsize=(10, 4.6), layout="tight")
    ax = fig.subplots()
    width = 0.8 / len(grid)
    for k, (setting, accuracies) in enumerate(grid.items()):
        ax.bar(np.arange(len(INPUTS)) + (k - (len(grid) - 1) / 2) * width,
               [accuracies[n] for n in INPUTS], width, label=setting)
    ax.set_xticks(np.arange(len(INPUTS)), [NAMES[n] for n in INPUTS])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{TITLES[dataset]}: the four settings of Figure "
                 f"{8 if dataset == 'mnist' else 10}", fontsize=9)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    return fig


def sweep_figure(outputs, dataset):
    """Accuracy against eps, FGSM left and BIM right, one line per model and way (dashed:
    made on the model itself)."""
    measured = outputs[f"{dataset}_sweep"]
    fig = Figure(figsize=(10, 3.8), layout="tight")
    for ax, name in zip(fig.subplots(1, 2), ("fgsm", "bim")):
        for row, values in measured[name].items():
            ax.plot(measured["eps"], 100 * np.asarray(values), marker="o",
                    linestyle="--" if SWEPT[row].endswith("(white-box)") else "-",
                    label=SWEPT[row])
        accuracy_axes(ax, "eps (L-inf)", f"{TITLES[dataset]}: {NAMES[name]}", legend_size=7)
    return fig


def examples_figure(config, outputs):
    """The digit and its adversarials made on the original, each with the class it is given."""
    made = outputs["mnist_examples"]
    titles = {"clean": "original", "fgsm": f"FGSM eps {config['mnist_fgsm_eps']:g}",
              "bim": f"BIM eps {config['mnist_bim_eps']:g}",
              "lbfgs": f"L-BFGS, target {config['mnist_example_target']}"}
    fig = Figure(figsize=(8, 2.4), layout="tight")
    for ax, name in zip(fig.subplots(1, len(titles)), titles):
        ax.imshow(np.asarray(made[name])[0, 0], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{titles[name]}\nclassified {made['predicted'][name]}", fontsize=8)
        ax.axis("off")
    return fig


def figures(config, outputs):
    out = {"mnist_examples": examples_figure(config, outputs)}
    for dataset in ("mnist", "cifar10"):
        if not skipped(outputs, dataset):
            out[f"{dataset}_ensemble_sizes"] = sizes_figure(config, outputs, dataset)
            out[f"{dataset}_settings"] = settings_figure(config, outputs, dataset)
            out[f"{dataset}_sweep"] = sweep_figure(outputs, dataset)
    return out
