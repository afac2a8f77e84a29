"""Time series for forecasting: the containers (`SeriesData`, one series; `SeriesFrame`, what the
CSV reader returns, many series with their column names and timestamps).

The rest of the one pipeline: :mod:`.series_csv` (the reader), :mod:`.calendar` (frequencies,
calendar features), :mod:`.splits` (train/validation/test), :class:`seqshape.data.scaling.Scaling`
(per-series standardisation, fitted on the training part), :mod:`.windows` (windows and their
gathering). Their public names are importable from here too.

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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, ShapeError
from ..shapes import as_float32_2d
from .calendar import _fmt, _listing, calendar_features, date_range, future_timestamps, parse_freq
from .cells import beyond_float32, float32_message


@dataclass
class SeriesData:
    """One series' arrays, all with the same number of rows T."""

    target: np.ndarray  # (T, O)
    past_cov: np.ndarray | None = None  # (T, Cp)
    future_cov: np.ndarray | None = None  # (T, Cf)
    name: str = "series"
    timestamps: np.ndarray | None = None
    static: np.ndarray | None = None  # (C_s,) per-series constants (static covariates)

    def __post_init__(self) -> None:
        self.target = _as_2d(self.target, f"{self.name}.target")
        T = len(self.target)
        if self.static is not None:
            try:
                v = np.asarray(self.static, dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(
                    f"{self.name}.static: expected (C_s,) numbers, got {self.static!r}"
                ) from None
            if v.ndim != 1 or not np.isfinite(v).all() or beyond_float32(v) is not None:
                raise DataError(f"{self.name}.static: expected (C_s,) finite numbers, got {v!r}")
            self.static = v.astype(np.float32)
        for attr in ("past_cov", "future_cov"):
            v = getattr(self, attr)
            if v is None:
                setattr(self, attr, np.zeros((T, 0), np.float32))
            else:
                v = _as_2d(v, f"{self.name}.{attr}")
                if len(v) != T:
                    raise ShapeError(
                        f"{self.name}.{attr}: expected {T} rows like the target, got {len(v)}"
                    )
                setattr(self, attr, v)

    @property
    def z(self) -> np.ndarray:
        """(T, O+Cp): the values the model predicts and feeds back."""
        return np.concatenate([self.target, self.past_cov], axis=1)


def _as_2d(a, name: str) -> np.ndarray:
    return as_float32_2d(a, name, columns="O")


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

    def to_series(self) -> list[SeriesData]:
        """One `SeriesData` per series (named by its id, with its timestamps): what the
        forecaster, its backtest and the detector read."""
        return [
            SeriesData(target=t, past_cov=p, future_cov=f, name=str(sid), timestamps=ts)
            for sid, t, p, f, ts in zip(
                self.series_ids, self.target, self.past_cov, self.future_cov, self.timestamps
            )
        ]

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


# the rest of the pipeline, importable from here as before (imported last: they use the containers)
from .calendar import (  # noqa: E402
    calendar_kind,
    infer_freq,
)
from .series_csv import MISSING_MODES, MISSING_TOKENS, read_series_csv  # noqa: E402
from .splits import (  # noqa: E402
    ETT_COUNTS_HOURLY,
    ETT_MONTH_HOURS,
    Splits,
    ett_split,
    split_by_counts,
    split_by_dates,
    split_by_fraction,
)

__all__ = [
    "ETT_COUNTS_HOURLY",
    "ETT_MONTH_HOURS",
    "MISSING_MODES",
    "MISSING_TOKENS",
    "SeriesData",
    "SeriesFrame",
    "Splits",
    "calendar_features",
    "calendar_kind",
    "check_history_length",
    "date_range",
    "ett_split",
    "from_arrays",
    "future_timestamps",
    "infer_freq",
    "parse_freq",
    "read_series_csv",
    "split_by_counts",
    "split_by_dates",
    "split_by_fraction",
]
