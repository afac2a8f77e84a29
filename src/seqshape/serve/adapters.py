"""What the server needs from a model, behind one small interface per model kind.

The HTTP layer (app.py) parses and limits requests, then calls a `ModelAdapter`; the adapter calls
the library. An adapter is loaded once and called from many requests, so it keeps no per-request
state: a stream's state is a value the server owns, hands to `observe` and keeps (live in memory,
as JSON in SQLite) with what `observe` returns.

    describe()                           -> {"mode", "input", "output", "version", ...}
    predict(sequences)                   -> one {"class", "probabilities"} per sequence  (classifier)
    forecast(history, k, future_covs, timestamps, series) -> {"point", intervals...} (forecaster)
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
the residual, and the forecast of the next point. A forecast request and a stream name their
series (``series``) when the model scales each of its series on its own. Detectors
(`DetectorAdapter`) serve "detect" and "streams": a stream point is one row of O values (+ its
timestamp), its result the anomaly score and flag that `AnomalyDetector.update` gives.

Layout: adapter_base.py holds `ModelAdapter` and the shared helpers (re-exported here);
forecast_adapter.py the forecasters' adapter; this module the others, the registry and the loaders.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import kinds, runtime
from ..artifacts import model_kind
from ..errors import ArtifactError, ConfigError, DataError, ShapeError
from ..models.encoder import CELLS
from ..shapes import describe
from .adapter_base import (  # noqa: F401 (re-exported: the shared interface and helpers)
    NEEDS,
    PACK_MIN,
    ModelAdapter,
    NotSupportedError,
    _as_float32,
    _legend,
    _scaled32,
    model_version,
    pack_floats,
    pack_tensors,
    parse_timestamps,
    unpack_floats,
    unpack_tensors,
)
from .forecast_adapter import ForecasterAdapter  # noqa: E402, F401 (re-exported)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
STARTS = ("saved", "fresh")


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
        self.hc_shape = (CELLS[cfg.cell].n_states, cfg.num_layers, 1, cfg.hidden_size)
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
        if self.net.kernel_part is not None:
            return (
                f"model {self.name!r} cannot stream: its kernel part reads the steps around each "
                "one (train it with --kernels 0)"
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
                + (["std"] if cfg.has_std else []),
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
    cls = kinds.resolve(kind, "adapter", where=str(path), what="the server")
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
