"""What the server needs from a model, behind one small interface per model kind.

The HTTP layer (app.py) parses and limits requests, then calls a `ModelAdapter`; the adapter calls
the library. An adapter is loaded once and called from many requests, so it keeps no per-request
state: a stream's state is a value the server owns, hands to `observe` and keeps (live in memory,
as JSON in SQLite) with what `observe` returns.

    describe()                           -> {"mode", "input", "output", "version", ...}
    predict(sequences)                   -> one {"class", "probabilities"} per sequence  (classifier)
    forecast(history, k, future_covs, timestamps) -> {"point", intervals...}               (forecaster)
    detect(values, timestamps, warmup)   -> {"score", "is_anomaly", ...} per row             (detector)
    new_stream(options)                  -> live state
    observe(state, points, timestamps)   -> (new live state, one result per point)
    dump_state(state) / load_state(dict) -> the live state as a JSON-safe dict and back

Every method a kind cannot serve raises `NotSupportedError` naming the model, its kind and the kind
the endpoint needs (HTTP 400). Sequences and observed points arrive as float64 (T, F) arrays whose F
the server has checked against ``features``; forecast and detect inputs arrive rectangular but
unchecked. ``observe`` either returns or raises before changing anything the caller can see, except
for adapters with ``mutates_state`` (the detector advances its stream object in place): after an
error there the server restores the stream from its last committed record.

Forecasters (`ForecasterAdapter`) serve "forecast" and "streams": a stream point is one row
[targets O, past covariates Cp, known covariates Cu] (+ calendar covariates computed from the
point's timestamp); its result holds the one-step forecast that was made for it before it arrived,
the residual, and the forecast of the next point. Detectors (`DetectorAdapter`) serve "detect" and
"streams": a stream point is one row of O values (+ its timestamp), its result the anomaly score and
flag that `AnomalyDetector.update` gives.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__, runtime
from ..artifacts import model_kind
from ..errors import ArtifactError, ConfigError, DataError, ShapeError
from ..shapes import LEGEND, describe

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NEEDS = {
    "predict": "a classifier",
    "forecast": "a forecaster",
    "detect": "an anomaly detector",
    "streams": "a streamable model",
}
STARTS = ("saved", "fresh")


class NotSupportedError(ConfigError):
    """The model's kind cannot serve this endpoint (HTTP 400)."""


def model_version(path: Path) -> str:
    """A short digest of the config and weights: changes whenever the model does."""
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "preprocessing.json"):
        p = path / name
        if p.exists():
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]


def _legend(spec: str) -> dict[str, str]:
    return {s: LEGEND[s] for s in spec.split() if s in LEGEND}


