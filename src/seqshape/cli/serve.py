"""`seqshape serve DIR [DIR...]`: the HTTP server (FastAPI + uvicorn) over model directories
(classifiers, forecasters, anomaly detectors)."""

from __future__ import annotations

import gc
import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from ..limits import MAX_HORIZON
from . import app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    models: Annotated[
        list[str],
        typer.Argument(
            help="Model directories to serve, each as DIR (named after its last path component) "
            "or NAME=DIR.",
            show_default=False,
        ),
    ],
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (loopback unless you say otherwise).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file",
            help="File holding one API key: every route but /healthz then needs "
            "'Authorization: Bearer <key>'.",
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="SQLite file keeping stream state across restarts "
            "(default: $XDG_STATE_HOME/seqshape/streams.sqlite3).",
        ),
    ] = None,
    state_sync: Annotated[
        str,
        typer.Option(
            "--state-sync",
            help="normal: committed observes survive the process being killed; full: also a "
            "power loss (an fsync per observe).",
        ),
    ] = "normal",
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", help="Largest request body accepted.")
    ] = 8 * 1024 * 1024,
    max_batch: Annotated[
        int, typer.Option("--max-batch", help="Most sequences in one predict (B).")
    ] = 256,
    max_steps: Annotated[
        int, typer.Option("--max-steps", help="Most steps in one sequence or history (T).")
    ] = 10_000,
    max_features: Annotated[
        int, typer.Option("--max-features", help="Most numbers in one step (F).")
    ] = 1024,
    max_points: Annotated[
        int, typer.Option("--max-points", help="Most points in one observe.")
    ] = 256,
    max_horizon: Annotated[
        int, typer.Option("--max-horizon", help="Largest forecast horizon K.")
    ] = MAX_HORIZON,
    max_streams: Annotated[int, typer.Option("--max-streams", help="Most open streams.")] = 1000,
    idle_timeout: Annotated[
        float,
        typer.Option("--idle-timeout", help="Seconds without an observe before a stream closes."),
    ] = 600.0,
    replay_window: Annotated[
        int,
        typer.Option(
            "--replay-window", help="Answers kept per stream to answer a repeated seq again."
        ),
    ] = 16,
    header_timeout: Annotated[
        float,
        typer.Option(
            "--header-timeout",
            help="Seconds a client has to send a request's headers (408 and close after).",
        ),
    ] = 10.0,  # serve.protocol.HEADER_TIMEOUT (not imported here: serve/ pulls in torch)
    body_timeout: Annotated[
        float,
        typer.Option(
            "--body-timeout",
            help="Longest pause, in seconds, while a client sends a request body (408 and close "
            "after).",
        ),
    ] = 30.0,  # serve.protocol.BODY_TIMEOUT
    threads: Annotated[
        int,
        typer.Option(
            "--threads",
            help="Compute threads. Stream steps are single rows, where more threads only add "
            "synchronisation (on a busy machine a one-point step went from 0.03 ms to 3-5 ms "
            "with 2); raise it for large predict/forecast batches.",
        ),
    ] = 1,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn log level: debug|info|warning|error.")
    ] = "info",
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = False,
) -> None:
    """Serve models over HTTP: predict, forecast, detect, stateful streams, /metrics, /docs."""
    import uvicorn

    from ..serve.adapters import load_models
    from ..serve.app import ServeConfig, create_app, read_api_key
    from ..serve.protocol import timed_protocol
    from ..serve.store import default_state_path

    key = read_api_key(api_key_file) if api_key_file is not None else None
    config = ServeConfig(
        max_body_bytes=max_body_bytes,
        max_batch=max_batch,
        max_steps=max_steps,
        max_features=max_features,
        max_points=max_points,
        max_horizon=max_horizon,
        max_streams=max_streams,
        idle_timeout=idle_timeout,
        replay_window=replay_window,
        state_path=state if state is not None else default_state_path(),
        state_sync=state_sync,
        api_key=key,
    )
    protocol = timed_protocol(header_timeout, body_timeout)
    loaded = load_models(models, threads=threads)
    asgi = create_app(loaded, config)
    if not _is_loopback(host) and key is None:
        typer.echo(
            f"warning: serving on {host} without --api-key-file: anyone who can reach it may use it",
            err=True,
        )
    # the models and the framework live as long as the process: spare the collector re-scanning
    # them (shorter collection pauses, a shorter latency tail)
    gc.collect()
    gc.freeze()
    names = ", ".join(f"{n} ({m.kind})" for n, m in loaded.items())
    typer.echo(f"serving {names} on http://{host}:{port} (state: {config.state_path})", err=True)
    uvicorn.run(
        asgi,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        http=protocol,
        timeout_graceful_shutdown=5,
    )
