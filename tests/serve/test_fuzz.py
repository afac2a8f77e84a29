"""Property fuzz of request bodies: whatever a client sends, the server answers 2xx or 4xx, never 5xx.

Runs the real app in process (FastAPI's TestClient: the same ASGI stack `seqshape serve` runs, auth
and limits included) over real tiny models of every servable kind: a classifier (and a
bidirectional one that cannot stream), a forecaster, a forecaster with calendar covariates and an
anomaly detector. Bodies come from three sources: any JSON value (with NaN/Infinity tokens, huge
numbers, deep nesting), near-valid bodies (right keys, wrong shapes, values and timestamps), and raw
bytes; they go to predict, forecast, detect, stream opening and observe. The observe fast path is
checked against the FastAPI route it shortcuts: the same body gets the same status and bytes either
way. A stateful property checks the stream sequence-number rules against a model of them, on both
paths. Example counts are bounded so the module runs in seconds.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqshape.datasets
from seqshape.anomaly.detector import AnomalyDetector, DetectorConfig
from seqshape.anomaly.nab import load_corpus
from seqshape.api.classifier import STREAM_OPTIONS, SequenceClassifier
from seqshape.api.forecaster import Forecaster, SeriesData
from seqshape.data.series import read_series_csv
from seqshape.datasets import load_japanese_vowels

pytestmark = pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient`",
    "ignore:no explicit representation of timezones:UserWarning",  # numpy, '...+05:00'
)

KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
STREAMABLE = ["jv", "air", "cal", "det"]  # F = 12, 1, 1, 1


@pytest.fixture(scope="module")
def client(tmp_path_factory, shared_data: Path):
    from fastapi.testclient import TestClient

    from seqshape.serve.adapters import load_models
    from seqshape.serve.app import ServeConfig, create_app

    root = tmp_path_factory.mktemp("fuzz")
    train = load_japanese_vowels("train")
    SequenceClassifier(hidden_size=16, epochs=1, bidirectional=False, **STREAM_OPTIONS).fit(
        train
    ).save(root / "jv")
    SequenceClassifier(hidden_size=8, epochs=1, bidirectional=True).fit(train).save(root / "bi")
    frame = read_series_csv(
        seqshape.datasets.path("AirPassengers.csv"), target="#Passengers", future_covariates="auto"
    )
    y = frame.target[0]
    # streams: the autoregressive strategy, asked for (on AirPassengers "auto" picks direct)
    ar = dict(lookback=12, horizon=4, hidden_size=8, epochs=1, threads=1, strategy="autoregressive")
    Forecaster(**ar).fit(SeriesData(target=y)).save(root / "air")
    cal = Forecaster(**ar)
    cal.meta = {"columns": {"future_covariates": "auto"}, "freq": "MS"}
    cal.fit(SeriesData(target=y, future_cov=frame.future_cov[0])).save(root / "cal")
    nab = shared_data / "anomaly" / "nab"
    speed = next(s for s in load_corpus(nab) if s.name == "speed_7578.csv")
    p = speed.probation
    det = AnomalyDetector(DetectorConfig(hidden_size=8, epochs=1, chunk=16, history=200))
    det.fit(speed.values[:p], speed.timestamps[:p]).save(root / "det")
    config = ServeConfig(
        state_path=root / "state.sqlite3",
        api_key=KEY,
        max_body_bytes=20_000,
        max_batch=8,
        max_steps=40,
        max_points=8,
        max_horizon=24,
        max_streams=50,
        replay_window=4,
    )
    names = ["jv", "bi", "air", "cal", "det"]
    models = load_models([str(root / n) for n in names])
    with TestClient(create_app(models, config)) as c:
        yield c


def _stream(client, name: str = "jv") -> str:
    r = client.post(f"/v1/models/{name}/streams", headers=AUTH)
    assert r.status_code == 201, r.text
    return r.json()["stream_id"]


def _finite(value) -> bool:
    """Only finite numbers (and null) in a decoded JSON answer."""
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _check(r) -> None:
    """No 5xx; a 4xx says why; a 2xx holds only finite numbers and proper probabilities."""
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        detail = r.json()["detail"]
        assert isinstance(detail, str) and detail
        return
    body = json.loads(r.content, parse_constant=lambda c: pytest.fail(f"{c} in a reply"))
    assert _finite(body)
    answers = body.get("predictions", body.get("results", []))
    for a in answers:
        if "probabilities" in a:
            p = list(a["probabilities"].values())
            assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in p), a
            assert abs(sum(p) - 1.0) < 1e-4 and a["class"] in a["probabilities"]
        if "score" in a:
            assert 0.0 <= a["score"] <= 1.0 and isinstance(a["is_anomaly"], bool)
    for s in body.get("score", []):
        assert 0.0 <= s <= 1.0


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False),
    st.floats(-10, 10, allow_subnormal=False),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([1e300, -1e300, 3.5e38, 3.3e38, -1e38, 1e30, 0.0, -0.0, 10**400]),
)
# any text, lone surrogates included ("\ud800" in JSON decodes to one; UTF-8 cannot encode it)
surrogates = st.characters(categories=["Cs"])
texts = st.one_of(
    st.text(max_size=8),
    st.text(st.one_of(surrogates, st.characters(codec=None)), min_size=1, max_size=8),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
KEYS = ["sequences", "points", "seq", "k", "history", "values", "timestamps", "warmup", "start"]
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(st.one_of(st.sampled_from([*KEYS, "x", ""]), texts), inner, max_size=4),
    ),
    max_leaves=40,
)
rows = st.lists(st.one_of(numbers, scalars), min_size=0, max_size=14)
# rows of finite numbers, some of them huge: valid JSON the models must survive
big = st.sampled_from([3.3e38, -3.3e38, 1e38, 1e30, -1e20, 1e10])
finite = st.one_of(st.floats(-5, 5, allow_subnormal=False), st.integers(-3, 3), big)
valid_rows = st.lists(finite, min_size=12, max_size=12)
series_rows = st.lists(st.one_of(st.floats(100, 600), finite), min_size=1, max_size=1)
valid_steps = st.lists(valid_rows, min_size=1, max_size=5)
series_steps = st.lists(series_rows, min_size=1, max_size=8)
near_rows = st.one_of(valid_rows, series_rows, st.lists(numbers, min_size=12, max_size=12), rows)
steps = st.lists(near_rows, min_size=0, max_size=6)
iso = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.isoformat()
)
stamp = st.one_of(
    iso,
    iso,
    texts,
    iso.map(lambda t: t + "\ud800"),
    st.sampled_from(
        ["NaT", "nat", "2020-13-01", "99999-01-01", "2020-01-01T25:00", "", "1" * 70, "2262-04-12"]
    ),
    st.sampled_from(["1677-09-21", "2020-01-01T00:00:00+05:00", "2020-01-01Z", "today", "1"]),
)
stamps = st.one_of(st.none(), st.lists(stamp, min_size=0, max_size=10), json_values)
good_iso = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.isoformat()
)
F = {"jv": 12, "bi": 12, "air": 1, "cal": 1, "det": 1}
TIMESTAMPS = {"cal", "det"}  # models whose observe / forecast / detect need timestamps


@st.composite
def valid_points(draw, name: str, key: str = "points", max_rows: int = 8) -> dict:
    """A body part the model accepts: n rows of its F finite numbers (+ n timestamps)."""
    n = draw(st.integers(1, max_rows))
    row = valid_rows if F[name] == 12 else series_rows
    body = {key: draw(st.lists(row, min_size=n, max_size=n))}
    if name in TIMESTAMPS:
        body["timestamps"] = draw(st.lists(good_iso, min_size=n, max_size=n))
    return body


def good_observe(name: str):
    return st.builds(lambda seq, part: {"seq": seq, **part}, st.just(0), valid_points(name))


def good_forecast(name: str):
    def build(part, k, more):
        body = {"history": part["points"], "k": k}
        if "timestamps" in part:
            body["timestamps"] = part["timestamps"] + more[: k if len(more) >= k else 0]
        return body

    return st.builds(
        build,
        valid_points(name, max_rows=20),
        st.integers(1, 24),
        st.lists(good_iso, max_size=24),
    )


def good_detect(name: str):
    def build(part, warmup):
        body = {"values": part["points"], "warmup": warmup}
        if "timestamps" in part:
            body["timestamps"] = part["timestamps"]
        return body

    return st.builds(build, valid_points(name, max_rows=30), st.integers(0, 5))


predict_bodies = st.one_of(
    st.fixed_dictionaries({"sequences": st.lists(valid_steps, min_size=1, max_size=4)}),
    st.fixed_dictionaries({"sequences": st.lists(steps, min_size=0, max_size=10)}),
    st.fixed_dictionaries(
        {"sequences": st.one_of(json_values, st.lists(steps, max_size=3))},
        optional={"extra": json_values},
    ),
    json_values,
)
observe_bodies = st.one_of(
    st.fixed_dictionaries({"seq": st.just(0), "points": st.one_of(valid_steps, series_steps)}),
    st.fixed_dictionaries(
        {"seq": st.just(0), "points": series_steps}, optional={"timestamps": stamps}
    ),
    st.fixed_dictionaries(
        {
            "seq": st.one_of(st.integers(-3, 5), st.integers(), numbers, scalars),
            "points": st.one_of(steps, st.lists(near_rows, min_size=1, max_size=10)),
        },
        optional={"timestamps": stamps},
    ),
    json_values,
)
forecast_bodies = st.one_of(
    st.fixed_dictionaries(
        {"history": series_steps, "k": st.integers(1, 30)},
        optional={"timestamps": stamps, "future_covariates": st.one_of(steps, st.none())},
    ),
    st.fixed_dictionaries(
        {"history": steps, "k": st.one_of(st.integers(), numbers)},
        optional={"future_covariates": st.one_of(steps, st.none()), "timestamps": stamps},
    ),
    json_values,
)
detect_bodies = st.one_of(
    st.fixed_dictionaries(
        {"values": series_steps},
        optional={"timestamps": stamps, "warmup": st.one_of(st.integers(-2, 10), scalars)},
    ),
    st.fixed_dictionaries(
        {"values": st.one_of(steps, json_values)},
        optional={"timestamps": stamps, "warmup": json_values},
    ),
    json_values,
)
open_bodies = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "start": st.one_of(st.sampled_from(["saved", "fresh", "x"]), scalars),
            "warmup": st.one_of(st.integers(-2, 10**20), scalars),
        },
    ),
    json_values,
)


def _dump(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()  # NaN/Infinity tokens, as Python writes them


# (subnormal floats are left out: runtime.configure flushes them to zero process-wide)


@SETTINGS
@given(body=predict_bodies, name=st.sampled_from(["jv", "bi", "nope"]))
def test_predict_fuzz(client, body, name):
    _check(client.post(f"/v1/models/{name}/predict", content=_dump(body), headers=AUTH))


@SETTINGS
@given(name=st.sampled_from(["air", "cal", "jv"]), data=st.data())
def test_forecast_fuzz(client, name, data):
    body = data.draw(st.one_of(good_forecast(name), good_forecast(name), forecast_bodies))
    _check(client.post(f"/v1/models/{name}/forecast", content=_dump(body), headers=AUTH))


@SETTINGS
@given(name=st.sampled_from(["det", "det", "air"]), data=st.data())
def test_detect_fuzz(client, name, data):
    body = data.draw(st.one_of(good_detect(name), good_detect(name), detect_bodies))
    _check(client.post(f"/v1/models/{name}/detect", content=_dump(body), headers=AUTH))


@settings(SETTINGS, max_examples=60)
@given(body=open_bodies, name=st.sampled_from(["det", "jv", "bi"]))
def test_open_stream_fuzz(client, body, name):
    content = b"" if body is None else _dump(body)
    r = client.post(f"/v1/models/{name}/streams", content=content, headers=AUTH)
    _check(r)
    if r.status_code == 201:
        _check(client.delete(f"/v1/streams/{r.json()['stream_id']}", headers=AUTH))


@SETTINGS
@given(name=st.sampled_from([*STREAMABLE, None]), data=st.data())
def test_observe_fuzz(client, name, data):
    body = data.draw(
        st.one_of(good_observe(name or "jv"), good_observe(name or "jv"), observe_bodies)
    )
    sid = _stream(client, name) if name else "not-a-stream"
    _check(client.post(f"/v1/streams/{sid}/observe", content=_dump(body), headers=AUTH))
    if name:
        _check(client.delete(f"/v1/streams/{sid}", headers=AUTH))


@settings(SETTINGS, max_examples=150)
@given(name=st.sampled_from(STREAMABLE), again=st.booleans(), data=st.data())
def test_observe_fast_path_answers_as_the_route_does(client, name, again, data):
    """The same body to two fresh streams, one through the fast path and one through FastAPI:
    the same status, headers that matter and bytes (the stream ids aside)."""
    body = data.draw(st.one_of(good_observe(name), good_observe(name), observe_bodies))
    gate = client.app
    answers = []
    for fast in (True, False):
        gate.fast = fast
        try:
            sid = _stream(client, name)
            r = client.post(f"/v1/streams/{sid}/observe", content=_dump(body), headers=AUTH)
            if again:  # a second time: a replay, or the same refusal
                r = client.post(f"/v1/streams/{sid}/observe", content=_dump(body), headers=AUTH)
        finally:
            gate.fast = True
        _check(r)
        answers.append((r.status_code, r.headers.get("seqshape-replay"), r.content, sid))
        client.delete(f"/v1/streams/{sid}", headers=AUTH)
    (s1, h1, b1, id1), (s2, h2, b2, id2) = answers
    assert (s1, h1) == (s2, h2)
    assert b1.replace(id1.encode(), b"ID") == b2.replace(id2.encode(), b"ID")


@SETTINGS
@given(
    raw=st.binary(max_size=300),
    path=st.sampled_from(
        [
            "/v1/models/jv/predict",
            "/v1/models/air/forecast",
            "/v1/models/det/detect",
            "/v1/models/jv/streams",
            "/v1/models/det/streams",
            "/v1/models/bi/streams",
            "/v1/streams/x/observe",
            "/v1/models/%00/predict",
            "/metrics",
        ]
    ),
    content_type=st.sampled_from(["application/json", "text/plain", "application/x+json", ""]),
    auth=st.sampled_from([AUTH["Authorization"], "", "Bearer ", f"Bearer {KEY}\x00"]),
)
def test_raw_bytes_fuzz(client, raw, path, content_type, auth):
    headers = {"content-type": content_type} if content_type else {}
    if auth:
        headers["Authorization"] = auth
    r = client.post(path, content=raw, headers=headers)
    _check(r)
    if r.status_code in (201,):
        client.delete(f"/v1/streams/{r.json()['stream_id']}", headers=AUTH)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    ops=st.lists(
        st.tuples(st.integers(-1, 8), st.integers(0, 2), st.integers(1, 3)), min_size=1, max_size=14
    ),
    fast=st.booleans(),
)
def test_sequence_numbers_follow_the_rules(client, ops, fast):
    """Each (seq, which points, how many): 200 exactly when the rules say so, else 409/422."""
    client.app.fast = fast
    try:
        sid = _stream(client)
        next_seq, sent, points = 0, {}, 0
        for seq, which, n in ops:
            rows = [[float(which + i)] * 12 for i in range(n)]
            body = _dump({"seq": seq, "points": rows})
            r = client.post(f"/v1/streams/{sid}/observe", content=body, headers=AUTH)
            if seq < 0:
                assert r.status_code == 422
            elif seq == next_seq:
                assert r.status_code == 200 and "seqshape-replay" not in r.headers
                sent[seq], next_seq, points = (r.content, rows), next_seq + 1, points + n
                assert r.json()["points"] == points
            elif seq < next_seq and seq > next_seq - 1 - 4 and sent[seq][1] == rows:
                assert r.status_code == 200 and r.headers["seqshape-replay"] == "1"
                assert r.content == sent[seq][0]
            else:
                assert r.status_code == 409, r.text
        info = client.get(f"/v1/streams/{sid}", headers=AUTH).json()
        assert (info["next_seq"], info["points"]) == (next_seq, points)
        client.delete(f"/v1/streams/{sid}", headers=AUTH)
    finally:
        client.app.fast = True


# -- one field at a time: valid bodies with one value (or key) swapped for anything ------------
STAMPS = ["2015-09-17T10:00:00", "2015-09-17T10:05:00", "2015-09-17T10:10:00"]
MONTHS = [f"2020-{m:02d}-01" for m in range(1, 13)]
VALID = {  # route -> (model or None, a body it accepts)
    "predict": ("jv", {"sequences": [[[0.5] * 12] * 3, [[0.1] * 12]]}),
    "forecast": (
        "cal",
        {"history": [[120.0 + m] for m in range(12)], "k": 2, "timestamps": MONTHS},
    ),
    "detect": ("det", {"values": [[60.0], [61.0], [59.0]], "timestamps": STAMPS, "warmup": 1}),
    "streams": ("det", {"start": "fresh", "warmup": 1}),
    "observe-det": ("det", {"seq": 0, "points": [[60.0], [61.0]], "timestamps": STAMPS[:2]}),
    "observe-jv": ("jv", {"seq": 0, "points": [[0.5] * 12]}),
}
# paths into a body: ("points", 0, 3) is body["points"][0][3]
anything = st.one_of(texts, json_values, numbers, st.just("\ud800"), st.just(["\udfff"]))


def _places(node, at=()) -> list[tuple]:
    """Every place in a JSON tree (the root's own keys and every nested value)."""
    out = [at] if at else []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for k, v in items:
        out += _places(v, (*at, k))
    return out


def _swap(body, place: tuple, value, as_key: bool):
    """A copy of ``body`` with the value at ``place`` (or, as_key, its key) swapped for ``value``."""
    body = copy.deepcopy(body)
    parent = body
    for k in place[:-1]:
        parent = parent[k]
    last = place[-1]
    if as_key and isinstance(parent, dict) and isinstance(value, str):
        parent[value] = parent.pop(last)
    else:
        parent[last] = value
    return body


def _post_route(client, route: str, body):
    name, _ = VALID[route]
    if route.startswith("observe"):
        sid = _stream(client, name)
        r = client.post(f"/v1/streams/{sid}/observe", content=_dump(body), headers=AUTH)
        client.delete(f"/v1/streams/{sid}", headers=AUTH)
        return r
    r = client.post(f"/v1/models/{name}/{route}", content=_dump(body), headers=AUTH)
    if route == "streams" and r.status_code == 201:
        client.delete(f"/v1/streams/{r.json()['stream_id']}", headers=AUTH)
    return r


def test_the_valid_bodies_are_valid(client):
    """The bodies the next test spoils are accepted as they are (so a spoilt one tests its place)."""
    for route, (_name, body) in VALID.items():
        r = _post_route(client, route, body)
        assert r.status_code in (200, 201), (route, r.text)


@settings(SETTINGS, max_examples=200)
@given(
    route=st.sampled_from(sorted(VALID)), fast=st.booleans(), as_key=st.booleans(), data=st.data()
)
def test_any_value_in_any_place_is_a_4xx_naming_it_never_a_5xx(client, route, fast, as_key, data):
    """Lone surrogates, other text, huge numbers, nested objects, wrong types: swapped into one
    place of a valid body of every POST route, through the observe fast path and without it."""
    body = VALID[route][1]
    place = data.draw(st.sampled_from(_places(body)))
    value = data.draw(anything)
    client.app.fast = fast
    try:
        r = _post_route(client, route, _swap(body, place, value, as_key))
    finally:
        client.app.fast = True
    _check(r)
    if r.status_code == 422 and r.json().get("error") == "ValidationError" and not as_key:
        # the message names the place (or its parent list, for a length or shape error)
        field = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in place).lstrip(".")
        detail = r.json()["detail"]
        assert detail.startswith(("body", field.split("[")[0])), (field, detail)


def test_no_request_in_this_module_was_answered_5xx(client):
    """Every request above, as the server's own metrics counted them (runs last in the module)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics", headers=AUTH).text
    by_status: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "seqshape_http_requests_total":
                by_status[s.labels["status"]] = by_status.get(s.labels["status"], 0) + s.value
    total = sum(by_status.values())
    fivexx = sum(n for status, n in by_status.items() if status.startswith("5"))
    print(f"\nfuzz: {total:.0f} requests, {fivexx:.0f} answered 5xx, by status {by_status}")
    assert total > 0 and fivexx == 0, by_status
