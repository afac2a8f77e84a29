"""pandas in and out for the forecaster: what ``fit`` accepts (`as_series_list`), the DataFrame
``forecast`` gives back for pandas in, and scikit-learn's ``score`` (docs/api.md).

`PandasIO` is a mixin of `seqshape.api.forecaster.Forecaster`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..data.frames import (
    DS,
    UID,
    future_rows,
    is_pandas_series_input,
    series_from_pandas,
    statics_from_pandas,
)
from ..data.series import SeriesData, future_timestamps
from ..errors import ConfigError, DataError
from ..models.heads import head_of
from .forecast_static import static_names


def as_series_list(
    series, *, past_cov=None, future_cov=None, static_df=None
) -> tuple[list[SeriesData], dict]:
    """What ``fit`` accepts -> (list of SeriesData, the column roles when pandas came in).

    A SeriesData or a list of them; the SeriesFrame `read_series_csv` returns; a pandas Series
    or DataFrame (a DatetimeIndex, or neuralforecast's long ``unique_id, ds, y`` layout, see
    data/frames.py; ``past_cov``/``future_cov`` name covariate columns); a 1-D or 2-D array (one
    series, each column a target). ``static_df``: neuralforecast's static covariates, a
    DataFrame of ``unique_id`` + one column per static (roles["static"] names them).
    """
    from ..data.series import SeriesFrame

    roles: dict = {}
    if isinstance(series, SeriesData):
        out = [series]
    elif isinstance(series, SeriesFrame):
        out = series.to_series()
        roles = {
            "target": list(series.target_names),
            "past_cov": list(series.past_cov_names),
            "future_cov": list(series.future_cov_names),
            "long": len(series) > 1,
        }
    elif is_pandas_series_input(series):
        parts, roles = series_from_pandas(series, past_cov=past_cov, future_cov=future_cov)
        out = [SeriesData(**part) for part in parts]
    elif isinstance(series, np.ndarray) and series.dtype != object and series.ndim in (1, 2):
        out = [SeriesData(target=series, name="series")]
    elif isinstance(series, list | tuple) and all(isinstance(x, SeriesData) for x in series):
        out = list(series)
    else:
        raise DataError(
            f"series: expected SeriesData (or a list of them), a SeriesFrame, a pandas "
            f"Series/DataFrame or a 1-D/2-D array, got {type(series).__name__}"
        )
    if (past_cov or future_cov) and not is_pandas_series_input(series):
        raise ConfigError("past_cov/future_cov: column names apply to a pandas DataFrame only")
    if not out:
        raise DataError("series: expected at least one series, got none")
    if static_df is not None:
        table, roles["static"] = statics_from_pandas(static_df)
        out = [with_static_values(s, table) for s in out]
    return out, roles


def with_static_values(s: SeriesData, table: dict) -> SeriesData:
    """``s`` with its row of a static table ({name: vector}); a DataError when it has none."""
    if s.name not in table:
        raise DataError(
            f"static_df: no row for series {s.name!r} (unique_id values: {list(table)[:10]})"
        )
    return replace(s, static=table[s.name])


class PandasIO:
    def _forecast_frame(
        self, history, k: int, *, future_cov, samples, seed, allow_short, static_df=None
    ):
        """`forecast` for pandas in: a DataFrame out, one row per future step (and series), with
        future timestamps, the point forecast under the target's name and the interval columns."""
        import pandas as pd

        roles = self.meta.get("pandas") or {}
        parts, got = series_from_pandas(
            history, past_cov=roles.get("past_cov"), future_cov=roles.get("future_cov")
        )
        table = statics_from_pandas(static_df)[0] if static_df is not None else {}
        frames = []
        for part in parts:
            sd = SeriesData(**part)
            if sd.name in table:  # a new series' statics (a fitted one's are in the model)
                sd = with_static_values(sd, table)
            stamps = part["timestamps"]
            fut = None
            if self.config.n_future - len(static_names(self)):  # the user's known covariates
                last = stamps[-1] if stamps is not None else None
                fut = future_rows(future_cov, got, sd.name, k, last)
            out = self.forecast(
                sd,
                k,
                series_index=self.series_index_of(sd.name),
                future_cov=fut,
                samples=samples,
                seed=seed,
                allow_short=allow_short,
            )
            if stamps is None:
                when = np.arange(len(sd.target), len(sd.target) + k)
            else:
                when = future_timestamps(stamps, k, freq=roles.get("freq"), name=sd.name)
            cols = _result_columns(out, got["target"], self.config.loss)
            if got["long"]:
                frame = pd.DataFrame({UID: sd.name, DS: when, **cols})
            else:
                index = pd.DatetimeIndex(when, name=history.index.name or DS)
                frame = pd.DataFrame(cols, index=index if stamps is not None else when)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True) if got["long"] else frames[0]

    def score(self, X, y=None) -> float:
        """scikit-learn's ``score`` (higher is better): minus the mean MASE of forecasting the
        last ``horizon`` rows of each series from the rows before them (season: the fitted one)."""
        self._check_fitted()
        series, _ = as_series_list(
            X,
            past_cov=(self.meta.get("pandas") or {}).get("past_cov"),
            future_cov=(self.meta.get("pandas") or {}).get("future_cov"),
        )
        K, m = self.config.horizon, self.season_or_1()
        errors = []
        for s in series:
            T = len(s.target)
            if T - K < 1:
                raise DataError(f"{s.name}: {T} rows; scoring needs more than horizon={K}")
            hist = SeriesData(
                target=s.target[: T - K],
                past_cov=s.past_cov[: T - K],
                future_cov=s.future_cov[: T - K],
                name=s.name,
            )
            fut = s.future_cov[T - K :] if self.config.n_future else None
            idx = self.series_index_of(s.name)
            point = self.forecast(hist, K, series_index=idx, future_cov=fut, allow_short=True)
            train = s.target[: T - K]
            lag = m if len(train) > m else 1
            scale = np.mean(np.abs(train[lag:] - train[:-lag])) if len(train) > lag else 0.0
            errors.append(
                float(np.mean(np.abs(point["point"] - s.target[T - K :]))) / max(scale, 1e-8)
            )
        return -float(np.mean(errors))


