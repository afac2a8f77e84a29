"""The NAB scorer: a detector's anomaly scores on the corpus -> raw and normalised NAB scores.

A fresh implementation of the published rule (Lavin & Ahmad, ICMLA 2015; see nab.py for the
corpus, the probation and the reading of results), vectorised with numpy:

* A *detection* is a scored row whose anomaly score is ``>= threshold``.
* In each window ``[a, b]`` (``W = b - a + 1`` rows) only the earliest detection counts, worth
  ``tpWeight * sigma(-(b - i + 1) / W) / sigma(-1)`` with the scaled sigmoid
  ``sigma(x) = 2 / (1 + exp(5 x)) - 1`` (``sigma(x) = -1`` for ``x >= 3``): a detection on a
  window's first row earns exactly ``tpWeight``. A window with no detection costs ``fnWeight``.
* A detection outside every window costs ``fpWeight * sigma((i - b) / (W - 1))`` with ``b``
  and ``W`` of the closest window that ended before it (a small reward right after a window,
  quickly ``-fpWeight``), and exactly ``-fpWeight`` when no window precedes it.
* The raw score of a detector is summed over the corpus; each profile's threshold is chosen to
  maximise it. NAB's optimiser sweeps the distinct anomaly scores; :func:`sweep_thresholds`
  does the same exactly, in one sort and a few cumulative sums (~0.1 s for the 365k rows).
* Normalised score ``100 * (raw - null) / (perfect - null)``: ``null`` is the detector that
  never fires (``-fnWeight`` per scored window), ``perfect`` fires on each window's first row
  (``tpWeight`` per labelled window, as NAB counts it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError

if TYPE_CHECKING:
    from .nab import CostProfile, NabSeries


@dataclass(frozen=True, kw_only=True)
class ProfileScore:
    """The score of one detector under one profile."""

    threshold: float
    raw: float
    null: float
    perfect: float

    @property
    def normalized(self) -> float:
        """``100 * (raw - null) / (perfect - null)``: 0 for the null detector, 100 for perfect."""
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)


def scaled_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """NAB's positional weight ``2 / (1 + exp(5 x)) - 1``, exactly -1 for ``x >= 3``."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        y = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x >= 3.0, -1.0, y)


_MAX_TP = float(scaled_sigmoid(-1.0))


@dataclass(frozen=True)
class _Layout:
    """Every scored row of a corpus, concatenated, with its window and positional weight."""

    scores: np.ndarray  # (R,) anomaly score per scored row
    window: np.ndarray  # (R,) corpus-wide window id, -1 outside every window
    position_weight: np.ndarray  # (R,) scaled sigmoid: in a window / after the previous one
    n_scored_windows: int
    n_windows: int


def _layout(corpus: Sequence[NabSeries], scores: Mapping[str, np.ndarray]) -> _Layout:
    parts_s, parts_g, parts_u = [], [], []
    next_id = 0
    scored_windows = 0
    for s in corpus:
        if s.relative_name not in scores:
            raise DataError(f"scores: expected an entry for {s.relative_name}, none given")
        x = np.asarray(scores[s.relative_name], dtype=np.float64)
        n = len(s)
        if x.shape != (n,):
            raise DataError(f"scores[{s.relative_name!r}]: expected shape ({n},), got {x.shape}")
        if not np.isfinite(x).all():
            i = int(np.flatnonzero(~np.isfinite(x))[0])
            raise DataError(
                f"scores[{s.relative_name!r}][{i}]: expected a finite number, got {x[i]}"
            )
        rows = np.arange(n)
        # (W,) first and last row of each window
        first = np.array([a for a, _ in s.windows], dtype=np.int64)
        last = np.array([b for _, b in s.windows], dtype=np.int64)
        width = (last - first + 1).astype(np.float64)
        # (T,) the window a row lies in (-1 if none) and the last window ended before it
        inside = np.searchsorted(first, rows, side="right") - 1
        before = np.searchsorted(last, rows, side="left") - 1
        in_window = np.zeros(n, dtype=bool)
        u = np.full(n, -1.0)  # no window at all: every detection is a plain false positive
        if len(first):
            k = np.clip(inside, 0, None)
            in_window = (inside >= 0) & (rows <= last[k])
            tp_pos = -(last[k] - rows + 1) / width[k]
            j = np.clip(before, 0, None)
            with np.errstate(divide="ignore", invalid="ignore"):
                fp_pos = np.where(width[j] > 1, (rows - last[j]) / (width[j] - 1), np.inf)
            fp_pos = np.where(before >= 0, fp_pos, 3.0)
            u = scaled_sigmoid(np.where(in_window, tp_pos, fp_pos))
        g = np.where(in_window, inside + next_id, -1)
        p = s.probation
        parts_s.append(x[p:])
        parts_g.append(g[p:])
        parts_u.append(u[p:])
        scored_windows += int(np.sum(last >= p))
        next_id += len(first)
    scores_all = np.concatenate(parts_s) if parts_s else np.zeros(0)
    return _Layout(
        scores=scores_all,
        window=np.concatenate(parts_g).astype(np.int64) if parts_g else np.zeros(0, np.int64),
        position_weight=np.concatenate(parts_u) if parts_u else np.zeros(0),
        n_scored_windows=scored_windows,
        n_windows=next_id,
    )


