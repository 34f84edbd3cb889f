"""``nnscratch demo``: the whole pipeline on data that is always there.

With nothing downloaded it trains ``small_cnn`` on scikit-learn's 8x8 digits (a few seconds
on two cores); with ``dataset="mnist"`` (once fetched) it trains LeNet on MNIST. Then
it evaluates on the test split, attacks it with FGSM and PGD (20 steps) at one eps (0.1, in
the [0, 1] pixel scale), and writes a report folder::

    report.json                 config, seed, versions, history, test metrics, the attacks'
                                clean accuracy, accuracy under attack, success rate and norms
    report.md                   the same as a short table
    model.npz                   the trained weights (nnscratch.io format)
    training_curves.png, confusion_matrix.png
    adversarial_examples.png    test images above their PGD adversarials

The folder is written under a temporary name and renamed at the end
(``files.atomic_dir``), so an interrupted demo never leaves half a report. An existing ``out``
is replaced only when it holds nothing but these files (an earlier report); any other folder
is refused, so that ``--out`` can never delete a user's files; so are the current folder and
the folders that hold it, whatever they hold, and a link (``files.refuse_unless_replaceable``).
"""

import dataclasses
import json
import platform
import time

import numpy as np

import nnscratch
from nnscratch import attacks, data, files, io, metrics, plots, zoo
from nnscratch.commands.options import EPOCHS, PATH, SEED
from nnscratch.evaluation import evaluate_attack
from nnscratch.training import fit_recipe

# What the demo writes into its folder (see above): the only files it will ever replace.
REPORT_FILES = ("report.json", "report.md", "model.npz", "training_curves.png",
                "confusion_matrix.png", "adversarial_examples.png")

# The network of each dataset, and its epochs where they are fewer than its recipe's.
SETTINGS = {"digits": {"model": "small_cnn"},
            "mnist": {"model": "lenet", "epochs": 2}}
EPS, PGD_STEPS = 0.1, 20     # the demo's attacks: FGSM and PGD (step 2.5 eps / 20) at eps 0.1
ATTACK_BATCH = 500           # test images per generate call (LeNet on all 10,000 is ~1 GB)


def add_arguments(parser):
    parser.add_argument("--dataset", default="digits", choices=tuple(SETTINGS),
                        help="digits (embedded, default) or mnist (once fetched)")
    parser.add_argument("--out", default="nnscratch-demo", type=PATH,
                        help="the report folder (default nnscratch-demo), replaced only if it "
                             "holds nothing but an earlier report")
    parser.add_argument("--epochs", type=EPOCHS, help="default: " + ", ".join(
        f"{default_epochs(name)} on {name}" for name in SETTINGS))
    parser.add_argument("--seed", type=SEED, default=0, help="default 0")


def default_epochs(dataset):
    """The demo's epochs on ``dataset``: its own setting, else its network's recipe's."""
    settings = SETTINGS[dataset]
    return settings.get("epochs", zoo.RECIPES[settings["model"]].epochs)


def run(args):
    """``nnscratch demo``: ``args`` as the parser gives them."""
    demo(args.dataset, args.out, args.epochs, args.seed)


def demo(dataset="digits", out="nnscratch-demo", epochs=None, seed=0, progress=None):
    """Train, evaluate and report; returns the report dict (also written to ``out``)."""
    if dataset not in SETTINGS:
        raise ValueError(f"the demo runs on {sorted(SETTINGS)}, not {dataset!r}")
    out = files.absolute(out)
    files.refuse_unless_replaceable(out, "the demo", REPORT_FILES)
    files.refuse_unwritable(out.parent)      # now, not after the training
    name = SETTINGS[dataset]["model"]
    epochs = default_epochs(dataset) if epochs is None else epochs
    recipe = dataclasses.replace(zoo.RECIPES[name], epochs=epochs)
    x, y = data.load(dataset, "train-rest", seed=seed)
    validation = data.load(dataset, "validation", seed=seed)
    x_test, y_test = data.load(dataset, "test")
    model = zoo.build(name, seed=seed)
    print(f"demo: training {name} on {dataset} ({len(x)} images, {epochs} epochs)")
    began = time.perf_counter()
    history = fit_recipe(model, recipe, (x, y), validation=validation, seed=seed,
                         progress=progress)
    seconds = time.perf_counter() - began
    test = metrics.classification_report(y_test, model.predict(x_test), 10)
    print(f"demo: attacking the {len(x_test)} test images with FGSM and PGD at eps {EPS}")
    robustness, adversarial = attack_test(model, x_test, y_test)
    report = {"dataset": dataset, "model": name, "seed": seed, "epochs": epochs,
              "recipe": dataclasses.asdict(recipe), "training_seconds": seconds,
              "history": history, "test": test, "attacks": robustness,
              "versions": {"nnscratch": nnscratch.__version__, "numpy": np.__version__,
                           "python": platform.python_version()}}
    with files.atomic_dir(out, replace=True) as staging:     # replaceable: checked above
        io.save(model, staging / "model.npz")
        files.atomic_write(staging / "report.json", json.dumps(report, indent=2))
        files.atomic_write(staging / "report.md", markdown(report))
        plots.training_curves(history, staging / "training_curves.png")
        plots.confusion_matrix(np.array(test["confusion_matrix"]),
                               staging / "confusion_matrix.png")
        plots.adversarial_grid(x_test, *adversarial, staging / "adversarial_examples.png")
        # again: files may have appeared while it trained
        files.refuse_unless_replaceable(out, "the demo", REPORT_FILES)
    print(markdown(report))
    print(f"report written to {out}/")
    return report


def attack_test(model, x, y):
    """FGSM and PGD at ``EPS`` on the test images x, y: ({"fgsm": report, "pgd": report},
    (pgd's x_adv, clean predictions, predictions under pgd)), each report
    ``Evaluation.report``'s dict plus eps."""
    reports = {}
    for name, attack in (("fgsm", attacks.FGSM(EPS)), ("pgd", attacks.PGD(EPS, steps=PGD_STEPS))):
        outcome = evaluate_attack(model, attack, x, y, batch=ATTACK_BATCH)
        reports[name] = dict(outcome.report(), eps=EPS)
    return reports, (outcome.x_adv, outcome.clean, outcome.adversarial)


def markdown(report):
    test = report["test"]
    rows = [f"# nnscratch demo: {report['model']} on {report['dataset']}", "",
            "| measure | value |", "|---|---|",
            f"| training time | {report['training_seconds']:.1f} s "
            f"({report['epochs']} epochs) |",
            f"| validation accuracy (last epoch) | "
            f"{report['history']['val_accuracy'][-1]:.4f} |",
            f"| test accuracy ({test['n']} images) | {test['accuracy']:.4f} |",
            f"| test macro F1 | {test['macro_f1']:.4f} |"]
    for name, attack in report.get("attacks", {}).items():
        rows.append(f"| test accuracy under {name.upper()} (eps {attack['eps']:g}) | "
                    f"{attack['accuracy_under_attack']:.4f} (success rate "
                    f"{attack['success_rate']:.4f}) |")
    return "\n".join(rows) + "\n"
