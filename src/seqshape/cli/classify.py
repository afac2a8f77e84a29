"""`seqshape train classify`, the classifier's evaluate/predict, and `seqshape demo`."""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from . import app, train_app
from .common import (
    SHARED_KEYS,
    BatchSize,
    Cell,
    CheckpointEvery,
    ConfigFile,
    Epochs,
    Hidden,
    Layers,
    Lr,
    LrSchedule,
    Out,
    Progress,
    Resume,
    Seed,
    Threads,
)

CLASSIFY_KEYS = set(SHARED_KEYS) | {
    "bidirectional",
    "pooling",
    "cell",
    "dropout",
    "patience",
    "val_fraction",
    "weight_decay",
    "label_smoothing",
    "frontend",
    "stride",
    "lr_schedule",
    "kernels",
    "kernel_weight",
}


@train_app.command("classify")
def train_classify(
    train: Annotated[
        Path, typer.Option("--train", help="Training sequences: .ts or long CSV (optionally .gz).")
    ],
    out: Out,
    val: Annotated[
        Path | None,
        typer.Option(
            "--val",
            help="Validation sequences, to keep the best epoch (default: none; train on all of "
            "--train for the full cosine schedule).",
        ),
    ] = None,
    test: Annotated[
        Path | None, typer.Option("--test", help="Test sequences, evaluated once after training.")
    ] = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    seed: Seed = None,
    hidden: Hidden = None,
    layers: Layers = None,
    bidirectional: Annotated[
        bool | None,
        typer.Option("--bidirectional/--unidirectional", help="Bidirectional encoder (D=2)."),
    ] = None,
    pooling: Annotated[
        str | None, typer.Option("--pooling", help="Sequence summary: last | mean | attention.")
    ] = None,
    frontend: Annotated[
        Literal["conv", "none"] | None,
        typer.Option(
            "--frontend",
            help="conv (default: masked convolutions and a max-pool before the LSTM) | none.",
        ),
    ] = None,
    stride: Annotated[
        int | None,
        typer.Option(
            "--stride",
            help="Front-end pooling stride P: the LSTM takes ceil(T / P) steps (default: auto, "
            "about 64 steps for the median training length).",
        ),
    ] = None,
    kernels: Annotated[
        int | None,
        typer.Option(
            "--kernels",
            min=0,
            help="Features of the kernel part, fixed dilated convolutions and a ridge fitted "
            "beside the LSTM (ROCKET's idea; default 10000; 0: the LSTM alone).",
        ),
    ] = None,
    kernel_weight: Annotated[
        float | None,
        typer.Option(
            "--kernel-weight",
            min=0.0,
            max=1.0,
            help="The kernel part's share of the mixed class probabilities (default 0.6).",
        ),
    ] = None,
    lr_schedule: LrSchedule = None,
    cell: Cell = None,
    dropout: Annotated[
        float | None, typer.Option("--dropout", help="Dropout between layers and before the head.")
    ] = None,
    missing: Annotated[
        str, typer.Option("--missing", help="Missing values: error | ffill | zero.")
    ] = "error",
    config: ConfigFile = None,
    threads: Threads = None,
    progress: Progress = True,
    resume: Resume = False,
    checkpoint_every: CheckpointEvery = None,
) -> None:
    """Train a many-to-one classifier: (T, F) sequences of any lengths -> one of N classes.

    A checkpoint is written to OUT.ckpt/ after every epoch (and every --checkpoint-every steps);
    --resume continues a killed run from it. It is removed once the model directory is written
    (and after an error; see cli/training.py).
    """
    from ..api.classifier import SequenceClassifier
    from ..data.sequences import read_sequences
    from ..train import distributed
    from .training import say_resumed, train_run

    opts = merge_opts(
        config,
        dict(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            hidden=hidden,
            layers=layers,
            bidirectional=bidirectional,
            pooling=pooling,
            frontend=frontend,
            stride=stride,
            kernels=kernels,
            kernel_weight=kernel_weight,
            lr_schedule=lr_schedule,
            cell=cell,
            dropout=dropout,
        ),
    )
    train_set = read_sequences(train, missing=missing)
    val_set = read_sequences(val, missing=missing) if val else None
    test_set = read_sequences(test, missing=missing) if test else None
    clf = SequenceClassifier(progress=progress, threads=threads, **opts)
    with train_run(out, resume=resume, checkpoint_every=checkpoint_every) as run:
        result = train_and_save(
            clf, train_set, val_set, test_set, out, checkpointing=run.fit_kwargs()
        )
    if not distributed.is_main():  # torchrun: rank 0 writes the model
        return
    say_resumed(run, clf)
    print_report(result["test"]) if "test" in result else None
    typer.echo(f"model written to {out}", err=True)


