"""Time series for forecasting: the container, the CSV reader, calendar features, splits, scaling.

A :class:`SeriesFrame` holds one or many series with aligned columns. Series ``i`` has
``T_i`` steps and three blocks of columns (legend: ``O`` targets, ``C`` covariates)::

    target[i]      (T_i, O)   what is forecast
    past_cov[i]    (T_i, Cp)  known only up to the forecast origin (Cp may be 0)
    future_cov[i]  (T_i, Cf)  known ahead, e.g. calendar features (Cf may be 0)

Two CSV layouts are read by :func:`read_series_csv` (see docs/forecast-data.md):

- wide: one time column and value columns, one series per file (ETTh1, AirPassengers, NAB);
- long: a ``series_id`` column (or ``series_column=``), a time column and value columns; the
  rows of each id form one series (ids may interleave; each id's rows must be in time order).

Every error names the file, the 1-based line and the column, what was expected and what came.
Time is never shuffled: the splits cut each series at index boundaries, and the scaler is fitted
on the training part only.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, ShapeError
from .cells import (
    MAX_TIME_CHARS,
    TIME_MAX,
    TIME_MIN,
    beyond_float32,
    csv_records,
    float32_message,
    listing,
    outside_time_range,
    shown,
    time_range_message,
)

PathLike = str | os.PathLike

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

# The ETTh1/ETTh2 convention of Zhou et al., "Informer: Beyond Efficient Transformer for Long
# Sequence Time-Series Forecasting" (AAAI 2021), kept by Wu et al., "Autoformer" (NeurIPS 2021)
# and Zeng et al. (AAAI 2023): 12 months of 30 days train, 4 months validation, 4 months test.
ETT_MONTH_HOURS = 30 * 24
ETT_COUNTS_HOURLY = (12 * ETT_MONTH_HOURS, 4 * ETT_MONTH_HOURS, 4 * ETT_MONTH_HOURS)


# ---------------------------------------------------------------------------------------------
# the container


@dataclass
class SeriesFrame:
    """One or many time series with aligned columns (see the module docstring for the shapes).

    ``freq`` is the step shared by every series (grammar in :func:`parse_freq`; the median step
    when steps are irregular; None when unknown or when series disagree). ``calendar_names``
    lists the future covariates that are calendar features derived from the timestamps at
    ``freq`` — always the last columns of ``future_cov`` — so they can be extended past the end
    of a series with :meth:`future_cov_ahead`.
    """

    series_ids: list[str]
    timestamps: list[np.ndarray]
    target: list[np.ndarray]
    past_cov: list[np.ndarray]
    future_cov: list[np.ndarray]
    target_names: list[str]
    past_cov_names: list[str]
    future_cov_names: list[str]
    source: str
    freq: str | None = None
    calendar_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.series_ids)
        if n == 0:
            raise ShapeError("series_ids: expected at least one series, got none")
        if len(set(self.series_ids)) != n:
            dup = next(s for s in self.series_ids if self.series_ids.count(s) > 1)
            raise DataError(f"series_ids: expected unique ids, got {dup!r} twice")
        for label in ("timestamps", "target", "past_cov", "future_cov"):
            got = len(getattr(self, label))
            if got != n:
                raise ShapeError(f"{label}: expected {n} arrays (one per series), got {got}")
        blocks = (
            ("target", self.target_names),
            ("past_cov", self.past_cov_names),
            ("future_cov", self.future_cov_names),
        )
        for label, names in blocks:
            for i, a in enumerate(getattr(self, label)):
                k = None if np.asarray(a).dtype == np.float32 else beyond_float32(a)
                if k is not None:  # before the cast, which would make it inf with a warning
                    wide = np.asarray(a, dtype=np.float64)
                    at = np.unravel_index(k, wide.shape)
                    where = f"row {at[0]}, column {at[1]}" if wide.ndim == 2 else f"element {k}"
                    msg = float32_message(repr(float(wide.flat[k])))
                    raise DataError(f"{label}[{i}] {where}: {msg}")
            arrays = [np.asarray(a, dtype=np.float32) for a in getattr(self, label)]
            for i, a in enumerate(arrays):
                if a.ndim != 2 or a.shape[1] != len(names):
                    raise ShapeError(
                        f"{label}[{i}]: expected (T, {len(names)}) for columns {names}, "
                        f"got {a.shape}"
                    )
            setattr(self, label, arrays)
        if not self.target_names:
            raise ShapeError("target_names: expected at least one target column, got none")
        stamps = []
        for i, ts in enumerate(self.timestamps):
            ts = np.asarray(ts).astype("datetime64[ns]")
            t = self.target[i].shape[0]
            if ts.shape != (t,):
                raise ShapeError(
                    f"timestamps[{i}]: expected ({t},) like target[{i}], got {ts.shape}"
                )
            if t == 0:
                raise ShapeError(f"series {self.series_ids[i]!r}: expected at least one step")
            for label in ("past_cov", "future_cov"):
                if getattr(self, label)[i].shape[0] != t:
                    got = getattr(self, label)[i].shape[0]
                    raise ShapeError(
                        f"{label}[{i}]: expected {t} steps like target[{i}], got {got}"
                    )
            bad = np.flatnonzero(np.diff(ts) <= np.timedelta64(0, "ns"))
            if bad.size:
                j = int(bad[0])
                raise DataError(
                    f"series {self.series_ids[i]!r}: timestamp {_fmt(ts[j + 1])} (step {j + 1}) "
                    f"is not after {_fmt(ts[j])} (step {j})"
                )
            stamps.append(ts)
        self.timestamps = stamps
        k = len(self.calendar_names)
        if k and list(self.future_cov_names[-k:]) != list(self.calendar_names):
            raise ShapeError(
                f"calendar_names: expected the last {k} future covariates, got "
                f"{self.calendar_names} vs future_cov_names {self.future_cov_names}"
            )
        if k and self.freq is None:
            raise ConfigError("freq: calendar features need a frequency, got None")
        if self.freq is not None:
            parse_freq(self.freq)

    # -- sizes ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.series_ids)

    @property
    def lengths(self) -> np.ndarray:
        """(S,) int64: each series' number of steps T_i."""
        return np.array([a.shape[0] for a in self.target], dtype=np.int64)

    @property
    def n_targets(self) -> int:
        """O, the number of target columns."""
        return len(self.target_names)

    @property
    def n_past_cov(self) -> int:
        """Cp, the number of past covariates."""
        return len(self.past_cov_names)

    @property
    def n_future_cov(self) -> int:
        """Cf, the number of future (known-ahead) covariates, calendar features included."""
        return len(self.future_cov_names)

    def index(self, series_id: str) -> int:
        """Position of ``series_id`` in the frame."""
        try:
            return self.series_ids.index(series_id)
        except ValueError:
            raise DataError(
                f"{self.source}: no series {series_id!r} (series: {_listing(self.series_ids)})"
            ) from None

    # -- looking ahead --------------------------------------------------------------------

    def future_timestamps(self, i: int, k: int) -> np.ndarray:
        """(k,) datetime64[ns]: the k steps after the end of series ``i``, at ``self.freq``."""
        if self.freq is None:
            raise DataError(
                f"{self.source}: series {self.series_ids[i]!r} has no known frequency; "
                "cannot place future timestamps"
            )
        return future_timestamps(self.timestamps[i], k, freq=self.freq)

    def future_cov_ahead(self, i: int, k: int, known: np.ndarray | None = None) -> np.ndarray:
        """(k, Cf) float32: future covariates for the k steps after the end of series ``i``.

        Calendar columns are computed from the future timestamps; the other (user) columns come
        from ``known``, a ``(k, Cf - n_calendar)`` array the caller must supply when there are any.
        """
        n_cal = len(self.calendar_names)
        n_user = self.n_future_cov - n_cal
        parts = []
        if n_user:
            if known is None:
                raise DataError(
                    f"future covariates {self.future_cov_names[:n_user]} are not calendar "
                    f"features: pass their next {k} values as known=(k, {n_user})"
                )
            known = np.asarray(known, dtype=np.float32)
            if known.shape != (k, n_user):
                raise ShapeError(f"known: expected ({k}, {n_user}), got {known.shape}")
            parts.append(known)
        elif known is not None and np.asarray(known).size:
            raise ShapeError(f"known: expected nothing (no user future covariates), got {known}")
        if n_cal:
            cal, _ = calendar_features(self.future_timestamps(i, k), freq=self.freq)
            parts.append(cal)
        if not parts:
            # (k, 0): no future covariates at all
            return np.zeros((k, 0), dtype=np.float32)
        # (k, Cf_user) + (k, Cf_cal) -> (k, Cf)
        return np.concatenate(parts, axis=1)


