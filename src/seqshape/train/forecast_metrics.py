"""Point-forecast metrics on ``(B, K, O)`` arrays (NumPy): MSE, MAE, sMAPE, MASE.

``y`` holds the true values and ``yhat`` the forecasts of B windows, K horizon steps and O target
channels. Each metric averages over every entry; its ``*_by_step`` variant averages over windows
and channels only and returns one value per horizon step, ``(K,)``.

- sMAPE, in percent (0-200): ``mean(200 |y - yhat| / (|y| + |yhat|))`` — the M4 competition's
  definition. A term with ``y = yhat = 0`` is 0/0; it counts as 0 (a perfect forecast of 0),
  while ``y = 0 != yhat`` gives the maximum 200.
- MASE (Hyndman & Koehler, 2006): ``mean(|y - yhat| / scale)`` with ``scale`` the mean absolute
  seasonal difference ``mean_t |x_t - x_{t-m}|`` of the in-sample (training) series x, per
  channel (and per series), m the season (1: the naive forecast's in-sample error). Below 1 the
  forecast beats the in-sample seasonal naive forecast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, ShapeError
from ..models.forecast_units import distribution_std  # noqa: F401 (re-exported; defined there)
from ..shapes import check_shape


def _pair(y: Any, yhat: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y, dtype=np.float64)
    b = np.asarray(yhat, dtype=np.float64)
    sizes = check_shape(a, "B K O", name="y")
    check_shape(b, "B K O", name="yhat", known=sizes)
    for name, arr in (("y", a), ("yhat", b)):
        bad = ~np.isfinite(arr)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DataError(f"{name}: expected finite values, got {arr[where]} at {list(where)}")
    if a.size == 0:
        raise ShapeError(f"y: expected at least one window, step and channel, got {a.shape}")
    return a, b


def _by_step(err: np.ndarray) -> np.ndarray:
    # (B, K, O) -> (K,): mean over windows and channels
    return err.mean(axis=(0, 2))


def mse(y: np.ndarray, yhat: np.ndarray) -> float:
    """Mean squared error over every entry."""
    a, b = _pair(y, yhat)
    return float(np.mean((a - b) ** 2))


def mse_by_step(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """(K,): mean squared error of each horizon step."""
    a, b = _pair(y, yhat)
    return _by_step((a - b) ** 2)


def mae(y: np.ndarray, yhat: np.ndarray) -> float:
    """Mean absolute error over every entry."""
    a, b = _pair(y, yhat)
    return float(np.mean(np.abs(a - b)))


def mae_by_step(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """(K,): mean absolute error of each horizon step."""
    a, b = _pair(y, yhat)
    return _by_step(np.abs(a - b))


def _smape_terms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num = 200.0 * np.abs(a - b)
    den = np.abs(a) + np.abs(b)
    # 0/0 (y = yhat = 0) counts as 0: a perfect forecast
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def smape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Symmetric MAPE in percent (0-200); a 0/0 term counts as 0 (see the module docstring)."""
    a, b = _pair(y, yhat)
    return float(np.mean(_smape_terms(a, b)))


