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
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .errors import ConfigError

_configured: int | None = None


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def cores_left(cores: int, busy: float) -> int:
    """``cores`` minus the ones other work keeps busy (``busy``, in cores, rounded), at least 1."""
    return max(1, cores - max(0, int(busy + 0.5)))


def _cpu_times(cpus: set[int]) -> dict[int, tuple[int, int]]:
    """(idle, total) jiffies of each CPU in ``cpus``, from /proc/stat."""
    times: dict[int, tuple[int, int]] = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            cpu = int(name[3:])
            if cpu in cpus:
                v = [int(x) for x in fields[:8]]
                times[cpu] = (v[3] + v[4], sum(v))  # idle + iowait, everything
    return times


def busy_cores(window: float = 0.15) -> float:
    """How many of this process's usable cores other work keeps busy *now*, in cores.

    Measured from /proc/stat over ``window`` seconds; unlike the 1-minute load average it does not
    lag (right after another job ends, the machine reads as idle). Falls back to the load average
    where /proc/stat cannot be read.
    """
    try:
        cpus = os.sched_getaffinity(0)
        before = _cpu_times(cpus)
        time.sleep(window)
        after = _cpu_times(cpus)
        busy = 0.0
        for cpu, (idle0, total0) in before.items():
            idle1, total1 = after.get(cpu, (idle0, total0))
            if total1 > total0:
                busy += 1.0 - (idle1 - idle0) / (total1 - total0)
        return busy
    except (OSError, ValueError, AttributeError, IndexError):  # pragma: no cover - not Linux
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0


_free: int | None = None


def free_cores() -> int:
    """Cores not busy with other work when this process first asked, at least 1.

    The usable cores minus the cores busy now (`busy_cores`, rounded): with another job holding one
    of 2 cores, 1. Decided once per process, before this process's own work starts, so that its
    own work never lowers it later.
    """
    global _free
    if _free is None:
        _free = cores_left(usable_cores(), busy_cores())
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
    work leaves idle now, see `free_cores`). Either is capped at the usable cores; both are shared out
    between the processes torchrun started on this machine. Call it early, before the first
    tensor operation; the library calls it on import of its entry points.
    """
    global _configured
    share = _local_processes()
    if threads is None:
        env = os.environ.get("SEQSHAPE_THREADS", "").strip()
        if env and not (env.isdigit() and int(env) >= 1):
            raise ConfigError(f"SEQSHAPE_THREADS: expected a whole number >= 1, got {env!r}")
        threads = int(env) if env else free_cores() // share
    threads = max(1, min(int(threads), usable_cores() // share))
    torch.set_flush_denormal(True)
    if _configured != threads:
        torch.set_num_threads(threads)
        _configured = threads
    return threads


@contextmanager
def threads_scope(threads: int | None = None) -> Iterator[int]:
    """`configure` for the duration of a block, then the caller's thread count back: an
    estimator's fit or predict does not change the process's settings for the code around it."""
    global _configured
    before, before_configured = torch.get_num_threads(), _configured
    n = configure(threads)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
        _configured = before_configured
