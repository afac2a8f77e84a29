"""Variable-length multivariate sequences: the container, the file readers, the array checks.

A data set for many-to-one work is a list of ``(T_i, F)`` float32 arrays (each sequence keeps
its own length ``T_i``; nothing is padded here) with one label per sequence. Two file formats
are read (see docs/data-formats.md):

- ``.ts`` — the UEA/sktime time-series classification format, one case per line;
- long CSV — one row per time step: ``sequence_id, step, <feature columns...>[, label]``.

Either may be gzip-compressed (detected from the file's first bytes). Every error names the
file, the 1-based line and the dimension or column, what was expected and what came.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, ShapeError
from ..shapes import check_feature_counts
from .cells import beyond_float32, csv_records, float32_message, listing, shown

MISSING_MODES = ("error", "ffill", "zero")
# Cells read as a missing value (compared after strip + lower-case); "nan" also parses as NaN.
MISSING_TOKENS = frozenset({"", "?", "nan", "na"})
SUFFIXES = (".ts", ".ts.gz", ".csv", ".csv.gz")

PathLike = str | os.PathLike


@dataclass
class SequenceSet:
    """Sequences of one feature count, with optional labels.

    ``X[i]`` is a ``(T_i, F)`` float32 array with ``T_i >= 1``; ``y[i]`` its label as a string
    (or ``y`` is None); ``ids[i]`` its id. ``class_names`` is the declared label order of a .ts
    file's ``@classLabel`` header, else the sorted unique labels (numeric labels sort by value).
    """

    X: list[np.ndarray]
    y: list[str] | None
    ids: list[str]
    source: str
    class_names: list[str] | None = None

    def __post_init__(self) -> None:
        check_feature_counts(self.X, name="X")
        self.X = [np.asarray(a, dtype=np.float32) for a in self.X]
        n = len(self.X)
        if len(self.ids) != n:
            raise ShapeError(f"ids: expected {n} ids (one per sequence of X), got {len(self.ids)}")
        if self.y is None:
            return
        if len(self.y) != n:
            raise ShapeError(f"y: expected {n} labels (one per sequence of X), got {len(self.y)}")
        if self.class_names is None:
            self.class_names = sorted_labels(self.y)
        else:
            known = set(self.class_names)
            for i, label in enumerate(self.y):
                if label not in known:
                    raise DataError(
                        f"y[{i}]: label {label!r} is not one of the class names {self.class_names}"
                    )

    @property
    def n_features(self) -> int:
        """F, the feature count shared by every sequence."""
        return int(self.X[0].shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """(B,) int64: each sequence's number of steps T_i."""
        return np.array([a.shape[0] for a in self.X], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.X)


def sorted_labels(labels: Sequence[str]) -> list[str]:
    """Unique labels in order: by numeric value when every label is a number, else as text."""
    unique = set(labels)
    try:
        return sorted(unique, key=lambda s: (float(s), s))
    except ValueError:
        return sorted(unique)


def check_missing_mode(missing: str) -> None:
    if missing not in MISSING_MODES:
        raise ConfigError(f"missing: expected one of {', '.join(MISSING_MODES)}, got {missing!r}")


# ---------------------------------------------------------------------------------------------
# shared helpers


def _open_text(path: PathLike) -> io.TextIOBase:
    """Open ``path`` as UTF-8 text, decompressing gzip when its first bytes say so."""
    name = str(path)
    try:
        raw: Any = open(path, "rb")  # closed with the returned wrapper
        if raw.read(2) == b"\x1f\x8b":
            raw.close()
            raw = gzip.open(path, "rb")
        else:
            raw.seek(0)
    except FileNotFoundError:
        raise DataError(f"{name}: no such file") from None
    except OSError as e:
        raise DataError(f"{name}: cannot open: {e.strerror or e}") from None
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline=None)


def _read_guarded(path: PathLike, parse: Callable[[io.TextIOBase], Any]) -> Any:
    """Run ``parse`` on the opened file; turn decoding/decompression failures into DataError."""
    name = str(path)
    with _open_text(path) as f:
        try:
            return parse(f)
        except UnicodeDecodeError as e:
            raise DataError(f"{name}: not UTF-8 text ({e.reason})") from None
        except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            raise DataError(f"{name}: cannot read (damaged gzip?): {e}") from None