def smape_by_step(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """(K,): sMAPE of each horizon step, in percent."""
    a, b = _pair(y, yhat)
    return _by_step(_smape_terms(a, b))


@dataclass(frozen=True)
class MaseScale:
    """MASE denominators: ``scale`` (O,) for one series or (S, O) for S series, and the season.

    Make it with :func:`mase_scale`; for windows drawn from several series, pick one row per
    window with :meth:`rows` (``scale.rows(batch.series_idx)`` gives (B, O)).
    """

    scale: np.ndarray
    season: int

    def rows(self, series_idx: Any) -> MaseScale:
        """The (B, O) scales of the series each window comes from."""
        if self.scale.ndim != 2:
            raise ShapeError("rows: this MaseScale is for one series (O,); it needs no row pick")
        idx = np.asarray(series_idx, dtype=np.int64)
        if idx.ndim != 1 or ((idx < 0) | (idx >= self.scale.shape[0])).any():
            raise ShapeError(
                f"series_idx: expected (B,) indices in 0..{self.scale.shape[0] - 1}, got {idx}"
            )
        return MaseScale(scale=self.scale[idx], season=self.season)


def _one_scale(x: np.ndarray, m: int, name: str) -> np.ndarray:
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2:
        raise ShapeError(f"{name}: expected (T,) or (T, O), got {x.shape}")
    if x.shape[0] <= m:
        raise DataError(
            f"{name}: the in-sample series needs more than season={m} steps for MASE, "
            f"got {x.shape[0]}"
        )
    if not np.isfinite(x).all():
        raise DataError(f"{name}: expected finite in-sample values, got NaN or inf")
    # (T, O) -> (O,): mean absolute seasonal difference
    scale = np.mean(np.abs(x[m:] - x[:-m]), axis=0)
    if (scale == 0).any():
        j = int(np.argmax(scale == 0))
        raise DataError(
            f"{name}: channel {j}: the in-sample series is constant at lag {m}, so its MASE "
            "scale is 0 (MASE undefined)"
        )
    return scale


def mase_scale(insample: np.ndarray | Sequence[np.ndarray], season: int = 1) -> MaseScale:
    """MASE scales from the in-sample (training) part: one (T, O) series -> (O,); a list of S
    series (or an (S, T, O) array) -> (S, O)."""
    if int(season) != season or season < 1:
        raise ConfigError(f"season: expected a positive integer, got {season!r}")
    m = int(season)
    if isinstance(insample, np.ndarray) and insample.ndim <= 2:
        return MaseScale(scale=_one_scale(insample.astype(np.float64), m, "insample"), season=m)
    scales = [
        _one_scale(np.asarray(x, dtype=np.float64), m, f"insample[{i}]")
        for i, x in enumerate(insample)
    ]
    if not scales or len({s.shape for s in scales}) != 1:
        raise ShapeError("insample: expected a non-empty list of series with one channel count")
    return MaseScale(scale=np.stack(scales), season=m)


def _scaled_errors(a: np.ndarray, b: np.ndarray, scale: MaseScale) -> np.ndarray:
    s = np.asarray(scale.scale, dtype=np.float64)
    bsz, _, o = a.shape
    if s.shape == (o,):
        # (O,) -> (1, 1, O): one series
        s = s[None, None, :]
    elif s.shape == (bsz, o):
        # (B, O) -> (B, 1, O): one row per window
        s = s[:, None, :]
    else:
        raise ShapeError(
            f"scale: expected ({o},) or ({bsz}, {o}) for y of shape {a.shape}, got {s.shape}"
            + (" — pick one row per window with scale.rows(series_idx)" if s.ndim == 2 else "")
        )
    return np.abs(a - b) / s


def _as_scale(insample: Any, season: int | None) -> MaseScale:
    if isinstance(insample, MaseScale):
        if season is not None and season != insample.season:
            raise ConfigError(f"season: {season} differs from the MaseScale's {insample.season}")
        return insample
    return mase_scale(insample, 1 if season is None else season)


def mase(y: np.ndarray, yhat: np.ndarray, insample: Any, season: int | None = None) -> float:
    """Mean absolute scaled error.

    ``insample``: the training part (T, O) or (T,) of the one series every window comes from, or
    a :class:`MaseScale` — for windows of several series, ``mase_scale(train_parts,
    season).rows(series_idx)``. ``season`` (the lag of the scale) defaults to 1.
    """
    a, b = _pair(y, yhat)
    return float(np.mean(_scaled_errors(a, b, _as_scale(insample, season))))


def mase_by_step(
    y: np.ndarray, yhat: np.ndarray, insample: Any, season: int | None = None
) -> np.ndarray:
    """(K,): MASE of each horizon step."""
    a, b = _pair(y, yhat)
    return _by_step(_scaled_errors(a, b, _as_scale(insample, season)))


def evaluate_forecasts(
    y: np.ndarray, yhat: np.ndarray, scale_info: MaseScale | None = None
) -> dict[str, Any]:
    """Every metric, overall and per horizon step, as a JSON-safe dict.

    ``scale_info``: the :class:`MaseScale` of the windows' series (None: no MASE). Keys:
    ``n_windows, horizon, n_targets, mse, mae, smape[, mase, season]`` and ``by_step`` (lists
    of K values per metric). Pass values in the units they should be judged in (inverse the
    scaler first for sMAPE, which is not scale-free).
    """
    a, b = _pair(y, yhat)
    err = a - b
    out: dict[str, Any] = {
        "n_windows": int(a.shape[0]),
        "horizon": int(a.shape[1]),
        "n_targets": int(a.shape[2]),
        "mse": float(np.mean(err**2)),
        "mae": float(np.mean(np.abs(err))),
        "smape": float(np.mean(_smape_terms(a, b))),
    }
    steps = {
        "mse": _by_step(err**2),
        "mae": _by_step(np.abs(err)),
        "smape": _by_step(_smape_terms(a, b)),
    }
    if scale_info is not None:
        scaled = _scaled_errors(a, b, scale_info)
        out["mase"] = float(np.mean(scaled))
        out["season"] = int(scale_info.season)
        steps["mase"] = _by_step(scaled)
    out["by_step"] = {k: [float(v) for v in vals] for k, vals in steps.items()}
    return out


def m4_scores(
    insample: Sequence[np.ndarray], y: Sequence[np.ndarray], yhat: Sequence[np.ndarray], season: int
) -> dict[str, float]:
    """sMAPE and MASE as the M4 competition computed them: for each series, the mean over its
    horizon of ``200 |y - yhat| / (|y| + |yhat|)`` and of ``|y - yhat|`` over the in-sample mean
    absolute difference at lag ``season``; then the mean over the series. ``insample``, ``y`` and
    ``yhat`` are lists of (T_i,), (K,) and (K,) arrays."""
    if not (len(insample) == len(y) == len(yhat)) or not len(y):
        raise ShapeError(
            f"expected as many in-sample series, actuals and forecasts, got "
            f"{len(insample)}, {len(y)} and {len(yhat)}"
        )
    s_terms, m_terms = [], []
    for i, (x, a, b) in enumerate(zip(insample, y, yhat)):
        x, a, b = (np.asarray(v, dtype=np.float64).ravel() for v in (x, a, b))
        if a.shape != b.shape:
            raise ShapeError(f"series {i}: expected a forecast of shape {a.shape}, got {b.shape}")
        scale = _one_scale(x, season, f"insample[{i}]")[0]
        s_terms.append(float(np.mean(_smape_terms(a, b))))
        m_terms.append(float(np.mean(np.abs(a - b)) / scale))
    return {"smape": float(np.mean(s_terms)), "mase": float(np.mean(m_terms))}


def owa(smape_: float, mase_: float, naive2_smape: float, naive2_mase: float) -> float:
    """The M4 overall weighted average: ``(sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2) / 2``."""
    return 0.5 * (smape_ / naive2_smape + mase_ / naive2_mase)
