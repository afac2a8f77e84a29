"""The HTTP server as a real process: `python -m seqshape serve` on 127.0.0.1 and a free port.

Pins: predict equals SequenceClassifier.predict_proba; a stream's per-point answers equal
predict_proba on each prefix (one cell step per point); a server killed mid-stream (SIGKILL, with
an observe in flight) and restarted on the same --state file continues every stream with no point
lost or applied twice; sequence-number rules; auth on and off; every limit; 4xx (never 5xx) with
messages naming the field; /metrics in Prometheus text; a valid OpenAPI schema and /docs.
"""

from __future__ import annotations

import json
import re
import socket
import time

import httpx
import numpy as np
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

import seqshape.datasets
from seqshape.api.classifier import STREAM_OPTIONS, SequenceClassifier
from seqshape.api.forecaster import Forecaster, SeriesData
from seqshape.cli import main as cli_main
from seqshape.data.series import read_series_csv
from seqshape.datasets import load_japanese_vowels

KEY = "s3cret-key_for-tests"


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict:
    """Two tiny JapaneseVowels classifiers: a streamable one and a bidirectional one."""
    root = tmp_path_factory.mktemp("models")
    train = load_japanese_vowels("train")
    SequenceClassifier(hidden_size=16, epochs=2, bidirectional=False, **STREAM_OPTIONS).fit(
        train
    ).save(root / "jv")
    SequenceClassifier(hidden_size=8, epochs=1, bidirectional=True).fit(train).save(root / "jvbi")
    return {
        "jv": root / "jv",
        "jvbi": root / "jvbi",
        "clf": SequenceClassifier.load(root / "jv", threads=1),
        "test": load_japanese_vowels("test").X,
    }


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory, live_server):
    """No auth, default limits but a short replay window."""
    tmp = tmp_path_factory.mktemp("server")
    args = [str(trained["jv"]), f"bi={trained['jvbi']}", "--state", str(tmp / "state.sqlite3")]
    live = live_server([*args, "--replay-window", "3"], tmp / "log.txt")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def limited(trained, tmp_path_factory, live_server):
    """Auth on and every limit small."""
    tmp = tmp_path_factory.mktemp("limited")
    (tmp / "key").write_text(KEY + "\n")
    args = [
        f"jv={trained['jv']}",
        *("--state", str(tmp / "state.sqlite3"), "--api-key-file", str(tmp / "key")),
        *("--max-body-bytes", "4000", "--max-batch", "2", "--max-steps", "5"),
        *("--max-features", "16", "--max-points", "3", "--max-streams", "2"),
        *("--max-horizon", "4"),
    ]
    live = live_server(args, tmp / "log.txt", key=KEY)
    yield live
    live.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proba(body: dict, classes) -> np.ndarray:
    return np.array([[r["probabilities"][str(c)] for c in classes] for r in body])


def _raw_post(live, path: str, body: bytes, headers: dict | None = None) -> httpx.Response:
    h = {"content-type": "application/json", **(headers or {})}
    return live.http.post(path, content=body, headers=h)


# -- models and predict ---------------------------------------------------------------------------
def test_healthz_and_model_list(server):
    assert server.http.get("/healthz").json() == {"status": "ok"}
    models = {m["name"]: m for m in server.http.get("/v1/models").json()["models"]}
    assert set(models) == {"jv", "bi"}
    jv = models["jv"]
    assert (jv["kind"], jv["mode"], jv["streamable"]) == ("classifier", "many-to-one", True)
    assert jv["input"]["shape"] == "(B, T, F=12)" and jv["output"]["shape"] == "(B, N=9)"
    assert jv["input"]["legend"]["F"] == "input features"
    assert re.fullmatch(r"[0-9a-f]{16}", jv["version"]) and jv["version"] != models["bi"]["version"]
    assert models["bi"]["streamable"] is False and "bidirectional" in models["bi"]["stream_note"]
    assert server.http.get("/v1/models/jv").json()["classes"] == [str(c) for c in range(1, 10)]


def test_predict_round_trip_equals_predict_proba(server, trained):
    clf, X = trained["clf"], trained["test"][:12]  # lengths vary within the batch
    assert len({len(x) for x in X}) > 3
    r = server.http.post("/v1/models/jv/predict", json={"sequences": [x.tolist() for x in X]})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    want = clf.predict_proba(X)
    np.testing.assert_allclose(_proba(preds, clf.classes_), want, atol=1e-6)
    assert [p["class"] for p in preds] == list(clf.predict(X))


