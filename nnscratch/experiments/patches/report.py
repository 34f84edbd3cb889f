"""The patch study's tables and figures. Thanthulage's report names the comparison and gives no
numbers, so the tables give the measured values only."""

import numpy as np
from matplotlib.figure import Figure

from nnscratch.experiments.common import pct
from nnscratch.experiments.dnr.report import NAMES
from nnscratch.experiments.dnr.stages import OPTIONS
from nnscratch.experiments.patches.stages import MODES, PLACEMENTS, SKIPPED
from nnscratch.experiments.report import Row, Table

MODE_NAMES = {"per_image": "per-image", "universal": "universal",
              "noise": "unoptimised (noise)"}
PLACEMENT_NAMES = {"random": "random place", "fixed": "centre"}
MEANING = (
    "What the numbers mean. Accuracy counts a rejected patched image as a correct decision, so "
    "an option that rejects much scores well under attack; the clean row says what it gives up "
    "on clean images (each threshold is set to reject a tenth of clean validation images). "
    "The patches are made against the network alone and shown to every option; the noise "
    "patches (the per-image patches before their first step) say how much of a rejection is "
    "owed to covering part of a digit at all. The defence-aware patch is made on DNR's own "
    "scores: where DNR does better against it than against the patch made on the network, "
    "the latter is the figure to trust. A per-image patch stops as soon as the network is "
    "fooled; a universal patch is not stopped, and the defence-aware patch seeks an accepted "
    "wrong class.")


def option_rows(label, point):
    return [Row(f"{label}: {NAMES[name]}", pct(point[name]["accuracy"]),
                unit=f"% ({pct(point[name]['rejected']):.1f}% rejected)") for name in OPTIONS]


def curves_of(outputs, mode):
    """{placement: [point per size]} of the patches made per image, universally, or the noise
    control."""
    return outputs["random_patches"] if mode == "noise" else outputs["patches"][mode]


def patch_table(config, outputs, mode):
    rows = option_rows("clean", outputs["patches"]["clean"])
    for placement in PLACEMENTS:
        for point in curves_of(outputs, mode)[placement]:
            label = f"{point['size']} px, {PLACEMENT_NAMES[placement]}"
            rows.append(Row(f"{label}: the CNN fooled", pct(point["fooled"])))
            rows += option_rows(label, point)
    how = {"per_image": f"{config['patch_steps']} signed steps of "
                        f"{config['patch_step_size']:g} per image, stopped once the network "
                        "is fooled",
           "universal": f"one patch per size and placement, {config['universal_steps']} signed "
                        f"steps of {config['patch_step_size']:g} on "
                        f"{config['universal_images']} training images neither the network "
                        "nor the defences saw (at random places for the random place, at the "
                        "centre for the centre), then pasted on the test images",
           "noise": "each image's patch as the per-image attack starts it: uniform noise, "
                    "no step"}[mode]
    made = "" if mode == "noise" else " made on the network"
    return Table(f"{MODE_NAMES[mode].capitalize()} patches{made}: accuracy of each reject "
                 "option", rows,
                 f"{config['patch_images']} test images; {how}. A rejected patched image "
                 "counts as correct; clean: plain accuracy." + (" " + MEANING if mode ==
                                                                 "per_image" else ""))


def aware_table(config, outputs):
    rows = []
    for point in outputs["defence_aware"]["points"]:
        for name, what in (("aware", "the patch that knows DNR"),
                           ("transfer", "the patch made on the network")):
            rows.append(Row(f"{point['size']} px: DNR against {what}",
                            pct(point[name]["accuracy"]),
                            unit=f"% ({pct(point[name]['rejected']):.1f}% rejected)"))
    return Table("DNR against the defence-aware patch", rows,
                 f"{config['aware_images']} test images, per image, random place (the same for "
                 f"both), {config['patch_steps']} steps; the aware patch lowers Sotgiu et al.'s "
                 "s_y - max_{l != y} s_l on DNR's scores, so that the image is accepted and "
                 "misclassified.")


def cifar10_table(config, outputs):
    found = outputs["cifar10_network"]
    if "skipped" in found:
        return Table("dnr_cnn on CIFAR-10 (skipped)", [], note=SKIPPED)
    return Table("dnr_cnn on CIFAR-10", [Row("test accuracy", pct(found["test_accuracy"]))],
                 f"{found['parameters']:,} parameters (the report's seven layers: 896, 9,248, "
                 "18,496, 36,928, 819,400, 40,200, 2,010; 927,178 in all); "
                 f"{config['cifar10_epochs']} epochs on {config['cifar10_train_images']:,} "
                 f"training images, tested on {config['cifar10_test_images']:,}; "
                 f"{found['training_seconds']:.0f} s of training.")


