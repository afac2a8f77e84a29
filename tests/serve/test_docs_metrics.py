"""/docs without a CDN and without the key, /metrics on prometheus_client, the private state file.

The app runs in process (FastAPI's TestClient over the same ASGI stack `seqshape serve` runs, auth
included) with no models: these routes do not need any.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from seqshape.serve.app import ServeConfig, create_app
from seqshape.serve.docs import openapi_30
from seqshape.serve.store import StreamRecord, StreamStore

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

KEY = "docs-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def client(tmp_path):
    from fastapi.testclient import TestClient

    app = create_app({}, ServeConfig(state_path=tmp_path / "state.sqlite3", api_key=KEY))
    with TestClient(app) as c:
        yield c


def _urls(html: str) -> list[str]:
    """Every asset and schema URL a Swagger UI page loads."""
    return re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)


def test_docs_load_without_the_key_and_from_local_assets_only(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    urls = _urls(page.text)
    assert len(urls) == 4, urls  # css, icon, js, schema
    for url in urls:
        assert url.startswith("/docs/"), url  # nothing from another host
        r = client.get(url)  # no key
        assert r.status_code == 200 and len(r.content) > 500, url
    spec_url = re.search(r"url: '([^']+)'", page.text)[1]
    spec30 = client.get(spec_url).json()
    assert spec30["openapi"] == "3.0.3"  # the version the bundled Swagger UI 4 renders
    assert '"type": "null"' not in json.dumps(spec30)
    spec = client.get("/openapi.json").json()  # no key either
    assert spec["openapi"].startswith("3.1")
    scheme = spec["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")  # what Authorize sends
    assert spec30["components"]["securitySchemes"] == spec["components"]["securitySchemes"]
    for path, ops in spec["paths"].items():
        for op in ops.values():
            assert op.get("security") == (None if path == "/healthz" else [{"bearer": []}])
    # the API itself still needs the key, and the docs paths open nothing else
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers=AUTH).status_code == 200
    assert client.get("/metrics").status_code == 401
    assert client.post("/docs").status_code == 401
    assert client.get("/docs/assets/../../v1/models").status_code in (401, 404)
    assert client.get("/docs/assets/nope.js").status_code == 404


def test_docs_fall_back_to_the_cdn_without_swagger_ui_bundle(tmp_path, monkeypatch, caplog):
    from fastapi.testclient import TestClient

    monkeypatch.setitem(sys.modules, "swagger_ui_bundle", None)  # import -> ImportError
    with caplog.at_level(logging.WARNING, logger="seqshape.serve"):
        app = create_app({}, ServeConfig(state_path=tmp_path / "s.sqlite3", api_key=KEY))
    assert "swagger-ui-bundle is not installed" in caplog.text
    with TestClient(app) as c:
        page = c.get("/docs")
        assert page.status_code == 200 and "Swagger UI from a CDN" in page.text
        urls = _urls(page.text)
        assert "/openapi.json" in urls and any(u.startswith("https://") for u in urls)
        assert c.get("/docs/assets/swagger-ui.css").status_code == 404  # nothing mounted there


def test_openapi_30_turns_3_1_nulls_into_nullable():
    spec = {
        "openapi": "3.1.0",
        "components": {
            "schemas": {
                "A": {
                    "properties": {
                        "x": {"anyOf": [{"type": "array", "items": {}}, {"type": "null"}]},
                        "r": {"anyOf": [{"$ref": "#/components/schemas/B"}, {"type": "null"}]},
                        "u": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "t": {"type": ["string", "null"], "const": "s", "exclusiveMinimum": 1},
                    }
                }
            }
        },
    }
    out = openapi_30(spec)
    props = out["components"]["schemas"]["A"]["properties"]
    assert out["openapi"] == "3.0.3" and spec["openapi"] == "3.1.0"  # a copy
    assert props["x"] == {"type": "array", "items": {}, "nullable": True}
    assert props["r"] == {"allOf": [{"$ref": "#/components/schemas/B"}], "nullable": True}
    assert props["u"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert props["t"] == {
        "type": "string",
        "nullable": True,
        "enum": ["s"],
        "minimum": 1,
        "exclusiveMinimum": True,
    }


def _samples(text: str) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value, from Prometheus text (parsed, not grepped)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_parse_with_process_metrics_and_count_requests(client, tmp_path):
    from fastapi.testclient import TestClient

    key = (
        "seqshape_http_requests_total",
        (("method", "GET"), ("route", "/v1/models"), ("status", "200")),
    )
    before = _samples(client.get("/metrics", headers=AUTH).text)
    assert before.get(key, 0.0) == 0.0
    for _ in range(3):
        client.get("/v1/models", headers=AUTH)
    client.request("BREW", "/v1/models", headers=AUTH)  # odd methods share one label
    after = _samples(client.get("/metrics", headers=AUTH).text)
    assert after[key] == 3.0
    names = {name for name, _ in after}
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "python_info",
        "seqshape_open_streams",
        "seqshape_points_total",
        "seqshape_http_request_duration_seconds_bucket",
    ]:
        assert name in names, name
    assert after[("process_resident_memory_bytes", ())] > 10e6
    dur = (
        "seqshape_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "/v1/models")),
    )
    assert after[dur] == 3.0
    methods = {dict(labels).get("method") for name, labels in after if "http_requests" in name}
    assert "BREW" not in methods and "other" in methods
    # a second server in the same process counts on its own registry
    other = create_app({}, ServeConfig(state_path=tmp_path / "other.sqlite3", api_key=KEY))
    with TestClient(other) as c:
        assert _samples(c.get("/metrics", headers=AUTH).text).get(key, 0.0) == 0.0


def test_state_file_is_created_private_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "new" / "streams.sqlite3"
        store = StreamStore(path, checkpoint_every=0)
        try:
            now = time.time()
            rec = StreamRecord("s1", "m", "v", None, 0, 0, now, now)
            store.create(rec, json.dumps({"secret": [1.0, 2.0]}))
            for p in [path, Path(f"{path}-wal"), Path(f"{path}-shm")]:
                assert p.exists() and stat.S_IMODE(p.stat().st_mode) == 0o600, p
            # what holds no user data follows the umask
            assert stat.S_IMODE(Path(f"{path}.lock").stat().st_mode) == 0o644
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
        finally:
            store.close()
        os.umask(0o000)  # reopening keeps the file as it is, and a new one is still 0600
        StreamStore(path, checkpoint_every=0).close()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        StreamStore(tmp_path / "b.sqlite3", checkpoint_every=0).close()
        assert stat.S_IMODE((tmp_path / "b.sqlite3").stat().st_mode) == 0o600
    finally:
        os.umask(old)
