"""``nnscratch demo``: the whole pipeline on data that is always there.

With nothing downloaded it trains ``small_cnn`` on scikit-learn's 8x8 digits (a few seconds
on two cores); with ``dataset="mnist"`` (once fetched) it trains LeNet on MNIST. Then
it evaluates on the test split and writes a report folder::

    report.json                 config, seed, versions, history, test metrics
    report.md                   the same as a short table
    model.npz                   the trained weights (nnscratch.io format)
    training_curves.png, confusion_matrix.png

The folder is written under a temporary name and renamed at the end, so an interrupted demo
never leaves half a report; an earlier demo report in ``out`` is replaced whole, and a folder
that is not one is refused.
"""

import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import nnscratch
from nnscratch import data, io, metrics, plots, zoo
from nnscratch.training import fit_recipe

# The network of each dataset, and its epochs where they are fewer than its recipe's.
SETTINGS = {"digits": {"model": "small_cnn"},
            "mnist": {"model": "lenet", "epochs": 2}}


def run(dataset="digits", out="nnscratch-demo", epochs=None, seed=0, progress=None):
    """Train, evaluate and report; returns the report dict (also written to ``out``)."""
    if dataset not in SETTINGS:
        raise ValueError(f"the demo runs on {sorted(SETTINGS)}, not {dataset!r}")
    out = Path(out)
    if out.exists() and not (out / "report.json").exists():
        raise ValueError(f"{out} exists and is not a demo report: choose another --out")
    name = SETTINGS[dataset]["model"]
    recipe = zoo.RECIPES[name]
    epochs = epochs or SETTINGS[dataset].get("epochs") or recipe["epochs"]
    x, y = data.load(dataset, "train-rest", seed=seed)
    validation = data.load(dataset, "validation", seed=seed)
    x_test, y_test = data.load(dataset, "test")
    model = zoo.build(name, seed=seed)
    print(f"demo: training {name} on {dataset} ({len(x)} images, {epochs} epochs)")
    began = time.perf_counter()
    history = fit_recipe(model, recipe, (x, y), epochs, validation=validation, seed=seed,
                         progress=progress)
    seconds = time.perf_counter() - began
    test = metrics.classification_report(y_test, model.predict(x_test), 10)
    report = {"dataset": dataset, "model": name, "seed": seed, "epochs": epochs,
              "recipe": recipe, "training_seconds": seconds, "history": history,
              "test": test, "versions": {"nnscratch": nnscratch.__version__,
                                         "numpy": np.__version__,
                                         "python": platform.python_version()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        io.save(model, staging / "model.npz")
        (staging / "report.json").write_text(json.dumps(report, indent=2))
        (staging / "report.md").write_text(markdown(report))
        plots.training_curves(history, staging / "training_curves.png")
        plots.confusion_matrix(np.array(test["confusion_matrix"]),
                               staging / "confusion_matrix.png")
        if out.exists():
            shutil.rmtree(out)                 # an earlier demo report (checked above)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(markdown(report))
    print(f"report written to {out}/")
    return report


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
    return "\n".join(rows) + "\n"
