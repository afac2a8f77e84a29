"""Data-parallel training over several processes, started by torchrun or by the caller.

``torchrun --nproc_per_node=N -m seqshape train classify ...`` starts N copies of one command and
tells each its place through environment variables (RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Launchers such as Ray Train's TorchTrainer start the
workers and their process group themselves before they call the user's function. `train.loop.fit`
uses this module so that the copies train one model together:

- the process group starts on the first `fit` (`init`): gloo when the model is on the CPU,
  NCCL (with gloo beside it for small CPU messages) when it is on a GPU. A group the caller
  started before (``torch.distributed.is_initialized()``) is used as it is: its rank and world
  size, its backend (which must carry CPU tensors), its timeout; seqshape neither starts nor
  ends it (`shutdown` leaves it alone);
- the model is wrapped in DistributedDataParallel (`wrap`): every optimizer step averages the
  gradients of all ranks, so the weights stay identical everywhere;
- each epoch's batches are dealt out (`shard`): rank r takes batches r, r+W, r+2W, ... of the
  epoch's length-bucketed order, and every rank gets the same number of batches (the last ranks
  wrap around to the first batches), because a rank with one step more would wait forever;
- rank 0 validates on the whole validation set and sends the row to every rank (`from_main`),
  so the learning-rate decay, the early stop and the best-weights restore are the same decisions
  everywhere: no rank can run an epoch more than another;
- only rank 0 writes checkpoints, logs, the progress bar and the model directory (`is_main`).

Without torchrun or a caller's group (WORLD_SIZE unset or 1) every helper is a no-op and `fit`
behaves exactly as it does in one process.
"""

from __future__ import annotations

import atexit
import datetime
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from ..errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Env:
    """Where this process stands, as torchrun described it (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    master_addr: str | None = None
    master_port: str | None = None

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise ConfigError(f"WORLD_SIZE: expected a positive integer, got {self.world_size}")
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(
                f"RANK: expected an integer in 0..{self.world_size - 1} "
                f"(WORLD_SIZE={self.world_size}), got {self.rank}"
            )
        if not 0 <= self.local_rank < self.local_world_size:
            raise ConfigError(
                f"LOCAL_RANK: expected an integer in 0..{self.local_world_size - 1} "
                f"(LOCAL_WORLD_SIZE={self.local_world_size}), got {self.local_rank}"
            )

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _int_var(name: str, default: int | None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        if default is None:
            world = os.environ.get("WORLD_SIZE")
            raise ConfigError(
                f"{name}: not set, but WORLD_SIZE={world}; start the processes with torchrun "
                "(it sets RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT)"
            )
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None


def env() -> Env:
    """This process's place, read from torchrun's environment variables (ConfigError if they
    contradict each other)."""
    world = _int_var("WORLD_SIZE", 1)
    if world == 1:
        return Env()
    if world < 1:
        return Env(world_size=world)  # raises ConfigError
    local_world = _int_var("LOCAL_WORLD_SIZE", world)
    return Env(
        rank=_int_var("RANK", None),
        world_size=world,
        local_rank=_int_var("LOCAL_RANK", 0),
        local_world_size=local_world,
        master_addr=os.environ.get("MASTER_ADDR"),
        master_port=os.environ.get("MASTER_PORT"),
    )


def _group_up() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


_owned = False  # True while the group up is the one `init` started (and `shutdown` may end)


def _check_callers_group() -> None:
    """A group the caller started must carry CPU tensors: `agree` and the object messages
    (validation rows, per-rank counts) travel as CPU tensors whatever device the model is on."""
    backends = str(torch.distributed.get_backend_config())
    if "cpu:" not in backends:
        raise ConfigError(
            f"torch.distributed: the process group started before fit{where()} has no CPU "
            f"backend ({backends}); seqshape sends small CPU messages between ranks: start it "
            "with backend='gloo' (CPU) or 'cpu:gloo,cuda:nccl' (GPU)"
        )


def active() -> bool:
    """True when this process trains together with others (a process group of 2+ ranks)."""
    return _group_up() and torch.distributed.get_world_size() > 1


def world() -> int:
    """How many processes train together (1 without torchrun)."""
    return torch.distributed.get_world_size() if _group_up() else env().world_size


def rank() -> int:
    """This process's rank, 0..world()-1 (0 without torchrun)."""
    return torch.distributed.get_rank() if _group_up() else env().rank


_this_rank, _this_world = rank, world  # for `shard`, whose parameters bear these names


def is_main() -> bool:
    """True on the one process that writes (rank 0), and always in a single process."""
    return rank() == 0


def where() -> str:
    """`` on rank 1 of 4`` for messages, or "" in a single process."""
    return f" on rank {rank()} of {world()}" if world() > 1 else ""


def join_timeout() -> float:
    """Seconds a rank waits for the others (joining and each collective): SEQSHAPE_DIST_TIMEOUT,
    default 300. torch's own default is 30 minutes, long to wait for a mistyped MASTER_ADDR."""
    raw = os.environ.get("SEQSHAPE_DIST_TIMEOUT", "300")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"SEQSHAPE_DIST_TIMEOUT: expected seconds, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"SEQSHAPE_DIST_TIMEOUT: expected seconds > 0, got {raw!r}")
    return value