# -- streams --------------------------------------------------------------------------------------
def _observe(live, sid: str, seq: int, points) -> httpx.Response:
    return live.http.post(f"/v1/streams/{sid}/observe", json={"seq": seq, "points": points})


def test_stream_answers_equal_predict_proba_of_each_prefix(server, trained):
    clf, x = trained["clf"], trained["test"][3]
    r = server.http.post("/v1/models/jv/streams")
    assert r.status_code == 201 and r.json()["next_seq"] == 0
    sid = r.json()["stream_id"]
    got, i, seq = [], 0, 0
    for n in [1, 3, 1, 2, 5, 1, 100]:
        r = _observe(server, sid, seq, x[i : i + n].tolist())
        assert r.status_code == 200, r.text
        i, seq = i + min(n, len(x) - i), seq + 1
        assert r.json()["points"] == i and r.json()["seq"] == seq - 1
        got.extend(r.json()["results"])
        if i == len(x):
            break
    want = np.stack([clf.predict_proba([x[: t + 1]])[0] for t in range(len(x))])
    np.testing.assert_allclose(_proba(got, clf.classes_), want, atol=1e-5)
    info = server.http.get(f"/v1/streams/{sid}").json()
    assert (info["next_seq"], info["points"], info["model"]) == (seq, len(x), "jv")
    assert server.http.delete(f"/v1/streams/{sid}").json() == {
        "stream_id": sid,
        "deleted": True,
        "points": len(x),
    }
    assert _observe(server, sid, seq, x[:1].tolist()).status_code == 404


def test_stream_sequence_numbers(server, trained):
    x = trained["test"][0].tolist()
    sid = server.http.post("/v1/models/jv/streams").json()["stream_id"]
    first = _observe(server, sid, 0, x[:2])
    assert first.status_code == 200 and "seqshape-replay" not in first.headers
    again = _observe(server, sid, 0, x[:2])  # a retry: answered from the record, not re-applied
    assert again.status_code == 200 and again.headers["seqshape-replay"] == "1"
    assert again.content == first.content
    other = _observe(server, sid, 0, x[5:6])
    assert other.status_code == 409 and "already applied with other points" in other.text
    gap = _observe(server, sid, 3, x[2:3])
    assert gap.status_code == 409
    assert gap.json()["detail"] == "seq: expected 1, got 3 (a gap: 2 observe(s) missing)"
    for seq in range(1, 6):
        assert _observe(server, sid, seq, x[seq + 1 : seq + 2]).status_code == 200
    assert server.http.get(f"/v1/streams/{sid}").json()["points"] == 7  # retry not counted
    old = _observe(server, sid, 1, x[2:3])  # older than the replay window of 3
    assert old.status_code == 409 and "no longer kept (the last 3); expected seq 6" in old.text
    assert _observe(server, sid, 4, x[5:6]).headers["seqshape-replay"] == "1"
    server.http.delete(f"/v1/streams/{sid}")


def test_classifier_streams_take_no_options_or_timestamps(server, trained):
    r = server.http.post("/v1/models/jv/streams", json={"start": "fresh"})
    assert r.status_code == 400 and "its streams take no options" in r.json()["detail"]
    r = server.http.post("/v1/models/jv/streams", json={"begin": 1})
    assert r.status_code == 422 and r.json()["detail"].startswith("begin: Extra inputs")
    sid = server.http.post("/v1/models/jv/streams", json=None).json()["stream_id"]
    body = {"seq": 0, "points": trained["test"][0][:1].tolist(), "timestamps": ["2024-01-01"]}
    r = server.http.post(f"/v1/streams/{sid}/observe", json=body)
    assert r.status_code == 422
    assert r.json()["detail"] == "timestamps: model 'jv' takes no timestamps; leave them out"
    assert server.http.get(f"/v1/streams/{sid}").json()["next_seq"] == 0
    server.http.delete(f"/v1/streams/{sid}")


def test_models_that_cannot_stream_or_forecast(server):
    r = server.http.post("/v1/models/bi/streams")
    assert r.status_code == 400 and "'bi' cannot stream: its encoder is bidirectional" in r.text
    r = server.http.post("/v1/models/jv/forecast", json={"history": [[1.0] * 12], "k": 3})
    assert r.status_code == 400
    assert r.json()["detail"] == "model 'jv' is a classifier; forecast needs a forecaster"
    r = server.http.post("/v1/models/jv/detect", json={"values": [[1.0] * 12]})
    assert r.status_code == 400
    assert r.json()["detail"] == "model 'jv' is a classifier; detect needs an anomaly detector"


