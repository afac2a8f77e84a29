"""Checks shared by the text readers: what a cell may hold, and CSV failures as one-line errors.

The readers parse numbers as float64 and store them as float32, and store timestamps as
datetime64[ns]; a value outside either range is reported here with its file, line and column,
before a cast could turn it into ``inf`` (with numpy's two-line RuntimeWarning) or raise
pandas' OutOfBoundsDatetime.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError

FLOAT32_MAX = float(np.finfo(np.float32).max)
# The datetime64[ns] range: every timestamp of a series is stored and stepped in nanoseconds.
TIME_MIN, TIME_MAX = pd.Timestamp.min, pd.Timestamp.max
TIME_RANGE = f"{TIME_MIN:%Y-%m-%d} .. {TIME_MAX:%Y-%m-%d}"
# Longer than any timestamp ('2016-07-01T00:00:00.123456789+05:30' is 35 characters).
MAX_TIME_CHARS = 64


def beyond_float32(values: np.ndarray) -> int | None:
    """Index (in C order, flattened) of the first finite value that float32 cannot hold."""
    a = np.asarray(values, dtype=np.float64).ravel()
    with np.errstate(invalid="ignore"):
        # (N,) bool: finite but larger in magnitude than float32's largest number
        big = np.isfinite(a) & (np.abs(a) > FLOAT32_MAX)
    return int(np.argmax(big)) if big.any() else None


def shown(text: str, limit: int = 40) -> str:
    """``repr`` of a cell for an error message, cut to ``limit`` characters when longer."""
    text = text.strip()
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def listing(names: Sequence[str], limit: int = 20, sep: str = ", ") -> str:
    """The first ``limit`` names, each cut to 40 characters, and how many there are in all."""
    listed = sep.join(n if len(n) <= 40 else n[:40] + "..." for n in names[:limit])
    return listed + (f"{sep}... ({len(names)} in all)" if len(names) > limit else "")


def float32_message(text: str) -> str:
    """What follows ``file line N: column C:`` for a number float32 cannot hold."""
    return f"expected a number within float32's range (|x| <= {FLOAT32_MAX:.7g}), got {shown(text)}"


def time_range_message(text: str) -> str:
    """What follows ``file line N: column C:`` for a timestamp outside datetime64[ns]."""
    return f"timestamp {shown(text)} is outside the supported range {TIME_RANGE}"


def outside_time_range(text: str) -> bool:
    """True when ``text`` parses as a timestamp outside the datetime64[ns] range."""
    if len(text) > MAX_TIME_CHARS:
        return False
    try:
        t = pd.Timestamp(text.strip())
    except (ValueError, TypeError, OverflowError):
        return False
    if t is pd.NaT:
        return False
    if t.tzinfo is not None:
        t = t.tz_convert(None)
    return bool(t < TIME_MIN or t > TIME_MAX)


def csv_records(reader: Any, name: str) -> Iterator[tuple[int, list[str]]]:
    """``(line, record)`` for each record of ``csv.reader`` ``reader``, ``line`` being the
    1-based line the record starts on (a quoted field may run over several lines). A csv.Error
    becomes a one-line DataError naming the lines of the record it happened in."""
    done = reader.line_num  # the last line of the record before the one being read
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise csv_error(name, e, done + 1, max(reader.line_num, done + 1)) from None
        line, done = done + 1, reader.line_num
        yield line, row


def csv_error(name: str, error: csv.Error, first: int, last: int) -> DataError:
    """A csv.Error in the record on lines ``first..last`` as a DataError naming them.

    The only field-size failure Python's csv module has is its field limit (131,072 characters
    by default, a process-wide setting the readers leave alone); it most often means a quote
    opened and never closed, so the record ran on over many lines.
    """
    where = f"line {first}" if last <= first else f"lines {first}-{last}"
    text = str(error)
    if "field larger than field limit" in text:
        limit = csv.field_size_limit()
        return DataError(
            f"{name} {where}: a field is longer than {limit:,} characters, the most a CSV "
            "field may hold (is a quote left open?)"
        )
    return DataError(f"{name} {where}: malformed CSV: {text}")