def from_arrays(
    target: np.ndarray | Sequence[np.ndarray],
    *,
    timestamps: Sequence[np.ndarray] | np.ndarray | None = None,
    start: str = "2000-01-01",
    freq: str | None = None,
    past_cov: Sequence[np.ndarray] | np.ndarray | None = None,
    future_cov: Sequence[np.ndarray] | np.ndarray | None = None,
    series_ids: Sequence[str] | None = None,
    target_names: Sequence[str] | None = None,
    past_cov_names: Sequence[str] | None = None,
    future_cov_names: Sequence[str] | None = None,
    calendar: bool = False,
    source: str = "<arrays>",
) -> SeriesFrame:
    """Build a SeriesFrame from arrays: one ``(T, O)`` array (or ``(T,)``) or a list of them.

    Without ``timestamps`` each series gets ``start, start + freq, ...`` (``freq`` defaults to
    ``"h"``); with them, ``freq`` defaults to the first series' inferred step. ``calendar=True``
    appends calendar features (see :func:`calendar_features`) to the future covariates.
    """

    def as_list(x: Any) -> list[np.ndarray] | None:
        if x is None:
            return None
        if isinstance(x, np.ndarray) and x.dtype != object:
            x = [x]
        # float64 here: SeriesFrame checks the float32 range before it casts
        return [np.asarray(a, dtype=np.float64) for a in x]

    targets = as_list(target)
    assert targets is not None
    targets = [a[:, None] if a.ndim == 1 else a for a in targets]
    s = len(targets)
    if timestamps is None:
        freq = freq or "h"
        stamps = [date_range(start, a.shape[0], freq) for a in targets]
    else:
        if isinstance(timestamps, np.ndarray) and timestamps.ndim == 1 and s == 1:
            timestamps = [timestamps]
        stamps = [np.asarray(t).astype("datetime64[ns]") for t in timestamps]
        if freq is None and stamps and stamps[0].size >= 2:
            freq = infer_freq(stamps[0], strict=False)
    o = targets[0].shape[1]

    def block(x: Any) -> list[np.ndarray]:
        arrays = as_list(x)
        if arrays is None:
            return [np.zeros((a.shape[0], 0), dtype=np.float32) for a in targets]
        return [a[:, None] if a.ndim == 1 else a for a in arrays]

    past = block(past_cov)
    fut = block(future_cov)
    pnames = list(past_cov_names or [f"past_{j}" for j in range(past[0].shape[1])])
    fnames = list(future_cov_names or [f"future_{j}" for j in range(fut[0].shape[1])])
    cal_names: list[str] = []
    if calendar:
        cals = [calendar_features(ts, freq=freq) for ts in stamps]
        cal_names = cals[0][1]
        fut = [np.concatenate([f, c], axis=1) for f, (c, _) in zip(fut, cals)]
        fnames = fnames + cal_names
    return SeriesFrame(
        series_ids=list(series_ids or [str(i) for i in range(s)]),
        timestamps=stamps,
        target=targets,
        past_cov=past,
        future_cov=fut,
        target_names=list(target_names or [f"y{j}" for j in range(o)]),
        past_cov_names=pnames,
        future_cov_names=fnames,
        source=source,
        freq=freq,
        calendar_names=cal_names,
    )


