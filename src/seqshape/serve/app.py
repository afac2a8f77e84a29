"""The HTTP server: FastAPI routes over the model adapters and the stream store.

    GET    /healthz                          liveness (the one route without auth)
    GET    /v1/models                        every loaded model: name, mode, shapes, version
    GET    /v1/models/{name}                 one of them
    POST   /v1/models/{name}/predict         {"sequences": [(T_i, F) nested lists]} -> class + probabilities
    POST   /v1/models/{name}/forecast        {"history": (T, F), "k": K, "future_covariates": (K, C),
                                              "timestamps": [T or T+K ISO times] (calendar models)}
    POST   /v1/models/{name}/detect          {"values": (T, O), "timestamps": [T], "warmup": n}
                                              -> a score and an anomaly flag per row (detectors)
    POST   /v1/models/{name}/streams         [{"start": "saved"|"fresh", "warmup": n} (detectors)]
                                              -> {"stream_id", "next_seq": 0}
    GET    /v1/streams/{id}                  model, next_seq, points so far
    POST   /v1/streams/{id}/observe          {"seq": n, "points": (P, F), "timestamps": [P]}
                                              -> one result per point
    DELETE /v1/streams/{id}
    GET    /metrics                          Prometheus text
    GET    /docs, /openapi.json              Swagger UI and the schema (docs.py; no key needed)

It is a thin adapter: requests are parsed by pydantic schemas built from the configured limits,
user errors map to 4xx with a message naming the field (`SeqshapeError`: 400/422, unknown model or
stream: 404, seq out of order: 409, stream cap: 429, body too large: 413, auth: 401), and nothing a
client sends should produce a 500. Slow clients are the HTTP protocol's business (protocol.py:
header and body read timeouts, 408).

Streams: each `observe` carries the client's sequence number ``seq`` (0, 1, 2, ...). The expected
one is applied, and the new state plus the answer are committed to SQLite before the answer leaves;
a repeated ``seq`` (a retry after a lost answer or a server restart) is answered from that record,
byte for byte, without being applied again; a gap is a 409 naming the expected and the received seq.
Stream work runs on the event loop without awaiting between reading and writing a stream, so
observes of one stream never interleave, and without a hop to a worker thread (one point is a few
tens of microseconds of work; a hop costs more).

The observe route has a fast path in the outer ASGI layer (`_Gate`): a body that is plainly valid
(a JSON object with an integer seq in range and rows of finite numbers within the limits) goes
straight to `Server.observe`, the function the FastAPI route calls too; anything else falls
through to the FastAPI route, whose pydantic validation gives the error. Both paths answer
byte-identical bodies (tests/serve/test_fuzz.py compares them).
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, Strict
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match

from .. import __version__
from ..errors import ConfigError, DataError, SeqshapeError, ShapeError
from ..limits import MAX_HORIZON
from .adapters import ModelAdapter
from .docs import add_docs, is_public
from .metrics import CONTENT_TYPE, Metrics
from .store import StreamRecord, StreamStore, default_state_path


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """Limits and stream settings of one server (the `seqshape serve` flags)."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 256  # sequences per predict
    max_steps: int = 10_000  # T of one sequence / history
    max_features: int = 1024  # numbers per step, before the model's own F check
    max_points: int = 256  # points per observe
    max_horizon: int = MAX_HORIZON  # K of a forecast (limits.py: the CLI's bound too)
    max_streams: int = 1000  # open streams
    idle_timeout: float = 600.0  # seconds without an observe before a stream is closed
    replay_window: int = 16  # answers kept per stream for repeated seqs
    state_path: Path = field(default_factory=default_state_path)
    state_sync: str = "normal"
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_batch",
            "max_steps",
            "max_features",
            "max_points",
            "max_horizon",
            "max_streams",
            "replay_window",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {v!r}")
        if not (isinstance(self.idle_timeout, int | float) and self.idle_timeout > 0):
            raise ConfigError(f"idle_timeout: expected seconds > 0, got {self.idle_timeout!r}")
        if self.state_sync not in ("normal", "full"):
            raise ConfigError(f"state_sync: expected 'normal' or 'full', got {self.state_sync!r}")
        if self.api_key is not None and (
            not self.api_key or any(c.isspace() for c in self.api_key)
        ):
            raise ConfigError("api_key: expected a non-empty key without whitespace")


