"""`seqshape detect` (anomalies in a CSV series) and `seqshape nab run|score` (the NAB benchmark)."""

from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from ..errors import ConfigError, DataError
from . import app
from .common import Epochs, Hidden, Progress, Seed, Threads

nab_app = typer.Typer(
    help="The Numenta Anomaly Benchmark: run a detector over its 58 series, score results.",
    no_args_is_help=True,
)
app.add_typer(nab_app, name="nab")

ScoreMethod = Annotated[
    str | None,
    typer.Option("--score", help="Anomaly score: rank (default) | tail | likelihood."),
]
Chunk = Annotated[
    int | None, typer.Option("--chunk", help="Training chunk length (the lookback), default 64.")
]


def _header(path: Path) -> list[str]:
    try:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            return [h.strip() for h in next(csv.reader(f), [])]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read the header: {e}") from None


def read_detect_csv(path: Path, time_column: str | None, value_columns: list[str]):
    """-> (timestamps (T,), values (T, O), value column names) from a wide CSV."""
    from ..data.series import read_series_csv

    if not value_columns:
        header = _header(path)
        if "value" in header:
            value_columns = ["value"]
        else:
            time = time_column or ("timestamp" if "timestamp" in header else None)
            value_columns = [h for h in header if h and h != time]
            if time is None or not value_columns:
                raise DataError(
                    f"{path} line 1: cannot tell the value columns from {header}; "
                    "pass --timestamp-column and --value-columns"
                )
    frame = read_series_csv(path, target=value_columns, time_column=time_column)
    if len(frame) != 1:
        raise DataError(f"{path}: expected one series, got {len(frame)} (a series_id column?)")
    return frame.timestamps[0], frame.target[0].astype(np.float64), value_columns


def train_rows(spec: str, n: int) -> int:
    """``--train-size`` N (rows) or a FRACTION in (0, 1) of ``n`` rows -> rows."""
    try:
        value = float(spec)
    except ValueError:
        raise ConfigError(f"--train-size: expected N rows or a fraction, got {spec!r}") from None
    rows = int(value) if value >= 1 and value.is_integer() else int(np.floor(value * n))
    if not 0 < value < 1 and not (value >= 1 and value.is_integer()):
        raise ConfigError(
            f"--train-size: expected an integer >= 1 or a fraction in (0, 1), got {spec}"
        )
    if not 2 <= rows < n:
        raise ConfigError(f"--train-size: expected 2 <= rows < {n} (the series' rows), got {rows}")
    return rows


def read_labels(path: Path, data: Path, timestamps: np.ndarray) -> list[tuple[int, int]]:
    """Label windows as inclusive row ranges, from a JSON list of [start, end] timestamps or NAB's
    ``combined_windows.json`` ({"category/file.csv": [[start, end], ...]})."""
    import pandas as pd

    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None
    if isinstance(raw, dict):
        keys = [k for k in raw if Path(k).name == data.name]
        if len(keys) != 1:
            raise DataError(
                f"{path}: expected one entry whose file name is {data.name!r}, found {len(keys)}"
            )
        raw = raw[keys[0]]
    if not isinstance(raw, list):
        raise DataError(
            f"{path}: expected a list of [start, end] windows, got {type(raw).__name__}"
        )
    ns = timestamps.astype("datetime64[ns]")
    windows = []
    for k, w in enumerate(raw):
        try:
            a, b = (pd.Timestamp(t).as_unit("ns").to_datetime64() for t in w)
        except (TypeError, ValueError):
            raise DataError(
                f"{path}: window {k}: expected [start, end] timestamps, got {w!r}"
            ) from None
        first = int(np.searchsorted(ns, a, side="left"))
        last = int(np.searchsorted(ns, b, side="right")) - 1
        if first <= last:
            windows.append((first, last))
    return windows


def _format(x: float) -> str:
    return "" if not np.isfinite(x) else f"{x:.6g}"


