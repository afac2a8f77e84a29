"""What the server needs from a model, behind one small interface per model kind.

The HTTP layer (app.py) parses and limits requests, then calls a `ModelAdapter`; the adapter calls
the library. An adapter is loaded once and called from many requests, so it keeps no per-request
state: a stream's recurrent state is a JSON-safe ``dict`` the server owns, hands to `observe` and
stores (in memory and in SQLite) with what `observe` returns.

    describe()                           -> {"mode", "input", "output", "version", ...}
    predict(sequences)                   -> one {"class", "probabilities"} per sequence  (classifier)
    forecast(history, k, future_covs, timestamps) -> {"point", intervals...}               (forecaster)
    new_stream()                         -> state
    observe(state, points)               -> (new state, one result per point)

Every method a kind cannot serve raises `NotSupportedError` naming the model, its kind and the kind
the endpoint needs (HTTP 400). Sequences and observed points arrive as float64 (T, F) arrays whose F
the server has checked against ``features``; forecast inputs arrive rectangular but unchecked.

Forecasters (`ForecasterAdapter`) serve "forecast" and "streams": a stream point is one row
[targets O, past covariates Cp, known covariates Cf]; its result holds the one-step forecast that was
made for it before it arrived, the residual, and the forecast of the next point.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..artifacts import model_kind
from ..errors import ArtifactError, ConfigError, DataError, ShapeError
from ..shapes import LEGEND, describe

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NEEDS = {"predict": "a classifier", "forecast": "a forecaster", "streams": "a streamable model"}


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
    serves: tuple[str, ...] = ()  # of "predict", "forecast", "streams"

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

    def stream_unsupported(self) -> str | None:
        """Why this model cannot stream, or None when it can."""
        return f"model {self.name!r} is a {self.kind}; streams need {NEEDS['streams']}"

    def new_stream(self) -> dict[str, Any]:
        raise NotSupportedError(self.stream_unsupported() or "")

    def observe(
        self, state: dict[str, Any], points: np.ndarray
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        raise NotSupportedError(self.stream_unsupported() or "")


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


class ClassifierAdapter(ModelAdapter):
    """`SequenceClassifier`: (T, F) sequences of any lengths -> one of N classes.

    Streams feed one step per observed point through the encoder's cell (`SequenceEncoder.step`)
    and answer the class probabilities of the prefix seen so far — the same numbers as
    ``predict_proba`` on that prefix. That holds for unidirectional encoders with pooling "last";
    other classifiers answer streams with a 400.
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

    def _result(self, proba: np.ndarray, where: str) -> dict[str, Any]:
        if not np.isfinite(proba).all():
            raise DataError(
                f"{where}: the model's output is not finite — input values too large for it?"
            )
        best = int(proba.argmax())
        return {
            "class": self.classes[best],
            "probabilities": {c: float(p) for c, p in zip(self.labels, proba)},
        }

    def predict(self, sequences: list[np.ndarray]) -> list[dict[str, Any]]:
        X = [_as_float32(a, f"sequences[{i}]") for i, a in enumerate(sequences)]
        with np.errstate(over="ignore", invalid="ignore"):
            proba = self.model.predict_proba(X)
        return [self._result(p, f"sequences[{i}]") for i, p in enumerate(proba)]

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
        return None

    def new_stream(self) -> dict[str, Any]:
        self.require("streams")
        # (L, 1, H) zeros for h (and c)
        return pack_tensors(self.net.encoder.init_state(1))

    def observe(
        self, state: dict[str, Any], points: np.ndarray
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        self.require("streams")
        cfg = self.model.config
        shape = (2 if self.is_lstm else 1, cfg.num_layers, 1, cfg.hidden_size)
        st = unpack_tensors(state, shape, f"model {self.name!r}")
        _as_float32(points, "points")
        scaled = points if self.mean is None else (points - self.mean) / self.std
        with np.errstate(over="ignore"):
            x = scaled.astype(np.float32)
        if not np.isfinite(x).all():
            j = int(np.argwhere(~np.isfinite(x))[0][0])
            raise DataError(f"points[{j}]: out of range once scaled by the model's scaler")
        # (P, F) float32, one row per observed point
        xt = torch.from_numpy(x)
        outs = []
        with torch.no_grad():
            for i in range(len(xt)):
                # (1, F) -> (1, H): one cell step per layer with the carried state
                out, st = self.net.encoder.step(xt[i : i + 1], st)
                outs.append(out)
            # P x (1, H) -> (P, H) -> (P, N)
            proba = torch.softmax(self.net.head(torch.cat(outs)), dim=1).numpy()
        results = [self._result(p, f"points[{i}]") for i, p in enumerate(proba)]
        return pack_tensors(st), results


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

    One row (of a history or a stream) is [targets O, past covariates Cp, known covariates Cf].
    Models trained with calendar ("auto") known covariates take their rows without the calendar
    columns and compute them from ``timestamps`` (forecast only; such models do not stream).

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
        sc = self.model.scaling
        self.z_mean, self.z_std = sc.z_mean[0].astype(np.float64), sc.z_std[0].astype(np.float64)
        self.f_mean, self.f_std = sc.f_mean[0].astype(np.float64), sc.f_std[0].astype(np.float64)
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
        try:
            ts = np.array(timestamps, dtype="datetime64[ns]")
        except ValueError as e:
            raise DataError(f"timestamps: expected ISO dates such as 1960-12-01 ({e})") from None
        if len(ts) == t:
            ts = np.concatenate([ts, future_timestamps(ts, k, freq=self.freq)])
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
        if self.auto:
            return (
                f"model {self.name!r} cannot stream: its calendar covariates need timestamps, "
                "which observe does not take yet"
            )
        return None

    def _hc_shape(self) -> tuple[int, ...]:
        cfg = self.model.config
        return (2 if cfg.cell == "lstm" else 1, cfg.num_layers, 1, cfg.hidden_size)

    def new_stream(self) -> dict[str, Any]:
        self.require("streams")
        return {"seen": 0, "hc": None, "offset": None, "buffer": None}

    def _unscaled(self, p: torch.Tensor) -> list[float]:
        """(1, 1, Z, P) parameters at the stream's level -> the O targets' point, original units."""
        # (1, 1, Z, P) -> (Z,) -> (O,)
        point = self.net.point(p)[0, 0, : self.O].numpy().astype(np.float64)
        return (point * self.z_std[: self.O] + self.z_mean[: self.O]).tolist()

    def observe(
        self, state: dict[str, Any], points: np.ndarray
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        self.require("streams")
        where = f"model {self.name!r}"
        W = self.Z + self.Cf
        try:
            seen = int(state["seen"])
            n_buf = 0 if state["buffer"] is None else int(state["buffer"]["shape"][1])
            encoded = state["hc"] is not None
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ConfigError(f"{where}: stream state is damaged ({e})") from None
        hc = unpack_tensors(state["hc"], self._hc_shape(), where) if encoded else None
        off = unpack_tensors(state["offset"], (1, 1, 1, self.Z), where)[0] if encoded else None
        buf = list(unpack_tensors(state["buffer"], (1, n_buf, W), where)[0]) if n_buf else []
        _as_float32(points, "points")
        mean = np.concatenate([self.z_mean, self.f_mean])
        std = np.concatenate([self.z_std, self.f_std])
        with np.errstate(over="ignore"):
            x = ((points - mean) / std).astype(np.float32)
        if not np.isfinite(x).all():
            j = int(np.argwhere(~np.isfinite(x))[0][0])
            raise DataError(f"points[{j}]: out of range once scaled by the model's scaling")
        # (P, W) float32 scaled rows: [z (O+Cp), known covariates (Cf)]
        rows = torch.from_numpy(x)
        net, Z, results = self.net, self.Z, []
        with torch.no_grad():
            for i in range(len(rows)):
                row = rows[i]
                res: dict[str, Any] = {"forecast": None, "residual": None, "next": None}
                pred = nxt = None
                if not encoded:
                    buf.append(row)
                    if len(buf) == self.need + (1 if self.Cf else 0):
                        # n x (W,) -> (1, n, W): the buffered window, read by one encoder pass
                        win = torch.stack(buf).unsqueeze(0)
                        hist = win[:, : self.need, :Z]
                        # (1, N, Z) -> (1, 1, Z): the level kept for the rest of the stream
                        off = net.offset(hist)
                        out, hc = net.encode(hist - off, win[:, :, Z:] if self.Cf else None)
                        encoded = True
                        buf = [row] if self.Cf else []
                        if self.Cf:
                            pred = out
                        else:
                            nxt = out
                elif self.Cf:
                    # (Z,) ++ (Cf,) -> (1, Z+Cf): the pending point with this point's covariates
                    x_t = net.step_inputs((buf[0][:Z] - off[0, 0]).unsqueeze(0), row[Z:][None])
                    pred, hc = net.encoder.step(x_t, hc)
                    buf = [row]
                else:
                    # (L, 1, H) -> (1, H): the top layer's state predicts this point
                    pred = hc[0][-1]
                    # (Z,) -> (1, Z): one cell step with this point at the stream's level
                    nxt, hc = net.encoder.step((row[:Z] - off[0, 0]).unsqueeze(0), hc)
                if pred is not None:
                    # (1, H) -> (1, 1, Z, P) at the stream's level
                    res["forecast"] = self._unscaled(net.unshift(net.params(pred)[:, None], off))
                    res["residual"] = [
                        float(points[i, j]) - res["forecast"][j] for j in range(self.O)
                    ]
                if nxt is not None:
                    res["next"] = self._unscaled(net.unshift(net.params(nxt)[:, None], off))
                for key in ("forecast", "next"):
                    if res[key] is not None and not np.isfinite(res[key]).all():
                        raise DataError(
                            f"points[{i}]: the model's forecast is not finite — values too large?"
                        )
                results.append(res)
        new_state = {
            "seen": seen + len(rows),
            "hc": pack_tensors(hc) if encoded else None,
            "offset": pack_tensors((off,)) if encoded else None,
            # n x (W,) -> (1, n, W)
            "buffer": pack_tensors((torch.stack(buf),)) if buf else None,
        }
        return new_state, results


ADAPTERS: dict[str, type[ModelAdapter]] = {
    "classifier": ClassifierAdapter,
    "forecaster": ForecasterAdapter,
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
    return models
