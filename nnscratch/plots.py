"""Matplotlib figures, written straight to image files (no display needed).

Each figure is a ``matplotlib.figure.Figure`` of its own, saved with ``Figure.savefig``: no
pyplot, so nothing here changes the backend or the open figures of a program that imports
nnscratch. Files are written atomically (``nnscratch.files``), in the format their suffix
names (.png, .pdf, .svg).
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from nnscratch.files import atomic_open


def training_curves(history, path):
    """Loss and accuracy per epoch, training and (if present) validation."""
    fig = Figure(figsize=(9, 3.5), layout="tight")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = history["epoch"]
    for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.plot(epochs, history[key], "o-", label="train")
        if any(v is not None for v in history[f"val_{key}"]):
            ax.plot(epochs, history[f"val_{key}"], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def confusion_matrix(counts, path, class_names=None):
    """A confusion matrix with the count in every cell (rows: true class, columns: predicted)."""
    counts = np.asarray(counts)
    k = len(counts)
    names = class_names or [str(i) for i in range(k)]
    fig = Figure(figsize=(1 + 0.5 * k, 1 + 0.5 * k), layout="tight")
    ax = fig.subplots()
    ax.imshow(counts, cmap="Blues")
    for i in range(k):
        for j in range(k):
            color = "white" if counts[i, j] > counts.max() / 2 else "black"
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    _save(fig, path)


def _save(fig, path):
    """Write ``fig`` to ``path``, whole or not at all, in the format of its suffix."""
    with atomic_open(path) as f:
        fig.savefig(f, format=Path(path).suffix.lstrip(".") or "png", dpi=120)
