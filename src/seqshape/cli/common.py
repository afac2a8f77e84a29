"""Options shared by every `seqshape train` subcommand, and the --config TOML merge."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ..errors import ConfigError
from ..limits import MAX_BEAM, MAX_HORIZON, MAX_SAMPLES
from ..models.encoder import CELLS
from ..models.heads import HEADS

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
LrSchedule = Annotated[
    Literal["plateau", "cosine"] | None,
    typer.Option(
        "--lr-schedule",
        help="plateau (halve the lr when validation stalls) | cosine (anneal it to lr/100 over "
        "the epochs).",
    ),
]
# the choices come from the registries (models/encoder.CELLS, models/heads.HEADS): a new cell or
# head needs no edit here
Cell = Annotated[
    Literal[tuple(CELLS)] | None,
    typer.Option("--cell", help=f"Recurrent cell: {' | '.join(CELLS)}."),
]
Loss = Annotated[
    Literal[tuple(HEADS)] | None,
    typer.Option(
        "--loss",
        help=f"The forecast head: {' | '.join(HEADS)} (poisson, negbin: counts >= 0; see "
        "docs/forecast.md).",
    ),
]
Dropout = Annotated[float | None, typer.Option("--dropout", help="Dropout rate.")]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML file with the same keys as the flags (epochs, batch_size, lr, seed, hidden, "
        "layers, ...); flags given on the command line win.",
    ),
]


def _threads(value: int | None) -> int | None:
    """--threads, checked; the command owns its process, so the count is set for all of it
    (an estimator's fit and predict restore whatever they find, see api/base.py)."""
    from .. import runtime
    from ..limits import check_threads

    value = check_threads(value)
    runtime.configure(value)
    return value


Threads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="Compute threads, 1 to the usable cores (default: the cores other work leaves idle, "
        "from the 1-minute load average).",
        callback=_threads,
    ),
]
MaxHorizon = Annotated[
    int | None,
    typer.Option(
        "--max-horizon",
        help=f"Raise the limit on K (default {MAX_HORIZON}, as the server's; "
        "env SEQSHAPE_MAX_HORIZON).",
    ),
]
MaxBeam = Annotated[
    int | None,
    typer.Option(
        "--max-beam", help=f"Raise the limit on --beam (default {MAX_BEAM}; env SEQSHAPE_MAX_BEAM)."
    ),
]
MaxSamples = Annotated[
    int | None,
    typer.Option(
        "--max-samples",
        help=f"Raise the limit on --samples (default {MAX_SAMPLES}; env SEQSHAPE_MAX_SAMPLES).",
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


@dataclass(frozen=True)
class KeySpec:
    """The type and range of one training option, as a flag and as a --config key alike.

    ``kind`` is int, float, bool, str or "floats" (a list of numbers; a TOML array or a
    comma-separated string). Numbers are checked against ``lo``/``hi`` (inclusive unless
    ``open_lo``/``open_hi``); strings against ``choices``.
    """

    kind: Any
    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False
    open_hi: bool = False
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        name = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
            self.kind, "a list of numbers"
        )
        if self.lo is None and self.hi is None:
            return name
        lo = "" if self.lo is None else f"{self.lo:g} {'<' if self.open_lo else '<='} "
        hi = "" if self.hi is None else f" {'<' if self.open_hi else '<='} {self.hi:g}"
        return f"{name}, {lo}x{hi}"

    def _in_range(self, x: float) -> bool:
        if not math.isfinite(x):
            return False
        if self.lo is not None and (x <= self.lo if self.open_lo else x < self.lo):
            return False
        return not (self.hi is not None and (x >= self.hi if self.open_hi else x > self.hi))

    def check(self, value: Any) -> Any:
        """``value`` as this option's type; ValueError(description) where it is not."""
        k = self.kind
        ok = False
        if k is bool:
            ok = isinstance(value, bool)
        elif k is int:
            ok = isinstance(value, int) and not isinstance(value, bool) and self._in_range(value)
        elif k is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and self._in_range(float(value))
            value = float(value) if ok else value
        elif k is str:
            ok = isinstance(value, str) and (self.choices is None or value in self.choices)
        else:  # floats
            items = value
            if isinstance(value, str):
                items = [v.strip() for v in value.split(",") if v.strip()]
                try:
                    items = [float(v) for v in items]
                except ValueError:
                    items = None
            if isinstance(items, list | tuple) and items:
                ok = all(
                    isinstance(v, int | float)
                    and not isinstance(v, bool)
                    and self._in_range(float(v))
                    for v in items
                )
                value = tuple(float(v) for v in items) if ok else value
        if not ok:
            raise ValueError(self.describe())
        return value


_POS = KeySpec(int, lo=1)
_FRACTION = KeySpec(float, lo=0.0, hi=1.0, open_hi=True)
_PROB = KeySpec(float, lo=0.0, hi=1.0)
# Every training option a flag or a --config key can set: one table, so a TOML file is held to the
# same types and ranges as the command line. The estimators check again (they are the API).
KEY_SPECS: dict[str, KeySpec] = {
    "epochs": _POS,
    "batch_size": _POS,
    "lr": KeySpec(float, lo=0.0, open_lo=True),
    "seed": KeySpec(int, lo=0, hi=2**63 - 1),
    "hidden": KeySpec(int, lo=1, hi=16384),
    "layers": KeySpec(int, lo=1, hi=64),
    "cell": KeySpec(str, choices=tuple(CELLS)),
    "dropout": _FRACTION,
    "bidirectional": KeySpec(bool),
    "pooling": KeySpec(str, choices=("last", "mean", "attention")),
    "frontend": KeySpec(str, choices=("conv", "none")),
    "kernels": KeySpec(int, lo=0),
    "kernel_weight": _PROB,
    "patience": KeySpec(int, lo=0),
    "lr_patience": KeySpec(int, lo=0),
    "val_fraction": _FRACTION,
    "weight_decay": KeySpec(float, lo=0.0),
    "label_smoothing": _FRACTION,
    "lookback": _POS,
    "horizon": _POS,
    "strategy": KeySpec(str, choices=("auto", "autoregressive", "direct")),
    "loss": KeySpec(str, choices=tuple(HEADS)),  # the forecaster's heads
    "quantiles": KeySpec("floats", lo=0.0, hi=1.0, open_lo=True, open_hi=True),
    "window_norm": KeySpec(str, choices=("none", "last", "mean", "log")),
    "segment": _POS,
    "highway": KeySpec(int, lo=0),
    "train_highway": KeySpec(bool),
    "keep_start": KeySpec(bool),
    "lr_schedule": KeySpec(str, choices=("plateau", "cosine")),
    "sampling_ratio": _PROB,
    "max_windows_per_epoch": _POS,
    "stride": _POS,
    "attention": KeySpec(str, choices=("none", "additive", "general", "dot")),
    "beam": KeySpec(int, lo=1, hi=MAX_BEAM),
    "length_penalty": KeySpec(float, lo=0.0, hi=10.0),
    "embedding": _POS,
    "teacher_forcing": _PROB,
    "season": _POS,
    "start": KeySpec(str, choices=("best", "least_squares", "naive", "seasonal_naive")),
}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a TOML file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or e})") from None


