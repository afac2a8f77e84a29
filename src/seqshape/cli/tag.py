"""`seqshape train tag`, and evaluate/predict for the kind "tagger".

Data file: a per-step long CSV ``sequence_id, step, <features...>, <label | target columns>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError, DataError
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
    Lr,
    Out,
    Progress,
    Resume,
    Seed,
    Threads,
)
from .seqcommon import (
    Test,
    Val,
    _check_missing,
    _fit_and_save,
    _need_columns,
    _options,
    _write_csv,
    print_report,
)

TAG_KEYS = set(SHARED_KEYS) | {
    "bidirectional",
    "cell",
    "dropout",
    "patience",
    "val_fraction",
    "weight_decay",
}


def _tag_columns(label: str | None, target: list[str] | None) -> dict:
    if target and label:
        raise ConfigError("--label and --target: give --label (classes) or --target (values)")
    if target:
        return {"task": "regression", "targets": list(target)}
    return {"task": "classification", "targets": [label or "label"]}


def _read_tag(path: Path, columns: dict, *, require_targets: bool = True):
    from ..api.tagger import read_step_csv

    return read_step_csv(
        path,
        targets=columns["targets"],
        numeric_targets=columns["task"] == "regression",
        features=columns.get("features"),
        require_targets=require_targets,
    )


@train_app.command("tag")
def train_tag(
    train: Annotated[Path, typer.Option("--train", help="Per-step long CSV.")],
    out: Out,
    label: Annotated[
        str | None, typer.Option("--label", help="Per-step class column (default: label).")
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", help="Per-step value column(s) for regression; repeatable."),
    ] = None,
    val: Val = None,
    test: Test = None,
    bidirectional: Annotated[
        bool | None,
        typer.Option("--bidirectional/--unidirectional", help="Bidirectional encoder (D=2)."),
    ] = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    seed: Seed = None,
    hidden: Hidden = None,
    layers: Layers = None,
    cell: Cell = None,
    dropout: Dropout = None,
    missing: Annotated[str, typer.Option("--missing", help="Only 'error' here.")] = "error",
    config: ConfigFile = None,
    threads: Threads = None,
    progress: Progress = True,
    resume: Resume = False,
    checkpoint_every: CheckpointEvery = None,
) -> None:
    """Train an aligned tagger: (T, F) sequences -> one label or value vector per step."""
    from ..api.tagger import SequenceTagger

    _check_missing(missing)
    opts = _options(
        config,
        dict(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            hidden=hidden,
            layers=layers,
            bidirectional=bidirectional,
            cell=cell,
            dropout=dropout,
        ),
        TAG_KEYS,
    )
    columns = _tag_columns(label, target)
    data = _read_tag(train, columns)
    if not data.feature_names:
        raise DataError(f"{train} line 1: expected at least one feature column besides the targets")
    columns["features"] = data.feature_names
    val_data = _read_tag(val, columns) if val else None
    test_data = _read_tag(test, columns) if test else None
    model = SequenceTagger(task=columns["task"], progress=progress, threads=threads, **opts)
    model.columns = columns
    result = _fit_and_save(
        model,
        (data.features, data.targets),
        {
            "X_val": val_data.features if val_data else None,
            "Y_val": val_data.targets if val_data else None,
        },
        out,
        (lambda m: m.evaluate(test_data.features, test_data.targets)) if test_data else None,
        resume,
        checkpoint_every,
    )
    if result is None:  # torchrun, rank > 0
        return
    if "test" in result:
        print_report(
            {**result["test"], "kind": "tagger", "task": columns["task"], "data": str(test)}
        )
    typer.echo(f"model written to {out}", err=True)


# -- evaluate / predict ---------------------------------------------------------------------------
def evaluate(
    model_dir: Path, data: Path, *, missing: str = "error", threads=None, beam: int | None = None
) -> dict:
    """The `evaluate` command for kind "tagger": metrics of MODEL_DIR on DATA."""
    from ..api.tagger import SequenceTagger

    _check_missing(missing)
    model = SequenceTagger.load(model_dir, threads=threads)
    _need_columns(model, model_dir)
    table = _read_tag(data, model.columns)
    result = model.evaluate(table.features, table.targets)
    result["task"] = model.task
    return {**result, "kind": "tagger", "model": str(model_dir), "data": str(data)}


def predict(
    model_dir: Path, data: Path, output: Path, *, missing: str = "error", threads=None
) -> int:
    """Write predictions as CSV; returns the number of sequences predicted."""
    from ..api.tagger import SequenceTagger

    _check_missing(missing)
    model = SequenceTagger.load(model_dir, threads=threads)
    _need_columns(model, model_dir)
    table = _read_tag(data, model.columns, require_targets=False)
    if model.task == "classification":
        proba = model.predict_proba(table.features)
        header = ["sequence_id", "step", "predicted"] + [f"p_{c}" for c in model.classes_]
        rows = (
            [sid, t, model.classes_[int(p[t].argmax())]] + [f"{v:.6f}" for v in p[t]]
            for sid, p in zip(table.ids, proba, strict=True)
            for t in range(len(p))
        )
    else:
        values = model.predict(table.features)
        header = ["sequence_id", "step"] + model.columns["targets"]
        rows = (
            [sid, t] + [f"{v:.6g}" for v in y[t]]
            for sid, y in zip(table.ids, values, strict=True)
            for t in range(len(y))
        )
    _write_csv(output, header, rows)
    return len(table.ids)
