"""Residual-to-score transforms: forecast errors in, anomaly scores in [0, 1] out.

Each transform gives the same numbers whether a series is scored in one batch or one point at
a time (DESIGN fact 3): :class:`TailProbabilityScorer` runs both paths through the same
per-point update, and :func:`gaussian_nll_score` is pointwise.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, ShapeError

__all__ = ["TailProbabilityScorer", "gaussian_nll_score"]

_STATE_KIND = "TailProbabilityScorer"
_STATE_VERSION = 1


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


class TailProbabilityScorer:
    """Absolute forecast errors -> how far in the upper tail their recent mean lies, in [0, 1].

    The idea of Numenta's "anomaly likelihood" (Ahmad et al., Neurocomputing 2017), applied to
    forecast errors: at step ``t``

    * ``m_t`` is the mean of the last ``short_window`` absolute errors (up to and including t);
    * ``mu, sigma`` are the mean and standard deviation of the ``window`` values
      ``m_{t-window} .. m_{t-1}`` that came before (the long-run behaviour of ``m``);
    * the score is the normal CDF ``Phi((m_t - mu) / max(sigma, floor))``: 1 minus the Gaussian
      upper-tail probability, near 1 when recent errors are unusually large, 0.5 when typical.
      ``floor = max(min_std, rel_min_std * mu)`` keeps a near-constant error history from
      turning every wobble into an alarm.

    Until ``min_history`` earlier means exist the score is 0.5 (no evidence either way). The
    score at ``t`` uses errors up to ``t`` only. State is a few running sums and the two
    buffers; :meth:`state_dict` is JSON-safe, so a stream can be persisted and resumed with
    identical numbers. The running sums are recomputed exactly from the buffers every
    ``window`` steps, so rounding never drifts.
    """

    def __init__(
        self,
        *,
        window: int = 1000,
        short_window: int = 10,
        min_history: int | None = None,
        min_std: float = 1e-12,
        rel_min_std: float = 0.01,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ConfigError(f"window: expected an int >= 2, got {window!r}")
        if isinstance(short_window, bool) or not isinstance(short_window, int) or short_window < 1:
            raise ConfigError(f"short_window: expected an int >= 1, got {short_window!r}")
        if min_history is None:
            min_history = min(window, max(2, short_window))
        if isinstance(min_history, bool) or not isinstance(min_history, int):
            raise ConfigError(f"min_history: expected an int, got {min_history!r}")
        if not 2 <= min_history <= window:
            raise ConfigError(
                f"min_history: expected 2 <= min_history <= window={window}, got {min_history}"
            )
        if not (math.isfinite(min_std) and min_std > 0):
            raise ConfigError(f"min_std: expected a finite number > 0, got {min_std!r}")
        if not (math.isfinite(rel_min_std) and rel_min_std >= 0):
            raise ConfigError(f"rel_min_std: expected a finite number >= 0, got {rel_min_std!r}")
        self.window = window
        self.short_window = short_window
        self.min_history = min_history
        self.min_std = float(min_std)
        self.rel_min_std = float(rel_min_std)
        self.reset()

    # -------------------------------------------------------------------------- state

    def reset(self) -> None:
        """Forget every error seen."""
        self._errors: deque[float] = deque()
        self._means: deque[float] = deque()
        self._sum_errors = 0.0
        self._shift = 0.0  # the means are summed as (m - shift) to avoid cancellation
        self._sum_dev = 0.0
        self._sum_dev2 = 0.0
        self._until_resync = self.window
        self._count = 0

    @property
    def count(self) -> int:
        """Number of errors seen."""
        return self._count

    def config(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "short_window": self.short_window,
            "min_history": self.min_history,
            "min_std": self.min_std,
            "rel_min_std": self.rel_min_std,
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume the stream, as JSON-safe lists, numbers and strings."""
        return {
            "kind": _STATE_KIND,
            "version": _STATE_VERSION,
            "config": self.config(),
            "errors": list(self._errors),
            "means": list(self._means),
            "sum_errors": self._sum_errors,
            "shift": self._shift,
            "sum_dev": self._sum_dev,
            "sum_dev2": self._sum_dev2,
            "until_resync": self._until_resync,
            "count": self._count,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`; its config must equal this scorer's."""
        if not isinstance(state, Mapping) or state.get("kind") != _STATE_KIND:
            raise ConfigError(
                f"state: expected a {_STATE_KIND} state dict, got {type(state).__name__}"
            )
        if state.get("version") != _STATE_VERSION:
            raise ConfigError(
                f"state.version: expected {_STATE_VERSION}, got {state.get('version')!r}"
            )
        if dict(state.get("config", {})) != self.config():
            raise ConfigError(f"state.config: expected {self.config()}, got {state.get('config')}")
        try:
            errors = [float(x) for x in state["errors"]]
            means = [float(x) for x in state["means"]]
            numbers = [float(state[k]) for k in ("sum_errors", "shift", "sum_dev", "sum_dev2")]
            until_resync, count = int(state["until_resync"]), int(state["count"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"state: missing or malformed field ({exc})") from None
        if len(errors) > self.short_window or len(means) > self.window:
            raise ConfigError(
                f"state: expected at most {self.short_window} errors and {self.window} means, "
                f"got {len(errors)} and {len(means)}"
            )
        if not all(math.isfinite(x) for x in [*errors, *means, *numbers]):
            raise ConfigError("state: expected finite numbers only")
        self._errors = deque(errors)
        self._means = deque(means)
        self._sum_errors, self._shift, self._sum_dev, self._sum_dev2 = numbers
        self._until_resync = until_resync
        self._count = count

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> TailProbabilityScorer:
        """A scorer built from the config stored in ``state`` and resumed from it."""
        try:
            scorer = cls(**dict(state["config"]))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"state.config: malformed ({exc})") from None
        scorer.load_state_dict(state)
        return scorer

    # -------------------------------------------------------------------------- scoring

    def _resync(self) -> None:
        self._sum_errors = math.fsum(self._errors)
        n = len(self._means)
        self._shift = math.fsum(self._means) / n if n else 0.0
        self._sum_dev = math.fsum(m - self._shift for m in self._means)
        self._sum_dev2 = math.fsum((m - self._shift) ** 2 for m in self._means)
        self._until_resync = self.window

    def update(self, error: float) -> float:
        """Feed one forecast error (its absolute value is used); return the score at this step."""
        e = abs(float(error))
        if not math.isfinite(e):
            raise DataError(f"error #{self._count}: expected a finite number, got {error!r}")
        if len(self._errors) == self.short_window:
            self._sum_errors -= self._errors.popleft()
        self._errors.append(e)
        self._sum_errors += e
        m = self._sum_errors / len(self._errors)

        n = len(self._means)
        if n >= self.min_history:
            mean_dev = self._sum_dev / n
            var = max(self._sum_dev2 / n - mean_dev * mean_dev, 0.0)
            mu = self._shift + mean_dev
            sigma = max(math.sqrt(var), self.min_std, self.rel_min_std * abs(mu))
            score = _normal_cdf((m - mu) / sigma)
        else:
            score = 0.5

        if n == self.window:
            old = self._means.popleft() - self._shift
            self._sum_dev -= old
            self._sum_dev2 -= old * old
        self._means.append(m)
        dev = m - self._shift
        self._sum_dev += dev
        self._sum_dev2 += dev * dev
        self._count += 1
        self._until_resync -= 1
        if self._until_resync <= 0:
            self._resync()
        return score

    def score_batch(self, errors: np.ndarray) -> np.ndarray:
        """Score a (T,) stretch of errors, continuing from (and advancing) the current state.

        Equal, number for number, to calling :meth:`update` on each error in turn.
        """
        x = np.asarray(errors, dtype=np.float64)
        if x.ndim != 1:
            raise ShapeError(f"errors: expected shape (T,), got {x.shape}")
        # (T,) one score per error
        return np.array([self.update(e) for e in x.tolist()], dtype=np.float64)


_erf = np.frompyfunc(math.erf, 1, 1)


def gaussian_nll_score(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """How unlikely ``y`` is under a forecast ``N(mean, std^2)``: ``1 -`` the two-sided p-value.

    ``erf(|y - mean| / (std * sqrt 2))`` in [0, 1]: 0 at the forecast mean, 0.95 at two standard
    deviations, monotone in the Gaussian negative log-likelihood for a fixed ``std``. Arrays
    broadcast; pointwise, so batch and streaming calls agree exactly.
    """
    y_ = np.asarray(y, dtype=np.float64)
    mean_ = np.asarray(mean, dtype=np.float64)
    std_ = np.asarray(std, dtype=np.float64)
    try:
        shape = np.broadcast_shapes(y_.shape, mean_.shape, std_.shape)
    except ValueError:
        raise ShapeError(
            f"y, mean, std: expected broadcastable shapes, got {y_.shape}, {mean_.shape}, {std_.shape}"
        ) from None
    if not (np.isfinite(std_).all() and (std_ > 0).all()):
        raise DataError("std: expected finite values > 0, got a zero, negative or non-finite one")
    if not (np.isfinite(y_).all() and np.isfinite(mean_).all()):
        raise DataError("y, mean: expected finite values, got a NaN or infinity")
    z = np.abs(y_ - mean_) / (std_ * math.sqrt(2.0))
    # broadcast (y, mean, std) -> one score per element
    out = np.asarray(_erf(np.broadcast_to(z, shape)), dtype=np.float64)
    return out if shape else float(out)
