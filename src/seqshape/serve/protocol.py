"""Read timeouts for uvicorn's HTTP/1.1 protocols: slow or stalled clients are answered 408 and
closed instead of holding a connection open forever.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits without limit for a
request's headers and body. `timed_protocol` makes a subclass of the protocol uvicorn would use
(httptools when installed, else h11) with two limits, measured on the event loop's clock:

- header timeout: from the connection's start (or, on a kept-alive connection, from the first
  byte of the next request) until its headers are complete: the whole header, however it
  trickles in (nginx's ``client_header_timeout``);
- body timeout: the longest wait for the next bytes of a body once the headers are complete: a
  stall, not the whole transfer, so a large body on a slow link is fine as long as it moves
  (nginx's ``client_body_timeout``).

A client that runs out of time gets ``408 Request Timeout`` (JSON, ``connection: close``) when no
answer to the request has started, and the connection is closed; one that never sent a byte is
closed without an answer (as nginx does: a browser's spare pre-opened connection is not an error). While the server itself has
stopped reading (flow control: a body the app has not taken yet, a pipelined request waiting its
turn) the client is not waiting on itself, and the clock restarts once reading resumes.

Cost per request: a few attribute writes; one timer per connection, re-armed only when it fires.
"""

from __future__ import annotations

import asyncio
import json

HEADER_TIMEOUT = 10.0  # seconds (the `seqshape serve` defaults)
BODY_TIMEOUT = 30.0


def _answer_408(what: str, seconds: float) -> bytes:
    body = json.dumps(
        {
            "detail": f"{what}: not received within {seconds:g} s "
            f"(--{'header' if what == 'headers' else 'body'}-timeout)",
            "error": "RequestTimeout",
        }
    ).encode()
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class _ReadDeadlines:
    """The timer logic, mixed into a uvicorn protocol class (see `timed_protocol`).

    ``_waiting`` is None (nothing expected from the client: idle between requests, or the app is
    answering), "request" (a new connection, nothing received yet), "headers" or "body";
    ``_deadline`` is when that wait runs out (loop time).
    """

    header_timeout = HEADER_TIMEOUT
    body_timeout = BODY_TIMEOUT

    # first in the protocol classes' bases, so these wrap uvicorn's own connection hooks
    def connection_made(self, transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._deadlines_start()

    def connection_lost(self, exc) -> None:
        self._deadlines_stop()
        super().connection_lost(exc)  # type: ignore[misc]

    def _deadlines_start(self) -> None:
        self._waiting: str | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._wait("request")  # its headers, within the header timeout from now

    def _wait(self, what: str) -> None:
        """Expect ``what`` from the client from now on, within its timeout."""
        seconds = self.body_timeout if what == "body" else self.header_timeout
        self._waiting = what
        self._deadline = self.loop.time() + seconds
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._check)

    def _request_begins(self) -> None:
        """The first bytes of a request: its headers are due (on a new connection, by the
        deadline that started with it)."""
        if self._waiting == "request":
            self._waiting = "headers"
        elif self._waiting is None:
            self._wait("headers")

    def _received(self) -> None:
        """Nothing more is expected from the client for this request."""
        self._waiting = None

    def _deadlines_stop(self) -> None:
        self._waiting = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self._waiting is None or self.transport is None or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow is not None and self.flow.read_paused:  # we are not reading: not its fault
            self._wait(self._waiting)
            return
        if now < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._check)
            return
        self._expire(self._waiting)

    def _expire(self, what: str) -> None:
        self._waiting = None
        if what == "request":  # not a byte since the connection opened: nothing to answer
            self.transport.close()
            return
        seconds = self.body_timeout if what == "body" else self.header_timeout
        cycle = getattr(self, "cycle", None)  # the request being answered, or the last one
        answering = cycle is not None and not cycle.response_complete
        if what == "headers":
            # a 408 fits unless this is half of a pipelined request behind one being answered
            late = answering
        else:  # the body of ``cycle``'s request: a 408 fits while its answer has not started
            late = cycle is not None and (cycle.response_started or cycle.response_complete)
        if not late:
            self.transport.write(_answer_408(what, seconds))
        if answering:
            cycle.keep_alive = False
            cycle.disconnected = True  # the app's receive() gets http.disconnect
            cycle.message_event.set()
        self.transport.close()


def _httptools_class() -> type:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class TimedHttpToolsProtocol(_ReadDeadlines, HttpToolsProtocol):
        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._request_begins()

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._wait("body")  # until on_message_complete (at once when there is no body)

        def on_body(self, body: bytes) -> None:
            super().on_body(body)
            self._wait("body")

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._received()

    return TimedHttpToolsProtocol


def _h11_class() -> type:
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(_ReadDeadlines, H11Protocol):
        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE:
                self._request_begins()
            super().data_received(data)
            state = self.conn.their_state
            if state is h11.SEND_BODY:
                self._wait("body")
            elif state is h11.IDLE:
                if not self.conn.trailing_data[0]:
                    self._received()  # nothing of a next request yet (keep-alive takes over)
            else:  # DONE, MUST_CLOSE, CLOSED, ERROR: the request is in, or the end
                self._received()

    return TimedH11Protocol


def timed_protocol(
    header_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT, http: str = "auto"
) -> type:
    """A uvicorn protocol class (``uvicorn.run(app, http=...)``) with these read timeouts.

    ``http``: "httptools", "h11", or "auto" (httptools when installed, as uvicorn chooses).
    """
    for name, v in (("header_timeout", header_timeout), ("body_timeout", body_timeout)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < float("inf"):
            from ..errors import ConfigError

            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{name} ({flag}): expected finite seconds > 0, got {v!r}")
    if http == "auto":
        try:
            import httptools  # noqa: F401
        except ImportError:
            http = "h11"
        else:
            http = "httptools"
    if http == "httptools":
        base = _httptools_class()
    elif http == "h11":
        base = _h11_class()
    else:
        raise ValueError(f"http: expected 'auto', 'httptools' or 'h11', got {http!r}")
    return type(
        base.__name__,
        (base,),
        {"header_timeout": float(header_timeout), "body_timeout": float(body_timeout)},
    )
