"""What `train seq2seq`, `train tag` and `train generate` share (cli/seq2seq.py, cli/tag.py,
cli/generate.py): their options, the config merge, fit-checkpoint-save, and the metric table and
CSV writer of their evaluate/predict."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..errors import ConfigError
from .common import merge_config

RENAMES = {"hidden": "hidden_size", "layers": "num_layers", "embedding": "embedding_size"}

Val = Annotated[
    Path | None,
    typer.Option("--val", help="Validation data for early stopping (default: 10% of --train)."),
]
Test = Annotated[
    Path | None, typer.Option("--test", help="Test data, evaluated once after training.")
]
Beam = Annotated[
    int | None, typer.Option("--beam", help="Beam size for decoding (1 = greedy; tokens only).")
]


def _options(config: Path | None, cli: dict, allowed: set[str]) -> dict:
    merged = merge_config(config, cli, allowed)
    if "beam" in merged:
        merged["beam_size"] = merged.pop("beam")
    return {RENAMES.get(k, k): v for k, v in merged.items()}


def _check_missing(missing: str) -> None:
    if missing != "error":
        raise ConfigError(
            f"--missing: seq2seq, tag and generate data must be complete; expected 'error', "
            f"got {missing!r}"
        )


def _finish(model, result: dict, out: Path, log: Path) -> None:
    """Save the model with its results, move the training log in, draw the training curve."""
    from ..plots import training_curve_png

    model.save(out, extra_metrics={k: v for k, v in result.items() if k != "train"})
    os.replace(log, out / "train_log.jsonl")
    if model.train_result and model.train_result.history:
        training_curve_png(
            model.train_result.history,
            out / "training_curve.png",
            best_epoch=model.train_result.best_epoch,
        )


def _fit_and_save(
    model, fit_args: tuple, fit_kwargs: dict, out: Path, evaluate, resume: bool, every: int | None
) -> dict | None:
    """Fit (checkpointing to OUT.ckpt/, resuming with ``resume``; see cli/training.py), evaluate,
    save; None on a torchrun rank other than 0 (rank 0 alone evaluates and writes)."""
    from ..train import distributed
    from .training import say_resumed, train_run

    with train_run(out, resume=resume, checkpoint_every=every) as run:
        log = run.log
        t0 = time.perf_counter()
        model.fit(*fit_args, **fit_kwargs, **run.fit_kwargs(), log_path=log)
        if not distributed.is_main():
            return None
        result = {"train": model.metrics, "train_seconds": round(time.perf_counter() - t0, 2)}
        if evaluate is not None:
            result["test"] = evaluate(model)
        _finish(model, result, out, log)
    say_resumed(run, model)
    return result


def _need_columns(model, model_dir: Path) -> None:
    if not model.columns:
        raise ConfigError(f"{model_dir}: trained from Python without column names; use the API")


def print_report(result: dict) -> None:
    console = Console()
    kind = result.get("kind", "seq2seq")
    table = Table(title=f"{kind}: {result.get('data', '')}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("exact_match", "exact match"),
        ("wer", "WER (1 - exact match)"),
        ("token_error_rate", "token error rate (PER for G2P)"),
        ("bleu", "BLEU (sacrebleu)"),
        ("accuracy", "accuracy (valid steps)"),
        ("macro_f1", "macro F1"),
        ("mae", "MAE"),
        ("rmse", "RMSE"),
        ("n", "sequences"),
        ("n_pairs", "pairs"),
        ("n_steps", "steps"),
        ("beam_size", "beam size"),
    ]
    for key, name in rows:
        if key in result:
            v = result[key]
            table.add_row(name, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)


def _write_csv(output: Path, header: list[str], rows) -> int:
    from ..outfiles import atomic_output

    n = 0
    with atomic_output(output, flag="--output") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow(row)
            n += 1
    return n
