"""Sequences from the layouts other tools hand over: pandas long frames and (n, C, T) arrays.

- A long DataFrame has one row per step: ``sequence_id``, optionally ``step`` (the order within a
  sequence; else the rows' order), the feature columns, and optionally a per-sequence ``label``
  (constant within a sequence) or per-step targets for a tagger — the layout of the long CSV
  files (docs/data.md).
- Arrays of shape (n, T, F) are this library's layout; aeon and sktime hand over (n, C, T)
  (channels first). ``layout="auto"`` reads (n, T, F) but refuses a 3-D array whose shapes say
  channels first (more features than steps, or a fitted model's F in the middle), naming the
  fix; ``layout="NCT"`` transposes; ``layout="NTF"`` takes the array as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, ShapeError

LAYOUTS = ("auto", "NTF", "NCT")
ID, STEP, LABEL = "sequence_id", "step", "label"


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ConfigError(f"layout: expected one of {', '.join(LAYOUTS)}, got {layout!r}")


def is_frame(X: Any) -> bool:
    """A pandas DataFrame (checked without importing pandas when the caller never did)."""
    return type(X).__name__ == "DataFrame" and hasattr(X, "columns") and hasattr(X, "groupby")


def to_ntf(X: np.ndarray, layout: str, name: str, features: int | None = None) -> np.ndarray:
    """A 3-D array as (n, T, F): transposed for ``layout="NCT"``; with ``"auto"``, an array whose
    shapes say channels-first is refused with the fix named."""
    check_layout(layout)
    if X.ndim != 3:
        raise ShapeError(f"{name}: expected a 3-D array (n, T, F), got shape {X.shape}")
    if layout == "NCT":
        return np.ascontiguousarray(np.swapaxes(X, 1, 2))
    if layout == "auto":
        n, a, b = X.shape
        hint = (
            f"{name}: shape {X.shape} reads as (n={n}, T={a}, F={b}), {{why}}: the (n, channels, "
            f"time) layout of aeon/sktime? pass layout='NCT' to transpose it (or layout='NTF' "
            "to take it as it is)"
        )
        if features is not None and b != features and a == features:
            raise ShapeError(hint.format(why=f"but the model was fitted on F={features}"))
        if features is None and b > a:
            raise ShapeError(hint.format(why="more features than steps"))
    return X


def sequences_from_frame(
    df, *, name: str = "X", targets: str = "label"
) -> tuple[list[np.ndarray], list | None, list[str]]:
    """A long DataFrame -> (sequences (T_i, F) float32, labels or None, sequence ids).

    ``targets="label"``: one label per sequence from a ``label`` column (constant within each
    sequence); ``targets="steps"``: per-step labels, a (T_i,) array per sequence. The sequences
    come in the order of their first row; within one, by ``step`` when there is that column.
    """
    cols = [str(c) for c in df.columns]
    if ID not in cols:
        raise DataError(
            f"{name}: a long DataFrame needs a {ID!r} column (one row per step), got columns "
            f"{cols[:20]}"
        )
    features = [c for c in cols if c not in (ID, STEP, LABEL)]
    if not features:
        raise DataError(f"{name}: no feature columns besides {ID}, {STEP}, {LABEL}")
    numeric = df[features].select_dtypes(include="number").columns
    bad = [str(c) for c in features if c not in set(map(str, numeric))]
    if bad:
        raise DataError(f"{name}: feature columns {bad[:10]} are not numeric")
    order = df[ID].drop_duplicates().tolist()
    groups = df.groupby(ID, sort=False)
    X, labels, ids = [], [] if LABEL in cols else None, []
    for sid in order:
        part = groups.get_group(sid)
        if STEP in cols:
            part = part.sort_values(STEP, kind="stable")
        values = part[features].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            row = int(np.argwhere(~np.isfinite(values))[0][0])
            raise DataError(f"{name}: sequence {sid!r} step {row}: expected finite values")
        X.append(values.astype(np.float32))
        ids.append(str(sid))
        if labels is not None:
            lab = part[LABEL].to_numpy()
            if targets == "steps":
                labels.append(lab)
            else:
                first = lab[0]
                if not (lab == first).all():
                    raise DataError(
                        f"{name}: sequence {sid!r}: the {LABEL!r} column changes within the "
                        f"sequence ({first!r} then {lab[lab != first][0]!r}); one label per "
                        "sequence expected"
                    )
                labels.append(first.item() if hasattr(first, "item") else first)
    return X, labels, ids


def labels_for(y, ids: list[str], name: str = "y"):
    """Per-sequence labels given beside a long frame: a pandas Series indexed by sequence id is
    aligned to the frame's order; anything else is taken in that order."""
    if y is None or not hasattr(y, "index") or not hasattr(y, "loc"):
        return y
    index = {str(k): v for k, v in zip(y.index.tolist(), y.tolist())}
    if not set(ids) <= set(index):
        # not indexed by sequence id: positional
        if len(y) != len(ids):
            raise ShapeError(f"{name}: expected {len(ids)} labels (one per sequence), got {len(y)}")
        return y.tolist()
    return [index[i] for i in ids]


