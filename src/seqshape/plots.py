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


def forecast_png(
    hist_ts, hist, future_ts, result: dict, path: str | Path, names=None, tail: int = 200
) -> Path:
    """History (last ``tail`` points), the point forecast and, when present, its interval."""
    return forecasts_png([(None, hist_ts, hist, future_ts, result)], path, names, tail=tail)


def forecasts_png(
    items: list, path: str | Path, names=None, *, tail: int = 200, max_panels: int = 12
) -> Path:
    """One panel per (series, target): ``items`` = [(series name or None, history timestamps,
    history (T, O), future timestamps, forecast result), ...]. At most ``max_panels`` panels, the
    first series first (the CSV holds every forecast)."""
    panels = []
    for name, hist_ts, hist, future_ts, result in items:
        hist = np.asarray(hist)
        cols = names or [f"y{j}" for j in range(hist.shape[1])]
        for j in range(hist.shape[1]):
            title = cols[j] if name is None else f"{name}: {cols[j]}"
            panels.append((title, hist_ts, hist[:, j], future_ts, result, j))
    panels = panels[:max_panels]
    n = len(panels)
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.8 * n), dpi=110, squeeze=False)
    for ax, (title, hist_ts, h, future_ts, result, j) in zip(axes[:, 0], panels):
        ax.plot(hist_ts[-tail:], h[-tail:], color="black", lw=1, label="history")
        ax.plot(future_ts, result["point"][:, j], color="tab:blue", lw=1.5, label="forecast")
        lo = hi = None
        if "samples" in result:  # asked for: the band over the horizon
            lo = np.quantile(result["samples"][:, :, j], 0.1, axis=0)
            hi = np.quantile(result["samples"][:, :, j], 0.9, axis=0)
            label = "10-90% of sample paths"
        elif "quantiles" in result and len(result["quantiles"]) >= 2:
            qs = sorted(result["quantiles"])
            lo, hi = result["quantiles"][qs[0]][:, j], result["quantiles"][qs[-1]][:, j]
            label = f"q{qs[0]:g}-q{qs[-1]:g}"
        elif "std" in result:
            lo = result["point"][:, j] - 1.2816 * result["std"][:, j]
            hi = result["point"][:, j] + 1.2816 * result["std"][:, j]
            label = "point ± 1.28 std (80% if Gaussian)"
        if lo is not None:
            ax.fill_between(future_ts, lo, hi, color="tab:blue", alpha=0.2, label=label)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
