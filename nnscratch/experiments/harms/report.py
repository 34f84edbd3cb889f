"""Harms et al.'s tables beside the measured values, and the report's claims judged.

Tables 4 and 5 are the only numbers the report prints (accuracy, %; tolerance 3 points); its
Figures 7-10 give the ensembles' accuracies only as plots, so their rows here have no paper
value. Table 4's "adversarial data" is measured both ways the report leaves open (made on the
retrained model, made on the original), each beside the paper, and the note says which lands
nearer. The seven claims of sections 6-8 are judged in a table of their own: each row is the
measured figure that decides the claim, its label ending in the verdict. What "roughly flat",
"notably", "far" and "small" mean is ours: ``FLAT``, ``NOTABLE``, ``FAR`` and ``SMALL`` points
of accuracy; "cutting misclassification by 20-30%" is borne out by a cut of at least ``CUT``%.
"""

import math

import numpy as np

from nnscratch.experiments.harms.stages import ATTACKS, SKIPPED
from nnscratch.experiments.report import Row, Table

NAMES = {"clean": "no attack", "fgsm": "FGSM", "bim": "BIM", "lbfgs": "L-BFGS", "pgd": "PGD"}
INPUTS = ("clean",) + ATTACKS
PAPER = {"mnist": {"retrained_fgsm": (98.36, 96.68), "retrained_bim": (98.86, 93.16)},
         "cifar10": {"retrained_fgsm": (74.56, 66.78), "retrained_bim": (73.65, 58.97)}}
TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
FLAT, NOTABLE, FAR, SMALL, CUT = 5.0, 5.0, 20.0, 5.0, 20.0
OPEN = "the report does not say which model its test adversarials were made on"
ENSEMBLE_FROM = {"original": "ensemble, adversarials from the original",
                 "member": "ensemble, adversarials from member {i}"}
MEMBER = "member {i}, adversarials from the original"


def skipped(outputs, dataset):
    return "skipped" in outputs[f"{dataset}_original"]


def settings(config, outputs, dataset):
    """Figure 8's four settings: {setting: {input: accuracy %}}. The original model and member
    i on the adversarials made on the original; the ensemble of all members on those made on
    the original and on those made on member i."""
    s, i = outputs[f"{dataset}_sizes"]["sets"], config[f"{dataset}_ith_member"]

    def on(source, name):
        return s["clean"] if name == "clean" else s[f"{source}/{name}"]

    return {"original model": {n: 100 * on("original", n)["original"] for n in INPUTS},
            MEMBER.format(i=i): {n: 100 * on("original", n)["member"] for n in INPUTS},
            **{ENSEMBLE_FROM[source].format(i=i):
               {n: 100 * on(source, n)["ensemble"][-1] for n in INPUTS}
               for source in ("original", "member")}}


def mean_gap(rows):
    return float(np.mean([abs(row.measured - row.paper) for row in rows]))


def retraining_table(config, outputs, dataset, number):
    title = f"Table {number}: adversarial retraining on {TITLES[dataset]}"
    if skipped(outputs, dataset):
        return Table(f"{title} (skipped)", [], note=SKIPPED)
    measured = outputs[f"{dataset}_retraining"]
    rows, white, transferred = [], [], []
    for network, kind in (("retrained_fgsm", "fgsm"), ("retrained_bim", "bim")):
        clean, adversarial = PAPER[dataset][network]
        name = f"{NAMES[kind]}-retrained"
        rows.append(Row(f"{name}: normal data", 100 * measured[network]["clean"], clean,
                        reason="a shorter retraining from an original of other accuracy"))
        white.append(Row(f"{name}: {NAMES[kind]} made on it (white-box)",
                         100 * measured[network][f"white-box {kind}"], adversarial, reason=OPEN))
        transferred.append(Row(f"{name}: {NAMES[kind]} made on the original (transferred)",
                               100 * measured[network][f"transferred {kind}"], adversarial,
                               reason=OPEN))
        rows += [white[-1], transferred[-1]]
    rows += [Row(f"original model: {NAMES[kind]} made on it",
                 100 * measured["original"][f"white-box {kind}"]) for kind in ("fgsm", "bim")]
    images = config[f"{dataset}_retrain_images"] or config[f"{dataset}_train_images"] or "all"
    a, b = mean_gap(white), mean_gap(transferred)
    return Table(title, rows, note=(
        f"retraining: {config[f'{dataset}_retrain_epochs']} epochs on {images} training "
        f"images; nearer the paper: {'white-box' if a <= b else 'transferred'} adversarials "
        f"(mean absolute difference white-box {a:.2f}, transferred {b:.2f} points)"))


