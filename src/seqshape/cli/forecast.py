"""`seqshape train forecast`, the forecaster's evaluate (rolling-origin backtest + baselines) and
the `seqshape demo` forecast. `seqshape forecast` lives in cli/forecast_cmd.py, the CSV reading
and splitting in cli/forecast_data.py (re-exported here)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from ..errors import ConfigError
from . import train_app
from .common import (
    SHARED_KEYS,
    BatchSize,
    Cell,
    CheckpointEvery,
    ConfigFile,
    Dropout,
    Epochs,
    Hidden,
    Layers,
    Loss,
    Lr,
    LrSchedule,
    Out,
    Progress,
    Resume,
    Seed,
    Threads,
)
from .forecast_data import _cols, parse_horizons, read_frame, split_bounds, with_statics

FORECAST_KEYS = set(SHARED_KEYS) | {
    "lookback",
    "horizon",
    "strategy",
    "loss",
    "quantiles",
    "dropout",
    "cell",
    "patience",
    "window_norm",
    "segment",
    "highway",
    "train_highway",
    "keep_start",
    "lr_schedule",
    "season",
    "start",
    "lr_patience",
    "weight_decay",
    "sampling_ratio",
    "max_windows_per_epoch",
    "stride",
}


@train_app.command("forecast")
def train_forecast(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Wide CSV (time column + value columns), long CSV (series id + time + values), "
            "or with --format m4 an M4 train file (one series a row).",
        ),
    ],
    out: Out,
    target: Annotated[
        str | None,
        typer.Option(
            "--target", help="Target column(s), comma-separated (O outputs); CSV data only."
        ),
    ] = None,
    data_format: Annotated[
        Literal["csv", "m4"],
        typer.Option(
            "--format",
            help="csv, or m4: the M4 competition's layout (id, then the values, padded). An m4 "
            "run trains one global model, validated on the last --horizon values of each series; "
            "score it with `seqshape evaluate DIR --data TRAIN --test TEST --format m4`.",
        ),
    ] = "csv",
    lookback: Annotated[
        int | None,
        typer.Option(
            "--lookback",
            help="History steps N the model reads (default, direct: seven seasons or two "
            "horizons (at most 720), whichever is longer, in whole seasons, leaving two training "
            "windows per step; autoregressive: three seasons or two "
            "horizons (at most 336); within what the training part allows).",
        ),
    ] = None,
    horizon: Annotated[
        int | None,
        typer.Option(
            "--horizon", help="Training horizon K (autoregressive models forecast any K later)."
        ),
    ] = None,
    past_covariates: Annotated[
        str | None,
        typer.Option(
            "--past-covariates", help="Observed covariate columns (forecast and fed back)."
        ),
    ] = None,
    future_covariates: Annotated[
        str | None,
        typer.Option(
            "--future-covariates",
            help="Known-ahead covariate columns, or 'auto' for calendar features from the timestamps.",
        ),
    ] = None,
    static_covariates: Annotated[
        str | None,
        typer.Option(
            "--static-covariates",
            help="Per-series constant columns (a category code, a size): fed to the model with "
            "the known covariates of every row (a value changing within a series is an error).",
        ),
    ] = None,
    time_column: Annotated[
        str | None, typer.Option("--time-column", help="Timestamp column (default: detected).")
    ] = None,
    series_column: Annotated[
        str | None, typer.Option("--series-column", help="Series id column of a long CSV.")
    ] = None,
    strategy: Annotated[
        Literal["auto", "autoregressive", "direct"] | None,
        typer.Option(
            "--strategy",
            help="auto (default: direct, the LSTM reading the history a season at a time, "
            "unless the autoregressive start validates better) | autoregressive (any K, "
            "streams, sample paths) | direct (all K steps at once, any K block by block).",
        ),
    ] = None,
    loss: Loss = None,
    quantiles: Annotated[
        str | None,
        typer.Option("--quantiles", help="Quantiles for --loss quantile, e.g. 0.1,0.5,0.9."),
    ] = None,
    highway: Annotated[
        int | None,
        typer.Option(
            "--highway",
            help="P > 0: a linear term over the last P values beside the LSTM (LSTNet's "
            "highway), started from the baseline that forecasts best out of sample (naive, "
            "seasonal naive or least squares); the LSTM learns what it leaves. Default: the "
            "lookback. 0 turns it off (the LSTM alone, no baseline guarantee).",
        ),
    ] = None,
    freeze_highway: Annotated[
        bool | None,
        typer.Option(
            "--freeze-highway/--train-highway",
            help="Keep the highway at its least-squares solution (only the LSTM learns), or let "
            "training move it too (the default).",
        ),
    ] = None,
    keep_start: Annotated[
        bool | None,
        typer.Option(
            "--keep-start/--no-keep-start",
            help="With --highway: validate the least-squares start before training and keep it "
            "unless an epoch beats it (default: keep).",
        ),
    ] = None,
    season: Annotated[
        int | None,
        typer.Option(
            "--season",
            help="Seasonal period in steps (24 hourly, 12 monthly, 7 daily; 1: none). Default: "
            "detected from the training part's autocorrelation.",
        ),
    ] = None,
    start: Annotated[
        Literal["best", "least_squares", "naive", "seasonal_naive"] | None,
        typer.Option(
            "--start",
            help="The baseline the highway starts from: best (default: the one that forecasts "
            "best on validation and on the end of the training part) | least_squares | naive | "
            "seasonal_naive.",
        ),
    ] = None,
    lr_schedule: LrSchedule = None,
    split: Annotated[
        str | None,
        typer.Option("--split", help="Time-based train,val,test fractions (default 0.7,0.1,0.2)."),
    ] = None,
    split_dates: Annotated[
        str | None,
        typer.Option(
            "--split-dates",
            help="Validation start and test start dates, e.g. 2017-07-01,2017-11-01.",
        ),
    ] = None,
    ett_split: Annotated[
        bool,
        typer.Option("--ett-split", help="ETT convention: 12 months train, 4 validation, 4 test."),
    ] = False,
    missing: Annotated[
        str, typer.Option("--missing", help="Missing values: error | ffill.")
    ] = "error",
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    seed: Seed = None,
    hidden: Hidden = None,
    layers: Layers = None,
    cell: Cell = None,
    dropout: Dropout = None,
    config: ConfigFile = None,
    threads: Threads = None,
    progress: Progress = True,
    resume: Resume = False,
    checkpoint_every: CheckpointEvery = None,
) -> None:
    """Train a forecaster: N past steps -> K future steps; evaluates a backtest on the test split.

    Checkpoints go to OUT.ckpt/ (every epoch, and every --checkpoint-every steps); --resume
    continues a killed run from there (see cli/training.py)."""
    from ..api.backtest import backtest
    from ..api.forecaster import Forecaster
    from ..train import distributed
    from .common import merge_config
    from .training import say_resumed, train_run

    opts = merge_config(
        config,
        dict(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            hidden=hidden,
            layers=layers,
            lookback=lookback,
            horizon=horizon,
            strategy=strategy,
            loss=loss,
            quantiles=tuple(float(q) for q in _cols(quantiles)) if quantiles else None,
            highway=highway,
            train_highway=None if freeze_highway is None else not freeze_highway,
            keep_start=keep_start,
            season=season,
            start=start,
            dropout=dropout,
            cell=cell,
            lr_schedule=lr_schedule,
        ),
        FORECAST_KEYS,
    )
    renames = {"hidden": "hidden_size", "layers": "num_layers"}
    opts = {renames.get(k, k): v for k, v in opts.items()}
    if "quantiles" in opts:
        opts["quantiles"] = tuple(opts["quantiles"])
    from ..outfiles import check_input

    check_input(data, "--data")
    if data_format == "m4":
        return _train_m4(data, out, opts, progress, threads, resume, checkpoint_every)
    if not target:
        raise ConfigError("--target: expected the target column(s) of the CSV, got none")
    spec = {
        "target": _cols(target),
        "past_covariates": _cols(past_covariates),
        "future_covariates": "auto" if future_covariates == "auto" else _cols(future_covariates),
        "static_covariates": _cols(static_covariates),
        "time_column": time_column,
        "series_column": series_column,
        "missing": missing,
    }
    frame = read_frame(data, spec)
    series, static_df = with_statics(data, spec, frame)
    tr, va, te = split_bounds(frame, split, split_dates, ett_split)
    fc = Forecaster(progress=progress, threads=threads, **opts)
    fc.meta = {
        "columns": spec,
        "split": {
            "train_end": tr,
            "val_end": va,
            "test_end": te,
            "rule": (
                "ett"
                if ett_split
                else (
                    "dates:" + split_dates
                    if split_dates
                    else "fractions:" + (split or "0.7,0.1,0.2")
                )
            ),
        },
        "freq": getattr(frame, "freq", None),
        "future_cov_names": list(frame.future_cov_names),
    }
    with train_run(out, resume=resume, checkpoint_every=checkpoint_every) as run:
        log = run.log
        fc.fit(
            series, train_end=tr, val_end=va, static_df=static_df, log_path=log,
            **run.fit_kwargs(),
        )  # fmt: skip
        if not distributed.is_main():  # torchrun: rank 0 alone backtests and writes the model
            return
        say_which_part_won(fc.metrics)
        result = backtest(fc, series, tr, va, te, [fc.config.horizon])
        fc.save(out, extra_metrics={"test": result})
        os.replace(log, Path(out) / "train_log.jsonl")
    say_resumed(run, fc)
    print_report(result)
    typer.echo(f"model written to {out}", err=True)


def _train_m4(data: Path, out: Path, opts: dict, progress, threads, resume, checkpoint_every):
    """`train forecast --format m4`: one global model over every series of an M4 train file."""
    from ..api.forecaster import Forecaster
    from ..api.m4 import fit_m4
    from ..data.m4 import read_m4
    from ..train import distributed
    from .training import say_resumed, train_run

    train = read_m4(data)
    fc = Forecaster(progress=progress, threads=threads, **opts)
    fc.meta = {"format": "m4", "n_series": len(train)}
    with train_run(out, resume=resume, checkpoint_every=checkpoint_every) as run:
        log = run.log
        fit_m4(fc, train, log_path=log, **run.fit_kwargs())
        if not distributed.is_main():
            return
        say_which_part_won(fc.metrics)
        fc.save(out)
        os.replace(log, Path(out) / "train_log.jsonl")
    say_resumed(run, fc)
    typer.echo(
        f"model written to {out}; score it with: seqshape evaluate {out} --data {data} "
        f"--test TEST.csv --format m4",
        err=True,
    )


def evaluate_m4_files(model_dir: Path, data: Path, test: Path | None, threads=None) -> dict:
    """`evaluate --format m4`: the competition's sMAPE, MASE and OWA on the test file."""
    from ..api.forecaster import Forecaster
    from ..api.m4 import evaluate_m4
    from ..data.m4 import read_m4, read_m4_pair

    if test is None:
        raise ConfigError("--test: --format m4 needs the test file (the values after each series)")
    fc = Forecaster.load(model_dir, threads=threads)
    horizon = int(read_m4(test).values[0].size)
    train, test_set = read_m4_pair(data, test, horizon=horizon)
    season = fc.meta.get("season")
    if not isinstance(season, int) or season < 1:
        raise ConfigError(f"{model_dir}: the model records no season; retrain with --season")
    result = evaluate_m4(fc, train, test_set, season)
    result.update({"model": str(model_dir), "data": str(data), "test": str(test)})
    return result