# ---------------------------------------------------------------------------------------------
# frequencies and calendar features


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


# ---------------------------------------------------------------------------------------------
# the CSV reader


def read_series_csv(
    path: PathLike,
    *,
    target: Sequence[str] | str,
    past_covariates: Sequence[str] = (),
    future_covariates: Sequence[str] | str = (),
    time_column: str | None = None,
    series_column: str | None = None,
    missing: str = "error",
) -> SeriesFrame:
    """Read a wide or long CSV (plain or gzip) into a SeriesFrame.

    ``target``: the column(s) to forecast. ``past_covariates``: columns known up to the origin.
    ``future_covariates``: columns known ahead; ``"auto"`` (alone, or as one item of the list)
    adds calendar features chosen by the inferred frequency (:func:`calendar_features`).
    Other columns are ignored. ``time_column`` defaults to the first column whose values parse as
    dates and are not plain numbers. ``series_column`` makes the file long (one series per id);
    it defaults to ``series_id`` when such a column exists. ``missing``: ``"error"`` (default)
    or ``"ffill"`` (forward fill within each series and column; a leading gap is back filled).
    Timestamps with a UTC offset are converted to UTC and stored without a zone.
    """
    if missing not in MISSING_MODES:
        raise ConfigError(f"missing: expected one of {', '.join(MISSING_MODES)}, got {missing!r}")
    targets = [target] if isinstance(target, str) else list(target)
    past = [past_covariates] if isinstance(past_covariates, str) else list(past_covariates)
    fut = [future_covariates] if isinstance(future_covariates, str) else list(future_covariates)
    auto = "auto" in fut
    fut = [c for c in fut if c != "auto"]
    if not targets:
        raise ConfigError("target: expected at least one column name, got none")
    roles: dict[str, str] = {}
    for role, cols in (("target", targets), ("past_covariates", past), ("future_covariates", fut)):
        for c in cols:
            if c in roles:
                raise ConfigError(f"{role}: column {c!r} is already used as {roles[c]}")
            roles[c] = role

    name = str(path)
    header, rows, lines = _read_rows(path)
    col = {c: j for j, c in enumerate(header)}
    listing = _listing(header)

    def require(c: str, what: str) -> int:
        if c not in col:
            raise DataError(f"{name} line 1: no {what} column {c!r} (columns: {listing})")
        return col[c]

    if series_column is None and "series_id" in col and "series_id" not in roles:
        series_column = "series_id"
    sid_j = require(series_column, "series") if series_column is not None else None
    value_js = {c: require(c, "value") for c in roles}
    if not rows:
        raise DataError(f"{name}: no data rows after the header (line 1)")
    if time_column is None:
        time_column = _detect_time_column(header, rows, skip={sid_j, *value_js.values()}, name=name)
    time_j = require(time_column, "time")
    for c, j in value_js.items():
        if j in (time_j, sid_j):
            raise ConfigError(f"{roles[c]}: column {c!r} is the time or series column")

    times = _parse_times([r[time_j] for r in rows], lines, name, time_column)
    values = {c: _parse_column([r[j] for r in rows], lines, name, c) for c, j in value_js.items()}

    # group rows by series id, in order of first appearance
    if sid_j is None:
        ids = [Path(name).name.split(".")[0] or name]
        groups = [np.arange(len(rows))]
    else:
        order: dict[str, list[int]] = {}
        for r, row in enumerate(rows):
            sid = row[sid_j].strip()
            if not sid:
                raise DataError(
                    f"{name} line {lines[r]}: column {series_column!r}: empty series id"
                )
            order.setdefault(sid, []).append(r)
        ids = list(order)
        groups = [np.array(v, dtype=np.int64) for v in order.values()]

    stamps, blocks = [], {"target": [], "past": [], "future": []}
    for sid, g in zip(ids, groups):
        ts = times[g]
        bad = np.flatnonzero(np.diff(ts) <= np.timedelta64(0, "ns"))
        if bad.size:
            j = int(bad[0])
            where = f" (series {shown(sid)})" if sid_j is not None else ""
            dup = " (a duplicate)" if ts[j + 1] == ts[j] else ""
            raise DataError(
                f"{name} line {lines[g[j + 1]]}: timestamp {_fmt(ts[j + 1])} is not after "
                f"line {lines[g[j]]}'s {_fmt(ts[j])}{dup}{where}"
            )
        stamps.append(ts)
        for key, cols in (("target", targets), ("past", past), ("future", fut)):
            if cols:
                # C x (T_i,) -> (T_i, C)
                a = np.stack([values[c][g] for c in cols], axis=1)
                a = _fill(a, cols, missing, g, lines, name, sid if sid_j is not None else None)
            else:
                # (T_i, 0): no columns in this block
                a = np.zeros((g.size, 0), dtype=np.float64)
            blocks[key].append(a.astype(np.float32))

    freqs = [infer_freq(ts, strict=False) if ts.size >= 2 else None for ts in stamps]
    freq = freqs[0] if all(f == freqs[0] for f in freqs) else None
    cal_names: list[str] = []
    if auto:
        if freq is None:
            seen = ", ".join(f"{s!r}: {f}" for s, f in zip(ids, freqs))
            raise DataError(
                f"{name}: future_covariates='auto' needs one frequency for every series "
                f"of at least 2 steps, got {seen}"
            )
        for i, ts in enumerate(stamps):
            cal, cal_names = calendar_features(ts, freq=freq)
            # (T_i, Cf_user) + (T_i, Cf_cal) -> (T_i, Cf)
            blocks["future"][i] = np.concatenate([blocks["future"][i], cal], axis=1)

    return SeriesFrame(
        series_ids=ids,
        timestamps=stamps,
        target=blocks["target"],
        past_cov=blocks["past"],
        future_cov=blocks["future"],
        target_names=targets,
        past_cov_names=past,
        future_cov_names=fut + cal_names,
        source=name,
        freq=freq,
        calendar_names=cal_names,
    )