def _weights(layout: _Layout, profile: CostProfile) -> np.ndarray:
    # (R,) what each row is worth when detected: TP weight in a window, FP weight outside
    return np.where(
        layout.window >= 0,
        layout.position_weight * (profile.tp_weight / _MAX_TP),
        layout.position_weight * profile.fp_weight,
    )


def _null_and_perfect(layout: _Layout, profile: CostProfile) -> tuple[float, float]:
    return -profile.fn_weight * layout.n_scored_windows, profile.tp_weight * layout.n_windows


def _sweep(layout: _Layout, profile: CostProfile) -> tuple[np.ndarray, np.ndarray]:
    """Raw corpus score at every distinct threshold, highest threshold first (null first)."""
    w = _weights(layout, profile)
    null, _ = _null_and_perfect(layout, profile)
    # (R,) rows from the highest anomaly score down
    by_score = np.argsort(-layout.scores, kind="stable")
    s_sorted = layout.scores[by_score]
    g_sorted = layout.window[by_score]
    gain = np.where(g_sorted < 0, w[by_score], 0.0)

    # A window's value is that of its earliest detected row: walking down the thresholds, it
    # changes only when a row earlier than every detected one of its window joins.
    in_win = np.flatnonzero(g_sorted >= 0)
    if len(in_win):
        groups = g_sorted[in_win]
        rows = by_score[in_win]  # corpus row index: earlier in a series, smaller
        regroup = np.lexsort((in_win, groups))  # by window, then by sweep step
        grp = groups[regroup]
        # running earliest row within each window: offsets make each window restart the minimum
        offset = grp * (len(layout.scores) + 1)
        earliest = np.minimum.accumulate(rows[regroup] - offset) + offset
        value = w[earliest]
        previous = np.empty_like(value)
        previous[1:] = value[:-1]
        starts = np.ones(len(grp), dtype=bool)
        starts[1:] = grp[1:] != grp[:-1]
        previous[starts] = -profile.fn_weight
        gain[in_win[regroup]] = value - previous
    total = null + np.cumsum(gain)
    # a threshold t detects every row scored >= t: read the total at the end of each tie run
    ends = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))
    top = float(s_sorted[0]) if len(s_sorted) else 0.0
    null_threshold = 1.1 if top < 1.1 else float(np.nextafter(top, np.inf))
    thresholds = np.concatenate([[null_threshold], s_sorted[ends]])
    raw = np.concatenate([[null], total[ends]])
    return thresholds, raw


def _raw_at(layout: _Layout, profile: CostProfile, threshold: float) -> float:
    w = _weights(layout, profile)
    null, _ = _null_and_perfect(layout, profile)
    hit = layout.scores >= threshold
    fp = float(np.sum(w[hit & (layout.window < 0)]))
    in_hit = np.flatnonzero(hit & (layout.window >= 0))
    # rows are in corpus order, so a window's first occurrence is its earliest detection
    _, first = np.unique(layout.window[in_hit], return_index=True)
    tp = float(np.sum(w[in_hit[first]] + profile.fn_weight))
    return null + tp + fp


def sweep_thresholds(
    corpus: Sequence[NabSeries], scores: Mapping[str, np.ndarray], profile: CostProfile
) -> tuple[np.ndarray, np.ndarray]:
    """Raw corpus score at every distinct threshold, as NAB's optimiser sweeps them.

    Returns ``(thresholds, raw)``, both (M + 1,), thresholds descending; entry 0 is a threshold
    above every score (the null detector), entry ``m`` detects every row scored ``>=
    thresholds[m]``.
    """
    return _sweep(_layout(corpus, scores), profile)


def score_corpus(
    corpus: Sequence[NabSeries],
    scores: Mapping[str, np.ndarray],
    profile: CostProfile,
    threshold: float | None = None,
) -> ProfileScore:
    """Score a detector's results under one profile, at ``threshold`` or at the best one."""
    layout = _layout(corpus, scores)
    return _score_layout(layout, profile, threshold)


def _score_layout(layout: _Layout, profile: CostProfile, threshold: float | None) -> ProfileScore:
    null, perfect = _null_and_perfect(layout, profile)
    if perfect <= null:
        raise DataError(f"corpus: expected at least one labelled window, got {layout.n_windows}")
    if threshold is None:
        thresholds, raw = _sweep(layout, profile)
        best = int(np.argmax(raw))  # ties: the highest threshold, as NAB's stable sort keeps
        return ProfileScore(
            threshold=float(thresholds[best]), raw=float(raw[best]), null=null, perfect=perfect
        )
    return ProfileScore(
        threshold=float(threshold),
        raw=_raw_at(layout, profile, float(threshold)),
        null=null,
        perfect=perfect,
    )
