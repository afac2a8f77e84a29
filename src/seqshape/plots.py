"""Matplotlib figures (written to files; the Agg backend needs no display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


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
    history: list[dict],
    path: str | Path,
    keys=("train_loss", "val_loss"),
    *,
    best_epoch: int | None = None,
    ylabel: str = "loss",
) -> Path:
    """Loss (and other logged values) per epoch, with the epoch whose weights were kept.

    ``best_epoch``: the epoch the trainer kept (``TrainResult.best_epoch``; 0 = the starting
    weights, when they validated best); None draws no marker.
    """
    return _save(training_curve_figure(history, keys, best_epoch=best_epoch, ylabel=ylabel), path)


def training_curve_figure(
    history: list[dict],
    keys=("train_loss", "val_loss"),
    *,
    best_epoch: int | None = None,
    ylabel: str = "loss",
) -> Figure:
    """The figure :func:`training_curve_png` writes (a vertical line marks ``best_epoch``)."""
    fig = Figure(figsize=(6, 3.5), dpi=120)
    ax = fig.subplots()
    epochs = [r["epoch"] for r in history]
    for k in keys:
        if history and k in history[0]:
            ax.plot(epochs, [r[k] for r in history], label=k)
    if best_epoch is not None:
        what = " (the starting weights)" if best_epoch == 0 else ""
        ax.axvline(
            best_epoch, color="tab:red", ls="--", lw=1, label=f"kept: epoch {best_epoch}{what}"
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def forecast_png(
    hist_ts,
    hist,
    future_ts,
    result: dict,
    path: str | Path,
    names=None,
    tail: int = 200,
    *,
    actual=None,
) -> Path:
    """History (last ``tail`` points), the forecast origin, the point forecast and, when
    present, its interval; ``actual = (timestamps, (T, O) values)`` after the origin, e.g. the
    test years, is drawn apart from the history."""
    return forecasts_png([(None, hist_ts, hist, future_ts, result, actual)], path, names, tail=tail)


def forecasts_png(
    items: list, path: str | Path, names=None, *, tail: int = 200, max_panels: int = 12
) -> Path:
    """One panel per (series, target): ``items`` = [(series name or None, history timestamps,
    history (T, O), future timestamps, forecast result[, actual]), ...] (see
    :func:`forecasts_figure`). At most ``max_panels`` panels, the first series first (the CSV
    holds every forecast)."""
    return _save(forecasts_figure(items, names, tail=tail, max_panels=max_panels), path)


def forecasts_figure(items: list, names=None, *, tail: int = 200, max_panels: int = 12) -> Figure:
    """The figure :func:`forecasts_png` writes.

    Each panel: the history up to the origin ("history"), a vertical line at its last timestamp
    ("forecast origin": the forecast is made from there), the forecast and its band, and when
    the item has a sixth entry ``actual = (timestamps, (T_a, O) values)``, the true values after
    the origin ("actual (test)", dashed) to compare the forecast with.
    """
    panels = []
    for name, hist_ts, hist, future_ts, result, *rest in items:
        hist = np.asarray(hist)
        actual = rest[0] if rest else None
        cols = names or [f"y{j}" for j in range(hist.shape[1])]
        for j in range(hist.shape[1]):
            title = cols[j] if name is None else f"{name}: {cols[j]}"
            panels.append((title, hist_ts, hist[:, j], future_ts, result, j, actual))
    panels = panels[:max_panels]
    n = len(panels)
    fig = Figure(figsize=(9, 2.8 * n + 0.4), dpi=110)
    axes = fig.subplots(n, 1, squeeze=False)
    for ax, (title, hist_ts, h, future_ts, result, j, actual) in zip(axes[:, 0], panels):
        origin = hist_ts[-1]
        ax.plot(hist_ts[-tail:], h[-tail:], color="black", lw=1, label="history")
        if actual is not None:
            a_ts, a = actual
            a = np.asarray(a)
            a = a[:, j] if a.ndim == 2 else a
            # the last history point joins the actual line, so the two read as one series
            ax.plot(
                np.concatenate([[origin], a_ts]),
                np.concatenate([[h[-1]], a]),
                color="tab:orange",
                ls="--",
                lw=1.3,
                label="actual (test)",
            )
        ax.axvline(origin, color="dimgray", ls=":", lw=1.5, label="forecast origin")
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
        ax.set_title(f"{title} — forecast from {_when(origin)}", fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _when(t) -> str:
    """A timestamp as a person writes it: the date alone at midnight."""
    text = str(np.datetime64(t, "s")).replace("T", " ")
    return text[:10] if text.endswith("00:00:00") else text


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