def ensemble_table(config, outputs, dataset, figures):
    title = f"Figures {figures}: the noise-bagging ensemble on {TITLES[dataset]}"
    if skipped(outputs, dataset):
        return Table(f"{title} (skipped)", [], note=SKIPPED)
    trained, s = outputs[f"{dataset}_ensemble"], outputs[f"{dataset}_sizes"]["sets"]
    original = outputs[f"{dataset}_original"]
    rows = [Row("original model: clean test accuracy", 100 * original["test_accuracy"]),
            Row("original model: epochs trained (early stopping)", original["epochs_run"],
                unit=""),
            Row("members: mean clean test accuracy", 100 * np.mean(trained["member_accuracy"])),
            Row("members: mean epochs trained", np.mean(trained["epochs_run"]), unit="")]
    for setting, accuracies in settings(config, outputs, dataset).items():
        rows += [Row(f"{setting}: {NAMES[n]}", accuracies[n]) for n in INPUTS]
    rows += [Row(f"majority vote of all members: {NAMES[n]}"
                 + ("" if n == "clean" else ", adversarials from the original"),
                 100 * s["clean" if n == "clean" else f"original/{n}"]["vote"]) for n in INPUTS]
    return Table(title, rows, note=(
        f"{len(trained['member_accuracy'])} members, noise sigma {trained['noise_sigma']:g}, "
        f"combined by their mean softmax; L-BFGS on the first "
        f"{config[f'{dataset}_lbfgs_images']} test images; the report gives these only as plots"))


def attacks_table(config, outputs, dataset):
    i = config[f"{dataset}_ith_member"]
    rows = []
    for source, name in (("original", "original model"), ("member", f"member {i}")):
        made = outputs[f"{dataset}_attacks_{source}"]
        rows += [Row(f"{name}: accuracy on its own {NAMES[n]} adversarials",
                     100 * made["on_source"][n]) for n in ATTACKS]
        rows += [Row(f"{name}: L-BFGS reached its target", 100 * np.mean(made["lbfgs_success"])),
                 Row(f"{name}: L-BFGS mean L2 of the successful", made["lbfgs_l2"], unit="L2"),
                 Row(f"{name}: L-BFGS time per image", made["lbfgs_seconds_per_image"],
                     unit="s")]
    return Table(f"The attacks on {TITLES[dataset]}, on the models they are made on", rows,
                 note=(f"L-BFGS: {config[f'{dataset}_lbfgs_search_steps']} runs of at most "
                       f"{config[f'{dataset}_lbfgs_iterations']} iterations per image, c from "
                       f"{config[f'{dataset}_lbfgs_initial_const']:g}; targets drawn at random"))


def adaptive_table(outputs, dataset):
    measured = outputs[f"{dataset}_adaptive"]
    rows = [Row(f"{defence.replace('_', ' ')}: "
                + " ".join(NAMES.get(word, word) for word in way.split()), 100 * value)
            for defence, row in measured["defences"].items() for way, value in row.items()]
    return Table(f"Beyond the report: the defences on {TITLES[dataset]} attacked white-box", rows,
                 note=f"the first {measured['images']} test images; PGD from a random start; "
                      "the ensemble attacked through its mean-softmax logits")


SWEPT = {"original": "original model (white-box)", "ensemble": "ensemble, from the original",
         "retrained_fgsm": "FGSM-retrained, from the original",
         "retrained_bim": "BIM-retrained, from the original",
         "retrained_fgsm white-box": "FGSM-retrained (white-box)",
         "retrained_bim white-box": "BIM-retrained (white-box)"}


def sweep_table(config, outputs, dataset):
    measured = outputs[f"{dataset}_sweep"]
    rows = [Row(f"{NAMES[name]} eps {eps:.3g}: {SWEPT[row]}", 100 * values[k])
            for name in ("fgsm", "bim") for row, values in measured[name].items()
            for k, eps in enumerate(measured["eps"])]
    return Table(f"FGSM and BIM over eps on {TITLES[dataset]}", rows, note=(
        f"the first {measured['images']} test images; made on the original model unless "
        f"white-box; BIM {config[f'{dataset}_bim_steps']} steps of "
        f"{config[f'{dataset}_bim_step'] / config[f'{dataset}_bim_eps']:.3g} eps"))


def epochs_table(config, outputs, dataset):
    measured = outputs[f"{dataset}_retraining_epochs"]
    names = {"clean": "no attack", "from_original": "FGSM made on the original",
             "white_box": "FGSM made on it (white-box)"}
    rows = [Row(f"after epoch {epoch}: {names[key]}", 100 * measured[key][k])
            for k, epoch in enumerate(measured["epoch"]) for key in names]
    return Table(f"FGSM retraining epoch by epoch on {TITLES[dataset]}", rows, note=(
        f"the first {config[f'{dataset}_adaptive_images']} test images; each epoch trains on "
        "the adversarials of the model the epoch before left, so it resists those and not "
        "its own"))


def verdict(text, measured, holds, unit="pts"):
    if isinstance(measured, float) and math.isnan(measured):
        return Row(f"{text}: not judged", measured, unit=unit)
    return Row(f"{text}: {'borne out' if holds else 'not borne out'}", measured, unit=unit)


def least(values):
    """The smallest of ``values`` that is a number (NaN when none is: nothing to judge)."""
    finite = [value for value in values.values() if not math.isnan(value)]
    return min(finite) if finite else math.nan


