"""Per-feature standardisation of variable-length sequences (`StandardScaler`), and of time
series (`Scaling`: per series or global, fitted on each series' training part only).

The scaler is fitted on the real steps of a list of ``(T_i, F)`` arrays — never on a padded
batch, whose zero steps would drag the mean towards 0 and shrink the spread. It is saved as plain
JSON (``to_dict``/``from_dict``) next to the model weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from ..shapes import check_feature_counts
from .sequences import check_finite

if TYPE_CHECKING:
    from .series import SeriesData


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


# -- time series: one mean and std per series (or one for all), fitted on the training part --
@dataclass
class Scaling:
    """Per-series (or global) mean/std of z = [target, past_cov] and of the known covariates.

    Values are scaled as (x - z_mean) / z_std. Rule "standard": the training part's mean and
    std. Rule "mean" (count heads): z_mean 0 and z_std = 1 + the training part's mean, counts
    divided by their level and never centred (DeepAR's scale, Salinas et al., IJF 2020); the
    JSON keeps the same fields either way. Rule "level" (a log window norm): z_mean 0 and z_std =
    the training part's mean, values divided by their level, so they stay positive (each must be
    > 0). Known covariates are always standardised.
    """

    z_mean: np.ndarray  # (S, O+Cp)
    z_std: np.ndarray
    f_mean: np.ndarray  # (S, Cf)
    f_std: np.ndarray
    global_: bool = False

    RULES = ("standard", "mean", "level")

    @classmethod
    def fit(
        cls, series: list[SeriesData], ends: list[int], global_: bool, rule: str = "standard"
    ) -> Scaling:
        if rule not in cls.RULES:
            raise ConfigError(f"scaling rule: expected one of {', '.join(cls.RULES)}, got {rule!r}")
        zs = [s.z[:e] for s, e in zip(series, ends)]
        fs = [s.future_cov[:e] for s, e in zip(series, ends)]
        if rule in ("mean", "level"):
            from ..errors import DataError

            for s, z in zip(series, zs):
                bad = np.argwhere(z < 0 if rule == "mean" else ~(z > 0))
                if len(bad):
                    r, col = (int(v) for v in bad[0])
                    want = (
                        "a count head expects counts >= 0"
                        if rule == "mean"
                        else "window_norm 'log' expects values > 0"
                    )
                    raise DataError(
                        f"{s.name}: row {r}, column {col}: {want}, got {float(z[r, col]):g}"
                    )
        if global_:
            zs, fs = [np.concatenate(zs)], [np.concatenate(fs)]
        stat = lambda arrs, f: np.stack([f(a, axis=0) for a in arrs]).astype(np.float32)  # noqa: E731
        z_std = stat(zs, np.std)
        f_std = stat(fs, np.std)
        if rule == "mean":
            # counts: divided by 1 + their mean, not centred (a rate stays a rate)
            z_mean = np.zeros_like(z_std)
            z_std = (1.0 + stat(zs, np.mean)).astype(np.float32)
        elif rule == "level":
            # positive values divided by their level: a log window norm then removes it exactly
            z_mean = np.zeros_like(z_std)
            z_std = stat(zs, np.mean)
        else:
            z_mean = stat(zs, np.mean)
        return cls(
            z_mean=z_mean,
            z_std=np.where(z_std > 1e-8, z_std, 1.0).astype(np.float32),
            f_mean=stat(fs, np.mean),
            f_std=np.where(f_std > 1e-8, f_std, 1.0).astype(np.float32),
            global_=global_,
        )

    def row(self, i: int) -> int:
        return 0 if self.global_ else i

    def apply(
        self, series: list[SeriesData], rows: list[int] | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each series scaled with its row's statistics (``rows``: which fitted series each one
        is; default: the i-th is the i-th) -> per series (z (T, O+Cp), f (T, Cf)) float32, what
        `seqshape.data.windows.gather` reads."""
        rows = list(range(len(series))) if rows is None else rows
        out = []
        for i, s in zip(rows, series):
            r = self.row(i)
            z = (s.z - self.z_mean[r]) / self.z_std[r]
            f = (s.future_cov - self.f_mean[r]) / self.f_std[r]
            out.append((z.astype(np.float32), f.astype(np.float32)))
        return out

    def to_dict(self) -> dict:
        return {
            k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()
        }

    @classmethod
    def from_dict(cls, d: dict) -> Scaling:
        arr = lambda k: np.asarray(d[k], dtype=np.float32)  # noqa: E731
        return cls(arr("z_mean"), arr("z_std"), arr("f_mean"), arr("f_std"), bool(d["global_"]))

    @classmethod
    def loaded(cls, pre: dict, n_fed: int, n_future: int, where) -> Scaling:
        """A model's preprocessing.json ``scaling``, checked: (S, O+Cp) and (S, Cf) finite means
        and positive stds, S >= 1 (a damaged one is an ArtifactError naming ``where``)."""
        from ..errors import ArtifactError

        try:
            sc = cls.from_dict(pre["scaling"])
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise ArtifactError(f"{where}: field 'scaling' is damaged ({e})") from None
        S = sc.z_mean.shape[0] if sc.z_mean.ndim == 2 else 0
        for name, cols in (("z", n_fed), ("f", n_future)):
            mean, std = getattr(sc, f"{name}_mean"), getattr(sc, f"{name}_std")
            if S < 1 or mean.shape != (S, cols) or std.shape != (S, cols):
                raise ArtifactError(
                    f"{where}: scaling.{name}_mean/{name}_std: expected shape (S, {cols}) each, "
                    f"got {mean.shape} and {std.shape}"
                )
            if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
                raise ArtifactError(
                    f"{where}: scaling.{name}_mean/{name}_std: expected finite means and positive stds"
                )
        if not isinstance(pre["scaling"].get("global_"), bool):
            raise ArtifactError(f"{where}: scaling.global_: expected true or false")
        return sc
