"""What every `seqshape train ...` command does around its fit: the checkpoint, --resume, cleanup.

One rule for all train commands (classify, forecast, seq2seq, tag, generate):

- The run works in OUT.ckpt/ beside --out (`common.checkpoint_dir`): the loop's checkpoint after
  every epoch (and every --checkpoint-every steps) and the training log live there, so a run
  creates no other temporary directory. A finished run moves the log into the model directory
  and removes OUT.ckpt/.
- Killed (SIGKILL, power loss) or interrupted (Ctrl-C): OUT.ckpt/ stays; the same command with
  --resume continues from it to the same weights as an uninterrupted run. Ctrl-C says so.
- Any error (bad data or option, a damaged file, a bug): what this run created goes. OUT.ckpt/ is
  removed if this run created it, with one exception: after a TrainingError (NaN/inf loss) the
  last good checkpoint is kept, because the error message names it. A checkpoint that was there
  before the run (an interrupted run being resumed) is never removed by a failure.
- Temporary files and directories beside --out are named ``.OUT.tmp-PID-*``
  (`artifacts.writer_temp`); the next run removes those whose writer is dead.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import typer

from ..errors import TrainingError
from .common import checkpoint_dir


@dataclass(frozen=True)
class TrainRun:
    """Where one train command works: its checkpoint directory and training log."""

    ckpt: Path
    log: Path
    resume: bool
    checkpoint_every: int | None

    def fit_kwargs(self) -> dict:
        """The checkpointing arguments every estimator's fit takes."""
        return dict(
            checkpoint_dir=self.ckpt, checkpoint_every=self.checkpoint_every, resume=self.resume
        )


def _has_checkpoint(ckpt: Path) -> bool:
    from ..train.checkpoint import checkpoint_path

    return checkpoint_path(ckpt).exists()


@contextlib.contextmanager
def train_run(out: Path, *, resume: bool, checkpoint_every: int | None) -> Iterator[TrainRun]:
    """The body fits with ``run.fit_kwargs()`` and ``log_path=run.log`` and writes --out; see the
    module docstring for what is kept or removed on success, kill, interrupt and error."""
    from ..artifacts import _remove_dead_writers
    from ..train import distributed

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_writers(out)  # what killed writers of this --out left (never a live one's)
    ckpt = checkpoint_dir(out)
    main = distributed.is_main()
    created = not ckpt.exists()
    if main:
        if resume and not _has_checkpoint(ckpt):
            typer.echo(f"no checkpoint in {ckpt}: training from the start", err=True)
        elif not resume and _has_checkpoint(ckpt):
            typer.echo(
                f"note: {ckpt} holds an earlier run's checkpoint, replaced by this run's; "
                "--resume continues it instead",
                err=True,
            )
        ckpt.mkdir(parents=True, exist_ok=True)
    run = TrainRun(
        ckpt=ckpt, log=ckpt / "train_log.jsonl", resume=resume, checkpoint_every=checkpoint_every
    )
    try:
        yield run
    except KeyboardInterrupt:
        if main and _has_checkpoint(ckpt):
            typer.echo(
                f"interrupted: the checkpoint in {ckpt} is kept; the same command with --resume "
                "continues",
                err=True,
            )
        elif main and created:
            shutil.rmtree(ckpt, ignore_errors=True)
        raise
    except BaseException as e:
        keep = isinstance(e, TrainingError) and _has_checkpoint(ckpt)  # the message names it
        if main and created and not keep:
            shutil.rmtree(ckpt, ignore_errors=True)
        raise
    # torchrun: every rank leaves together, once rank 0 has written the model, so that no rank
    # tears its process group down while another still uses it (a rank that left early and took
    # its connections with it aborted a peer's teardown once, in a loaded test run)
    distributed.barrier()
    if main:  # torchrun: rank 0 writes the model and cleans up
        shutil.rmtree(ckpt, ignore_errors=True)


def say_resumed(run: TrainRun, model) -> None:
    """One line on stderr when ``model``'s fit continued an interrupted run."""
    result = getattr(model, "train_result", None)
    resumed = result.resumed_from if result is not None else None
    if resumed:
        typer.echo(
            f"resumed after epoch {resumed['epoch']} step {resumed['step']} from {run.ckpt}",
            err=True,
        )
