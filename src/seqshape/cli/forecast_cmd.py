"""`seqshape forecast DIR`: the next K steps after the end of each series in a history CSV, written
as CSV (point, quantiles or std, sample bands) and optionally drawn."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from ..errors import ConfigError, DataError
from . import app
from .common import MaxHorizon, MaxSamples, Threads
from .forecast_data import read_frame, with_statics


@app.command("forecast")
def forecast_cmd(
    model_dir: Annotated[Path, typer.Argument(help="A forecaster model directory.")],
    history: Annotated[
        Path,
        typer.Option("--history", help="CSV with the history rows (same columns as training)."),
    ],
    horizon: Annotated[
        int,
        typer.Option("--horizon", help="Steps K to forecast (any K for autoregressive models)."),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", help="CSV to write: series, timestamp, forecast (+ intervals)."),
    ],
    plot: Annotated[
        Path | None, typer.Option("--plot", help="PNG: history, forecast, intervals.")
    ] = None,
    samples: Annotated[
        int, typer.Option("--samples", help="Sample paths for intervals (probabilistic models).")
    ] = 0,
    future_cov: Annotated[
        Path | None,
        typer.Option(
            "--future-covariates",
            help="CSV with the K future rows of known covariates (not needed for 'auto').",
        ),
    ] = None,
    allow_short_history: Annotated[
        bool,
        typer.Option(
            "--allow-short-history",
            help="Forecast from a history shorter than the model's lookback (never seen in "
            "training); refused by default.",
        ),
    ] = False,
    threads: Threads = None,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="torch | onnx (runs DIR/model.onnx + parts, written by `seqshape export DIR`).",
        ),
    ] = "torch",
    max_horizon: MaxHorizon = None,
    max_samples: MaxSamples = None,
) -> None:
    """Forecast the next K steps after the end of each series in --history (each series needs at
    least the model's lookback rows)."""
    from .. import limits
    from ..api.forecast_static import static_names
    from ..api.forecaster import Forecaster
    from ..data import series as S
    from ..outfiles import atomic_output, check_input, check_output
    from ..progress import Reporter

    # bounds and paths before any work: K and S cost time and memory in proportion
    limits.check("--horizon", horizon, "horizon", max_horizon)
    limits.check("--samples", samples, "samples", max_samples, low=0)
    check_input(history, "--history")
    if future_cov is not None:
        check_input(future_cov, "--future-covariates")
    check_output(output, "--output")
    if plot is not None:
        check_output(plot, "--plot")
    if backend not in ("torch", "onnx"):
        raise ConfigError(f"--backend: expected torch or onnx, got {backend!r}")
    if backend == "onnx" and samples:
        raise ConfigError("--samples: sample paths need --backend torch")
    fc = Forecaster.load(model_dir, threads=threads)
    c = fc.config
    if c.head.probabilistic and c.strategy == "autoregressive" and horizon > 1 and not samples:
        typer.echo(
            "note: the interval columns hold each step's one-step uncertainty around the "
            "fed-back forecast, so they do not widen with the horizon; --samples S draws sample "
            "paths whose 10-90% band does",
            err=True,
        )
    runner = None  # the ONNX Runtime forecaster, with --backend onnx
    if backend == "onnx":
        from .export import onnx_runner

        runner = onnx_runner(model_dir, "forecaster", threads)
    spec = dict(fc.meta.get("columns", {}))
    frame = read_frame(history, spec)
    rows = []
    plots = []
    # the series' static covariates: from the history file when it has them, else the model's
    all_series = with_statics(history, spec, frame, optional=True)[0]
    with Reporter(f"forecast K={horizon}", total=len(all_series), unit="series") as reporter:
        for i, s in enumerate(all_series):
            if len(s.target) < 1:
                raise DataError(f"{history}: series {s.name} has no rows")
            ts = S.future_timestamps(s.timestamps, horizon)
            fcov = None
            if fc.config.n_future - len(static_names(fc)):  # the user's known covariates
                if spec.get("future_covariates") == "auto":
                    fcov, _ = S.calendar_features(ts, freq=fc.meta.get("freq"))
                elif future_cov is None:
                    raise DataError(
                        f"--future-covariates: the model needs the K={horizon} future rows of {spec.get('future_covariates')}"
                    )
                else:
                    fr = read_frame(
                        future_cov,
                        {
                            **spec,
                            "target": spec["future_covariates"],
                            "past_covariates": [],
                            "future_covariates": [],
                        },
                    )
                    fcov = fr.target[min(i, len(fr.target) - 1)][:horizon]
            # a training series by name; another one (None) is scaled by its own history
            idx = fc.series_index_of(s.name)
            if idx is None and runner is not None:
                raise DataError(
                    f"{history}: series {s.name!r} is not one of the model's training series "
                    f"({', '.join(fc.series_names[:10])}); the ONNX backend scales with their "
                    "statistics only: use --backend torch"
                )
            if runner is not None:
                res = runner.forecast(
                    s, horizon, series_index=idx, future_cov=fcov, allow_short=allow_short_history
                )
            else:
                res = fc.forecast(
                    s, horizon, series_index=idx, future_cov=fcov, samples=samples,
                    allow_short=allow_short_history,
                )  # fmt: skip
            names = spec["target"]
            for k in range(horizon):
                row = {"series": s.name, "timestamp": str(pd.Timestamp(ts[k]))}
                for j, n in enumerate(names):
                    row[n] = float(res["point"][k, j])
                    for q, arr in res.get("quantiles", {}).items():
                        row[f"{n}_q{q:g}"] = float(arr[k, j])
                    if "std" in res:
                        row[f"{n}_std"] = float(res["std"][k, j])
                    if "samples" in res:
                        row[f"{n}_p10"] = float(np.quantile(res["samples"][:, k, j], 0.1))
                        row[f"{n}_p90"] = float(np.quantile(res["samples"][:, k, j], 0.9))
                rows.append(row)
            plots.append((s, ts, res))
            reporter.advance()
    with atomic_output(output, flag="--output") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    if plot is not None:
        from ..plots import forecasts_png

        many = len(plots) > 1
        items = [(s.name if many else None, s.timestamps, s.target, ts, r) for s, ts, r in plots]
        forecasts_png(items, plot, names=spec["target"])
        panels = len(plots) * len(spec["target"])
        if panels > 12:
            typer.echo(f"--plot: drew the first 12 of {panels} panels ({output} has all)", err=True)
    typer.echo(json.dumps({"rows": len(rows), "output": str(output)}), err=True)