def _parse_numbers(tokens: Sequence[str], where: Callable[[int], str]) -> np.ndarray:
    """Parse number tokens; missing tokens become NaN. ``where(k)`` locates token k for errors."""
    try:
        # (T,) fast path: numpy parses the strings itself
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        values = np.empty(len(tokens), dtype=np.float64)
        for k, tok in enumerate(tokens):
            t = tok.strip()
            if t.lower() in MISSING_TOKENS:
                values[k] = np.nan
                continue
            try:
                values[k] = float(t)
            except ValueError:
                raise DataError(f"{where(k)}: expected a number, got {shown(t)}") from None
    bad = np.isinf(values)
    if bad.any():
        k = int(np.argmax(bad))
        raise DataError(f"{where(k)}: expected a finite number, got {shown(tokens[k])}")
    k = beyond_float32(values)  # stored as float32: no silent inf, no cast warning
    if k is not None:
        raise DataError(f"{where(k)}: {float32_message(tokens[k])}")
    return values


def _fill_missing(a: np.ndarray, mode: str, feature_where: Callable[[int], str]) -> np.ndarray:
    """Fill the NaNs of one (T, F) sequence in place by ``mode`` ("ffill" or "zero")."""
    mask = np.isnan(a)
    if not mask.any():
        return a
    if mode == "zero":
        a[mask] = 0.0
        return a
    empty = mask.all(axis=0)
    if empty.any():
        j = int(np.argmax(empty))
        raise DataError(
            f"{feature_where(j)} is entirely missing; missing='ffill' has no value to fill it with"
        )
    t = a.shape[0]
    steps = np.arange(t)[:, None]
    cols = np.arange(a.shape[1])[None, :]
    # (T, F): index of the last valid step at or before each step (-1 before the first one)
    last = np.maximum.accumulate(np.where(mask, -1, steps), axis=0)
    # (T, F): index of the first valid step at or after each step (T after the last one)
    nxt = np.minimum.accumulate(np.where(mask, t, steps)[::-1], axis=0)[::-1]
    # (T, F): forward fill, and back fill the leading gap
    src = np.where(last >= 0, last, nxt)
    return a[src, cols]


# ---------------------------------------------------------------------------------------------
# .ts (UEA / sktime)

_BOOL_HEADERS = ("timestamps", "missing", "univariate", "equallength")
_KNOWN_HEADERS = (
    "problemname",
    "timestamps",
    "missing",
    "univariate",
    "dimensions",
    "equallength",
    "serieslength",
    "classlabel",
    "data",
)