def test_kill_and_restart_mid_stream_loses_and_doubles_nothing(
    trained, tmp_path, capsys, live_server
):
    """SIGKILL with an observe in flight, restart on the same state file, continue exactly."""
    clf, x, y = trained["clf"], trained["test"][5], trained["test"][6]
    state = tmp_path / "state.sqlite3"
    args = [str(trained["jv"]), "--state", str(state)]
    a = live_server(args, tmp_path / "a.txt")
    sid = a.http.post("/v1/models/jv/streams").json()["stream_id"]
    sid2 = a.http.post("/v1/models/jv/streams").json()["stream_id"]
    got, answers = [], {}
    for seq in range(4):
        r = _observe(a, sid, seq, x[2 * seq : 2 * seq + 2].tolist())
        answers[seq] = r.content
        got.extend(r.json()["results"])
    assert _observe(a, sid2, 0, y[:3].tolist()).status_code == 200
    # seq 4 is sent and the server is killed before its answer is read: applied or not, unknown
    body = json.dumps({"seq": 4, "points": x[8:10].tolist()}).encode()
    a.send_unanswered(f"/v1/streams/{sid}/observe", body)
    b = live_server(args, tmp_path / "b.txt")
    try:
        assert b.http.get(f"/v1/streams/{sid}").json()["next_seq"] in (4, 5)
        r = _observe(b, sid, 3, x[6:8].tolist())  # an answer given before the kill, kept
        assert r.headers["seqshape-replay"] == "1" and r.content == answers[3]
        r = _observe(b, sid, 4, x[8:10].tolist())  # the retry of the in-flight observe
        assert r.status_code == 200
        got.extend(r.json()["results"])
        for seq, i in enumerate(range(10, len(x), 3), start=5):
            r = _observe(b, sid, seq, x[i : i + 3].tolist())
            assert r.status_code == 200, r.text
            got.extend(r.json()["results"])
        assert r.json()["points"] == len(x)
        want = np.stack([clf.predict_proba([x[: t + 1]])[0] for t in range(len(x))])
        np.testing.assert_allclose(_proba(got, clf.classes_), want, atol=1e-5)
        r = _observe(b, sid2, 1, y[3:4].tolist())  # the other stream continues too
        np.testing.assert_allclose(
            _proba(r.json()["results"], clf.classes_), clf.predict_proba([y[:4]]), atol=1e-5
        )
        # a second server on the same state file is refused while b holds it
        assert cli_main(["serve", *args, "--port", str(_free_port())]) == 2
        assert "in use by another seqshape server" in capsys.readouterr().err
    finally:
        b.stop()


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_idle_streams_close(trained, tmp_path):
    """In process (the same app the CLI serves): a stream idle past the timeout is closed."""
    from fastapi.testclient import TestClient

    from seqshape.serve.adapters import load_models
    from seqshape.serve.app import ServeConfig, create_app

    config = ServeConfig(idle_timeout=0.3, state_path=tmp_path / "s.sqlite3")
    with TestClient(create_app(load_models([str(trained["jv"])]), config)) as client:
        sid = client.post("/v1/models/jv/streams").json()["stream_id"]
        time.sleep(0.6)  # twice the timeout: idle past it whatever the load
        body = {"seq": 0, "points": trained["test"][0][:1].tolist()}
        r = client.post(f"/v1/streams/{sid}/observe", json=body)
        # closed by the periodic sweep or on this access, whichever came first
        assert r.status_code == 404 and re.search(r"idle.*0\.3 s|0\.3 s idle", r.json()["detail"])
        assert "seqshape_streams_expired_total 1" in client.get("/metrics").text
        assert client.post(f"/v1/streams/{sid}/observe", json=body).status_code == 404


