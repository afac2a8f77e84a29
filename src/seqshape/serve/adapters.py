"""What the server needs from a model, behind one small interface per model kind.

The HTTP layer (app.py) parses and limits requests, then calls a `ModelAdapter`; the adapter calls
the library. An adapter is loaded once and called from many requests, so it keeps no per-request
state: a stream's recurrent state is a JSON-safe ``dict`` the server owns, hands to `observe` and
stores (in memory and in SQLite) with what `observe` returns.

    describe()                           -> {"mode", "input", "output", "version", ...}
    predict(sequences)                   -> one {"class", "probabilities"} per sequence  (classifier)
    forecast(history, k, future_covs)    -> {"point", intervals...}                       (forecaster)
    new_stream()                         -> state
    observe(state, points)               -> (new state, one result per point)

Every method a kind cannot serve raises `NotSupportedError` naming the model, its kind and the kind
the endpoint needs (HTTP 400). Sequences and observed points arrive as float64 (T, F) arrays whose F
the server has checked against ``features``; forecast inputs arrive rectangular but unchecked.

TODO(forecaster): add ``ForecasterAdapter(name, path, *, threads)`` (kind "forecaster",
``serves = ("forecast", "streams")``) when seqshape.api.forecaster lands, and register it in
``ADAPTERS``:
  - load with ``Forecaster.load(path, threads=threads)``; set ``features`` to the numbers in one
    observed point (targets O + past covariates Cp + known covariates Cf, from its ``config``);
  - ``forecast(history, k, future_covariates)`` calls ``Forecaster.forecast(SeriesData(target=...,
    past_cov=..., future_cov=...), k, future_cov=future_covariates)`` and returns JSON lists:
    {"point": (K, O), "quantiles": {q: (K, O)} or "std": (K, O)} (app.py adds "model");
  - ``new_stream()`` packs the zero LSTM state with `pack_tensors`; ``observe(state, points)``
    unpacks it, advances one cell step per point (the forecaster's step over its encoder, as
    ``ClassifierAdapter.observe`` does with ``SequenceEncoder.step``) and returns per point the
    one-step-ahead forecast made before the point arrived and its anomaly score.
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
from ..errors import ArtifactError, ConfigError, DataError
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
        self, history: np.ndarray, k: int, future_covariates: np.ndarray | None
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


ADAPTERS: dict[str, type[ModelAdapter]] = {"classifier": ClassifierAdapter}


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