# -- series: pandas in and out (neuralforecast's long layout, or a DatetimeIndex) ----------------
UID, DS, Y = "unique_id", "ds", "y"


def is_pandas_series_input(obj: Any) -> bool:
    """A pandas Series or DataFrame (what `series_from_pandas` reads)."""
    return type(obj).__name__ in ("Series", "DataFrame") and hasattr(obj, "index")


def _stamps(index, name: str) -> np.ndarray | None:
    """A DatetimeIndex as datetime64[ns]; a plain integer index as None (steps, no clock)."""
    kind = type(index).__name__
    if kind == "DatetimeIndex":
        if getattr(index, "tz", None) is not None:
            index = index.tz_convert("UTC").tz_localize(None)
        return index.to_numpy().astype("datetime64[ns]")
    if kind in ("RangeIndex", "Index") and np.asarray(index).dtype.kind in "iu":
        return None
    raise DataError(
        f"{name}: expected a DatetimeIndex (or a plain integer index), got a {kind}; "
        "set the time column as the index (df.set_index('ds'))"
    )


def _numeric(df, cols: list[str], name: str) -> np.ndarray:
    bad = [c for c in cols if df[c].dtype.kind not in "biuf"]
    if bad:
        raise DataError(f"{name}: columns {bad[:10]} are not numeric")
    values = df[cols].to_numpy(dtype=np.float64)
    if values.size and not np.isfinite(values).all():
        row, col = (int(v) for v in np.argwhere(~np.isfinite(values))[0])
        raise DataError(
            f"{name}: column {cols[col]!r} row {row}: expected a finite number, got "
            f"{values[row, col]} (fill or drop missing values first)"
        )
    return values.astype(np.float32)


