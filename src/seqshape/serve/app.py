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

The observe route has a fast path in the outer ASGI layer (gate.py: `_Gate`, `quick_observe`) that
answers plainly valid bodies through `Server.observe` without FastAPI, byte-identical to the route.
The configuration lives in config.py, the request and response schemas in schemas.py.
"""

import asyncio
import contextlib
import hashlib
import json
import logging
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..errors import DataError, SeqshapeError, ShapeError
from .adapters import ModelAdapter
from .config import ServeConfig, read_api_key  # noqa: F401  (read_api_key: cli/serve.py's import)
from .docs import add_docs
from .gate import OBSERVE_PATH, _Gate, quick_observe
from .metrics import CONTENT_TYPE, Metrics
from .schemas import (
    ERRORS,
    DetectResponse,
    ForecastResponse,
    Health,
    ModelInfo,
    ModelList,
    ObserveResponse,
    PredictResponse,
    StreamCreated,
    StreamDeleted,
    StreamInfo,
    _array,
    _error,
    _request_schemas,
)
from .store import StreamRecord, StreamStore

log = logging.getLogger("seqshape.serve")


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
                return model.forecast(history, body.k, cov, body.timestamps, series=body.series)

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
