"""Time to accuracy on ETTh1 OT, horizon 24: each library with its *defaults*, one wall-clock budget.

    bash bench/peers/setup.sh                                   # once: the peers' venvs
    .venv/bin/python bench/bench_time_to_accuracy.py --threads 2 [--budget 120]

Per epoch a library can only win by having no overhead; over a whole training run its defaults
(epochs, batch size, learning-rate schedule, early stopping, input normalisation) decide how soon a
user holds a good model. Each contender gets only the arguments it cannot do without:
- ``seqshape``: ``Forecaster(horizon=24)`` (lookback 48, H 64, 2 layers, batch 64, AdamW 1e-3,
  window_norm "last", 20 epochs, validation every epoch with LR halving and early stopping on it,
  best weights restored), fitted on train with the validation part as its default split uses it.
- ``darts-rnn``: ``RNNModel(input_chunk_length=48, model="LSTM", training_length=71)``: darts'
  default cell is a vanilla RNN and its default training_length (24) is below the input length.
- ``darts-block``: ``BlockRNNModel(input_chunk_length=48, output_chunk_length=24, model="LSTM")``.
- ``nf-lstm``: ``LSTM(h=24)`` (input_size 3·h = 72, H 128, MAE loss, robust scaler, 1,000 steps).
No one gets a validation series except seqshape, whose default split keeps one (the peers' defaults
have none). Progress bars, loggers and checkpoints are off for all.

Every process trains on the first 12 months of the standardised series (bench/peers/ettdata.py)
and copies its weights when its clock crosses each of the ``--marks`` (seconds since its ``fit``
call began; seqshape can only be copied at the end of an epoch, when it validates) and stops at the
budget. After training, each copy and the final model forecast the same 2,857 test windows (the
same forecast origins in [11520, 14400), each library reading the history length it asks for);
MSE / MAE on the standardised scale. The target is the seasonal-naive (24 h) MSE on those windows.
Time to target is the first mark whose copy beats it (an upper bound at the marks' resolution).

Prints a markdown table and one JSON line, writes ``--out`` (bench/results/time_to_accuracy.json).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PEERS_DIR = HERE / "peers"
sys.path.insert(0, str(PEERS_DIR))
import ettdata  # noqa: E402

CONTENDERS = ("seqshape", "darts-rnn", "darts-block", "nf-lstm")
VENVS = {
    "darts-rnn": PEERS_DIR / ".venv-darts",
    "darts-block": PEERS_DIR / ".venv-darts",
    "nf-lstm": PEERS_DIR / ".venv-neuralforecast",
}
MARKS = "2,4,6,8,10,15,20,25,30,40,50,60,75,90,105,120,150,180,240"


class _OverBudget(Exception):
    pass


def run_seqshape(args, data: ettdata.OTSeries) -> dict:
    import torch

    from seqshape import __version__
    from seqshape.api.forecaster import Forecaster, SeriesData, make_windows

    marks = sorted(float(m) for m in args.marks.split(",") if m)
    clock = {"t0": 0.0, "snapshots": [], "epochs": 0}

    class Clocked(Forecaster):
        """The default Forecaster; copies its weights at the marks when it validates."""

        def _val_errors(self, net, scaled, win, batch_size=512):
            t = time.perf_counter() - clock["t0"]
            clock["epochs"] += 1
            if marks and t >= marks[0]:
                while marks and t >= marks[0]:
                    marks.pop(0)
                state = copy.deepcopy(net.state_dict())
                clock["snapshots"].append({"t": t, "epoch": clock["epochs"], "state": state})
            if t >= args.budget:
                raise _OverBudget
            return super()._val_errors(net, scaled, win, batch_size)

    fc = Clocked(horizon=args.horizon, threads=args.threads)
    series = SeriesData(target=data.raw.astype(np.float32), name="OT")
    stopped = False
    clock["t0"] = time.perf_counter()
    try:
        fc.fit(series, train_end=ettdata.TRAIN_END, val_end=ettdata.VAL_END)
    except _OverBudget:
        stopped = True
    fit_s = time.perf_counter() - clock["t0"]
    N = fc.config.lookback
    win = make_windows([(ettdata.VAL_END, ettdata.TEST_END)], N, args.horizon, 1)
    starts, _, truth = ettdata.test_windows(data.z, N, args.horizon)
    if not np.array_equal(np.asarray(win.start), starts):
        raise SystemExit("seqshape's test windows differ from bench/peers/ettdata.py's")

    def test_errors() -> dict:
        point = fc.predict_windows([series], win)["point"][..., 0]  # (W, K), original units
        return ettdata.errors((point - data.mean) / data.std, truth)

    final_state = copy.deepcopy(fc.net.state_dict())
    rows = []
    for s in clock["snapshots"]:
        fc.net.load_state_dict(s["state"])
        rows.append({"t": s["t"], "epoch": s["epoch"], "step": None} | test_errors())
    fc.net.load_state_dict(final_state)
    final = {"t": fit_s, "epoch": None, "step": None} | test_errors()
    history = fc.train_result.history if fc.train_result else []
    return {
        "contender": "seqshape",
        "versions": {"seqshape": __version__, "torch": torch.__version__},
        "threads": torch.get_num_threads(),
        "fit_seconds": fit_s,
        "config": {**fc.config.to_dict(), **fc.train_config.to_dict()},
        "n_params": sum(p.numel() for p in fc.net.parameters()),
        "snapshots": rows,
        "final": final,
        "stopped_by_budget": stopped,
        "epochs_run": clock["epochs"],
        "best_epoch": fc.train_result.best_epoch if fc.train_result else None,
        "stopped_early": fc.train_result.stopped_early if fc.train_result else None,
        "own_validation": [
            {k: r.get(k) for k in ("epoch", "seconds", "train_loss", "val_mse", "lr")}
            for r in history
        ],
        "n_test_windows": len(truth),
        "loadavg": os.getloadavg(),
    }


def launch(name: str, args, tmp: Path) -> dict:
    out = tmp / f"{name}.json"
    log = tmp / f"{name}.log"
    common = [
        f"--horizon={args.horizon}",
        f"--threads={args.threads}",
        f"--seed={args.seed}",
        f"--budget={args.budget}",
        f"--marks={args.marks}",
    ] + ([f"--csv={args.csv}"] if args.csv else [])
    if name in VENVS:
        py = VENVS[name] / "bin" / "python"
        if not py.exists():
            return {"contender": name, "error": f"{py} missing: run `bash bench/peers/setup.sh`"}
        cmd = [str(py), str(PEERS_DIR / "run_peer.py"), f"--peer={name}", "--mode=tta"]
        cmd += [f"--out={out}", f"--lookback={args.lookback}", *common]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), f"--contender={name}"]
        cmd += [f"--json-out={out}", *common]
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "SEQSHAPE_THREADS"):
        env[var] = str(args.threads)
    t = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
    wall = time.perf_counter() - t
    if rc != 0 or not out.exists():
        return {"contender": name, "error": f"exit {rc}", "log_tail": log.read_text()[-2000:]}
    res = json.loads(out.read_text())
    res["process_seconds"] = wall
    return res


def summarise(res: dict, targets: dict[str, float], budget: float) -> dict:
    """Per target: the first time a copy beats it, and the time from which every later copy
    within the budget (and the final model) does; the best copy within the budget; the final."""
    points = sorted([*res["snapshots"], res["final"]], key=lambda p: p["t"])
    within = [p for p in points if p["t"] <= budget]
    best = min(within, key=lambda p: p["mse"]) if within else None
    times = {}
    for name, target in targets.items():
        first = next((p["t"] for p in within if p["mse"] <= target), None)
        stays = None
        for p in reversed(within):
            if p["mse"] > target:
                break
            stays = p["t"]
        if res["final"]["mse"] > target:
            stays = None  # the model a user is handed at the end does not beat it
        times[name] = {"first_s": first, "stays_from_s": stays}
    return {
        "time_to": times,
        "best_mse_within_budget": best["mse"] if best else None,
        "best_at_s": best["t"] if best else None,
        "final_mse": res["final"]["mse"],
        "final_mae": res["final"]["mae"],
        "fit_seconds": res["fit_seconds"],
        "stopped_by_budget": res["stopped_by_budget"],
        "epochs_run": res.get("epochs_run"),
        "batches": res.get("batches"),
        "curve": [(round(p["t"], 2), round(p["mse"], 5)) for p in points],
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--csv", default=None, help="ETTh1.csv (default: ../shared/data/forecasting)")
    ap.add_argument("--horizon", type=int, default=24)
    ap.add_argument("--lookback", type=int, default=48, help="darts' required input_chunk_length")
    ap.add_argument("--budget", type=float, default=120.0, help="seconds of training per contender")
    ap.add_argument("--marks", default=MARKS, help="seconds at which weights are copied")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--out", default=str(HERE / "results" / "time_to_accuracy.json"))
    ap.add_argument(
        "--resummarise", metavar="JSON", help="recompute targets and table from a stored record"
    )
    ap.add_argument("--contender", choices=("seqshape",), help=argparse.SUPPRESS)
    ap.add_argument("--json-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.marks = ",".join(m for m in args.marks.split(",") if m and float(m) <= args.budget)
    data = ettdata.load_ot(args.csv)
    if args.resummarise:
        report(json.loads(Path(args.resummarise).read_text()), data, args.out)
        return
    if args.contender:
        Path(args.json_out).write_text(json.dumps(run_seqshape(args, data)))
        return
    names = [c for c in args.contenders.split(",") if c]
    for c in names:
        if c not in CONTENDERS:
            raise SystemExit(f"--contenders: unknown {c!r}; expected some of {CONTENDERS}")

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    results, errors = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-tta-") as tmp:
        for c in names:
            res = launch(c, args, Path(tmp))
            if "error" in res:
                errors[c] = res
                print(f"{c}: {res['error']}\n{res.get('log_tail', '')}", file=sys.stderr)
                continue
            results[c] = res
            print(
                f"{c}: fit {res['fit_seconds']:.1f} s, final test MSE {res['final']['mse']:.4f}, "
                f"process {res['process_seconds']:.0f} s, loadavg {os.getloadavg()[0]:.2f}",
                file=sys.stderr,
            )
    total_s = time.perf_counter() - t0
    load_after = os.getloadavg()
    record = {
        "bench": "time_to_accuracy",
        "args": {k: v for k, v in vars(args).items() if k not in ("contender", "json_out")},
        "results": results,
        "errors": errors,
        "total_seconds": total_s,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }
    report(record, data, args.out)


def report(record: dict, data: ettdata.OTSeries, out: str) -> None:
    """Targets, summary and table from the contenders' results; write ``out``."""
    a = record["args"]
    K, budget = a["horizon"], a["budget"]
    _, hist, truth = ettdata.test_windows(data.z, 48, K)
    baselines = {
        "seasonal_naive": ettdata.errors(ettdata.seasonal_naive(hist, K), truth),
        "linear": ettdata.errors(ettdata.linear_baseline(data.z, 48, K, hist), truth),
    }
    targets = {k: v["mse"] for k, v in baselines.items()}
    summary = {c: summarise(r, targets, budget) for c, r in record["results"].items()}
    print(
        f"\nETTh1 OT, horizon {K}, defaults, budget {budget:.0f} s, {a['threads']} thread(s), "
        f"{len(truth)} test windows; targets: seasonal naive test MSE "
        f"{targets['seasonal_naive']:.4f}, linear (48 lags, least squares) {targets['linear']:.4f}\n"
    )
    print(
        "| contender | fit s | stopped by | s-naive: first reached / held from, s "
        "| linear: first reached / held from, s | best test MSE (at s) | final test MSE "
        "| final MAE |"
    )
    print("|---|---|---|---|---|---|---|---|")

    def when(v) -> str:
        return "—" if v is None else f"{v:.1f}"

    for c, s in summary.items():
        cells = [
            f"{when(s['time_to'][t]['first_s'])} / {when(s['time_to'][t]['stays_from_s'])}"
            for t in ("seasonal_naive", "linear")
        ]
        best = (
            f"{s['best_mse_within_budget']:.4f} ({s['best_at_s']:.0f})"
            if s["best_mse_within_budget"] is not None
            else "—"
        )
        print(
            f"| {c} | {s['fit_seconds']:.1f} | {'budget' if s['stopped_by_budget'] else 'itself'} "
            f"| {cells[0]} | {cells[1]} | {best} | {s['final_mse']:.4f} | {s['final_mae']:.4f} |"
        )
    print(
        f"\ntotal {record['total_seconds']:.0f} s, loadavg before {record['loadavg_before']}, "
        f"after {record['loadavg_after']}"
    )
    record = {**record, "baselines": baselines, "summary": summary}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: record[k] for k in ("bench", "baselines", "summary")}))


if __name__ == "__main__":
    main()
