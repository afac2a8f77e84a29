"""The forecasting suite the defaults are chosen on: the default `Forecaster` (only the horizon
given) against naive, seasonal naive and the direct linear map, on several data sets.

    .venv/bin/python bench/forecast_suite.py [--sets air,etth1,m4] [--etth1-horizons 24,168]
        [--threads 2] [--seed 0] [--set key=value ...] [--json out.json]

- air: AirPassengers (monthly), train 1949-1957, validate 1958, test 1959-1960, K = 12;
- etth1: ETTh1 target OT alone, the ETT split (12 / 4 / 4 months), one model per K, every test
  window (stride 1), MSE on the standardized scale;
- m4: M4 Hourly, one global model over the 414 series, validated on the last 48 training values
  of each series, forecast from the end of each training series and scored on the official test
  values with the competition's sMAPE, MASE and OWA (Naive2 as the competition computes it);
- checks, not in the default --sets and not part of what chose the defaults: taxi (NAB's NYC
  taxi demand every 30 minutes, K = 48, one day), temp (hourly temperatures, K = 24), tweets
  (counts every 5 minutes, K = 12), cpu (EC2 CPU every 5 minutes, K = 12); each split 70/10/20.

For each entry it prints the model, the baselines, which part won (the baseline the model started
from, or "lstm+" that baseline when a trained epoch beat it on validation), and the ratio of the
model's error to the best baseline's (below 1: better than every baseline). The aggregate the
defaults are chosen by is the geometric mean of those ratios. `--set key=value` overrides a
Forecaster option (e.g. --set strategy=direct), to compare candidate defaults on the same suite.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "forecasting"


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _options(pairs: list[str]) -> dict:
    out = {}
    for p in pairs:
        k, _, v = p.partition("=")
        out[k.replace("-", "_")] = _value(v)
    return out


def _parts(fc) -> dict:
    m = fc.metrics
    return {
        "winner": m.get("winner", "lstm"),
        "start": m.get("start"),
        "strategy": fc.config.strategy,
        "season": m.get("season"),
        "lookback": fc.config.lookback,
        "best_epoch": m.get("best_epoch"),
        "baselines_val_mase": m.get("baselines_val_mase"),
        "strategy_val_mase": m.get("strategy_val_mase"),
        "segment": fc.config.segment,
        "window_norm": fc.config.window_norm,
        "train_seconds": m.get("train_seconds"),
    }


def run_backtest_set(name, series, tr, va, te, horizons, opts, args) -> list[dict]:
    from seqshape.api.backtest import backtest
    from seqshape.api.forecaster import Forecaster

    rows = []
    for K in horizons:
        t0 = time.perf_counter()
        fc = Forecaster(horizon=K, seed=args.seed, threads=args.threads, progress=True, **opts)
        fc.fit(series, train_end=tr, val_end=va)
        r = backtest(fc, series, tr, va, te, [K])["by_horizon"][str(K)]
        mse = {"model": r["mse"], **{k: v["mse"] for k, v in r["baselines"].items()}}
        best = min(("naive", "seasonal_naive", "linear"), key=mse.get)
        parts = {}
        if args.ablations:
            parts = _ablations(fc, series, tr, va, te, K, opts, args)
        rows.append(
            {
                "set": name,
                "K": K,
                "metric": "mse",
                **{k: round(v, 5) for k, v in mse.items()},
                **parts,
                "best_baseline": best,
                "ratio": mse["model"] / mse[best],
                "seconds": round(time.perf_counter() - t0, 1),
                **_parts(fc),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _ablations(fc, series, tr, va, te, K, opts, args) -> dict:
    """Test MSE of the baseline part alone (the model's start: its highway with the LSTM's head
    at zero) and of the LSTM alone (the same options, highway 0)."""
    import copy

    from seqshape.api.backtest import backtest
    from seqshape.api.forecaster import Forecaster
    from seqshape.models.forecaster import apply_highway_start

    out = {}
    if getattr(fc, "start_weights_", None) is not None:
        alone = copy.deepcopy(fc)
        apply_highway_start(alone.net, fc.start_weights_)
        out["baseline_part_alone"] = round(backtest(alone, series, tr, va, te, [K])["mse"], 5)
    lstm = Forecaster(
        horizon=K, seed=args.seed, threads=args.threads, progress=False, **{**opts, "highway": 0}
    )
    lstm.fit(series, train_end=tr, val_end=va)
    out["lstm_alone"] = round(backtest(lstm, series, tr, va, te, [K])["mse"], 5)
    return out


def air(opts, args) -> list[dict]:
    from seqshape.cli.forecast import demo_air_data

    _, _, series, (tr, va, te) = demo_air_data()
    return run_backtest_set("AirPassengers", series, tr, va, te, [12], opts, args)


def etth1(opts, args) -> list[dict]:
    from seqshape.cli.forecast import read_frame, split_bounds

    spec = {
        "target": ["OT"],
        "past_covariates": [],
        "future_covariates": None,
        "time_column": None,
        "series_column": None,
        "missing": "error",
    }
    frame = read_frame(SHARED / "ETTh1.csv", spec)
    series = frame.to_series()
    tr, va, te = split_bounds(frame, None, None, True)
    horizons = [int(k) for k in args.etth1_horizons.split(",")]
    return run_backtest_set("ETTh1 OT", series, tr, va, te, horizons, opts, args)


# checks that chose nothing: NAB series of other frequencies (name, file, K, season or None)
CHECKS = {
    "taxi": ("NYC taxi (check)", "realKnownCause/nyc_taxi.csv", 48),  # every 30 min, one day
    "temp": ("NAB ambient temperature (check)", "realKnownCause/ambient_temperature_system_failure.csv", 24),  # hourly, one day
    "tweets": ("NAB tweets AAPL (check)", "realTweets/Twitter_volume_AAPL.csv", 12),  # counts every 5 min, one hour
    "cpu": ("NAB EC2 CPU (check)", "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv", 12),  # every 5 min, one hour
}  # fmt: skip


def nab_check(key: str, opts, args) -> list[dict]:
    """One NAB series, split 70/10/20 in time, MSE on the standardized scale (every test window):
    a check of the defaults on data that chose none of them."""
    from seqshape.cli.forecast import read_frame, split_bounds

    name, rel, K = CHECKS[key]
    spec = {
        "target": ["value"],
        "past_covariates": [],
        "future_covariates": None,
        "time_column": "timestamp",
        "series_column": None,
        "missing": "error",
    }
    frame = read_frame(SHARED.parent / "anomaly" / "nab" / "data" / rel, spec)
    tr, va, te = split_bounds(frame, None, None, False)
    return run_backtest_set(name, frame.to_series(), tr, va, te, [K], opts, args)


def m4(opts, args) -> list[dict]:
    from seqshape.api.forecaster import Forecaster
    from seqshape.api.m4 import evaluate_m4, fit_m4
    from seqshape.data.m4 import read_m4_pair

    K, m = 48, 24
    train, test = read_m4_pair(
        SHARED / "m4_hourly/Hourly-train.csv", SHARED / "m4_hourly/Hourly-test.csv", horizon=K
    )
    t0 = time.perf_counter()
    fc = Forecaster(horizon=K, season=m, seed=args.seed, threads=args.threads, progress=True, **opts)  # fmt: skip
    fit_m4(fc, train)
    fit_s = time.perf_counter() - t0
    r = evaluate_m4(fc, train, test, m)
    scores = {"model": {k: r[k] for k in ("smape", "mase", "owa")}, **r["baselines"]}
    parts = {}
    if args.ablations:
        import copy

        from seqshape.models.forecaster import apply_highway_start

        alone = copy.deepcopy(fc)
        apply_highway_start(alone.net, fc.start_weights_)
        parts["baseline_part_alone"] = round(evaluate_m4(alone, train, test, m)["owa"], 4)
        lstm = Forecaster(
            horizon=K, season=m, seed=args.seed, threads=args.threads, progress=False,
            **{**opts, "highway": 0},
        )  # fmt: skip
        fit_m4(lstm, train)
        parts["lstm_alone"] = round(evaluate_m4(lstm, train, test, m)["owa"], 4)
    best = min(("naive", "seasonal_naive", "naive2"), key=lambda k: scores[k]["owa"])
    row = {
        "set": "M4 Hourly",
        "K": K,
        "metric": "owa",
        **{k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in scores.items()},
        **parts,
        "best_baseline": best,
        "ratio": scores["model"]["owa"] / scores[best]["owa"],
        "seconds": round(fit_s, 1),
        **_parts(fc),
    }
    print(json.dumps(row), flush=True)
    return [row]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sets", default="air,etth1,m4")
    ap.add_argument("--etth1-horizons", default="24,168")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="a Forecaster option, key=value")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument(
        "--ablations",
        action="store_true",
        help="also score the baseline part alone and the LSTM alone (highway 0)",
    )
    args = ap.parse_args()
    opts = _options(args.set)
    rows: list[dict] = []
    runners = {"air": air, "etth1": etth1, "m4": m4}
    runners |= {key: (lambda o, a, key=key: nab_check(key, o, a)) for key in CHECKS}
    for name in args.sets.split(","):
        rows += runners[name](opts, args)
    print(
        "\n| set | K | model | best baseline | ratio | winner | baseline part alone | "
        "LSTM alone | lookback | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        key = r["metric"]
        model = r["model"][key] if isinstance(r["model"], dict) else r["model"]
        base = r[r["best_baseline"]]
        base = base[key] if isinstance(base, dict) else base
        print(
            f"| {r['set']} | {r['K']} | {key} {model:.4f} | {r['best_baseline']} {base:.4f} | "
            f"{r['ratio']:.3f} | {r['winner']} | {r.get('baseline_part_alone', '-')} | "
            f"{r.get('lstm_alone', '-')} | {r['lookback']} | {r['seconds']} |"
        )
    geo = math.exp(sum(math.log(r["ratio"]) for r in rows) / len(rows))
    print(f"\naggregate (geometric mean of model / best baseline): {geo:.4f}  options: {opts}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"options": opts, "rows": rows, "aggregate": geo}, indent=1)
        )


if __name__ == "__main__":
    main()
