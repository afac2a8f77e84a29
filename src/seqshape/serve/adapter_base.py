"""The server's model interface (`ModelAdapter`) and the helpers every adapter shares: parsing
timestamps, float32 range checks, and packing stream states into JSON-safe, bit-exact values.

The interface and what each kind serves are described in `seqshape.serve.adapters`, which also
re-exports everything here.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..errors import ConfigError, DataError, ShapeError
from ..shapes import LEGEND

NEEDS = {
    "predict": "a classifier",
    "forecast": "a forecaster",
    "detect": "an anomaly detector",
    "streams": "a streamable model",
}


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
        series: int | str | None = None,
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
                "take no options (start and warmup are for anomaly detectors, series for "
                "forecasters)"
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
