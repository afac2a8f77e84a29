"""Streaming: the cost of one new point, B = 1, and the throughput of many streams stepped together.

    .venv/bin/python bench/bench_stream.py [--threads 1] [--points 2000]

What one streamed point costs (2-layer LSTM, hidden 64, univariate, 48-step history; random
weights, no training needed for timing). Contenders, each producing the next-step forecast:
  seqshape_step     ForecasterNet: SequenceEncoder.step (fused cell calls on the LSTM's own weights)
                    + the head, state carried — what a server stream and AnomalyDetector.update do
  nn_lstm_step      the same carried state through a one-step nn.LSTM call per layer
  window_rerun      re-run the last 48 points through nn.LSTM for every new point (stateless)
  detector_update   AnomalyDetector.update: the step above in float64 plus scaling, the residual
                    score and the threshold (a detector trained 1 epoch on a NAB series)
Then the throughput of S streams advanced together, one batched step per tick (S = 1, 64, 1024).
Median per point of --points calls after a warm-up. Target (issue 7): <= 50 us per streamed point.
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAB = (
    ROOT.parent
    / "shared/data/anomaly/nab/data/realKnownCause/ec2_request_latency_system_failure.csv"
)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from seqshape import runtime

    runtime.configure(args.threads)
    import numpy as np
    import torch

    from seqshape.models.forecaster import ForecasterConfig, ForecasterNet

    N = 48
    torch.manual_seed(0)
    net = ForecasterNet(
        ForecasterConfig(n_targets=1, lookback=N, horizon=24, hidden_size=64, num_layers=2)
    ).eval()
    lstms = [layer["fwd"] for layer in net.encoder.layers]
    rng = np.random.default_rng(0)
    values = torch.from_numpy(rng.standard_normal((args.points + N, 1)).astype(np.float32))

    def per_point(advance, n: int) -> list[float]:
        """Call ``advance(i)`` for i in range(n) -> seconds of each call."""
        times = []
        with torch.inference_mode():
            for i in range(min(50, n)):  # warm-up
                advance(i)
            for i in range(n):
                t = time.perf_counter()
                advance(i)
                times.append(time.perf_counter() - t)
        return times

    def seqshape_stepper():
        with torch.inference_mode():
            out, state = net.encode(values[None, :N])
        box = {"state": state}

        def advance(i):
            # (1, 1) new value -> one cell step per layer -> (1, Z, P) next-step parameters
            out, box["state"] = net.encoder.step(values[N + i][None], box["state"])
            return net.point(net.params(out))

        return advance

    def lstm_stepper():
        with torch.inference_mode():
            _, (h, c) = net.encode(values[None, :N])
        box = {"h": h, "c": c}

        def advance(i):
            inp = values[N + i][None, None]
            hs, cs = [], []
            for li, lstm in enumerate(lstms):
                inp, (hl, cl) = lstm(inp, (box["h"][li : li + 1], box["c"][li : li + 1]))
                hs.append(hl)
                cs.append(cl)
            box["h"], box["c"] = torch.cat(hs), torch.cat(cs)
            return net.point(net.params(inp[:, 0]))

        return advance

    def window_stepper():
        def advance(i):
            out, _ = net.encode(values[None, i + 1 : N + i + 1])
            return net.point(net.params(out))

        return advance

    # the three agree on the next-step forecast after the same points
    with torch.inference_mode():
        a, b, w = seqshape_stepper(), lstm_stepper(), window_stepper()
        for i in range(5):
            pa, pb = a(i), b(i)
        assert torch.allclose(pa, pb, atol=1e-5), "stepped paths disagree"
        del w

    rows = []
    for name, make in (
        ("seqshape_step", seqshape_stepper),
        ("nn_lstm_step", lstm_stepper),
        ("window_rerun", window_stepper),
    ):
        times = per_point(make(), args.points)
        rows.append(
            {
                "contender": name,
                "median_us": 1e6 * statistics.median(times),
                "p99_us": 1e6 * float(np.quantile(times, 0.99)),
            }
        )

    # the detector: one real update() per point, scoring and threshold included
    from seqshape.anomaly.detector import AnomalyDetector, DetectorConfig

    raw = np.genfromtxt(NAB, delimiter=",", skip_header=1, usecols=1)
    det = AnomalyDetector(
        DetectorConfig(
            threshold="fixed:0.5", calendar=False, epochs=1, hidden_size=64, num_layers=2, seed=0
        )
    ).fit(raw[:1000])
    stream = raw[1000:]
    runtime.configure(args.threads)  # fit() configures the library's default threads: set ours back
    times = per_point(lambda i: det.update(float(stream[i % len(stream)])), args.points)
    rows.append(
        {
            "contender": "detector_update",
            "median_us": 1e6 * statistics.median(times),
            "p99_us": 1e6 * float(np.quantile(times, 0.99)),
        }
    )

    # throughput: S streams in one batch, one cell step per tick
    runtime.configure(args.threads)
    tput = []
    for S in (1, 64, 1024):
        with torch.inference_mode():
            hist = torch.randn(S, N, 1)
            out, state = net.encode(hist)
            ticks = max(20, min(args.points, 200_000 // S))
            x = torch.randn(ticks, S, 1)
            for t in range(5):
                out, state = net.encoder.step(x[t], state)
            t0 = time.perf_counter()
            for t in range(ticks):
                out, state = net.encoder.step(x[t], state)
                net.point(net.params(out))
            secs = time.perf_counter() - t0
        tput.append(
            {
                "streams": S,
                "ticks": ticks,
                "points_per_s": S * ticks / secs,
                "us_per_tick": 1e6 * secs / ticks,
            }
        )

    print(f"{'contender':>16} {'median us':>10} {'p99 us':>10}")
    for r in rows:
        print(f"{r['contender']:>16} {r['median_us']:10.1f} {r['p99_us']:10.1f}")
    print(f"{'streams':>8} {'us per tick':>12} {'points/s':>12}")
    for r in tput:
        print(f"{r['streams']:>8} {r['us_per_tick']:12.1f} {r['points_per_s']:12.0f}")
    step = rows[0]["median_us"]
    result = {
        "bench": "stream",
        "rows": rows,
        "throughput": tput,
        "target_us": 50,
        "met": step <= 50,
        "threads": args.threads,
        "torch_threads_at_end": torch.get_num_threads(),
        "torch": torch.__version__,
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
