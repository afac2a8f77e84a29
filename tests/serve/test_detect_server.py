"""Anomaly detectors and calendar-covariate forecasters behind the real server process.

Pins: POST detect equals AnomalyDetector.score_series; a detector stream (saved or fresh start)
equals the batch pass point for point, also across a SIGKILL with an observe in flight and a
restart on the same --state file (nothing lost, nothing applied twice); a forecaster trained with
calendar ("auto") known covariates forecasts from timestamps and streams with one timestamp per
point, equal to a batch pass; timestamps are part of what a repeated seq must carry again.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import seqshape.datasets
from seqshape.anomaly.detector import AnomalyDetector, DetectorConfig
from seqshape.anomaly.nab import load_corpus
from seqshape.api.forecaster import Forecaster, SeriesData
from seqshape.data.series import calendar_features, read_series_csv

END = 520  # rows of the NAB series used (the probation is 169)


@pytest.fixture(scope="module")
def speed(shared_data: Path) -> dict:
    """NAB realTraffic/speed_7578.csv: its first END rows (the probation: 169)."""
    nab = shared_data / "anomaly" / "nab"
    series = next(s for s in load_corpus(nab) if s.name == "speed_7578.csv")
    v, ts, p = series.values[:END], series.timestamps[:END], series.probation
    return {"values": v, "timestamps": ts, "stamps": [str(t) for t in ts], "p": p}


@pytest.fixture(scope="module")
def models(speed, tmp_path_factory) -> dict:
    """A tiny detector fitted on the probation, saved as trained (threshold fixed:0.5) and with
    threshold dynamic; a tiny AirPassengers forecaster with calendar covariates (month)."""
    root = tmp_path_factory.mktemp("dmodels")
    v, ts, p = speed["values"], speed["timestamps"], speed["p"]
    det = AnomalyDetector(DetectorConfig(hidden_size=8, epochs=2, chunk=16)).fit(v[:p], ts[:p])
    det.save(root / "speed")
    det.set_threshold("dynamic")
    det.save(root / "dyn")
    frame = read_series_csv(
        seqshape.datasets.path("AirPassengers.csv"),
        target="#Passengers",
        future_covariates="auto",
    )
    fc = Forecaster(
        lookback=12,
        horizon=6,
        hidden_size=8,
        num_layers=1,
        epochs=2,
        threads=1,
        highway=0,
        strategy="autoregressive",
    )
    fc.meta = {"columns": {"target": ["#Passengers"], "future_covariates": "auto"}, "freq": "MS"}
    air = SeriesData(target=frame.target[0], future_cov=frame.future_cov[0], name="air")
    fc.fit(air).save(root / "aircal")
    return {
        "dirs": [root / "speed", root / "dyn", root / "aircal"],
        "det": AnomalyDetector.load(root / "speed"),
        "fc": Forecaster.load(root / "aircal", threads=1),
        "air": air,
        "air_stamps": [str(t) for t in frame.timestamps[0]],
    }


@pytest.fixture(scope="module")
def server(models, tmp_path_factory, live_server):
    tmp = tmp_path_factory.mktemp("dserver")
    live = live_server([*map(str, models["dirs"]), "--state", str(tmp / "s.sqlite3")], tmp / "log")
    yield live
    live.stop()


def _rows(a: np.ndarray) -> list:
    return a.reshape(len(a), -1).tolist()


def _observe(live, sid: str, seq: int, points, stamps):
    body = {"seq": seq, "points": points}
    if stamps is not None:
        body["timestamps"] = stamps
    return live.http.post(f"/v1/streams/{sid}/observe", json=body)


def _feed(live, sid, values, stamps, chunks, seq=0, i=0):
    """Observe ``values[i:]`` in chunks of the given sizes -> (results, i, seq)."""
    got = []
    for n in chunks:
        r = _observe(live, sid, seq, _rows(values[i : i + n]), stamps[i : i + n])
        assert r.status_code == 200, r.text
        got.extend(r.json()["results"])
        i, seq = i + n, seq + 1
    return got, i, seq


def _chunks(total: int) -> list[int]:
    sizes = [1, 3, 1, 2, 7, 1, 5]
    out = []
    while sum(out) < total:
        out.append(min(sizes[len(out) % len(sizes)], total - sum(out)))
    return out


# -- detector --------------------------------------------------------------------------------
def test_detector_described_and_detect_equals_score_series(server, models, speed):
    det, v, stamps, p = models["det"], speed["values"], speed["stamps"], speed["p"]
    info = server.http.get("/v1/models/speed").json()
    assert (info["kind"], info["mode"], info["streamable"]) == (
        "detector",
        "anomaly detection",
        True,
    )
    assert info["n_train"] == p and info["timestamps"] is True and info["threshold"] == "fixed:0.5"
    r = server.http.post(
        "/v1/models/speed/detect", json={"values": _rows(v), "timestamps": stamps, "warmup": p}
    )
    assert r.status_code == 200, r.text
    got, want = r.json(), det.score_series(v, speed["timestamps"])
    np.testing.assert_array_equal(np.array(got["score"]), want["score"])
    np.testing.assert_array_equal(np.array(got["is_anomaly"]), want["is_anomaly"])
    assert got["is_anomaly"].count(True) >= 1 and max(got["score"][p:]) > 0.5
    assert got["prediction"][0] is None and got["error"] == want["error"].tolist()
    np.testing.assert_array_equal(np.array(got["prediction"][1:])[:, 0], want["prediction"][1:])
    np.testing.assert_array_equal(np.array(got["std"][1:])[:, 0], want["std"][1:])
    # warmup defaults to 0: the series is scored from its first row
    r = server.http.post("/v1/models/speed/detect", json={"values": _rows(v), "timestamps": stamps})
    want0 = det.score_series(v, speed["timestamps"], warmup=0)["score"]
    np.testing.assert_array_equal(np.array(r.json()["score"]), want0)
    # a dynamic threshold flags in batch, but cannot stream
    r = server.http.post("/v1/models/dyn/detect", json={"values": _rows(v), "timestamps": stamps})
    assert r.status_code == 200
    r = server.http.post("/v1/models/dyn/streams")
    assert r.status_code == 400 and "threshold 'dynamic' looks ahead" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"values": [[1.0]] * 3}, 422, "timestamps: model 'speed' uses the time of day"),
        (
            {"values": [[1.0, 2.0]], "timestamps": ["2015-09-08 11:39:00"]},
            422,
            "values: expected F=1 numbers per row (the detector's O), got 2",
        ),
        (
            {"values": [[1.0]] * 2, "timestamps": ["2015-09-08 11:39:00", "yesterday"]},
            422,
            "timestamps[1]: expected an ISO date and time",
        ),
        (
            {"values": [[1.0]] * 2, "timestamps": ["2015-09-08", "NaT"]},
            422,
            "timestamps[1]: expected an ISO date and time",
        ),
        (
            {"values": [[1.0]] * 2, "timestamps": ["2015-09-08"]},
            422,
            "timestamps: expected 2 (one per row of values), got 1",
        ),
        (
            {"values": [[1.0]], "timestamps": ["2015-09-08"], "warmup": 2},
            400,
            "warmup: expected 0..1 rows (T), got 2",
        ),
        ({"values": [[1e39]], "timestamps": ["2015-09-08"]}, 422, "values[0][0]: expected a num"),
        ({"values": [1.0, 2.0]}, 422, "values[0]: Input should be a valid list"),
        ({"values": [[1.0]], "warmup": -1}, 422, "warmup: Input should be greater than or equal"),
    ],
)
def test_detect_rejects_bad_bodies(server, body, status, detail):
    r = server.http.post("/v1/models/speed/detect", json=body)
    assert r.status_code == status, r.text
    assert r.json()["detail"].startswith(detail), r.text


def test_detector_streams_equal_batch_across_a_kill_and_restart(
    models, speed, tmp_path, live_server
):
    det, v, stamps, p = models["det"], speed["values"], speed["stamps"], speed["p"]
    batch = det.score_series(v, speed["timestamps"])
    W = 30  # the fresh stream's warm-up
    fresh_batch = det.score_series(v, speed["timestamps"], warmup=W)
    args = [str(models["dirs"][0]), "--state", str(tmp_path / "s.sqlite3")]
    a = live_server(args, tmp_path / "a.txt")
    sid = a.http.post("/v1/models/speed/streams").json()["stream_id"]  # start: saved
    r = a.http.post("/v1/models/speed/streams", json={"start": "fresh", "warmup": W})
    fid = r.json()["stream_id"]
    after = v[p:], stamps[p:]
    got, i, seq = _feed(a, sid, *after, _chunks(150))
    fgot, fi, fseq = _feed(a, fid, v, stamps, _chunks(60))
    n = _chunks(150)[-1]  # the last observe's points, sent again: answered from the record
    last = _observe(a, sid, seq - 1, _rows(after[0][i - n : i]), after[1][i - n : i])
    assert last.headers["seqshape-replay"] == "1"
    # the next observe is sent and the server is killed before its answer is read
    body = {"seq": seq, "points": _rows(after[0][i : i + 4]), "timestamps": after[1][i : i + 4]}
    a.send_unanswered(f"/v1/streams/{sid}/observe", json.dumps(body).encode())
    b = live_server(args, tmp_path / "b.txt")
    try:
        assert b.http.get(f"/v1/streams/{sid}").json()["next_seq"] in (seq, seq + 1)
        r = _observe(b, sid, seq - 1, _rows(after[0][i - n : i]), after[1][i - n : i])
        assert r.headers["seqshape-replay"] == "1" and r.content == last.content
        # the same seq with other timestamps is not the same observe
        moved = ["2001-01-01T00:00"] * n
        r = _observe(b, sid, seq - 1, _rows(after[0][i - n : i]), moved)
        assert r.status_code == 409 and "already applied with other points" in r.text
        more, i, _ = _feed(b, sid, *after, [4] + _chunks(len(after[0]) - i - 4), seq, i)
        fmore, fi, _ = _feed(b, fid, v, stamps, _chunks(END - fi), fseq, fi)
    finally:
        b.stop()
    results = got + more
    assert len(results) == END - p and i == END - p
    np.testing.assert_allclose([g["score"] for g in results], batch["score"][p:], atol=1e-9)
    np.testing.assert_array_equal([g["is_anomaly"] for g in results], batch["is_anomaly"][p:])
    fresults = fgot + fmore
    assert len(fresults) == END
    np.testing.assert_allclose([g["score"] for g in fresults], fresh_batch["score"], atol=1e-9)
    assert max(g["score"] for g in fresults) > 0.5  # not a comparison of zeros
    assert all(g["score"] == 0 and not g["is_anomaly"] for g in fresults[:W])


def test_detector_stream_errors_change_nothing(server, speed):
    v, stamps, p = speed["values"], speed["stamps"], speed["p"]
    sid = server.http.post("/v1/models/speed/streams").json()["stream_id"]
    good, _, _ = _feed(server, sid, v[p:], stamps[p:], [3])
    for points, ts, detail in [
        ([[1.0], [2.0]], None, "timestamps: model 'speed' uses the time of day"),
        ([[1.0], [2.0]], ["2015-09-09", "later"], "timestamps[1]: expected an ISO date"),
        ([[1.0], [1e39]], ["2015-09-09"] * 2, "points[1][0]: expected a number within"),
        ([[1.0, 2.0]], ["2015-09-09"], "points[0]: expected F=1 features"),
    ]:
        r = _observe(server, sid, 1, points, ts)
        assert r.status_code == 422 and r.json()["detail"].startswith(detail), r.text
    for body, detail in [
        ({"start": "saved", "warmup": 3}, "warmup: only for start 'fresh'"),
        ({"start": "later"}, "start: Input should be 'saved' or 'fresh'"),
        ({"start": "fresh", "warmup": -1}, "warmup: Input should be greater than or equal to 0"),
    ]:
        r = server.http.post("/v1/models/speed/streams", json=body)
        assert r.status_code in (400, 422) and r.json()["detail"].startswith(detail), r.text
    # the stream goes on as if the refused observes had never been sent
    more, _, _ = _feed(server, sid, v[p + 3 :], stamps[p + 3 :], [4], seq=1)
    other = server.http.post("/v1/models/speed/streams").json()["stream_id"]
    again, _, _ = _feed(server, other, v[p:], stamps[p:], [7])
    assert good + more == again
    for s in (sid, other):
        server.http.delete(f"/v1/streams/{s}")


# -- forecaster with calendar covariates --------------------------------------------------------
def _calendar_batch(fc: Forecaster, y: np.ndarray, cal: np.ndarray) -> np.ndarray:
    """One batch pass over the whole stream (level: its first lookback points) -> (T, O) one-step
    forecasts, row t predicted from rows < t and row t's calendar covariates (row 0: unused)."""
    s = fc.scaling
    # (T, O) and (T, Cf) -> (1, T, O), (1, T, Cf) scaled
    z = torch.from_numpy(((y - s.z_mean[0]) / s.z_std[0]).astype(np.float32))[None]
    f = torch.from_numpy(((cal - s.f_mean[0]) / s.f_std[0]).astype(np.float32))[None]
    off = fc.net.offset(z[:, : fc.config.lookback])
    with torch.no_grad():
        # inputs [z_t - level, f_{t+1}] for t = 0..T-2 -> outputs predicting rows 1..T-1
        out = fc.net.encoder(fc.net.step_inputs(z[:, :-1] - off, f[:, 1:])).outputs
        p = fc.net.unshift(fc.net.params(out), off)
    pred = fc.net.point(p)[0].numpy() * s.z_std[0] + s.z_mean[0]
    # (T-1, O) -> (T, O) with row 0 empty
    return np.concatenate([np.full((1, pred.shape[1]), np.nan), pred])