def print_m4_report(result: dict) -> None:
    table = Table(
        title=f"M4 scoring: {result['n_series']} series, horizon {result['horizon']}, "
        f"season {result['season']}"
    )
    for col in ("", "sMAPE %", "MASE", "OWA"):
        table.add_column(col, justify="right" if col else "left")
    for name, r in {"seqshape": result, **result["baselines"]}.items():
        table.add_row(name, f"{r['smape']:.3f}", f"{r['mase']:.3f}", f"{r['owa']:.3f}")
    Console().print(table)


def say_which_part_won(m: dict) -> None:
    """One line on stderr: the baselines on validation and what the returned model is."""
    base = m.get("baselines_val_mase")
    if not base:
        return
    scores = ", ".join(f"{k} {v:.5f}" for k, v in sorted(base.items(), key=lambda kv: kv[1]))
    by = m.get("strategy_val_mase")
    if by and m.get("strategy"):
        # strategy "auto": which strategy's best start validated better
        scores += (
            f"; strategy {m['strategy']} (best start: direct {by['direct']:.5f}, "
            f"autoregressive {by['autoregressive']:.5f})"
        )
    start, winner = m["start"], m["winner"]
    if winner == start:
        typer.echo(
            f"baselines (MASE out of sample): {scores}. No epoch beat the {start} start on "
            f"validation: the model is that baseline, the LSTM's head at zero "
            f"(--no-keep-start returns the best trained epoch instead)",
            err=True,
        )
    else:
        gain = m.get("gain_vs_best_baseline")
        more = f" ({100 * gain:.1f}% lower validation MASE)" if gain is not None else ""
        typer.echo(
            f"baselines (MASE out of sample): {scores}. The LSTM improved on the {start} "
            f"start{more}",
            err=True,
        )


