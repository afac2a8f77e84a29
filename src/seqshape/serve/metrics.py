"""Request counters, a latency histogram and stream gauges, rendered in Prometheus' text format.

Routes are labelled by their template (``/v1/streams/{stream_id}/observe``), never by the raw
path, so a client cannot grow the label set; paths that match no route share ``"unmatched"``.
The format (version 0.0.4): ``# HELP`` / ``# TYPE`` lines, then ``name{label="value"} number``.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# seconds; the last bucket (+Inf) is implicit
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


class Metrics:
    """Thread-safe counters for the server; ``render()`` gives the /metrics text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.errors: dict[tuple[str, str, str], int] = defaultdict(int)
        # (method, route) -> [count per bucket..., +Inf count], sum
        self.hist: dict[tuple[str, str], list[int]] = {}
        self.hist_sum: dict[tuple[str, str], float] = defaultdict(float)
        self.points = 0
        self.replays = 0
        self.streams_created = 0
        self.streams_expired = 0
        self.open_streams = 0

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route)
        with self._lock:
            self.requests[(method, route, str(status))] += 1
            if status >= 400:
                self.errors[(method, route, str(status))] += 1
            counts = self.hist.get(key)
            if counts is None:
                counts = self.hist[key] = [0] * (len(BUCKETS) + 1)
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.hist_sum[key] += seconds

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def render(self) -> str:
        lines: list[str] = []

        def head(name: str, kind: str, text: str) -> None:
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")

        with self._lock:
            name = "seqshape_http_requests_total"
            head(name, "counter", "HTTP requests by method, route template and status code.")
            for (m, r, s), n in sorted(self.requests.items()):
                lines.append(f"{name}{_labels((('method', m), ('route', r), ('status', s)))} {n}")
            name = "seqshape_http_errors_total"
            head(name, "counter", "HTTP requests answered with a 4xx or 5xx status.")
            for (m, r, s), n in sorted(self.errors.items()):
                lines.append(f"{name}{_labels((('method', m), ('route', r), ('status', s)))} {n}")
            name = "seqshape_http_request_duration_seconds"
            head(name, "histogram", "Time from request start to the end of the response body.")
            for (m, r), counts in sorted(self.hist.items()):
                base = (("method", m), ("route", r))
                total = 0
                for le, c in zip((*BUCKETS, None), counts):
                    total += c
                    le_text = "+Inf" if le is None else repr(le)
                    lines.append(f"{name}_bucket{_labels((*base, ('le', le_text)))} {total}")
                lines.append(f"{name}_sum{_labels(base)} {_number(self.hist_sum[(m, r)])}")
                lines.append(f"{name}_count{_labels(base)} {total}")
            for attr, kind, text in (
                ("open_streams", "gauge", "Streams open now (in memory and in the state file)."),
                ("streams_created", "counter", "Streams opened since the server started."),
                ("streams_expired", "counter", "Streams closed for being idle too long."),
                ("points", "counter", "Points observed on streams (replays not counted)."),
                ("replays", "counter", "Observes answered from the record of a repeated seq."),
            ):
                name = f"seqshape_{attr}" + ("_total" if kind == "counter" else "")
                head(name, kind, text)
                lines.append(f"{name} {getattr(self, attr)}")
        return "\n".join(lines) + "\n"
