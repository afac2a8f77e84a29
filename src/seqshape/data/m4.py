"""The M4 competition's file layout: one series a row, padded with empty cells.

A train file holds a header (``"V1","V2",...``) and one row per series: its id, then its values,
the row padded with empty cells to the longest series. A test file has the same ids in the same
order and exactly the horizon's values each (48 for Hourly). No timestamps are given; the
frequency is an option (``season``: 24 hourly, 12 monthly, 4 quarterly, 1 daily, weekly and
yearly, as the competition used it for MASE and its seasonal benchmarks).

Errors name the file and the line (1-based, the header being line 1):
``DataError: Hourly-train.csv line 12: value 'abc' in column 37 is not a number``.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .cells import FLOAT32_MAX, float32_message, shown


@dataclass(frozen=True)
class M4Set:
    """Series of one M4 file: ``ids[i]`` and its ``values[i]`` ((T_i,) float64)."""

    path: Path
    ids: list[str]
    values: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)


def _open_text(path: Path):
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected an M4 CSV file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: not a readable gzip file ({e})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path} line {line}: not UTF-8 text (byte {e.start})") from None


def read_m4(path: str | Path, *, min_length: int = 1) -> M4Set:
    """Read an M4 train or test file (CSV, optionally .gz) into ids and float64 value arrays.

    Each row must be an id followed by numbers, then only empty cells; ids must be unique.
    """
    path = Path(path)
    text = _open_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    ids: list[str] = []
    values: list[np.ndarray] = []
    seen: dict[str, int] = {}
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file, expected a header and one series a row")
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            sid = row[0].strip()
            if not sid:
                raise DataError(f"{path} line {line}: the first cell (the series id) is empty")
            if sid in seen:
                raise DataError(f"{path} line {line}: series id {sid!r} repeats line {seen[sid]}")
            seen[sid] = line
            cells = [c.strip() for c in row[1:]]
            while cells and not cells[-1]:
                cells.pop()
            if len(cells) < min_length:
                raise DataError(
                    f"{path} line {line}: series {sid!r}: expected at least {min_length} "
                    f"values, got {len(cells)}"
                )
            out = np.empty(len(cells), dtype=np.float64)
            for j, c in enumerate(cells):
                col = j + 2
                if not c:
                    raise DataError(
                        f"{path} line {line}: series {sid!r}: empty cell in column {col} "
                        "before the row's last value (only trailing cells may be empty)"
                    )
                try:
                    v = float(c)
                except ValueError:
                    raise DataError(
                        f"{path} line {line}: series {shown(sid)}: value {shown(c)} in column "
                        f"{col} is not a number"
                    ) from None
                if not math.isfinite(v):
                    raise DataError(
                        f"{path} line {line}: series {shown(sid)}: value {shown(c)} in column "
                        f"{col}: expected a finite number"
                    )
                if abs(v) > FLOAT32_MAX:
                    raise DataError(
                        f"{path} line {line}: series {shown(sid)}: column {col}: "
                        + float32_message(c)
                    )
                out[j] = v
            ids.append(sid)
            values.append(out)
    except csv.Error as e:
        raise DataError(f"{path} line {reader.line_num}: not valid CSV ({e})") from None
    if not ids:
        raise DataError(f"{path}: no series (expected one series a row after the header)")
    return M4Set(path=path, ids=ids, values=values)


def read_m4_pair(train: str | Path, test: str | Path, *, horizon: int) -> tuple[M4Set, M4Set]:
    """A train file and its test file; the test must hold the same ids in the same order with
    exactly ``horizon`` values each."""
    tr = read_m4(train)
    te = read_m4(test)
    if len(te) != len(tr):
        raise DataError(f"{te.path}: expected {len(tr)} series as in {tr.path}, got {len(te)}")
    lines = _data_lines(te.path)
    for i, (a, b) in enumerate(zip(tr.ids, te.ids)):
        if a != b:
            raise DataError(
                f"{te.path} line {lines[i]}: expected series {a!r} (row {i + 1} of {tr.path}), "
                f"got {b!r}"
            )
        if te.values[i].size != horizon:
            raise DataError(
                f"{te.path} line {lines[i]}: series {b!r}: expected {horizon} values "
                f"(the horizon), got {te.values[i].size}"
            )
    return tr, te


def _data_lines(path: Path) -> list[int]:
    """The line number of each non-blank data row (header = line 1)."""
    reader = csv.reader(io.StringIO(_open_text(path), newline=""))
    next(reader, None)
    return [reader.line_num for row in reader if row and any(c.strip() for c in row)]
