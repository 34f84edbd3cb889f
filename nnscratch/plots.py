"""Matplotlib figures, written straight to image files (no display needed).

Each figure is a ``matplotlib.figure.Figure`` of its own, saved with ``Figure.savefig``: no
pyplot, so nothing here changes the backend or the open figures of a program that imports
nnscratch. Files are written atomically (``nnscratch.files``), in the format their suffix
names (.png, .pdf, .svg).
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from nnscratch.backend import to_numpy
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


def adversarial_grid(x, x_adv, y_pred, y_adv_pred, path, columns=8):
    """Originals (top row) above their adversarials (bottom row), each titled with the model's
    predicted class, for the first ``columns`` images whose prediction the attack changed (the
    first images when fewer changed). x, x_adv: (N, C, H, W) in [0, 1]; y_pred, y_adv_pred:
    (N,) predicted classes of each."""
    x, x_adv = (np.asarray(to_numpy(v)) for v in (x, x_adv))
    y_pred, y_adv_pred = (np.asarray(to_numpy(v)) for v in (y_pred, y_adv_pred))
    changed = np.flatnonzero(y_pred != y_adv_pred)
    chosen = np.concatenate([changed, np.flatnonzero(y_pred == y_adv_pred)])[:columns]
    k = max(len(chosen), 1)
    fig = Figure(figsize=(1.3 * k, 3), layout="tight")
    axes = np.asarray(fig.subplots(2, k, squeeze=False))
    for j in range(k):
        for row, (images, labels, word) in enumerate(((x, y_pred, "pred"),
                                                       (x_adv, y_adv_pred, "adv"))):
            ax = axes[row, j]
            ax.set_axis_off()
            if j >= len(chosen):
                continue
            n = chosen[j]
            image = images[n].transpose(1, 2, 0)
            if image.shape[2] == 1:
                ax.imshow(image[:, :, 0], cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(np.clip(image, 0, 1))
            color = "red" if row == 1 and labels[n] != y_pred[n] else "black"
            ax.set_title(f"{word} {labels[n]}", fontsize=8, color=color)
    _save(fig, path)


def image_grid(images, path, columns=8, title=None):
    """Images (N, C, H, W) in [0, 1] in a grid of ``columns``, greyscale or colour."""
    images = to_numpy(images)
    rows = -(-len(images) // columns)
    fig = Figure(figsize=(columns, rows + (0.4 if title else 0)), layout="tight")
    for ax, image in zip(fig.subplots(rows, columns, squeeze=False).ravel(), images):
        ax.imshow(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0),
                  cmap="gray", vmin=0, vmax=1)
    for ax in fig.axes:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def gan_losses(history, path):
    """A GAN's losses and its discriminator's accuracy on real and generated images, per
    epoch."""
    fig = Figure(figsize=(9, 3.5), layout="tight")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = np.arange(1, len(history["g_loss"]) + 1)
    for key, label in (("d_loss_real", "D on real"), ("d_loss_fake", "D on generated"),
                       ("g_loss", "G")):
        ax_loss.plot(epochs, history[key], "o-", label=label)
    for key, label in (("d_accuracy_real", "real called real"),
                       ("d_accuracy_fake", "generated called generated")):
        ax_acc.plot(epochs, history[key], "o-", label=label)
    ax_acc.axhline(0.5, color="grey", linestyle=":", label="chance")
    ax_acc.set_ylim(0, 1)
    for ax, what in ((ax_loss, "loss"), (ax_acc, "discriminator accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, path)


def _save(fig, path):
    """Write ``fig`` to ``path``, whole or not at all, in the format of its suffix."""
    with atomic_open(path) as f:
        fig.savefig(f, format=Path(path).suffix.lstrip(".") or "png", dpi=120)
