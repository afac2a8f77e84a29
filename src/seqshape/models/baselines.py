"""Forecast baselines in NumPy: naive, seasonal naive and a least-squares linear map.

Every forecaster takes histories with a batch axis and returns forecasts with one:
``history (B, N, O) -> (B, K, O)`` (N lookback, K horizon, O target channels), so they run on
the same windows (:mod:`seqshape.data.windows`) as the LSTM and are scored by the same metrics.

- :func:`naive` repeats the last value (the random-walk forecast);
- :func:`seasonal_naive` repeats the last season;
- :class:`LinearBaseline` is the "Linear" model of Zeng, Chen, Zhang and Xu, *Are Transformers
  Effective for Time Series Forecasting?* (AAAI 2023): one linear map from the N lookback values
  to the K future values, shared by every channel, here fitted in closed form (ridge least
  squares) instead of by gradient descent. DLinear splits the window into a moving-average
  trend and a remainder and maps each linearly; both are linear in the window, so their sum is
  again one N -> K linear map and the closed-form fit covers it. ``subtract_last=True`` gives
  their NLinear variant (the window's last value is subtracted before and added back after, so
  the effective weights on the window sum to 1: it suits drifting levels, not mean reversion).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, ShapeError
from ..shapes import check_shape


def _history(history: Any, name: str = "history") -> np.ndarray:
    h = np.asarray(history, dtype=np.float64)
    check_shape(h, "B N O", name=name)
    if h.shape[1] == 0:
        raise ShapeError(f"{name}: expected at least one history step, got {h.shape}")
    return h


def _horizon(k: int) -> int:
    if int(k) != k or k < 1:
        raise ConfigError(f"k: expected a positive number of steps, got {k!r}")
    return int(k)


def naive(history: np.ndarray, k: int) -> np.ndarray:
    """(B, N, O) -> (B, K, O): the last observed value, repeated K times."""
    h = _history(history)
    k = _horizon(k)
    # (B, 1, O) -> (B, K, O)
    return np.repeat(h[:, -1:, :], k, axis=1)


def seasonal_naive(history: np.ndarray, k: int, season: int) -> np.ndarray:
    """(B, N, O) -> (B, K, O): ``yhat[t0 + j] = y[t0 + j - season * (1 + j // season)]``.

    The last ``season`` values are repeated; needs ``N >= season``. ``season=1`` is :func:`naive`.
    """
    h = _history(history)
    k = _horizon(k)
    n = h.shape[1]
    if int(season) != season or not 1 <= season <= n:
        raise ConfigError(f"season: expected an integer in 1..N={n} (the lookback), got {season!r}")
    season = int(season)
    # (K,): which of the last `season` history steps each forecast step copies
    idx = n - season + np.arange(k) % season
    # (B, N, O) -> (B, K, O)
    return h[:, idx, :]


def season_from_freq(freq: str | None) -> int | None:
    """The usual seasonal period of a frequency string (see ``seqshape.data.series.parse_freq``).

    Steps shorter than a day: steps per day (``h`` -> 24, ``30min`` -> 48, ``5min`` -> 288);
    days: 7 (``D``); weeks: 52 (``7D``); months: 12 (``MS``/``ME``; quarters ``3MS`` -> 4);
    None when there is no usual period (or ``freq`` is None or does not divide the cycle).
    """
    if freq is None:
        return None
    from ..data.calendar import NS, parse_freq

    n, unit = parse_freq(freq)
    if unit in ("MS", "ME"):
        return 12 // n if 12 % n == 0 and n < 12 else None
    step, day = n * NS[unit], NS["D"]
    if step < day:
        return day // step if day % step == 0 else None
    return {day: 7, 7 * day: 52}.get(step)


def autocorrelation(series: np.ndarray, max_lag: int) -> np.ndarray:
    """(max_lag + 1,) sample autocorrelation of a (T,) or (T, O) series (averaged over channels).

    The biased estimator ``sum_t x_t x_{t+l} / sum_t x_t^2`` of the demeaned series (computed
    with an FFT), which shrinks towards 0 as the lag grows.
    """
    x = np.asarray(series, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2:
        raise ShapeError(f"series: expected (T,) or (T, O), got {np.shape(series)}")
    t = x.shape[0]
    x = x - x.mean(axis=0)
    size = 1 << int(np.ceil(np.log2(max(2 * t, 2))))
    spec = np.fft.rfft(x, n=size, axis=0)
    # (size, O) -> (max_lag + 1, O): circular correlation with zero padding = linear correlation
    acov = np.fft.irfft(spec * np.conj(spec), n=size, axis=0)[: max_lag + 1]
    var = acov[0]
    keep = var > 0
    if not keep.any():
        return np.zeros(max_lag + 1)
    return (acov[:, keep] / var[keep]).mean(axis=1)


def _detrend(x: np.ndarray) -> np.ndarray:
    """(T, O) minus each column's least-squares line."""
    t = np.arange(x.shape[0], dtype=np.float64)
    design = np.stack([t, np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    return x - design @ coef


def infer_season(
    series: np.ndarray,
    max_lag: int | None = None,
    *,
    freq: str | None = None,
    threshold: float = 0.1,
) -> int:
    """The seasonal period of a (T,) or (T, O) series, from its autocorrelation (ACF).

    Two ACFs (:func:`autocorrelation`) are averaged: that of the series minus its linear trend
    (clean for noisy seasonal series) and that of its first difference (which removes slow
    drifts, e.g. ETTh1's, that otherwise shift the peak). A lag ``2 <= l < max_lag`` is a
    candidate when the averaged ACF there is a local maximum above ``threshold``, rises at least
    ``threshold`` above its minimum over lags ``l // 2 .. l`` (a real peak, not a wiggle of a
    slowly decaying ACF), and the differenced series' own ACF at ``l`` exceeds ``3 / sqrt(T)``
    (significant, so random walks and white noise give none). The highest candidate wins; the
    ACF estimate shrinks with the lag, so a period beats its multiples. With no candidate:
    :func:`season_from_freq` of ``freq`` when given, else 1 (no season). ``max_lag`` defaults
    to ``T // 2`` (a period needs two cycles to show). Pass the training part only.
    """
    x = np.asarray(series, dtype=np.float64)
    if x.ndim not in (1, 2) or x.shape[0] < 4:
        raise ShapeError(f"series: expected (T,) or (T, O) with T >= 4, got {x.shape}")
    if not np.isfinite(x).all():
        raise DataError("series: expected finite values, got NaN or inf")
    x = x[:, None] if x.ndim == 1 else x
    t = x.shape[0]
    limit = t // 2 if max_lag is None else min(int(max_lag), t - 2)
    fallback = season_from_freq(freq) or 1
    if limit < 3:
        return fallback
    diff_acf = autocorrelation(np.diff(x, axis=0), limit)
    acf = 0.5 * (autocorrelation(_detrend(x), limit) + diff_acf)
    best = 0
    for lag in range(2, limit):
        if not (acf[lag] > acf[lag - 1] and acf[lag] >= acf[lag + 1] and acf[lag] > threshold):
            continue
        if acf[lag] - acf[lag // 2 : lag].min() < threshold or diff_acf[lag] <= 3 / np.sqrt(t):
            continue
        if best == 0 or acf[lag] > acf[best]:
            best = lag
    return best or fallback


class LinearBaseline:
    """One linear map from the lookback window to the horizon, shared across channels.

    ``yhat[b, :, o] = x[b, :, o] @ weight + bias`` with ``weight`` (N, K) and ``bias`` (K,),
    fitted on training windows by least squares with a ridge penalty ``ridge * mean(diag(G))``
    on the weights (G the Gram matrix of the centred windows; relative, so the fit does not
    depend on the data's units). Channels are extra samples of one shared map (Zeng et al.'s
    non-individual setting). See the module docstring for the relation to DLinear and NLinear.
    """

    def __init__(
        self, lookback: int, horizon: int, *, ridge: float = 1e-4, subtract_last: bool = False
    ) -> None:
        for label, v in (("lookback", lookback), ("horizon", horizon)):
            if int(v) != v or v < 1:
                raise ConfigError(f"{label}: expected a positive integer, got {v!r}")
        if not (np.isfinite(ridge) and ridge >= 0):
            raise ConfigError(f"ridge: expected a finite number >= 0, got {ridge!r}")
        self.lookback, self.horizon = int(lookback), int(horizon)
        self.ridge = float(ridge)
        self.subtract_last = bool(subtract_last)
        self.weight: np.ndarray | None = None  # (N, K)
        self.bias: np.ndarray | None = None  # (K,)

    @property
    def fitted(self) -> bool:
        return self.weight is not None

    def _rows(self, x: np.ndarray, chunk: slice) -> tuple[np.ndarray, np.ndarray]:
        """(b, N, O) -> (b*O, N) window rows, and each row's subtracted last value (b*O, 1)."""
        # (b, N, O) -> (b, O, N) -> (b*O, N): each channel of each window is one sample
        rows = np.ascontiguousarray(x[chunk].transpose(0, 2, 1)).reshape(-1, self.lookback)
        last = rows[:, -1:].copy() if self.subtract_last else np.zeros((rows.shape[0], 1))
        return rows - last, last

    def fit(self, windows_x: np.ndarray, windows_y: np.ndarray) -> LinearBaseline:
        """Fit on training windows: x (B, N, O) histories, y (B, K, O) their futures."""
        known = {"N": self.lookback}
        x = np.asarray(windows_x, dtype=np.float64)
        sizes = check_shape(x, "B N O", name="windows_x", known=known)
        y = np.asarray(windows_y, dtype=np.float64)
        check_shape(
            y,
            "B K O",
            name="windows_y",
            known={"B": sizes["B"], "K": self.horizon, "O": sizes["O"]},
        )
        if sizes["B"] == 0:
            raise DataError("windows_x: expected at least one training window, got none")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise DataError("windows_x/windows_y: expected finite values, got NaN or inf")
        n, k = self.lookback, self.horizon
        gram, cross = np.zeros((n, n)), np.zeros((n, k))
        sx, sy, count = np.zeros(n), np.zeros(k), 0
        # accumulate the normal equations over chunks of windows: memory stays O(chunk * N)
        for lo in range(0, x.shape[0], 4096):
            part = slice(lo, lo + 4096)
            rows, last = self._rows(x, part)
            # (b, K, O) -> (b*O, K), minus the same last values
            targets = np.ascontiguousarray(y[part].transpose(0, 2, 1)).reshape(-1, k) - last
            gram += rows.T @ rows
            cross += rows.T @ targets
            sx += rows.sum(axis=0)
            sy += targets.sum(axis=0)
            count += rows.shape[0]
        mx, my = sx / count, sy / count
        # centred Gram and cross products: the intercept is not penalised
        gram -= count * np.outer(mx, mx)
        cross -= count * np.outer(mx, my)
        lam = self.ridge * max(float(np.trace(gram)) / n, 1e-12)
        weight = np.linalg.solve(gram + lam * np.eye(n), cross)
        self.weight = weight
        self.bias = my - mx @ weight
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(B, N, O) -> (B, K, O)."""
        if self.weight is None or self.bias is None:
            raise ConfigError("LinearBaseline is not fitted: call fit(windows_x, windows_y) first")
        h = np.asarray(x, dtype=np.float64)
        check_shape(h, "B N O", name="x", known={"N": self.lookback})
        # (B, 1, O): the value added back (0 unless subtract_last)
        last = h[:, -1:, :] if self.subtract_last else np.zeros((h.shape[0], 1, h.shape[2]))
        # (B, O, N) @ (N, K) -> (B, O, K) -> (B, K, O): one matrix product per window
        out = np.matmul((h - last).transpose(0, 2, 1), self.weight).transpose(0, 2, 1)
        return out + self.bias[None, :, None] + last

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: the settings and, once fitted, weight (N x K lists) and bias."""
        return {
            "kind": "linear_baseline",
            "lookback": self.lookback,
            "horizon": self.horizon,
            "ridge": self.ridge,
            "subtract_last": self.subtract_last,
            "weight": None if self.weight is None else self.weight.tolist(),
            "bias": None if self.bias is None else self.bias.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LinearBaseline:
        """Rebuild from :meth:`to_dict` output, checking the weight shapes."""
        if not isinstance(d, dict) or d.get("kind") != "linear_baseline":
            got = d.get("kind") if isinstance(d, dict) else type(d).__name__
            raise ConfigError(f"linear_baseline.kind: expected 'linear_baseline', got {got!r}")
        try:
            model = cls(
                int(d["lookback"]),
                int(d["horizon"]),
                ridge=float(d.get("ridge", 1e-4)),
                subtract_last=bool(d.get("subtract_last", False)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"linear_baseline: missing or bad setting: {e}") from None
        if d.get("weight") is None:
            return model
        try:
            weight = np.array(d["weight"], dtype=np.float64)
            bias = np.array(d["bias"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise ConfigError("linear_baseline.weight/bias: expected lists of numbers") from None
        n, k = model.lookback, model.horizon
        if weight.shape != (n, k) or bias.shape != (k,):
            raise ConfigError(
                f"linear_baseline: expected weight ({n}, {k}) and bias ({k},), "
                f"got {weight.shape} and {bias.shape}"
            )
        model.weight, model.bias = weight, bias
        return model

    def __repr__(self) -> str:
        state = "fitted" if self.fitted else "not fitted"
        return f"LinearBaseline(N={self.lookback}, K={self.horizon}, {state})"


def m4_seasonality_test(x: np.ndarray, season: int) -> bool:
    """The M4 organisers' test for seasonality: the autocorrelation at lag ``season`` exceeds its
    90% one-sided limit ``1.645 sqrt((1 + 2 sum_{l<season} r_l^2) / T)``; a series shorter than
    three seasons is not seasonal. ``x``: (T,) in-sample values."""
    x = np.asarray(x, dtype=np.float64)
    t = x.size
    if season <= 1 or t < 3 * season:
        return False
    r = autocorrelation(x, season)
    limit = 1.645 * np.sqrt((1.0 + 2.0 * np.sum(r[1:season] ** 2)) / t)
    return bool(abs(r[season]) > limit)


def classical_seasonal_indices(x: np.ndarray, season: int) -> np.ndarray:
    """(season,) multiplicative seasonal indices of classical decomposition (as R's
    ``decompose(type = "multiplicative")``): the series over its centred moving average, averaged
    per position in the cycle, normalised to mean 1. Index ``j`` belongs to the steps ``t`` with
    ``t % season == j`` (t counted from 0 at the first value)."""
    x = np.asarray(x, dtype=np.float64)
    m = int(season)
    if m % 2 == 0:
        weights = np.r_[0.5, np.ones(m - 1), 0.5] / m
    else:
        weights = np.ones(m) / m
    half = (weights.size - 1) // 2
    # (T,) -> (T - 2 half,): the centred moving average where the window fits
    trend = np.convolve(x, weights[::-1], mode="valid")
    ratio = np.full(x.size, np.nan)
    ratio[half : half + trend.size] = x[half : half + trend.size] / trend
    figure = np.array([np.nanmean(ratio[j::m]) for j in range(m)])
    return figure / figure.mean()


def naive2(x: np.ndarray, k: int, season: int) -> np.ndarray:
    """(T,) -> (K,): the M4 competition's Naive2 benchmark. When :func:`m4_seasonality_test`
    finds seasonality, the series is divided by its classical multiplicative seasonal indices,
    the last adjusted value is repeated and the indices are put back; otherwise it is the naive
    forecast. Negative forecasts become 0, as in the competition's code."""
    x = np.asarray(x, dtype=np.float64)
    k = _horizon(k)
    t = x.size
    if m4_seasonality_test(x, season):
        idx = classical_seasonal_indices(x, season)
        last = x[-1] / idx[(t - 1) % season]
        out = last * idx[(t + np.arange(k)) % season]
    else:
        out = np.full(k, x[-1])
    return np.maximum(out, 0.0)