def read_api_key(path: str | Path) -> str:
    """The key in ``path`` (surrounding whitespace stripped)."""
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--api-key-file {path}: cannot read it ({e})") from None
    if not key or any(c.isspace() for c in key):
        raise ConfigError(
            f"--api-key-file {path}: expected one key without whitespace, got "
            + ("an empty file" if not key else "text with spaces or several lines")
        )
    return key


# -- response schemas (documentation and validation of what the server answers) ----------------
class ErrorResponse(BaseModel):
    detail: str
    error: str | None = None
    errors: list[dict[str, str]] | None = None


class Health(BaseModel):
    status: str


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    kind: str
    mode: str
    version: str
    input: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    streamable: bool


class ModelList(BaseModel):
    models: list[ModelInfo]


class Prediction(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    class_: str | int | float = Field(alias="class")
    probabilities: dict[str, float]


class PredictResponse(BaseModel):
    model: str
    predictions: list[Prediction]


class ForecastResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    point: list[list[float]]


class StreamCreated(BaseModel):
    stream_id: str
    model: str
    next_seq: int
    idle_timeout_s: float


class StreamInfo(BaseModel):
    stream_id: str
    model: str
    next_seq: int
    points: int
    idle_s: float


class DetectResponse(BaseModel):
    model: str
    score: list[float] = Field(description="(T,) anomaly scores in [0, 1]")
    is_anomaly: list[bool] = Field(description="(T,) flags by the detector's threshold")
    prediction: list[list[float] | None] = Field(
        description="(T, O) one-step predictions, original units (null: no prediction, row 0)"
    )
    error: list[float | None] = Field(description="(T,) prediction errors, scaled units")
    std: list[list[float] | None] | None = Field(
        default=None, description="(T, O) predicted std (gaussian head)"
    )


class ObserveResponse(BaseModel):
    stream_id: str
    seq: int
    points: int = Field(description="points observed on this stream so far, this call included")
    results: list[dict[str, Any]] = Field(description="one result per point, in order")


class StreamDeleted(BaseModel):
    stream_id: str
    deleted: bool
    points: int


log = logging.getLogger("seqshape.serve")
OBSERVE_PATH = "/v1/streams/{stream_id}/observe"
ERRORS = {s: {"model": ErrorResponse} for s in (400, 401, 404, 409, 413, 422, 429)}

Number = Annotated[float, Strict(), AllowInfNan(False)]
MAX_SEQ = 2**62
MAX_TIMESTAMP = 64  # characters of one ISO timestamp


def _request_schemas(cfg: ServeConfig) -> tuple[type[BaseModel], ...]:
    """Request bodies whose list limits come from the configuration (and show in /docs)."""
    Row = Annotated[list[Number], Field(min_length=1, max_length=cfg.max_features)]
    Steps = Annotated[list[Row], Field(min_length=1, max_length=cfg.max_steps)]
    Stamp = Annotated[str, Field(min_length=1, max_length=MAX_TIMESTAMP)]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        sequences: Annotated[list[Steps], Field(min_length=1, max_length=cfg.max_batch)] = Field(
            description="(B, T_i, F): one list of steps per sequence, one list of F numbers per step"
        )

    class ForecastRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        history: Steps = Field(description="(T, F): the observed rows, oldest first")
        k: Annotated[int, Strict(), Field(ge=1, le=cfg.max_horizon)] = Field(
            description="K: steps to forecast"
        )
        future_covariates: Steps | None = Field(
            default=None, description="(K, C): known covariates of the K future rows"
        )
        timestamps: (
            Annotated[
                list[Stamp],
                Field(min_length=1, max_length=cfg.max_steps + cfg.max_horizon),
            ]
            | None
        ) = Field(
            default=None,
            description="ISO times of the T history rows (or of T+K rows), for models whose known "
            "covariates are calendar features",
        )

    class DetectRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        values: Steps = Field(description="(T, O): the series' rows, oldest first")
        timestamps: Annotated[list[Stamp], Field(min_length=1, max_length=cfg.max_steps)] | None = (
            Field(default=None, description="ISO times of the T rows (detectors using time of day)")
        )
        warmup: Annotated[int, Strict(), Field(ge=0, le=cfg.max_steps)] = Field(
            default=0, description="rows at the start scored 0 and never flagged"
        )

    class OpenStreamRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        start: Literal["saved", "fresh"] | None = Field(
            default=None,
            description="detectors: continue the stream saved with the model (default) or start "
            "a fresh one",
        )
        warmup: Annotated[int, Strict(), Field(ge=0, le=2**62)] | None = Field(
            default=None, description="detectors, start 'fresh': points scored 0 at the start"
        )

    class ObserveRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        seq: Annotated[int, Strict(), Field(ge=0, le=MAX_SEQ)] = Field(
            description="the client's sequence number: 0 for the first observe, then +1 each"
        )
        points: Annotated[list[Row], Field(min_length=1, max_length=cfg.max_points)] = Field(
            description="(P, F): the new points, oldest first"
        )
        timestamps: (
            Annotated[list[Stamp], Field(min_length=1, max_length=cfg.max_points)] | None
        ) = Field(
            default=None,
            description="(P,) ISO times of the points, for models that need them (calendar "
            "covariates, time of day)",
        )

    return PredictRequest, ForecastRequest, DetectRequest, OpenStreamRequest, ObserveRequest


def _field(loc: tuple) -> str:
    """("body", "sequences", 0, 3) -> "sequences[0][3]"; ("path", "name") -> "path.name"."""
    out = "" if loc[:1] == ("body",) else str(loc[0]) if loc else ""
    for p in loc[1:]:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def _utf8(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (JSON's ``"\\ud800"`` decodes to a lone
    surrogate, which cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _error(e: dict) -> dict[str, str]:
    if e.get("type") == "json_invalid":
        pos = e.get("loc", (None, "?"))[-1]
        why = (e.get("ctx") or {}).get("error", "decode error")
        return {"field": "body", "message": f"not valid JSON at character {pos} ({why})"}
    if e.get("type") == "string_unicode":  # a lone surrogate such as "\ud800", in a value or a key
        return {
            "field": _field(tuple(e.get("loc", ()))),
            "message": "expected text that UTF-8 can encode, got a lone surrogate (\\ud800-\\udfff)",
        }
    return {"field": _field(tuple(e.get("loc", ()))), "message": str(e.get("msg", "invalid"))}


def _array(rows: list[list[float]] | np.ndarray, features: int | None, where: str) -> np.ndarray:
    """Nested lists (T, F) -> a float64 array; a wrong or ragged row length names the row."""
    want = features if features is not None else len(rows[0])
    if isinstance(rows, np.ndarray) and rows.shape[1] == want:
        return rows
    a = None
    with contextlib.suppress(ValueError):
        a = np.array(rows, dtype=np.float64)
    if a is None or a.ndim != 2 or a.shape[1] != want:
        what = "the model's input size" if features is not None else f"as in {where}[0]"
        for j, row in enumerate(rows):
            if len(row) != want:
                raise ShapeError(
                    f"{where}[{j}]: expected F={want} features ({what}), got {len(row)}"
                )
    return a


def _digest(points: np.ndarray, timestamps: list[str] | None) -> str:
    """What a repeated seq must carry again to be answered from the record."""
    h = hashlib.sha256(repr(points.shape).encode() + points.tobytes())
    if timestamps is not None:
        h.update(b"\0" + "\n".join(timestamps).encode())
    return h.hexdigest()[:32]


def _json(content: Any) -> bytes:
    """JSON as FastAPI's JSONResponse writes it (so both observe paths answer the same bytes)."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def error_content(exc: Exception, state_path: Path) -> tuple[int, dict, dict[str, str] | None]:
    """(status, body, headers) of the answer to a request that raised ``exc``.

    HTTPException: its status and detail; SeqshapeError: 422 for data and shape errors, else 400;
    sqlite3.Error: 503 (nothing was applied: a stream's memory changes only after its commit).
    """
    if isinstance(exc, HTTPException):
        return exc.status_code, {"detail": exc.detail}, exc.headers
    if isinstance(exc, SeqshapeError):
        status = 422 if isinstance(exc, ShapeError | DataError) else 400
        return status, {"detail": str(exc), "error": type(exc).__name__}, None
    if isinstance(exc, sqlite3.Error):
        return (
            503,
            {"detail": f"stream state file {state_path}: {exc}", "error": "StoreError"},
            None,
        )
    raise TypeError(f"no HTTP answer for {type(exc).__name__}")


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

    def __init__(self, app, *, server: "Server") -> None:
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


class Server:
    """The models, the streams (memory + SQLite), the metrics, and the FastAPI app over them."""

    def __init__(self, models: dict[str, ModelAdapter], config: ServeConfig) -> None:
        self.models = models
        self.config = config
        self.metrics = Metrics(open_streams=lambda: len(self.streams))
        self.store = StreamStore(config.state_path, sync=config.state_sync)
        self.streams: dict[str, StreamRecord] = {}
        for rec in self.store.load_all():
            self.streams[rec.id] = rec
        self.sweep()
        self.fastapi = self._build()
        self.asgi = _Gate(self.fastapi, server=self)

    # -- streams -------------------------------------------------------------------------------
    def sweep(self, now: float | None = None) -> int:
        """Close every stream idle for longer than the timeout; return how many."""
        now = time.time() if now is None else now
        cutoff = now - self.config.idle_timeout
        idle = [sid for sid, r in self.streams.items() if r.last_used < cutoff]
        self.store.delete_idle(cutoff)
        for sid in idle:
            del self.streams[sid]
        self.metrics.add("streams_expired", len(idle))
        return len(idle)

    def _model(self, name: str) -> ModelAdapter:
        m = self.models.get(name)
        if m is None:
            raise HTTPException(
                404, f"model {name[:80]!r} is not loaded; loaded: {', '.join(sorted(self.models))}"
            )
        return m

    def _stream(self, stream_id: str) -> StreamRecord:
        rec = self.streams.get(stream_id)
        if rec is None:
            raise HTTPException(
                404,
                f"stream {stream_id[:80]!r} is unknown (never opened, deleted, or closed after "
                f"{self.config.idle_timeout:g} s idle)",
            )
        idle = time.time() - rec.last_used
        if idle > self.config.idle_timeout:
            self.store.delete(stream_id)
            del self.streams[stream_id]
            self.metrics.add("streams_expired")
            raise HTTPException(
                404,
                f"stream {stream_id!r} was closed: idle {idle:.0f} s, more than the "
                f"{self.config.idle_timeout:g} s timeout",
            )
        return rec

    def _stream_model(self, rec: StreamRecord) -> ModelAdapter:
        m = self.models.get(rec.model)
        if m is None:
            raise HTTPException(
                409, f"stream {rec.id!r} belongs to model {rec.model!r}, which is not loaded"
            )
        if m.version != rec.model_version:
            raise HTTPException(
                409,
                f"stream {rec.id!r} was opened on model {rec.model!r} version "
                f"{rec.model_version}; the loaded one is version {m.version}",
            )
        return m

    def _live(self, rec: StreamRecord, model: ModelAdapter) -> Any:
        """The stream's working state: turned from its stored JSON on first use (after a start,
        or after an error made it fall back to the last committed record)."""
        if rec.live is None:
            if rec.state is None:
                got = self.store.state(rec.id)
                if got is None:
                    raise HTTPException(404, f"stream {rec.id!r} is no longer in the state file")
                rec.state = got[0]
            rec.live = model.load_state(rec.state)
            rec.state = None
        return rec.live

    def _dump(self, model: ModelAdapter, state: Any) -> str:
        try:
            return json.dumps(model.dump_state(state), allow_nan=False, separators=(",", ":"))
        except ValueError as e:  # a non-finite number in the state
            raise DataError(f"points: the model's state is not finite after them ({e})") from None

    def open_stream(self, name: str, options: dict[str, Any]) -> StreamRecord:
        """Open a stream on model ``name`` (options: the detector's start/warmup)."""
        cfg = self.config
        model = self._model(name)
        model.require("streams")
        if len(self.streams) >= cfg.max_streams:
            self.sweep()
        if len(self.streams) >= cfg.max_streams:
            raise HTTPException(
                429,
                f"open streams: the cap of {cfg.max_streams} (--max-streams) is reached; "
                f"delete a stream or wait for idle ones to close ({cfg.idle_timeout:g} s)",
            )
        live = model.new_stream(options)
        now = time.time()
        rec = StreamRecord(
            id=uuid.uuid4().hex,
            model=name,
            model_version=model.version,
            state=None,
            next_seq=0,
            points=0,
            created=now,
            last_used=now,
            live=live,
        )
        self.store.create(rec, self._dump(model, live))
        self.streams[rec.id] = rec
        self.metrics.add("streams_created")
        return rec

    def observe(
        self, stream_id: str, seq: int, rows, timestamps: list[str] | None
    ) -> tuple[bytes, bool]:
        """Apply observe ``seq`` of a stream (or answer it again) -> (JSON body, is a replay).

        Raises HTTPException / SeqshapeError / sqlite3.Error (see `error_content`) having changed
        nothing: the stream's memory is updated only after the commit of its new state succeeded.
        """
        cfg = self.config
        rec = self._stream(stream_id)
        model = self._stream_model(rec)
        points = _array(rows, model.features, "points")
        digest = _digest(points, timestamps)
        if seq < rec.next_seq:
            kept = seq >= rec.next_seq - cfg.replay_window
            reply = self.store.reply(rec.id, seq) if kept else None
            if reply is None:
                raise HTTPException(
                    409,
                    f"seq: {seq} was applied before and its answer is no longer kept "
                    f"(the last {cfg.replay_window}); expected seq {rec.next_seq}",
                )
            if reply.digest != digest:
                raise HTTPException(
                    409,
                    f"seq: {seq} was already applied with other points; "
                    f"expected seq {rec.next_seq} for new points",
                )
            self.metrics.add("replays")
            return reply.body.encode(), True
        if seq > rec.next_seq:
            raise HTTPException(
                409,
                f"seq: expected {rec.next_seq}, got {seq} "
                f"(a gap: {seq - rec.next_seq} observe(s) missing)",
            )
        live = self._live(rec, model)
        try:
            state, results = model.observe(live, points, timestamps)
            total = rec.points + len(points)
            try:
                text = json.dumps(
                    {"stream_id": rec.id, "seq": seq, "points": total, "results": results},
                    allow_nan=False,
                    separators=(",", ":"),
                )
            except ValueError as e:
                raise DataError(f"points: the model's answer is not finite ({e})") from None
            now = time.time()
            self.store.commit_observe(
                rec.id,
                state_text=self._dump(model, state),
                seq=seq,
                points=total,
                last_used=now,
                digest=digest,
                body=text,
                keep_replies=cfg.replay_window,
            )
        except BaseException:
            if model.mutates_state:
                rec.live = None  # the next observe starts again from the last committed state
            raise
        rec.live, rec.next_seq, rec.points, rec.last_used = state, seq + 1, total, now
        self.metrics.add("points", len(points))
        return text.encode(), False

    def fast_observe(self, stream_id: str, body: bytes) -> tuple[int, bytes, list] | None:
        """The observe route without FastAPI, for plainly valid bodies (see `quick_observe`):
        (status, body, headers), or None to let the FastAPI route answer."""
        req = quick_observe(body, self.config)
        if req is None:
            return None
        try:
            text, replay = self.observe(stream_id, *req)
        except (HTTPException, SeqshapeError, sqlite3.Error) as e:
            status, content, headers = error_content(e, self.config.state_path)
            extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
            return status, _json(content), extra
        return 200, text, [(b"seqshape-replay", b"1")] if replay else []

    # -- the app -------------------------------------------------------------------------------
    def _build(self) -> FastAPI:
        cfg = self.config
        schemas = _request_schemas(cfg)
        PredictRequest, ForecastRequest, DetectRequest, OpenStreamRequest, ObserveRequest = schemas

        @contextlib.asynccontextmanager
        async def lifespan(app):
            every = max(0.5, min(60.0, cfg.idle_timeout / 4))

            async def sweeper():
                while True:
                    await asyncio.sleep(every)
                    try:
                        self.sweep()
                    except sqlite3.Error as e:  # try again next round; requests report it too
                        log.warning("closing idle streams failed: %s", e)

            task = asyncio.create_task(sweeper())
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                self.store.close()

        app = FastAPI(
            title="seqshape",
            version=__version__,
            description="LSTM sequence models over HTTP. Shapes use the legend B batch, T steps, "
            "F features, N classes, K horizon, C covariates, O values.",
            lifespan=lifespan,
            docs_url=None,  # docs.py serves it, without a CDN
            redoc_url=None,  # it loads from a CDN only
            openapi_tags=[
                {"name": "models", "description": "Loaded models; predict, forecast, detect."},
                {"name": "streams", "description": "Stateful streams: one cell step per point."},
                {"name": "server", "description": "Health and Prometheus metrics."},
            ],
        )

        # auth is enforced for every route in _Gate (no per-route dependency); openapi() documents it
        def openapi() -> dict:
            """FastAPI's schema, plus the bearer scheme on every route but /healthz when a key is set."""
            if app.openapi_schema is None:
                schema = FastAPI.openapi(app)
                if cfg.api_key is not None:
                    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
                    schemes["bearer"] = {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "The server's API key (--api-key-file), sent as "
                        "'Authorization: Bearer <key>' (in /docs: the Authorize button).",
                    }
                    for path, operations in schema["paths"].items():
                        for op in operations.values():
                            if path != "/healthz":
                                op["security"] = [{"bearer": []}]
            return app.openapi_schema

        app.openapi = openapi
        add_docs(app)

        @app.exception_handler(RequestValidationError)
        async def invalid(request: Request, exc: RequestValidationError):
            errors = [_error(e) for e in exc.errors()[:10]]
            first = errors[0] if errors else {"field": "body", "message": "invalid"}
            return JSONResponse(
                {
                    "detail": f"{first['field']}: {first['message']}",
                    "error": "ValidationError",
                    "errors": errors,
                },
                status_code=422,
            )

        @app.exception_handler(HTTPException)
        async def http_error(request: Request, exc: HTTPException):
            # FastAPI answers a body json.loads gives up on (not a JSONDecodeError) with a bare
            # "There was an error parsing the body"; say why, from the error it raised
            cause = exc.__cause__
            if exc.status_code == 400 and isinstance(cause, RecursionError | ValueError):
                why = (
                    "JSON nested too deeply"
                    if isinstance(cause, RecursionError)
                    else f"cannot parse it as JSON ({str(cause).split(';')[0][:160]})"
                )
                return JSONResponse({"detail": f"body: {why}", "error": "ValidationError"}, 400)
            return await http_exception_handler(request, exc)

        @app.exception_handler(SeqshapeError)
        @app.exception_handler(sqlite3.Error)
        async def user_error(request: Request, exc: Exception):
            status, content, headers = error_content(exc, cfg.state_path)
            return JSONResponse(content, status_code=status, headers=headers)

        @app.get("/healthz", response_model=Health, tags=["server"])
        async def healthz():
            """Liveness: answers without authentication."""
            return {"status": "ok"}

        @app.get("/metrics", tags=["server"], response_class=Response)
        async def metrics():
            """Prometheus text format: requests, latency histogram, errors, streams, and the
            process (CPU seconds, resident memory, open files)."""
            return Response(self.metrics.render(), media_type=CONTENT_TYPE)

        @app.get("/v1/models", response_model=ModelList, tags=["models"])
        async def list_models():
            """Every loaded model: name, kind, mode, input/output shapes (legend letters), version."""
            return {"models": [m.describe() for m in self.models.values()]}

        @app.get(
            "/v1/models/{name}",
            response_model=ModelInfo,
            tags=["models"],
            responses=ERRORS,
        )
        async def get_model(name: str):
            """One loaded model's description."""
            return self._model(name).describe()

        @app.post(
            "/v1/models/{name}/predict",
            response_model=PredictResponse,
            tags=["models"],
            responses=ERRORS,
        )
        async def predict(name: str, body: PredictRequest):
            """(B, T_i, F) sequences of any lengths -> one class and its probabilities each."""
            model = self._model(name)
            model.require("predict")

            def work():
                seqs = body.sequences
                arrays = [_array(s, model.features, f"sequences[{i}]") for i, s in enumerate(seqs)]
                return model.predict(arrays)

            return {"model": name, "predictions": await run_in_threadpool(work)}

        @app.post(
            "/v1/models/{name}/forecast",
            response_model=ForecastResponse,
            tags=["models"],
            responses=ERRORS,
        )
        async def forecast(name: str, body: ForecastRequest):
            """(T, F) history (+ (K, C) known future covariates) -> K forecast steps."""
            model = self._model(name)
            model.require("forecast")

            def work():
                history = _array(body.history, None, "history")
                cov = None
                if body.future_covariates is not None:
                    cov = _array(body.future_covariates, None, "future_covariates")
                return model.forecast(history, body.k, cov, body.timestamps)

            return {"model": name, **(await run_in_threadpool(work))}

        @app.post(
            "/v1/models/{name}/detect",
            response_model=DetectResponse,
            response_model_exclude_none=True,
            tags=["models"],
            responses=ERRORS,
        )
        async def detect(name: str, body: DetectRequest):
            """(T, O) values (+ T timestamps) -> a score in [0, 1] and an anomaly flag per row."""
            model = self._model(name)
            model.require("detect")

            def work():
                values = _array(body.values, None, "values")
                return model.detect(values, body.timestamps, body.warmup)

            return {"model": name, **(await run_in_threadpool(work))}

        @app.post(
            "/v1/models/{name}/streams",
            response_model=StreamCreated,
            status_code=201,
            tags=["streams"],
            responses=ERRORS,
        )
        async def open_stream(name: str, body: OpenStreamRequest | None = None):
            """Open a stream on a model: its state starts empty (detectors: see start); observe
            with seq 0, 1, 2, ..."""
            options = {} if body is None else body.model_dump(exclude_none=True)
            rec = self.open_stream(name, options)
            return {
                "stream_id": rec.id,
                "model": name,
                "next_seq": 0,
                "idle_timeout_s": cfg.idle_timeout,
            }

        @app.get(
            "/v1/streams/{stream_id}",
            response_model=StreamInfo,
            tags=["streams"],
            responses=ERRORS,
        )
        async def stream_info(stream_id: str):
            """Where a stream stands: the next seq it expects and the points it has seen."""
            rec = self._stream(stream_id)
            return {
                "stream_id": rec.id,
                "model": rec.model,
                "next_seq": rec.next_seq,
                "points": rec.points,
                "idle_s": round(time.time() - rec.last_used, 3),
            }

        @app.post(
            OBSERVE_PATH,
            response_model=ObserveResponse,
            tags=["streams"],
            responses=ERRORS,
        )
        async def observe(stream_id: str, body: ObserveRequest):
            """Advance the stream one cell step per point; a repeated seq gets the recorded answer."""
            text, replay = self.observe(stream_id, body.seq, body.points, body.timestamps)
            headers = {"seqshape-replay": "1"} if replay else None
            return Response(text, media_type="application/json", headers=headers)

        @app.delete(
            "/v1/streams/{stream_id}",
            response_model=StreamDeleted,
            tags=["streams"],
            responses=ERRORS,
        )
        async def delete_stream(stream_id: str):
            """Close a stream and forget its state."""
            rec = self._stream(stream_id)
            self.store.delete(stream_id)
            del self.streams[stream_id]
            return {"stream_id": stream_id, "deleted": True, "points": rec.points}

        # the router tries routes in order: the per-point hot path first (the docs group by tag)
        app.router.routes.sort(key=lambda r: getattr(r, "path", "") != OBSERVE_PATH)
        return app


def create_app(models: dict[str, ModelAdapter], config: ServeConfig | None = None):
    """The ASGI app serving ``models`` (name -> adapter); opens the state file now.

    Returns the outermost ASGI callable (auth, body limit and metrics around FastAPI); the
    FastAPI instance is its ``.server.fastapi``.
    """
    return Server(models, config or ServeConfig()).asgi
