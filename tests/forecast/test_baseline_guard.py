"""A forecaster is never returned worse than the simple baselines on validation: it starts *as*
the best of them (its highway holding naive, seasonal naive or a least-squares linear map, the
LSTM's head at zero) and keeps that start unless a trained epoch beats it; metrics.json says
which part won."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqshape.api.forecaster import Forecaster, SeriesData
from seqshape.models import baselines as BL
from seqshape.models.forecaster import (
    ForecasterConfig,
    ForecasterNet,
    apply_highway_start,
    highway_starts,
)


def _val_windows(z: np.ndarray, tr: int, va: int, n: int, k: int):
    """(W, n) histories and (W, k) futures of every window forecasting rows in [tr, va)."""
    starts = range(max(tr - n, 0), va - n - k + 1)
    return np.stack([z[s : s + n] for s in starts]), np.stack(
        [z[s + n : s + n + k] for s in starts]
    )


def _scaled(y: np.ndarray, tr: int) -> np.ndarray:
    return (y - y[:tr].mean()) / y[:tr].std()


@pytest.mark.parametrize("strategy", ["autoregressive", "direct"])
def test_each_start_is_exactly_its_baseline(strategy):
    rng = np.random.default_rng(0)
    z = (np.sin(np.arange(400) * 2 * np.pi / 12) + 0.3 * rng.normal(size=400)).astype(np.float32)
    cfg = ForecasterConfig(
        n_targets=1, lookback=36, horizon=6, highway=36, hidden_size=8, strategy=strategy
    )
    net = ForecasterNet(cfg).eval()
    starts = highway_starts(net, [z[:300, None]], season=12)
    assert {"least_squares", "naive", "seasonal_naive"} <= set(starts)
    hist = np.stack([z[s : s + 36] for s in range(300, 358)])[..., None]  # (W, 36, 1)
    expect = {
        "naive": BL.naive(hist, 6),
        "seasonal_naive": BL.seasonal_naive(hist, 6, 12),
    }
    for name, want in expect.items():
        apply_highway_start(net, starts[name])
        with torch.no_grad():
            got = net.point(net.forecast(torch.from_numpy(hist), 6)).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)
        np.testing.assert_allclose(starts[name].forecast(hist, 6), want, atol=1e-5)


def test_a_seasonal_series_with_noise_is_never_returned_worse_than_its_baselines():
    rng = np.random.default_rng(1)
    t = np.arange(900)
    shape = rng.normal(size=24)  # an irregular daily profile
    y = 5 + 3 * shape[t % 24] + 0.5 * rng.normal(size=t.size)
    tr, va = 600, 750
    fc = Forecaster(horizon=12, hidden_size=8, num_layers=1, epochs=3, seed=0, threads=1)
    fc.fit(SeriesData(target=y[:, None]), train_end=tr, val_end=va)
    m = fc.metrics
    assert m["season"] == 24
    # direct (the default), seven seasons, read a season at a time, from the data
    assert fc.config.lookback == 168 and fc.config.highway == 168 and fc.config.segment == 24
    assert {"naive", "seasonal_naive", "least_squares"} <= set(m["baselines_val_mase"])
    assert m["start"] == min(m["baselines_val_mase"], key=m["baselines_val_mase"].get)
    # the baselines recomputed here, on the validation windows alone: MASE, each absolute error
    # over the training part's mean absolute seasonal difference (scaled units)
    z = _scaled(y, tr)
    scale = np.mean(np.abs(z[24:tr] - z[: tr - 24]))
    x, fut = _val_windows(z, tr, va, 168, 12)
    naive = float(np.mean(np.abs(BL.naive(x[..., None], 12)[..., 0] - fut))) / scale
    snaive = float(np.mean(np.abs(BL.seasonal_naive(x[..., None], 12, 24)[..., 0] - fut))) / scale
    assert m["best_val_mase"] <= m["start_val_mase"] + 1e-12
    assert m["best_val_mase"] <= min(naive, snaive)
    if m["winner"] == m["start"]:  # the returned model is the baseline: forecasts like it
        assert not fc.net.head.weight.detach().any()


def test_a_nonlinear_autoregression_is_won_by_the_lstm():
    """The logistic map: no linear forecaster follows it, the LSTM does."""
    rng = np.random.default_rng(0)
    x = np.zeros(1500)
    x[0] = 0.3
    for t in range(1, x.size):
        x[t] = np.clip(3.7 * x[t - 1] * (1 - x[t - 1]) + 0.01 * rng.normal(), 0.001, 0.999)
    fc = Forecaster(
        horizon=2, lookback=8, hidden_size=16, num_layers=1, epochs=10, lr=3e-3, seed=0,
        threads=1, season=1, strategy="autoregressive",
    )  # fmt: skip
    fc.fit(SeriesData(target=x[:, None]), train_end=1200, val_end=1500)
    m = fc.metrics
    assert m["winner"].startswith("lstm+")
    assert m["best_val_mase"] < 0.5 * m["start_val_mase"]
    assert m["best_val_mase"] < 0.5 * min(m["baselines_val_mase"].values())
    assert m["gain_vs_best_baseline"] > 0.5


def test_start_and_season_options_are_checked_and_honoured():
    from seqshape.errors import ConfigError

    with pytest.raises(ConfigError, match="start: expected one of best, least_squares"):
        Forecaster(start="median")
    with pytest.raises(ConfigError, match="season: expected a whole number >= 1"):
        Forecaster(season=0)
    rng = np.random.default_rng(2)
    y = np.sin(np.arange(500) * 2 * np.pi / 7) + 0.1 * rng.normal(size=500)
    fc = Forecaster(horizon=7, season=7, start="naive", hidden_size=8, epochs=1, threads=1)
    fc.fit(SeriesData(target=y[:, None]), train_end=400, val_end=500)
    assert fc.metrics["start"] == "naive" and fc.metrics["season"] == 7
    assert fc.config.lookback == 49  # seven seasons (direct, the default)
    with pytest.raises(ConfigError, match="needs 1 < season <= highway"):
        Forecaster(horizon=7, season=1, start="seasonal_naive", epochs=1, threads=1).fit(
            SeriesData(target=y[:, None]), train_end=400, val_end=500
        )
