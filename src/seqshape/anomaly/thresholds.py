"""Anomaly scores or forecast errors -> boolean flags.

Three rules, each returning a (T,) bool array:

* :func:`fixed_threshold` — ``score >= value`` (NAB's convention for a detection);
* :func:`quantile_threshold` — a cut fitted as a quantile of a reference stretch (the first
  ``n_reference`` points, typically nominal history) and applied to the points after it;
* :func:`dynamic_threshold` — the non-parametric dynamic threshold of Hundman, Constantinou,
  Laporte, Colwell and Soderstrom, "Detecting Spacecraft Anomalies Using LSTMs and
  Nonparametric Dynamic Thresholding", KDD 2018 (https://arxiv.org/abs/1802.04431).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, ShapeError

__all__ = ["fixed_threshold", "quantile_threshold", "dynamic_threshold"]


def _series(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ShapeError(f"{name}: expected shape (T,), got {a.shape}")
    bad = np.flatnonzero(~np.isfinite(a))
    if len(bad):
        raise DataError(f"{name}[{int(bad[0])}]: expected a finite number, got {a[bad[0]]}")
    return a


def fixed_threshold(scores: np.ndarray, value: float) -> np.ndarray:
    """Flag every point whose score is ``>= value``."""
    if not math.isfinite(value):
        raise ConfigError(f"value: expected a finite number, got {value!r}")
    return _series(scores, "scores") >= value


def quantile_threshold(scores: np.ndarray, q: float, *, n_reference: int) -> np.ndarray:
    """Flag points after the reference stretch whose score exceeds its ``q``-quantile.

    The cut is ``np.quantile(scores[:n_reference], q)``; points ``t >= n_reference`` are flagged
    when ``score > cut`` (strictly, so a flat reference does not flag its own level), and the
    reference points themselves are never flagged.
    """
    x = _series(scores, "scores")
    if not 0.0 <= q <= 1.0:
        raise ConfigError(f"q: expected 0 <= q <= 1, got {q!r}")
    if isinstance(n_reference, bool) or not isinstance(n_reference, int):
        raise ConfigError(f"n_reference: expected an int, got {n_reference!r}")
    if not 1 <= n_reference <= len(x):
        raise ConfigError(f"n_reference: expected 1 <= n_reference <= {len(x)}, got {n_reference}")
    cut = float(np.quantile(x[:n_reference], q))
    flags = x > cut
    flags[:n_reference] = False
    return flags


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ``[start, end)`` ranges of consecutive True values."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()
    return list(zip(starts, ends, strict=True))


def _window_flags(
    e_s: np.ndarray, z_values: np.ndarray, prune: float, max_fraction: float
) -> np.ndarray:
    """Hundman et al.'s threshold choice and pruning on one window of smoothed errors."""
    flags = np.zeros(len(e_s), dtype=bool)
    mu, sigma = float(np.mean(e_s)), float(np.std(e_s))
    if sigma <= 0.0 or mu <= 0.0:
        return flags
    best, best_cut = 0.0, None
    for z in z_values:
        cut = mu + z * sigma
        above = e_s > cut
        n_above = int(above.sum())
        if n_above == 0 or n_above > max_fraction * len(e_s):
            continue
        below = e_s[~above]
        n_seq = len(_runs(above))
        # (delta mean / mean + delta std / std) / (#anomalous points + #sequences^2)
        gain = ((mu - np.mean(below)) / mu + (sigma - np.std(below)) / sigma) / (n_above + n_seq**2)
        if gain > best:
            best, best_cut = gain, cut
    if best_cut is None:
        return flags

    above = e_s > best_cut
    sequences = _runs(above)
    peaks = np.array([e_s[a:b].max() for a, b in sequences])
    rank = np.argsort(-peaks, kind="stable")
    # the sorted sequence maxima, then the largest nominal smoothed error
    tail = float(e_s[~above].max()) if (~above).any() else 0.0
    e_max = np.append(peaks[rank], tail)
    # percent decrease from each maximum to the next one
    drop = (e_max[:-1] - e_max[1:]) / np.where(e_max[:-1] > 0, e_max[:-1], 1.0)
    big = np.flatnonzero(drop > prune)
    keep = 0 if len(big) == 0 else int(big[-1]) + 1  # sequences ranked before the last big drop
    for k in rank[:keep]:
        a, b = sequences[k]
        flags[a:b] = True
    return flags


def dynamic_threshold(
    errors: np.ndarray,
    *,
    window: int = 2000,
    step: int = 100,
    smoothing_span: int = 5,
    z_values: Sequence[float] | np.ndarray = tuple(np.arange(2.0, 10.01, 0.5)),
    prune: float = 0.13,
    max_anomalous_fraction: float = 0.5,
) -> np.ndarray:
    """Non-parametric dynamic thresholding (Hundman et al., KDD 2018) -> (T,) bool flags.

    1. Absolute errors are smoothed with an exponentially weighted moving average of span
       ``smoothing_span`` (causal).
    2. Over a sliding window of the last ``window`` smoothed errors ``e_s``, evaluated every
       ``step`` points, each candidate cut ``mean(e_s) + z * std(e_s)`` (``z`` in ``z_values``,
       the paper uses 2..10) is rated by ``(dmean/mean + dstd/std) / (#anomalous points +
       #anomalous sequences^2)``, where ``dmean`` and ``dstd`` are how much the mean and
       standard deviation fall once the points above the cut are removed; the best cut wins
       (a cut that would flag more than ``max_anomalous_fraction`` of the window is skipped).
    3. Pruning: the maxima of the anomalous sequences, sorted descending and followed by the
       largest nominal smoothed error, are walked through; sequences ranked before the last
       step whose relative drop exceeds ``prune`` (the paper's ``p``, 0.13) stay anomalous, the
       others are reclassified nominal.

    The first window decides the flags of all its points; each later evaluation decides the
    ``step`` points it added, so a flag at ``t`` depends on errors up to at most
    ``t + step - 1``. A series shorter than ``window`` is one window.
    """
    e = np.abs(_series(errors, "errors"))
    for name, value, low in (
        ("window", window, 2),
        ("step", step, 1),
        ("smoothing_span", smoothing_span, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name}: expected an int >= {low}, got {value!r}")
    if step > window:
        raise ConfigError(f"step: expected <= window={window}, got {step}")
    z = np.asarray(z_values, dtype=np.float64)
    if z.ndim != 1 or len(z) == 0 or not (np.isfinite(z).all() and (z > 0).all()):
        raise ConfigError(
            f"z_values: expected a non-empty list of positive numbers, got {z_values!r}"
        )
    if not 0.0 <= prune < 1.0:
        raise ConfigError(f"prune: expected 0 <= prune < 1, got {prune!r}")
    if not 0.0 < max_anomalous_fraction <= 1.0:
        raise ConfigError(
            f"max_anomalous_fraction: expected in (0, 1], got {max_anomalous_fraction!r}"
        )

    n = len(e)
    flags = np.zeros(n, dtype=bool)
    if n == 0:
        return flags
    # (T,) causal exponentially weighted mean of the absolute errors
    e_s = pd.Series(e).ewm(span=smoothing_span).mean().to_numpy()
    end = min(window, n)
    flags[:end] = _window_flags(e_s[:end], z, prune, max_anomalous_fraction)
    while end < n:
        new_end = min(end + step, n)
        start = max(0, new_end - window)
        local = _window_flags(e_s[start:new_end], z, prune, max_anomalous_fraction)
        flags[end:new_end] = local[end - start :]
        end = new_end
    return flags
