"""ForecastStream: streaming N rows equals one teacher-forced batch pass over them, for every head,
with past and known covariates, the linear highway and every window_norm, on series 2 of a model
fitted on three series of ETTh1 with a scaling each; a state saved mid-stream (as JSON) continues
with the same numbers; forecasts from a stream agree with the estimator's."""

import json

import numpy as np
import pytest
import torch

from seqshape import ConfigError, DataError, ShapeError
from seqshape.api.forecaster import Forecaster, SeriesData
from seqshape.infer.stream import ForecastStream
from seqshape.models.forecast_units import point_index, to_original

N_ROWS = 400  # rows per series
CHUNKS = [1, 3, 5, 2, 9, 30, 1, 1, 80, 8, 260]  # 400 rows; the window fills mid-chunk

CASES = {
    "mse": dict(loss="mse", covariates=True, highway=4, window_norm="last"),
    "gaussian": dict(loss="gaussian", covariates=False, highway=0, window_norm="none"),
    "student_t": dict(loss="student_t", covariates=True, highway=0, window_norm="mean"),
    "quantile": dict(loss="quantile", covariates=False, highway=6, window_norm="last", past=True),
    # count heads (scaled by 1 + the mean, no window norm): OT and HUFL are positive
    "poisson": dict(loss="poisson", covariates=True, highway=5, window_norm="none"),
    "negbin": dict(loss="negbin", covariates=False, highway=0, window_norm="none", past=True),
}


@pytest.fixture(scope="module")
def ett(shared_data):
    """(1200, 7) float32 rows of ETTh1: HUFL, HULL, MUFL, MULL, LUFL, LULL, OT."""
    lines = (shared_data / "forecasting" / "ETTh1.csv").read_text().splitlines()[1:1201]
    return np.array([[float(v) for v in ln.split(",")[1:]] for ln in lines], dtype=np.float32)


def _series(ett, covariates: bool, past: bool) -> list[SeriesData]:
    """Three consecutive blocks of 400 hours (their levels differ): target OT, past covariate
    HUFL, known covariates MUFL and MULL."""
    out = []
    for i in range(3):
        b = ett[i * N_ROWS : (i + 1) * N_ROWS]
        out.append(
            SeriesData(
                target=b[:, 6:7],
                past_cov=b[:, 0:1] if covariates or past else None,
                future_cov=b[:, 2:4] if covariates else None,
                name=f"block{i}",
            )
        )
    return out


@pytest.fixture(scope="module")
def fitted(ett):
    """One fitted three-series forecaster per case (scaling per series)."""
    models = {}
    for name, case in CASES.items():
        series = _series(ett, case["covariates"], case.get("past", False))
        fc = Forecaster(
            lookback=16, horizon=4, hidden_size=8, num_layers=1, epochs=2, threads=1, lr=1e-2,
            loss=case["loss"], highway=case["highway"], window_norm=case["window_norm"],
            max_windows_per_epoch=128, keep_start=False, progress=False,
            strategy="autoregressive",
        ).fit(series)  # fmt: skip
        models[name] = (fc, series)
    return models


def _stream(fc, s: SeriesData, chunks, *, save=False, series=2):
    """Stream the rows of ``s`` in ``chunks``; with ``save`` the state goes through JSON after
    every chunk. -> the concatenated update outputs."""
    stream, outs, i = ForecastStream(fc, series=series), [], 0
    for n in chunks:
        outs.append(
            stream.update(s.target[i : i + n], s.past_cov[i : i + n], s.future_cov[i : i + n])
        )
        i += n
        if save:
            stream = ForecastStream.from_state(fc, json.loads(json.dumps(stream.state())))
    got = {
        k: np.concatenate([o[k] for o in outs])
        for k in ("params", "point", "next", "has_point", "has_next")
    }
    return got, stream