def evaluate(
    model_dir: Path,
    data: Path,
    *,
    missing: str = "error",
    threads=None,
    horizons=None,
    samples: int = 0,
    data_format: str = "csv",
    test: Path | None = None,
    **_,
) -> dict:
    from ..api.backtest import backtest
    from ..api.forecaster import Forecaster

    if data_format == "m4":
        return evaluate_m4_files(model_dir, data, test, threads=threads)
    if test is not None:
        raise ConfigError("--test: only --format m4 takes a separate test file")
    fc = Forecaster.load(model_dir, threads=threads)
    spec = dict(fc.meta.get("columns", {}))
    if not spec:
        raise ConfigError(
            f"{model_dir}: the model does not record its data columns; evaluate needs them"
        )
    spec["missing"] = missing
    frame = read_frame(data, spec)
    series = with_statics(data, spec, frame, optional=True)[0]
    sp = fc.meta["split"]
    hs = parse_horizons(horizons) or [fc.config.horizon]
    result = backtest(
        fc, series, sp["train_end"], sp["val_end"], sp["test_end"], hs, samples=samples
    )
    result["model"] = str(model_dir)
    result["data"] = str(data)
    return result


def print_report(result: dict) -> None:
    if "owa" in result:
        return print_m4_report(result)
    console = Console()
    for K, row in result["by_horizon"].items():
        table = Table(title=f"backtest, horizon K={K} ({row['n_windows']} windows; scaled units)")
        for col in ("", "MSE", "MAE", "MASE", "sMAPE %"):
            table.add_column(col, justify="right" if col else "left")
        rows = {"seqshape": row, **row["baselines"]}
        for name, r in rows.items():
            table.add_row(
                name, f"{r['mse']:.4f}", f"{r['mae']:.4f}", f"{r['mase']:.3f}", f"{r['smape']:.2f}"
            )
        console.print(table)
        if "interval" in row:
            iv = row["interval"]
            pinball = f", pinball loss {iv['pinball']:.4f}" if "pinball" in iv else ""
            console.print(
                f"{iv['level']:.0%} interval: holds {iv['coverage']:.1%} of the true values, "
                f"mean width {iv['width']:.3f}{pinball} (scaled units)"
            )
        if "sample_interval" in row:
            iv = row["sample_interval"]
            console.print(
                f"{iv['level']:.0%} band of {iv['samples']} sample paths: holds "
                f"{iv['coverage']:.1%} of the true values, mean width {iv['width']:.3f}"
            )