def init(model: nn.Module | None = None) -> bool:
    """Start the process group if torchrun asked for one (WORLD_SIZE > 1); True if distributed.

    Idempotent. The backend follows the model's device: gloo on the CPU; on a GPU NCCL for CUDA
    tensors and gloo for the small CPU messages (metrics, decisions). A failure to connect is a
    ConfigError naming the rank, the world size and the rendezvous address.

    A group the caller started (Ray Train, Spark's TorchDistributor, a script's own
    ``init_process_group``) is used as it is, whatever the environment variables say; a
    ConfigError if it cannot carry CPU tensors (an NCCL-only group).
    """
    global _owned
    if _group_up():  # started already (by an earlier fit, or by the caller)
        if not _owned and active():
            _check_callers_group()
        return active()
    _owned = False  # a group of ours that someone else ended is no longer ours
    here = env()
    if not here.distributed:
        return False
    if not torch.distributed.is_available():
        raise ConfigError(
            f"WORLD_SIZE={here.world_size}: this torch build has no torch.distributed support"
        )
    param = next(iter(model.parameters()), None) if model is not None else None
    on_gpu = param is not None and param.device.type == "cuda"
    backend = "cpu:gloo,cuda:nccl" if on_gpu else "gloo"
    if on_gpu:
        torch.cuda.set_device(here.local_rank)
    try:
        torch.distributed.init_process_group(
            backend=backend,
            rank=here.rank,
            world_size=here.world_size,
            timeout=datetime.timedelta(seconds=join_timeout()),
        )
    except (RuntimeError, ValueError, OSError) as e:  # DistError is a RuntimeError
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        first += f" (waited up to {join_timeout():.0f} s; SEQSHAPE_DIST_TIMEOUT sets it)"
        raise ConfigError(
            f"torch.distributed ({backend}): rank {here.rank} of {here.world_size} could not "
            f"join the process group at MASTER_ADDR={here.master_addr or 'unset'} "
            f"MASTER_PORT={here.master_port or 'unset'}: {first}"
        ) from None
    _owned = True
    atexit.register(shutdown)
    return True


def shutdown() -> None:
    """Leave the process group if `init` started it (safe to call any number of times); a group
    the caller started stays up: its launcher ends it."""
    global _owned
    if _owned and _group_up():
        torch.distributed.destroy_process_group()
    _owned = False


def wrap(model: nn.Module) -> nn.Module:
    """``model`` in DistributedDataParallel when distributed, else ``model`` itself.

    DDP copies rank 0's weights to every rank on construction, and averages gradients during
    ``backward``; the loss must therefore come from the wrapper's ``forward``.
    """
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    param = next(iter(model.parameters()), None)
    if param is not None and param.device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[param.device.index])
    return DistributedDataParallel(model)


def per_rank(n_batches: int) -> int:
    """Batches each rank trains on per epoch: ceil(n / world), equal on every rank."""
    return math.ceil(n_batches / world()) if active() else n_batches


def shard(
    batches: Iterable[T], n_batches: int, *, rank: int | None = None, world: int | None = None
) -> Iterable[T]:
    """This rank's share of an epoch's ``n_batches`` batches (``batches`` itself in one process).

    Rank r of W takes positions r, r+W, r+2W, ...; positions past the end wrap around to the first
    batches, so that every rank gets `per_rank(n)` of them: the split BucketBatchSampler makes with
    ``num_replicas=W, rank=r``. ``rank``/``world`` default to this process's. Every rank must see
    the same ``batches`` in the same order (shuffled from the seed and the epoch, never from a
    per-process RNG). The loop splits what the mode yields, so every mode gets it unchanged; the
    price is that each rank also collates the batches it skips, cheap next to a training step.
    """
    w = _this_world() if world is None else world
    if w <= 1:
        return batches
    return _shard(batches, n_batches, _this_rank() if rank is None else rank, w)


def _shard(batches: Iterable[T], n: int, r: int, w: int) -> Iterator[T]:
    steps = [r + k * w for k in range(math.ceil(n / w))]
    # positions past the end of the epoch map back to its first batches: hold those until the
    # stream has gone by, yield the others as they pass
    tail = [p % n for p in steps if p >= n]
    held: dict[int, T] = {}
    seen = 0
    for pos, batch in enumerate(batches):
        seen += 1
        if pos in tail:
            held[pos] = batch
        if pos < n and pos % w == r:
            yield batch
    if seen != n:
        raise ConfigError(
            f"train_batches: the epoch yielded {seen} batches, n_batches says {n}{where()}; "
            "every rank must see the same number of batches"
        )
    for pos in tail:
        yield held[pos]


def from_main(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (a picklable value), or ``obj`` itself in one process."""
    if not active():
        return obj
    box: list[Any] = [obj if is_main() else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def all_ranks(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` in one process)."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world()
    torch.distributed.all_gather_object(out, obj)
    return out


def agree(flag: bool) -> bool:
    """True only if ``flag`` is True on every rank (``flag`` itself in one process).

    Used before any decision that ends training, so that all ranks take it at the same step.
    """
    if not active():
        return flag
    # (1,) int32 on the CPU: gloo carries it even when the gradients go through NCCL
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
    return bool(t.item())


def barrier() -> None:
    """Wait until every rank gets here (nothing in one process)."""
    if active():
        torch.distributed.barrier()
