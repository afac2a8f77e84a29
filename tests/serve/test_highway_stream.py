"""A forecaster with a highway streams like its batch pass: the stream carries the last p values."""

import numpy as np
import pytest
import torch

import seqshape.datasets
from seqshape.api.forecaster import Forecaster, SeriesData
from seqshape.data.series import read_series_csv
from seqshape.serve.adapters import ForecasterAdapter


@pytest.fixture(scope="module")
def highway_model(tmp_path_factory):
    frame = read_series_csv(seqshape.datasets.path("AirPassengers.csv"), target="#Passengers")
    y = frame.target[0]
    fc = Forecaster(
        lookback=12, horizon=6, hidden_size=8, num_layers=1, epochs=2, threads=1, highway=6,
        strategy="autoregressive",
    )  # fmt: skip
    d = tmp_path_factory.mktemp("hw") / "air"
    fc.fit(SeriesData(target=y, name="air")).save(d)
    return d, Forecaster.load(d, threads=1), y


def _batch(fc: Forecaster, y: np.ndarray) -> np.ndarray:
    """(T, O) one-step forecasts of rows 1..T from one teacher-forced pass, level of the first N."""
    net, N = fc.net, fc.config.lookback
    mean, std = fc.scaling.z_mean[0], fc.scaling.z_std[0]
    z = torch.from_numpy(((y - mean) / std).astype(np.float32))[None]
    off = net.offset(z[:, :N])
    with torch.no_grad():
        # (1, T, H) outputs and (1, T, p, Z) windows: row t+1 predicted from rows <= t
        p = net.params(net.encoder(z - off).outputs, net.windows(z - off, 0))
        p = net.unshift(p, off)
    return net.point(p)[0].numpy() * std + mean


def test_highway_stream_equals_the_batch_pass_across_a_state_round_trip(highway_model):
    d, fc, y = highway_model
    adapter = ForecasterAdapter("air", d, threads=1)
    assert adapter.stream_unsupported() is None
    state, got, i = adapter.new_stream(), [], 0
    for n in [5, 7, 1, 3, 20, 1, 1, 40, 66]:  # 144 points; the window fills mid-chunk
        state, res = adapter.observe(state, y[i : i + n].astype(np.float64))
        got.extend(res)
        i += n
        # what the store writes and a restarted server reads back
        state = adapter.load_state(adapter.dump_state(state))
    assert i == len(y)
    N, batch = fc.config.lookback, _batch(fc, y)
    forecast = np.array([g["forecast"] for g in got[N:]])
    np.testing.assert_allclose(forecast, batch[N - 1 : -1], atol=1e-3)
    np.testing.assert_allclose(
        np.array([g["next"] for g in got[N - 1 :]]), batch[N - 1 :], atol=1e-3
    )
    # the highway matters here: without it, the same stream would answer differently
    with torch.no_grad():
        fc.net.highway.weight.zero_()
    assert not np.allclose(_batch(fc, y)[N:], batch[N:], atol=1e-2)


def test_a_direct_segment_model_forecasts_through_the_adapter_and_refuses_streams(tmp_path):
    """The direct recipe (a season per LSTM step, log window norm on these positive values):
    the server answers its forecasts as the estimator does, and says in one line why it cannot
    stream."""
    frame = read_series_csv(seqshape.datasets.path("AirPassengers.csv"), target="#Passengers")
    y = frame.target[0]
    fc = Forecaster(
        horizon=6, hidden_size=8, num_layers=1, epochs=2, threads=1, progress=False,
        strategy="direct",
    )  # fmt: skip
    fc.fit(SeriesData(target=y, name="air"), train_end=120, val_end=144).save(tmp_path / "air")
    c = fc.config
    assert (c.strategy, c.window_norm, c.segment) == ("direct", "log", 12)
    adapter = ForecasterAdapter("air", tmp_path / "air", threads=1)
    for hist, k in [(y[:100], 6), (y[:100], 9)]:
        got = adapter.forecast(hist.astype(np.float64), k, None)["point"]
        want = fc.forecast(SeriesData(target=hist), k)["point"]
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)
    note = adapter.stream_unsupported()
    assert note is not None and "direct" in note and "\n" not in note
