"""Load test of `seqshape serve` streams on loopback: N concurrent streams, one point per observe.

    .venv/bin/python bench/bench_serve.py                      # 50 streams, 30 s, a fresh server
    .venv/bin/python bench/bench_serve.py --seconds 10 --streams 20
    .venv/bin/python bench/bench_serve.py --url http://127.0.0.1:8000 --model-name jv

With --rate R each stream sends R points per second (paced; the default 25/s makes 1,250 points/s
offered by 50 streams) and latency is what a point's sender waits; with --rate 0 each stream sends
its next point as soon as its answer comes (closed loop: throughput is the server's maximum, and
latency is then about streams / throughput, queueing included).

Without --url it trains a small streamable classifier (JapaneseVowels, unidirectional LSTM,
--hidden 64, a few epochs), starts `python -m seqshape serve` on 127.0.0.1 and a free port with a
temporary --state file, and stops it at the end. Each of --streams client tasks opens a stream and
observes one JapaneseVowels point per request over its own keep-alive connection, in a loop, until
--seconds have passed (after --warmup seconds that are not measured). Only loopback addresses are
accepted; every loop is bounded in time and count.

Reports observed points per second, latency p50/p99/max, errors, and the CPU time the server and
the client used. Targets (issue 6): p99 <= 20 ms and >= 1,000 points/s with zero errors, on 2 cores.

The client speaks HTTP/1.1 over asyncio streams directly (a few lines below) instead of an HTTP
library, so that on a 2-core machine the measurement spends its CPU on the server, not the client.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MAX_REQUESTS_PER_STREAM = 1_000_000  # a bound on every loop, whatever --seconds says


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    """One keep-alive HTTP/1.1 connection; JSON in, (status, JSON) out."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def run_stream(
    i: int, args, host: str, port: int, headers: dict, points: np.ndarray, clock: dict
) -> dict:
    """Open a stream, observe one point per request until the deadline, delete the stream."""
    conn = Conn(host, port, headers)
    await conn.open()
    status, body = await conn.request("POST", f"/v1/models/{args.model_name}/streams")
    if status != 201:
        raise SystemExit(f"opening a stream: HTTP {status}: {body[:300]!r}")
    sid = json.loads(body)["stream_id"]
    lat, errors, statuses = [], 0, {}
    seq = 0
    offset = (i * 7919) % len(points)
    # paced: this stream's k-th point is due at start + phase + k / rate (phases spread the streams)
    period = 1.0 / args.rate if args.rate > 0 else 0.0
    due = time.perf_counter() + period * i / args.streams
    for _ in range(MAX_REQUESTS_PER_STREAM):
        if period:
            due += period
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
        if time.perf_counter() >= clock["end"]:
            break
        point = points[(offset + seq) % len(points)]
        req = json.dumps({"seq": seq, "points": [point]}).encode()
        t0 = time.perf_counter()
        try:
            status, _ = await asyncio.wait_for(
                conn.request("POST", f"/v1/streams/{sid}/observe", req), timeout=10.0
            )
        except (TimeoutError, ConnectionError, OSError) as e:
            errors += 1
            statuses[type(e).__name__] = statuses.get(type(e).__name__, 0) + 1
            break
        t1 = time.perf_counter()
        statuses[status] = statuses.get(status, 0) + 1
        if status != 200:
            errors += 1
        else:
            seq += 1
        if t0 >= clock["start"]:
            lat.append(t1 - t0)
    await conn.request("DELETE", f"/v1/streams/{sid}")
    conn.close()
    return {"latencies": lat, "errors": errors, "statuses": statuses, "observed": seq}


async def sample_load(clock: dict, out: list) -> None:
    """The 1-minute load average every 2 s of the measured window (other jobs on the machine)."""
    for _ in range(10_000):
        now = time.perf_counter()
        if now >= clock["end"]:
            return
        if now >= clock["start"]:
            out.append(os.getloadavg()[0])
        await asyncio.sleep(2.0)


async def load(args, host: str, port: int, headers: dict, points: np.ndarray) -> dict:
    t = time.perf_counter()
    clock = {"start": t + args.warmup, "end": t + args.warmup + args.seconds}
    tasks = [run_stream(i, args, host, port, headers, points, clock) for i in range(args.streams)]
    loads: list[float] = []
    sampler = asyncio.ensure_future(sample_load(clock, loads))
    per_stream = await asyncio.gather(*tasks)
    await sampler
    return {"per_stream": per_stream, "window": args.seconds, "loads": loads}


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _train(out: Path, hidden: int, epochs: int) -> Path:
    from seqshape.api.classifier import STREAM_OPTIONS, SequenceClassifier
    from seqshape.datasets import load_japanese_vowels

    clf = SequenceClassifier(
        hidden_size=hidden, epochs=epochs, bidirectional=False, threads=1, **STREAM_OPTIONS
    )
    clf.fit(load_japanese_vowels("train")).save(out / "jv")
    return out / "jv"


