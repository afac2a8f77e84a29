"""The time-series CSV reader (wide or long layout; see docs/forecast-data.md): every error
names the file, the 1-based line and the column, what was expected and what came."""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from .calendar import _fmt, _listing, calendar_features, infer_freq
from .cells import (
    MAX_TIME_CHARS,
    TIME_MAX,
    TIME_MIN,
    beyond_float32,
    csv_records,
    float32_message,
    outside_time_range,
    shown,
    time_range_message,
)
from .series import SeriesFrame

PathLike = str | os.PathLike

MISSING_MODES = ("error", "ffill")
# Cells read as a missing value (compared after strip + lower-case).
MISSING_TOKENS = frozenset({"", "nan", "na", "null", "none"})


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


def read_static_columns(
    path: PathLike,
    columns: Sequence[str],
    *,
    series_column: str | None = None,
    optional: bool = False,
) -> dict[str, np.ndarray]:
    """Static covariates from a wide or long CSV: ``columns`` hold one constant per series ->
    {series id: (C_s,) float32}, the ids as `read_series_csv` names the series. A missing cell or
    a value that changes within a series is a DataError naming the file, series and line.
    ``optional``: a file with none of the columns gives {} (a model's own table applies)."""
    name = str(path)
    header, rows, lines = _read_rows(path)
    col = {c: j for j, c in enumerate(header)}
    missing = [c for c in columns if c not in col]
    if optional and len(missing) == len(columns):
        return {}
    if missing:
        raise DataError(
            f"{name} line 1: no static covariate column(s) {missing} ({_listing(header)})"
        )
    if series_column is None and "series_id" in col:
        series_column = "series_id"
    if series_column is not None and series_column not in col:
        raise DataError(f"{name} line 1: no series column {series_column!r} ({_listing(header)})")
    first: dict[str, int] = {}  # series id -> the index of its first row
    ids = [
        rows[r][col[series_column]].strip() if series_column is not None else None
        for r in range(len(rows))
    ]
    stem = Path(name).name.split(".")[0] or name
    ids = [stem if i is None else i for i in ids]
    values = np.stack(
        [_parse_column([r[col[c]] for r in rows], lines, name, c) for c in columns], axis=1
    )  # (rows, C_s)
    for r, sid in enumerate(ids):
        f = first.setdefault(sid, r)
        for j, c in enumerate(columns):
            v, v0 = values[r, j], values[f, j]
            if np.isnan(v):
                raise DataError(
                    f"{name} line {lines[r]}: static covariate {c!r} of series {shown(sid)}: "
                    "expected a number, got a missing value"
                )
            if v != v0:
                raise DataError(
                    f"{name} line {lines[r]}: static covariate {c!r} of series {shown(sid)} "
                    f"changes from {v0:g} (line {lines[f]}) to {v:g}; expected one value per series"
                )
    return {sid: values[r].astype(np.float32) for sid, r in first.items()}
