"""Peers: seconds per training epoch, and test error, of seqshape against a plain PyTorch loop,
darts (RNNModel, BlockRNNModel) and neuralforecast (LSTM), each peer in its own venv.

    bash bench/peers/setup.sh                                   # once: the peers' venvs
    .venv/bin/python bench/bench_peers.py --threads 2 [--epochs 5] [--rounds 2]

The same univariate series for everyone: ETTh1 target OT, standardised with the training part's
statistics, trained on the first 12 months (rows [0, 8640), bench/peers/ettdata.py, the split of
bench/etth1_results.py), lookback 48, horizon 12, LSTM hidden 64, 2 layers, batch 64, float32,
8,581 training windows an epoch (stride 1). Every contender runs in a fresh process with the same
thread count and the denormal flush on, trains ``--epochs`` epochs; the first is the warm-up, the
others are timed (median reported). Then each forecasts the same 2,869 test windows (forecast rows
in [11520, 14400)); MSE / MAE on the standardised scale.

Contenders, and what an epoch is for each:
- ``floor``: a hand-written loop doing seqshape's computation (teacher-forced LSTM over the
  48 + 11 steps, Linear head on the last 12 outputs, each window shifted by its last history
  value, AdamW, gradient clipping), batches gathered by one fancy index; autoregressive test.
- ``seqshape``: ``seqshape.api.forecaster.Forecaster`` (autoregressive through the LSTM,
  window_norm "last"), no validation part, so the loop runs no validation.
- ``darts-rnn``: darts RNNModel(model="LSTM", training_length=59): the same 59-step teacher-forced
  pass (its loss covers all 59 one-step predictions); autoregressive test.
- ``darts-block``: darts BlockRNNModel(model="LSTM"): 48 steps, its last 12 outputs each through
  a Linear to one value (no shift by the window's level).
- ``nf-lstm``: neuralforecast LSTM (encoder over the 48 steps, MLP decoder on the last 12
  outputs, hidden 64 for both), MSE loss, no scaler; it samples 64 random windows per step, so an
  "epoch" here is ceil(8581 / 64) = 135 steps.
Lightning peers: no progress bar, logger, model summary, checkpoints or validation.

Prints a markdown table and one JSON line, and writes ``--out`` (bench/results/peers.json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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

CONTENDERS = (
    "floor",
    "seqshape",
    "darts-rnn",
    "floor-direct",
    "seqshape-direct",
    "darts-block",
    "nf-lstm",
)
# LSTM steps per training window: teacher forcing over N + K - 1, or reading the N history steps
STEPS = {
    "floor": "N+K-1",
    "seqshape": "N+K-1",
    "darts-rnn": "N+K-1",
    "floor-direct": "N",
    "seqshape-direct": "N",
    "darts-block": "N",
    "nf-lstm": "N",
}
VENVS = {
    "darts-rnn": PEERS_DIR / ".venv-darts",
    "darts-block": PEERS_DIR / ".venv-darts",
    "nf-lstm": PEERS_DIR / ".venv-neuralforecast",
}


# -- the two contenders that run in the project's venv -------------------------------------------


def run_floor(args, data: ettdata.OTSeries, direct: bool) -> dict:
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    N, K, B = args.lookback, args.horizon, args.batch
    starts = ettdata.window_starts(0, ettdata.TRAIN_END, N, K)
    hist, fut = ettdata.windows(data.z, starts, N, K)
    # (W, N) ++ (W, K) -> (W, N+K): every training window, one tensor
    seqs = torch.from_numpy(np.concatenate([hist, fut], axis=1))
    W = len(seqs)
    lstm = nn.LSTM(1, args.hidden, args.layers, batch_first=True)
    head = nn.Linear(args.hidden, K if direct else 1)
    params = [*lstm.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    epoch_s = []
    for epoch in range(args.epochs):
        t = time.perf_counter()
        order = torch.from_numpy(np.random.default_rng(args.seed + epoch).permutation(W))
        total = 0.0
        for b in range(0, W, B):
            s = seqs[order[b : b + B]]
            # (B, 1): each window's last history value, removed before the LSTM
            level = s[:, N - 1 : N]
            if direct:
                # (B, N) -> (B, N, 1) -> (B, N, H) -> last step (B, H) -> (B, K)
                out, _ = lstm((s[:, :N] - level).unsqueeze(-1))
                pred = head(out[:, -1]) + level
            else:
                # (B, N+K) -> (B, N+K-1, 1): true values as inputs (teacher forcing)
                out, _ = lstm((s[:, :-1] - level).unsqueeze(-1))
                # (B, N+K-1, H) -> (B, K): outputs N-1 .. N+K-2 predict the K future values
                pred = head(out[:, N - 1 :]).squeeze(-1) + level
            loss = F.mse_loss(pred, s[:, N:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            total += loss.item()
        epoch_s.append(time.perf_counter() - t)
    _, th, truth = ettdata.test_windows(data.z, N, K)
    preds = []
    with torch.no_grad():
        for b in range(0, len(th), 512):
            h = torch.from_numpy(th[b : b + 512])
            level = h[:, -1:]
            # (B, N) -> (B, N, 1) -> outputs (B, N, H) and the carried state
            out, state = lstm((h - level).unsqueeze(-1))
            y = head(out[:, -1])
            if direct:  # (B, K) at once
                preds.append((y + level).numpy())
                continue
            steps = [y]
            for _ in range(K - 1):
                # (B, 1) -> (B, 1, 1): the prediction is the next input, state carried
                out, state = lstm(y.unsqueeze(1), state)
                y = head(out[:, -1])
                steps.append(y)
            # K x (B, 1) -> (B, K)
            preds.append((torch.cat(steps, dim=1) + level).numpy())
    return {
        "epoch_seconds": epoch_s,
        "batches_per_epoch": -(-W // B),
        "n_train_windows": W,
        "test": ettdata.errors(np.concatenate(preds), truth),
        "n_test_windows": len(truth),
        "n_params": sum(p.numel() for p in params),
        "config": {
            "strategy": "direct" if direct else "autoregressive",
            "window_norm": "last",
            "optimizer": "AdamW lr 1e-3 wd 1e-4",
            "grad_clip": 1.0,
        },
    }


def run_seqshape(args, data: ettdata.OTSeries, direct: bool) -> dict:
    from seqshape import __version__
    from seqshape.api.forecaster import Forecaster, SeriesData, make_windows

    N, K = args.lookback, args.horizon
    fc = Forecaster(
        lookback=N,
        horizon=K,
        hidden_size=args.hidden,
        num_layers=args.layers,
        window_norm="last",
        strategy="direct" if direct else "autoregressive",
        batch_size=args.batch,
        epochs=args.epochs,
        patience=0,  # never stop early: every contender trains the same number of epochs
        seed=args.seed,
        threads=args.threads,
        progress=False,
    )
    series = SeriesData(target=data.raw.astype(np.float32), name="OT")
    # val_end == train_end: no validation windows, so the loop validates nothing
    fc.fit(series, train_end=ettdata.TRAIN_END, val_end=ettdata.TRAIN_END)
    ends = [row["seconds"] for row in fc.train_result.history]
    epoch_s = [b - a for a, b in zip([0.0, *ends[:-1]], ends)]
    win = make_windows([(ettdata.VAL_END, ettdata.TEST_END)], N, K, 1)
    starts, _, truth = ettdata.test_windows(data.z, N, K)
    if not np.array_equal(np.asarray(win.start), starts):
        raise SystemExit("seqshape's test windows differ from bench/peers/ettdata.py's")
    point = fc.predict_windows([series], win)["point"][..., 0]  # (W, K), original units
    import torch

    return {
        "epoch_seconds": epoch_s,
        "batches_per_epoch": -(-int(fc.metrics["n_train_windows"]) // args.batch),
        "n_train_windows": int(fc.metrics["n_train_windows"]),
        "test": ettdata.errors((point - data.mean) / data.std, truth),
        "n_test_windows": len(truth),
        "n_params": sum(p.numel() for p in fc.net.parameters()),
        "config": {**fc.config.to_dict(), **fc.train_config.to_dict()},
        "versions": {"seqshape": __version__, "torch": torch.__version__},
        "threads_in_force": torch.get_num_threads(),
    }


def run_one(args) -> None:
    data = ettdata.load_ot(args.csv)
    t = time.perf_counter()
    direct = args.contender.endswith("-direct")
    if args.contender.startswith("floor"):
        out = run_floor(args, data, direct)
    else:
        out = run_seqshape(args, data, direct)
    out.update(contender=args.contender, wall_seconds=time.perf_counter() - t)
    Path(args.json_out).write_text(json.dumps(out))


# -- the driver --------------------------------------------------------------------------------


def launch(name: str, args, tmp: Path, seed: int) -> dict:
    """Run one contender in a fresh process with the thread count set; -> its JSON (or an error)."""
    out = tmp / f"{name}-{seed}.json"
    log = tmp / f"{name}-{seed}.log"
    common = [
        f"--lookback={args.lookback}",
        f"--horizon={args.horizon}",
        f"--hidden={args.hidden}",
        f"--layers={args.layers}",
        f"--batch={args.batch}",
        f"--epochs={args.epochs}",
        f"--threads={args.threads}",
        f"--seed={seed}",
    ] + ([f"--csv={args.csv}"] if args.csv else [])
    if name in VENVS:
        py = VENVS[name] / "bin" / "python"
        if not py.exists():
            return {"contender": name, "error": f"{py} missing: run `bash bench/peers/setup.sh`"}
        cmd = [str(py), str(PEERS_DIR / "run_peer.py"), f"--peer={name}", "--mode=epoch"]
        cmd += [f"--out={out}", *common]
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
        tail = log.read_text()[-2000:]
        return {"contender": name, "error": f"exit {rc}", "log_tail": tail}
    res = json.loads(out.read_text())
    res["process_seconds"] = wall
    return res


def summarise(runs: list[dict]) -> dict:
    """Pool the timed epochs (all but each run's first) of a contender's rounds (seeds)."""
    timed = [s for r in runs for s in r["epoch_seconds"][1:]]
    first = runs[0]
    mses = [r["test"]["mse"] for r in runs]
    maes = [r["test"]["mae"] for r in runs]
    return {
        "epoch_median_s": statistics.median(timed),
        "epoch_min_s": min(timed),
        "epoch_max_s": max(timed),
        "timed_epochs": timed,
        "warmup_epochs": [r["epoch_seconds"][0] for r in runs],
        "batches_per_epoch": first.get("batches_per_epoch"),
        "test_mse": statistics.mean(mses),
        "test_mae": statistics.mean(maes),
        "test_mse_per_seed": mses,
        "test_mae_per_seed": maes,
        "lstm_steps_per_window": STEPS[first["contender"]],
        "n_test_windows": first["n_test_windows"],
        "n_params": first.get("n_params"),
        "config": first.get("config"),
        "versions": first.get("versions"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--csv", default=None, help="ETTh1.csv (default: ../shared/data/forecasting)")
    ap.add_argument("--lookback", type=int, default=48)
    ap.add_argument("--horizon", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=5, help="per run; the first is the warm-up")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="runs of every contender, interleaved; round r uses seed --seed + r",
    )
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--out", default=str(HERE / "results" / "peers.json"))
    ap.add_argument(
        "--contender",
        choices=("floor", "seqshape", "floor-direct", "seqshape-direct"),
        help=argparse.SUPPRESS,
    )
    ap.add_argument("--json-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.contender:
        run_one(args)
        return
    if args.epochs < 2:
        raise SystemExit("--epochs: expected at least 2 (the first is the warm-up)")
    names = [c for c in args.contenders.split(",") if c]
    for c in names:
        if c not in CONTENDERS:
            raise SystemExit(f"--contenders: unknown {c!r}; expected some of {CONTENDERS}")
    from seqshape.data.series import ett_split

    split = (ettdata.TRAIN_ROWS, ettdata.VAL_ROWS, ettdata.TEST_ROWS)
    if tuple(ett_split()) != split:
        raise SystemExit(f"ettdata's split {split} differs from seqshape's {ett_split()}")

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    runs: dict[str, list[dict]] = {c: [] for c in names}
    errors: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        for r in range(args.rounds):
            for c in names:
                res = launch(c, args, Path(tmp), args.seed + r)
                if "error" in res:
                    errors[c] = res
                    print(f"{c}: {res['error']}\n{res.get('log_tail', '')}", file=sys.stderr)
                    continue
                runs[c].append(res)
                med = statistics.median(res["epoch_seconds"][1:])
                print(
                    f"round {r + 1} {c}: epochs {[round(s, 2) for s in res['epoch_seconds']]} s, "
                    f"median timed {med:.2f} s, test MSE {res['test']['mse']:.4f}, "
                    f"loadavg {os.getloadavg()[0]:.2f}",
                    file=sys.stderr,
                )
    total_s = time.perf_counter() - t0
    load_after = os.getloadavg()
    summary = {c: summarise(rs) for c, rs in runs.items() if rs}
    med = {c: s["epoch_median_s"] for c, s in summary.items()}
    for c, s in summary.items():
        floor = "floor-direct" if STEPS[c] == "N" else "floor"
        s["ratio_to_seqshape"] = med[c] / med["seqshape"] if "seqshape" in med else None
        s["ratio_to_seqshape_direct"] = (
            med[c] / med["seqshape-direct"] if "seqshape-direct" in med else None
        )
        s["ratio_to_floor"] = med[c] / med[floor] if floor in med else None
        s["floor"] = floor

    print(
        f"\nETTh1 OT, lookback {args.lookback}, horizon {args.horizon}, hidden {args.hidden}, "
        f"{args.layers} layers, batch {args.batch}, {args.threads} thread(s), "
        f"{args.epochs} epochs ({args.epochs - 1} timed) x {args.rounds} round(s)\n"
    )
    print(
        "| contender | LSTM steps / window | s / epoch (median) | min–max | / seqshape "
        "| / seqshape-direct | / its floor | test MSE | test MAE |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    x = lambda v: f"{v:.2f}×" if v else "—"  # noqa: E731
    for c, s in summary.items():
        print(
            f"| {c} | {STEPS[c]} | {s['epoch_median_s']:.2f} | "
            f"{s['epoch_min_s']:.2f}–{s['epoch_max_s']:.2f} | {x(s['ratio_to_seqshape'])} | "
            f"{x(s['ratio_to_seqshape_direct'])} | {x(s['ratio_to_floor'])} | "
            f"{s['test_mse']:.4f} | {s['test_mae']:.4f} |"
        )
    targets = {}
    for ours in ("seqshape", "seqshape-direct"):
        if ours not in med:
            continue
        for c in ("darts-rnn", "darts-block", "nf-lstm"):
            if c in med:
                targets[f"{ours} faster than {c}"] = med[c] > med[ours]
        floor = summary[ours]["floor"]
        if floor in med:
            targets[f"{ours} / {floor} <= 1.05"] = med[ours] / med[floor] <= 1.05
    print()
    for k, v in targets.items():
        print(f"- {k}: {'met' if v else 'NOT met'}")
    print(f"\ntotal {total_s:.0f} s, loadavg before {load_before}, after {load_after}")
    record = {
        "bench": "peers",
        "args": {k: v for k, v in vars(args).items() if k not in ("contender", "json_out")},
        "summary": summary,
        "targets": targets,
        "runs": runs,
        "errors": errors,
        "total_seconds": total_s,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "python": sys.version.split()[0],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: record[k] for k in ("bench", "summary", "targets", "total_seconds")}))


if __name__ == "__main__":
    main()
