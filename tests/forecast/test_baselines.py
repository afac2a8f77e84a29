"""Baselines: exact cases on synthetic series, a known AR process, and the real AirPassengers and
ETTh1 series (including the published ETTh1 numbers of Zeng et al., AAAI 2023)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seqshape.data.scaling import Scaling
from seqshape.data.series import (
    SeriesFrame,
    ett_split,
    read_series_csv,
    split_by_counts,
)
from seqshape.data.windows import gather, make_windows
from seqshape.errors import ConfigError, ShapeError
from seqshape.models.baselines import (
    LinearBaseline,
    autocorrelation,
    infer_season,
    naive,
    season_from_freq,
    seasonal_naive,
)
from seqshape.train.forecast_metrics import mae, mase, mse

FC = Path("/work/shared/data/forecasting")


@pytest.fixture(scope="module")
def air() -> SeriesFrame:
    return read_series_csv(FC / "AirPassengers.csv", target="#Passengers")


def windows_of(x: np.ndarray, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, O) -> (B, N, O) histories and (B, K, O) futures at every origin."""
    starts = np.arange(x.shape[0] - n - k + 1)
    idx = starts[:, None] + np.arange(n + k)[None, :]
    w = x[idx]
    return w[:, :n], w[:, n:]


def test_naive_and_seasonal_naive_shapes_and_values():
    h = np.arange(2 * 6 * 2, dtype=float).reshape(2, 6, 2)
    out = naive(h, 3)
    assert out.shape == (2, 3, 2)
    assert (out[1] == h[1, -1]).all()
    sn = seasonal_naive(h, 5, 4)
    # K > season wraps around the last season: steps 2, 3, 4, 5, 2 of the history
    np.testing.assert_array_equal(sn[0, :, 0], h[0, [2, 3, 4, 5, 2], 0])
    np.testing.assert_array_equal(seasonal_naive(h, 3, 1), out)
    with pytest.raises(ConfigError, match="season: expected an integer in 1..N=6"):
        seasonal_naive(h, 3, 7)
    with pytest.raises(ShapeError, match="without its batch axis"):
        naive(h[0], 3)


def test_seasonal_naive_is_exact_on_a_sine_of_period_24():
    t = np.arange(24 * 20, dtype=float)
    x = (3 * np.sin(2 * np.pi * t / 24) + 0.5 * np.cos(2 * np.pi * t / 8))[:, None]
    hist, fut = windows_of(x, 48, 36)
    np.testing.assert_allclose(seasonal_naive(hist, 36, 24), fut, atol=1e-9)
    assert mse(fut, naive(hist, 36)) > 1.0


def test_infer_season():
    rng = np.random.default_rng(0)
    t = np.arange(24 * 40)
    sine = np.sin(2 * np.pi * t / 24) + 0.3 * rng.standard_normal(t.size)
    assert infer_season(sine) == 24
    assert infer_season(np.stack([sine, np.cos(2 * np.pi * t / 24)], axis=1)) == 24
    noise = rng.standard_normal(2000)
    assert infer_season(noise) == 1
    assert infer_season(noise, freq="h") == 24  # no peak: the frequency's usual period
    walk = np.cumsum(rng.standard_normal(2000))
    assert infer_season(walk) == 1
    assert infer_season(np.sin(2 * np.pi * np.arange(500) / 7)) == 7
    acf = autocorrelation(sine, 30)
    assert acf[0] == pytest.approx(1.0) and acf[24] > 0.5 > acf[12]


def test_infer_season_on_real_series(air: SeriesFrame):
    assert infer_season(air.target[0]) == 12
    ett = read_series_csv(FC / "ETTh1.csv", target="OT")
    assert infer_season(ett.target[0][:8640]) == 24


def test_season_from_freq():
    assert season_from_freq("h") == 24
    assert season_from_freq("30min") == 48
    assert season_from_freq("5min") == 288
    assert season_from_freq("D") == 7
    assert season_from_freq("7D") == 52
    assert season_from_freq("MS") == 12 and season_from_freq("ME") == 12
    assert season_from_freq("3MS") == 4
    assert season_from_freq("12MS") is None and season_from_freq("7h") is None
    assert season_from_freq(None) is None


