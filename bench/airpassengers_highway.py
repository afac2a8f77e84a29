"""AirPassengers: the demo's LSTM forecaster with and without the linear highway, 3 seeds.

    .venv/bin/python bench/airpassengers_highway.py [--seeds 0,1,2] [--threads 1]

The demo's split and model, imported from it (`seqshape demo`: train 1949-57, validate 1958,
backtest 1959-60 at K=12; lookback 24, H=32, 1 layer, batch 16, lr 3e-3, up to 60 epochs,
patience 15). Rows: the LSTM alone, the LSTM with `highway=24` (least-squares start kept unless an epoch beats it), that
model's start (the highway alone, LSTM head at zero), and the naive, seasonal naive and linear
baselines on the same windows. MSE on the standardized scale. Prints a markdown table and one
JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--highway", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    from seqshape.api.backtest import backtest
    from seqshape.api.forecaster import Forecaster
    from seqshape.cli.forecast import DEMO_FORECASTER, demo_air_data
    from seqshape.models.forecaster import fit_highway

    _, frame, series, (tr, va, te) = demo_air_data()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: dict[str, list[float]] = {"LSTM alone": [], "LSTM + highway": [], "highway alone": []}
    picked, baselines, seconds = [], {}, {}
    for name, highway in (("LSTM alone", 0), ("LSTM + highway", args.highway)):
        t0 = time.perf_counter()
        for seed in seeds:
            opts = {**DEMO_FORECASTER, "highway": highway}
            fc = Forecaster(**opts, seed=seed, threads=args.threads)
            fc.meta = {"freq": frame.freq}
            fc.fit(series, train_end=tr, val_end=va)
            r = backtest(fc, series, tr, va, te, [12])
            rows[name].append(r["mse"])
            baselines = {k: v["mse"] for k, v in r["baselines"].items()}
            if highway:
                picked.append(fc.metrics)
                alone = copy.deepcopy(fc)
                scaled = alone._scaled(series)
                fit_highway(alone.net, [z[: tr[0]] for z, _ in scaled], seed=seed)
                rows["highway alone"].append(backtest(alone, series, tr, va, te, [12])["mse"])
        seconds[name] = round(time.perf_counter() - t0, 1)
    print("| model | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |")
    print("|---|" + "---|" * (len(seeds) + 1))
    for name, v in rows.items():
        print(f"| {name} | " + " | ".join(f"{x:.4f}" for x in v) + f" | {sum(v) / len(v):.4f} |")
    for k, v in baselines.items():
        print(f"| {k} | " + " | ".join(f"{v:.4f}" for _ in seeds) + f" | {v:.4f} |")
    for s, m in zip(seeds, picked):
        print(
            f"seed {s}: validation MASE start {m['start_val_mase']:.4f} -> kept epoch "
            f"{m['best_epoch']} {m['best_val_mase']:.4f}"
        )
    print(f"seconds (all seeds): {seconds}")
    print(
        json.dumps(
            {
                "bench": "airpassengers_highway",
                "args": vars(args),
                "test_mse": rows,
                "baselines": baselines,
                "highway_metrics": picked,
                "seconds": seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
