"""The direct recipe: an LSTM that reads the history a segment at a time (SegRNN), in log space
relative to the window's mean log when the values are positive, and what strategy "auto" picks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqshape.api.forecaster import Forecaster, SeriesData
from seqshape.errors import ConfigError, DataError
from seqshape.models.forecaster import ForecasterConfig, ForecasterNet, forecast_loss


def _net(**kw) -> ForecasterNet:
    torch.manual_seed(0)
    opts = dict(
        n_targets=1, lookback=20, horizon=6, hidden_size=8, strategy="direct", segment=8,
        window_norm="log", highway=20,
    )  # fmt: skip
    return ForecasterNet(ForecasterConfig(**(opts | kw))).eval()


def _positive(b: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 1.0 + torch.rand(b, t, 1, generator=g) * 3


@pytest.mark.parametrize("kw", [dict(), dict(window_norm="last"), dict(segment=5, lookback=20)])
def test_a_short_history_reads_as_its_first_value_repeated_in_front(kw):
    net = _net(**kw)
    with torch.no_grad():
        # torch.nn.init leaves the highway random: the LSTM and the highway both count here
        short = _positive(3, 9)
        rows = net.config.n_segments * net.config.segment
        padded = torch.cat([short[:, :1].expand(-1, rows - 9, -1), short], dim=1)
        np.testing.assert_allclose(
            net.forecast(short, 6).numpy(), net.forecast(padded, 6).numpy(), atol=1e-6
        )
        longer = torch.cat([_positive(3, 30, seed=1), padded], dim=1)
        np.testing.assert_allclose(
            net.forecast(longer, 6).numpy(), net.forecast(padded, 6).numpy(), atol=1e-6
        )


def test_a_log_window_norm_forecasts_scale_with_the_history():
    net = _net()
    x = _positive(4, 20)
    with torch.no_grad():
        base = net.forecast(x, 6)
        for c in (0.01, 7.0, 3e4):
            np.testing.assert_allclose(
                net.forecast(x * c, 6).numpy(), (base * c).numpy(), rtol=2e-5
            )
        # and any k, block by block: still relative
        np.testing.assert_allclose(
            net.forecast(x * 5, 14).numpy(), (net.forecast(x, 14) * 5).numpy(), rtol=2e-5
        )


def test_the_training_pass_and_the_loss_are_in_log_space():
    net = _net()
    x, y = _positive(4, 20), _positive(4, 6, seed=2)
    p = net(x, y)
    with torch.no_grad():
        # the training pass's parameters are the logs of what forecast() gives
        np.testing.assert_allclose(p.exp().numpy(), net.forecast(x, 6).numpy(), rtol=1e-5)
    loss = forecast_loss(p, y, net.config)
    want = (p[..., 0] - torch.log(y)) ** 2  # the mse head, on logs
    assert abs(loss.item() - want.mean().item()) < 1e-6


def test_segments_and_a_log_norm_need_the_direct_strategy():
    with pytest.raises(ConfigError, match="segment: .* needs strategy 'direct'"):
        ForecasterConfig(n_targets=1, lookback=24, horizon=6, segment=4)
    with pytest.raises(ConfigError, match="window_norm: 'log' needs strategy 'direct'"):
        ForecasterConfig(n_targets=1, lookback=24, horizon=6, window_norm="log")
    with pytest.raises(ConfigError, match="window_norm: the gaussian head .* got 'log'"):
        ForecasterConfig(
            n_targets=1, lookback=24, horizon=6, strategy="direct", loss="gaussian",
            window_norm="log",
        )  # fmt: skip


def _seasonal(n: int, level: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    shape = 1 + 0.5 * np.sin(2 * np.pi * t / 12)
    return (level * shape * np.exp(0.05 * rng.normal(size=n)))[:, None]


def test_a_direct_model_of_positive_seasonal_series_reads_logs_a_season_at_a_time():
    series = [
        SeriesData(target=_seasonal(240, lv, i), name=f"s{i}") for i, lv in enumerate((5, 500))
    ]
    fc = Forecaster(horizon=6, epochs=2, seed=0, threads=1, progress=False, strategy="direct")
    fc.fit(series)
    c = fc.config
    assert c.strategy == "direct" and c.loss == "mae" and c.hidden_size == 128
    assert c.window_norm == "log" and c.segment == 12 and fc.metrics["season"] == 12
    # seven seasons (84) would leave fewer than two of the 192 training rows' windows per
    # lookback step: (192 - 6 + 1) // 3 = 62, down to whole seasons
    assert c.lookback == 60
    # the series' own scale is only their level: positive values stay positive
    assert (fc.scaling.z_mean == 0).all()
    np.testing.assert_allclose(
        fc.scaling.z_std[:, 0], [s.target[:192].mean() for s in series], rtol=1e-5
    )
    out = fc.forecast(series[1].target[-84:], series_index=1)
    assert out["point"].shape == (6, 1) and (out["point"] > 100).all()


def test_values_at_or_below_zero_keep_an_additive_norm_or_are_refused_for_log():
    y = _seasonal(240, 5, 0) - 5.0  # crosses zero
    fc = Forecaster(horizon=6, epochs=1, seed=0, threads=1, progress=False)
    fc.fit(SeriesData(target=y, name="crossing"))
    assert fc.config.window_norm == "last"
    bad = Forecaster(horizon=6, epochs=1, window_norm="log", threads=1, progress=False)
    with pytest.raises(
        DataError, match=r"crossing: row \d+, column 0: window_norm 'log' expects values > 0"
    ):
        bad.fit(SeriesData(target=y, name="crossing"))


def test_auto_keeps_the_strategy_whose_start_validates_better():
    rng = np.random.default_rng(3)
    # an AR(2) process: a one-step map iterated is the right model, whatever the horizon
    y = np.zeros(700)
    for t in range(2, 700):
        y[t] = 1.6 * y[t - 1] - 0.8 * y[t - 2] + rng.normal()
    fc = Forecaster(horizon=24, lookback=24, epochs=1, seed=0, threads=1, progress=False)
    fc.fit(SeriesData(target=y[:, None], name="ar2"))
    m = fc.metrics
    val = m["strategy_val_mase"]
    assert set(val) == {"direct", "autoregressive"}
    ar_wins = val["autoregressive"] < (1 - 1e-4) * val["direct"]
    assert m["strategy"] == ("autoregressive" if ar_wins else "direct") == fc.config.strategy
    assert fc.config.segment == 1 or fc.config.strategy == "direct"
    # asked for "direct", it stays direct and records no contest
    d = Forecaster(horizon=24, lookback=24, epochs=1, strategy="direct", threads=1, progress=False)
    d.fit(SeriesData(target=y[:, None], name="ar2"))
    assert d.config.strategy == "direct" and "strategy_val_mase" not in d.metrics


def test_a_direct_model_forecasts_any_k_and_unknown_strategies_are_refused():
    y = _seasonal(300, 20, 4)
    fc = Forecaster(horizon=6, epochs=1, seed=0, threads=1, progress=False)
    fc.fit(SeriesData(target=y, name="s"))
    full = fc.forecast(y[:200], 6)["point"]
    np.testing.assert_allclose(fc.forecast(y[:200], 2)["point"], full[:2], atol=1e-6)
    assert fc.forecast(y[:200], 15)["point"].shape == (15, 1)  # block by block
    with pytest.raises(ConfigError, match="strategy: expected one of auto, autoregressive, direct"):
        Forecaster(strategy="iterated")


def test_a_segment_log_model_answers_the_same_through_onnx(tmp_path):
    from seqshape.infer.export import export_onnx
    from seqshape.infer.onnx_forecaster import OnnxForecaster

    series = [
        SeriesData(target=_seasonal(240, lv, i), name=f"s{i}") for i, lv in enumerate((5, 500))
    ]
    fc = Forecaster(
        horizon=6, epochs=1, seed=0, threads=1, progress=False, keep_start=False, strategy="direct"
    )
    fc.fit(series)
    assert fc.config.segment == 12 and fc.config.window_norm == "log"
    onnx_fc = OnnxForecaster(export_onnx(fc.save(tmp_path / "m")))
    for hist, k in (
        (series[1].target[-84:], 6),
        (series[1].target[-30:], 6),
        (series[1].target[-100:], 10),
    ):
        want = fc.forecast(hist, k, series_index=1, allow_short=True)["point"]
        got = onnx_fc.forecast(hist, k, series_index=1, allow_short=True)["point"]
        np.testing.assert_allclose(got, want, rtol=1e-4)


def test_explain_shows_the_segments_of_a_saved_direct_model(tmp_path):
    from seqshape.explain.front import explain_model_dir

    y = _seasonal(300, 20, 5)
    fc = Forecaster(horizon=6, epochs=1, seed=0, threads=1, progress=False, strategy="direct")
    fc.fit(SeriesData(target=y, name="s")).save(tmp_path / "m")
    result = explain_model_dir(tmp_path / "m")
    stages = {s.name: s for s in result.stages}
    c = fc.config
    assert stages["LSTM inputs"].axes == ("B", "T_s", "H")
    assert stages["LSTM inputs"].shape[1:] == (c.n_segments, c.hidden_size)
    assert stages["head (all K at once)"].shape[1] == 6