# -- auth -----------------------------------------------------------------------------------------
def test_auth_on(limited):
    bare = httpx.Client(base_url=limited.url, timeout=30.0)
    try:
        assert bare.get("/healthz").status_code == 200
        for method, path in [
            ("GET", "/v1/models"),
            ("GET", "/metrics"),
            ("POST", "/v1/models/jv/predict"),
            ("POST", "/v1/models/jv/streams"),
            ("GET", "/no/such/route"),
        ]:
            r = bare.request(method, path)
            assert r.status_code == 401, (path, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
        for value in [f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", f"Basic {KEY}", KEY, "Bearer"]:
            assert bare.get("/v1/models", headers={"Authorization": value}).status_code == 401
        ok = bare.get("/v1/models", headers={"Authorization": f"bearer {KEY}"})
        assert ok.status_code == 200 and ok.json()["models"][0]["name"] == "jv"
        spec = limited.http.get("/openapi.json").json()
        scheme = spec["components"]["securitySchemes"]["bearer"]
        assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
        # the docs load without the key (their Authorize button takes it)
        assert bare.get("/openapi.json").json() == spec
        assert bare.get("/docs").status_code == 200
        assert spec["paths"]["/v1/models"]["get"]["security"] == [{"bearer": []}]
        assert "security" not in spec["paths"]["/healthz"]["get"]
    finally:
        bare.close()


def test_auth_off(server):
    bare = httpx.Client(base_url=server.url, timeout=30.0)
    try:
        for path in ["/v1/models", "/metrics", "/openapi.json", "/docs"]:
            assert bare.get(path).status_code == 200
        r = bare.get("/v1/models", headers={"Authorization": "Bearer whatever"})
        assert r.status_code == 200
    finally:
        bare.close()


# -- limits ---------------------------------------------------------------------------------------
def test_limits(limited):
    h = limited.http
    row = [0.5] * 12
    ok = h.post("/v1/models/jv/predict", json={"sequences": [[row] * 5, [row]]})
    assert ok.status_code == 200  # exactly at the batch and step limits

    def detail(r, status):
        assert r.status_code == status, r.text
        return r.json()["detail"]

    r = h.post("/v1/models/jv/predict", json={"sequences": [[row]] * 3})
    assert detail(r, 422).startswith("sequences: List should have at most 2 items")
    r = h.post("/v1/models/jv/predict", json={"sequences": [[row] * 6]})
    assert detail(r, 422).startswith("sequences[0]: List should have at most 5 items")
    r = h.post("/v1/models/jv/predict", json={"sequences": [[[0.5] * 17]]})
    assert detail(r, 422).startswith("sequences[0][0]: List should have at most 16 items")
    r = h.post("/v1/models/jv/forecast", json={"history": [row], "k": 5})
    assert detail(r, 422).startswith("k: Input should be less than or equal to 4")
    # body size: announced by Content-Length, and streamed without one
    big = b'{"sequences": [[[' + b"0.5," * 1200 + b"0.5]]]}"
    assert "body: expected at most 4000 bytes" in detail(
        _raw_post(limited, "/v1/models/jv/predict", big), 413
    )
    r = h.post(
        "/v1/models/jv/predict",
        content=iter([big[:3000], big[3000:]]),
        headers={"content-type": "application/json"},
    )
    assert detail(r, 413).startswith("body: expected at most 4000 bytes")
    # streams: points per observe, then the cap on open streams
    sid = h.post("/v1/models/jv/streams").json()["stream_id"]
    r = _observe(limited, sid, 0, [row] * 4)
    assert detail(r, 422).startswith("points: List should have at most 3 items")
    r = _observe(limited, sid, 0, [row, [0.5] * 11])
    assert detail(r, 422).startswith("points[1]: expected F=12 features")
    assert _observe(limited, sid, 0, [row] * 3).status_code == 200
    sid2 = h.post("/v1/models/jv/streams").json()["stream_id"]
    r = h.post("/v1/models/jv/streams")
    assert "the cap of 2 (--max-streams) is reached" in detail(r, 429)
    assert "seqshape_open_streams 2" in h.get("/metrics").text
    h.delete(f"/v1/streams/{sid2}")
    sid3 = h.post("/v1/models/jv/streams").json()["stream_id"]
    for s in (sid, sid3):
        assert h.delete(f"/v1/streams/{s}").status_code == 200


# -- client errors: 4xx naming the field, never 5xx ------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (
            b'{"sequences": [[[NaN, 1]]]}',
            422,
            "sequences[0][0][0]: Input should be a finite number",
        ),
        (b'{"sequences": [[[1, Infinity]]]}', 422, "sequences[0][0][1]: Input should be a finite"),
        (b'{"sequences": [[[1e999]]]}', 422, "sequences[0][0][0]: Input should be a finite number"),
        (
            b'{"sequences": [[[1e300' + b",1" * 11 + b"]]]}",
            422,
            "sequences[0][0][0]: expected a number within float32",
        ),
        (b'{"sequences": [[["1"]]]}', 422, "sequences[0][0][0]: Input should be a valid number"),
        (b'{"sequences": [[[true]]]}', 422, "sequences[0][0][0]: Input should be a valid number"),
        (
            b'{"sequences": [[[1]]]}',
            422,
            "sequences[0][0]: expected F=12 features (the model's input size), got 1",
        ),
        (
            b'{"sequences": [[[1,2,3,4,5,6,7,8,9,10,11,12]], [[1,2,3,4,5,6,7,8,9,10,11,12], [1]]]}',
            422,
            "sequences[1][1]: expected F=12 features",
        ),
        (b'{"sequences": [[]]}', 422, "sequences[0]: List should have at least 1 item"),
        (b'{"sequences": [[[]]]}', 422, "sequences[0][0]: List should have at least 1 item"),
        (b'{"sequences": 5}', 422, "sequences: Input should be a valid list"),
        (b'{"sequence": []}', 422, "sequences: Field required"),
        (b'{"sequences": [[[1]]], "extra": 1}', 422, "extra: Extra inputs are not permitted"),
        (b"[1, 2", 422, "body: not valid JSON"),
        (b"", 422, "body: Field required"),
        (b"[" * 50000, 400, "error parsing the body"),
    ],
)
def test_predict_rejects_bad_bodies(server, body, status, detail):
    r = _raw_post(server, "/v1/models/jv/predict", body)
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]


