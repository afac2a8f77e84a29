"""Run an :class:`AnomalyDetector` over the NAB corpus under NAB's rules and write its results.

For each of the 58 series: a fresh detector is trained on the probationary period only (the first
``min(floor(0.15 n), 750)`` rows, :func:`~seqshape.anomaly.nab.probationary_length`), then every row
is scored causally — the score of row ``t`` uses rows ``<= t`` only — with the probationary rows
scored 0. Scores are in [0, 1]; the results go to
``<out>/<detector>/<category>/<detector>_<file>.csv`` (``timestamp,anomaly_score``), NAB's layout,
which :func:`~seqshape.anomaly.nab.score_detector` reads.

Series are independent: ``jobs`` worker processes (never more than the usable cores, one compute
thread each) share them out.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .. import runtime
from ..errors import ConfigError, DataError
from .detector import AnomalyDetector, DetectorConfig
from .nab import NabSeries, load_corpus, write_results

DEFAULT_NAME = "lstm"

__all__ = ["NabRun", "score_nab_series", "run_nab"]


@dataclass
class NabRun:
    """What :func:`run_nab` did: the files written and the time each series took."""

    detector: str
    paths: list[Path]
    seconds: float
    series_seconds: dict[str, float] = field(default_factory=dict)
    jobs: int = 1


def score_nab_series(series: NabSeries, config: DetectorConfig) -> np.ndarray:
    """Train on the probationary rows of ``series`` and score all its rows -> (T,) in [0, 1]."""
    p = series.probation
    try:
        # NAB's files hold a few repeated or out-of-order timestamps (daylight saving), kept as is
        det = AnomalyDetector(config).fit(
            series.values[:p], series.timestamps[:p], check_order=False
        )
        out = det.score_series(series.values, series.timestamps, warmup=p, check_order=False)
        scores = out["score"]
    except DataError as exc:
        raise DataError(f"{series.relative_name}: {exc}") from None
    # (T,) clipped to NAB's range; the probation is never scored
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    scores[:p] = 0.0
    return scores


def _worker_init() -> None:
    runtime.configure(1)


def _timed(series: NabSeries, config: DetectorConfig) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    scores = score_nab_series(series, config)
    return scores, time.perf_counter() - start


def select_series(corpus: Sequence[NabSeries], patterns: Sequence[str] | None) -> list[NabSeries]:
    """The series whose ``category/file.csv`` matches one of the glob ``patterns`` (all if none)."""
    if not patterns:
        return list(corpus)
    chosen = [s for s in corpus if any(fnmatch.fnmatch(s.relative_name, p) for p in patterns)]
    if not chosen:
        raise ConfigError(
            f"series: no NAB series matches {', '.join(patterns)} "
            f"(names look like {corpus[0].relative_name})"
        )
    return chosen


def run_nab(
    nab_dir: str | Path,
    out_dir: str | Path,
    *,
    detector: str = DEFAULT_NAME,
    config: DetectorConfig | None = None,
    jobs: int = 1,
    series: Sequence[str] | None = None,
    progress: bool = True,
    on_series: Callable[[str, float], None] | None = None,
) -> NabRun:
    """Score every NAB series (or those matching the globs ``series``) and write the results.

    ``on_series(name, seconds)`` is called as each series finishes (e.g. to log progress).
    """
    config = config or DetectorConfig()
    free = runtime.usable_cores()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= free:
        raise ConfigError(f"jobs: expected 1..{free} (the usable cores), got {jobs!r}")
    if not detector or "/" in detector or "_" in detector:
        raise ConfigError(f"detector: expected a name without '/' or '_', got {detector!r}")
    corpus = select_series(load_corpus(nab_dir), series)
    scores: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    bar = Progress(
        TextColumn("[bold]NAB {task.fields[name]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )
    with bar:
        task = bar.add_task("nab", total=len(corpus), name=detector)
        if jobs == 1:
            runtime.configure(1)
            for s in corpus:
                scores[s.relative_name], seconds[s.relative_name] = _timed(s, config)
                bar.update(task, advance=1)
                if on_series is not None:
                    on_series(s.relative_name, seconds[s.relative_name])
        else:
            ctx = get_context("spawn")
            with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init) as pool:
                futures = {pool.submit(_timed, s, config): s for s in corpus}
                for fut in as_completed(futures):
                    name = futures[fut].relative_name
                    scores[name], seconds[name] = fut.result()
                    bar.update(task, advance=1)
                    if on_series is not None:
                        on_series(name, seconds[name])
    paths = write_results(out_dir, detector, corpus, scores)
    return NabRun(
        detector=detector,
        paths=paths,
        seconds=time.perf_counter() - start,
        series_seconds={s.relative_name: round(seconds[s.relative_name], 3) for s in corpus},
        jobs=jobs,
    )
