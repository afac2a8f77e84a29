"""Peers on the same M4 Hourly run (issue 15 item 5): neuralforecast LSTM and NHITS, darts
RNNModel, each with its library's defaults, against seqshape's defaults and seasonal naive.
sMAPE, MASE and OWA the competition's way, with fit and predict seconds side by side.

    bash bench/peers/setup.sh                                        # once: the peers' venvs
    .venv/bin/python bench/m4_peers.py --with-seqshape --json bench/results/m4_peers.json

Every peer runs ``bench/peers/m4_peer.py`` in its own venv, one process at a time, on 1 compute
thread (OMP/MKL threads and torch's), and saves its (414, 48) forecasts; they are scored here with
seqshape's own M4 functions (``m4_scores``, ``owa`` against ``naive2``), on the official test file.
``--with-seqshape`` adds ``Forecaster(horizon=48)`` fitted by ``api.m4.fit_m4`` in this process.
Caps: a peer whose default training runs past the bench's budget (about 15 min on 1 thread) is
capped through its own option (``--darts-epochs``: n_epochs; ``--nf-steps``: max_steps), and
``--max-minutes`` stops any Lightning fit by wall clock; the table says which cap was in force.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from seqshape.api.m4 import score_m4
from seqshape.data.m4 import M4Set, read_m4_pair

HERE = Path(__file__).resolve().parent
PEERS_DIR = HERE / "peers"
DATA = HERE.parents[1] / "shared/data/forecasting/m4_hourly"
K, SEASON = 48, 24
PEERS = ("nf-lstm", "nf-nhits", "darts-rnn")
VENVS = {
    "nf-lstm": PEERS_DIR / ".venv-neuralforecast",
    "nf-nhits": PEERS_DIR / ".venv-neuralforecast",
    "darts-rnn": PEERS_DIR / ".venv-darts",
}
NAMES = {
    "nf-lstm": "neuralforecast LSTM",
    "nf-nhits": "neuralforecast NHITS",
    "darts-rnn": "darts RNNModel (LSTM)",
    "seqshape": "seqshape Forecaster",
    "seasonal_naive": "seasonal naive",
    "naive2": "Naive2",
}


def one_thread_env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", SEQSHAPE_THREADS="1")
    return env


def run_peer(peer: str, args, train_csv: Path) -> dict:
    """Fit one peer in its venv; its JSON line plus the (S, K) forecasts and the wall seconds."""
    py = VENVS[peer] / "bin/python"
    if not py.exists():
        return {"peer": peer, "error": f"{py}: no venv (run bash bench/peers/setup.sh)"}
    with tempfile.TemporaryDirectory(prefix="m4-peers-") as tmp:
        out = Path(tmp) / f"{peer}.npy"
        cmd = [str(py), str(PEERS_DIR / "m4_peer.py"), "--peer", peer, "--train", str(train_csv)]
        cmd += ["--out", str(out), "--threads", "1", "--seed", str(args.seed)]
        if args.max_minutes is not None:
            cmd += ["--max-minutes", str(args.max_minutes)]
        if peer == "darts-rnn" and args.darts_epochs is not None:
            cmd += ["--max-epochs", str(args.darts_epochs)]
        if peer.startswith("nf-") and args.nf_steps is not None:
            cmd += ["--max-steps", str(args.nf_steps)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=one_thread_env())
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
            return {"peer": peer, "error": f"exit {proc.returncode}: {tail[0]}", "wall_s": wall}
        line = json.loads(proc.stdout.strip().splitlines()[-1])
        line["pred"] = np.load(out)
    line["wall_s"] = wall
    return line


def run_seqshape(train: M4Set, seed: int) -> dict:
    """``Forecaster(horizon=48)`` with its defaults (1 thread, no progress bar), fitted here."""
    import torch

    from seqshape.api.forecaster import Forecaster
    from seqshape.api.m4 import fit_m4, forecast_m4

    fc = Forecaster(horizon=K, threads=1, progress=False, seed=seed)
    t0 = time.perf_counter()
    fit_m4(fc, train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = np.stack(forecast_m4(fc, train, K))
    predict_s = time.perf_counter() - t0
    settings = {
        "call": "fit_m4(Forecaster(horizon=48), train)",
        "season": fc.meta.get("season"),
        "lookback": fc.config.lookback,
        "start": getattr(fc, "start_", None),
        "best_epoch": fc.metrics.get("best_epoch"),
    }
    return {
        "peer": "seqshape",
        "library": f"seqshape {version('seqshape')}",
        "torch": torch.__version__,
        "threads": 1,
        "seed": seed,
        "fit_s": fit_s,
        "predict_s": predict_s,
        "settings": settings,
        "pred": pred,
    }


def table(rows: list[dict]) -> str:
    head = "| method | library | cap | fit s | predict s | sMAPE | MASE | OWA |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = NAMES.get(r["peer"], r["peer"])
        if "error" in r:
            lines.append(f"| {name} | {r.get('library', '')} | | | | failed: {r['error']} | | |")
            continue
        t = [f"{r[k]:.1f}" if r.get(k) is not None else "—" for k in ("fit_s", "predict_s")]
        lines.append(
            f"| {name} | {r.get('library', '—')} | {r.get('cap', '—')} | {t[0]} | {t[1]} "
            f"| {r['smape']:.3f} | {r['mase']:.3f} | {r['owa']:.3f} |"
        )
    return "\n".join(lines)


def cap_text(line: dict) -> str:
    s, caps = line.get("settings", {}), line.get("caps", {})
    parts = []
    if caps.get("max_epochs") is not None:
        parts.append(f"n_epochs {caps['max_epochs']} (default 100)")
    if caps.get("max_steps") is not None:
        parts.append(f"max_steps {caps['max_steps']} (default 1000)")
    # Lightning's max_time stops a fit at the first step past it; darts' epoch count does not show
    # it (the stopped epoch counts), the fit's duration does
    limit = caps.get("max_minutes")
    if limit is not None and line.get("fit_s", 0.0) >= 60.0 * limit:
        parts.append(f"stopped by max_time ({limit:g} min) after {s.get('steps_run')} steps")
    return "; ".join(parts) or "none"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, of {PEERS}")
    ap.add_argument("--with-seqshape", action="store_true")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--darts-epochs", type=int, default=None, help="cap darts' n_epochs")
    ap.add_argument("--nf-steps", type=int, default=None, help="cap neuralforecast's max_steps")
    ap.add_argument("--max-minutes", type=float, default=15.0, help="per-fit wall-clock stop")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    bad = [p for p in peers if p not in PEERS]
    if bad:
        ap.error(f"--peers: unknown {bad[0]!r}, expected some of {', '.join(PEERS)}")
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", SEQSHAPE_THREADS="1")
    import torch

    torch.set_num_threads(1)

    train_csv = args.data / "Hourly-train.csv"
    train, test = read_m4_pair(train_csv, args.data / "Hourly-test.csv", horizon=K)
    load_before = os.getloadavg()
    runs = []
    for peer in peers:
        line = run_peer(peer, args, train_csv)
        if "error" not in line:
            line["cap"] = cap_text(line)
        print(json.dumps({k: v for k, v in line.items() if k != "pred"}), flush=True)
        runs.append(line)
    if args.with_seqshape:
        line = run_seqshape(train, args.seed)
        line["cap"] = "none (stops itself)"
        print(json.dumps({k: v for k, v in line.items() if k != "pred"}), flush=True)
        runs.append(line)
    # every forecast scored by the project's own M4 code, with the benchmarks beside them
    preds = {i: list(r.pop("pred")) for i, r in enumerate(runs) if "pred" in r}
    scores = score_m4(train, test, preds, SEASON)
    rows = []
    for i, r in enumerate(runs):
        rows.append({**r, **scores.get(i, {})})
    for name in ("seasonal_naive", "naive2"):
        rows.append({"peer": name, "library": "seqshape", **scores[name]})
    print(table(rows))
    machine = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "threads": 1,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(machine))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {"machine": machine, "horizon": K, "season": SEASON, "rows": rows}
        args.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