@app.command("detect")
def detect(
    data: Annotated[Path, typer.Option("--data", help="CSV: a time column and value column(s).")],
    output: Annotated[Path, typer.Option("--output", help="CSV to write, one row per input row.")],
    train_size: Annotated[
        str | None,
        typer.Option(
            "--train-size",
            help="Rows (N) or fraction (0.15) at the start to train on; they are scored 0. With "
            "--model: rows scored 0 while the stream warms up (default 0).",
        ),
    ] = None,
    timestamp_column: Annotated[
        str | None,
        typer.Option("--timestamp-column", help="Time column (default: detected)."),
    ] = None,
    value_columns: Annotated[
        str | None,
        typer.Option(
            "--value-columns",
            "--value-column",
            help="Comma-separated value columns (default: 'value', else every other column).",
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="A detector directory written with --save (no training)."),
    ] = None,
    save: Annotated[
        Path | None, typer.Option("--save", help="Write the trained detector to this directory.")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG: series, scores, flags.")] = None,
    labels: Annotated[
        Path | None,
        typer.Option("--labels", help="JSON label windows: \\[\\[start, end], ...] or NAB's file."),
    ] = None,
    threshold: Annotated[
        str | None,
        typer.Option("--threshold", help="fixed:V | quantile:Q | dynamic (default fixed:0.5)."),
    ] = None,
    score: ScoreMethod = None,
    hidden: Hidden = None,
    epochs: Epochs = None,
    chunk: Chunk = None,
    seed: Seed = None,
    threads: Threads = None,
    progress: Progress = False,
) -> None:
    """Score every row of a series causally (each score uses only the past) and flag anomalies.

    Every input (data, labels, detector, options) is read and checked before any work; --output,
    --plot and --save are written at the end, each complete or not at all (temporary files named
    ``.NAME.tmp-PID-*`` and renamed; a killed run's are removed by the next one)."""
    from .. import runtime
    from ..anomaly.detector import AnomalyDetector, DetectorConfig
    from ..artifacts import writer_temp

    runtime.configure(threads)
    cols = [c.strip() for c in value_columns.split(",") if c.strip()] if value_columns else []
    timestamps, values, names = read_detect_csv(data, timestamp_column, cols)
    n = len(values)
    windows = read_labels(labels, data, timestamps) if labels is not None else []
    if model is not None:
        det = AnomalyDetector.load(model)
        if det.config.n_targets != values.shape[1]:
            raise DataError(
                f"{data}: the detector in {model} reads {det.config.n_targets} value column(s), "
                f"got {values.shape[1]} ({', '.join(names)})"
            )
        warm = train_rows(train_size, n) if train_size is not None else 0
        if threshold is not None:
            det.set_threshold(threshold)
    else:
        if train_size is None:
            raise ConfigError("--train-size: required unless --model is given (e.g. 0.15 or 750)")
        warm = train_rows(train_size, n)
        options = {
            "n_targets": values.shape[1],
            "score": score,
            "hidden_size": hidden,
            "epochs": epochs,
            "chunk": chunk,
            "seed": seed,
            "threshold": threshold,
        }
        if score == "likelihood":
            options["head"] = "gaussian"
        config = DetectorConfig(**{k: v for k, v in options.items() if v is not None})
        try:
            det = AnomalyDetector(config).fit(values[:warm], timestamps[:warm], progress=progress)
        except DataError as exc:
            raise DataError(f"{data}: {exc}") from None
    out = det.score_series(values, timestamps, warmup=warm)
    flags = out["is_anomaly"]
    done: list[tuple[Path, Path]] = []  # (temporary, final): renamed once all are written
    try:
        done.append((writer_temp(output), output))
        _write_output(done[-1][0], timestamps, values, names, out)
        if plot is not None:
            done.append((writer_temp(plot, suffix=plot.suffix or ".png"), plot))
            _detect_plot(done[-1][0], det, data, timestamps, values, out, windows, warm)
        if save is not None:
            det.save(save)  # a model directory: itself written aside and swapped in
        for tmp, final in done:
            os.replace(tmp, final)
    finally:
        for tmp, _ in done:
            tmp.unlink(missing_ok=True)
    msg = f"scored {n} rows ({warm} warm-up), flagged {int(flags.sum())}; wrote {output}"
    if windows:
        hit = sum(bool(flags[a : b + 1].any()) for a, b in windows)
        inside = np.zeros(n, dtype=bool)
        for a, b in windows:
            inside[a : b + 1] = True
        msg += f"; {hit} of {len(windows)} label windows hit, {int((flags & ~inside).sum())} flags outside"
    typer.echo(msg, err=True)


def _detect_plot(path: Path, det, data: Path, timestamps, values, out, windows, warm) -> None:
    from ..anomaly.plots import detection_png

    flags = out["is_anomaly"]
    cut = det.threshold_value if det.method == "fixed" else det.quantile_cut
    detection_png(
        path,
        timestamps=timestamps,
        values=values,
        scores=out["score"],
        flags=flags,
        predictions=out["prediction"],
        windows=windows,
        train_size=warm,
        threshold=cut,
        title=f"{data.name}: {int(flags.sum())} flagged ({det.config.threshold})",
    )


def _write_output(path: Path, timestamps, values, names, out: dict) -> None:
    pred = np.asarray(out["prediction"], dtype=np.float64)
    pred = pred[:, None] if pred.ndim == 1 else pred
    single = len(names) == 1
    header = ["timestamp"]
    header += ["value"] if single else list(names)
    header += ["prediction"] if single else [f"prediction_{c}" for c in names]
    header += ["score", "is_anomaly"]
    stamps = np.datetime_as_string(np.asarray(timestamps).astype("datetime64[s]"), unit="s")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for t in range(len(values)):
            w.writerow(
                [stamps[t].replace("T", " ")]
                + [_format(x) for x in values[t]]
                + [_format(x) for x in pred[t]]
                + [f"{out['score'][t]:.6f}", int(out["is_anomaly"][t])]
            )


@nab_app.command("run")
def nab_run(
    nab_dir: Annotated[Path, typer.Option("--nab-dir", help="NAB tree: data/, labels/, config/.")],
    out: Annotated[Path, typer.Option("--out", help="Results directory (NAB's layout).")],
    detector: Annotated[
        str, typer.Option("--detector", help="Detector name used in the file names.")
    ] = "lstm",
    jobs: Annotated[
        int, typer.Option("--jobs", help="Worker processes, at most the usable cores.")
    ] = 1,
    series: Annotated[
        list[str] | None,
        typer.Option(
            "--series", help="Only series matching this glob (repeatable), e.g. 'realTraffic/*'."
        ),
    ] = None,
    score: ScoreMethod = None,
    hidden: Hidden = None,
    epochs: Epochs = None,
    chunk: Chunk = None,
    seed: Seed = None,
    progress: Progress = True,
) -> None:
    """Run the LSTM detector over NAB: train on each series' probation, score every row causally."""
    from ..anomaly.detector import DetectorConfig
    from ..anomaly.runner import run_nab

    options = {
        "score": score,
        "hidden_size": hidden,
        "epochs": epochs,
        "chunk": chunk,
        "seed": seed,
    }
    config = DetectorConfig(**{k: v for k, v in options.items() if v is not None})
    run = run_nab(
        nab_dir, out, detector=detector, config=config, jobs=jobs, series=series, progress=progress
    )
    info = {
        "detector": detector,
        "series": len(run.paths),
        "seconds": round(run.seconds, 1),
        "jobs": run.jobs,
        "config": config.to_dict(),
        "series_seconds": run.series_seconds,
    }
    (Path(out) / detector / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    typer.echo(
        f"wrote {len(run.paths)} result files to {Path(out) / detector} in {run.seconds:.0f} s",
        err=True,
    )


@nab_app.command("score")
def nab_score(
    results: Annotated[Path, typer.Argument(help="Results directory holding <detector>/.")],
    detector: Annotated[str, typer.Option("--detector", help="Detector name (sub-directory).")],
    nab_dir: Annotated[Path, typer.Option("--nab-dir", help="NAB tree: data/, labels/, config/.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score results with NAB's rule: the best threshold per profile, normalised 0 (null) to 100."""
    from ..anomaly.nab import PROFILE_NAMES, score_detector

    result = score_detector(nab_dir, results, detector)
    if as_json:
        typer.echo(json.dumps(result, allow_nan=False))
        return
    table = Table(title=f"NAB scores of {detector}")
    for col in ("profile", "score", "threshold", "raw"):
        table.add_column(col, justify="left" if col == "profile" else "right")
    for name in PROFILE_NAMES:
        if name in result:
            table.add_row(
                name,
                f"{result[name]:.2f}",
                f"{result['thresholds'][name]:.6g}",
                f"{result['raw'][name]:.3f}",
            )
    Console().print(table)