def _read_rows(path: PathLike) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows and each row's 1-based line number; checks every row's field count."""
    name = str(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise DataError(f"{name}: no such file") from None
    except OSError as e:
        raise DataError(f"{name}: cannot open: {e.strerror or e}") from None
    with raw:
        magic = raw.read(2)
        raw.seek(0)
        stream: Any = gzip.GzipFile(fileobj=raw, mode="rb") if magic == b"\x1f\x8b" else raw
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        try:
            records = csv_records(csv.reader(text), name)
            _, header = next(records, (1, None))
            if header is None or not any(h.strip() for h in header):
                raise DataError(f"{name}: empty file (expected a header line)")
            header = [h.strip() for h in header]
            seen: set[str] = set()
            for h in header:
                if not h:
                    raise DataError(f"{name} line 1: empty column name in the header")
                if h in seen:
                    raise DataError(f"{name} line 1: column {h!r} appears twice in the header")
                seen.add(h)
            rows, lines = [], []
            for line, row in records:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{name} line {line}: expected {len(header)} fields "
                        f"({_listing(header)}), got {len(row)}"
                    )
                rows.append(row)
                lines.append(line)
        except UnicodeDecodeError as e:
            raise DataError(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{name}: cannot read (damaged gzip?): {e}") from None
    return header, rows, lines


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _detect_time_column(
    header: list[str], rows: list[list[str]], *, skip: set[int | None], name: str
) -> str:
    sample = rows[:5]
    for j, c in enumerate(header):
        if j in skip or not sample:
            continue
        cells = [r[j].strip() for r in sample]
        if any(not v or _is_number(v) for v in cells):
            continue
        parsed = pd.to_datetime(pd.Index(cells), format="ISO8601", errors="coerce", utc=True)
        if not parsed.isna().any():
            return c
    raise DataError(
        f"{name} line 2: no column parses as timestamps (columns: {_listing(header)}); "
        "pass time_column="
    )


def _parse_times(cells: list[str], lines: list[int], name: str, column: str) -> np.ndarray:
    """(T,) datetime64[ns] from text cells; naive times kept, zoned times converted to UTC."""
    # a cell longer than any timestamp is not parsed at all (pandas' fallback parser takes
    # seconds on a 100,000-character cell): "?" makes it NaT, reported below with its line
    idx = pd.Index([c.strip() if len(c) <= MAX_TIME_CHARS else "?" for c in cells], dtype=object)
    empty = np.flatnonzero(idx == "")
    if empty.size:
        raise DataError(
            f"{name} line {lines[int(empty[0])]}: column {column!r}: expected a timestamp, "
            "got an empty cell"
        )
    parsed = pd.to_datetime(idx, format="ISO8601", errors="coerce", utc=True)
    if parsed.isna().any():
        retry = pd.to_datetime(idx, format="mixed", errors="coerce", utc=True)
        parsed = parsed.where(~parsed.isna(), retry)
    naive = parsed.tz_convert(None)
    # (T,) bool: not a timestamp, or one outside datetime64[ns] (parsed at a coarser unit)
    bad = np.flatnonzero(naive.isna() | (naive < TIME_MIN) | (naive > TIME_MAX))
    if bad.size:
        r = int(bad[0])
        where = f"{name} line {lines[r]}: column {column!r}"
        # pandas < 3 parses in ns and coerces an out-of-range timestamp to NaT
        if not naive.isna()[r] or outside_time_range(cells[r]):
            raise DataError(f"{where}: {time_range_message(cells[r].strip())}")
        raise DataError(f"{where}: expected a timestamp, got {shown(cells[r])}")
    return naive.as_unit("ns").to_numpy()


def _parse_column(cells: list[str], lines: list[int], name: str, column: str) -> np.ndarray:
    """(T,) float64; missing tokens become NaN; other non-numbers raise naming line and column."""
    try:
        # (T,) fast path: numpy parses the strings itself
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        values = np.empty(len(cells), dtype=np.float64)
        for r, cell in enumerate(cells):
            t = cell.strip()
            if t.lower() in MISSING_TOKENS:
                values[r] = np.nan
                continue
            try:
                values[r] = float(t)
            except ValueError:
                raise DataError(
                    f"{name} line {lines[r]}: column {column!r}: expected a number, got {shown(t)}"
                ) from None
    bad = np.flatnonzero(np.isinf(values))
    if bad.size:
        r = int(bad[0])
        raise DataError(
            f"{name} line {lines[r]}: column {column!r}: expected a finite number, "
            f"got {shown(cells[r])}"
        )
    r = beyond_float32(values)  # the frame stores float32: no silent inf, no cast warning
    if r is not None:
        raise DataError(f"{name} line {lines[r]}: column {column!r}: {float32_message(cells[r])}")
    return values


def _fill(
    a: np.ndarray,
    cols: list[str],
    missing: str,
    rows: np.ndarray,
    lines: list[int],
    name: str,
    sid: str | None,
) -> np.ndarray:
    """Check or fill the NaNs of one series' (T_i, C) block."""
    mask = np.isnan(a)
    if not mask.any():
        return a
    where = f" (series {shown(sid)})" if sid is not None else ""
    if missing == "error":
        # first missing cell in file order
        r, j = (int(v) for v in np.argwhere(mask)[0])
        raise DataError(
            f"{name} line {lines[rows[r]]}: column {cols[j]!r}: expected a number, got an "
            f"empty/NaN value{where} (pass missing='ffill' to fill gaps)"
        )
    empty = mask.all(axis=0)
    if empty.any():
        j = int(np.argmax(empty))
        raise DataError(
            f"{name}: column {cols[j]!r} has no value at all{where}; missing='ffill' has "
            "nothing to fill it with"
        )
    return pd.DataFrame(a).ffill().bfill().to_numpy()


