"""`python -m seqshape ...`, and what `torchrun -m seqshape train classify ...` runs in each process.

Under torchrun (WORLD_SIZE > 1) only the `train` commands know how to share the work (rank 0 alone
evaluates and writes the model directory); other commands are refused rather than run N times side
by side.
The process group that training starts is left on the way out.
"""

import os
import sys

from .cli import main

DISTRIBUTED_COMMANDS = tuple(
    ("train", mode) for mode in ("classify", "forecast", "seq2seq", "tag", "generate")
)


def _refuse_under_torchrun(argv: list[str]) -> str | None:
    """The error line for a command that cannot run in several processes, or None."""
    world = os.environ.get("WORLD_SIZE", "1").strip() or "1"
    if world == "1":
        return None
    words = tuple(a for a in argv if not a.startswith("-"))[:2]
    if words in DISTRIBUTED_COMMANDS or not words:
        return None
    supported = ", ".join(" ".join(c) for c in DISTRIBUTED_COMMANDS)
    return (
        f"error: ConfigError: WORLD_SIZE={world}: `seqshape {' '.join(words)}` does not run "
        f"in several processes; under torchrun use: {supported}"
    )


def _run() -> int:
    refused = _refuse_under_torchrun(sys.argv[1:])
    if refused:
        print(refused, file=sys.stderr)
        return 2
    try:
        return main()
    finally:
        distributed = sys.modules.get("seqshape.train.distributed")
        if distributed is not None:  # training ran: leave its process group
            distributed.shutdown()


sys.exit(_run())