def test_unknown_models_streams_and_bad_observes(server, trained):
    r = server.http.post("/v1/models/nope/predict", json={"sequences": [[[1.0] * 12]]})
    assert (
        r.status_code == 404 and r.json()["detail"] == "model 'nope' is not loaded; loaded: bi, jv"
    )
    assert server.http.post("/v1/models/nope/streams").status_code == 404
    for method in ("GET", "DELETE"):
        r = server.http.request(method, "/v1/streams/abc")
        assert r.status_code == 404 and "stream 'abc' is unknown" in r.text
    assert _observe(server, "abc", 0, [[1.0] * 12]).status_code == 404
    sid = server.http.post("/v1/models/jv/streams").json()["stream_id"]
    for body, detail in [
        ({"seq": -1, "points": [[1.0] * 12]}, "seq: Input should be greater than or equal to 0"),
        ({"seq": 2**63, "points": [[1.0] * 12]}, "seq: Input should be less than or equal to"),
        ({"seq": 0.0, "points": [[1.0] * 12]}, "seq: Input should be a valid integer"),
        ({"seq": 0, "points": [[1.0] * 12, [1.0] * 11]}, "points[1]: expected F=12 features"),
        ({"seq": 0, "points": []}, "points: List should have at least 1 item"),
        ({"points": [[1.0] * 12]}, "seq: Field required"),
    ]:
        r = server.http.post(f"/v1/streams/{sid}/observe", json=body)
        assert r.status_code == 422 and r.json()["detail"].startswith(detail), r.text
    nan = b'{"seq": 0, "points": [[' + b",".join([b"1"] * 11 + [b"NaN"]) + b"]]}"
    r = _raw_post(server, f"/v1/streams/{sid}/observe", nan)
    assert r.status_code == 422
    assert r.json()["detail"] == "points[0][11]: Input should be a finite number"
    big = b'{"seq": 0, "points": [[' + b",".join([b"1e300"] * 12) + b"]]}"
    r = _raw_post(server, f"/v1/streams/{sid}/observe", big)
    assert r.status_code == 422 and r.json()["detail"].startswith("points[0][0]: expected a number")
    assert server.http.get(f"/v1/streams/{sid}").json()["next_seq"] == 0  # nothing applied
    assert server.http.put("/v1/models").status_code == 405
    server.http.delete(f"/v1/streams/{sid}")


def test_bad_model_directory_is_a_user_error(tmp_path, capsys):
    assert cli_main(["serve", str(tmp_path / "missing"), "--state", str(tmp_path / "s")]) == 2
    assert "not a model directory" in capsys.readouterr().err
    assert cli_main(["serve", "bad name=/x", "--state", str(tmp_path / "s")]) == 2
    assert "model name 'bad name'" in capsys.readouterr().err


