"""One peer on M4 Hourly, run inside that peer's own venv: one global model over every series of
the train file, fitted with the library's defaults, then 48 forecasts after each series' end.

    bench/peers/.venv-neuralforecast/bin/python bench/peers/m4_peer.py --peer nf-nhits \\
        --train Hourly-train.csv --out nhits.npy --threads 1 --seed 0

Imports nothing from seqshape (bench/m4_peers.py launches it and scores the forecasts). Saves a
(S, 48) float64 array in the train file's row order to ``--out`` and prints one JSON line:
fit and predict seconds, the settings in force, the library's version.

Each library gets only what it cannot do without (the horizon, and a lookback where one is
required), and the Lightning trainer no progress bar, logger, model summary or checkpoints.
``--max-epochs`` / ``--max-steps`` cap a default that runs longer than the bench allows, through
the library's own ``n_epochs`` / ``max_steps``; ``--max-minutes`` is a wall-clock safety net
(Lightning's ``max_time``), reported when it stopped the fit.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

PEERS = ("nf-lstm", "nf-nhits", "darts-rnn")
HORIZON = 48


def read_train(path: str) -> tuple[list[str], list[np.ndarray]]:
    """Ids and (T_i,) float64 values of an M4 train file: a header row, then one series a row,
    padded with empty cells."""
    ids, values = [], []
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = csv.reader(f)
        next(rows)
        for row in rows:
            if not row:
                continue
            cells = [c for c in row[1:] if c.strip()]
            ids.append(row[0])
            values.append(np.array([float(c) for c in cells], dtype=np.float64))
    return ids, values


def quiet_trainer(max_minutes: float | None) -> dict:
    kw = {
        "accelerator": "cpu",
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "logger": False,
        "enable_checkpointing": False,
    }
    if max_minutes is not None:
        kw["max_time"] = {"minutes": max_minutes}
    return kw


def plain(v):
    return v if isinstance(v, int | float | str | bool | type(None)) else repr(v)


# -- neuralforecast ----------------------------------------------------------------------------


def run_nf(args, ids: list[str], values: list[np.ndarray]) -> dict:
    import pandas as pd
    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM, NHITS

    kw: dict = {**quiet_trainer(args.max_minutes), "random_seed": args.seed}
    if args.max_steps is not None:
        kw["max_steps"] = args.max_steps
    if args.peer == "nf-lstm":
        # input_size is optional for LSTM: its default (-1) means 3 * h
        model = LSTM(h=HORIZON, **kw)
    else:
        # NHITS requires input_size; neuralforecast's examples and docs use input_size = 2 * h
        model = NHITS(h=HORIZON, input_size=2 * HORIZON, **kw)
    # M4 gives no timestamps: integer time stamps 0..T_i-1 with freq=1, as neuralforecast
    # documents for integer-indexed series
    df = pd.DataFrame(
        {
            "unique_id": np.repeat(ids, [v.size for v in values]),
            "ds": np.concatenate([np.arange(v.size) for v in values]),
            "y": np.concatenate(values),
        }
    )
    nf = NeuralForecast(models=[model], freq=1)
    t0 = time.perf_counter()
    nf.fit(df=df)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = nf.predict()
    predict_s = time.perf_counter() - t0
    if "unique_id" not in out.columns:
        out = out.reset_index()
    col = "LSTM" if args.peer == "nf-lstm" else "NHITS"
    by_id = {
        uid: g.sort_values("ds")[col].to_numpy(np.float64) for uid, g in out.groupby("unique_id")
    }
    pred = np.stack([by_id[i] for i in ids])
    fitted = nf.models[0]
    keys = (
        "h",
        "input_size",
        "max_steps",
        "learning_rate",
        "batch_size",
        "windows_batch_size",
        "scaler_type",
        "encoder_hidden_size",
        "encoder_n_layers",
        "decoder_hidden_size",
        "decoder_layers",
        "mlp_units",
        "n_pool_kernel_size",
        "n_freq_downsample",
        "val_check_steps",
        "early_stop_patience_steps",
    )
    # the constructor's arguments, defaults included, as Lightning saved them
    hp = dict(getattr(fitted, "hparams", {}) or {})
    settings = {k: plain(hp.get(k, getattr(fitted, k, None))) for k in keys}
    settings = {k: v for k, v in settings.items() if v is not None}
    # the lookback in force (LSTM's -1 becomes 3 * h)
    settings["input_size"] = int(fitted.input_size)
    settings["loss"] = type(fitted.loss).__name__
    # one (global_step, loss) pair per training step
    steps = getattr(fitted, "train_trajectories", None)
    settings["steps_run"] = len(steps) if steps else None
    return {
        "pred": pred,
        "fit_s": fit_s,
        "predict_s": predict_s,
        "settings": settings,
        "library": f"neuralforecast {version('neuralforecast')}",
    }


# -- darts -------------------------------------------------------------------------------------


def run_darts(args, ids: list[str], values: list[np.ndarray], work_dir: str) -> dict:
    from darts import TimeSeries
    from darts.models import RNNModel

    # darts requires input_chunk_length and has no default or convention for it: 2 * h, the
    # neuralforecast convention (also used by the earlier ETTh1 bench, 48 for h = 24).
    # training_length: darts' default (24) is refused when below input_chunk_length; its docs ask
    # for more than input_chunk_length, so the smallest length covering history + horizon.
    # model="LSTM" (darts' default cell is a vanilla RNN; the issue compares LSTMs).
    n_in = 2 * HORIZON
    kw: dict = {
        "input_chunk_length": n_in,
        "training_length": n_in + HORIZON - 1,
        "model": "LSTM",
        "random_state": args.seed,
        "work_dir": work_dir,
        "pl_trainer_kwargs": quiet_trainer(args.max_minutes),
    }
    if args.max_epochs is not None:
        kw["n_epochs"] = args.max_epochs
    model = RNNModel(**kw)
    # float32: darts casts the model to the series' dtype (its docs advise float32 for speed)
    series = [TimeSeries.from_values(v.astype(np.float32).reshape(-1, 1)) for v in values]
    t0 = time.perf_counter()
    model.fit(series, verbose=False)
    fit_s = time.perf_counter() - t0
    # read before predict, which gives the model a new trainer
    epochs_run, steps_run = int(model.epochs_trained), int(model.trainer.global_step)
    t0 = time.perf_counter()
    preds = model.predict(n=HORIZON, series=series, verbose=False, show_warnings=False)
    predict_s = time.perf_counter() - t0
    # S x (48, 1) -> (S, 48)
    pred = np.stack([p.values(copy=False)[:, 0] for p in preds]).astype(np.float64)
    params = getattr(model, "model_params", {}) or {}
    settings = {
        k: plain(params[k])
        for k in ("input_chunk_length", "training_length", "model", "hidden_dim", "n_rnn_layers")
        if k in params
    }
    settings.update(
        batch_size=model.batch_size,
        n_epochs=model.n_epochs,
        epochs_run=epochs_run,
        steps_run=steps_run,
        dtype="float32",
    )
    return {
        "pred": pred,
        "fit_s": fit_s,
        "predict_s": predict_s,
        "settings": settings,
        "library": f"darts {version('darts')}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer", choices=PEERS, required=True)
    ap.add_argument("--train", required=True, help="the M4 Hourly train CSV")
    ap.add_argument("--out", required=True, help="the (S, 48) forecasts, .npy")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-epochs", type=int, default=None, help="darts: cap n_epochs")
    ap.add_argument("--max-steps", type=int, default=None, help="neuralforecast: cap max_steps")
    ap.add_argument("--max-minutes", type=float, default=None, help="Lightning max_time")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    train = str(Path(args.train).resolve())

    import torch

    torch.set_num_threads(args.threads)
    ids, values = read_train(train)
    work_dir = tempfile.mkdtemp(prefix="m4-peer-")  # darts' work_dir; Lightning's cwd files
    os.chdir(work_dir)
    try:
        if args.peer == "darts-rnn":
            run = run_darts(args, ids, values, work_dir)
        else:
            run = run_nf(args, ids, values)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    pred = run["pred"]
    if pred.shape != (len(ids), HORIZON) or not np.isfinite(pred).all():
        raise SystemExit(
            f"{args.peer}: expected ({len(ids)}, {HORIZON}) finite forecasts, got {pred.shape}"
        )
    np.save(out, pred)
    line = {
        "peer": args.peer,
        "library": run["library"],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "seed": args.seed,
        "fit_s": run["fit_s"],
        "predict_s": run["predict_s"],
        "settings": run["settings"],
        "caps": {k: getattr(args, k) for k in ("max_epochs", "max_steps", "max_minutes")},
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
