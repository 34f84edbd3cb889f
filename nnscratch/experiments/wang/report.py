"""Wang & Zhang's tables beside the measured values, and the figures.

The paper's numbers are copied from its Tables I-V and VII (precision, recall and F1 of the 7s;
Table VII also the accuracy), as fractions. Tolerance: 0.03. Where the paper and its authors'
code differ, both rows are shown and the table's note says which lands nearer the paper (the
mean absolute difference over the table's cells).
"""

import dataclasses

import numpy as np
from matplotlib.figure import Figure

from nnscratch.experiments.report import Row, Table
from nnscratch.experiments.wang.integrated import MEMBERS
from nnscratch.experiments.wang.stages import SPATIAL_SETS, pairs

METRICS = ("precision", "recall", "f1")
ATTACK_NAMES = {"clean": "clean", "spatial": "spatial grid", "jsma": "JSMA", "fgsm": "FGSM",
                "spatial_as_run": "spatial grid, the code's choice as run"}
# The paper's spatial row is compared with both spatial sets (stages.py: which the code made)
PAPER_KEY = {"spatial_as_run": "spatial"}
# (precision, recall, F1) per attack
PAPER = {
    "table1": {"clean": (1, 1, 1), "spatial": (0, 0, 0), "jsma": (0, 0, 0),
               "fgsm": (.722, .746, .733)},
    "plain_blur": {"clean": (.999, 1, .999), "spatial": (.535, .627, .577),
                   "fgsm": (.761, .549, .638)},
    "plain_median": {"clean": (.999, 1, .999), "spatial": (.483, .633, .548),
                     "fgsm": (.924, .931, .928)},
    "fgsm_none": {"clean": (.999, 1, .999), "spatial": (.496, .672, .57),
                  "fgsm": (.99, .981, .986)},
    "black_box": {"clean": (.995, .985, .990), "spatial": (.526, .502, .514),
                  "fgsm": (.015, .014, .015)},
}
# Table VII: (accuracy, precision, recall, F1) per test-time preprocessing and attack
PAPER_TABLE7 = {
    "none": {"clean": (.998, .996, 1, .998), "spatial": (.51, .522, .722, .606),
             "fgsm": (.019, .027, .026, .027)},
    "blur": {"clean": (.999, .999, 1, .999), "spatial": (.519, .529, .734, .615),
             "fgsm": (.472, .315, .017, .031)},
    "median": {"clean": (.998, .998, .999, .998), "spatial": (.5125, .525, .715, .605),
               "fgsm": (.232, .056, .03, .039)},
}
ROW_NAMES = {"none": "no preprocessing", "blur": "Gaussian blur", "median": "median squeeze"}

SCALE = ("the networks here: {epochs} epochs of the authors' code's recipe on {images} "
         "training images; the paper trains 10,000 iterations")
SPATIAL = "spatial set made on Table I's network, transferred (see the note on Table I)"
FGSM = "how many images FGSM 0.3 flips depends on the trained network's margins"
BASELINE_FGSM = ("our binary_cnn ends its epochs at a training loss near 0 and FGSM 0.3 flips "
                 "most of its test images; the authors' baseline (a dense 512 layer without "
                 "activation, Adam 1e-4, 10,000 iterations) is not ours")
JSMA = "JSMA succeeded on {rate:.1f}% of the images (the paper: all)"
LOCAL_SEARCH = ("the local search (foolbox's settings, {rounds} rounds) found {found} "
                "adversarials of {images} training images, so this network is trained on "
                "(almost) clean images alone and FGSM on it is white-box against a plain CNN; "
                "the paper's 0.015 is the substitute's (the code's rows)")
CLEAN = "a difference of a few test images out of 1,986"


def nearer(measured_rows, paper_rows):
    """The mean absolute difference of measured from paper over the cells both have."""
    differences = [abs(m - p) for m, p in zip(measured_rows, paper_rows) if p is not None]
    return float(np.mean(differences))


def cells(measured, paper, prefix, attacks, reasons):
    """Rows "prefix, attack: metric" for every attack and metric."""
    rows = []
    for attack in attacks:
        key = PAPER_KEY.get(attack, attack)
        for metric, paper_value in zip(METRICS, paper[key]):
            rows.append(Row(f"{prefix}, {ATTACK_NAMES[attack]}: {metric}",
                            measured[attack][metric], paper_value, unit="", tolerance=0.03,
                            reason=reasons[key]))
    return rows


def values(rows):
    return [row.measured for row in rows], [row.paper for row in rows]