# -- metrics and OpenAPI ---------------------------------------------------------------------------
METRIC_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? '
    r"[-+]?([0-9.]+(e[-+]?[0-9]+)?|\+Inf)$"
)


def test_metrics_prometheus_text(server):
    server.http.get("/v1/models")
    server.http.post("/v1/models/nope/predict", json={"sequences": [[[1.0]]]})
    r = server.http.get("/metrics")
    assert r.headers["content-type"] == CONTENT_TYPE_LATEST
    lines = r.text.strip().splitlines()
    for line in lines:
        assert line.startswith(("# HELP ", "# TYPE ")) or METRIC_LINE.match(line), line
    text = r.text
    assert 'seqshape_http_requests_total{method="GET",route="/v1/models",status="200"}' in text
    assert (
        'seqshape_http_errors_total{method="POST",route="/v1/models/{name}/predict",status="404"}'
        in text
    )
    assert "# TYPE seqshape_open_streams gauge" in text
    # the histogram's buckets are cumulative and +Inf equals the count
    route = {"method": "GET", "route": "/v1/models"}
    samples = [
        s
        for family in text_string_to_metric_families(text)
        if family.name == "seqshape_http_request_duration_seconds"
        for s in family.samples
        if {k: s.labels.get(k) for k in route} == route
    ]
    buckets = [(float(s.labels["le"]), s.value) for s in samples if s.name.endswith("_bucket")]
    (count,) = [s.value for s in samples if s.name.endswith("_count")]
    assert buckets == sorted(buckets) and buckets[-1] == (float("inf"), count) and count >= 1
    assert "process_resident_memory_bytes" in text and "process_cpu_seconds_total" in text