def simulate_ar(n: int, seed: int = 0) -> np.ndarray:
    """x_t = 0.5 + 0.6 x_{t-1} - 0.3 x_{t-2} + e_t, e ~ N(0, 0.1^2): two channels."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 2))
    e = 0.1 * rng.standard_normal((n, 2))
    for t in range(2, n):
        x[t] = 0.5 + 0.6 * x[t - 1] - 0.3 * x[t - 2] + e[t]
    return x[100:]


def test_linear_baseline_recovers_an_ar_process():
    x = simulate_ar(20_000)
    hist, fut = windows_of(x, 4, 2)
    m = LinearBaseline(4, 2).fit(hist, fut)
    a1, a2, c = 0.6, -0.3, 0.5
    # one step ahead: [0, 0, a2, a1] on the window (oldest first)
    np.testing.assert_allclose(m.weight[:, 0], [0, 0, a2, a1], atol=0.02)
    # two steps ahead: x_{t+2} = a1 x_{t+1} + a2 x_t + c with x_{t+1} substituted
    np.testing.assert_allclose(m.weight[:, 1], [0, 0, a1 * a2, a1 * a1 + a2], atol=0.02)
    np.testing.assert_allclose(m.bias, [c, a1 * c + c], atol=0.03)
    pred = m.predict(hist[:2000])
    assert pred.shape == (2000, 2, 2)
    # what is left one step ahead is the innovation noise, variance 0.01
    assert mse(fut[:2000, :1], pred[:, :1]) == pytest.approx(0.01, rel=0.1)


def test_nlinear_recovers_an_integrated_process():
    # x_{t+1} - x_t = 0.5 (x_t - x_{t-1}) + e: weights 1.5 and -0.5, which sum to 1 as
    # NLinear's must (inputs minus their last value, the last value added back)
    rng = np.random.default_rng(1)
    d = np.zeros((20_000, 1))
    e = 0.1 * rng.standard_normal((20_000, 1))
    for t in range(1, d.shape[0]):
        d[t] = 0.5 * d[t - 1] + e[t]
    x = np.cumsum(d, axis=0) + 100.0
    hist, fut = windows_of(x, 3, 1)
    m = LinearBaseline(3, 1, subtract_last=True).fit(hist, fut)
    eff = m.weight[:, 0].copy()
    eff[-1] += 1.0 - eff.sum()
    np.testing.assert_allclose(eff, [0, -0.5, 1.5], atol=0.02)
    assert abs(m.bias[0]) < 0.01


def test_linear_baseline_round_trip_and_errors():
    x = simulate_ar(3000)
    hist, fut = windows_of(x, 6, 3)
    m = LinearBaseline(6, 3).fit(hist, fut)
    again = LinearBaseline.from_dict(json.loads(json.dumps(m.to_dict())))
    np.testing.assert_array_equal(again.predict(hist[:10]), m.predict(hist[:10]))
    with pytest.raises(ConfigError, match="not fitted"):
        LinearBaseline(6, 3).predict(hist)
    with pytest.raises(ShapeError, match=r"windows_x: expected \(B, N=5, O\), got \(2892, 6, 2\)"):
        LinearBaseline(5, 3).fit(hist, fut)
    bad = m.to_dict()
    bad["bias"] = [0.0]
    with pytest.raises(ConfigError, match=r"expected weight \(6, 3\) and bias \(3,\)"):
        LinearBaseline.from_dict(bad)


def test_seasonal_naive_beats_naive_on_air_passengers(air: SeriesFrame):
    # train 1949-1957, backtest the last 3 years with 12-month forecasts from each origin
    y = air.target[0].astype(np.float64)
    test = np.array([[108, 144]])
    win = make_windows(test, 24, 12)
    assert len(win) == 36 - 12 + 1
    unscaled = [(s.z, s.future_cov) for s in air.to_series()]
    hist, fut, _ = gather(unscaled, win, np.arange(len(win)))
    hist, fut = hist.numpy(), fut.numpy()
    season = infer_season(y[:108])
    assert season == 12
    naive_fc = naive(hist, 12)
    snaive_fc = seasonal_naive(hist, 12, season)
    assert mae(fut, snaive_fc) < 0.75 * mae(fut, naive_fc)
    assert mase(fut, snaive_fc, y[:108], 12) < mase(fut, naive_fc, y[:108], 12)


def test_ett_linear_and_repeat_match_the_published_numbers():
    """Zeng et al. (AAAI 2023), ETTh1 multivariate, lookback 336, horizon 96, train-scaled data:
    Repeat (naive) MSE 1.295; the LTSF-Linear family about 0.37-0.375."""
    cols = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    frame = read_series_csv(FC / "ETTh1.csv", target=cols)
    sp = split_by_counts(frame, ett_split())
    series = frame.to_series()
    scaled = Scaling.fit(series, list(sp.train_end), global_=False).apply(series)
    n, k = 336, 96
    tr_w, te_w = make_windows(sp.train, n, k), make_windows(sp.test, n, k)
    tr_h, tr_f, _ = (t.numpy() for t in gather(scaled, tr_w, np.arange(len(tr_w))))
    te_h, te_f, _ = (t.numpy() for t in gather(scaled, te_w, np.arange(len(te_w))))
    assert len(te_w) == 2785
    assert mse(te_f, naive(te_h, k)) == pytest.approx(1.295, abs=0.005)
    m = LinearBaseline(n, k).fit(tr_h, tr_f)
    err = mse(te_f, m.predict(te_h))
    assert 0.36 < err < 0.38
