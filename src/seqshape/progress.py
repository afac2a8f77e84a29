"""Progress on stderr for work that can take more than a few seconds.

On a terminal: a rich bar (or a spinner with the elapsed time when the amount of work is not known).
Piped or logged (stderr not a TTY): plain lines, never cut to a console width, that a log keeps:
- training prints one line per epoch (`epoch_line`): epoch i/n, train loss, the validation loss
  and metrics, the seconds the epoch took;
- other long work (`Reporter`) prints a line every ``SEQSHAPE_PROGRESS_SECONDS`` seconds (default
  10) while it runs, with the count done so far when it is known, and a last line when it ends if
  it printed any; work shorter than that prints nothing.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping

ENV_SECONDS = "SEQSHAPE_PROGRESS_SECONDS"
DEFAULT_SECONDS = 10.0


def interactive() -> bool:
    """Whether stderr is a terminal (then a live bar; otherwise plain lines)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced stream
        return False


def every_seconds() -> float:
    """Seconds between the plain progress lines of long work (env SEQSHAPE_PROGRESS_SECONDS)."""
    text = os.environ.get(ENV_SECONDS, "")
    try:
        value = float(text) if text.strip() else DEFAULT_SECONDS
    except ValueError:
        value = DEFAULT_SECONDS
    return value if value > 0 else DEFAULT_SECONDS


def _number(v) -> str:
    return f"{v:.5g}" if isinstance(v, float) else str(v)


def epoch_line(epoch: int, epochs: int, row: Mapping, seconds: float) -> str:
    """One epoch as a plain line: ``epoch 3/20 train_loss 0.41 val_loss 0.52 val_accuracy 0.87
    (1.9 s)``; the metrics are the row's numbers except the epoch, lr and the cumulative time."""
    skip = ("epoch", "lr", "seconds", "rank_sequences")
    parts = [
        f"{k} {_number(v)}"
        for k, v in row.items()
        if k not in skip and isinstance(v, int | float) and not isinstance(v, bool)
    ]
    return f"epoch {epoch}/{epochs} " + " ".join(parts) + f" ({seconds:.2f} s)"


def print_line(text: str) -> None:
    """``text`` on stderr, whole, flushed (a log gets it even if the process is killed later)."""
    print(text, file=sys.stderr, flush=True)


class Reporter:
    """Progress of one piece of work: ``with Reporter("forecast", total=3, unit="series") as p:``
    then ``p.advance()`` after each unit. ``total=None``: the amount is not known (elapsed time
    only). ``enabled=False``: silent."""

    def __init__(
        self, description: str, total: int | None = None, *, unit: str = "", enabled: bool = True
    ):
        self.description = description
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.done = 0
        self.lines = 0  # plain lines printed
        self._bar = None
        self._task = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = 0.0

    def __enter__(self) -> Reporter:
        self._start = time.perf_counter()
        if not self.enabled:
            return self
        if interactive():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            columns = [SpinnerColumn(), TextColumn("[bold]{task.description}")]
            if self.total is not None:
                columns += [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
            columns.append(TimeElapsedColumn())
            self._bar = Progress(*columns, console=Console(stderr=True), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total)
        else:
            self._thread = threading.Thread(target=self._beat, daemon=True, name="progress")
            self._thread.start()
        return self

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)

    def status(self) -> str:
        """The plain line for now: what, how much of it, how long so far (and how long left)."""
        elapsed = time.perf_counter() - self._start
        unit = f" {self.unit}" if self.unit else ""
        if self.total:
            text = (
                f"{self.description}: {self.done}/{self.total}{unit} ({self.done / self.total:.0%})"
            )
            if 0 < self.done < self.total:
                left = elapsed * (self.total - self.done) / self.done
                text += f", {elapsed:.0f} s elapsed, about {left:.0f} s left"
                return text
        else:
            text = f"{self.description}: running" + (
                f", {self.done}{unit} done" if self.done else ""
            )
        return text + f", {elapsed:.0f} s elapsed"

    def _beat(self) -> None:
        every = every_seconds()
        while not self._stop.wait(every):
            print_line(self.status())
            self.lines += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            if self.lines and exc_type is None:
                elapsed = time.perf_counter() - self._start
                unit = f" {self.unit}" if self.unit else ""
                count = f" ({self.done}{unit})" if self.done else ""
                print_line(f"{self.description}: done{count} in {elapsed:.1f} s")