def test_openapi_schema_and_docs(server):
    spec = server.http.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path, method in [
        ("/healthz", "get"),
        ("/v1/models", "get"),
        ("/v1/models/{name}/predict", "post"),
        ("/v1/models/{name}/forecast", "post"),
        ("/v1/models/{name}/detect", "post"),
        ("/v1/models/{name}/streams", "post"),
        ("/v1/streams/{stream_id}/observe", "post"),
        ("/v1/streams/{stream_id}", "delete"),
        ("/metrics", "get"),
    ]:
        assert method in paths[path], (path, method)
    assert "securitySchemes" not in spec.get("components", {})  # no auth on this server

    def refs(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    schemas = spec["components"]["schemas"]
    for ref in refs(spec):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
    docs = server.http.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    # Swagger UI 4 (swagger-ui-bundle) reads OpenAPI 3.0: the page loads the 3.0 rendition
    assert "url: '/docs/openapi-3.0.json'" in docs.text
    assert server.http.get("/docs/openapi-3.0.json").json()["openapi"] == "3.0.3"


# -- forecaster ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def forecaster(tmp_path_factory) -> dict:
    """A tiny AirPassengers Forecaster (window_norm 'last': streams fix the level from 12 points)."""
    root = tmp_path_factory.mktemp("fmodels")
    frame = read_series_csv(seqshape.datasets.path("AirPassengers.csv"), target="#Passengers")
    y = frame.target[0]
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
    fc.fit(SeriesData(target=y, name="air")).save(root / "air")
    return {"dir": root / "air", "fc": Forecaster.load(root / "air", threads=1), "y": y}


@pytest.fixture(scope="module")
def fserver(forecaster, tmp_path_factory, live_server):
    tmp = tmp_path_factory.mktemp("fserver")
    args = [str(forecaster["dir"]), "--state", str(tmp / "state.sqlite3")]
    live = live_server(args, tmp / "log.txt")
    yield live
    live.stop()


def _one_step_batch(fc: Forecaster, y: np.ndarray) -> np.ndarray:
    """One batch pass over the whole series (level: its first lookback points) -> (T, O) one-step
    forecasts of rows 1..T (row t predicted from rows < t), original units."""
    import torch

    mean, std = fc.scaling.z_mean[0], fc.scaling.z_std[0]
    # (T, O) -> (1, T, O) scaled
    z = torch.from_numpy(((y - mean) / std).astype(np.float32))[None]
    off = fc.net.offset(z[:, : fc.config.lookback])
    with torch.no_grad():
        p = fc.net.unshift(fc.net.params(fc.net.encoder(z - off).outputs), off)
    return fc.net.point(p)[0].numpy() * std + mean


def test_forecaster_described_and_forecast_round_trip(fserver, forecaster):
    fc, y = forecaster["fc"], forecaster["y"]
    info = fserver.http.get("/v1/models/air").json()
    assert (info["kind"], info["mode"], info["streamable"]) == ("forecaster", "forecast", True)
    assert info["input"]["shape"] == "(T, F=1)" and info["output"]["shape"] == "(K, O=1)"
    assert "first 12 points" in info["stream_note"]
    for hist, k in [(y[:100], 7), (y[30:45], 30)]:
        r = fserver.http.post("/v1/models/air/forecast", json={"history": hist.tolist(), "k": k})
        assert r.status_code == 200, r.text
        want = fc.forecast(SeriesData(target=hist), k)["point"]
        np.testing.assert_allclose(np.array(r.json()["point"]), want, atol=1e-4)
        assert r.json()["model"] == "air" and len(r.json()["point"]) == k
    bad = fserver.http.post("/v1/models/air/forecast", json={"history": [[1.0, 2.0]], "k": 2})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("history: expected F=1")
    r = fserver.http.post(
        "/v1/models/air/forecast",
        json={"history": [[1.0]], "k": 2, "future_covariates": [[1.0], [2.0]]},
    )
    assert r.status_code == 422 and "future_covariates: model 'air' has no known" in r.text
    n = fc.config.lookback - 1
    r = fserver.http.post("/v1/models/air/forecast", json={"history": y[:n].tolist(), "k": 3})
    assert r.status_code == 422 and f"the history has {n} rows" in r.text


def _stream_results(live, sid: str, y: np.ndarray, chunks, seq0: int = 0, i0: int = 0):
    got, i, seq = [], i0, seq0
    for n in chunks:
        r = _observe(live, sid, seq, y[i : i + n].tolist())
        assert r.status_code == 200, r.text
        got.extend(r.json()["results"])
        i, seq = i + n, seq + 1
    return got, i, seq


def test_forecaster_stream_equals_a_batch_pass(fserver, forecaster):
    fc, y = forecaster["fc"], forecaster["y"]
    sid = fserver.http.post("/v1/models/air/streams").json()["stream_id"]
    chunks = [1] * 11 + [2, 5, 1, 37] + [1] * 30 + [58]  # 144 points; the window fills mid-chunk
    got, i, _ = _stream_results(fserver, sid, y, chunks)
    assert i == len(y) == len(got)
    batch = _one_step_batch(fc, y)
    N = fc.config.lookback
    assert all(g["forecast"] is None and g["residual"] is None for g in got[:N])
    assert all(g["next"] is None for g in got[: N - 1])
    forecast = np.array([g["forecast"] for g in got[N:]])
    np.testing.assert_allclose(forecast, batch[N - 1 : -1], atol=1e-4)
    np.testing.assert_allclose(np.array([g["residual"] for g in got[N:]]), y[N:] - forecast)
    np.testing.assert_allclose(
        np.array([g["next"] for g in got[N - 1 :]]), batch[N - 1 :], atol=1e-4
    )
    fserver.http.delete(f"/v1/streams/{sid}")


def test_forecaster_stream_continues_after_a_restart(forecaster, tmp_path, live_server):
    fc, y = forecaster["fc"], forecaster["y"]
    args = [str(forecaster["dir"]), "--state", str(tmp_path / "state.sqlite3")]
    a = live_server(args, tmp_path / "a.txt")
    sid = a.http.post("/v1/models/air/streams").json()["stream_id"]
    sid2 = a.http.post("/v1/models/air/streams").json()["stream_id"]
    got, i, seq = _stream_results(a, sid, y, [5, 20, 3])  # past the window
    got2, i2, seq2 = _stream_results(a, sid2, y, [4, 3])  # still buffering
    a.kill()
    b = live_server(args, tmp_path / "b.txt")
    try:
        more, i, _ = _stream_results(b, sid, y, [1] * 10 + [len(y) - i - 10], seq, i)
        more2, i2, _ = _stream_results(b, sid2, y, [len(y) - i2], seq2, i2)
    finally:
        b.stop()
    batch, N = _one_step_batch(fc, y), fc.config.lookback
    for results in (got + more, got2 + more2):
        assert len(results) == len(y)
        forecast = np.array([g["forecast"] for g in results[N:]])
        np.testing.assert_allclose(forecast, batch[N - 1 : -1], atol=1e-4)