class ModelAdapter:
    """The server's view of one loaded model; subclasses fill in what their kind can do."""

    kind = "model"
    mode = "unknown"
    serves: tuple[str, ...] = ()  # of "predict", "forecast", "detect", "streams"
    mutates_state = False  # True: observe advances the live state in place
    stream_timestamps = False  # True: observe needs one timestamp per point

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.version = model_version(path)
        self.features = 0  # F: numbers per step / per observed point

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "mode": self.mode,
            "version": self.version,
            "seqshape_version": __version__,
            "streamable": self.stream_unsupported() is None,
        }

    def _unsupported(self, what: str) -> NotSupportedError:
        return NotSupportedError(
            f"model {self.name!r} is a {self.kind}; {what} needs {NEEDS[what]}"
        )

    def require(self, what: str) -> None:
        """Raise NotSupportedError unless this model serves ``what`` (an endpoint family)."""
        if what not in self.serves:
            raise self._unsupported(what)
        if what == "streams":
            reason = self.stream_unsupported()
            if reason:
                raise NotSupportedError(reason)

    def predict(self, sequences: list[np.ndarray]) -> list[dict[str, Any]]:
        raise self._unsupported("predict")

    def forecast(
        self,
        history: np.ndarray,
        k: int,
        future_covariates: np.ndarray | None,
        timestamps: list[str] | None = None,
    ) -> dict[str, Any]:
        raise self._unsupported("forecast")

    def detect(
        self, values: np.ndarray, timestamps: list[str] | None, warmup: int
    ) -> dict[str, Any]:
        raise self._unsupported("detect")

    # -- streams -------------------------------------------------------------------------------
    def stream_unsupported(self) -> str | None:
        """Why this model cannot stream, or None when it can."""
        return f"model {self.name!r} is a {self.kind}; streams need {NEEDS['streams']}"

    def _no_options(self, options: dict[str, Any] | None) -> None:
        if options:
            raise ConfigError(
                f"{', '.join(sorted(options))}: model {self.name!r} is a {self.kind}; its streams "
                "take no options (start and warmup are for anomaly detectors)"
            )

    def new_stream(self, options: dict[str, Any] | None = None) -> Any:
        raise NotSupportedError(self.stream_unsupported() or "")

    def observe(
        self, state: Any, points: np.ndarray, timestamps: list[str] | None = None
    ) -> tuple[Any, list[dict[str, Any]]]:
        raise NotSupportedError(self.stream_unsupported() or "")

    def dump_state(self, state: Any) -> dict[str, Any]:
        raise NotSupportedError(self.stream_unsupported() or "")

    def load_state(self, data: dict[str, Any]) -> Any:
        raise NotSupportedError(self.stream_unsupported() or "")

    def _timestamps(self, timestamps: list[str] | None, n: int) -> np.ndarray | None:
        """The observe timestamps checked against this model: (P,) datetime64[ns] or None."""
        if not self.stream_timestamps:
            if timestamps is not None:
                raise DataError(
                    f"timestamps: model {self.name!r} takes no timestamps; leave them out"
                )
            return None
        if timestamps is None:
            raise DataError(
                f"timestamps: model {self.name!r} computes calendar covariates from each point's "
                f"time; give one ISO timestamp per point ({n})"
            )
        if len(timestamps) != n:
            raise ShapeError(f"timestamps: expected {n} (one per point), got {len(timestamps)}")
        return parse_timestamps(timestamps, "timestamps")


def parse_timestamps(timestamps: list[str], where: str) -> np.ndarray:
    """ISO strings -> (T,) datetime64[ns]; a bad or missing one is a DataError naming its index."""
    try:
        ts = np.array(timestamps, dtype="datetime64[ns]")
    except (ValueError, TypeError, OverflowError):
        ts = None
    if ts is None or np.isnat(ts).any():
        for i, t in enumerate(timestamps):
            try:
                ok = not np.isnat(np.datetime64(t, "ns"))
            except (ValueError, TypeError, OverflowError):
                ok = False
            if not ok:
                raise DataError(
                    f"{where}[{i}]: expected an ISO date and time such as 2024-05-01T13:00, "
                    f"got {t[:40]!r}"
                ) from None
        raise DataError(f"{where}: expected ISO dates and times such as 2024-05-01T13:00")
    return ts


def pack_tensors(tensors: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    """Recurrent state -> JSON-safe and bit-exact: float32 little-endian bytes in base64."""
    # S x (L, 1, H) -> (S, L, 1, H)
    a = torch.stack(tensors).numpy().astype("<f4", copy=False)
    return {"shape": list(a.shape), "float32": base64.b64encode(a.tobytes()).decode("ascii")}


def unpack_tensors(
    state: dict[str, Any], shape: tuple[int, ...], where: str
) -> tuple[torch.Tensor, ...]:
    """The inverse of `pack_tensors`, checking the shape; raises ConfigError naming ``where``."""
    try:
        got = tuple(int(v) for v in state["shape"])
        raw = base64.b64decode(state["float32"], validate=True)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{where}: stream state is damaged ({e})") from None
    if got != shape or len(raw) != 4 * int(np.prod(shape)):
        raise ConfigError(f"{where}: stream state has shape {got}, the model needs {shape}")
    # bytes -> (S, L, 1, H) float32 (a writable copy) -> S x (L, 1, H)
    a = torch.from_numpy(np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape))
    return tuple(a.unbind(0))