def test_calendar_forecaster_forecasts_from_timestamps(server, models):
    fc, air, stamps = models["fc"], models["air"], models["air_stamps"]
    info = server.http.get("/v1/models/aircal").json()
    assert info["calendar_covariates"] == {"count": 2, "freq": "MS"}
    assert info["input"]["shape"] == "(T, F=1)" and info["streamable"] is True
    assert "one timestamp per point" in info["stream_note"]
    y, cal, T, K = air.target, air.future_cov, 100, 9
    want = fc.forecast(SeriesData(target=y[:T], future_cov=cal[:T]), K, future_cov=cal[T : T + K])
    for ts in (stamps[:T], stamps[: T + K]):
        r = server.http.post(
            "/v1/models/aircal/forecast", json={"history": _rows(y[:T]), "k": K, "timestamps": ts}
        )
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(np.array(r.json()["point"]), want["point"], atol=1e-4)
    r = server.http.post("/v1/models/aircal/forecast", json={"history": _rows(y[:T]), "k": K})
    assert r.status_code == 422 and r.json()["detail"].startswith(
        "timestamps: model 'aircal' computes 2 calendar covariates"
    )


def test_calendar_forecaster_stream_takes_a_timestamp_per_point(server, models):
    fc, air, stamps = models["fc"], models["air"], models["air_stamps"]
    y = air.target
    sid = server.http.post("/v1/models/aircal/streams").json()["stream_id"]
    r = _observe(server, sid, 0, _rows(y[:2]), None)
    assert r.status_code == 422 and r.json()["detail"].startswith(
        "timestamps: model 'aircal' computes calendar covariates from each point's time"
    )
    r = _observe(server, sid, 0, _rows(y[:2]), stamps[:1])
    assert r.status_code == 422
    assert r.json()["detail"] == "timestamps: expected 2 (one per point), got 1"
    got, i, _ = _feed(server, sid, y, stamps, [1] * 11 + [2, 5, 1, 37] + [1] * 30 + [58])
    assert i == len(y) == len(got)
    # the calendar covariates computed by the server are those the model was trained with
    cal = calendar_features(np.array(stamps, dtype="datetime64[ns]"), freq="MS")[0]
    np.testing.assert_allclose(cal, air.future_cov, atol=1e-6)
    batch = _calendar_batch(fc, y, air.future_cov)
    N = fc.config.lookback
    assert all(g["forecast"] is None for g in got[:N]) and all(g["next"] is None for g in got)
    forecast = np.array([g["forecast"] for g in got[N:]])
    np.testing.assert_allclose(forecast, batch[N:], atol=1e-4)
    np.testing.assert_allclose(np.array([g["residual"] for g in got[N:]]), y[N:] - forecast)
    server.http.delete(f"/v1/streams/{sid}")


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_a_failed_commit_leaves_a_detector_stream_as_it_was(models, speed, tmp_path):
    """In process: the state file refuses writes (SQLite query_only) during one observe -> 503,
    and the stream, whose detector state is advanced in place, goes on from its last commit."""
    from fastapi.testclient import TestClient

    from seqshape.serve.adapters import load_models
    from seqshape.serve.app import ServeConfig, create_app

    v, stamps, p = speed["values"], speed["stamps"], speed["p"]
    app = create_app(load_models([str(models["dirs"][0])]), ServeConfig(state_path=tmp_path / "s"))
    with TestClient(app) as client:
        live = SimpleNamespace(http=client)  # what _observe and _feed need of a server
        sid, other = (client.post("/v1/models/speed/streams").json()["stream_id"] for _ in "ab")
        first, _, _ = _feed(live, sid, v[p:], stamps[p:], [3])
        db = app.server.store.db
        db.execute("PRAGMA query_only=1")
        r = _observe(live, sid, 1, _rows(v[p + 3 : p + 7]), stamps[p + 3 : p + 7])
        db.execute("PRAGMA query_only=0")
        assert r.status_code == 503 and r.json()["error"] == "StoreError", r.text
        assert client.get(f"/v1/streams/{sid}").json()["next_seq"] == 1
        more, _, _ = _feed(live, sid, v[p + 3 :], stamps[p + 3 :], [4, 2], seq=1)
        clean, _, _ = _feed(live, other, v[p:], stamps[p:], [9])
    assert first + more == clean
