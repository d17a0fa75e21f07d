"""Classification metrics and the confusion-matrix plot."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from harlite.io.files import atomic_write_bytes


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts; rows are true classes, columns predictions."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, ...] | list[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    cm = confusion(y_true, y_pred, len(labels))
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    n = int(cm.sum())
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
        "labels": list(labels),
        "confusion": cm.tolist(),
    }


def plot_confusion(
    cm: np.ndarray | list, labels: tuple[str, ...] | list[str], path: str | Path, title: str = ""
) -> Path:
    """Write a row-normalised confusion matrix with counts as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    size = max(6.4, 0.55 * len(labels) + 3.0)  # room for many classes
    fig, ax = plt.subplots(figsize=(size, size - 1.0), dpi=110)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    short = [name.replace("WALKING_", "WALK_").replace("_", " ").title() for name in labels]
    ax.set_xticks(range(len(labels)), short, rotation=35, ha="right")
    ax.set_yticks(range(len(labels)), short)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=7 if len(labels) <= 12 else 5,
                    color="white" if share[i, j] > 0.6 else "black")  # fmt: skip
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"{title + ' - ' if title else ''}accuracy {acc:.2%} (n={cm.sum()})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
