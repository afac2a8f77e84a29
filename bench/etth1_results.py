"""ETTh1, univariate target OT: the forecaster against naive, seasonal naive and linear baselines.

    .venv/bin/python bench/etth1_results.py [--lookback 96] [--horizon 24] [--epochs 10] [--threads 2]

The usual split (12 months train, 4 validation, 4 test; Zhou et al., Informer, AAAI 2021), values
standardized with training statistics, calendar covariates (hour of day, day of week) known ahead.
ONE autoregressive model (trained at --horizon) forecasts every K in 24, 48, 168, 336, 720 through its
LSTM; the rolling-origin backtest uses every window (stride 1) whose forecast lies in the test part,
and the baselines run through the same code on the same windows. MSE / MAE on the standardized scale.
Prints a markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data",
        default=str(Path(__file__).resolve().parents[2] / "shared/data/forecasting/ETTh1.csv"),
    )
    ap.add_argument("--lookback", type=int, default=96)
    ap.add_argument("--horizon", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-windows-per-epoch", type=int, default=4096)
    ap.add_argument("--horizons", default="24,48,168,336,720")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--highway", type=int, default=0, help="linear highway over the last P values (0: off)"
    )
    ap.add_argument("--window-norm", default="last")
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--sampling-ratio", type=float, default=0.0)
    ap.add_argument(
        "--freeze-highway", action="store_true", help="keep the least-squares highway fixed"
    )
    ap.add_argument(
        "--no-keep-start",
        action="store_true",
        help="with --highway: return the best epoch even if the least-squares start validates better",
    )
    ap.add_argument("--lr-schedule", default="plateau", choices=["plateau", "cosine"])
    ap.add_argument("--out", default="runs/etth1")
    args = ap.parse_args()

    from seqshape.api.backtest import backtest
    from seqshape.api.forecaster import Forecaster
    from seqshape.cli.forecast import read_frame
    from seqshape.data.series import ett_split

    t0 = time.perf_counter()
    spec = {
        "target": ["OT"],
        "past_covariates": [],
        "future_covariates": "auto",
        "time_column": "date",
        "series_column": None,
        "missing": "error",
    }
    frame = read_frame(Path(args.data), spec)
    series = frame.to_series()
    tr, va, te = ett_split()
    train_end, val_end, test_end = [tr], [tr + va], [tr + va + te]
    fc = Forecaster(
        lookback=args.lookback,
        horizon=args.horizon,
        hidden_size=args.hidden,
        num_layers=args.layers,
        epochs=args.epochs,
        patience=args.patience,
        lr=args.lr,
        highway=args.highway,
        window_norm=args.window_norm,
        dropout=args.dropout,
        sampling_ratio=args.sampling_ratio,
        train_highway=not args.freeze_highway,
        keep_start=not args.no_keep_start,
        lr_schedule=args.lr_schedule,
        seed=args.seed,
        threads=args.threads,
        max_windows_per_epoch=args.max_windows_per_epoch,
        progress=False,
    )
    fc.meta = {
        "columns": spec,
        "split": {"train_end": train_end, "val_end": val_end, "test_end": test_end, "rule": "ett"},
        "freq": frame.freq,
    }
    fc.fit(series, train_end=train_end, val_end=val_end)
    train_s = time.perf_counter() - t0
    horizons = [int(h) for h in args.horizons.split(",")]
    result = backtest(fc, series, train_end, val_end, test_end, horizons)
    if args.highway:
        # the highway alone: the same model with its least-squares linear autoregression and the
        # LSTM's head at zero, i.e. the starting point of training
        import copy

        from seqshape.models.forecaster import fit_highway

        alone = copy.deepcopy(fc)
        scaled = alone._scaled(series)
        fit_highway(alone.net, [z[:e] for (z, _), e in zip(scaled, train_end)], seed=args.seed)
        hw = backtest(alone, series, train_end, val_end, test_end, horizons)
        for K in horizons:
            r = hw["by_horizon"][str(K)]
            result["by_horizon"][str(K)]["highway_alone"] = {"mse": r["mse"], "mae": r["mae"]}
    total_s = time.perf_counter() - t0
    fc.save(args.out, extra_metrics={"test": result})
    print(
        "| K | seqshape MSE | MAE | naive MSE | MAE | seasonal naive MSE | MAE | linear MSE | MAE | beats s-naive | beats linear |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for K in horizons:
        r = result["by_horizon"][str(K)]
        b = r["baselines"]
        print(
            f"| {K} | {r['mse']:.4f} | {r['mae']:.4f} | {b['naive']['mse']:.4f} | {b['naive']['mae']:.4f} | "
            f"{b['seasonal_naive']['mse']:.4f} | {b['seasonal_naive']['mae']:.4f} | {b['linear']['mse']:.4f} | "
            f"{b['linear']['mae']:.4f} | {'yes' if r['mse'] < b['seasonal_naive']['mse'] else 'no'} | "
            f"{'yes' if r['mse'] < b['linear']['mse'] else 'no'} |"
        )
        if "highway_alone" in r:
            h = r["highway_alone"]
            print(
                f"|   highway alone (the linear part, untrained LSTM head) | {h['mse']:.4f} | {h['mae']:.4f} |"
            )
    m = fc.metrics
    if "start_val_mase" in m:
        kept = (
            "the start (no epoch beat it)" if m["best_epoch"] == 0 else f"epoch {m['best_epoch']}"
        )
        print(
            f"validation MASE: start (highway alone) {m['start_val_mase']:.5f}, kept {kept} "
            f"{m['best_val_mase']:.5f}, over {m['epochs_run']} epochs"
        )
    print(
        f"training {train_s:.0f} s, total {total_s:.0f} s, {args.threads} threads, loadavg {os.getloadavg()}"
    )
    print(
        json.dumps(
            {
                "bench": "etth1",
                "args": vars(args),
                "train_seconds": train_s,
                "total_seconds": total_s,
                "metrics": fc.metrics,
                "result": result,
                "loadavg": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
