"""Static covariates of a global forecaster: per-series constants (a category code, a size), as
DeepAR, TFT and neuralforecast's ``stat_exog_list`` take them.

A series' statics are a vector ``s`` (C_s,) constant over time. The forecaster appends them to the
known (future) covariates of every row, so the network, its one step, the ONNX graphs and the
streams need no new math: the last C_s of the model's ``n_future`` columns are the statics
(``meta["static_names"]``), and the fitted table ``statics_`` {series name: vector} is saved in
preprocessing.json. They are scaled across series (one mean and std over the series' vectors,
pinned into every row of the `Scaling`): per-series statistics would map every constant to 0.

Helpers here are used by `seqshape.api.forecaster.Forecaster`, the pandas path, the CLI, the
stream and the ONNX runner; everything user-facing takes and gives only the user's own known
covariates (``Cf - C_s`` columns).
"""

from __future__ import annotations

import numpy as np

from ..data.scaling import Scaling
from ..data.series import SeriesData
from ..errors import DataError, ShapeError


def static_names(model) -> list[str]:
    """The model's static covariates' names ([] for a model without)."""
    return list((getattr(model, "meta", None) or {}).get("static_names") or [])


def with_static(s: SeriesData, vector: np.ndarray) -> SeriesData:
    """``s`` with its statics appended as constant known covariates of every row."""
    T = len(s.target)
    tiled = np.broadcast_to(np.asarray(vector, np.float32)[None, :], (T, len(vector)))
    return SeriesData(
        target=s.target,
        past_cov=s.past_cov,
        future_cov=np.concatenate([s.future_cov, tiled], axis=1),
        name=s.name,
        timestamps=s.timestamps,
        static=s.static,
    )


def attach(model, series: list[SeriesData], width: int) -> list[SeriesData]:
    """Series as the user gives them -> with their statics appended (by their own ``static``,
    else the fitted table by name); series that already have ``width`` known covariates (the
    model's, statics included) are left as they are."""
    if not static_names(model):
        return series
    out = []
    for s in series:
        if s.future_cov.shape[1] == width:
            out.append(s)
            continue
        idx = model.series_names.index(s.name) if s.name in model.series_names else None
        out.append(with_static(s, vector_for(model, s, idx)))
    return out


def fit_statics(series: list[SeriesData], names: list[str] | None) -> tuple[list[str], dict]:
    """The training series' statics -> (their names, the table {series name: vector}); ([], {})
    when no series has any. Every series must have the same number C_s."""
    if all(s.static is None for s in series):
        if names:
            raise DataError(f"static covariates {names}: named, but no series carries values")
        return [], {}
    first = next(s for s in series if s.static is not None)
    cs = len(first.static)
    names = list(names or [f"static_{j}" for j in range(cs)])
    if len(names) != cs:
        raise ShapeError(f"static covariates: expected {len(names)} values ({names}), got {cs}")
    table = {}
    for s in series:
        if s.static is None or len(s.static) != cs:
            got = "none" if s.static is None else f"{len(s.static)} values"
            raise DataError(
                f"{s.name}: expected the {cs} static covariates {names} every series has, got {got}"
            )
        table[s.name] = [float(v) for v in s.static]
    return names, table


def pin_scaling(scaling: Scaling, table: dict) -> Scaling:
    """Set the statics' columns (the last C_s known covariates) of every scaling row to one mean
    and std over the series' vectors (std 1 where all series share the value)."""
    values = np.array(list(table.values()), dtype=np.float64)  # (S, C_s)
    cs = values.shape[1]
    mean, std = values.mean(axis=0), values.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    scaling.f_mean[:, -cs:] = mean.astype(np.float32)
    scaling.f_std[:, -cs:] = std.astype(np.float32)
    return scaling


def vector_for(model, s: SeriesData | None, series_index: int | None) -> np.ndarray:
    """The statics of a series to forecast: its own (``s.static``) if given, else the fitted
    table's entry of series ``series_index``; a DataError naming the columns otherwise."""
    names = static_names(model)
    table = getattr(model, "statics_", None) or {}
    if s is not None and s.static is not None:
        v = np.asarray(s.static, np.float32)
        if v.shape != (len(names),):
            raise ShapeError(
                f"{s.name}.static: expected ({len(names)},) for {names}, got {v.shape}"
            )
        return v
    known = list(model.series_names)
    if series_index is not None and 0 <= series_index < len(known) and known[series_index] in table:
        return np.asarray(table[known[series_index]], np.float32)
    who = s.name if s is not None else "history"
    raise DataError(
        f"{who}: this model reads static covariates {names}; a series it was not fitted on needs "
        "them (SeriesData(static=...), static_df=...)"
    )


def user_future(model) -> int:
    """How many known covariates the caller gives (the model's less its statics)."""
    return model.config.n_future - len(static_names(model))


def extend_future(model, vector: np.ndarray, future_cov, k: int, name: str = "future_cov"):
    """The caller's (K, Cf_user) future rows (or None without user columns) + the statics ->
    (K, Cf) float32."""
    cu = user_future(model)
    if cu:
        if future_cov is None:
            raise DataError(f"{name}: this model uses {cu} known covariates; give their K={k} rows")
        f = np.asarray(future_cov, np.float32)
        if f.ndim == 1 and cu == 1:
            f = f[:, None]
        if f.shape != (k, cu):
            raise ShapeError(f"{name}: expected (K={k}, Cf={cu}), got {f.shape}")
    else:
        if future_cov is not None and np.size(future_cov):
            raise ShapeError(f"{name}: this model has no known covariates but its statics")
        f = np.zeros((k, 0), np.float32)
    return np.concatenate([f, np.broadcast_to(vector[None, :], (k, len(vector)))], axis=1)


def loaded_table(pre: dict, meta: dict, where) -> dict:
    """A saved model's ``statics`` table, checked against its ``meta["static_names"]``: one list
    of C_s finite numbers per series (a damaged one is an ArtifactError naming ``where``)."""
    from ..errors import ArtifactError

    names = list((meta or {}).get("static_names") or [])
    table = pre.get("statics") or {}

    def ok(v) -> bool:
        return (
            isinstance(v, list)
            and len(v) == len(names)
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
            and bool(np.isfinite(np.asarray(v, dtype=np.float64)).all())
        )

    if (
        not isinstance(table, dict)
        or bool(names) != bool(table)
        or not all(map(ok, table.values()))
    ):
        raise ArtifactError(
            f"{where}: field 'statics': expected one list of {len(names)} finite numbers per "
            f"series for the static covariates {names}"
        )
    return table
