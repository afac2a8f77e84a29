"""The server's Prometheus metrics, on `prometheus_client` with a registry of each server's own.

    seqshape_http_requests_total{method, route, status}        counter
    seqshape_http_errors_total{method, route, status}          counter (4xx and 5xx)
    seqshape_http_request_duration_seconds{method, route}      histogram (request start to the end
                                                               of the response body)
    seqshape_open_streams                                      gauge
    seqshape_streams_created_total, seqshape_streams_expired_total, seqshape_points_total,
    seqshape_replays_total                                     counters
    process_* (cpu seconds, resident memory, open fds, ...), python_info, python_gc_*

Routes are labelled by their template (``/v1/streams/{stream_id}/observe``), never by the raw
path, and methods outside the HTTP standard ones share ``"other"``, so a client cannot grow the
label set; paths that match no route share ``"unmatched"``. Each `Metrics` has its own
`CollectorRegistry` (never the process-global one), so several servers in one process (tests)
count apart; the process collectors read the process, so those are shared by nature.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector

CONTENT_TYPE = CONTENT_TYPE_LATEST

# seconds; the last bucket (+Inf) is implicit
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
)
# Metrics.add names -> (help text); each is the counter seqshape_<name>_total
COUNTERS = {
    "streams_created": "Streams opened since the server started.",
    "streams_expired": "Streams closed for being idle too long.",
    "points": "Points observed on streams (replays not counted).",
    "replays": "Observes answered from the record of a repeated seq.",
}


class Metrics:
    """Thread-safe counters for one server; ``render()`` gives the /metrics text.

    ``open_streams`` is read at each render (the gauge of open streams).
    """

    def __init__(self, open_streams: Callable[[], int] | None = None) -> None:
        self.registry = r = CollectorRegistry()
        labels = ("method", "route", "status")
        self._requests = Counter(
            "seqshape_http_requests",
            "HTTP requests by method, route template and status code.",
            labels,
            registry=r,
        )
        self._errors = Counter(
            "seqshape_http_errors",
            "HTTP requests answered with a 4xx or 5xx status.",
            labels,
            registry=r,
        )
        self._duration = Histogram(
            "seqshape_http_request_duration_seconds",
            "Time from request start to the end of the response body.",
            ("method", "route"),
            buckets=BUCKETS,
            registry=r,
        )
        self._open = Gauge(
            "seqshape_open_streams",
            "Streams open now (in memory and in the state file).",
            registry=r,
        )
        if open_streams is not None:
            self._open.set_function(open_streams)
        self._counters = {
            name: Counter(f"seqshape_{name}", text, registry=r) for name, text in COUNTERS.items()
        }
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        # (method, route, status) -> the label children: labels() costs more than the increments
        self._children: dict[tuple[str, str, int], tuple] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method if method in METHODS else "other", route, status)
        children = self._children.get(key)
        if children is None:
            m = key[0]
            children = self._children[key] = (
                self._requests.labels(m, route, str(status)),
                self._errors.labels(m, route, str(status)) if status >= 400 else None,
                self._duration.labels(m, route),
            )
        requests, errors, duration = children
        requests.inc()
        if errors is not None:
            errors.inc()
        duration.observe(seconds)

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name`` (a key of COUNTERS)."""
        self._counters[name].inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
