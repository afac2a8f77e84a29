"""One peer contender of the seqshape peer benches, run inside that peer's own venv.

    bench/peers/.venv-darts/bin/python bench/peers/run_peer.py --peer darts-block --mode epoch ...
    bench/peers/.venv-neuralforecast/bin/python bench/peers/run_peer.py --peer nf-lstm --mode tta ...

Imports nothing from seqshape (only ettdata.py beside it). Launched by bench/bench_peers.py
(``--mode epoch``: matched sizes, seconds per epoch and test error after E epochs) and by
bench/bench_time_to_accuracy.py (``--mode tta``: the library's defaults, weight snapshots at fixed
wall-clock marks within a budget, each snapshot's test error measured after training). Writes one
JSON object to ``--out``.

Peers: ``darts-rnn`` (darts RNNModel, LSTM), ``darts-block`` (darts BlockRNNModel, LSTM),
``nf-lstm`` (neuralforecast LSTM). In both modes the Lightning trainer gets no progress bar, no
logger, no model summary, no checkpointing; in ``epoch`` mode also no validation (darts validates
only when given a validation series; neuralforecast gets ``limit_val_batches=0``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ettdata  # noqa: E402

PEERS = ("darts-rnn", "darts-block", "nf-lstm")


def make_clock_callback(pl, marks: list[float] | None = None, budget: float | None = None):
    """A Lightning callback: batch/epoch timestamps, weight snapshots at time marks, a budget."""

    # the start time lives in this closure, not on the instance: neuralforecast trains deep copies
    # of its models (callbacks included), and the copy must see the start set before fit
    start = [0.0]

    class Clock(pl.Callback):
        @property
        def t0(self) -> float:
            return start[0]

        @t0.setter
        def t0(self, value: float) -> None:
            start[0] = value

        def __init__(self) -> None:
            self.batch_ends: list[float] = []
            self.epoch_starts: list[float] = []
            self.epoch_ends: list[float] = []
            self.marks = sorted(marks or [])
            self.snapshots: list[dict] = []
            self.stopped_by_budget = False

        def snapshot(self, trainer, pl_module, t: float) -> None:
            state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            self.snapshots.append(
                {
                    "t": t,
                    "epoch": int(trainer.current_epoch),
                    "step": int(trainer.global_step),
                    "state": state,
                }
            )

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.epoch_starts.append(time.perf_counter())

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.epoch_ends.append(time.perf_counter())

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            now = time.perf_counter()
            self.batch_ends.append(now)
            t = now - self.t0
            if self.marks and t >= self.marks[0]:
                while self.marks and t >= self.marks[0]:
                    self.marks.pop(0)
                self.snapshot(trainer, pl_module, t)
            if budget is not None and t >= budget:
                self.stopped_by_budget = True
                trainer.should_stop = True

    return Clock()


def trainer_quiet() -> dict:
    return {
        "accelerator": "cpu",
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "logger": False,
        "enable_checkpointing": False,
    }


# -- darts -------------------------------------------------------------------------------------


def build_darts(args, clock, work_dir: str):
    from darts.models import BlockRNNModel, RNNModel

    kw: dict = {
        "work_dir": work_dir,
        "pl_trainer_kwargs": {**trainer_quiet(), "callbacks": [clock]},
    }
    if args.mode == "epoch":
        # matched sizes; optimizer (Adam, lr 1e-3) and loss (MSE) are darts' defaults
        kw.update(
            model="LSTM",
            hidden_dim=args.hidden,
            n_rnn_layers=args.layers,
            batch_size=args.batch,
            n_epochs=args.epochs,
            random_state=args.seed,
        )
        if args.peer == "darts-block":
            return BlockRNNModel(
                input_chunk_length=args.lookback, output_chunk_length=args.horizon, **kw
            )
        # teacher forcing over lookback + horizon - 1 steps, like seqshape's training pass
        return RNNModel(
            input_chunk_length=args.lookback,
            training_length=args.lookback + args.horizon - 1,
            **kw,
        )
    # defaults: only the required arguments, and the LSTM cell (darts' default cell is a vanilla
    # RNN); RNNModel's default training_length (24) is below input_chunk_length and is refused
    kw.update(model="LSTM", random_state=args.seed)
    if args.peer == "darts-block":
        return BlockRNNModel(
            input_chunk_length=args.lookback, output_chunk_length=args.horizon, **kw
        )
    return RNNModel(
        input_chunk_length=args.lookback, training_length=args.lookback + args.horizon - 1, **kw
    )


def darts_defaults_used(model) -> dict:
    keep = (
        "input_chunk_length",
        "output_chunk_length",
        "training_length",
        "model",
        "hidden_dim",
        "n_rnn_layers",
        "batch_size",
        "n_epochs",
        "optimizer_kwargs",
    )
    params = getattr(model, "model_params", {}) or {}
    out = {k: params[k] for k in keep if k in params}
    out["batch_size"] = model.batch_size
    out["n_epochs"] = model.n_epochs
    return {
        k: (v if isinstance(v, int | float | str | type(None)) else repr(v)) for k, v in out.items()
    }


def run_darts(args, data: ettdata.OTSeries, clock, work_dir: str):
    from darts import TimeSeries

    model = build_darts(args, clock, work_dir)
    # (T_train, 1) float32: darts casts the model to the series' dtype
    series = TimeSeries.from_values(data.z[: ettdata.TRAIN_END].reshape(-1, 1))
    _, hist, truth = ettdata.test_windows(data.z, args.lookback, args.horizon)
    tests = [TimeSeries.from_values(h.reshape(-1, 1)) for h in hist]

    def predict() -> np.ndarray:
        preds = model.predict(
            n=args.horizon, series=tests, batch_size=1024, verbose=False, show_warnings=False
        )
        # W x (K, 1) -> (W, K)
        return np.stack([p.values(copy=False)[:, 0] for p in preds]).astype(np.float64)

    clock.t0 = time.perf_counter()
    model.fit(series, verbose=False)
    fit_s = time.perf_counter() - clock.t0
    return {
        "fit_seconds": fit_s,
        "predict": predict,
        "load": model.model.load_state_dict,
        "truth": truth,
        "module": model.model,
        "defaults": darts_defaults_used(model),
        "library": {"darts": version("darts")},
    }


# -- neuralforecast ----------------------------------------------------------------------------


def run_nf(args, data: ettdata.OTSeries, clock, n_batches: int):
    import pandas as pd
    from neuralforecast import NeuralForecast
    from neuralforecast.losses.pytorch import MSE
    from neuralforecast.models import LSTM

    kw: dict = {**trainer_quiet(), "callbacks": [clock], "random_seed": args.seed}
    if args.mode == "epoch":
        kw.update(
            input_size=args.lookback,
            encoder_n_layers=args.layers,
            encoder_hidden_size=args.hidden,
            decoder_hidden_size=args.hidden,
            loss=MSE(),
            windows_batch_size=args.batch,
            max_steps=args.epochs * n_batches,
            scaler_type="identity",  # the series is standardised already, as for everyone
            learning_rate=1e-3,
            limit_val_batches=0,
        )
        lookback = args.lookback
    else:
        lookback = 3 * args.horizon  # input_size=-1 means 3 * h
    model = LSTM(h=args.horizon, **kw)
    if args.mode != "epoch":
        lookback = int(model.input_size)
    nf = NeuralForecast(models=[model], freq="h")
    dates = pd.to_datetime(pd.Series(data.dates))
    train = pd.DataFrame(
        {
            "unique_id": "OT",
            "ds": dates[: ettdata.TRAIN_END].to_numpy(),
            "y": data.z[: ettdata.TRAIN_END],
        }
    )
    starts, hist, truth = ettdata.test_windows(data.z, lookback, args.horizon)
    W = len(starts)
    # (W, lookback): the dates of each test window's history rows
    date_idx = starts[:, None] + np.arange(lookback)[None, :]
    test_df = pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(W), lookback),
            "ds": dates.to_numpy()[date_idx.ravel()],
            "y": hist.ravel(),
        }
    )

    def predict() -> np.ndarray:
        out = nf.predict(df=test_df)
        out = out.sort_values(["unique_id", "ds"])
        # (W·K,) -> (W, K)
        return out["LSTM"].to_numpy(np.float64).reshape(W, args.horizon)

    clock.t0 = time.perf_counter()
    nf.fit(df=train, val_size=0)
    fit_s = time.perf_counter() - clock.t0
    fitted = nf.models[0]
    # NeuralForecast trains deep copies of the models it was given: read the copy's callback
    clock = next(cb for cb in fitted.trainer_kwargs["callbacks"] if type(cb) is type(clock))
    defaults = {
        k: getattr(fitted, k, None)
        for k in (
            "h",
            "input_size",
            "encoder_hidden_size",
            "encoder_n_layers",
            "decoder_hidden_size",
            "decoder_layers",
            "max_steps",
            "learning_rate",
            "batch_size",
            "windows_batch_size",
            "scaler_type",
        )
    }
    defaults["loss"] = type(fitted.loss).__name__
    return {
        "fit_seconds": fit_s,
        "predict": predict,
        "load": fitted.load_state_dict,
        "truth": truth,
        "module": fitted,
        "defaults": defaults,
        "library": {"neuralforecast": version("neuralforecast")},
        "clock": clock,
    }


# -- modes -------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer", choices=PEERS, required=True)
    ap.add_argument("--mode", choices=("epoch", "tta"), required=True)
    ap.add_argument("--csv", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lookback", type=int, default=48)
    ap.add_argument("--horizon", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, default=120.0)
    ap.add_argument("--marks", default="", help="comma-separated seconds for weight snapshots")
    args = ap.parse_args()
    args.out = str(Path(args.out).resolve())

    import torch

    torch.set_flush_denormal(True)  # as seqshape does: the same process settings for everyone
    torch.set_num_threads(args.threads)
    import pytorch_lightning as pl

    data = ettdata.load_ot(args.csv)
    n_train = len(ettdata.window_starts(0, ettdata.TRAIN_END, args.lookback, args.horizon))
    n_batches = -(-n_train // args.batch)
    marks = [float(m) for m in args.marks.split(",") if m] if args.mode == "tta" else []
    clock = make_clock_callback(pl, marks, args.budget if args.mode == "tta" else None)
    work_dir = tempfile.mkdtemp(prefix="peer-bench-")  # darts' work_dir; Lightning's cwd files
    os.chdir(work_dir)
    try:
        if args.peer.startswith("darts"):
            run = run_darts(args, data, clock, work_dir)
        else:
            run = run_nf(args, data, clock, n_batches)
        result = measure(args, run, run.get("clock", clock), n_batches, n_train)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    Path(args.out).write_text(json.dumps(result))


def measure(args, run: dict, clock, n_batches: int, n_train: int) -> dict:
    """Epoch times and test error (epoch mode), or each snapshot's test error (tta mode)."""
    import torch

    result: dict = {
        "contender": args.peer,
        "mode": args.mode,
        "threads": torch.get_num_threads(),
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "pytorch-lightning": version("pytorch-lightning"),
            **run["library"],
        },
        "args": vars(args),
        "fit_seconds": run["fit_seconds"],
        "config": run["defaults"],
        "n_params": sum(p.numel() for p in run["module"].parameters()),
        "loadavg": os.getloadavg(),
    }
    truth = run["truth"]
    if args.mode == "epoch":
        # epoch k (1-based) ends at the last batch of that epoch; the first is the warm-up
        if args.peer == "nf-lstm":
            # one Lightning "epoch" is one step here (one series): group steps by n_batches
            ends = [clock.t0] + [
                clock.batch_ends[k * n_batches - 1] for k in range(1, args.epochs + 1)
            ]
            epoch_s = [b - a for a, b in zip(ends[:-1], ends[1:])]
        else:
            ends = clock.epoch_ends
            # epoch k: from the end of epoch k-1 (or the fit call) to the end of epoch k, so
            # Lightning's work between epochs is counted
            prev = [clock.t0] + ends[:-1]
            epoch_s = [b - a for a, b in zip(prev, ends)]
        result.update(
            epoch_seconds=epoch_s,
            batches=len(clock.batch_ends),
            batches_per_epoch=len(clock.batch_ends) / max(args.epochs, 1),
            n_train_windows_available=n_train,
            test=ettdata.errors(run["predict"](), truth),
            n_test_windows=len(truth),
        )
    else:
        snaps = clock.snapshots
        t_end = run["fit_seconds"]
        final_state = {k: v.detach().clone() for k, v in run["module"].state_dict().items()}
        rows = []
        for s in snaps:
            run["load"](s["state"])
            rows.append(
                {k: s[k] for k in ("t", "epoch", "step")} | ettdata.errors(run["predict"](), truth)
            )
        run["load"](final_state)
        final = {"t": t_end, "epoch": None, "step": None} | ettdata.errors(run["predict"](), truth)
        result.update(
            snapshots=rows,
            final=final,
            stopped_by_budget=clock.stopped_by_budget,
            batches=len(clock.batch_ends),
            epochs_run=len(clock.epoch_ends),
            n_test_windows=len(truth),
        )
    return result


if __name__ == "__main__":
    main()
