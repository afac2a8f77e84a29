"""The LSTM detector on the Numenta Anomaly Benchmark: run all 58 series, score, record the time.

    SEQSHAPE_THREADS=1 OMP_NUM_THREADS=1 python bench/nab_lstm.py            # ~5 min on 1 core

Results CSVs go to runs/nab/ (git-ignored); the scores, the run time and the machine's load go to
bench/results/nab_lstm.json. Equivalent CLI:
    seqshape nab run --nab-dir ../shared/data/anomaly/nab --out runs/nab
    seqshape nab score runs/nab --detector lstm --nab-dir ../shared/data/anomaly/nab --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--nab-dir", type=Path, default=ROOT.parent / "shared" / "data" / "anomaly" / "nab"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "nab")
    ap.add_argument("--detector", default="lstm")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "nab_lstm.json")
    args = ap.parse_args(argv)

    import torch

    from seqshape import __version__, runtime
    from seqshape.anomaly.detector import DetectorConfig
    from seqshape.anomaly.nab import score_detector
    from seqshape.anomaly.runner import run_nab

    threads = runtime.configure()
    config = DetectorConfig()
    load_start = os.getloadavg()
    done = []

    def log(name: str, seconds: float) -> None:
        done.append(name)
        print(f"[{len(done):2d}/58] {name}: {seconds:.1f} s", flush=True)

    run = run_nab(
        args.nab_dir,
        args.out,
        detector=args.detector,
        config=config,
        jobs=args.jobs,
        progress=False,
        on_series=log,
    )
    scores = score_detector(args.nab_dir, args.out, args.detector)
    published = json.loads((args.nab_dir / "results" / "final_results.json").read_text())
    result = {
        "bench": "nab_lstm",
        "detector": args.detector,
        "standard": round(scores["standard"], 2),
        "reward_low_FP_rate": round(scores["reward_low_FP_rate"], 2),
        "reward_low_FN_rate": round(scores["reward_low_FN_rate"], 2),
        "thresholds": scores["thresholds"],
        "seconds": round(run.seconds, 1),
        "jobs": run.jobs,
        "threads_per_job": threads,
        "cores": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "command": "SEQSHAPE_THREADS=1 OMP_NUM_THREADS=1 python bench/nab_lstm.py",
        "config": config.to_dict(),
        "series_seconds": run.series_seconds,
        "published": {k: round(v["standard"], 2) for k, v in published.items()},
        "seqshape": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"NAB {args.detector}: standard {result['standard']}, low FP {result['reward_low_FP_rate']}, "
        f"low FN {result['reward_low_FN_rate']} in {result['seconds']} s -> {args.json}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
