"""Time-based train/validation/test splits of a SeriesFrame: by fractions, step counts or dates,
and the usual ETT split. Time is never shuffled: each series is cut at index boundaries; the
scaler (`seqshape.data.scaling.Scaling`) is fitted on the training part only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, ShapeError
from .calendar import _fmt

if TYPE_CHECKING:
    from .series import SeriesFrame

# The ETTh1/ETTh2 convention of Zhou et al., "Informer: Beyond Efficient Transformer for Long
# Sequence Time-Series Forecasting" (AAAI 2021), kept by Wu et al., "Autoformer" (NeurIPS 2021)
# and Zeng et al. (AAAI 2023): 12 months of 30 days train, 4 months validation, 4 months test.
ETT_MONTH_HOURS = 30 * 24
ETT_COUNTS_HOURLY = (12 * ETT_MONTH_HOURS, 4 * ETT_MONTH_HOURS, 4 * ETT_MONTH_HOURS)


@dataclass(frozen=True, kw_only=True)
class Splits:
    """Time-based train/validation/test boundaries, one row per series.

    ``bounds[i] = (train_end, val_end, test_end)``: series i's training part is
    ``[0, train_end)``, validation ``[train_end, val_end)``, test ``[val_end, test_end)``; steps
    after ``test_end`` are unused. :attr:`train`/:attr:`val`/:attr:`test` give ``(S, 2)`` arrays
    of ``(start, end)`` ready for :func:`seqshape.data.windows.make_windows`.
    """

    bounds: np.ndarray
    series_ids: list[str]

    def __post_init__(self) -> None:
        b = np.asarray(self.bounds, dtype=np.int64)
        if b.ndim != 2 or b.shape != (len(self.series_ids), 3):
            raise ShapeError(
                f"bounds: expected ({len(self.series_ids)}, 3) = (series, train/val/test end), "
                f"got {b.shape}"
            )
        for i, (a, v, t) in enumerate(b):
            if not 0 < a < v < t:
                raise DataError(
                    f"series {self.series_ids[i]!r}: split bounds must satisfy "
                    f"0 < train_end < val_end < test_end, got ({a}, {v}, {t})"
                )
        b.setflags(write=False)
        object.__setattr__(self, "bounds", b)

    def part(self, name: str) -> np.ndarray:
        """(S, 2) int64: ``(start, end)`` of part ``name`` ('train', 'val' or 'test')."""
        col = {"train": 0, "val": 1, "test": 2}
        if name not in col:
            raise ConfigError(f"part: expected 'train', 'val' or 'test', got {name!r}")
        j = col[name]
        start = np.zeros(len(self.series_ids), np.int64) if j == 0 else self.bounds[:, j - 1]
        # (S,) + (S,) -> (S, 2)
        return np.stack([start, self.bounds[:, j]], axis=1)

    @property
    def train(self) -> np.ndarray:
        return self.part("train")

    @property
    def val(self) -> np.ndarray:
        return self.part("val")

    @property
    def test(self) -> np.ndarray:
        return self.part("test")

    @property
    def train_end(self) -> np.ndarray:
        """(S,) int64: where each series' training part ends (what a scaler may see)."""
        return self.bounds[:, 0].copy()

    def to_dict(self) -> dict[str, Any]:
        return {"series_ids": list(self.series_ids), "bounds": self.bounds.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Splits:
        if not isinstance(d, dict) or "bounds" not in d or "series_ids" not in d:
            raise ConfigError(f"splits: expected a dict with bounds and series_ids, got {d!r}")
        return cls(bounds=np.array(d["bounds"], dtype=np.int64), series_ids=list(d["series_ids"]))


def _check_parts(frame: SeriesFrame, bounds: np.ndarray, how: str) -> Splits:
    for i, (a, v, t) in enumerate(bounds.tolist()):
        sizes = (a, v - a, t - v)
        if min(sizes) < 1:
            raise DataError(
                f"{frame.source}: series {frame.series_ids[i]!r} ({frame.lengths[i]} steps) "
                f"split {how} gives train/val/test sizes {sizes}; every part needs at least 1 step"
            )
    return Splits(bounds=bounds, series_ids=list(frame.series_ids))


def split_by_fraction(frame: SeriesFrame, fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> Splits:
    """Cut each series by fractions of its length (time order, no shuffling).

    Boundaries are the cumulative fractions times ``T_i`` rounded half up, so fractions summing
    to 1 use every step; a sum below 1 leaves the end of each series unused.
    """
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or (f <= 0).any() or f.sum() > 1 + 1e-9:
        raise ConfigError(
            f"fractions: expected 3 positive numbers (train, val, test) summing to at most 1, "
            f"got {tuple(fractions)}"
        )
    cum = np.minimum(np.cumsum(f), 1.0)
    # (S, 1) * (1, 3) -> (S, 3)
    bounds = np.floor(frame.lengths[:, None] * cum[None, :] + 0.5).astype(np.int64)
    return _check_parts(frame, bounds, f"by fractions {tuple(fractions)}")


def split_by_counts(frame: SeriesFrame, counts: Sequence[int]) -> Splits:
    """Cut each series into its first ``train``, next ``val`` and next ``test`` steps."""
    c = tuple(int(x) for x in counts)
    if len(c) != 3 or min(c) < 1:
        raise ConfigError(f"counts: expected 3 positive step counts (train, val, test), got {c}")
    need = sum(c)
    for i, t in enumerate(frame.lengths):
        if t < need:
            raise DataError(
                f"{frame.source}: series {frame.series_ids[i]!r}: the split needs "
                f"{c[0]} + {c[1]} + {c[2]} = {need} steps, the series has {t}"
            )
    bounds = np.tile(np.cumsum(c), (len(frame), 1)).astype(np.int64)
    return _check_parts(frame, bounds, f"by counts {c}")


def split_by_dates(frame: SeriesFrame, dates: Sequence[Any]) -> Splits:
    """Train before ``dates[0]``, validation from ``dates[0]`` before ``dates[1]``, test after."""
    if len(dates) != 2:
        raise ConfigError(f"dates: expected 2 dates (validation start, test start), got {dates!r}")
    try:
        d = [np.datetime64(pd.Timestamp(x).as_unit("ns").to_datetime64(), "ns") for x in dates]
    except (ValueError, TypeError) as e:
        raise ConfigError(f"dates: expected 2 dates, got {list(dates)!r} ({e})") from None
    if not d[0] < d[1]:
        raise ConfigError(
            f"dates: expected the validation start before the test start, got {dates}"
        )
    rows = []
    for ts in frame.timestamps:
        a, v = np.searchsorted(ts, d, side="left")
        rows.append((a, v, ts.size))
    bounds = np.array(rows, dtype=np.int64).reshape(len(frame), 3)
    return _check_parts(frame, bounds, f"by dates {_fmt(d[0])} / {_fmt(d[1])}")


def ett_split(*, steps_per_hour: int = 1) -> tuple[int, int, int]:
    """Step counts ``(train, val, test)`` of the usual ETT split, for :func:`split_by_counts`.

    12 months train, 4 validation, 4 test, months of 30 days: ``(8640, 2880, 2880)`` hours, so
    on ETTh1 the boundaries are 8640, 11520 and 14400 and the last 3020 rows are unused. This is
    the convention of Zhou et al., *Informer* (AAAI 2021), kept by Wu et al., *Autoformer*
    (NeurIPS 2021) and Zeng et al. (AAAI 2023). ``steps_per_hour=4`` gives the ETTm (15-minute)
    version. Their validation and test windows take history from before the part's start, as
    :func:`seqshape.data.windows.make_windows` does for ``(start, end)`` bounds::

        splits = split_by_counts(frame, ett_split())
    """
    if steps_per_hour < 1:
        raise ConfigError(f"steps_per_hour: expected a positive integer, got {steps_per_hour}")
    a, b, c = (n * steps_per_hour for n in ETT_COUNTS_HOURLY)
    return a, b, c
