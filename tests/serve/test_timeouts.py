"""Slow clients are answered 408 and closed: header and body read timeouts (serve/protocol.py).

A real uvicorn server on 127.0.0.1 and a free port, in a thread, with each HTTP implementation
uvicorn can use (httptools, h11) under a small echo app; raw sockets play the slow clients. One
test runs `seqshape serve --header-timeout 1 --body-timeout 1` as a process over a real model.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from seqshape.serve.protocol import timed_protocol

TIMEOUT = 0.5  # seconds, header and body (the process test uses 1 s)
SLACK = 1.5  # seconds past a timeout within which the close must come (a busy machine)


async def echo(scope, receive, send) -> None:
    """Reads the whole body and answers its length."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = str(size).encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module", params=["httptools", "h11"])
def port(request):
    import uvicorn

    protocol = timed_protocol(TIMEOUT, TIMEOUT, http=request.param)
    config = uvicorn.Config(
        echo, host="127.0.0.1", port=free_port(), http=protocol, lifespan="off", log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield config.port
    server.should_exit = True
    thread.join(timeout=10)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT + SLACK + 5)
    return s


def _read_until_closed(s: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (monotonic)."""
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data, time.monotonic()
        data += chunk


def _head(path: str = "/", length: int | None = None) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    if length is not None:
        head += f"content-length: {length}\r\n"
    return (head + "\r\n").encode()


def test_half_sent_headers_get_408_and_close(port):
    with _connect(port) as s:
        t0 = time.monotonic()
        s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line: headers unfinished
        data, closed = _read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert b"--header-timeout" in data and b"connection: close" in data.lower()
    assert TIMEOUT * 0.9 <= closed - t0 <= TIMEOUT + SLACK


def test_headers_trickled_byte_by_byte_still_time_out(port):
    """The header timeout bounds the whole header, not the wait for each byte."""
    head = _head(length=2)
    with _connect(port) as s:
        t0 = time.monotonic()
        sent = 0
        with pytest.raises(OSError):  # the server closes before the header is done
            for i in range(len(head)):
                s.sendall(head[i : i + 1])
                sent += 1
                time.sleep(TIMEOUT / 5)
        assert sent < len(head)
        assert time.monotonic() - t0 <= TIMEOUT + SLACK + TIMEOUT / 5


def test_a_silent_connection_is_closed_without_an_answer(port):
    with _connect(port) as s:
        t0 = time.monotonic()
        data, closed = _read_until_closed(s)
    assert data == b""
    assert TIMEOUT * 0.9 <= closed - t0 <= TIMEOUT + SLACK


def test_a_stalled_body_gets_408_and_close(port):
    with _connect(port) as s:
        s.sendall(_head(length=100) + b"x" * 10)
        t0 = time.monotonic()
        data, closed = _read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 408 ") and b"--body-timeout" in data, data
    assert TIMEOUT * 0.9 <= closed - t0 <= TIMEOUT + SLACK


def test_a_body_that_keeps_moving_is_answered(port):
    """The body timeout is a stall limit: a body taking 3x the timeout but never pausing for
    longer than half of it gets its answer."""
    chunks = 6
    with _connect(port) as s:
        s.sendall(_head(length=chunks))
        for _ in range(chunks):
            time.sleep(TIMEOUT / 2)
            s.sendall(b"x")
        s.settimeout(TIMEOUT + SLACK + 5)
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n6"), answer


def test_a_kept_alive_connection_gets_a_new_header_deadline(port):
    """Answers two requests on one connection (the second after a pause longer than the header
    timeout would allow from the connection's start), then times out a half-sent third."""
    with _connect(port) as s:
        for _ in range(2):
            s.sendall(_head(length=2) + b"ab")
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
            time.sleep(TIMEOUT * 0.7)
        s.sendall(b"POST / HTTP/1.1\r\n")
        t0 = time.monotonic()
        data, closed = _read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert TIMEOUT * 0.9 <= closed - t0 <= TIMEOUT + SLACK


def test_bad_timeouts_are_config_errors():
    from seqshape.errors import ConfigError

    for bad in (0, -1.0, float("nan"), float("inf"), True, "10"):
        with pytest.raises(
            ConfigError, match=r"header_timeout \(--header-timeout\): expected finite seconds > 0"
        ):
            timed_protocol(bad, 1.0)
    with pytest.raises(ConfigError, match="body_timeout"):
        timed_protocol(1.0, 0)


def test_seqshape_serve_times_out_slow_clients(tmp_path, live_server):
    """The CLI flags reach the server: a half-sent header and a stalled observe body get 408
    within the 1 s timeouts; an ordinary request on the same server is answered."""
    from seqshape.api.classifier import STREAM_OPTIONS, SequenceClassifier
    from seqshape.datasets import load_japanese_vowels

    train = load_japanese_vowels("train")
    SequenceClassifier(hidden_size=4, epochs=1, bidirectional=False, **STREAM_OPTIONS).fit(
        train
    ).save(tmp_path / "jv")
    args = [str(tmp_path / "jv"), "--state", str(tmp_path / "state.sqlite3")]
    live = live_server([*args, "--header-timeout", "1", "--body-timeout", "1"], tmp_path / "log")
    try:
        sid = live.http.post("/v1/models/jv/streams").json()["stream_id"]
        for first, want in [
            (b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"--header-timeout"),
            (_head(f"/v1/streams/{sid}/observe", length=500) + b'{"seq": 0, ', b"--body-timeout"),
        ]:
            with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
                s.sendall(first)
                t0 = time.monotonic()
                data, closed = _read_until_closed(s)
            assert data.startswith(b"HTTP/1.1 408 ") and want in data, data
            assert 0.9 <= closed - t0 <= 1 + SLACK
        assert live.http.get(f"/v1/streams/{sid}").json()["next_seq"] == 0
        metrics = live.http.get("/metrics").text
        assert 'route="/v1/streams/{stream_id}/observe",status="499"' in metrics
    finally:
        live.stop()
