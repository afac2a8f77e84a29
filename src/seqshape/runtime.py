"""Process-wide CPU settings that must be made before PyTorch starts its worker threads.

Two facts measured on the 2-core CPU machines (see ../shared/DESIGN.md):
- zero padding breeds denormal floats that make LSTM steps 2-6x slower; flushing them to zero
  only reaches PyTorch's OpenMP workers if it is switched on *before* those workers start;
- more compute threads than free cores slow training down 4-200x.
"""

from __future__ import annotations

import os

import torch

_configured: int | None = None


def free_cores() -> int:
    """Cores this process may use (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def configure(threads: int | None = None) -> int:
    """Flush denormals and set the intra-op thread count; return the thread count in force.

    ``threads`` defaults to the env var ``SEQSHAPE_THREADS``, else the free cores. Call it early,
    before the first tensor operation; the library calls it on import of its entry points.
    """
    global _configured
    if threads is None:
        env = os.environ.get("SEQSHAPE_THREADS")
        threads = int(env) if env else free_cores()
    threads = max(1, min(int(threads), free_cores()))
    torch.set_flush_denormal(True)
    if _configured != threads:
        torch.set_num_threads(threads)
        _configured = threads
    return threads
