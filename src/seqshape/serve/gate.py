"""The outer ASGI layer of the server (`_Gate`): metrics for every request, bearer auth, the
body-size limit, and the observe route's fast path.

The fast path: an observe body that is plainly valid (`quick_observe`: a JSON object with an
integer seq in range and rows of finite numbers within the limits) goes straight to
`Server.observe`, the function the FastAPI route calls too; anything else falls through to the
FastAPI route, whose pydantic validation gives the error. Both paths answer byte-identical bodies
(tests/serve/test_fuzz.py compares them).
"""

from __future__ import annotations

import hmac
import json
import math
import time
from typing import TYPE_CHECKING

import numpy as np
from starlette.routing import Match

from .config import ServeConfig
from .docs import is_public
from .schemas import MAX_SEQ, MAX_TIMESTAMP

if TYPE_CHECKING:
    from .app import Server

OBSERVE_PATH = "/v1/streams/{stream_id}/observe"


def _utf8(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (JSON's ``"\\ud800"`` decodes to a lone
    surrogate, which cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_OBSERVE_KEYS = frozenset(("seq", "points", "timestamps"))


def quick_observe(body: bytes, cfg: ServeConfig) -> tuple[int, np.ndarray, list[str] | None] | None:
    """An observe body that is plainly valid -> (seq, (P, F) float64 points, timestamps);
    None for anything else (the FastAPI route then validates it and names what is wrong).

    Accepts nothing that ObserveRequest refuses: a JSON object with an int (not bool) seq in
    [0, 2^62], 1..max_points rows of 1..max_features finite int/float numbers (rows of one
    length), and optionally null or 1..max_points strings of 1..64 characters as timestamps.
    """
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if type(obj) is not dict or not obj.keys() <= _OBSERVE_KEYS:
        return None
    seq, rows, stamps = obj.get("seq"), obj.get("points"), obj.get("timestamps")
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        return None
    if type(rows) is not list or not 1 <= len(rows) <= cfg.max_points:
        return None
    width = None
    for row in rows:
        if type(row) is not list or not 1 <= len(row) <= cfg.max_features:
            return None
        if width is None:
            width = len(row)
        elif len(row) != width:
            return None
        for v in row:
            t = type(v)
            if (t is not float and t is not int) or (t is float and not math.isfinite(v)):
                return None
    if stamps is not None:
        if type(stamps) is not list or not 1 <= len(stamps) <= cfg.max_points:
            return None
        for t in stamps:
            if type(t) is not str or not 1 <= len(t) <= MAX_TIMESTAMP:
                return None
            if not t.isascii() and not _utf8(t):  # a lone surrogate: the route's 422 names it
                return None
    try:
        points = np.array(rows, dtype=np.float64)
    except (OverflowError, ValueError):  # an int beyond float range
        return None
    if not np.isfinite(points).all():
        return None
    return seq, points, stamps


def _observe_id(path: str) -> str | None:
    """ "/v1/streams/ID/observe" -> ID (None for any other path)."""
    if path.startswith("/v1/streams/") and path.endswith("/observe"):
        sid = path[12:-8]
        if sid and "/" not in sid:
            return sid
    return None


def _is_json(headers) -> bool:
    for k, v in headers:
        if k == b"content-type":
            return v.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


class _Gate:
    """Pure ASGI middleware: metrics for every request, bearer auth, and the body-size limit."""

    def __init__(self, app, *, server: Server) -> None:
        self.app = app
        self.server = server
        key = server.config.api_key
        self.key = None if key is None else key.encode()
        self.fast = True  # the observe fast path (off: every observe goes through FastAPI)

    async def _send(self, send, status: int, body: bytes, headers=()) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _route(self, scope) -> str:
        """The route template the request matches (its path if only the method differs)."""
        partial = "unmatched"
        for route in self.server.fastapi.router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return route.path
            if match == Match.PARTIAL and partial == "unmatched":
                partial = route.path
        return partial

    async def _reply(self, send, status: int, detail: str, headers=()) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, scope) -> bool:
        for k, v in scope["headers"]:
            if k == b"authorization":
                scheme, _, token = v.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)
        return False

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        root_path = scope.get("root_path", "")  # a Mount (the docs' assets) changes it in scope
        status = 0  # no response started yet
        label = None  # the route template, when known without asking the router

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if (
                self.key is not None
                and scope["path"] != "/healthz"
                and not is_public(scope["method"], scope["path"])  # /docs, its assets, the schema
                and not self._authorized(scope)
            ):
                await self._reply(
                    send_status,
                    401,
                    "Authorization: expected 'Bearer <key>' with this server's API key",
                    [(b"www-authenticate", b"Bearer")],
                )
                return
            limit = self.server.config.max_body_bytes
            if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
                body = await self._read_body(scope, receive, send_status, limit)
                if body is None:
                    return
                if scope["method"] == "POST" and self.fast:
                    sid = _observe_id(scope["path"])
                    if sid is not None and _is_json(scope["headers"]):
                        answer = self.server.fast_observe(sid, body)
                        if answer is not None:
                            label = OBSERVE_PATH
                            await self._send(send_status, *answer)
                            return
                sent = False

                async def replay():
                    nonlocal sent
                    if not sent:
                        sent = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    return await receive()

                await self.app(scope, replay, send_status)
            else:
                await self.app(scope, receive, send_status)
        except BaseException:
            status = status or 500
            raise
        finally:
            # FastAPI's routes leave themselves in the scope; others (docs, rejected) are matched
            if label is None:
                route = scope.get("route")
                if route is not None:
                    label = route.path
                else:
                    label = self._route({**scope, "root_path": root_path})
            # no response at all: the client went away first (499, as nginx counts it)
            self.server.metrics.observe_request(
                scope["method"], label, status or 499, time.perf_counter() - t0
            )

    async def _read_body(self, scope, receive, send, limit: int) -> bytes | None:
        too_big = f"body: expected at most {limit} bytes (--max-body-bytes)"
        for k, v in scope["headers"]:
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    await self._reply(send, 400, "Content-Length: expected an integer")
                    return None
                if n > limit:
                    await self._reply(send, 413, f"{too_big}, got {n}")
                    return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._reply(send, 413, f"{too_big}, got more")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