def _fmt(t: Any) -> str:
    return str(pd.Timestamp(t))


def _listing(names: Sequence[str], limit: int = 20) -> str:
    return listing(names, limit)


# ---------------------------------------------------------------------------------------------
# splits


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


# ---------------------------------------------------------------------------------------------
# scaling


_BLOCKS = ("target", "past_cov", "future_cov")


class SeriesScaler:
    """Standardise each column, ``(x - mean) / std``, fitted on the training part only.

    ``per_series=True`` keeps one mean/std per series and column; ``False`` pools every series'
    training part into one mean/std per column. The target, past and (user) future covariates
    are scaled separately; calendar columns are left as they are (mean 0, std 1). A constant
    column gets std 1. Series are matched by id, so a fitted scaler applies to any frame whose
    ids it knows (any ids at all when global).
    """

    def __init__(self, *, per_series: bool = True) -> None:
        self.per_series = bool(per_series)
        self.series_ids: list[str] = []
        self.names: dict[str, list[str]] = {}
        self.mean: dict[str, np.ndarray] = {}  # block -> (G, C) float64, G = S or 1
        self.std: dict[str, np.ndarray] = {}

    @property
    def fitted(self) -> bool:
        return bool(self.mean)

    def fit(
        self, frame: SeriesFrame, train_end: Splits | int | Sequence[int] | None = None
    ) -> SeriesScaler:
        """Fit on steps ``[0, train_end)`` of each series (None: the whole series)."""
        s = len(frame)
        if isinstance(train_end, Splits):
            ends = train_end.train_end
        elif train_end is None:
            ends = frame.lengths
        elif np.ndim(train_end) == 0:
            ends = np.full(s, int(train_end), dtype=np.int64)  # type: ignore[arg-type]
        else:
            ends = np.asarray(train_end, dtype=np.int64)
        if ends.shape != (s,):
            raise ShapeError(f"train_end: expected ({s},) one end per series, got {ends.shape}")
        for i, (e, t) in enumerate(zip(ends, frame.lengths)):
            if not 1 <= e <= t:
                raise DataError(
                    f"series {frame.series_ids[i]!r}: train_end {e} is outside 1..{t} "
                    "(the series length)"
                )
        self.series_ids = list(frame.series_ids)
        self.names = {
            "target": list(frame.target_names),
            "past_cov": list(frame.past_cov_names),
            "future_cov": list(frame.future_cov_names),
        }
        n_user = frame.n_future_cov - len(frame.calendar_names)
        for block in _BLOCKS:
            parts = [a[:e].astype(np.float64) for a, e in zip(getattr(frame, block), ends)]
            if self.per_series:
                stats = [_mean_std(p) for p in parts]
            else:
                stats = [_mean_std(np.concatenate(parts, axis=0))]
            # G x (C,) -> (G, C)
            mean = np.stack([m for m, _ in stats]).reshape(len(stats), -1)
            std = np.stack([d for _, d in stats]).reshape(len(stats), -1)
            if block == "future_cov":
                mean[:, n_user:], std[:, n_user:] = 0.0, 1.0
            self.mean[block], self.std[block] = mean, std
        return self

    def _rows(self, series: Any, ndim: int) -> tuple[Any, Any]:
        """Index of the stats rows for ``series`` and a reshape for broadcasting."""
        self._require_fitted()
        if not self.per_series:
            return 0, None
        if series is None:
            raise ConfigError(
                "series: a per-series scaler needs to know which series (id or index)"
            )
        arr = np.asarray(series)
        if arr.dtype.kind in "US":
            idx = np.array([self._index(str(s)) for s in arr.ravel()]).reshape(arr.shape)
        else:
            idx = arr.astype(np.int64)
            if ((idx < 0) | (idx >= len(self.series_ids))).any():
                raise DataError(
                    f"series: index out of range 0..{len(self.series_ids) - 1}, got {series}"
                )
        if idx.ndim == 0:
            return int(idx), None
        return idx, (idx.shape[0],) + (1,) * (ndim - 2)

    def _index(self, sid: str) -> int:
        if sid not in self.series_ids:
            raise DataError(
                f"series {sid!r} was not seen when the per-series scaler was fitted "
                f"(fitted on: {_listing(self.series_ids)})"
            )
        return self.series_ids.index(sid)

    def _apply(self, block: str, x: np.ndarray, series: Any, inverse: bool) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        c = self.mean[block].shape[1] if self.fitted else None
        if x.ndim < 1 or x.shape[-1] != c:
            raise ShapeError(f"{block}: expected (..., {c}) with the columns last, got {x.shape}")
        rows, shape = self._rows(series, x.ndim)
        mean, std = self.mean[block][rows], self.std[block][rows]
        if shape is not None:
            if x.ndim < 2 or x.shape[0] != shape[0]:
                raise ShapeError(f"series: expected {x.shape[0]} series entries, got {shape[0]}")
            # (B, C) -> (B, 1, ..., C): one row of stats per batch entry
            mean = mean.reshape(shape + (c,))
            std = std.reshape(shape + (c,))
        out = x * std + mean if inverse else (x - mean) / std
        return out.astype(np.float32)

    def transform_target(self, y: np.ndarray, series: Any = None) -> np.ndarray:
        """Scale target values ``(..., O)``; ``series``: an id or index, or one per batch row."""
        return self._apply("target", y, series, inverse=False)

    def inverse_target(self, y: np.ndarray, series: Any = None) -> np.ndarray:
        """Undo :meth:`transform_target`, e.g. on forecasts ``(B, K, O)`` with ``series`` (B,)."""
        return self._apply("target", y, series, inverse=True)

    def transform_past(self, x: np.ndarray, series: Any = None) -> np.ndarray:
        return self._apply("past_cov", x, series, inverse=False)

    def transform_future(self, x: np.ndarray, series: Any = None) -> np.ndarray:
        return self._apply("future_cov", x, series, inverse=False)

    def transform(self, frame: SeriesFrame) -> SeriesFrame:
        """A scaled copy of ``frame`` (target, past and user future covariates)."""
        return self._map_frame(frame, inverse=False)

    def inverse_transform(self, frame: SeriesFrame) -> SeriesFrame:
        return self._map_frame(frame, inverse=True)

    def _map_frame(self, frame: SeriesFrame, inverse: bool) -> SeriesFrame:
        self._require_fitted()
        for block, names in (
            ("target", frame.target_names),
            ("past_cov", frame.past_cov_names),
            ("future_cov", frame.future_cov_names),
        ):
            if list(names) != self.names[block]:
                raise DataError(
                    f"{frame.source}: {block} columns {list(names)} differ from the fitted "
                    f"{self.names[block]}"
                )
        out = {}
        for block in _BLOCKS:
            out[block] = [
                self._apply(block, a, sid if self.per_series else None, inverse)
                for a, sid in zip(getattr(frame, block), frame.series_ids)
            ]
        return SeriesFrame(
            series_ids=list(frame.series_ids),
            timestamps=list(frame.timestamps),
            target=out["target"],
            past_cov=out["past_cov"],
            future_cov=out["future_cov"],
            target_names=list(frame.target_names),
            past_cov_names=list(frame.past_cov_names),
            future_cov_names=list(frame.future_cov_names),
            source=frame.source,
            freq=frame.freq,
            calendar_names=list(frame.calendar_names),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state (plain lists and numbers)."""
        self._require_fitted()
        return {
            "kind": "series_standard",
            "per_series": self.per_series,
            "series_ids": list(self.series_ids),
            "names": {b: list(v) for b, v in self.names.items()},
            "mean": {b: self.mean[b].tolist() for b in _BLOCKS},
            "std": {b: self.std[b].tolist() for b in _BLOCKS},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeriesScaler:
        """Rebuild a fitted scaler from :meth:`to_dict` output, checking every field."""
        if not isinstance(d, dict) or d.get("kind") != "series_standard":
            got = d.get("kind") if isinstance(d, dict) else type(d).__name__
            raise ConfigError(f"scaler.kind: expected 'series_standard', got {got!r}")
        sc = cls(per_series=bool(d.get("per_series")))
        ids, names = d.get("series_ids"), d.get("names")
        if not isinstance(ids, list) or not isinstance(names, dict):
            raise ConfigError("scaler: expected series_ids (list) and names (dict)")
        sc.series_ids = [str(s) for s in ids]
        g = len(sc.series_ids) if sc.per_series else 1
        for block in _BLOCKS:
            cols = names.get(block)
            if not isinstance(cols, list):
                raise ConfigError(f"scaler.names.{block}: expected a list of names, got {cols!r}")
            sc.names[block] = [str(c) for c in cols]
            for key, store in (("mean", sc.mean), ("std", sc.std)):
                try:
                    arr = np.array(d[key][block], dtype=np.float64).reshape(g, len(cols))
                except (KeyError, TypeError, ValueError):
                    raise ConfigError(
                        f"scaler.{key}.{block}: expected {g} x {len(cols)} numbers"
                    ) from None
                if not np.isfinite(arr).all() or (key == "std" and (arr <= 0).any()):
                    raise ConfigError(
                        f"scaler.{key}.{block}: expected finite (std: positive) values"
                    )
                store[block] = arr
        return sc

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise ConfigError("SeriesScaler is not fitted: call fit(frame, splits) first")

    def __repr__(self) -> str:
        how = "per-series" if self.per_series else "global"
        state = f"{len(self.series_ids)} series" if self.fitted else "not fitted"
        return f"SeriesScaler({how}, {state})"


def _mean_std(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, C) -> (C,), (C,): mean and population std; constant columns get std 1."""
    if a.shape[1] == 0:
        return np.zeros(0), np.ones(0)
    mean = a.mean(axis=0)
    std = a.std(axis=0)
    std[(a.min(axis=0) == a.max(axis=0)) | (std == 0.0)] = 1.0
    return mean, std


def check_history_length(name: str, n: int, lookback: int, allow_short: bool) -> None:
    """DataError for a history the model cannot read as trained (shared by every runner)."""
    if n < 1:
        raise DataError(f"{name}: expected at least 1 history row, got 0")
    if n < lookback and not allow_short:
        raise DataError(
            f"{name}: the history has {n} rows; this model reads lookback={lookback} rows (the "
            f"window length it was trained on): give at least {lookback}, or allow a shorter "
            f"history explicitly (allow_short=True, --allow-short-history)"
        )
