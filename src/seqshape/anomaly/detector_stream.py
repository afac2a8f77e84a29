"""The per-point scoring state of `AnomalyDetector` (see `seqshape.anomaly.detector`): the
conformal `RankScorer` and the stream (`DetectorStream`) that the batch and the streaming paths
share, so the two give the same scores. Shapes: O value columns, L layers, H hidden.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import ConfigError
from .scoring import TailProbabilityScorer, gaussian_nll_score

if TYPE_CHECKING:
    from .detector_config import DetectorConfig

ERROR_DECIMALS = 9  # errors are rounded to this before ranking: no tie flips between paths

__all__ = ["DetectorStream", "RankScorer"]


class RankScorer:
    """Errors -> conformal tail scores in [0, 1], batch or streaming (one value at a time).

    At each step the mean ``m`` of the last ``smoothing`` errors is ranked among the earlier
    means (the last ``history`` of them): ``p = (1 + #{earlier >= m}) / (1 + n)``; a new record
    (``m`` above every earlier one) gets ``p = 1 / (1 + n) / (m / max) ** record_power``. The
    score is ``min(-log10 p / cap, 1)``; 0 until ``min_history`` earlier means exist.
    """

    def __init__(
        self,
        *,
        smoothing: int = 1,
        history: int = 20000,
        min_history: int = 20,
        record_power: float = 4.0,
        cap: float = 8.0,
    ) -> None:
        self.smoothing = smoothing
        self.history = history
        self.min_history = min_history
        self.record_power = record_power
        self.cap = cap
        self.reset()

    def reset(self) -> None:
        self._recent: deque[float] = deque()
        self._recent_sum = 0.0
        self._order: deque[float] = deque()  # means in arrival order
        self._sorted: list[float] = []  # the same means, sorted

    def update(self, error: float) -> float:
        e = abs(float(error))
        if len(self._recent) == self.smoothing:
            self._recent.popleft()
        self._recent.append(e)
        # a fresh sum each step (smoothing is small): no rounding drift between paths
        m = round(math.fsum(self._recent) / len(self._recent), ERROR_DECIMALS)
        n = len(self._sorted)
        score = 0.0
        if n >= self.min_history:
            at_least = n - bisect.bisect_left(self._sorted, m)
            if at_least == 0:
                top = self._sorted[-1]
                ratio = m / top if top > 0 else math.inf
                log_p = -math.log10(n + 1) - self.record_power * math.log10(ratio)
            else:
                log_p = math.log10(at_least + 1) - math.log10(n + 1)
            score = min(max(-log_p / self.cap, 0.0), 1.0)
        bisect.insort(self._sorted, m)
        self._order.append(m)
        if len(self._order) > self.history:
            old = self._order.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        return score

    def state_dict(self) -> dict[str, Any]:
        return {"recent": list(self._recent), "means": list(self._order)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            recent = [float(x) for x in state["recent"]]
            means = [float(x) for x in state["means"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"rank scorer state: missing or malformed field ({exc})") from None
        if len(recent) > self.smoothing or len(means) > self.history:
            raise ConfigError(
                f"rank scorer state: expected at most {self.smoothing} recent errors and "
                f"{self.history} means, got {len(recent)} and {len(means)}"
            )
        if not all(math.isfinite(x) for x in [*recent, *means]):
            raise ConfigError("rank scorer state: expected finite numbers only")
        self._recent = deque(recent)
        self._order = deque(means)
        self._sorted = sorted(means)


class DetectorStream:
    """The per-point scoring state shared by the batch and the streaming paths."""

    def __init__(self, config: DetectorConfig, warmup: int = 0) -> None:
        c = config
        self.config = config
        self.warmup = warmup  # the first `warmup` rows are scored 0 and never flagged
        self.count = 0
        self.lo: np.ndarray | None = None  # (O,) running min of the scaled values
        self.hi: np.ndarray | None = None
        self.last_z: np.ndarray | None = None  # (O,) previous scaled value, the next LSTM input
        self.lstm: tuple[torch.Tensor, torch.Tensor] | None = None  # (L, 1, H) each, float64
        self.recent: deque[float] = deque()  # the last hold-1 base scores
        if c.score == "rank":
            self.scorers: list[Any] = [
                RankScorer(
                    smoothing=s,
                    history=c.history,
                    min_history=c.min_history,
                    record_power=c.record_power,
                    cap=c.score_cap,
                )
                for s in c.smoothing
            ]
        elif c.score == "tail":
            self.scorers = [
                TailProbabilityScorer(window=c.tail_window, short_window=s) for s in c.smoothing
            ]
        else:
            self.scorers = []

    @property
    def warming(self) -> bool:
        """Whether the last row advanced was a warm-up row."""
        return self.count <= self.warmup

    def advance(
        self, z: np.ndarray, pred: np.ndarray | None, std: np.ndarray | None
    ) -> tuple[float, float, float]:
        """Score the scaled value ``z`` (O,) against its prediction -> (error, residual score,
        score): the residual score leaves out value records, hold and warm-up."""
        c = self.config
        error, base = 0.0, 0.0
        if pred is not None:
            # (O,) residual -> RMS over columns, rounded so both paths rank identical numbers
            error = round(float(np.sqrt(np.mean((z - pred) ** 2))), ERROR_DECIMALS)
            if c.score == "likelihood":
                base = float(np.max(gaussian_nll_score(z, pred, std)))
            else:
                base = max(s.update(error) for s in self.scorers)
        residual = base
        if c.record_margin is not None and self.lo is not None:
            span = self.hi - self.lo
            # (O,) how far beyond the earlier range each column lies, in units of that range
            beyond = np.where(span > 0, np.maximum(z - self.hi, self.lo - z), 0.0) / np.where(
                span > 0, span, 1.0
            )
            x = float(beyond.max())
            if x > 0:
                log_p = -math.log10(self.count + 1) - x / (c.record_margin * math.log(10))
                base = max(base, min(-log_p / c.score_cap, 1.0))
        self.lo = z.copy() if self.lo is None else np.minimum(self.lo, z)
        self.hi = z.copy() if self.hi is None else np.maximum(self.hi, z)
        score = base
        if c.hold > 0:
            if self.recent and base <= max(self.recent):
                score = 0.0
            self.recent.append(base)
            if len(self.recent) > c.hold - 1:
                self.recent.popleft()
        self.count += 1
        if self.warming:
            score = 0.0
        return error, residual, score

    # -- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        tolist = lambda a: None if a is None else [float(v) for v in np.ravel(a)]  # noqa: E731
        return {
            "warmup": self.warmup,
            "count": self.count,
            "lo": tolist(self.lo),
            "hi": tolist(self.hi),
            "last_z": tolist(self.last_z),
            "h": None if self.lstm is None else self.lstm[0].tolist(),
            "c": None if self.lstm is None else self.lstm[1].tolist(),
            "recent": list(self.recent),
            "scorers": [s.state_dict() for s in self.scorers],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        c = self.config
        O, L, H = c.n_targets, c.num_layers, c.hidden_size

        def vector(key: str) -> np.ndarray | None:
            v = state.get(key)
            if v is None:
                return None
            a = np.asarray(v, dtype=np.float64)
            if a.shape != (O,) or not np.isfinite(a).all():
                raise ConfigError(f"state.{key}: expected {O} finite numbers, got {v!r}")
            return a

        try:
            warmup, count = int(state["warmup"]), int(state["count"])
            recent = [float(x) for x in state["recent"]]
            scorer_states = list(state["scorers"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"state: missing or malformed field ({exc})") from None
        if len(scorer_states) != len(self.scorers):
            raise ConfigError(
                f"state.scorers: expected {len(self.scorers)} scorer states, got {len(scorer_states)}"
            )
        lstm = None
        if state.get("h") is not None:
            try:
                # nested lists -> (L, 1, H) float64
                h = torch.tensor(state["h"], dtype=torch.float64)
                cc = torch.tensor(state["c"], dtype=torch.float64)
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"state.h/c: malformed ({exc})") from None
            for name, t in (("h", h), ("c", cc)):
                if tuple(t.shape) != (L, 1, H):
                    raise ConfigError(
                        f"state.{name}: expected shape ({L}, 1, {H}), got {tuple(t.shape)}"
                    )
            lstm = (h, cc)
        lo, hi, last_z = vector("lo"), vector("hi"), vector("last_z")
        if (lo is None) != (hi is None):
            raise ConfigError(f"state.lo/hi: expected both or neither, got {lo!r} and {hi!r}")
        self.warmup, self.count = warmup, count
        self.lo, self.hi, self.last_z = lo, hi, last_z
        self.lstm = lstm
        self.recent = deque(recent)
        for scorer, s in zip(self.scorers, scorer_states, strict=True):
            scorer.load_state_dict(s)
