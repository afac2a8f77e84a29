"""What defines an `AnomalyDetector` (see `seqshape.anomaly.detector`): its config, saved as JSON
in its model directory, the threshold rules and the time-of-day covariates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import config_from_dict
from ..errors import ConfigError
from ..models.forecaster import ForecasterConfig

SCORES = ("rank", "tail", "likelihood")
HEADS = ("mse", "gaussian")

__all__ = ["DetectorConfig", "parse_threshold", "time_of_day"]


def parse_threshold(spec: str) -> tuple[str, float | None]:
    """``"fixed:V"`` | ``"quantile:Q"`` | ``"dynamic"`` -> (method, value)."""
    if not isinstance(spec, str):
        raise ConfigError(f"threshold: expected fixed:V, quantile:Q or dynamic, got {spec!r}")
    method, _, raw = spec.partition(":")
    method = method.strip().lower()
    if method == "dynamic" and not raw:
        return "dynamic", None
    if method in ("fixed", "quantile") and raw:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if method == "fixed" and math.isfinite(value):
            return method, value
        if method == "quantile" and 0.0 <= value <= 1.0:
            return method, value
    raise ConfigError(
        f"threshold: expected fixed:V (a number), quantile:Q (0 <= Q <= 1) or dynamic, got {spec!r}"
    )


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """Everything that defines a detector; saved as JSON in its model directory."""

    n_targets: int = 1  # O value columns
    calendar: bool = True  # time-of-day sin/cos as known covariates (needs timestamps)
    hidden_size: int = 32
    num_layers: int = 1
    chunk: int = 64  # training chunk length (the lookback); training needs chunk + 1 rows
    head: str = "gaussian"  # "mse" (a point) or "gaussian" (mean and std; needed by "likelihood")
    epochs: int = 30
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    score: str = "rank"
    smoothing: tuple[int, ...] = (1, 10)  # "rank"/"tail": means of the last s errors, max over s
    history: int = 5000  # "rank": errors remembered
    min_history: int = 20  # "rank": errors needed before the first non-zero score
    record_power: float = 4.0  # "rank": weight of a new record's margin over the previous max
    score_cap: float = 8.0  # "rank": -log10 p of this size maps to a score of 1
    tail_window: int = 1000  # "tail": TailProbabilityScorer window
    record_margin: float | None = 0.003  # value records (see the module docstring); None: off
    hold: int = 0  # 0: off; k: a score counts only above the previous k-1 base scores
    threshold: str = "fixed:0.5"

    def __post_init__(self) -> None:
        ints = {
            "n_targets": 1,
            "hidden_size": 1,
            "num_layers": 1,
            "chunk": 2,
            "epochs": 1,
            "batch_size": 1,
            "history": 2,
            "min_history": 1,
            "tail_window": 2,
            "hold": 0,
        }
        for name, low in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"{name}: expected an integer >= {low}, got {v!r}")
        if self.head not in HEADS:
            raise ConfigError(f"head: expected one of {', '.join(HEADS)}, got {self.head!r}")
        if self.score not in SCORES:
            raise ConfigError(f"score: expected one of {', '.join(SCORES)}, got {self.score!r}")
        if self.score == "likelihood" and not self.has_std:
            raise ConfigError("score: 'likelihood' needs head='gaussian' (a predicted std)")
        smoothing = tuple(self.smoothing) if isinstance(self.smoothing, list | tuple) else ()
        if not smoothing or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in smoothing
        ):
            raise ConfigError(
                f"smoothing: expected a list of integers >= 1, got {self.smoothing!r}"
            )
        object.__setattr__(self, "smoothing", smoothing)
        if self.min_history > self.history:
            raise ConfigError(
                f"min_history: expected <= history={self.history}, got {self.min_history}"
            )
        for name in ("lr", "record_power", "score_cap"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ConfigError(f"{name}: expected a number > 0, got {v!r}")
        if not (isinstance(self.weight_decay, int | float) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay: expected a number >= 0, got {self.weight_decay!r}")
        m = self.record_margin
        if m is not None and not (isinstance(m, int | float) and math.isfinite(m) and m > 0):
            raise ConfigError(f"record_margin: expected a number > 0 or None, got {m!r}")
        parse_threshold(self.threshold)

    @property
    def n_future(self) -> int:
        """Cf: known covariates per step (time of day as sin, cos)."""
        return 2 if self.calendar else 0

    @property
    def has_std(self) -> bool:
        """Whether the head predicts a spread (the Gaussian's std), which "likelihood" needs."""
        from ..models.heads import head_of

        return head_of(self.head).probabilistic

    def forecaster_config(self) -> ForecasterConfig:
        return ForecasterConfig(
            n_targets=self.n_targets,
            n_future=self.n_future,
            lookback=self.chunk,
            horizon=1,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            loss=self.head,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["smoothing"] = list(self.smoothing)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: Path) -> DetectorConfig:
        d = dict(d)
        if "smoothing" in d and isinstance(d["smoothing"], list):
            d["smoothing"] = tuple(d["smoothing"])
        return config_from_dict(cls, d, where)


def time_of_day(timestamps: np.ndarray) -> np.ndarray:
    """(T,) datetime64 -> (T, 2) float64: sin and cos of the time of day."""
    ts = np.asarray(timestamps).astype("datetime64[ns]")
    ns = ts.astype(np.int64)
    day = 86_400 * 10**9
    angle = 2.0 * np.pi * (ns % day) / day
    # 2 x (T,) -> (T, 2)
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)
