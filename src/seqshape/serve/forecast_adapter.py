"""The server's adapter for forecasters (`ForecasterAdapter`); see `seqshape.serve.adapters`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..api.forecast_static import static_names
from ..errors import ConfigError, DataError, ShapeError
from ..infer.stream import ForecastStream
from ..models.forecast_units import series_row
from ..shapes import describe
from .adapter_base import (
    ModelAdapter,
    _as_float32,
    _legend,
    pack_floats,
    parse_timestamps,
    unpack_floats,
)


def _calendar_count(freq: str | None) -> int:
    """How many calendar columns `calendar_features` makes at ``freq`` (0 without a frequency)."""
    from ..data.series import calendar_features

    if freq is None:
        return 0
    return calendar_features(np.array(["2000-01-01"], dtype="datetime64[ns]"), freq=freq)[0].shape[
        1
    ]


# what a forecast answer holds besides the point, and the stream's own fields
_NOT_SPREAD = ("point", "params", "samples", "residual", "next", "has_point", "has_next")


def _spread(out: dict) -> dict[str, Any]:
    """A forecaster's answer -> what its head says beside the point: {"quantiles": {"0.1":
    (..., O)}, "std", "scale", "df", "alpha", ...} as the head has them (`Head.outputs`)."""
    res: dict[str, Any] = {}
    for key, v in out.items():
        if key not in _NOT_SPREAD:
            res[key] = {f"{q:g}": a for q, a in v.items()} if isinstance(v, dict) else v
    return res


class ForecasterAdapter(ModelAdapter):
    """`Forecaster`: a (T, F) history -> K forecast steps with intervals; streams of points.

    One row (of a history or a stream) is [targets O, past covariates Cp, known covariates Cu].
    Models trained with calendar ("auto") known covariates take their rows without the calendar
    columns and compute them from ``timestamps``: the history's (forecast) or one per observed
    point (streams).

    A stream is a `seqshape.infer.stream.ForecastStream` over one series: each point costs one
    `ForecasterNet.step`, and its answer is the one-step forecast made for it before it arrived,
    the residual, and the forecast of the next point (null for models with known covariates: it
    needs the next point's covariates, so the step for point t runs when point t+1 brings them).
    The window level of window_norm "last"/"mean" models is fixed from the first ``lookback``
    points of the stream and kept; until then points are buffered and answered with null
    forecasts. These answers equal one batch pass over the whole stream (its first ``lookback``
    points as the window).

    A model fitted on several series with a scaling per series serves each with its own: a
    forecast request and a stream name theirs with ``series`` (a name the model was fitted on, or
    its index); an unknown one is a DataError (HTTP 422) naming the known ones. ``series`` may be
    left out when the model has one scaling for all (one series, or ``global_scaling``).
    """

    kind = "forecaster"
    mode = "forecast"
    serves = ("forecast", "streams")

    def __init__(self, name: str, path: Path, *, threads: int | None = None) -> None:
        from ..api.forecaster import Forecaster

        super().__init__(name, path)
        self.model = Forecaster.load(path, threads=threads)
        cfg = self.model.config
        self.net = self.model.net
        self.O, self.Cp, self.Cf, self.Z = cfg.n_targets, cfg.n_past, cfg.n_future, cfg.n_fed
        meta = self.model.meta
        fut = (meta.get("columns") or {}).get("future_covariates", ())
        self.auto = fut == "auto" or (isinstance(fut, list | tuple) and "auto" in fut)
        self.freq = meta.get("freq")
        # known covariates the client sends as numbers; the calendar ones come from timestamps
        self.n_calendar = _calendar_count(self.freq) if self.auto else 0
        # the static covariates ride along from the model's table (by series), never sent
        self.n_static = len(static_names(self.model))
        self.Cu = self.Cf - self.n_calendar - self.n_static
        self.features = self.Z + self.Cu
        self.stream_timestamps = self.auto
        sc = self.model.scaling
        self.series_names = list(self.model.series_names)
        self.per_series_scaling = not sc.global_ and len(sc.z_mean) > 1

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        d = super().describe()
        known = {"F": self.features, "O": self.O}
        d.update(
            input={"shape": describe("T F", known), "legend": _legend("T F")},
            output={"shape": describe("K O", known), "legend": _legend("K O")},
            columns={"targets": self.O, "past_covariates": self.Cp, "known_covariates": self.Cu},
            calendar_covariates={"count": self.n_calendar, "freq": self.freq}
            if self.auto
            else None,
            lookback=cfg.lookback,
            horizon=cfg.horizon,
            strategy=cfg.strategy,
            loss=cfg.loss,
            window_norm=cfg.window_norm,
            quantiles=list(cfg.quantiles) if cfg.head.takes_quantiles else None,
            params=list(cfg.head.param_names(cfg.quantiles)),
            series=self.series_names,
            per_series_scaling=self.per_series_scaling,
            stream_note=self.stream_unsupported() or self._stream_note(),
        )
        return d

    def _stream_note(self) -> str:
        cfg = self.model.config
        note = "one cell step per point; results: forecast made before the point, residual, next"
        if cfg.window_norm != "none":
            note += (
                f"; window_norm {cfg.window_norm!r}: the level is fixed from the first "
                f"{cfg.lookback} points of the stream (null forecasts until then)"
            )
        if self.Cf:
            note += "; 'next' is null: it needs the next point's known covariates"
        if self.auto:
            note += (
                f"; observe needs one timestamp per point ({self.n_calendar} calendar covariates "
                f"at frequency {self.freq})"
            )
        return note

    # -- forecast ------------------------------------------------------------------------------
    def _calendar(self, timestamps: list[str] | None, t: int, k: int) -> np.ndarray:
        """(T+K, n_calendar) calendar columns from the history's T (or T+K) timestamps."""
        from ..data.series import calendar_features, future_timestamps

        if timestamps is None:
            raise DataError(
                f"timestamps: model {self.name!r} computes {self.n_calendar} calendar covariates "
                f"from the history's timestamps; give T={t} (or T+K={t + k}) of them"
            )
        if len(timestamps) not in (t, t + k):
            raise ShapeError(
                f"timestamps: expected T={t} or T+K={t + k} timestamps, got {len(timestamps)}"
            )
        ts = parse_timestamps(timestamps, "timestamps")
        if len(ts) == t:
            try:
                ts = np.concatenate([ts, future_timestamps(ts, k, freq=self.freq)])
            except OverflowError:
                raise DataError(
                    f"timestamps: the K={k} steps after {ts[-1]} leave the representable dates"
                ) from None
        return calendar_features(ts, freq=self.freq)[0]

    def forecast(
        self,
        history: np.ndarray,
        k: int,
        future_covariates: np.ndarray | None,
        timestamps: list[str] | None = None,
        series: int | str | None = None,
    ) -> dict[str, Any]:
        from ..api.forecaster import SeriesData

        T = len(history)
        if history.shape[1] != self.features:
            raise ShapeError(
                f"history: expected F={self.features} numbers per row (targets O={self.O}, past "
                f"covariates Cp={self.Cp}, known covariates C={self.Cu}), got {history.shape[1]}"
            )
        h = _as_float32(history, "history")
        if self.Cu:
            if future_covariates is None:
                raise DataError(
                    f"future_covariates: model {self.name!r} uses {self.Cu} known covariates; "
                    f"give their K={k} future rows"
                )
            if future_covariates.shape != (k, self.Cu):
                raise ShapeError(
                    f"future_covariates: expected (K={k}, C={self.Cu}), got "
                    f"{future_covariates.shape}"
                )
            fut = _as_float32(future_covariates, "future_covariates")
        elif future_covariates is not None:
            raise ShapeError(
                f"future_covariates: model {self.name!r} has no known covariates the client "
                f"sends; expected none, got {future_covariates.shape[1]} per row"
            )
        else:
            fut = np.zeros((k, 0), np.float32)
        known = np.concatenate([h[:, self.Z :], fut])
        if self.auto:
            # (T+K, Cu) ++ (T+K, calendar) -> (T+K, Cf), in the order the model was trained on
            known = np.concatenate([known, self._calendar(timestamps, T, k)], axis=1)
        elif timestamps is not None:
            raise DataError(
                f"timestamps: model {self.name!r} has no calendar covariates; leave them out"
            )
        row = self._series_row(series)
        if self.n_static and isinstance(series, str) and series in self.series_names:
            row = self.series_names.index(series)  # whose statics, with one global scaling too
        data = SeriesData(
            target=h[:, : self.O],
            past_cov=h[:, self.O : self.Z],
            future_cov=known[:T],
            name="history",
        )
        with np.errstate(over="ignore", invalid="ignore"):
            out = self.model.forecast(
                data, k, series_index=row, future_cov=known[T:] if self.Cf else None
            )
        # the point, then what the head answers beside it (quantiles, std, df, alpha, ...)
        result: dict[str, Any] = {"point": out["point"], **_spread(out)}
        for key, v in list(result.items()):
            vals = list(v.values()) if isinstance(v, dict) else [v]
            if not all(np.isfinite(a).all() for a in vals):
                raise DataError(
                    "history: the model's forecast is not finite — values too large for it?"
                )
            result[key] = (
                {q: a.tolist() for q, a in v.items()} if isinstance(v, dict) else v.tolist()
            )
        return result

    def _series_row(self, series: int | str | None) -> int:
        """The scaling row of ``series``; DataError (HTTP 422) naming the known series."""
        sc = self.model.scaling
        return series_row(series, self.series_names, len(sc.z_mean), sc.global_)

    # -- streams -------------------------------------------------------------------------------
    def stream_unsupported(self) -> str | None:
        cfg = self.model.config
        if cfg.strategy != "autoregressive":
            return (
                f"model {self.name!r} cannot stream: strategy {cfg.strategy!r} forecasts a whole "
                "window at once; streams need strategy 'autoregressive'"
            )
        if self.auto and self.freq is None:
            return (
                f"model {self.name!r} cannot stream: its calendar covariates need the series' "
                "frequency, which the model directory does not record"
            )
        return None

    def new_stream(self, options: dict[str, Any] | None = None) -> ForecastStream:
        self.require("streams")
        options = dict(options or {})
        series = options.pop("series", None)
        if options:
            raise ConfigError(
                f"{', '.join(sorted(options))}: model {self.name!r} is a forecaster; its streams "
                "take one option, series (start and warmup are for anomaly detectors)"
            )
        return ForecastStream(self.model, series)

    def dump_state(self, state: ForecastStream) -> dict[str, Any]:
        return pack_floats(state.state())

    def load_state(self, data: dict[str, Any]) -> ForecastStream:
        where = f"model {self.name!r}"
        try:
            return ForecastStream.from_state(self.model, unpack_floats(data, where))
        except (ConfigError, DataError) as e:
            raise ConfigError(f"{where}: {e}") from None

    def observe(
        self, state: ForecastStream, points: np.ndarray, timestamps: list[str] | None = None
    ) -> tuple[ForecastStream, list[dict[str, Any]]]:
        from ..data.series import calendar_features

        self.require("streams")
        ts = self._timestamps(timestamps, len(points))
        _as_float32(points, "points")
        if ts is not None:
            # (P, Z+Cu) ++ (P, calendar) -> (P, Z+Cf): the full rows the model was trained on
            cal = calendar_features(ts, freq=self.freq)[0].astype(np.float64)
            points = np.concatenate([points, cal], axis=1)
        if getattr(state, "static", None) is not None:
            # (P, Z+Cf-C_s) ++ (P, C_s): the stream's series' static covariates on every row
            points = np.concatenate(
                [points, np.broadcast_to(state.static, (len(points), self.n_static))], axis=1
            )
        # the caller's stream stays where it was until this one has answered every point
        stream = state.copy()
        with np.errstate(over="ignore", invalid="ignore"):
            out = stream.update_rows(points, name="points")
        spread = {
            k: ({q: a.tolist() for q, a in v.items()} if isinstance(v, dict) else v.tolist())
            for k, v in _spread(out).items()
        }
        results = []
        for i in range(len(points)):
            res: dict[str, Any] = {"forecast": None, "residual": None, "next": None}
            if out["has_point"][i]:
                res["forecast"] = out["point"][i].tolist()
                res["residual"] = out["residual"][i].tolist()
                # the forecast's distribution as the head gives it: {"std": (O,)}, ...
                for key, v in spread.items():
                    res[key] = {q: a[i] for q, a in v.items()} if isinstance(v, dict) else v[i]
            if out["has_next"][i]:
                res["next"] = out["next"][i].tolist()
            for v in [
                x for r in res.values() for x in (r.values() if isinstance(r, dict) else [r])
            ]:
                if v is not None and not all(math.isfinite(x) for x in v):
                    raise DataError(
                        f"points[{i}]: the model's forecast is not finite — values too large?"
                    )
            results.append(res)
        return stream, results
