"""Anomaly detection on one NAB series: batch scores, and a stream that gives the same scores.

`AnomalyDetector` is a small LSTM forecaster whose one-step-ahead errors become scores in [0, 1].
It trains on the first 15% of the series (NAB's probationary period), scores the whole series in
one batch pass, then replays the rest of the series one point at a time with `update()` (one LSTM
cell step per point, the (h, c) carried) and checks that both paths give the same scores. The
flags are compared with NAB's label windows for the file.

    python examples/detect_nab.py             # realKnownCause/ec2_request_latency_system_failure
    python examples/detect_nab.py --small     # a quick run (the test suite runs this)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from seqshape import AnomalyDetector, DataError
from seqshape.anomaly.detector import DetectorConfig
from seqshape.anomaly.nab import probationary_length

NAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "anomaly" / "nab"


def read_series(name: str) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """(T,) timestamps, (T,) values and the label windows as inclusive row ranges."""
    path = NAB / "data" / name
    if not path.exists():
        raise DataError(f"{path}: not found (this example needs ../shared/data/anomaly/nab)")
    frame = pd.read_csv(path)
    ts = pd.to_datetime(frame["timestamp"]).to_numpy("datetime64[ns]")
    values = frame["value"].to_numpy(np.float64)
    labels = json.loads((NAB / "labels" / "combined_windows.json").read_text())[name]
    windows = []
    for a, b in labels:
        first, last = np.searchsorted(ts, np.datetime64(a)), np.searchsorted(ts, np.datetime64(b))
        windows.append((int(first), int(min(last, len(ts) - 1))))
    return ts, values, windows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run: 3 epochs, H=16")
    parser.add_argument("--series", default="realKnownCause/ec2_request_latency_system_failure.csv")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    ts, values, windows = read_series(args.series)
    n_train = probationary_length(len(values))
    print(f"{args.series}: T={len(values)}, training on the first {n_train} rows (probation)")
    print(f"label windows (rows): {windows}")

    options = dict(epochs=3, hidden_size=16) if args.small else dict(epochs=30, hidden_size=32)
    config = DetectorConfig(threshold="fixed:0.5", seed=args.seed, **options)
    t0 = time.perf_counter()
    # (n_train,) values and timestamps -> a trained detector whose stream stands at row n_train
    det = AnomalyDetector(config).fit(values[:n_train], ts[:n_train], check_order=False)
    print(f"trained in {time.perf_counter() - t0:.1f} s")

    # batch: every row at once (one encoder pass); rows of the training stretch score 0
    t0 = time.perf_counter()
    batch = det.score_series(values, ts, check_order=False)
    batch_s = time.perf_counter() - t0
    # streaming: the detector goes on from row n_train, one point at a time
    t0 = time.perf_counter()
    streamed = [det.update(v, t) for v, t in zip(values[n_train:], ts[n_train:])]
    stream_s = time.perf_counter() - t0
    scores = np.array([s for s, _ in streamed])
    flags = np.array([f for _, f in streamed])
    diff = np.abs(scores - batch["score"][n_train:]).max()
    same_flags = bool((flags == batch["is_anomaly"][n_train:]).all())
    print(
        f"batch: {batch_s:.2f} s for {len(values)} rows; stream: {stream_s:.2f} s for "
        f"{len(scores)} update() calls ({1e6 * stream_s / len(scores):.0f} us each)"
    )
    print(f"streamed vs batch scores: max difference {diff:.1e}, same flags: {same_flags}")
    assert diff < 1e-6 and same_flags

    # the flags against NAB's label windows
    flagged = np.flatnonzero(batch["is_anomaly"])
    inside = np.zeros(len(values), dtype=bool)
    for a, b in windows:
        inside[a : b + 1] = True
    hit = [any(a <= i <= b for i in flagged) for a, b in windows]
    print(
        f"flagged rows: {len(flagged)} ({int(inside[flagged].sum())} inside a label window); "
        f"windows detected: {sum(hit)} of {len(windows)}"
    )
    top = np.argsort(batch["score"])[::-1][:5]
    print("highest scores: " + ", ".join(f"row {i} ({batch['score'][i]:.2f})" for i in top))


if __name__ == "__main__":
    main()
