"""Over HTTP, a forecaster fitted on two series with a scaling each serves each series with its own
scaling (it used to read series 0's for every request): forecasts and streams for series 1 equal
the Python API's for series 1 and differ from series 0's; a missing or unknown series is a 422
naming the known ones, never a silent fallback to the first."""

import numpy as np
import pytest

import seqshape.datasets
from seqshape.api.forecaster import Forecaster, SeriesData
from seqshape.data.series import read_series_csv
from seqshape.infer.stream import ForecastStream


@pytest.fixture(scope="module")
def two_series(tmp_path_factory):
    """AirPassengers cut in two series whose levels differ (about 200 and 380 passengers)."""
    frame = read_series_csv(seqshape.datasets.path("AirPassengers.csv"), target="#Passengers")
    y = frame.target[0]
    series = [SeriesData(target=y[:72], name="early"), SeriesData(target=y[72:], name="late")]
    fc = Forecaster(
        lookback=12, horizon=4, hidden_size=8, num_layers=1, epochs=2, lr=1e-2, threads=1,
        window_norm="none", highway=0, keep_start=False, progress=False,
        strategy="autoregressive",
    ).fit(series)  # fmt: skip
    d = tmp_path_factory.mktemp("series") / "air2"
    fc.save(d)
    return d, Forecaster.load(d, threads=1), series


@pytest.fixture(scope="module")
def server(two_series, tmp_path_factory, live_server):
    tmp = tmp_path_factory.mktemp("series_server")
    live = live_server(
        [f"air2={two_series[0]}", "--state", str(tmp / "state.sqlite3")], tmp / "log"
    )
    yield live
    live.stop()


def test_forecasts_use_the_named_series_scaling(server, two_series):
    _, fc, series = two_series
    info = server.http.get("/v1/models/air2").json()
    assert info["series"] == ["early", "late"] and info["per_series_scaling"] is True
    hist = series[1].target[-30:]
    want = {i: fc.forecast(SeriesData(target=hist), 6, series_index=i)["point"] for i in (0, 1)}
    assert not np.allclose(want[0], want[1], rtol=1e-3)  # the scaling matters for this history
    for choice in ("late", 1):
        body = {"history": hist.tolist(), "k": 6, "series": choice}
        r = server.http.post("/v1/models/air2/forecast", json=body)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(np.array(r.json()["point"]), want[1], rtol=1e-5)
    body = {"history": hist.tolist(), "k": 6, "series": "early"}
    got0 = server.http.post("/v1/models/air2/forecast", json=body).json()["point"]
    np.testing.assert_allclose(np.array(got0), want[0], rtol=1e-5)
    for bad, why in (
        ({}, "scales each of its 2 series on its own; expected one of 'early', 'late'"),
        ({"series": "mid"}, "expected one of 'early', 'late' or an index 0..1, got 'mid'"),
        ({"series": 2}, "or an index 0..1, got 2"),
    ):
        r = server.http.post(
            "/v1/models/air2/forecast", json={"history": hist.tolist(), "k": 6, **bad}
        )
        assert r.status_code == 422 and why in r.json()["detail"], r.text


def _observe(server, sid: str, rows: np.ndarray) -> list[dict]:
    results, seq = [], 0
    for i in range(0, len(rows), 25):
        body = {"seq": seq, "points": rows[i : i + 25].tolist()}
        r = server.http.post(f"/v1/streams/{sid}/observe", json=body)
        assert r.status_code == 200, r.text
        results.extend(r.json()["results"])
        seq += 1
    return results


def test_streams_use_the_named_series_scaling(server, two_series):
    _, fc, series = two_series
    rows = series[1].target[:60].astype(np.float64)
    want = {i: ForecastStream(fc, series=i).update(rows) for i in (0, 1)}
    r = server.http.post("/v1/models/air2/streams", json={"series": "late"})
    assert r.status_code == 201, r.text
    got = _observe(server, r.json()["stream_id"], rows)
    assert got[0]["forecast"] is None and all(g["forecast"] is not None for g in got[1:])
    forecast = np.array([g["forecast"] for g in got[1:]])
    np.testing.assert_allclose(forecast, want[1]["point"][1:], rtol=1e-6)
    np.testing.assert_allclose(np.array([g["next"] for g in got]), want[1]["next"], rtol=1e-6)
    assert not np.allclose(forecast, want[0]["point"][1:], rtol=1e-3)
    for bad, why in (
        ({}, "scales each of its 2 series on its own"),
        ({"series": "mid"}, "expected one of 'early', 'late' or an index 0..1, got 'mid'"),
    ):
        r = server.http.post("/v1/models/air2/streams", json=bad)
        assert r.status_code == 422 and why in r.json()["detail"], r.text