def network_tables(config, outputs):
    images = "all" if config["train_images"] is None else config["train_images"]
    scale = SCALE.format(epochs=config["epochs"], images=images)
    reasons = {"clean": CLEAN, "spatial": SPATIAL, "fgsm": FGSM}
    table1 = outputs["table1"]
    rows1 = cells(table1, PAPER["table1"], "baseline", ("clean",) + SPATIAL_SETS + ("jsma", "fgsm"),
                  dict(reasons, fgsm=BASELINE_FGSM,
                       jsma=JSMA.format(rate=100 * table1["jsma_success"])))
    rows1 += [Row("JSMA success rate", 100 * table1["jsma_success"]),
              Row("JSMA: mean pixels changed", table1["jsma_pixels"], unit="pixels")]
    for spatial in SPATIAL_SETS:
        rows1 += [Row(f"{ATTACK_NAMES[spatial]}: test images misclassified by the baseline",
                      100 * float(np.mean(outputs[spatial]["success"]))),
                  Row(f"{ATTACK_NAMES[spatial]}: chosen transforms that keep the pixel mass",
                      100 * float(np.mean(outputs[spatial]["chosen_valid"])))]
    tables = [Table("Table I: the baseline (binary_cnn) under attack", rows1,
                    note=f"{config['jsma_images']} test images for JSMA; the rest all")]
    four = ("clean",) + SPATIAL_SETS + ("fgsm",)
    tables.append(Table("Table II: trained and tested on Gaussian-blurred images",
                        cells(outputs["evaluate_plain_blur"], PAPER["plain_blur"], "blur", four,
                              reasons), note=scale))
    paper_median = cells(outputs["evaluate_plain_median"], PAPER["plain_median"],
                         "median 2x2 (the paper: Xu et al.'s window)", four, reasons)
    code_median = cells(outputs["evaluate_plain_median_code"], PAPER["plain_median"],
                        "median 1x2 (the authors' code)", four, reasons)
    tables.append(Table("Table III: median feature squeezing", paper_median + code_median,
                        note=which_nearer("the 2x2 window", paper_median, "the code's 1x2",
                                          code_median)))
    tables.append(Table("Table IV: FGSM adversarial training",
                        cells(outputs["evaluate_fgsm_none"], PAPER["fgsm_none"],
                              "FGSM-trained", four, reasons), note=scale))
    searched = outputs["local_search"]
    local = cells(outputs["evaluate_local_search"], PAPER["black_box"],
                  "local-search adversarial training (the paper)", four,
                  dict(reasons, fgsm=LOCAL_SEARCH.format(
                      rounds=config["local_search_rounds"], found=searched["adversarials"],
                      images=config["local_search_images"])))
    local.append(Row("local search: adversarials found among the training images searched",
                     100 * searched["adversarials"] / config["local_search_images"]))
    substitute = cells(outputs["evaluate_substitute_none"], PAPER["black_box"],
                       "Papernot substitute (the authors' code)", four, reasons)
    tables.append(Table("Table V: the black-box defence", local + substitute,
                        note=which_nearer("local-search training", local, "the substitute",
                                          substitute)))
    stated, as_run = ([row for table in tables for row in table.rows
                       if row.label.split(": ")[0].endswith(ATTACK_NAMES[spatial])]
                      for spatial in SPATIAL_SETS)
    tables[0] = dataclasses.replace(tables[0], note=tables[0].note + "; spatial rows of "
                                    "Tables I-V, " + which_nearer("the stated choice", stated,
                                                                  "the code's as run", as_run))
    return tables


def which_nearer(first_name, first, second_name, second):
    a, b = nearer(*values(first)), nearer(*values(second))
    winner = first_name if a <= b else second_name
    return (f"nearer the paper: {winner} (mean absolute difference {first_name} {a:.3f}, "
            f"{second_name} {b:.3f})")


def table6(outputs):
    rows = [Row(f"model {i + 1}: {name.replace('_', ', ')}: clean test accuracy",
                100 * outputs[name]["test_accuracy"]) for i, name in enumerate(MEMBERS)]
    return Table("Table VI: the six models of the integrated model (accuracy behind their own "
                 "preprocessing)", rows)


def table7(outputs):
    table = outputs["integrated"]["table"]
    variant_rows = {}
    for variant, name in (("paper", "MLP with ReLUs on clean logits (the paper)"),
                          ("code", "linear MLP on FGSM logits (the authors' code)")):
        rows = []
        for row, attacks in PAPER_TABLE7.items():
            for attack in ("clean",) + SPATIAL_SETS + ("fgsm",):
                paper = attacks[PAPER_KEY.get(attack, attack)]
                measured = table[f"{variant}/{row}/{attack}"]
                for metric, value in zip(("accuracy",) + METRICS, paper):
                    rows.append(Row(f"{name}, {ROW_NAMES[row]}, {ATTACK_NAMES[attack]}: "
                                    f"{metric}", measured[metric], value, unit="",
                                    tolerance=0.03,
                                    reason=TABLE7_REASON[variant].get(
                                        PAPER_KEY.get(attack, attack), "")))
        variant_rows[variant] = rows
    return Table("Table VII: the integrated model", variant_rows["paper"] + variant_rows["code"],
                 note=which_nearer("the paper's MLP", variant_rows["paper"], "the code's",
                                   variant_rows["code"]))