def common_freq(series: list[SeriesData]) -> str | None:
    """The step the series' timestamps share (None without timestamps or when they disagree)."""
    from ..data.series import infer_freq

    found = set()
    for s in series:
        if s.timestamps is None or len(s.timestamps) < 2:
            return None
        try:
            found.add(infer_freq(np.asarray(s.timestamps), strict=False, name=s.name))
        except (DataError, ConfigError):
            return None
    return found.pop() if len(found) == 1 else None


def _result_columns(out: dict, targets: list[str], loss: str) -> dict[str, np.ndarray]:
    """A forecast's arrays as named columns: the point under each target's name, then per target
    the quantiles (``y_q0.1``), or the std and the 80%/95% intervals (``y_lo_80``, ``y_hi_80``):
    from the distribution where the head has them in closed form (`Head.interval`: Gaussian,
    Poisson, negative binomial, a quantile pair), from the sample paths otherwise when asked for."""

    head = head_of(loss)
    # level -> (lower, upper) (K, O) from the head, or None
    bands = {level: head.interval(out, level / 100) for level in (80, 95)}
    cols: dict[str, np.ndarray] = {}
    for j, name in enumerate(targets):
        cols[name] = out["point"][:, j]
        for q, v in (out.get("quantiles") or {}).items():
            cols[f"{name}_q{q:g}"] = v[:, j]
        if "std" in out:
            cols[f"{name}_std"] = out["std"][:, j]
        for level in (80, 95):
            lo_q, hi_q = (1 - level / 100) / 2, 1 - (1 - level / 100) / 2
            if bands[level] is not None:
                lo, hi = bands[level][0][:, j], bands[level][1][:, j]
            elif "samples" in out:
                lo = np.quantile(out["samples"][:, :, j], lo_q, axis=0)
                hi = np.quantile(out["samples"][:, :, j], hi_q, axis=0)
            else:
                continue
            cols[f"{name}_lo_{level}"], cols[f"{name}_hi_{level}"] = lo, hi
    return cols
