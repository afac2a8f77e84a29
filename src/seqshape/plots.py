"""Matplotlib figures (written to files; the Agg backend needs no display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_matrix_png(
    cm, class_names, path: str | Path, title: str = "Confusion matrix"
) -> Path:
    """Draw a confusion matrix (rows true, columns predicted) with counts in the cells."""
    cm = np.asarray(cm)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 1.0 + 0.5 * n), dpi=120)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), labels=[str(c) for c in class_names])
    ax.set_yticks(range(n), labels=[str(c) for c in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    top = cm.max() if cm.size else 0
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                color = "white" if cm[i, j] > top / 2 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8, color=color)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def training_curve_png(
    history: list[dict], path: str | Path, keys=("train_loss", "val_loss")
) -> Path:
    """Loss (and other logged values) per epoch."""
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    epochs = [r["epoch"] for r in history]
    for k in keys:
        if history and k in history[0]:
            ax.plot(epochs, [r[k] for r in history], label=k)
    ax.set_xlabel("epoch")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
