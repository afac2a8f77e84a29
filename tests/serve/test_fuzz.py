"""Property fuzz of request bodies: whatever a client sends, the server answers 2xx or 4xx, never 5xx.

Runs the real app in process (FastAPI's TestClient: the same ASGI stack `seqshape serve` runs, auth
and limits included) over a real tiny classifier. Bodies come from three sources: any JSON value
(with NaN/Infinity tokens, huge numbers, deep nesting), near-valid bodies (right keys, wrong
shapes and values), and raw bytes. A stateful property checks the stream sequence-number rules
against a model of them. Example counts are bounded so the module runs in seconds.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqshape.api.classifier import SequenceClassifier
from seqshape.datasets import load_japanese_vowels

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from seqshape.serve.adapters import load_models
    from seqshape.serve.app import ServeConfig, create_app

    root = tmp_path_factory.mktemp("fuzz")
    train = load_japanese_vowels("train")
    SequenceClassifier(hidden_size=16, epochs=2, bidirectional=False).fit(train).save(root / "jv")
    SequenceClassifier(hidden_size=8, epochs=1, bidirectional=True).fit(train).save(root / "bi")
    config = ServeConfig(
        state_path=root / "state.sqlite3",
        api_key=KEY,
        max_body_bytes=20_000,
        max_batch=8,
        max_steps=40,
        max_points=8,
        max_streams=50,
        replay_window=4,
    )
    models = load_models([str(root / "jv"), str(root / "bi")])
    with TestClient(create_app(models, config)) as c:
        yield c


def _stream(client) -> str:
    r = client.post("/v1/models/jv/streams", headers=AUTH)
    assert r.status_code == 201, r.text
    return r.json()["stream_id"]


def _check(r) -> None:
    """No 5xx; a 4xx says why; a 2xx holds only finite numbers and proper probabilities."""
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        detail = r.json()["detail"]
        assert isinstance(detail, str) and detail
        return
    body = json.loads(r.content, parse_constant=lambda c: pytest.fail(f"{c} in a reply"))
    answers = body.get("predictions", body.get("results", []))
    for a in answers:
        p = list(a["probabilities"].values())
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in p), a
        assert abs(sum(p) - 1.0) < 1e-4 and a["class"] in a["probabilities"]


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False),
    st.floats(-10, 10, allow_subnormal=False),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([1e300, -1e300, 3.5e38, 3.3e38, -1e38, 1e30, 0.0, -0.0]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(
            st.sampled_from(["sequences", "points", "seq", "k", "history", "x", ""]),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=40,
)
rows = st.lists(st.one_of(numbers, scalars), min_size=0, max_size=14)
# rows of the model's F=12 finite numbers, some of them huge: valid JSON the model must survive
big = st.sampled_from([3.3e38, -3.3e38, 1e38, 1e30, -1e20, 1e10])
valid_rows = st.lists(
    st.one_of(st.floats(-5, 5, allow_subnormal=False), st.integers(-3, 3), big),
    min_size=12,
    max_size=12,
)
valid_steps = st.lists(valid_rows, min_size=1, max_size=5)
near_rows = st.one_of(valid_rows, st.lists(numbers, min_size=12, max_size=12), rows)
steps = st.lists(near_rows, min_size=0, max_size=6)
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
    st.fixed_dictionaries({"seq": st.just(0), "points": valid_steps}),
    st.fixed_dictionaries(
        {
            "seq": st.one_of(st.integers(-3, 5), st.integers(), numbers, scalars),
            "points": st.one_of(steps, st.lists(near_rows, min_size=1, max_size=10)),
        }
    ),
    json_values,
)
forecast_bodies = st.one_of(
    st.fixed_dictionaries(
        {"history": steps, "k": st.one_of(st.integers(), numbers)},
        optional={"future_covariates": st.one_of(steps, st.none())},
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
@given(body=forecast_bodies)
def test_forecast_fuzz(client, body):
    _check(client.post("/v1/models/jv/forecast", content=_dump(body), headers=AUTH))


@SETTINGS
@given(body=observe_bodies, known=st.booleans())
def test_observe_fuzz(client, body, known):
    sid = _stream(client) if known else "not-a-stream"
    _check(client.post(f"/v1/streams/{sid}/observe", content=_dump(body), headers=AUTH))
    if known:
        _check(client.delete(f"/v1/streams/{sid}", headers=AUTH))


@SETTINGS
@given(
    raw=st.binary(max_size=300),
    path=st.sampled_from(
        [
            "/v1/models/jv/predict",
            "/v1/models/jv/forecast",
            "/v1/models/jv/streams",
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


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    ops=st.lists(
        st.tuples(st.integers(-1, 8), st.integers(0, 2), st.integers(1, 3)), min_size=1, max_size=14
    )
)
def test_sequence_numbers_follow_the_rules(client, ops):
    """Each (seq, which points, how many): 200 exactly when the rules say so, else 409/422."""
    sid = _stream(client)
    next_seq, sent, points = 0, {}, 0
    for seq, which, n in ops:
        rows = [[float(which + i)] * 12 for i in range(n)]
        r = client.post(
            f"/v1/streams/{sid}/observe", content=_dump({"seq": seq, "points": rows}), headers=AUTH
        )
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
