"""Frequencies, future timestamps and calendar features of time series.

A frequency is a step such as ``"h"``, ``"15min"``, ``"D"``, ``"MS"`` (month start) or ``"ME"``
(month end) (grammar: :func:`parse_freq`). :func:`infer_freq` reads it off timestamps,
:func:`future_timestamps` extends a series past its end, and :func:`calendar_features` turns
timestamps into the known-ahead covariates (hour, weekday, month, ... as sin/cos pairs).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, ShapeError
from .cells import listing

MISSING_MODES = ("error", "ffill")
# Cells read as a missing value (compared after strip + lower-case).
MISSING_TOKENS = frozenset({"", "nan", "na", "null", "none"})
NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "min": 60_000_000_000,
    "h": 3_600_000_000_000,
    "D": 86_400_000_000_000,
}
_FREQ_RE = re.compile(r"^(\d*)(ns|us|ms|s|min|h|D|MS|ME)$")
_DAY = NS["D"]


def parse_freq(freq: str) -> tuple[int, str]:
    """Split a frequency string into ``(n, unit)``.

    Grammar: ``[n]unit`` with unit one of ``ns us ms s min h D`` (fixed-length steps) or ``MS``
    / ``ME`` (calendar months, keeping the offset from the month's start, resp. end). ``n``
    defaults to 1: ``"h"``, ``"5min"``, ``"D"``, ``"7D"``, ``"MS"``, ``"3MS"``, ``"12MS"``.
    These strings are also valid pandas offset aliases.
    """
    m = _FREQ_RE.match(freq) if isinstance(freq, str) else None
    if m is None or m.group(1) in ("0",) or (m.group(1) and int(m.group(1)) == 0):
        raise ConfigError(
            f"freq: expected [n]unit with unit one of ns, us, ms, s, min, h, D, MS, ME "
            f"(e.g. 'h', '5min', 'MS'), got {freq!r}"
        )
    return int(m.group(1) or 1), m.group(2)


def _freq_of_step(step_ns: int, *, explicit: bool = False) -> str:
    for unit in ("D", "h", "min", "s", "ms", "us", "ns"):
        if step_ns % NS[unit] == 0:
            n = step_ns // NS[unit]
            return unit if n == 1 and not explicit else f"{n}{unit}"
    raise AssertionError("unreachable: ns divides every step")


def _month_anchor(ts: np.ndarray) -> str | None:
    """'nMS' / 'nME' when every timestamp sits at one offset from its month's start / end."""
    if ts.size < 2:
        return None
    months = ts.astype("datetime64[M]")
    steps = np.diff(months.astype(np.int64))
    if steps[0] < 1 or (steps != steps[0]).any():
        return None
    n = int(steps[0])
    prefix = "" if n == 1 else str(n)
    starts = months.astype("datetime64[ns]")
    if (ts - starts == ts[0] - starts[0]).all():
        return f"{prefix}MS"
    ends = (months + 1).astype("datetime64[ns]")
    if (ends - ts == ends[0] - ts[0]).all():
        return f"{prefix}ME"
    return None


def infer_freq(timestamps: np.ndarray, *, strict: bool = True, name: str = "timestamps") -> str:
    """The step between consecutive timestamps, as a :func:`parse_freq` string.

    Month-anchored series (every timestamp at one offset from its month's start or end) give
    ``MS``/``ME`` (times n); series with one fixed step give that step (``h``, ``5min``, ``D``).
    Irregular steps raise DataError when ``strict`` (naming the first step that differs);
    otherwise the median step is returned (gaps in NAB-like series do not change it).
    """
    ts = np.asarray(timestamps).astype("datetime64[ns]")
    if ts.ndim != 1 or ts.size < 2:
        raise DataError(
            f"{name}: expected at least 2 timestamps to infer a frequency, got {ts.size}"
        )
    steps = np.diff(ts).astype(np.int64)
    if (steps <= 0).any():
        j = int(np.flatnonzero(steps <= 0)[0])
        raise DataError(
            f"{name}: timestamp {_fmt(ts[j + 1])} (step {j + 1}) is not after {_fmt(ts[j])}"
        )
    anchored = _month_anchor(ts)
    if anchored is not None:
        return anchored
    if (steps == steps[0]).all():
        return _freq_of_step(int(steps[0]))
    if strict:
        j = int(np.flatnonzero(steps != steps[0])[0])
        raise DataError(
            f"{name}: irregular steps: {_fmt(ts[0])} -> {_fmt(ts[1])} is "
            f"{_freq_of_step(int(steps[0]), explicit=True)} but {_fmt(ts[j])} -> "
            f"{_fmt(ts[j + 1])} is {_freq_of_step(int(steps[j]), explicit=True)}; pass freq= to say which step to use"
        )
    return _freq_of_step(int(np.sort(steps)[steps.size // 2]))


def date_range(start: Any, n: int, freq: str) -> np.ndarray:
    """(n,) datetime64[ns]: ``start`` and the n - 1 steps after it at ``freq``."""
    t0 = np.datetime64(pd.Timestamp(start).as_unit("ns").to_datetime64(), "ns")
    return np.concatenate([[t0], _advance(t0, n - 1, freq)]) if n > 0 else np.array([], "M8[ns]")


def _advance(last: np.datetime64, k: int, freq: str) -> np.ndarray:
    n, unit = parse_freq(freq)
    ahead = np.arange(1, k + 1, dtype=np.int64)
    if unit in NS:
        # (k,): last + j * step, j = 1..k
        return last + (ahead * n * NS[unit]).astype("timedelta64[ns]")
    month = last.astype("datetime64[M]")
    if unit == "MS":
        offset = last - month.astype("datetime64[ns]")
        return (month + ahead * n).astype("datetime64[ns]") + offset
    offset = (month + 1).astype("datetime64[ns]") - last
    return (month + 1 + ahead * n).astype("datetime64[ns]") - offset


def future_timestamps(
    timestamps: np.ndarray, k: int, *, freq: str | None = None, name: str = "timestamps"
) -> np.ndarray:
    """(k,) datetime64[ns]: the k steps after the last timestamp.

    ``freq`` defaults to :func:`infer_freq` in strict mode, so irregular steps raise DataError.
    """
    ts = np.asarray(timestamps).astype("datetime64[ns]")
    if ts.ndim != 1 or ts.size == 0:
        raise DataError(f"{name}: expected at least one timestamp, got shape {ts.shape}")
    if k < 0:
        raise ConfigError(f"k: expected a number of steps >= 0, got {k}")
    if freq is None:
        freq = infer_freq(ts, strict=True, name=name)
    return _advance(ts[-1], int(k), freq)


def _approx_step_days(freq: str) -> float:
    n, unit = parse_freq(freq)
    if unit in NS:
        return n * NS[unit] / _DAY
    return n * 30.4375


def calendar_kind(freq: str) -> str:
    """Which calendar features a frequency gets: 'hourly', 'daily', 'monthly' or 'none'.

    step < 1 day: hour of day + day of week ('hourly', sub-hourly steps included);
    1 day <= step < 7 days: day of week + month ('daily');
    7 days <= step < 1 year: month ('monthly', weekly steps included); longer: none.
    """
    days = _approx_step_days(freq)
    if days < 1:
        return "hourly"
    if days < 7:
        return "daily"
    if days < 365:
        return "monthly"
    return "none"


def calendar_features(
    timestamps: np.ndarray, freq: str | None = None
) -> tuple[np.ndarray, list[str]]:
    """Calendar features of each timestamp as sin/cos pairs: ``((T, Cf) float32, names)``.

    The set is chosen by the frequency (:func:`calendar_kind`; inferred from the timestamps with
    the median step when None): hourly -> hour of day (fractional for sub-hourly steps) and day
    of week (Monday = 0); daily -> day of week and month; monthly -> month (January = 0).
    Each feature ``v`` with period ``P`` gives ``sin(2 pi v / P)`` and ``cos(2 pi v / P)``.

    The features depend only on each timestamp and ``freq``, so the features of
    :func:`future_timestamps` continue those of the series: pass the series' ``freq``.
    """
    ts = np.asarray(timestamps).astype("datetime64[ns]")
    if ts.ndim != 1:
        raise ShapeError(f"timestamps: expected (T,), got {ts.shape}")
    if freq is None:
        freq = infer_freq(ts, strict=False)
    kind = calendar_kind(freq)
    days = ts.astype("datetime64[D]")
    cols: list[np.ndarray] = []
    names: list[str] = []

    def add(label: str, value: np.ndarray, period: float) -> None:
        angle = 2.0 * np.pi * value.astype(np.float64) / period
        cols.extend([np.sin(angle), np.cos(angle)])
        names.extend([f"{label}_sin", f"{label}_cos"])

    # 1970-01-01 was a Thursday (3 with Monday = 0); numpy's % is non-negative for dates before
    dow = (days.astype(np.int64) + 3) % 7
    month = ts.astype("datetime64[M]").astype(np.int64) % 12
    if kind == "hourly":
        hours = (ts - days.astype("datetime64[ns]")).astype(np.int64) / NS["h"]
        add("hour_of_day", hours, 24.0)
        add("day_of_week", dow, 7.0)
    elif kind == "daily":
        add("day_of_week", dow, 7.0)
        add("month", month, 12.0)
    elif kind == "monthly":
        add("month", month, 12.0)
    if not cols:
        # (T, 0): yearly or slower steps have no calendar features here
        return np.zeros((ts.size, 0), dtype=np.float32), names
    # Cf x (T,) -> (T, Cf)
    return np.stack(cols, axis=1).astype(np.float32), names


def _fmt(t: Any) -> str:
    return str(pd.Timestamp(t))


def _listing(names: Sequence[str], limit: int = 20) -> str:
    return listing(names, limit)