def predict(model_dir: Path, data: Path, output: Path, **kw) -> int:
    raise ConfigError(
        "predict: use `seqshape forecast DIR --history PATH --horizon K --output FILE.csv` for forecasters"
    )


# the demo's forecaster; bench/airpassengers_highway.py measures it with and without the highway
# (test MSE 0.052 with it, 0.21 without, over 3 seeds)
DEMO_FORECASTER = dict(
    lookback=24, horizon=12, hidden_size=32, num_layers=1, epochs=60, patience=15,
    batch_size=16, lr=3e-3, highway=24,
)  # fmt: skip


def demo_air_data():
    """The demo's data: (column spec, frame, series, ([train_end], [val_end], [test_end])) for the
    bundled AirPassengers: train 1949-1957, validate 1958, test 1959-1960."""
    from .. import datasets

    spec = {
        "target": ["#Passengers"],
        "past_covariates": [],
        "future_covariates": "auto",
        "time_column": None,
        "series_column": None,
        "missing": "error",
    }
    frame = read_frame(datasets.path("AirPassengers.csv"), spec)
    return spec, frame, frame.to_series(), ([108], [120], [144])


def demo_forecast(out: Path, *, seed: int = 0, threads=None, progress: bool = True) -> dict:
    """The forecasting half of `seqshape demo`: AirPassengers (monthly, 1949-1960), bundled.

    Trains on 1949-1957, validates on 1958, backtests on 1959-1960 (K=12) against naive, seasonal
    naive and linear baselines, and plots a 36-month forecast from the end of 1958.
    """
    from ..api.backtest import backtest
    from ..api.forecaster import Forecaster, SeriesData
    from ..plots import forecast_png

    spec, frame, series, (tr, va, te) = demo_air_data()
    fc = Forecaster(**DEMO_FORECASTER, seed=seed, threads=threads, progress=progress)
    fc.meta = {
        "columns": spec,
        "split": {"train_end": tr, "val_end": va, "test_end": te, "rule": "demo"},
        "freq": frame.freq,
        "future_cov_names": list(frame.future_cov_names),
    }
    fc.fit(series, train_end=tr, val_end=va)
    say_which_part_won(fc.metrics)
    result = backtest(fc, series, tr, va, te, [12])
    model_dir = Path(out) / "forecast"
    fc.save(model_dir, extra_metrics={"test": result})
    s = series[0]
    hist = SeriesData(target=s.target[:120], future_cov=s.future_cov[:120], name=s.name)
    from ..data import series as S

    ts = S.future_timestamps(s.timestamps[:120], 36)
    fcov, _ = S.calendar_features(ts, freq=frame.freq)
    res = fc.forecast(hist, 36, future_cov=fcov)
    forecast_png(  # history to the origin (end of 1958); the test years drawn as the actual
        s.timestamps[:120],
        s.target[:120],
        ts,
        res,
        model_dir / "forecast.png",
        names=["passengers (thousands)"],
        actual=(s.timestamps[120:], s.target[120:]),
    )
    print_report({**result, "data": "AirPassengers"})
    return {
        "mode": "forecast",
        "model_dir": str(model_dir),
        "plot": str(model_dir / "forecast.png"),
        "test_mse_scaled": result["mse"],
        "baselines_mse_scaled": {k: v["mse"] for k, v in result["baselines"].items()},
    }
