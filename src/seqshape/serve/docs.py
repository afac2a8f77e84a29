"""Interactive API docs at /docs that work offline and behind an API key.

    GET /docs                    Swagger UI (no key needed: its Authorize button takes the key)
    GET /docs/assets/...         Swagger UI's JS, CSS and icons, from the swagger-ui-bundle package
    GET /docs/openapi-3.0.json   the schema in the OpenAPI 3.0 dialect that bundle reads
    GET /openapi.json            the schema (OpenAPI 3.1, as FastAPI writes it; no key needed)

The assets are served from the installed `swagger_ui_bundle` package, so the page needs no CDN.
That package is optional: without it /docs loads Swagger UI from FastAPI's default CDN (blank
offline), says so in its title, and the server logs a warning at start. The bundle (Swagger UI 4)
reads OpenAPI 3.0 only; `openapi_30` turns FastAPI's 3.1 schema into 3.0 for it (``nullable``
for ``anyOf [..., {"type": "null"}]``, the only 3.1 construct these schemas use, and the few
others a 3.1 schema may hold).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse

log = logging.getLogger("seqshape.serve")

DOCS = "/docs"
ASSETS = "/docs/assets"
OPENAPI = "/openapi.json"
OPENAPI_30 = "/docs/openapi-3.0.json"
PUBLIC = frozenset((DOCS, OPENAPI, OPENAPI_30))


def is_public(method: str, path: str) -> bool:
    """The docs routes, which answer without the API key (GET/HEAD only)."""
    return method in ("GET", "HEAD") and (path in PUBLIC or path.startswith(ASSETS + "/"))


def _not_null(schema: Any) -> bool:
    return not (isinstance(schema, dict) and schema.get("type") == "null" and len(schema) == 1)


def _schema_30(node: Any) -> Any:
    """One JSON Schema node (and everything under it), 3.1 -> 3.0, in place; returns it."""
    if isinstance(node, list):
        for v in node:
            _schema_30(v)
        return node
    if not isinstance(node, dict):
        return node
    for v in node.values():
        _schema_30(v)
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if isinstance(options, list) and not all(_not_null(o) for o in options):
            rest = [o for o in options if _not_null(o)]
            del node[key]
            if len(rest) == 1 and "$ref" in rest[0]:
                node["allOf"] = rest  # 3.0 ignores siblings of a $ref
            elif len(rest) == 1:
                node.update({k: v for k, v in rest[0].items() if k not in node})
            elif rest:
                node[key] = rest
            node["nullable"] = True
    kind = node.get("type")
    if isinstance(kind, list):  # "type": ["string", "null"]
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            node["nullable"] = True
        if len(kinds) == 1:
            node["type"] = kinds[0]
        else:
            del node["type"]
            if kinds:
                node["anyOf"] = [{"type": k} for k in kinds]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if isinstance(node.get("examples"), list) and "properties" not in node:
        examples = node.pop("examples")
        if examples:
            node["example"] = examples[0]
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        v = node.get(bound)
        if isinstance(v, int | float) and not isinstance(v, bool):
            node[flag], node[bound] = v, True
    return node


def openapi_30(spec: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's OpenAPI 3.1 schema as OpenAPI 3.0.3 (a copy), for Swagger UI 4."""
    out = copy.deepcopy(spec)
    out["openapi"] = "3.0.3"
    for part in ("paths", "components"):
        if part in out:
            _schema_30(out[part])
    return out


def add_docs(app: FastAPI) -> None:
    """Add /docs (Swagger UI from local assets when swagger_ui_bundle is installed) to ``app``,
    which must have been made with ``docs_url=None``."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None
    if swagger_ui_path is not None:
        from starlette.staticfiles import StaticFiles

        app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
        files = {
            "swagger_js_url": f"{ASSETS}/swagger-ui-bundle.js",
            "swagger_css_url": f"{ASSETS}/swagger-ui.css",
            "swagger_favicon_url": f"{ASSETS}/favicon-32x32.png",
        }
        title, spec_url = f"{app.title} - API docs", OPENAPI_30
    else:
        log.warning(
            "swagger-ui-bundle is not installed: /docs loads Swagger UI from a CDN and is blank "
            "offline (pip install swagger-ui-bundle)"
        )
        files = {}  # FastAPI's CDN defaults (Swagger UI 5, which reads OpenAPI 3.1)
        title, spec_url = f"{app.title} - API docs (Swagger UI from a CDN)", OPENAPI

    @app.get(DOCS, include_in_schema=False)
    async def docs(request: Request):
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + spec_url,
            title=title,
            swagger_ui_parameters={"persistAuthorization": True},
            **{k: root + v for k, v in files.items()},
        )

    converted: list[dict] = []  # computed on the first request, as FastAPI does its schema

    @app.get(OPENAPI_30, include_in_schema=False)
    async def schema_30():
        if not converted:
            converted.append(openapi_30(app.openapi()))
        return JSONResponse(converted[0])
