"""A lean training loop that knows nothing of a particular model.

A mode hands it the model, a function that yields the batches of an epoch, a function that turns a
batch into a scalar loss (the model's forward + the mode's loss) and a validation function returning
named metrics. The loop does AdamW, gradient clipping, learning-rate decay on plateaus, early stopping
on the monitored validation metric with best-weights restore, a progress bar and a JSONL log.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch import Tensor, nn

from ..batching import Batch
from ..errors import ConfigError, TrainingError


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = 100
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    patience: int = 20  # epochs without improvement before stopping (0: never stop early)
    lr_patience: int = 6  # epochs without improvement before halving the learning rate
    seed: int = 0
    monitor: str = "val_loss"
    monitor_mode: str = "min"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {v!r}")
        if not (isinstance(self.lr, int | float) and self.lr > 0):
            raise ConfigError(f"lr: expected a positive number, got {self.lr!r}")
        if self.monitor_mode not in ("min", "max"):
            raise ConfigError(f"monitor_mode: expected 'min' or 'max', got {self.monitor_mode!r}")
        if self.patience < 0 or self.lr_patience < 0:
            raise ConfigError("patience, lr_patience: expected >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_metric: float | None = None
    seconds: float = 0.0
    stopped_early: bool = False


def _better(a: float, b: float | None, mode: str) -> bool:
    if b is None or math.isnan(b):
        return True
    return a < b if mode == "min" else a > b


def fit(
    model: nn.Module,
    *,
    train_batches: Callable[[int], Iterable[Batch]],
    n_batches: int,
    loss_fn: Callable[[nn.Module, Batch], Tensor],
    validate: Callable[[nn.Module], dict[str, float]] | None,
    config: TrainConfig,
    progress: bool = True,
    log_path: Path | None = None,
    description: str = "training",
) -> TrainResult:
    """Train ``model`` in place; on return it holds the best weights seen on validation."""
    torch.manual_seed(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=config.monitor_mode, factor=0.5, patience=config.lr_patience
    )
    result = TrainResult()
    best_state = None
    since_best = 0
    start = time.perf_counter()
    log = open(log_path, "w") if log_path is not None else None  # noqa: SIM115
    console = Console(stderr=True)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not progress,
        transient=False,
    )
    try:
        with bar:
            task = bar.add_task(description, total=config.epochs * n_batches, info="")
            for epoch in range(1, config.epochs + 1):
                model.train()
                total, count = 0.0, 0
                for step, batch in enumerate(train_batches(epoch), start=1):
                    loss = loss_fn(model, batch)
                    if not torch.isfinite(loss):
                        raise TrainingError(
                            f"epoch {epoch} step {step}: the loss is {float(loss)}; training stopped "
                            f"(the last good weights are kept; lower --lr or check the data)"
                        )
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if config.grad_clip > 0:
                        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                    opt.step()
                    n = int(batch.x.shape[0])
                    total += float(loss.detach()) * n
                    count += n
                    bar.update(task, advance=1, info=f"epoch {epoch} loss {total / count:.4f}")
                row = {
                    "epoch": epoch,
                    "train_loss": total / max(count, 1),
                    "lr": opt.param_groups[0]["lr"],
                }
                if validate is not None:
                    model.eval()
                    with torch.no_grad():
                        row.update(validate(model))
                if config.monitor not in row:
                    raise ConfigError(
                        f"monitor: {config.monitor!r} is not a reported metric; have {sorted(row)}"
                    )
                current = float(row[config.monitor])
                row["seconds"] = round(time.perf_counter() - start, 3)
                result.history.append(row)
                if log is not None:
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                info = " ".join(
                    f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "lr", "seconds")
                )
                bar.update(task, info=f"epoch {epoch} {info}")
                sched.step(current)
                if _better(current, result.best_metric, config.monitor_mode):
                    result.best_metric = current
                    result.best_epoch = epoch
                    best_state = copy.deepcopy(model.state_dict())
                    since_best = 0
                else:
                    since_best += 1
                    if config.patience and since_best >= config.patience:
                        result.stopped_early = True
                        bar.update(task, completed=config.epochs * n_batches)
                        break
    finally:
        if log is not None:
            log.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - start
    return result