def _metric(text: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0, help="measured window (default 30)")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    p.add_argument("--streams", type=int, default=50, help="concurrent streams (default 50)")
    p.add_argument(
        "--rate",
        type=float,
        default=25.0,
        help="points per second per stream (default 25: 1,250/s offered by 50 streams); "
        "0: each stream sends its next point as soon as the answer comes (closed loop)",
    )
    p.add_argument("--url", help="an already running loopback server (else one is started)")
    p.add_argument("--model-name", default="jv", help="model to open streams on (with --url)")
    p.add_argument(
        "--model", type=Path, help="model directory to serve (else a small one is trained)"
    )
    p.add_argument("--hidden", type=int, default=64, help="hidden size of the trained model")
    p.add_argument("--epochs", type=int, default=3, help="epochs of the trained model")
    p.add_argument("--api-key", help="bearer key of the server given by --url")
    p.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = p.parse_args()
    if not (0 < args.seconds <= 600 and 0 <= args.warmup <= 60 and 1 <= args.streams <= 1000):
        p.error("--seconds must be in (0, 600], --warmup in [0, 60], --streams in [1, 1000]")
    if not 0 <= args.rate <= 10_000:
        p.error("--rate must be in [0, 10000] points per second per stream")
    os.environ.setdefault("SEQSHAPE_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from seqshape.datasets import load_japanese_vowels

    points = np.concatenate(load_japanese_vowels("test").X).astype(float).tolist()
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    proc = None
    tmp = tempfile.TemporaryDirectory(prefix="bench-serve-")
    try:
        if args.url:
            u = urllib.parse.urlsplit(args.url)
            host, port = u.hostname or "", u.port or 80
            if not _loopback(host):
                p.error(f"--url {args.url}: only loopback addresses (127.0.0.1, ::1, localhost)")
        else:
            model = args.model or _train(Path(tmp.name), args.hidden, args.epochs)
            host, port = "127.0.0.1", _free_port()
            cmd = [sys.executable, "-m", "seqshape", "serve", f"{args.model_name}={model}"]
            cmd += ["--host", host, "--port", str(port), "--threads", "1"]
            cmd += ["--state", str(Path(tmp.name) / "state.sqlite3"), "--log-level", "warning"]
            proc = subprocess.Popen(cmd, cwd=ROOT)
            for _ in range(1200):  # up to 60 s
                if proc.poll() is not None:
                    raise SystemExit("the server exited during startup")
                try:
                    socket.create_connection((host, port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.05)
            else:
                raise SystemExit("the server did not start within 60 s")
        server_cpu0 = _cpu_seconds(proc.pid) if proc else None
        client_cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        load0 = os.getloadavg()
        result = asyncio.run(load(args, host, port, headers, points))
        client_cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        server_cpu1 = _cpu_seconds(proc.pid) if proc else None
        metrics = ""
        with socket.create_connection((host, port), timeout=10) as s:
            extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            s.sendall(
                f"GET /metrics HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode()
            )
            chunks = []
            for _ in range(10_000):
                c = s.recv(65536)
                if not c:
                    break
                chunks.append(c)
            metrics = b"".join(chunks).decode(errors="replace")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        tmp.cleanup()

    lat = np.array([x for s in result["per_stream"] for x in s["latencies"]]) * 1000.0
    errors = sum(s["errors"] for s in result["per_stream"])
    statuses: dict = {}
    for s in result["per_stream"]:
        for k, v in s["statuses"].items():
            statuses[str(k)] = statuses.get(str(k), 0) + v
    report = {
        "streams": args.streams,
        "seconds": args.seconds,
        "offered_points_per_s": args.rate * args.streams if args.rate else "closed loop",
        "points_measured": int(lat.size),
        "points_per_s": round(lat.size / args.seconds, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
        "max_ms": round(float(lat.max()), 2) if lat.size else None,
        "errors": errors,
        "statuses": statuses,
        "server_observed_points": _metric(metrics, "seqshape_points_total"),
        "server_user_s": None if server_cpu0 is None else round(server_cpu1[0] - server_cpu0[0], 1),
        "server_system_s": None
        if server_cpu0 is None
        else round(server_cpu1[1] - server_cpu0[1], 1),
        "client_cpu_s": round(
            (client_cpu1.ru_utime + client_cpu1.ru_stime)
            - (client_cpu0.ru_utime + client_cpu0.ru_stime),
            1,
        ),
        "model": str(args.model or f"trained: JapaneseVowels, H={args.hidden}, unidirectional"),
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "loadavg_before": [round(x, 2) for x in load0],
        "loadavg_1min_during": [round(min(result["loads"]), 2), round(max(result["loads"]), 2)]
        if result["loads"]
        else None,
        "python": platform.python_version(),
    }
    ok = (
        report["errors"] == 0 and (report["p99_ms"] or 1e9) <= 20 and report["points_per_s"] >= 1000
    )
    print(json.dumps(report, indent=2))
    print(
        f"{report['points_per_s']:.0f} points/s, p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms, "
        f"{errors} errors — targets (p99 <= 20 ms, >= 1000 points/s, 0 errors) "
        + ("met" if ok else "NOT met"),
        file=sys.stderr,
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
