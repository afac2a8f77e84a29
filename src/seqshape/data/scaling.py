"""Per-feature standardisation of variable-length sequences.

The scaler is fitted on the real steps of a list of ``(T_i, F)`` arrays — never on a padded
batch, whose zero steps would drag the mean towards 0 and shrink the spread. It is saved as plain
JSON (``to_dict``/``from_dict``) next to the model weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..shapes import check_feature_counts
from .sequences import check_finite


class StandardScaler:
    """``(x - mean) / std`` per feature; a constant feature gets std 1 (it maps to 0)."""

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None  # (F,) float64
        self.std: np.ndarray | None = None  # (F,) float64

    @property
    def fitted(self) -> bool:
        return self.mean is not None

    @property
    def n_features(self) -> int:
        self._require_fitted()
        assert self.mean is not None
        return int(self.mean.shape[0])

    def fit(self, X: Sequence[np.ndarray], *, name: str = "X") -> StandardScaler:
        """Fit mean and population std per feature over every step of every sequence."""
        arrays = [np.asarray(a, dtype=np.float64) for a in X]
        check_feature_counts(arrays, name=name)
        check_finite(arrays, name=name)
        n = sum(a.shape[0] for a in arrays)
        # (T_i, F) -> (F,): summed over steps, then over sequences
        mean = np.sum([a.sum(axis=0) for a in arrays], axis=0) / n
        # (F,): two passes, so large offsets do not cancel the variance
        var = np.sum([((a - mean) ** 2).sum(axis=0) for a in arrays], axis=0) / n
        lo = np.min([a.min(axis=0) for a in arrays], axis=0)
        hi = np.max([a.max(axis=0) for a in arrays], axis=0)
        std = np.sqrt(var)
        # a constant feature (exactly, not by rounding) keeps its scale: no division by ~0
        std[(lo == hi) | (std == 0.0)] = 1.0
        self.mean, self.std = mean, std
        return self

    def transform(self, X: Sequence[np.ndarray], *, name: str = "X") -> list[np.ndarray]:
        """Scaled copies of the (T_i, F) arrays, float32."""
        arrays = self._check(X, name)
        return [((a - self.mean) / self.std).astype(np.float32) for a in arrays]

    def inverse_transform(self, X: Sequence[np.ndarray], *, name: str = "X") -> list[np.ndarray]:
        """Undo :meth:`transform`: ``x * std + mean``, float32."""
        arrays = self._check(X, name)
        return [(a * self.std + self.mean).astype(np.float32) for a in arrays]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: ``{"kind": "standard", "mean": [...], "std": [...]}``."""
        self._require_fitted()
        assert self.mean is not None and self.std is not None
        return {
            "kind": "standard",
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StandardScaler:
        """Rebuild a fitted scaler from :meth:`to_dict` output, checking every field."""
        if not isinstance(d, dict):
            raise ConfigError(f"scaler: expected a dict, got {type(d).__name__}")
        if d.get("kind") != "standard":
            raise ConfigError(f"scaler.kind: expected 'standard', got {d.get('kind')!r}")
        values = {}
        for key in ("mean", "std"):
            v = d.get(key)
            if not isinstance(v, list) or not v:
                raise ConfigError(f"scaler.{key}: expected a non-empty list of numbers, got {v!r}")
            try:
                arr = np.array(v, dtype=np.float64)
            except (TypeError, ValueError):
                raise ConfigError(f"scaler.{key}: expected numbers, got {v!r}") from None
            if arr.ndim != 1 or not np.isfinite(arr).all():
                raise ConfigError(f"scaler.{key}: expected finite numbers, got {v!r}")
            values[key] = arr
        if values["mean"].shape != values["std"].shape:
            raise ConfigError(
                f"scaler: expected as many std values as mean values ({values['mean'].size}), "
                f"got {values['std'].size}"
            )
        if (values["std"] <= 0).any():
            raise ConfigError(f"scaler.std: expected positive values, got {d['std']!r}")
        scaler = cls()
        scaler.mean, scaler.std = values["mean"], values["std"]
        return scaler

    def _require_fitted(self) -> None:
        if self.mean is None:
            raise ConfigError("StandardScaler is not fitted: call fit(X) first")

    def _check(self, X: Sequence[np.ndarray], name: str) -> list[np.ndarray]:
        self._require_fitted()
        arrays = [np.asarray(a, dtype=np.float64) for a in X]
        check_feature_counts(arrays, name=name, features=self.n_features)
        check_finite(arrays, name=name)
        return arrays

    def __repr__(self) -> str:
        state = f"F={self.n_features}" if self.fitted else "not fitted"
        return f"StandardScaler({state})"


def znorm_each(X: Sequence[np.ndarray], *, name: str = "X") -> list[np.ndarray]:
    """Each sequence z-normalised on its own, per feature, over its own (valid) steps, float32.

    The UCR convention for classification: shape, not level or amplitude. A feature that is
    constant within a sequence maps to 0. Nothing is fitted, so nothing is saved but the choice.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in X]
    check_feature_counts(arrays, name=name)
    check_finite(arrays, name=name)
    out = []
    for a in arrays:
        # (T, F) -> (F,) mean and population std over this sequence's steps
        mean, std = a.mean(axis=0), a.std(axis=0)
        std[std < 1e-8 * np.maximum(1.0, np.abs(mean))] = np.inf  # constant: (a - mean) / inf = 0
        out.append(((a - mean) / std).astype(np.float32))
    return out