def series_from_pandas(
    obj, *, past_cov: list[str] | None = None, future_cov: list[str] | None = None
) -> tuple[list[dict], dict]:
    """A pandas Series, a wide DataFrame with a DatetimeIndex, or a long DataFrame in
    neuralforecast's layout (``unique_id, ds, y`` + covariate columns) -> (one dict per series:
    name, timestamps, target, past_cov, future_cov; the column roles).

    In a wide frame every column is a target unless ``past_cov``/``future_cov`` name it; in a
    long frame the target is ``y`` and every other column must be named as a covariate.
    """
    past_cov, future_cov = list(past_cov or []), list(future_cov or [])
    kind = type(obj).__name__
    if kind == "Series":
        target = [str(obj.name) if obj.name is not None else Y]
        values = obj.to_numpy()
        df = None
        if values.dtype.kind not in "biuf":
            raise DataError(f"series: expected numbers, got dtype {values.dtype}")
        values = values.astype(np.float64)
        if not np.isfinite(values).all():
            raise DataError(f"series: row {int(np.argmin(np.isfinite(values)))}: expected a number")
        stamps = _stamps(obj.index, "series")
        parts = [
            {
                "name": target[0],
                "timestamps": stamps,
                "target": values.astype(np.float32)[:, None],
                "past_cov": np.zeros((len(values), 0), np.float32),
                "future_cov": np.zeros((len(values), 0), np.float32),
            }
        ]
        return parts, {"target": target, "past_cov": [], "future_cov": [], "long": False}
    df = obj
    cols = [str(c) for c in df.columns]
    if UID in cols:
        for need in (DS, Y):
            if need not in cols:
                raise DataError(
                    f"DataFrame: the long layout needs columns {UID}, {DS}, {Y}; {need!r} is "
                    f"missing (columns: {cols[:20]})"
                )
        extra = [c for c in cols if c not in (UID, DS, Y, *past_cov, *future_cov)]
        if extra:
            raise DataError(
                f"DataFrame: columns {extra[:10]} are neither {Y} nor named covariates; pass "
                "them as past_cov=[...] (observed) or future_cov=[...] (known ahead), or drop them"
            )
        missing = [c for c in (*past_cov, *future_cov) if c not in cols]
        if missing:
            raise DataError(f"DataFrame: covariate columns {missing} are not in {cols[:20]}")
        parts = []
        for uid, part in df.groupby(UID, sort=False):
            part = part.sort_values(DS, kind="stable")
            stamps = part[DS].to_numpy()
            if stamps.dtype.kind == "M":
                stamps = stamps.astype("datetime64[ns]")
            elif stamps.dtype.kind in "iu":
                stamps = None
            else:
                raise DataError(
                    f"DataFrame: series {uid!r}: column {DS!r} holds {stamps.dtype}; expected "
                    "datetimes (pd.to_datetime) or integer steps"
                )
            where = f"DataFrame series {uid!r}"
            parts.append(
                {
                    "name": str(uid),
                    "timestamps": stamps,
                    "target": _numeric(part, [Y], where),
                    "past_cov": _numeric(part, past_cov, where),
                    "future_cov": _numeric(part, future_cov, where),
                }
            )
        roles = {"target": [Y], "past_cov": past_cov, "future_cov": future_cov, "long": True}
        return parts, roles
    target = [c for c in cols if c not in (*past_cov, *future_cov)]
    if not target:
        raise DataError("DataFrame: no target columns left once the covariates are taken out")
    stamps = _stamps(df.index, "DataFrame")
    df = df.set_axis(cols, axis=1)
    parts = [
        {
            "name": "series",
            "timestamps": stamps,
            "target": _numeric(df, target, "DataFrame"),
            "past_cov": _numeric(df, past_cov, "DataFrame"),
            "future_cov": _numeric(df, future_cov, "DataFrame"),
        }
    ]
    return parts, {"target": target, "past_cov": past_cov, "future_cov": future_cov, "long": False}


def future_rows(frame, roles: dict, name: str, k: int, start_after) -> np.ndarray:
    """The known covariates of the k rows after a series' end, from a DataFrame of future rows
    (long: ``unique_id, ds`` + the columns, the series' own rows after its end; wide: the first
    k rows)."""
    cols = roles["future_cov"]
    if frame is None:
        raise DataError(
            f"future_cov: this model reads known covariates {cols}; pass a DataFrame of their "
            f"next {k} rows"
        )
    if roles["long"]:
        part = frame[frame[UID].astype(str) == name].sort_values(DS, kind="stable")
        if start_after is not None:
            part = part[part[DS].to_numpy().astype("datetime64[ns]") > start_after]
    else:
        part = frame
    if len(part) < k:
        raise DataError(
            f"future_cov: series {name!r}: expected {k} future rows of {cols}, got {len(part)}"
        )
    return _numeric(part.iloc[:k], cols, f"future_cov series {name!r}")


def statics_from_pandas(static_df) -> tuple[dict[str, np.ndarray], list[str]]:
    """neuralforecast's ``static_df`` (``unique_id`` + one numeric column per static covariate,
    one row per series) -> ({series name: (C_s,) float32}, the static columns' names)."""
    cols = [str(c) for c in getattr(static_df, "columns", [])]
    if UID not in cols:
        raise DataError(
            f"static_df: expected a DataFrame with a {UID!r} column, got columns {cols[:20]}"
        )
    names = [c for c in cols if c != UID]
    if not names:
        raise DataError(f"static_df: expected static columns beside {UID!r}, got none")
    df = static_df.set_axis(cols, axis=1)
    ids = df[UID].astype(str).tolist()
    dup = next((u for u in ids if ids.count(u) > 1), None)
    if dup is not None:
        raise DataError(f"static_df: expected one row per series, got {dup!r} twice")
    values = _numeric(df, names, "static_df")
    return {u: v for u, v in zip(ids, values)}, names