def tables(config, outputs):
    return [patch_table(config, outputs, "per_image"), patch_table(config, outputs, "universal"),
            patch_table(config, outputs, "noise"), aware_table(config, outputs),
            cifar10_table(config, outputs)]


def size_curves(config, outputs, measure):
    """``measure`` ("accuracy" or "rejected") against patch size: one panel per mode (the noise
    control last) and placement, a line per option, its clean value (plain accuracy: counted
    otherwise) a lone marker at 0; the defence-aware patch on the per-image, random panel."""
    clean, sizes = outputs["patches"]["clean"], config["patch_sizes"]
    modes = MODES + ("noise",)
    figure = Figure(figsize=(10, 10.5), layout="constrained")
    axes = figure.subplots(len(modes), len(PLACEMENTS), sharex=True, sharey=True)
    for row, mode in enumerate(modes):
        for col, placement in enumerate(PLACEMENTS):
            ax = axes[row, col]
            for name in OPTIONS:
                line, = ax.plot(sizes, [pct(point[name][measure])
                                        for point in curves_of(outputs, mode)[placement]],
                                marker="o", label=NAMES[name])
                ax.plot([0], [pct(clean[name][measure])], marker="s", color=line.get_color())
            if (mode, placement) == ("per_image", "random"):
                ax.plot(sizes, [pct(point["aware"][measure])
                                for point in outputs["defence_aware"]["points"]],
                        "k--", marker="x", label="DNR, defence-aware patch")
            ax.set_title(f"{MODE_NAMES[mode]} patches, {PLACEMENT_NAMES[placement]}")
            ax.set_ylim(-3, 103)
            ax.grid(alpha=0.3)
            if row == len(modes) - 1:
                ax.set_xlabel("patch size (pixels a side; squares at 0: clean images)")
            if col == 0:
                ax.set_ylabel("accuracy (%)" if measure == "accuracy" else "rejected (%)")
    axes[0, 0].legend(fontsize=8)
    return figure


def verdict_text(label, y):
    return "rejected" if label == -1 else ("right" if label == y else f"says {label}")


def examples(config, outputs):
    """Patched test images at the largest size, each with what the CNN and DNR make of it:
    the patches made on the network, then the defence-aware one."""
    found = outputs["patches"]
    cnn, dnr = OPTIONS.index("cnn"), OPTIONS.index("dnr")
    cases = [(f"{MODE_NAMES[mode]}\n{PLACEMENT_NAMES[placement]}",
              found[f"examples_{mode}_{placement}"],
              found[f"verdicts_{mode}_{placement}"][[cnn, dnr]])
             for mode in MODES for placement in PLACEMENTS]
    aware = outputs["defence_aware"]
    cases.append(("made on DNR\nrandom place", aware["examples"], aware["verdicts"]))
    count = config["example_images"]
    figure = Figure(figsize=(1.6 * count, 2.1 * len(cases)), layout="constrained")
    axes = figure.subplots(len(cases), count, squeeze=False)
    for row, (label, images, labels) in enumerate(cases):
        for col in range(count):
            ax = axes[row, col]
            ax.imshow(images[col, 0], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            y = int(found["y"][col])
            ax.set_title(f"CNN {verdict_text(labels[0, col], y)}\n"
                         f"DNR {verdict_text(labels[1, col], y)}", fontsize=8)
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
    figure.suptitle(f"Patches of {config['patch_sizes'][-1]} px: made on the network (top "
                    "four rows), made on DNR (last row)")
    return figure


def universal_patches(config, outputs):
    """The universal patches, one per size and placement, at their own scale."""
    sizes = config["patch_sizes"]
    figure = Figure(figsize=(1.6 * len(sizes), 3.6), layout="constrained")
    axes = figure.subplots(len(PLACEMENTS), len(sizes), squeeze=False)
    for row, placement in enumerate(PLACEMENTS):
        for col, size in enumerate(sizes):
            ax = axes[row, col]
            ax.imshow(np.asarray(outputs["patches"][f"universal_{placement}_{size}"])[0],
                      cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{size} px", fontsize=9)
            if col == 0:
                ax.set_ylabel(PLACEMENT_NAMES[placement], fontsize=9)
    figure.suptitle("Universal patches")
    return figure


def figures(config, outputs):
    return {"accuracy_vs_size": size_curves(config, outputs, "accuracy"),
            "rejection_vs_size": size_curves(config, outputs, "rejected"),
            "patched_examples": examples(config, outputs),
            "universal_patches": universal_patches(config, outputs)}