def merge_opts(config: Path | None, cli: dict) -> dict:
    from .common import merge_config

    merged = merge_config(config, cli, CLASSIFY_KEYS)
    renames = {"hidden": "hidden_size", "layers": "num_layers"}
    return {renames.get(k, k): v for k, v in merged.items()}


def train_and_save(
    clf, train_set, val_set, test_set, out: Path, *, checkpointing: dict | None = None
) -> dict:
    """Fit, evaluate on the test set if given, and write the model directory with its plots.

    ``checkpointing``: checkpoint_dir / checkpoint_every / resume for ``clf.fit``; the training log
    then lives in the checkpoint directory (a killed run leaves no stray temporary directory).
    """
    from ..artifacts import writer_temp
    from ..plots import confusion_matrix_png, training_curve_png
    from ..train import distributed

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    checkpointing = checkpointing or {}
    work_dir = checkpointing.get("checkpoint_dir")
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        tmp = Path(work_dir)
    else:  # .OUT.tmp-PID-*: swept by the next writer of OUT if this process is killed
        tmp = writer_temp(out, directory=True)
    try:
        log = Path(tmp) / "train_log.jsonl"
        t0 = time.perf_counter()
        clf.fit(train_set, X_val=val_set, log_path=log, **checkpointing)
        seconds = time.perf_counter() - t0
        result = {"train": clf.metrics, "train_seconds": round(seconds, 2)}
        if not distributed.is_main():  # torchrun: only rank 0 evaluates and writes
            return result
        if distributed.world() > 1:
            result["world_size"] = distributed.world()
        if test_set is not None:
            result["test"] = clf.evaluate(test_set)
        clf.save(out, extra_metrics={k: v for k, v in result.items() if k != "train"})
        os.replace(log, out / "train_log.jsonl")
    finally:
        if work_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    if clf.train_result and clf.train_result.history:
        training_curve_png(
            clf.train_result.history,
            out / "training_curve.png",
            best_epoch=clf.train_result.best_epoch,
        )
    if "test" in result:
        t = result["test"]
        confusion_matrix_png(
            t["confusion_matrix"],
            t["classes"],
            out / "confusion_matrix.png",
            title=f"test accuracy {t['accuracy']:.3f} (n={t['n']})",
        )
    return result


def evaluate(model_dir: Path, data: Path, *, missing: str = "error", threads=None) -> dict:
    from ..api.classifier import SequenceClassifier
    from ..data.sequences import read_sequences

    clf = SequenceClassifier.load(model_dir, threads=threads)
    result = clf.evaluate(read_sequences(data, missing=missing))
    result["model"] = str(model_dir)
    result["data"] = str(data)
    return result


