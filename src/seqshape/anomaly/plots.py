"""The anomaly detection figure: the series with its forecast, the scores, flags and label windows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..errors import ShapeError  # noqa: E402

__all__ = ["detection_png"]


def detection_png(
    path: str | Path,
    *,
    timestamps: np.ndarray | None,
    values: np.ndarray,
    scores: np.ndarray,
    flags: np.ndarray,
    predictions: np.ndarray | None = None,
    windows: Sequence[tuple[int, int]] = (),
    train_size: int = 0,
    threshold: float | None = None,
    title: str | None = None,
) -> Path:
    """Two panels sharing the time axis: values (T,) or (T, O) with the predictions, flagged rows
    and label windows (inclusive row ranges, shaded); below, the scores and the threshold.
    The training stretch (the first ``train_size`` rows) is shaded grey."""
    v = np.asarray(values, dtype=np.float64)
    v = v[:, None] if v.ndim == 1 else v
    T = len(v)
    s = np.asarray(scores, dtype=np.float64)
    f = np.asarray(flags, dtype=bool)
    if s.shape != (T,) or f.shape != (T,):
        raise ShapeError(f"scores, flags: expected ({T},) like values, got {s.shape}, {f.shape}")
    x = np.arange(T) if timestamps is None else np.asarray(timestamps).astype("datetime64[ns]")
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 5.5), dpi=110, sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    for ax in (top, bottom):
        if train_size > 0:
            ax.axvspan(x[0], x[min(train_size, T) - 1], color="0.85", lw=0)
        for k, (a, b) in enumerate(windows):
            ax.axvspan(
                x[a],
                x[b],
                color="tab:orange",
                alpha=0.18,
                lw=0,
                label="label window" if k == 0 and ax is top else None,
            )
    for j in range(v.shape[1]):
        top.plot(x, v[:, j], lw=0.7, color="tab:blue", label="value" if j == 0 else None)
    if predictions is not None:
        p = np.asarray(predictions, dtype=np.float64)
        p = p[:, None] if p.ndim == 1 else p
        for j in range(p.shape[1]):
            top.plot(
                x,
                p[:, j],
                lw=0.6,
                color="tab:green",
                alpha=0.8,
                label="prediction" if j == 0 else None,
            )
    rows = np.flatnonzero(f)
    if len(rows):
        top.scatter(x[rows], v[rows, 0], s=18, color="tab:red", zorder=3, label="flagged")
    top.legend(loc="upper left", fontsize=8, ncol=4)
    top.set_ylabel("value")
    if train_size > 0:
        top.text(
            x[0],
            1.01,
            " training stretch",
            transform=top.get_xaxis_transform(),
            fontsize=8,
            color="0.4",
        )
    bottom.plot(x, s, lw=0.7, color="tab:purple")
    if threshold is not None and np.isfinite(threshold):
        bottom.axhline(
            threshold, color="tab:red", lw=0.8, ls="--", label=f"threshold {threshold:g}"
        )
        bottom.legend(loc="upper left", fontsize=8)
    bottom.set_ylabel("score")
    bottom.set_ylim(-0.02, 1.02)
    if title:
        top.set_title(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
