"""Threshold rules find an injected anomaly in a real NAB series and stay quiet on the clean one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqshape.anomaly import (
    TailProbabilityScorer,
    dynamic_threshold,
    fixed_threshold,
    quantile_threshold,
)
from seqshape.errors import ConfigError, DataError, ShapeError

DAY = 288  # 5-minute samples: a seasonal-naive forecast repeats yesterday


@pytest.fixture(scope="module")
def series(shared_data: Path) -> np.ndarray:
    path = shared_data / "anomaly/nab/data/artificialNoAnomaly/art_daily_small_noise.csv"
    return pd.read_csv(path)["value"].to_numpy()


def _residuals(y: np.ndarray) -> np.ndarray:
    # (T,) -> (T - DAY,): absolute error of the forecast y[t] = y[t - DAY]
    return np.abs(y[DAY:] - y[:-DAY])


@pytest.fixture(scope="module")
def clean(series) -> np.ndarray:
    return _residuals(series)


@pytest.fixture(scope="module")
def spiked(series) -> tuple[np.ndarray, int]:
    y = series.copy()
    t = len(y) - 100  # late enough that yesterday's spike never becomes a forecast
    y[t] += 40.0  # the clean errors never exceed ~15.4
    return _residuals(y), t - DAY


def test_fixed_threshold_on_tail_probabilities(clean, spiked):
    errors, at = spiked

    def flags(e):
        scores = TailProbabilityScorer(window=1000, short_window=1).score_batch(e)
        return fixed_threshold(scores, 0.99999)[DAY:]  # the first day is warm-up

    assert flags(errors)[at - DAY]
    assert flags(clean).sum() <= 3
    assert fixed_threshold(np.array([0.2, 0.5, 0.7]), 0.5).tolist() == [False, True, True]


def test_quantile_threshold_fitted_on_reference(clean, spiked):
    errors, at = spiked
    flags = quantile_threshold(errors, 0.999, n_reference=1500)
    assert flags[at]
    assert not flags[:1500].any()
    assert quantile_threshold(clean, 0.999, n_reference=1500).sum() <= 3
    # a flat reference does not flag its own level
    flat = np.array([1.0] * 10 + [1.0, 2.0])
    assert quantile_threshold(flat, 0.99, n_reference=10).tolist() == [False] * 11 + [True]


def test_dynamic_threshold_finds_the_spike_and_not_the_noise(clean, spiked):
    errors, at = spiked
    flags = dynamic_threshold(errors)
    hits = np.flatnonzero(flags)
    assert len(hits) > 0 and at <= hits[0] <= at + 2 and hits[-1] <= at + 10
    assert dynamic_threshold(clean).sum() <= 0.005 * len(clean)


def test_dynamic_threshold_looks_ahead_at_most_one_step(spiked):
    errors, _ = spiked
    base = dynamic_threshold(errors, window=1000, step=50)
    changed = errors.copy()
    changed[2600:] *= 3.0
    # flags for points before the evaluation that first sees row 2600 (ends at 2650) stay put
    np.testing.assert_array_equal(
        dynamic_threshold(changed, window=1000, step=50)[:2600], base[:2600]
    )


def test_pruning_drops_sequences_close_to_the_nominal_level():
    rng = np.random.default_rng(0)
    e = np.abs(rng.normal(0.0, 1.0, 1000))
    e[500] = 40.0  # a clear outlier
    flags = dynamic_threshold(e, window=1000, smoothing_span=1, prune=0.13)
    assert flags[500] and flags.sum() == 1
    # with no pruning margin every sequence above the best cut survives
    assert dynamic_threshold(e, window=1000, smoothing_span=1, prune=0.0).sum() >= 1


def test_threshold_inputs_are_checked():
    with pytest.raises(ShapeError, match=r"scores: expected shape \(T,\)"):
        fixed_threshold(np.zeros((2, 2)), 0.5)
    with pytest.raises(DataError, match=r"errors\[1\]: expected a finite number"):
        dynamic_threshold(np.array([1.0, np.nan]))
    with pytest.raises(ConfigError, match=r"q: expected 0 <= q <= 1"):
        quantile_threshold(np.zeros(5), 1.5, n_reference=2)
    with pytest.raises(ConfigError, match=r"n_reference: expected 1 <= n_reference <= 5"):
        quantile_threshold(np.zeros(5), 0.5, n_reference=6)
    with pytest.raises(ConfigError, match=r"step: expected <= window"):
        dynamic_threshold(np.zeros(5), window=10, step=20)
