"""Classification metrics, on NumPy label arrays."""

import numpy as np


def accuracy(y_true, y_pred):
    """Fraction of predictions equal to the labels (nan for an empty set)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else float("nan")


def confusion_matrix(y_true, y_pred, num_classes):
    """counts[i, j] = number of samples of true class i predicted as class j: (K, K) int64."""
    pairs = np.asarray(y_true, dtype=np.int64) * num_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(pairs, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def precision_recall_f1(y_true, y_pred, num_classes):
    """Per-class precision TP / (TP + FP), recall TP / (TP + FN) and their harmonic mean F1.

    Returns three (K,) float arrays; a class never predicted (or never present) gets 0 where
    the ratio is 0/0, as scikit-learn's ``zero_division=0`` does.
    """
    counts = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(counts).astype(np.float64)
    predicted, actual = counts.sum(axis=0), counts.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
    return precision, recall, f1


def classification_report(y_true, y_pred, num_classes):
    """Accuracy, per-class precision/recall/F1 and the confusion matrix, as a JSON-ready dict."""
    precision, recall, f1 = precision_recall_f1(y_true, y_pred, num_classes)
    return {"accuracy": accuracy(y_true, y_pred), "n": int(len(y_true)),
            "precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
            "macro_f1": float(f1.mean()),
            "confusion_matrix": confusion_matrix(y_true, y_pred, num_classes).tolist()}
