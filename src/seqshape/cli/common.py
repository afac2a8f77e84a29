"""Options shared by every `seqshape train` subcommand, and the --config TOML merge."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Out = Annotated[Path, typer.Option("--out", help="Model directory to write (replaced atomically).")]
Epochs = Annotated[int | None, typer.Option("--epochs", help="Maximum training epochs.")]
BatchSize = Annotated[int | None, typer.Option("--batch-size", help="Sequences per batch.")]
Lr = Annotated[float | None, typer.Option("--lr", help="AdamW learning rate.")]
Seed = Annotated[
    int | None, typer.Option("--seed", help="Random seed (training is deterministic on CPU).")
]
Hidden = Annotated[int | None, typer.Option("--hidden", help="LSTM hidden size H.")]
Layers = Annotated[int | None, typer.Option("--layers", help="Stacked LSTM layers L.")]
Cell = Annotated[str | None, typer.Option("--cell", help="Recurrent cell: lstm | gru.")]
Dropout = Annotated[float | None, typer.Option("--dropout", help="Dropout rate.")]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML file with the same keys as the flags (epochs, batch_size, lr, seed, hidden, "
        "layers, ...); flags given on the command line win.",
    ),
]
Threads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="Compute threads (default: the cores other work leaves idle, from the 1-minute load average).",
    ),
]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue an interrupted run from its checkpoint (OUT.ckpt/ beside --out) with the "
        "same data and options; ends with the same weights as an uninterrupted run. Without a "
        "checkpoint, training starts afresh.",
    ),
]
CheckpointEvery = Annotated[
    int | None,
    typer.Option(
        "--checkpoint-every",
        help="Also checkpoint every N optimizer steps, not only at the end of each epoch.",
    ),
]


def checkpoint_dir(out: Path) -> Path:
    """Where `seqshape train` keeps a run's checkpoint: OUT.ckpt/ beside the model directory.

    It lives while training runs (or after it is killed or fails), and is removed once the model
    directory is written.
    """
    out = Path(out)
    return out.with_name(out.name + ".ckpt")


SHARED_KEYS = ("epochs", "batch_size", "lr", "seed", "hidden", "layers")


def merge_config(
    config_path: Path | None, cli: dict[str, Any], allowed: set[str]
) -> dict[str, Any]:
    """Values from --config FILE.toml, overridden by flags given on the command line (not None)."""
    merged: dict[str, Any] = {}
    if config_path is not None:
        try:
            with open(config_path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{config_path}: no such config file") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{config_path}: not valid TOML ({e})") from None
        # accept a [train] table or top-level keys; dashes or underscores
        table = data.get("train", data)
        for key, value in table.items():
            k = key.replace("-", "_")
            if k not in allowed:
                raise ConfigError(
                    f"{config_path}: unknown key {key!r}; expected one of {', '.join(sorted(allowed))}"
                )
            merged[k] = value
    for k, v in cli.items():
        if v is not None:
            merged[k] = v
    return merged
