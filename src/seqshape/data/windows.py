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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, ShapeError
from .series import SeriesFrame


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
) -> np.ndarray:
    """(W, 2) int64 ``(series_idx, start)``: every window whose forecast targets lie in the part.

    ``lengths_or_bounds``: ``(S,)`` series lengths (windows anywhere) or ``(S, 2)`` part bounds
    ``(start, end)``, e.g. ``splits.train`` or ``splits.test``. Windows are ordered by series,
    then by time. A series (or part) too short for one window raises DataError naming it and
    the steps needed vs available; ``skip_short=True`` skips it instead (DataError if all are).
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
        if skip_short and counts.any():
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
    # (W,), (W,) -> (W, 2): (series_idx, start = t0 - N)
    return np.stack([series, origins - n], axis=1)


def backtest_windows(
    bounds: Any,
    lookback: int,
    horizon: int,
    stride: int | None = None,
    *,
    series_ids: Sequence[str] | None = None,
    skip_short: bool = False,
) -> np.ndarray:
    """Rolling-origin backtest windows over a part (e.g. ``splits.test``).

    The same as :func:`make_windows` with ``(S, 2)`` bounds; ``stride`` defaults to the horizon,
    so the forecasts tile the part without overlap. Use ``stride=1`` for every origin (the
    Informer/Autoformer protocol scores every origin).
    """
    b = np.asarray(bounds)
    if b.ndim != 2:
        raise ShapeError(f"bounds: expected (S, 2) (start, end) of the part, got {b.shape}")
    return make_windows(
        b,
        lookback,
        horizon,
        horizon if stride is None else stride,
        series_ids=series_ids,
        skip_short=skip_short,
    )


@dataclass(frozen=True)
class WindowBatch:
    """The arrays of B windows (float32 except the indices).

    history_target (B, N, O), history_past (B, N, Cp), history_future (B, N, Cf),
    future_target (B, K, O), future_cov (B, K, Cf); series_idx (B,) and origin (B,) (the first
    forecast step's index in its series) locate each window.
    """

    series_idx: np.ndarray
    origin: np.ndarray
    history_target: np.ndarray
    history_past: np.ndarray
    history_future: np.ndarray
    future_target: np.ndarray
    future_cov: np.ndarray

    def __len__(self) -> int:
        return int(self.series_idx.shape[0])

    def tensors(self, device: Any = None) -> dict[str, Any]:
        """The arrays as torch tensors (int64 indices, float32 values), keyed by field name."""
        import torch

        return {
            name: torch.as_tensor(getattr(self, name), device=device)
            for name in self.__dataclass_fields__
        }


class WindowDataset:
    """Gathers windows of a SeriesFrame into :class:`WindowBatch` arrays, on demand.

    ``windows`` comes from :func:`make_windows`; nothing is copied until :meth:`gather`. Scale
    the frame first (``SeriesScaler.transform``) if the model wants scaled inputs.
    """

    def __init__(
        self, frame: SeriesFrame, windows: np.ndarray, lookback: int, horizon: int
    ) -> None:
        self.frame = frame
        self.lookback = _positive("lookback", lookback)
        self.horizon = _positive("horizon", horizon)
        w = np.asarray(windows)
        if w.ndim != 2 or w.shape[1] != 2 or w.dtype.kind not in "iu":
            raise ShapeError(
                f"windows: expected (W, 2) integers (series_idx, start), got {w.shape}"
            )
        w = w.astype(np.int64)
        s = len(frame)
        if w.size:
            bad = np.flatnonzero((w[:, 0] < 0) | (w[:, 0] >= s))
            if bad.size:
                j = int(bad[0])
                raise ShapeError(f"windows[{j}]: series index {w[j, 0]} outside 0..{s - 1}")
            end = w[:, 1] + self.lookback + self.horizon
            too_far = np.flatnonzero((w[:, 1] < 0) | (end > frame.lengths[w[:, 0]]))
            if too_far.size:
                j = int(too_far[0])
                i = int(w[j, 0])
                raise DataError(
                    f"windows[{j}]: series {frame.series_ids[i]!r} has {frame.lengths[i]} steps, "
                    f"the window needs steps [{w[j, 1]}, {end[j]})"
                )
        self.windows = w

    def __len__(self) -> int:
        return int(self.windows.shape[0])

    def gather(self, indices: Any = None) -> WindowBatch:
        """The windows at ``indices`` (positions in ``windows``; None: all) as one batch."""
        w = self.windows if indices is None else self.windows[np.asarray(indices, dtype=np.int64)]
        n, k = self.lookback, self.horizon
        f = self.frame
        b = w.shape[0]
        o, cp, cf = f.n_targets, f.n_past_cov, f.n_future_cov
        ht = np.empty((b, n, o), np.float32)
        hp = np.empty((b, n, cp), np.float32)
        hf = np.empty((b, n, cf), np.float32)
        ft = np.empty((b, k, o), np.float32)
        fc = np.empty((b, k, cf), np.float32)
        steps = np.arange(n + k, dtype=np.int64)
        for i in np.unique(w[:, 0]):
            rows = np.flatnonzero(w[:, 0] == i)
            # (b_i, 1) + (1, N + K) -> (b_i, N + K): the steps each window reads
            idx = w[rows, 1][:, None] + steps[None, :]
            # (T_i, O) -> (b_i, N + K, O), split into history and future
            tgt = f.target[i][idx]
            ht[rows], ft[rows] = tgt[:, :n], tgt[:, n:]
            # (T_i, Cp) -> (b_i, N, Cp): past covariates are seen up to the origin only
            hp[rows] = f.past_cov[i][idx[:, :n]]
            # (T_i, Cf) -> (b_i, N + K, Cf): known-ahead covariates on both sides of the origin
            fut = f.future_cov[i][idx]
            hf[rows], fc[rows] = fut[:, :n], fut[:, n:]
        return WindowBatch(
            series_idx=w[:, 0].copy(),
            origin=w[:, 1] + n,
            history_target=ht,
            history_past=hp,
            history_future=hf,
            future_target=ft,
            future_cov=fc,
        )

    def batches(
        self, batch_size: int, *, shuffle: bool = False, seed: int = 0, drop_last: bool = False
    ) -> Iterator[WindowBatch]:
        """Consecutive batches of windows; ``shuffle`` permutes the windows (seeded), not time."""
        size = _positive("batch_size", batch_size)
        order = np.arange(len(self))
        if shuffle:
            order = np.random.default_rng(seed).permutation(len(self))
        stop = len(self) - (len(self) % size if drop_last else 0)
        for lo in range(0, stop, size):
            yield self.gather(order[lo : lo + size])