def _batch(fc, s: SeriesData, need: int, row: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """One teacher-forced pass over the rows (the first ``need`` as the history): the parameters
    of rows need..T-1 in original units (T-need, O, P), and the scale they were unscaled with."""
    sc = fc.scaling
    z = (s.z.astype(np.float64) - sc.z_mean[row]) / sc.z_std[row]
    f = (s.future_cov.astype(np.float64) - sc.f_mean[row]) / sc.f_std[row]
    # (T, Z) -> (1, T, Z) scaled float32, as the stream scales each row
    z = torch.from_numpy(z.astype(np.float32))[None]
    cov = torch.from_numpy(f.astype(np.float32))[None] if fc.config.n_future else None
    with torch.no_grad():
        # (1, T-need, Z, P): row t predicted from the true rows before it
        p = fc.net(z[:, :need], z[:, need:], cov)[0, :, : fc.config.n_targets]
    O = fc.config.n_targets
    mean, std = sc.z_mean[row, :O].astype(np.float64), sc.z_std[row, :O].astype(np.float64)
    return to_original(fc.config.loss, p.numpy().astype(np.float64), mean, std), std


@pytest.mark.parametrize("name", list(CASES))
def test_streaming_equals_one_batch_pass(fitted, name):
    fc, series = fitted[name]
    c = fc.config
    s = series[2]
    got, stream = _stream(fc, s, CHUNKS)
    need = stream.need
    assert need == (c.lookback if c.window_norm != "none" else 1)
    ref, std = _batch(fc, s, need)
    # no forecast until the window is read (with known covariates: until the row after it)
    first = need
    assert not got["has_point"][:first].any() and got["has_point"][first:].all()
    assert np.isnan(got["point"][:first]).all()
    # <= 1e-5 in scaled units, for every parameter of the head (quantiles, std, df...)
    tol = 1e-5 * max(float(std.max()), 1.0)
    assert np.abs(got["params"][first:] - ref).max() <= tol
    # ... and the comparison can fail: with series 0's scaling the same pass answers otherwise
    other, _ = _batch(fc, s, need, row=0)
    assert np.abs(got["params"][first:] - other).max() > 100 * tol
    point = ref[..., point_index(c.loss, c.quantiles)]
    np.testing.assert_allclose(got["point"][first:], point, rtol=0, atol=tol)
    if c.n_future:
        # the forecast of row t+1 needs its known covariates: no "next" with them
        assert not got["has_next"].any()
    else:
        assert got["has_next"][need - 1 :].all() and not got["has_next"][: need - 1].any()
        # "next" after row t is the forecast made for row t+1
        np.testing.assert_allclose(
            got["next"][need - 1 : -1], got["point"][need:], rtol=0, atol=1e-9
        )


@pytest.mark.parametrize("name", ["mse", "quantile"])
def test_state_saved_and_restored_mid_stream_gives_the_same_numbers(fitted, name):
    fc, series = fitted[name]
    s = series[2]
    straight, _ = _stream(fc, s, [N_ROWS])
    saved, stream = _stream(fc, s, CHUNKS, save=True)
    for key in ("params", "point", "next"):
        np.testing.assert_array_equal(saved[key], straight[key])
    # the state is plain JSON
    state = stream.state()
    assert json.loads(json.dumps(state)) == state and state["seen"] == N_ROWS
    # a damaged or foreign state is refused, naming the field
    bad = dict(state, h=[[0.0] * 3])
    with pytest.raises(ConfigError, match="stream state: h: expected finite numbers of shape"):
        ForecastStream.from_state(fc, bad)
    with pytest.raises(ConfigError, match="stream state: version: expected 1"):
        ForecastStream.from_state(fc, dict(state, version=7))


@pytest.mark.parametrize("name", list(CASES))
def test_a_stream_forecasts_what_its_next_update_answers(fitted, name):
    fc, series = fitted[name]
    s, n = series[2], 300
    _, stream = _stream(fc, s, [n])
    fut = s.future_cov[n : n + 5] if fc.config.n_future else None
    ahead = stream.forecast(5, fut)
    assert ahead["point"].shape == (5, 1) and stream.seen == n  # forecasting does not move it
    got = stream.update(s.target[n : n + 1], s.past_cov[n : n + 1], s.future_cov[n : n + 1])
    np.testing.assert_allclose(ahead["point"][0], got["point"][0], rtol=0, atol=1e-9)
    if fc.config.loss == "quantile":
        assert set(ahead["quantiles"]) == {0.1, 0.5, 0.9}


def test_without_window_norm_a_stream_forecasts_like_the_estimator(fitted):
    fc, series = fitted["gaussian"]  # window_norm "none": the level does not depend on the window
    s, n = series[2], 250
    _, stream = _stream(fc, s, [n])
    want = fc.forecast(SeriesData(target=s.target[:n], name="block2"), 12, series_index=2)
    got = stream.forecast(12)
    for key in ("point", "std"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-4)
    # the series' own scaling matters: series 0's scaling forecasts something else
    other = ForecastStream(fc, series="block0")
    other.update(s.target[:n])
    assert not np.allclose(other.forecast(12)["point"], got["point"], atol=1e-2)


def test_series_are_chosen_by_name_or_index_and_never_silently(fitted):
    fc, series = fitted["gaussian"]
    assert ForecastStream(fc, series="block1").series == 1
    assert ForecastStream(fc, series=2).series == 2
    with pytest.raises(DataError, match=r"series: expected one of 'block0', 'block1', 'block2'"):
        ForecastStream(fc, series="nope")
    with pytest.raises(DataError, match=r"or an index 0..2, got 3"):
        ForecastStream(fc, series=3)
    with pytest.raises(DataError, match="scales each of its 3 series on its own"):
        ForecastStream(fc)
    stream = ForecastStream(fc, series=0)
    with pytest.raises(ShapeError, match=r"target: expected \(P, 1\) rows"):
        stream.update(np.zeros((3, 2)))
    with pytest.raises(DataError, match=r"target\[1\]: expected finite numbers"):
        stream.update([1.0, np.nan])
    with pytest.raises(DataError, match="a forecast needs the first 1"):
        stream.forecast(3)
    assert stream.seen == 0  # refused updates change nothing