PACK_MIN = 16  # float lists at least this long are stored as float64 bytes


def pack_floats(obj: Any) -> Any:
    """A JSON tree with its long lists of floats as ``{"f64": base64}``: bit-exact and compact."""
    if isinstance(obj, dict):
        return {k: pack_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        if len(obj) >= PACK_MIN and all(type(v) is float for v in obj):
            raw = np.asarray(obj, dtype="<f8").tobytes()
            return {"f64": base64.b64encode(raw).decode("ascii")}
        return [pack_floats(v) for v in obj]
    return obj


def unpack_floats(obj: Any, where: str) -> Any:
    """The inverse of `pack_floats`; raises ConfigError naming ``where`` when damaged."""
    if isinstance(obj, dict):
        if set(obj) == {"f64"}:
            try:
                raw = base64.b64decode(obj["f64"], validate=True)
                return np.frombuffer(raw, dtype="<f8").tolist()
            except (TypeError, ValueError) as e:
                raise ConfigError(f"{where}: stream state is damaged ({e})") from None
        return {k: unpack_floats(v, where) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unpack_floats(v, where) for v in obj]
    return obj


def _as_float32(a: np.ndarray, where: str) -> np.ndarray:
    """A float64 (T, F) array -> float32, naming the first value float32 cannot hold."""
    with np.errstate(over="ignore"):
        b = a.astype(np.float32)
    if np.isfinite(b).all():
        return b
    j, k = (int(v) for v in np.argwhere(~np.isfinite(b))[0])
    raise DataError(
        f"{where}[{j}][{k}]: expected a number within float32 range (|x| < 3.4e38), got {a[j, k]:g}"
    )


def _scaled32(points: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None, what: str):
    """(P, F) float64 -> (P, F) float32 scaled; names the first point out of range."""
    _as_float32(points, "points")
    scaled = points if mean is None else (points - mean) / std
    with np.errstate(over="ignore"):
        x = scaled.astype(np.float32)
    if not np.isfinite(x).all():
        j = int(np.argwhere(~np.isfinite(x))[0][0])
        raise DataError(f"points[{j}]: out of range once scaled by the model's {what}")
    return x


class ClassifierAdapter(ModelAdapter):
    """`SequenceClassifier`: (T, F) sequences of any lengths -> one of N classes.

    Streams feed one step per observed point through the encoder's cell (`SequenceEncoder.step`)
    and answer the class probabilities of the prefix seen so far — the same numbers as
    ``predict_proba`` on that prefix. That holds for unidirectional encoders with pooling "last";
    other classifiers answer streams with a 400. A stream's live state is the (h, c) tuple.
    """

    kind = "classifier"
    mode = "many-to-one"
    serves = ("predict", "streams")

    def __init__(self, name: str, path: Path, *, threads: int | None = None) -> None:
        from ..api.classifier import SequenceClassifier

        super().__init__(name, path)
        self.model = SequenceClassifier.load(path, threads=threads)
        cfg = self.model.config
        self.features = cfg.input_size
        self.classes = list(self.model.classes_)
        self.labels = [str(c) for c in self.classes]
        self.net = self.model.net
        self.is_lstm = cfg.cell == "lstm"
        self.hc_shape = (2 if self.is_lstm else 1, cfg.num_layers, 1, cfg.hidden_size)
        scaler = self.model.scaler
        self.mean = None if scaler is None else np.asarray(scaler.mean, dtype=np.float64)
        self.std = None if scaler is None else np.asarray(scaler.std, dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        d = super().describe()
        known = {"F": cfg.input_size, "N": len(self.classes)}
        d.update(
            input={"shape": describe("B T F", known), "legend": _legend("B T F")},
            output={"shape": describe("B N", known), "legend": _legend("B N")},
            classes=self.classes,
            stream_note=self.stream_unsupported(),
        )
        return d

    def _result(self, proba: list[float], where: str) -> dict[str, Any]:
        if not all(math.isfinite(p) for p in proba):
            raise DataError(
                f"{where}: the model's output is not finite — input values too large for it?"
            )
        best = max(range(len(proba)), key=proba.__getitem__)
        return {"class": self.classes[best], "probabilities": dict(zip(self.labels, proba))}

    def predict(self, sequences: list[np.ndarray]) -> list[dict[str, Any]]:
        X = [_as_float32(a, f"sequences[{i}]") for i, a in enumerate(sequences)]
        with np.errstate(over="ignore", invalid="ignore"):
            proba = self.model.predict_proba(X)
        return [self._result(p.tolist(), f"sequences[{i}]") for i, p in enumerate(proba)]

    # -- streams -------------------------------------------------------------------------------
    def stream_unsupported(self) -> str | None:
        cfg = self.model.config
        if cfg.bidirectional:
            return (
                f"model {self.name!r} cannot stream: its encoder is bidirectional, and a backward "
                "direction needs the whole sequence (train it with --unidirectional)"
            )
        if cfg.pooling != "last":
            return (
                f"model {self.name!r} cannot stream: pooling {cfg.pooling!r} looks at every step; "
                "streams need pooling 'last'"
            )
        if cfg.frontend != "none":
            return (
                f"model {self.name!r} cannot stream: its {cfg.frontend!r} front-end reads the "
                "steps around each one (train it with --frontend none)"
            )
        if self.model.series_norm_:
            return (
                f"model {self.name!r} cannot stream: it z-normalises each whole series "
                "(train it with series_norm=False)"
            )
        return None

    def new_stream(self, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, ...]:
        self.require("streams")
        self._no_options(options)
        # (L, 1, H) zeros for h (and c)
        return self.net.encoder.init_state(1)

    def dump_state(self, state: tuple[torch.Tensor, ...]) -> dict[str, Any]:
        return pack_tensors(state)

    def load_state(self, data: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        return unpack_tensors(data, self.hc_shape, f"model {self.name!r}")

    def observe(
        self, state: tuple[torch.Tensor, ...], points: np.ndarray, timestamps=None
    ) -> tuple[tuple[torch.Tensor, ...], list[dict[str, Any]]]:
        self.require("streams")
        self._timestamps(timestamps, len(points))
        # (P, F) float32, one scaled row per observed point
        xt = torch.from_numpy(_scaled32(points, self.mean, self.std, "scaler"))
        step, st, outs = self.net.encoder.step, state, []
        with torch.inference_mode():
            for i in range(len(xt)):
                # (1, F) -> (1, H): one cell step per layer with the carried state
                out, st = step(xt[i : i + 1], st)
                outs.append(out)
            # P x (1, H) -> (P, H) -> (P, N)
            h = outs[0] if len(outs) == 1 else torch.cat(outs)
            proba = torch.softmax(self.net.head(h), dim=1).tolist()
        results = [self._result(p, f"points[{i}]") for i, p in enumerate(proba)]
        return st, results


def _calendar_count(freq: str | None) -> int:
    """How many calendar columns `calendar_features` makes at ``freq`` (0 without a frequency)."""
    from ..data.series import calendar_features

    if freq is None:
        return 0
    return calendar_features(np.array(["2000-01-01"], dtype="datetime64[ns]"), freq=freq)[0].shape[
        1
    ]


class ForecasterAdapter(ModelAdapter):
    """`Forecaster`: a (T, F) history -> K forecast steps with intervals; streams of points.

    One row (of a history or a stream) is [targets O, past covariates Cp, known covariates Cu].
    Models trained with calendar ("auto") known covariates take their rows without the calendar
    columns and compute them from ``timestamps``: the history's (forecast) or one per observed
    point (streams).

    A stream advances the LSTM one cell step per point with the carried (h, c) and answers, per
    point, the one-step forecast made for it before it arrived, the residual, and the forecast of
    the next point (null for models with known covariates: it needs the next point's covariates,
    so the step for point t runs when point t+1 brings them). The window level of window_norm
    "last"/"mean" models is fixed from the first ``lookback`` points of the stream and kept;
    until then points are buffered and answered with null forecasts. These answers equal one
    batch pass over the whole stream (its first ``lookback`` points as the window).
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
        self.Cu = self.Cf - self.n_calendar
        self.features = self.Z + self.Cu
        self.stream_timestamps = self.auto
        sc = self.model.scaling
        self.z_mean, self.z_std = sc.z_mean[0].astype(np.float64), sc.z_std[0].astype(np.float64)
        self.f_mean, self.f_std = sc.f_mean[0].astype(np.float64), sc.f_std[0].astype(np.float64)
        # (Z + Cf,): the scaling of one full stream row [z, known covariates]
        self.row_mean = np.concatenate([self.z_mean, self.f_mean])
        self.row_std = np.concatenate([self.z_std, self.f_std])
        # points buffered before the LSTM starts: the window of a window_norm model, else one
        self.need = cfg.lookback if cfg.window_norm != "none" else 1

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
            quantiles=list(cfg.quantiles) if cfg.loss == "quantile" else None,
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
        series = SeriesData(
            target=h[:, : self.O],
            past_cov=h[:, self.O : self.Z],
            future_cov=known[:T],
            name="history",
        )
        with np.errstate(over="ignore", invalid="ignore"):
            out = self.model.forecast(series, k, future_cov=known[T:] if self.Cf else None)
        result: dict[str, Any] = {"point": out["point"]}
        if "quantiles" in out:
            result["quantiles"] = {f"{q:g}": v for q, v in out["quantiles"].items()}
        if "std" in out:
            result["std"] = out["std"]
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

    def new_stream(self, options: dict[str, Any] | None = None) -> dict[str, Any]:
        self.require("streams")
        self._no_options(options)
        return {"seen": 0, "hc": None, "offset": None, "buffer": [], "recent": None}

    def dump_state(self, state: dict[str, Any]) -> dict[str, Any]:
        buf = state["buffer"]
        return {
            "seen": state["seen"],
            "hc": None if state["hc"] is None else pack_tensors(state["hc"]),
            "offset": None if state["offset"] is None else pack_tensors((state["offset"],)),
            # n x (W,) -> (1, n, W)
            "buffer": pack_tensors((torch.stack(buf),)) if buf else None,
            # (1, p, Z): the highway's last p fed values, at the stream's level
            "recent": None if state["recent"] is None else pack_tensors((state["recent"],)),
        }

    def load_state(self, data: dict[str, Any]) -> dict[str, Any]:
        cfg = self.model.config
        where = f"model {self.name!r}"
        try:
            seen = int(data["seen"])
            n_buf = 0 if data["buffer"] is None else int(data["buffer"]["shape"][1])
            encoded = data["hc"] is not None
            hc_data, off_data = data["hc"], data["offset"]
            recent_data = data.get("recent")
            if encoded and cfg.highway and recent_data is None:
                raise KeyError("recent")
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ConfigError(f"{where}: stream state is damaged ({e})") from None
        hc_shape = (2 if cfg.cell == "lstm" else 1, cfg.num_layers, 1, cfg.hidden_size)
        W = self.Z + self.Cf
        return {
            "seen": seen,
            "hc": unpack_tensors(hc_data, hc_shape, where) if encoded else None,
            "offset": unpack_tensors(off_data, (1, 1, 1, self.Z), where)[0] if encoded else None,
            "buffer": list(unpack_tensors(data["buffer"], (1, n_buf, W), where)[0])
            if n_buf
            else [],
            "recent": unpack_tensors(recent_data, (1, 1, cfg.highway, self.Z), where)[0]
            if encoded and cfg.highway
            else None,
        }

    def _unscaled(self, p: torch.Tensor) -> list[float]:
        """(1, 1, Z, P) parameters at the stream's level -> the O targets' point, original units."""
        # (1, 1, Z, P) -> (Z,) -> (O,)
        point = self.net.point(p)[0, 0, : self.O].numpy().astype(np.float64)
        return (point * self.z_std[: self.O] + self.z_mean[: self.O]).tolist()

    def observe(
        self, state: dict[str, Any], points: np.ndarray, timestamps: list[str] | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from ..data.series import calendar_features

        self.require("streams")
        ts = self._timestamps(timestamps, len(points))
        if ts is not None:
            _as_float32(points, "points")
            # (P, Z+Cu) ++ (P, calendar) -> (P, Z+Cf): the full rows the model was trained on
            cal = calendar_features(ts, freq=self.freq)[0].astype(np.float64)
            points = np.concatenate([points, cal], axis=1)
        # (P, W) float32 scaled rows: [z (O+Cp), known covariates (Cf)]
        rows = torch.from_numpy(_scaled32(points, self.row_mean, self.row_std, "scaling"))
        hc, off, buf = state["hc"], state["offset"], list(state["buffer"])
        recent = state["recent"]  # (1, p, Z) with a highway: the last p values fed to the LSTM
        highway = self.net.highway is not None
        encoded = hc is not None
        net, Z, results = self.net, self.Z, []
        with torch.inference_mode():
            for i in range(len(rows)):
                row = rows[i]
                res: dict[str, Any] = {"forecast": None, "residual": None, "next": None}
                pred = nxt = None
                pred_recent = None  # the highway window of `pred` when it is not `recent`
                if not encoded:
                    buf.append(row)
                    if len(buf) == self.need + (1 if self.Cf else 0):
                        # n x (W,) -> (1, n, W): the buffered window, read by one encoder pass
                        win = torch.stack(buf).unsqueeze(0)
                        hist = win[:, : self.need, :Z]
                        # (1, N, Z) -> (1, 1, Z): the level kept for the rest of the stream
                        off = net.offset(hist)
                        out, hc = net.encode(hist - off, win[:, :, Z:] if self.Cf else None)
                        recent = net.recent(hist - off) if highway else None
                        encoded = True
                        buf = [row] if self.Cf else []
                        if self.Cf:
                            pred = out
                        else:
                            nxt = out
                elif self.Cf:
                    # (Z,) ++ (Cf,) -> (1, Z+Cf): the pending point with this point's covariates
                    z_t = (buf[0][:Z] - off[0, 0]).unsqueeze(0)
                    pred, hc = net.encoder.step(net.step_inputs(z_t, row[Z:][None]), hc)
                    recent = net.push(recent, z_t) if highway else None
                    buf = [row]
                else:
                    # (L, 1, H) -> (1, H): the top layer's state predicts this point
                    pred = hc[0][-1]
                    pred_recent = recent
                    # (Z,) -> (1, Z): one cell step with this point at the stream's level
                    z_t = (row[:Z] - off[0, 0]).unsqueeze(0)
                    nxt, hc = net.encoder.step(z_t, hc)
                    recent = net.push(recent, z_t) if highway else None
                if pred is not None:
                    # (1, H) -> (1, 1, Z, P) at the stream's level; the highway (if any) reads
                    # the values before this point
                    before = pred_recent if pred_recent is not None else recent
                    p_pred = net.params(pred, before)
                    res["forecast"] = self._unscaled(net.unshift(p_pred[:, None], off))
                    res["residual"] = [
                        float(points[i, j]) - res["forecast"][j] for j in range(self.O)
                    ]
                if nxt is not None:
                    p_next = net.params(nxt, recent)
                    res["next"] = self._unscaled(net.unshift(p_next[:, None], off))
                for key in ("forecast", "next", "residual"):
                    if res[key] is not None and not all(math.isfinite(v) for v in res[key]):
                        raise DataError(
                            f"points[{i}]: the model's forecast is not finite — values too large?"
                        )
                results.append(res)
        new_state = {
            "seen": state["seen"] + len(rows),
            "hc": hc,
            "offset": off,
            "buffer": buf,
            "recent": recent,
        }
        return new_state, results


class DetectorAdapter(ModelAdapter):
    """`AnomalyDetector`: a (T, O) series -> a score and a flag per row; streams of points.

    ``detect`` equals ``AnomalyDetector.score_series`` (a fresh stream over the series; its first
    ``warmup`` rows score 0 and are never flagged). A stream advances `AnomalyDetector.update` one
    row per point on a stream state of its own: ``start="saved"`` (the default) continues the
    stream saved in the model directory (after `fit`, right after the training stretch), so the
    answers equal ``score_series`` over the training stretch and the points together;
    ``start="fresh"`` begins a new series (its first ``warmup`` points score 0). Detectors with
    calendar covariates need a timestamp per point. The whole scoring state (the remembered errors
    included) is stored after every observe.
    """

    kind = "detector"
    mode = "anomaly detection"
    serves = ("detect", "streams")
    mutates_state = True

    def __init__(self, name: str, path: Path, *, threads: int | None = None) -> None:
        from ..anomaly.detector import AnomalyDetector

        super().__init__(name, path)
        self.model = AnomalyDetector.load(path)
        runtime.configure(threads)
        cfg = self.model.config
        self.O = cfg.n_targets
        self.features = self.O
        self.stream_timestamps = cfg.calendar
        # the stream saved with the model: where "saved" streams start
        self.saved = self.model.state_dict()

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        d = super().describe()
        known = {"F": self.O}
        d.update(
            input={"shape": describe("T F", known), "legend": _legend("T F")},
            output={
                "shape": "(T,)",
                "fields": ["score", "is_anomaly", "prediction", "error"]
                + (["std"] if cfg.head == "gaussian" else []),
            },
            timestamps=cfg.calendar,
            score=cfg.score,
            threshold=cfg.threshold,
            n_train=self.model.n_train,
            stream_note=self.stream_unsupported()
            or "one cell step per point; results: score and is_anomaly; open with "
            '{"start": "saved"} (default: continue the stream saved with the model) or '
            '{"start": "fresh", "warmup": N}',
        )
        return d

    def _inputs(self, values: np.ndarray, timestamps: list[str] | None, where: str):
        """(T, O) float64 values within float32 range and (T,) datetime64 or None, checked."""
        if values.shape[1] != self.O:
            raise ShapeError(
                f"{where}: expected F={self.O} numbers per row (the detector's O), "
                f"got {values.shape[1]}"
            )
        _as_float32(values, where)
        if not self.model.config.calendar:
            if timestamps is not None:
                raise DataError(
                    f"timestamps: model {self.name!r} does not use the time of day; leave them out"
                )
            return values, None
        if timestamps is None:
            raise DataError(
                f"timestamps: model {self.name!r} uses the time of day; give one ISO timestamp "
                f"per row of {where} ({len(values)})"
            )
        if len(timestamps) != len(values):
            raise ShapeError(
                f"timestamps: expected {len(values)} (one per row of {where}), got "
                f"{len(timestamps)}"
            )
        return values, parse_timestamps(timestamps, "timestamps")

    def detect(
        self, values: np.ndarray, timestamps: list[str] | None, warmup: int
    ) -> dict[str, Any]:
        v, ts = self._inputs(values, timestamps, "values")
        if warmup > len(v):
            raise ConfigError(f"warmup: expected 0..{len(v)} rows (T), got {warmup}")
        with np.errstate(over="ignore", invalid="ignore"):
            out = self.model.score_series(v, ts, warmup=warmup, check_order=False)
        score = out["score"]
        if not np.isfinite(score).all():
            raise DataError("values: the detector's scores are not finite — values too large?")

        def rows(a: np.ndarray) -> list:
            # (T,) or (T, O) -> T rows of O numbers (null where there is no prediction)
            a = a.reshape(len(v), -1)
            return [r if all(map(math.isfinite, r)) else None for r in a.tolist()]

        result = {
            "score": score.tolist(),
            "is_anomaly": out["is_anomaly"].tolist(),
            "prediction": rows(out["prediction"]),
            "error": [e if math.isfinite(e) else None for e in out["error"].tolist()],
        }
        if "std" in out:
            result["std"] = rows(out["std"])
        return result

    # -- streams -------------------------------------------------------------------------------
    def stream_unsupported(self) -> str | None:
        if self.model.method == "dynamic":
            return (
                f"model {self.name!r} cannot stream: threshold 'dynamic' looks ahead over a window "
                "of errors; streams need fixed:V or quantile:Q"
            )
        return None

    def new_stream(self, options: dict[str, Any] | None = None):
        self.require("streams")
        options = dict(options or {})
        start = options.pop("start", None) or "saved"
        warmup = options.pop("warmup", None)
        if options:
            raise ConfigError(f"{', '.join(sorted(options))}: unknown stream option")
        if start not in STARTS:
            raise ConfigError(f"start: expected one of {', '.join(STARTS)}, got {start!r}")
        if start == "saved":
            if warmup is not None:
                raise ConfigError(
                    "warmup: only for start 'fresh' (a saved stream keeps its own warm-up)"
                )
            return self.model.stream_from_state(self.saved)
        return self.model.new_stream(0 if warmup is None else warmup)

    def dump_state(self, state) -> dict[str, Any]:
        return pack_floats(self.model.state_dict(state))

    def load_state(self, data: dict[str, Any]):
        state = unpack_floats(data, f"model {self.name!r}")
        try:
            return self.model.stream_from_state(state)
        except ConfigError as e:
            raise ConfigError(f"model {self.name!r}: stream state: {e}") from None

    def observe(
        self, state, points: np.ndarray, timestamps: list[str] | None = None
    ) -> tuple[Any, list[dict[str, Any]]]:
        self.require("streams")
        # every check first: update() then has nothing left to refuse halfway through the points
        v, ts = self._inputs(points, timestamps, "points")
        update, results = self.model.update, []
        with np.errstate(over="ignore", invalid="ignore"):
            for i in range(len(v)):
                score, flag = update(v[i], None if ts is None else ts[i], stream=state)
                if not math.isfinite(score):
                    raise DataError(f"points[{i}]: the detector's score is not finite")
                results.append({"score": score, "is_anomaly": flag})
        return state, results


ADAPTERS: dict[str, type[ModelAdapter]] = {
    "classifier": ClassifierAdapter,
    "forecaster": ForecasterAdapter,
    "detector": DetectorAdapter,
}


def parse_model_spec(spec: str) -> tuple[str, Path]:
    """``DIR`` -> (DIR's last path component, DIR); ``NAME=DIR`` -> (NAME, DIR)."""
    name = None
    path_text = spec
    if "=" in spec and not os.path.isdir(spec):
        name, path_text = spec.split("=", 1)
    path = Path(path_text)
    if name is None:
        name = os.path.basename(os.path.normpath(os.path.abspath(path)))
    if not NAME_RE.match(name):
        raise ConfigError(
            f"model name {name!r} (from {spec!r}): expected letters, digits, '.', '_' or '-' "
            "(at most 64, starting with a letter or digit); name it with NAME=DIR"
        )
    return name, path


def load_adapter(name: str, path: Path, *, threads: int | None = None) -> ModelAdapter:
    """Load the model directory at ``path`` behind the adapter for its kind."""
    if not path.is_dir():
        raise ArtifactError(f"{path}: not a model directory")
    kind = model_kind(path)
    cls = ADAPTERS.get(kind)
    if cls is None:
        raise ConfigError(
            f"{path}: model kind {kind!r} cannot be served yet (servable: {', '.join(ADAPTERS)})"
        )
    return cls(name, path, threads=threads)


def load_models(specs: list[str], *, threads: int | None = None) -> dict[str, ModelAdapter]:
    """Load every ``DIR`` or ``NAME=DIR`` once; names must be unique."""
    if not specs:
        raise ConfigError("models: expected at least one model directory, got none")
    models: dict[str, ModelAdapter] = {}
    for spec in specs:
        name, path = parse_model_spec(spec)
        if name in models:
            raise ConfigError(
                f"model name {name!r} is given twice ({models[name].path} and {path}); "
                "name them apart with NAME=DIR"
            )
        models[name] = load_adapter(name, path, threads=threads)
    # loaders may set the thread count their own way: the one asked for is the last word
    runtime.configure(threads)
    return models