def merge_config(
    config_path: Path | None, cli: dict[str, Any], allowed: set[str]
) -> dict[str, Any]:
    """Values from --config FILE.toml, overridden by flags given on the command line (not None).

    Every value, from the file or a flag, is checked against `KEY_SPECS`: a wrong type, range or
    choice is a ConfigError naming the file and key (or the flag), what was expected and what came.
    Nothing is coerced: ``lr = true`` or ``bidirectional = "yes"`` is an error, not 1.0 or True.
    """
    merged: dict[str, Any] = {}
    if config_path is not None:
        data = _read_toml(Path(config_path))
        # accept a [train] table or top-level keys; dashes or underscores
        table = data.get("train", data)
        if not isinstance(table, dict):
            raise ConfigError(f"{config_path}: key 'train': expected a table, got {table!r}")
        for key, value in table.items():
            k = key.replace("-", "_")
            if k not in allowed:
                raise ConfigError(
                    f"{config_path}: unknown key {key!r}; expected one of {', '.join(sorted(allowed))}"
                )
            merged[k] = _checked(k, value, f"{config_path}: key {key!r}")
    for k, v in cli.items():
        if v is not None:
            merged[k] = _checked(k, v, "--" + k.replace("_", "-"))
    return merged


def _checked(key: str, value: Any, where: str) -> Any:
    spec = KEY_SPECS.get(key)
    if spec is None:
        return value
    try:
        return spec.check(value)
    except ValueError as e:
        shown = repr(value) if not isinstance(value, dict) else "a table"
        if len(shown) > 60:
            shown = shown[:57] + "..."
        raise ConfigError(f"{where}: expected {e}, got {shown}") from None