def listed(values, unit="pts"):
    return ", ".join(f"{NAMES[n]} {value:+.1f} {unit}" for n, value in values.items())


def claims(config, outputs):
    m = settings(config, outputs, "mnist")
    s, i = outputs["mnist_sizes"]["sets"], config["mnist_ith_member"]
    members = config["mnist_n_models"]
    orig = m["original model"]
    ens = m[ENSEMBLE_FROM["original"]]
    ens_member = m[ENSEMBLE_FROM["member"].format(i=i)]
    cuts = {n: 100 * (1 - (100 - ens[n]) / (100 - orig[n])) if orig[n] < 100 else math.nan
            for n in ATTACKS}
    ranges = {name: 100 * (max(row["ensemble"]) - min(row["ensemble"]))
              for name, row in s.items()}
    first = {n: 100 * (s[f"original/{n}"]["ensemble"][0] - s[f"original/{n}"]["original"])
             for n in ATTACKS}
    sources = {n: ens[n] - ens_member[n] for n in ATTACKS}
    gains = {n: ens[n] - orig[n] for n in ATTACKS}
    margin = ens["lbfgs"] - max(ens["fgsm"], ens["bim"])
    table4 = outputs["mnist_retraining"]
    beats = {"FGSM-retrained vs ensemble, FGSM": 100 * table4["retrained_fgsm"]["white-box fgsm"]
             - ens["fgsm"],
             "BIM-retrained vs ensemble, BIM": 100 * table4["retrained_bim"]["white-box bim"]
             - ens["bim"],
             **{f"{kind}-retrained vs original, clean": 100 * (
                 table4[f"retrained_{kind.lower()}"]["clean"] - table4["original"]["clean"])
                for kind in ("FGSM", "BIM")}}
    rows = [
        verdict(f"1. The {members}-model ensemble beats the original under every attack, "
                "cutting misclassification by 20-30% (the report's 10 models; measured: the "
                f"smallest cut, adversarials from the original: {listed(cuts, '%')})",
                least(cuts), least(cuts) >= CUT, unit="%"),
        verdict("2. Accuracy is roughly flat across ensemble sizes (measured: the largest range "
                f"over sizes, clean and every attack from either source; flat: at most {FLAT:g})",
                max(ranges.values()), max(ranges.values()) <= FLAT),
        verdict("3. One noisy-bootstrap member already beats the original on adversarials "
                f"(measured: the smallest lead of member 1, adversarials from the original: "
                f"{listed(first)})", least(first), least(first) > 0),
        verdict("4. The ensemble does better on adversarials from the original than from member "
                f"{i}, notably (at least {NOTABLE:g}) on L-BFGS (measured: the L-BFGS "
                f"difference; all: {listed(sources)})", sources["lbfgs"],
                min(sources.values()) > 0 and sources["lbfgs"] >= NOTABLE),
        verdict(f"5. L-BFGS leaves far (at least {FAR:g}) higher accuracy than FGSM or BIM, "
                "and the ensemble gains most against L-BFGS, least against FGSM (measured: the "
                f"ensemble's L-BFGS lead; gains over the original: {listed(gains)})", margin,
                margin >= FAR and gains["lbfgs"] > gains["bim"] > gains["fgsm"]),
        cifar_claim(config, outputs),
        verdict("7. Adversarial retraining beats the ensemble and raises clean accuracy "
                "(measured: the smallest margin; " + ", ".join(
                    f"{name} {value:+.1f} pts" for name, value in beats.items()) + ")",
                min(beats.values()), min(beats.values()) > 0),
    ]
    return Table("The report's claims, judged on this run", rows,
                 note="MNIST unless said; the ensemble of all members by its mean softmax")


def cifar_claim(config, outputs):
    text = "6. On CIFAR-10 the ensemble gains little over one member, clean data included"
    if skipped(outputs, "cifar10"):
        return verdict(f"{text} ({SKIPPED})", math.nan, False)
    c = settings(config, outputs, "cifar10")
    i = config["cifar10_ith_member"]
    gains = {n: c[ENSEMBLE_FROM["original"]][n] - c[MEMBER.format(i=i)][n] for n in INPUTS}
    return verdict(f"{text} (measured: the clean gain over member {i}; a gain above 0, none "
                   f"above {SMALL:g}: {listed(gains)})", gains["clean"],
                   gains["clean"] > 0 and max(gains.values()) <= SMALL)


def tables(config, outputs):
    out = [retraining_table(config, outputs, "mnist", 4),
           retraining_table(config, outputs, "cifar10", 5),
           ensemble_table(config, outputs, "mnist", "7-8"),
           ensemble_table(config, outputs, "cifar10", "9-10"),
           claims(config, outputs)]
    for dataset in ("mnist", "cifar10"):
        if not skipped(outputs, dataset):
            out += [epochs_table(config, outputs, dataset),
                    attacks_table(config, outputs, dataset), adaptive_table(outputs, dataset),
                    sweep_table(config, outputs, dataset)]
    return out
