"""Forecast windows as index arrays, gathered into arrays only at batch time.

A window is a pair ``(series_idx, start)``: its history is steps ``[start, start + N)`` of that
series and its forecast targets are ``[start + N, start + N + K)`` (N lookback, K horizon).
The *origin* ``t0 = start + N`` is the first forecast step.

Windows are made for a part of each series given as ``(start, end)`` bounds: every window whose
forecast targets lie inside the part, with history allowed to reach back before the part's start
(never before step 0). That is both the training windows (bounds ``(0, train_end)``) and the
rolling-origin backtest (bounds of the test part): the standard practice of Informer/Autoformer
style evaluation, where a test window reads the last N steps before its origin wherever they lie.

Per series with bounds ``(a, b)`` the origins are ``t0 = max(a, N), max(a, N) + stride, ...``
up to ``b - K``, so the count is ``floor((b - K - max(a, N)) / stride) + 1`` (0 when negative).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, ShapeError


@dataclass
class Windows:
    """Windows as two index arrays: window j reads rows ``[start[j], start[j] + lookback)`` of
    series ``series[j]`` and forecasts the ``horizon`` rows after them."""

    series: np.ndarray  # (W,) int64
    start: np.ndarray  # (W,) int64
    lookback: int
    horizon: int
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.start)

    def pairs(self) -> np.ndarray:
        """(W, 2) int64 ``(series, start)``."""
        return np.stack([self.series, self.start], axis=1)


def _positive(name: str, v: int) -> int:
    if int(v) != v or v < 1:
        raise ConfigError(f"{name}: expected a positive integer, got {v!r}")
    return int(v)


def _as_bounds(lengths_or_bounds: Any) -> np.ndarray:
    b = np.asarray(lengths_or_bounds)
    if b.dtype.kind not in "iu":
        if b.size and not np.all(np.mod(b, 1) == 0):
            raise ShapeError(f"lengths_or_bounds: expected integers, got {lengths_or_bounds!r}")
        b = b.astype(np.int64)
    b = b.astype(np.int64)
    if b.ndim == 1:
        # (S,) lengths -> (S, 2): the whole series
        b = np.stack([np.zeros_like(b), b], axis=1)
    if b.ndim != 2 or b.shape[1] != 2 or b.shape[0] == 0:
        raise ShapeError(
            f"lengths_or_bounds: expected (S,) lengths or (S, 2) (start, end) bounds, got {b.shape}"
        )
    bad = np.flatnonzero((b[:, 0] < 0) | (b[:, 1] < b[:, 0]))
    if bad.size:
        i = int(bad[0])
        raise ShapeError(f"lengths_or_bounds[{i}]: expected 0 <= start <= end, got {tuple(b[i])}")
    return b


def count_windows(
    lengths_or_bounds: Any, lookback: int, horizon: int, stride: int = 1
) -> np.ndarray:
    """(S,) int64: how many windows :func:`make_windows` gives per series (the formula above)."""
    n, k, st = (
        _positive("lookback", lookback),
        _positive("horizon", horizon),
        _positive("stride", stride),
    )
    b = _as_bounds(lengths_or_bounds)
    first = np.maximum(b[:, 0], n)
    span = b[:, 1] - k - first
    return np.where(span >= 0, span // st + 1, 0).astype(np.int64)


def make_windows(
    lengths_or_bounds: Any,
    lookback: int,
    horizon: int,
    stride: int = 1,
    *,
    series_ids: Sequence[str] | None = None,
    skip_short: bool = False,
) -> Windows:
    """Every window whose forecast targets lie in the part: the one windowing of the library
    (training, validation, backtests, the baselines' scoring).

    ``lengths_or_bounds``: ``(S,)`` series lengths (windows anywhere) or ``(S, 2)`` part bounds
    ``(start, end)``, e.g. ``splits.train`` or ``splits.test``. Windows are ordered by series,
    then by time. A series (or part) too short for one window raises DataError naming it and
    the steps needed vs available; ``skip_short=True`` skips it instead (and gives no windows
    at all when every part is too short: a validation part may be empty).
    """
    n, k, st = (
        _positive("lookback", lookback),
        _positive("horizon", horizon),
        _positive("stride", stride),
    )
    b = _as_bounds(lengths_or_bounds)
    counts = count_windows(b, n, k, st)
    if series_ids is not None and len(series_ids) != b.shape[0]:
        raise ShapeError(f"series_ids: expected {b.shape[0]} ids, got {len(series_ids)}")
    for i in np.flatnonzero(counts == 0):
        if skip_short:
            continue
        a, e = (int(v) for v in b[i])
        sid = repr(series_ids[i]) if series_ids is not None else f"#{i}"
        if a == 0:
            raise DataError(
                f"series {sid}: too short for one window: needs lookback {n} + horizon {k} = "
                f"{n + k} steps, has {e}"
            )
        raise DataError(
            f"series {sid}: part [{a}, {e}) too short for one window: needs horizon {k} steps "
            f"inside it after lookback {n} steps of history, has {max(0, e - max(a, n))}"
        )
    first = np.maximum(b[:, 0], n)
    series = np.repeat(np.arange(b.shape[0], dtype=np.int64), counts)
    # (W,): position of each window within its series' run
    offsets = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(counts) - counts, counts
    )
    origins = np.repeat(first, counts) + offsets * st
    # start = t0 - N: the first history row
    return Windows(series, origins - n, n, k)


def gather(
    scaled: Sequence[tuple[np.ndarray, np.ndarray]], win: Windows, idx, k: int | None = None
):
    """Windows ``idx`` of ``win`` as tensors: history (B, N, Z), future (B, K, Z) and known
    covariates (B, N + K, Cf), from ``scaled``: per series, (z (T, Z) = targets and past
    covariates, f (T, Cf) = known covariates). ``k``: another horizon than the windows'."""
    import torch

    N = win.lookback
    K = win.horizon if k is None else k
    hist, fut, cov = [], [], []
    for j in idx:
        z, f = scaled[win.series[j]]
        s = win.start[j]
        hist.append(z[s : s + N])
        fut.append(z[s + N : s + N + K])
        cov.append(f[s : s + N + K])
    t = lambda a: torch.from_numpy(np.stack(a))  # noqa: E731
    return t(hist), t(fut), t(cov)
