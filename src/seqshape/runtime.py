"""Process-wide CPU settings that must be made before PyTorch starts its worker threads.

Two facts measured on the 2-core CPU machines (see ../shared/DESIGN.md):
- zero padding breeds denormal floats that make LSTM steps 2-6x slower; flushing them to zero
  only reaches PyTorch's OpenMP workers if it is switched on *before* those workers start;
- more compute threads than free cores slow training down 4-200x.

Under torchrun the LOCAL_WORLD_SIZE processes on one machine share its cores: each gets
free cores // LOCAL_WORLD_SIZE threads (at least 1).
"""

from __future__ import annotations

import os

import torch

_configured: int | None = None


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def cores_left(cores: int, load: float) -> int:
    """``cores`` minus the ones other work keeps busy (``load``: the 1-minute load average,
    rounded), at least 1."""
    return max(1, cores - max(0, int(load + 0.5)))


_free: int | None = None


def free_cores() -> int:
    """Cores not busy with other work when this process first asked, at least 1.

    The usable cores minus the 1-minute load average (rounded): with another job holding one
    of 2 cores, 1. Decided once per process, so that this process's own work, which the load
    average soon includes, never lowers it later.
    """
    global _free
    if _free is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # pragma: no cover - no load average on this platform
            load = 0.0
        _free = cores_left(usable_cores(), load)
    return _free


def _local_processes() -> int:
    """Processes sharing this machine's cores: torchrun's LOCAL_WORLD_SIZE, else 1."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def configure(threads: int | None = None) -> int:
    """Flush denormals and set the intra-op thread count; return the thread count in force.

    ``threads`` defaults to the env var ``SEQSHAPE_THREADS``, else the free cores (the cores other
    work leaves idle, see `free_cores`). Either is capped at the usable cores; both are shared out
    between the processes torchrun started on this machine. Call it early, before the first
    tensor operation; the library calls it on import of its entry points.
    """
    global _configured
    share = _local_processes()
    if threads is None:
        env = os.environ.get("SEQSHAPE_THREADS")
        threads = int(env) if env else free_cores() // share
    threads = max(1, min(int(threads), usable_cores() // share))
    torch.set_flush_denormal(True)
    if _configured != threads:
        torch.set_num_threads(threads)
        _configured = threads
    return threads