TABLE7_REASON = {
    "paper": {"clean": CLEAN, "spatial": SPATIAL,
              "fgsm": ("FGSM is made against each member alone: the FGSM-trained members (1-3) "
                       "stay right and our MLP follows them in part; the paper's recall near 0 "
                       "says its MLP followed the black-box members, which FGSM breaks")},
    "code": {"clean": ("the code's MLP learns from FGSM-attacked logits, where the substitutes' "
                       "votes are flipped and the FGSM-trained members' are not: it learns to "
                       "invert the substitutes, right under FGSM and wrong on clean images"),
             "spatial": SPATIAL,
             "fgsm": "the code's MLP was trained on exactly these FGSM-attacked logits"},
}


def adaptive_table(outputs):
    rows = []
    for defence, name in (("blur", "blur"), ("median", "median 2x2"),
                          ("fgsm_trained", "FGSM-trained"), ("integrated", "integrated model")):
        for attack, measured in outputs["adaptive"][defence].items():
            rows.append(Row(f"{name}, {attack}: accuracy", 100 * measured["accuracy"]))
            rows.append(Row(f"{name}, {attack}: F1", measured["f1"], unit=""))
    return Table("Beyond the paper: the defences against attacks that know them", rows,
                 note="FGSM and PGD at L-inf 0.3; PGD made through the defence")


def tables(config, outputs):
    return network_tables(config, outputs) + [table6(outputs), table7(outputs),
                                              adaptive_table(outputs)]


# ------------------------------------------------------------------ figures

def image_grid(rows, titles):
    """A figure of image rows (each an array (n, 1, 28, 28)), one title per row."""
    columns = max(len(images) for images in rows)
    fig = Figure(figsize=(1.1 * columns, 1.25 * len(rows)), layout="tight")
    axes = np.asarray(fig.subplots(len(rows), columns)).reshape(len(rows), columns)
    for r, images in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(np.asarray(images[c])[0], cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title(titles[r], fontsize=8, loc="left")
    return fig


def samples_figure():
    x, y = pairs("test", 200)
    return image_grid([x[y == 0][:8], x[y == 1][:8]], ["sixes (class 0)", "sevens (class 1)"])


def examples_figure(outputs):
    table1 = outputs["table1"]
    rows = [table1[f"examples_{attack}"] for attack in ("clean",) + SPATIAL_SETS + ("jsma", "fgsm")]
    rows.append(outputs["evaluate_substitute_none"]["examples_fgsm"])
    return image_grid(rows, ["clean", "spatial grid (on the baseline)",
                             "spatial grid, the code's choice as run (on the baseline)",
                             "JSMA (on the baseline)",
                             "FGSM eps 0.3 (on the baseline)",
                             "FGSM on the black-box substitute"])


def confusion_figure(outputs):
    """The confusion matrix of each network under each attack (rows: true 6/7)."""
    networks = [("baseline", outputs["table1"]), ("blur", outputs["evaluate_plain_blur"]),
                ("median", outputs["evaluate_plain_median"]),
                ("FGSM-trained", outputs["evaluate_fgsm_none"]),
                ("substitute", outputs["evaluate_substitute_none"])]
    attacks = ("clean",) + SPATIAL_SETS + ("fgsm",)
    fig = Figure(figsize=(2.2 * len(attacks), 2.1 * len(networks)), layout="tight")
    axes = fig.subplots(len(networks), len(attacks))
    for r, (name, measured) in enumerate(networks):
        for c, attack in enumerate(attacks):
            counts = np.asarray(measured[attack]["confusion"])
            ax = axes[r, c]
            ax.imshow(counts, cmap="Blues", vmin=0)
            for i in range(2):
                for j in range(2):
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if counts[i, j] > counts.max() / 2 else "black")
            ax.set_xticks([0, 1], ["6", "7"])
            ax.set_yticks([0, 1], ["6", "7"])
            ax.set_title(f"{name}, {ATTACK_NAMES[attack]}", fontsize=8)
    return fig


def table7_figure(outputs):
    """Table VII at a glance: accuracy of the integrated model, paper beside measured, per
    test-time preprocessing (rows) and attack (columns)."""
    table = outputs["integrated"]["table"]
    attacks = ("clean",) + SPATIAL_SETS + ("fgsm",)
    grids = {"paper's numbers": [[PAPER_TABLE7[r][PAPER_KEY.get(a, a)][0] for a in attacks]
                                 for r in ROW_NAMES],
             "measured, the paper's MLP": [[table[f"paper/{r}/{a}"]["accuracy"] for a in attacks]
                                           for r in ROW_NAMES],
             "measured, the code's MLP": [[table[f"code/{r}/{a}"]["accuracy"] for a in attacks]
                                          for r in ROW_NAMES]}
    fig = Figure(figsize=(13, 3.4), layout="tight")
    for ax, (title, grid) in zip(fig.subplots(1, 3), grids.items()):
        grid = np.asarray(grid)
        ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1)
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=9)
        ax.set_xticks(range(len(attacks)), ["clean", "spatial", "spatial\n(as run)", "FGSM"])
        ax.set_yticks(range(3), list(ROW_NAMES.values()))
        ax.set_title(f"accuracy: {title}", fontsize=9)
    return fig


def figures(config, outputs):
    return {"samples": samples_figure(), "examples": examples_figure(outputs),
            "confusion_matrices": confusion_figure(outputs), "table7": table7_figure(outputs)}
