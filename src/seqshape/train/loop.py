"""A lean training loop that knows nothing of a particular model.

A mode hands it the model, a function that yields the batches of an epoch, a function that turns a
batch into a scalar loss (the model's forward + the mode's loss) and a validation function returning
named metrics. The loop does AdamW, gradient clipping, learning-rate decay on plateaus, early stopping
on the monitored validation metric with best-weights restore, a progress bar and a JSONL log.

Crash safety: with a ``checkpoint_dir`` the loop writes a checkpoint (checkpoint.py: one
safetensors file, no pickle, replaced atomically) at the end of every epoch and, with
``checkpoint_every=N``, after every N optimizer steps. ``resume=True`` continues from it (weights,
best weights, optimizer, scheduler, RNG states, position down to the batch, history, patience) and
ends with the same weights, bit for bit on CPU, as a run that was never interrupted. That asks one
thing of the mode: ``train_batches(epoch)`` yields the same batches for the same epoch in every
process (shuffle from the seed and the epoch number, as BucketBatchSampler does, never from the
global RNG), so that a run resumed mid-epoch can skip the batches it already did.

Under torchrun (WORLD_SIZE > 1) the same loop trains with DistributedDataParallel: each rank takes
its share of every epoch's batches, rank 0 validates on the whole validation set and sends the row
to all ranks, so that every decision (LR decay, early stop, best weights) is the same everywhere,
and only rank 0 writes the log, the checkpoints and the progress bar (see distributed.py).
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
from ..errors import ArtifactError, ConfigError, TrainingError
from ..progress import epoch_line, interactive, print_line
from . import distributed
from .checkpoint import (
    checkpoint_path,
    load_checkpoint,
    rng_states,
    save_checkpoint,
    set_rng_states,
)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = 100
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    patience: int = 20  # epochs without improvement before stopping (0: never stop early)
    lr_patience: int = 6  # epochs without improvement before halving the learning rate
    # "plateau": halve the lr after lr_patience epochs without improvement; "cosine": anneal it
    # from lr to lr/100 over `epochs` (one step per epoch), whatever the validation does
    lr_schedule: str = "plateau"
    seed: int = 0
    monitor: str = "val_loss"
    monitor_mode: str = "min"
    # validate the starting weights before epoch 1 and keep them as a candidate: an epoch must
    # beat them to be kept. For models that start from a fitted solution (a forecaster's
    # least-squares highway), so training never returns something worse on validation.
    validate_start: bool = False
    # with validate_start: the fraction by which an epoch must beat the start to replace it (0.05:
    # 5% lower in "min" mode). A start that is a fitted baseline is not given up for a gain
    # within the noise of a small validation set.
    start_margin: float = 0.0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {v!r}")
        if not (isinstance(self.lr, int | float) and self.lr > 0):
            raise ConfigError(f"lr: expected a positive number, got {self.lr!r}")
        if self.monitor_mode not in ("min", "max"):
            raise ConfigError(f"monitor_mode: expected 'min' or 'max', got {self.monitor_mode!r}")
        if not (isinstance(self.start_margin, int | float) and 0 <= self.start_margin < 1):
            raise ConfigError(
                f"start_margin: expected a fraction in [0, 1), got {self.start_margin!r}"
            )
        if self.patience < 0 or self.lr_patience < 0:
            raise ConfigError("patience, lr_patience: expected >= 0")
        if self.lr_schedule not in ("plateau", "cosine"):
            raise ConfigError(
                f"lr_schedule: expected 'plateau' or 'cosine', got {self.lr_schedule!r}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_metric: float | None = None
    seconds: float = 0.0
    stopped_early: bool = False
    # where a resumed run picked up: {"epoch": E, "step": S} (S batches of epoch E were done)
    resumed_from: dict | None = None
    # validate_start: the validation metrics of the starting weights (best_epoch 0 if kept)
    start: dict | None = None

    def summary(self, monitor: str, **extra) -> dict:
        """What an estimator records in metrics.json: best epoch and metric, epochs, time, the
        validation metrics of the best epoch, and ``extra`` (data sizes, padding waste)."""
        out = {
            "best_epoch": self.best_epoch,
            "best_" + monitor: self.best_metric,
            "epochs_run": len(self.history),
            "train_seconds": round(self.seconds, 3),
            **extra,
        }
        if self.start is not None:
            out.update({"start_" + k: v for k, v in self.start.items() if k.startswith("val_")})
        best = next((r for r in self.history if r.get("epoch") == self.best_epoch), None)
        if self.best_epoch == 0 and self.start is not None:
            best = self.start
        if best is not None:
            out.update({k: v for k, v in best.items() if k.startswith("val_")})
        return out


@dataclass
class _Position:
    """Where the loop stands; saved in every checkpoint."""

    epoch: int = 0  # the epoch in progress, or the last one finished
    batches_done: int = 0  # batches of `epoch` done
    epoch_done: bool = True  # `epoch` is complete (validated, scheduler stepped)
    global_step: int = 0  # optimizer steps since the start of training
    total: float = 0.0  # sum of loss * batch size over `epoch`'s batches done
    count: int = 0  # sequences in `epoch`'s batches done
    since_best: int = 0  # epochs without improvement of the monitored metric


def _better(a: float, b: float | None, mode: str) -> bool:
    if b is None or math.isnan(b):
        return True
    return a < b if mode == "min" else a > b


def _fingerprint(
    model: nn.Module, config: TrainConfig, n_batches: int, data_digest: str | None = None
) -> dict:
    """What must not change between an interrupted run and its resumption."""
    train_config = config.to_dict()
    train_config.pop("epochs")  # a resumed run may train for more (or fewer) epochs
    out = {
        "train_config": train_config,
        "n_batches": n_batches,
        "tensors": {name: list(t.shape) for name, t in model.state_dict().items()},
    }
    if data_digest is not None:
        out["data_sha256"] = data_digest
    return out


def _check_resumable(saved: dict, now: dict, where: Path) -> None:
    hint = "resume with the options of the interrupted run, or train afresh without resuming"
    before = saved.get("fingerprint")
    if not isinstance(before, dict):
        raise ConfigError(f"{where}: the checkpoint has no fingerprint; {hint}")
    for key, value in now["train_config"].items():
        old = before.get("train_config", {}).get(key)
        if old != value:
            raise ConfigError(
                f"{where}: the checkpoint was trained with {key}={old!r}, this run asks "
                f"{key}={value!r}; {hint}"
            )
    if before.get("world_size", 1) != now.get("world_size", 1):
        raise ConfigError(
            f"{where}: the checkpoint was written by {before.get('world_size', 1)} processes, "
            f"this run has {now.get('world_size', 1)}; {hint}"
        )
    if "data_sha256" in now and before.get("data_sha256") != now["data_sha256"]:
        old = before.get("data_sha256")
        raise ConfigError(
            f"{where}: the training data differ from the interrupted run's (data sha256 "
            f"{old[:12] + '...' if old else 'not recorded'} in the checkpoint, "
            f"{now['data_sha256'][:12]}... now); resume with the data of the interrupted run, or "
            "train afresh without resuming"
        )
    if before.get("n_batches") != now["n_batches"]:
        raise ConfigError(
            f"{where}: the checkpoint has {before.get('n_batches')} batches per epoch, this run "
            f"{now['n_batches']} (other data or batch size?); {hint}"
        )
    old_t, new_t = before.get("tensors", {}), now["tensors"]
    for name in sorted(set(old_t) | set(new_t)):
        if old_t.get(name) != new_t.get(name):
            raise ConfigError(
                f"{where}: model tensor {name}: the checkpoint has shape {old_t.get(name)}, this "
                f"model {new_t.get(name)} (other model options?); {hint}"
            )


def _check_checkpoint_options(
    checkpoint_dir: str | Path | None, checkpoint_every: int | None, resume: bool
) -> Path | None:
    if checkpoint_every is not None and (
        isinstance(checkpoint_every, bool)
        or not isinstance(checkpoint_every, int)
        or checkpoint_every < 0
    ):
        raise ConfigError(
            f"checkpoint_every: expected a positive number of steps (0 or None: off), "
            f"got {checkpoint_every!r}"
        )
    if checkpoint_dir is None and (checkpoint_every or resume):
        what = "resume" if resume else "checkpoint_every"
        raise ConfigError(f"{what}: needs a checkpoint_dir to write checkpoints to")
    return Path(checkpoint_dir) if checkpoint_dir is not None else None


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
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    data_digest: str | None = None,
    generators: dict[str, torch.Generator] | None = None,
    device: torch.device | None = None,
    callback: Callable[[dict], object] | None = None,
) -> TrainResult:
    """Train ``model`` in place; on return it holds the best weights seen on validation.

    ``checkpoint_dir``: write a checkpoint there at the end of every epoch (and after every
    ``checkpoint_every`` optimizer steps, counted over the whole run). ``resume``: continue from the
    checkpoint in ``checkpoint_dir`` if there is one (else start afresh); the model, config and
    number of batches must be those of the interrupted run (ConfigError otherwise), and so must
    the training data where the mode passes ``data_digest`` (`checkpoint.data_digest` of what it
    trains and validates on). ``generators``: private RNGs the mode draws from while training
    (e.g. a seq2seq's teacher-forcing coin), checkpointed by name next to the global ones. A
    NaN/inf loss or gradient raises TrainingError naming the epoch and step, and leaves the last
    good checkpoint. ``device``: train there (the model is moved, each batch follows).
    ``callback``: called with a copy of each epoch's row (epoch, train_loss, the validation
    metrics, lr, seconds) on the main process; returning "stop" ends training after that epoch
    (the best epoch so far is kept, and ``stopped_early`` says so).
    """
    ckpt = _check_checkpoint_options(checkpoint_dir, checkpoint_every, resume)
    on_device = device is not None and torch.device(device).type != "cpu"
    if device is not None:
        model.to(device)
    multi = distributed.init(model)  # False unless torchrun started 2+ processes
    main = distributed.is_main()
    # rank 0 draws what one process draws; the other ranks draw their own dropout masks
    torch.manual_seed(config.seed + distributed.rank())
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=config.epochs, eta_min=config.lr / 100
        )
    else:
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode=config.monitor_mode, factor=0.5, patience=config.lr_patience
        )
    result = TrainResult()
    best_state = None
    pos = _Position()
    prior_seconds = 0.0
    pending_rng = None
    fingerprint = _fingerprint(model, config, n_batches, data_digest)
    generators = dict(generators or {})
    if multi:
        fingerprint["world_size"] = distributed.world()
    # from here on n_batches counts this rank's batches per epoch (all of them in one process)
    n_all, n_batches = n_batches, distributed.per_rank(n_batches)
    net = distributed.wrap(model)  # DDP under torchrun: the loss goes through its forward
    if resume:
        saved = load_checkpoint(ckpt)
        if saved is not None:
            where = checkpoint_path(ckpt)
            _check_resumable(saved, fingerprint, where)
            try:
                model.load_state_dict(saved["model"])
                opt.load_state_dict(saved["optimizer"])
                sched.load_state_dict(saved["scheduler"])
                best_state = saved["best_state"]
                pos = _Position(**saved["position"])
                kept = saved["result"]
                result = TrainResult(
                    history=list(kept["history"]),
                    best_epoch=kept["best_epoch"],
                    best_metric=kept["best_metric"],
                    stopped_early=kept["stopped_early"],
                    resumed_from={"epoch": pos.epoch, "step": pos.batches_done},
                    start=kept.get("start"),
                )
                prior_seconds = float(kept["seconds"])
                pending_rng = saved["rng"]
                for name, g in generators.items():  # nothing draws from them before the loop
                    g.set_state(saved["generators"][name])
                if multi:  # each rank's own RNG and partial epoch loss
                    mine = saved["ranks"][distributed.rank()]
                    pending_rng, pos.total, pos.count = mine["rng"], mine["total"], mine["count"]
            except (KeyError, TypeError, ValueError, RuntimeError) as e:
                raise ArtifactError(
                    f"{where}: malformed checkpoint ({type(e).__name__}: {e})"
                ) from None
    last_saved = f"after epoch {pos.epoch} step {pos.batches_done}" if result.resumed_from else None
    start = time.perf_counter()

    def elapsed() -> float:
        return prior_seconds + time.perf_counter() - start

    def kept_note() -> str:
        if last_saved is None:
            return "the weights before this step are kept"
        return f"the last good checkpoint, {last_saved}, is kept in {ckpt}"

    def save() -> None:
        nonlocal last_saved
        for name, p in model.named_parameters():
            if not torch.isfinite(p).all():
                raise TrainingError(
                    f"epoch {pos.epoch} step {pos.batches_done}: parameter {name} holds NaN or "
                    f"inf; training stopped ({kept_note()}; lower --lr or check the data)"
                )
        state = {
            "fingerprint": fingerprint,
            "position": asdict(pos),
            "result": {
                "history": result.history,
                "best_epoch": result.best_epoch,
                "best_metric": result.best_metric,
                "stopped_early": result.stopped_early,
                "start": result.start,
                "seconds": elapsed(),
            },
            "model": model.state_dict(),
            "best_state": best_state,
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": rng_states(),
            "generators": {name: g.get_state() for name, g in generators.items()},
        }
        if multi:
            state["ranks"] = distributed.all_ranks(
                {"rng": rng_states(), "total": pos.total, "count": pos.count}
            )
        if main:
            save_checkpoint(ckpt, state)
        last_saved = f"after epoch {pos.epoch} step {pos.batches_done}"

    log = open(log_path, "w") if log_path is not None and main else None  # noqa: SIM115
    if log is not None:
        for row in result.history:  # a resumed run's log starts with the epochs already done
            log.write(json.dumps(row) + "\n")
        log.flush()
    console = Console(stderr=True)
    # a live bar on a terminal; piped or logged, one plain line per epoch instead (progress.py)
    show = progress and main
    live = show and interactive()
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not live,
        transient=False,
    )
    if config.validate_start and validate is not None and result.resumed_from is None:
        # the starting weights are epoch 0: kept unless an epoch beats them on validation
        start_row: dict = {}
        if main:
            model.eval()
            with torch.no_grad():
                start_row = dict(validate(model))
        start_row = distributed.from_main(start_row)
        if config.monitor not in start_row:
            raise ConfigError(
                f"monitor: {config.monitor!r} is not a reported metric; have {sorted(start_row)}"
            )
        result.start = start_row
        result.best_metric = float(start_row[config.monitor])
        result.best_epoch = 0
        best_state = copy.deepcopy(model.state_dict())
    first_epoch = pos.epoch + 1 if pos.epoch_done else pos.epoch
    done_before = (first_epoch - 1) * n_batches + (0 if pos.epoch_done else pos.batches_done)
    epochs = range(0) if result.stopped_early else range(first_epoch, config.epochs + 1)
    try:
        with bar:
            task = bar.add_task(
                description, total=config.epochs * n_batches, completed=done_before, info=""
            )
            for epoch in epochs:
                model.train()
                epoch_start = time.perf_counter()
                batches = iter(distributed.shard(train_batches(epoch), n_all))
                if pos.epoch_done:
                    pos = _Position(
                        epoch=epoch,
                        epoch_done=False,
                        global_step=pos.global_step,
                        since_best=pos.since_best,
                    )
                else:  # resumed mid-epoch: the epoch's order is reproducible, skip what was done
                    for skipped in range(pos.batches_done):
                        if next(batches, None) is None:
                            raise ConfigError(
                                f"{checkpoint_path(ckpt)}: epoch {epoch} yields {skipped} "
                                f"batches, the checkpoint did {pos.batches_done} of them"
                            )
                if pending_rng is not None:
                    set_rng_states(pending_rng)
                    pending_rng = None
                for batch in batches:
                    step = pos.batches_done + 1
                    if on_device:
                        batch = batch.to(device)
                    loss = loss_fn(net, batch)
                    finite = bool(torch.isfinite(loss))
                    if not distributed.agree(finite):  # every rank stops at the same step
                        seen = float(loss.detach()) if not finite else "finite here, not elsewhere"
                        raise TrainingError(
                            f"epoch {epoch} step {step}: the loss is {seen}{distributed.where()}; "
                            f"training stopped ({kept_note()}; lower --lr or check the data)"
                        )
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if config.grad_clip > 0:
                        norm = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                        if not torch.isfinite(norm):
                            raise TrainingError(
                                f"epoch {epoch} step {step}: the gradient norm is {float(norm)}; "
                                f"training stopped ({kept_note()}; lower --lr or check the data)"
                            )
                    opt.step()
                    n = int(batch.x.shape[0])
                    pos.total += float(loss.detach()) * n
                    pos.count += n
                    pos.batches_done = step
                    pos.global_step += 1
                    bar.update(
                        task, advance=1, info=f"epoch {epoch} loss {pos.total / pos.count:.4f}"
                    )
                    if (
                        ckpt is not None
                        and checkpoint_every
                        and pos.global_step % checkpoint_every == 0
                        and step < n_batches
                    ):
                        save()
                row = {
                    "epoch": epoch,
                    "train_loss": pos.total / max(pos.count, 1),
                    "lr": opt.param_groups[0]["lr"],
                }
                if multi:  # the epoch over all ranks: mean loss, and each rank's share
                    shares = distributed.all_ranks((pos.total, pos.count))
                    total, count = sum(t for t, _ in shares), sum(c for _, c in shares)
                    row["train_loss"] = total / max(count, 1)
                    row["rank_sequences"] = [c for _, c in shares]
                if validate is not None and main:
                    model.eval()
                    with torch.no_grad():
                        row.update(validate(model))
                row = distributed.from_main(row)  # one row, hence one decision, on every rank
                if config.monitor not in row:
                    raise ConfigError(
                        f"monitor: {config.monitor!r} is not a reported metric; have {sorted(row)}"
                    )
                current = float(row[config.monitor])
                row["seconds"] = round(elapsed(), 3)
                result.history.append(row)
                if log is not None:
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                info = " ".join(
                    f"{k} {v:.4f}"
                    for k, v in row.items()
                    if k not in ("epoch", "lr", "seconds", "rank_sequences")
                )
                bar.update(task, info=f"epoch {epoch} {info}")
                if show and not live:
                    took = time.perf_counter() - epoch_start
                    print_line(epoch_line(epoch, config.epochs, row, took))
                if config.lr_schedule == "cosine":
                    sched.step()
                else:
                    sched.step(current)
                pos.epoch_done = True
                to_beat = result.best_metric
                if result.best_epoch == 0 and result.start is not None and to_beat is not None:
                    # the start is replaced only by a clear gain (start_margin)
                    m = config.start_margin
                    to_beat = (
                        to_beat * (1 - m) if config.monitor_mode == "min" else to_beat * (1 + m)
                    )
                if _better(current, to_beat, config.monitor_mode):
                    result.best_metric = current
                    result.best_epoch = epoch
                    best_state = copy.deepcopy(model.state_dict())
                    pos.since_best = 0
                else:
                    pos.since_best += 1
                    if config.patience and pos.since_best >= config.patience:
                        result.stopped_early = True
                if callback is not None:
                    answer = callback(dict(row)) if main else None
                    if distributed.from_main({"stop": answer == "stop"})["stop"]:
                        result.stopped_early = True
                if ckpt is not None:
                    save()
                if result.stopped_early:
                    bar.update(task, completed=config.epochs * n_batches)
                    break
    finally:
        if log is not None:
            log.close()
    if pending_rng is not None:  # resumed a finished run: leave the RNGs as it left them
        set_rng_states(pending_rng)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    distributed.barrier()  # every rank is done before rank 0 goes on to write the model
    result.seconds = elapsed()
    return result
