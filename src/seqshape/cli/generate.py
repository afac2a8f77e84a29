"""`seqshape train generate`, and evaluate/predict for the kind "generator".

Data file: a per-step long CSV ``sequence_id, step, <static columns...>, <target columns>``; the
static columns hold the same value on every row of a sequence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    Lr,
    Out,
    Progress,
    Resume,
    Seed,
    Threads,
)
from .seqcommon import (
    Beam,
    Test,
    Val,
    _check_missing,
    _fit_and_save,
    _need_columns,
    _options,
    _write_csv,
    print_report,
)

GENERATE_KEYS = set(SHARED_KEYS) | {
    "embedding",
    "cell",
    "dropout",
    "beam",
    "patience",
    "val_fraction",
    "weight_decay",
}


# -- generate -----------------------------------------------------------------------------------
def _read_generate(path: Path, columns: dict, *, require_targets: bool = True):
    from ..api.tagger import read_step_csv

    table = read_step_csv(
        path,
        targets=columns["targets"],
        numeric_targets=not columns["tokens"],
        static=columns["static"],
        features=[],
        require_targets=require_targets,
    )
    targets = table.targets
    if targets is not None and columns["tokens"]:
        targets = [list(t) for t in targets]
    return table, targets


@train_app.command("generate")
def train_generate(
    train: Annotated[Path, typer.Option("--train", help="Per-step long CSV.")],
    out: Out,
    static: Annotated[
        list[str], typer.Option("--static", help="Static input column(s) F; repeatable.")
    ],
    target: Annotated[
        list[str], typer.Option("--target", help="Per-step output column(s) O; repeatable.")
    ],
    tokens: Annotated[
        bool, typer.Option("--tokens", help="The (single) target column holds tokens.")
    ] = False,
    val: Val = None,
    test: Test = None,
    embedding: Annotated[
        int | None, typer.Option("--embedding", help="Token embedding size E.")
    ] = None,
    beam: Beam = None,
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
    """Train a one-to-many generator: a static vector (F) -> a sequence (U, O) or tokens."""
    from ..api.generator import SequenceGenerator

    _check_missing(missing)
    if tokens and len(target) != 1:
        raise ConfigError(f"--tokens: expected one --target column, got {len(target)}")
    opts = _options(
        config,
        dict(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            hidden=hidden,
            layers=layers,
            embedding=embedding,
            cell=cell,
            dropout=dropout,
            beam=beam,
        ),
        GENERATE_KEYS,
    )
    columns = {"static": list(static), "targets": list(target), "tokens": tokens}
    table, targets = _read_generate(train, columns)
    val_table, val_targets = _read_generate(val, columns) if val else (None, None)
    test_table, test_targets = _read_generate(test, columns) if test else (None, None)
    model = SequenceGenerator(progress=progress, threads=threads, **opts)
    model.columns = columns
    result = _fit_and_save(
        model,
        (table.static, targets),
        {"V_val": val_table.static if val_table else None, "Y_val": val_targets},
        out,
        (lambda m: m.evaluate(test_table.static, test_targets)) if test_table else None,
        resume,
        checkpoint_every,
    )
    if result is None:  # torchrun, rank > 0
        return
    if "test" in result:
        print_report({**result["test"], "kind": "generator", "data": str(test)})
    typer.echo(f"model written to {out}", err=True)


# -- evaluate / predict ---------------------------------------------------------------------------
def evaluate(
    model_dir: Path, data: Path, *, missing: str = "error", threads=None, beam: int | None = None
) -> dict:
    """The `evaluate` command for kind "generator": metrics of MODEL_DIR on DATA."""
    from ..api.generator import SequenceGenerator

    _check_missing(missing)
    model = SequenceGenerator.load(model_dir, threads=threads)
    _need_columns(model, model_dir)
    table, targets = _read_generate(data, model.columns)
    result = model.evaluate(table.static, targets, beam_size=beam)
    return {**result, "kind": "generator", "model": str(model_dir), "data": str(data)}


def predict(
    model_dir: Path, data: Path, output: Path, *, missing: str = "error", threads=None
) -> int:
    """Write predictions as CSV; returns the number of sequences predicted."""
    from ..api.generator import SequenceGenerator

    _check_missing(missing)
    model = SequenceGenerator.load(model_dir, threads=threads)
    _need_columns(model, model_dir)
    table, _ = _read_generate(data, model.columns, require_targets=False)
    preds = model.predict(table.static)
    targets = model.columns["targets"]
    if model.columns["tokens"]:
        rows = (
            [sid, t, tok]
            for sid, p in zip(table.ids, preds, strict=True)
            for t, tok in enumerate(p)
        )
    else:
        rows = (
            [sid, t] + [f"{v:.6g}" for v in p[t]]
            for sid, p in zip(table.ids, preds, strict=True)
            for t in range(len(p))
        )
    _write_csv(output, ["sequence_id", "step", *targets], rows)
    return len(table.ids)