def _ts_bool(name: str, lineno: int, tag: str, value: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise DataError(f"{name} line {lineno}: @{tag} expects true or false, got {shown(value)}")
    return v == "true"


def _ts_int(name: str, lineno: int, tag: str, value: str) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        n = 0
    if n < 1:
        raise DataError(
            f"{name} line {lineno}: @{tag} expects a positive integer, got {shown(value)}"
        )
    return n


def read_ts(path: PathLike, *, missing: str = "error") -> SequenceSet:
    """Read a UEA/sktime ``.ts`` file (plain or gzip) into a SequenceSet.

    Each case line holds the dimensions separated by ``:`` (values by ``,``) and, when the header
    says ``@classLabel true``, the label as the last ``:`` field. ``missing`` says what to do with
    ``?``/NaN/empty values: "error" (default), "ffill" (forward fill within each sequence and
    feature, then back fill the leading gap) or "zero".
    """
    check_missing_mode(missing)
    name = str(path)
    return _read_guarded(path, lambda f: _parse_ts(f, name, missing))


def _parse_ts(f: io.TextIOBase, name: str, missing: str) -> SequenceSet:
    dims: int | None = None
    univariate: bool | None = None
    equal_length = False
    series_length: int | None = None
    labelled = False
    declared: list[str] = []
    declared_set: set[str] = set()
    in_data = False

    X: list[np.ndarray] = []
    y: list[str] = []
    first_len: tuple[int, int] | None = None  # (steps, line) of the first case

    for lineno, raw in enumerate(f, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise DataError(
                    f"{name} line {lineno}: expected a '#' comment or an '@' header before @data, "
                    "got data — is the @data line missing?"
                )
            tag, _, rest = line[1:].partition(" ")
            key = tag.lower()
            if key not in _KNOWN_HEADERS:
                if key == "targetlabel":
                    raise DataError(
                        f"{name} line {lineno}: @targetLabel (regression .ts files) is not "
                        "supported; seqshape reads classification .ts files"
                    )
                raise DataError(f"{name} line {lineno}: unknown header {shown('@' + tag)}")
            if key in _BOOL_HEADERS:
                flag = _ts_bool(name, lineno, tag, rest)
                if key == "timestamps" and flag:
                    raise DataError(
                        f"{name} line {lineno}: @timeStamps true is not supported "
                        "(expected plain values, no (time,value) pairs)"
                    )
                if key == "univariate":
                    univariate = flag
                elif key == "equallength":
                    equal_length = flag
            elif key == "dimensions":
                dims = _ts_int(name, lineno, tag, rest)
            elif key == "serieslength":
                series_length = _ts_int(name, lineno, tag, rest)
            elif key == "classlabel":
                words = rest.split()
                if not words:
                    raise DataError(f"{name} line {lineno}: @classLabel expects true or false")
                labelled = _ts_bool(name, lineno, tag, words[0])
                declared = words[1:] if labelled else []
                declared_set = set(declared)
                if len(set(declared)) != len(declared):
                    raise DataError(f"{name} line {lineno}: @classLabel repeats a label")
            elif key == "data":
                in_data = True
                if univariate and dims is not None and dims != 1:
                    raise DataError(
                        f"{name}: @univariate true but @dimensions {dims}; expected 1 dimension"
                    )
                if dims is None and univariate:
                    dims = 1
            continue

        if line.startswith("@"):
            raise DataError(f"{name} line {lineno}: expected a case after @data, got a header")
        fields = line.split(":")
        label = None
        if labelled:
            label = fields.pop().strip()
        if dims is None:  # no @dimensions header: the first case decides
            if not fields:
                raise DataError(f"{name} line {lineno}: empty case (no values)")
            dims = len(fields)
        if len(fields) != dims:
            what = f"{dims} dimensions" + (" and a class label" if labelled else "")
            got = len(fields) + (1 if labelled else 0)
            raise DataError(
                f"{name} line {lineno}: expected {what} "
                f"({dims + (1 if labelled else 0)} ':'-separated fields), got {got} fields"
            )
        if labelled:
            if not label:
                raise DataError(f"{name} line {lineno}: empty class label")
            if declared_set and label not in declared_set:
                raise DataError(
                    f"{name} line {lineno}: label {shown(label)} is not one of the declared "
                    f"@classLabel values {listing(declared, sep=' ')}"
                )
        tokens = [fld.split(",") if fld.strip() else [] for fld in fields]
        counts = [len(t) for t in tokens]
        if max(counts) == 0:
            raise DataError(f"{name} line {lineno}: empty case (no values)")
        for d, c in enumerate(counts):
            if c != counts[0]:
                raise DataError(
                    f"{name} line {lineno}: dimension {d + 1} has {c} values, "
                    f"dimension 1 has {counts[0]}"
                )
        steps = counts[0]
        if equal_length:
            if first_len is None:
                first_len = (steps, lineno)
            if series_length is not None and steps != series_length:
                raise DataError(
                    f"{name} line {lineno}: expected {series_length} steps (@seriesLength), "
                    f"got {steps}"
                )
            if steps != first_len[0]:
                raise DataError(
                    f"{name} line {lineno}: @equalLength true but this case has {steps} steps, "
                    f"line {first_len[1]} has {first_len[0]}"
                )
        cols = [
            _parse_numbers(
                tok,
                lambda k, d=d, n=lineno: f"{name} line {n}: dimension {d + 1}, value {k + 1}",
            )
            for d, tok in enumerate(tokens)
        ]
        # F x (T,) -> (T, F): one column per dimension
        a = np.stack(cols, axis=1)
        if missing == "error":
            mask = np.isnan(a)
            if mask.any():
                k, d = (int(i) for i in np.argwhere(mask)[0])
                raise DataError(
                    f"{name} line {lineno}: dimension {d + 1}, value {k + 1} is missing "
                    "(pass missing='ffill' or missing='zero' to fill it)"
                )
        else:
            a = _fill_missing(a, missing, lambda d, n=lineno: f"{name} line {n}: dimension {d + 1}")
        X.append(a.astype(np.float32))
        if label is not None:
            y.append(label)

    if not in_data:
        raise DataError(f"{name}: no @data line (expected '@data' before the cases)")
    if not X:
        raise DataError(f"{name}: no cases after @data")
    return SequenceSet(
        X=X,
        y=y if labelled else None,
        ids=[str(i) for i in range(len(X))],
        source=name,
        class_names=(declared or None) if labelled else None,
    )


# ---------------------------------------------------------------------------------------------
# long CSV


def read_long_csv(path: PathLike, *, missing: str = "error") -> SequenceSet:
    """Read a long-format CSV (plain or gzip): one row per time step of one sequence.

    Header (line 1): ``sequence_id``, ``step``, one or more feature columns, optional ``label``.
    A sequence's rows are ordered by ``step`` (they need not be sorted or contiguous in the
    file); sequences keep the order of their first row. ``missing`` as in :func:`read_ts`.
    """
    check_missing_mode(missing)
    name = str(path)
    return _read_guarded(path, lambda f: _parse_long_csv(f, name, missing))


def _parse_long_csv(f: io.TextIOBase, name: str, missing: str) -> SequenceSet:
    records = csv_records(csv.reader(f), name)
    _, header = next(records, (1, None))
    if header is None:
        raise DataError(f"{name}: empty file (expected a header line)")
    header = [h.strip() for h in header]
    if "sequence_id" not in header or "step" not in header:
        raise DataError(
            f"{name} line 1: expected a header with columns sequence_id, step, features "
            f"[, label], got {header}"
        )
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise DataError(f"{name} line 1: column {h!r} appears twice in the header")
        seen.add(h)
    i_id, i_step = header.index("sequence_id"), header.index("step")
    i_label = header.index("label") if "label" in header else None
    feat_idx = [i for i, h in enumerate(header) if h not in ("sequence_id", "step", "label")]
    if not feat_idx:
        raise DataError(f"{name} line 1: expected at least one feature column, got {header}")
    features = [header[i] for i in feat_idx]

    # per sequence: row lines, steps, feature rows; first label and its line
    order: list[str] = []
    lines: dict[str, list[int]] = {}
    steps: dict[str, list[float]] = {}
    rows: dict[str, list[np.ndarray]] = {}
    labels: dict[str, tuple[str, int]] = {}

    for lineno, row in records:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            raise DataError(
                f"{name} line {lineno}: expected {len(header)} fields (as in the header), "
                f"got {len(row)}"
            )
        sid = row[i_id].strip()
        if not sid:
            raise DataError(f"{name} line {lineno}: empty sequence_id")
        step_text = row[i_step].strip()
        try:
            step = float(step_text)
        except ValueError:
            step = float("nan")
        if not np.isfinite(step):
            raise DataError(
                f"{name} line {lineno}: column 'step': expected a number, got {shown(step_text)}"
            )
        if i_label is not None:
            label = row[i_label].strip()
            if not label:
                raise DataError(f"{name} line {lineno}: column 'label' is empty")
            if sid in labels and labels[sid][0] != label:
                first, first_line = labels[sid]
                raise DataError(
                    f"{name} line {lineno}: sequence {shown(sid)} has label {shown(label)} here "
                    f"but {shown(first)} on line {first_line} (one label per sequence)"
                )
            labels.setdefault(sid, (label, lineno))
        # (F,): this step's features, NaN where missing
        values = _parse_numbers(
            [row[i] for i in feat_idx],
            lambda k, n=lineno: f"{name} line {n}: column {features[k]!r}",
        )
        if missing == "error" and np.isnan(values).any():
            k = int(np.argmax(np.isnan(values)))
            raise DataError(
                f"{name} line {lineno}: column {features[k]!r} is missing "
                "(pass missing='ffill' or missing='zero' to fill it)"
            )
        if sid not in lines:
            order.append(sid)
            lines[sid], steps[sid], rows[sid] = [], [], []
        lines[sid].append(lineno)
        steps[sid].append(step)
        rows[sid].append(values)

    if not order:
        raise DataError(f"{name}: no data rows after the header")

    X: list[np.ndarray] = []
    for sid in order:
        st = np.asarray(steps[sid])
        ln = np.asarray(lines[sid])
        by_step = np.argsort(st, kind="stable")
        st, ln = st[by_step], ln[by_step]
        dup = np.flatnonzero(st[1:] == st[:-1])
        if dup.size:
            j = int(dup[0])
            a_line, b_line = sorted((int(ln[j]), int(ln[j + 1])))
            raise DataError(
                f"{name} line {b_line}: sequence {shown(sid)} repeats step {st[j]:g} "
                f"(also on line {a_line})"
            )
        # T x (F,) -> (T, F): the sequence's rows in step order
        a = np.stack(rows[sid])[by_step]
        if missing != "error":
            span = f"lines {int(ln.min())}-{int(ln.max())}"
            a = _fill_missing(
                a,
                missing,
                lambda k, s=sid, sp=span: f"{name} {sp}: sequence {s!r}, column {features[k]!r}",
            )
        X.append(a.astype(np.float32))

    y = [labels[sid][0] for sid in order] if i_label is not None else None
    return SequenceSet(X=X, y=y, ids=list(order), source=name)


# ---------------------------------------------------------------------------------------------
# dispatch and in-memory arrays


def read_sequences(path: PathLike, *, missing: str = "error") -> SequenceSet:
    """Read ``.ts``/``.ts.gz`` with :func:`read_ts`, ``.csv``/``.csv.gz`` with :func:`read_long_csv`."""
    check_missing_mode(missing)
    lower = Path(path).name.lower()
    if lower.endswith((".ts", ".ts.gz")):
        return read_ts(path, missing=missing)
    if lower.endswith((".csv", ".csv.gz")):
        return read_long_csv(path, missing=missing)
    raise DataError(f"{path}: unknown file type; expected a name ending in {', '.join(SUFFIXES)}")


def check_finite(arrays: Sequence[np.ndarray], *, name: str) -> None:
    """Raise DataError naming ``name[i] row j`` at the first NaN or infinite value."""
    for i, a in enumerate(arrays):
        ok = np.isfinite(a)
        if not ok.all():
            j, k = (int(v) for v in np.argwhere(~ok)[0])
            raise DataError(
                f"{name}[{i}] row {j}: expected finite numbers, got {a[j, k]} in feature {k}"
            )


def from_arrays(
    X: Sequence[Any],
    y: Sequence[Any] | None = None,
    *,
    name: str = "X",
    features: int | None = None,
) -> SequenceSet:
    """Check a list of (T_i, F) arrays (and one label per sequence) and wrap it in a SequenceSet.

    Shape problems raise ShapeError naming the first offending index (``X[17]: expected
    (T, F=12), got (20, 11)``); NaN or infinite values raise DataError naming ``X[i] row j``.
    ``features`` fixes the expected F. Labels are kept as strings.
    """
    if isinstance(X, np.ndarray) and X.ndim != 3 and X.dtype != object:
        raise ShapeError(
            f"{name}: expected a list of (T, F) arrays, got one array of shape {X.shape}"
            + (" — wrap a single sequence in a list: [x]" if X.ndim == 2 else "")
        )
    arrays: list[np.ndarray] = []
    for i, a in enumerate(X):
        try:
            wide = np.asarray(a, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise DataError(f"{name}[{i}]: expected an array of numbers ({e})") from None
        k = beyond_float32(wide)  # checked before the float32 cast, which would make it inf
        if k is not None:
            at = np.unravel_index(k, wide.shape)
            where = f"row {at[0]}, feature {at[1]}" if wide.ndim == 2 else f"element {k}"
            raise DataError(f"{name}[{i}] {where}: {float32_message(repr(float(wide.flat[k])))}")
        arrays.append(wide.astype(np.float32))
    check_feature_counts(arrays, name=name, features=features)
    check_finite(arrays, name=name)
    labels: list[str] | None = None
    if y is not None:
        if isinstance(y, np.ndarray) and y.ndim != 1:
            raise ShapeError(f"y: expected (B={len(arrays)},), got {y.shape}")
        y_list = list(y)
        if len(y_list) != len(arrays):
            raise ShapeError(
                f"y: expected {len(arrays)} labels (one per sequence of {name}), got {len(y_list)}"
            )
        for i, label in enumerate(y_list):
            if label is None:
                raise DataError(f"y[{i}]: expected a label, got None")
        labels = [str(v) for v in y_list]
    return SequenceSet(
        X=arrays, y=labels, ids=[str(i) for i in range(len(arrays))], source="<arrays>"
    )