def print_report(result: dict) -> None:
    console = Console()
    table = Table(title=f"classification: {result.get('data', '')}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("accuracy", f"{result['accuracy']:.4f}")
    table.add_row("macro F1", f"{result['macro_f1']:.4f}")
    table.add_row("n", str(result["n"]))
    parts = result.get("parts")
    if parts:  # which part won: each alone, and the mixture the model answers with
        table.add_row("accuracy, LSTM part alone", f"{parts['lstm']:.4f}")
        table.add_row("accuracy, kernel part alone", f"{parts['kernels']:.4f}")
    console.print(table)
    per = Table(title="per class")
    per.add_column("class")
    per.add_column("F1", justify="right")
    per.add_column("support", justify="right")
    for name, f1, row in zip(result["classes"], result["per_class_f1"], result["confusion_matrix"]):
        per.add_row(str(name), f"{f1:.3f}", str(sum(row)))
    console.print(per)


def predict(
    model_dir: Path,
    data: Path,
    output: Path,
    *,
    missing: str = "error",
    threads=None,
    backend: str = "torch",
) -> int:
    from ..data.sequences import read_sequences
    from ..outfiles import atomic_output

    if backend == "onnx":
        clf = _onnx_classifier(Path(model_dir), threads)
    else:
        from ..api.classifier import SequenceClassifier

        clf = SequenceClassifier.load(model_dir, threads=threads)
    seqs = read_sequences(data, missing=missing)
    proba = clf.predict_proba(seqs)
    with atomic_output(output, flag="--output") as f:
        w = csv.writer(f)
        w.writerow(["id", "predicted"] + [f"p_{c}" for c in clf.classes_])
        for sid, p in zip(seqs.ids, proba):
            w.writerow([sid, clf.classes_[int(p.argmax())]] + [f"{v:.6f}" for v in p])
    return len(seqs.ids)


def _onnx_classifier(model_dir: Path, threads):
    """DIR/model.onnx as an OnnxClassifier, refused if it was exported from other weights."""
    from ..artifacts import load_model_dir
    from ..errors import ArtifactError
    from ..infer.onnx_runtime import OnnxClassifier, weights_digest

    files = load_model_dir(model_dir, kind="classifier")
    path = files.path / "model.onnx"
    if not path.is_file():
        raise ArtifactError(
            f"{path}: missing; write it first with `seqshape export {model_dir} --format onnx`"
        )
    clf = OnnxClassifier(path, threads=threads)
    source = clf.metadata.get("origin", {}).get("weights_sha256")
    if source != weights_digest(files.path / "model.safetensors"):
        raise ArtifactError(
            f"{path}: exported from other weights than {files.path / 'model.safetensors'}; "
            f"export it again with `seqshape export {model_dir} --format onnx`"
        )
    return clf


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Run directory to write.")] = Path("runs/demo"),
    epochs: Epochs = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    threads: Threads = None,
    progress: Progress = True,
) -> None:
    """Train and evaluate on bundled real data: JapaneseVowels speaker classification (many-to-one)
    and AirPassengers forecasting (autoregressive, against baselines)."""
    from .. import datasets
    from ..api.classifier import SequenceClassifier

    console = Console(stderr=True)
    console.print(
        "[bold]seqshape demo[/]: many-to-one classification on JapaneseVowels "
        "(UEA/UCI; 270 train / 370 test sequences, 12 features, lengths 7-29, 9 speakers)"
    )
    train_set = datasets.load_japanese_vowels("train")
    test_set = datasets.load_japanese_vowels("test")
    kw = {"epochs": epochs} if epochs else {}
    clf = SequenceClassifier(seed=seed, progress=progress, threads=threads, **kw)
    model_dir = Path(out) / "classify"
    result = train_and_save(clf, train_set, None, test_set, model_dir)
    print_report({**result["test"], "data": "JapaneseVowels test split"})
    summary = {
        "mode": "classify",
        "test_accuracy": result["test"]["accuracy"],
        "test_macro_f1": result["test"]["macro_f1"],
        "train_seconds": result["train_seconds"],
        "model_dir": str(model_dir),
        "confusion_matrix_png": str(model_dir / "confusion_matrix.png"),
    }
    console.print(f"wrote {model_dir} (model, metrics.json, confusion_matrix.png, train_log.jsonl)")
    from .forecast import demo_forecast

    console.print(
        "\n[bold]seqshape demo[/]: forecasting AirPassengers (monthly 1949-1960): train 1949-57, "
        "validate 1958, backtest 1959-60 at K=12 against naive, seasonal naive and linear"
    )
    forecast = demo_forecast(Path(out), seed=seed, threads=threads, progress=progress)
    console.print(f"wrote {forecast['model_dir']} (model, metrics.json, forecast.png)")
    (Path(out) / "summary.json").write_text(
        json.dumps({"classify": summary, "forecast": forecast}, indent=2) + "\n"
    )
