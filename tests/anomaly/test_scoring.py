"""Residual-to-score transforms: streaming equals batch, causality, persistence, range."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqshape.anomaly import TailProbabilityScorer, gaussian_nll_score
from seqshape.errors import ConfigError, DataError, ShapeError

DAY = 288  # 5-minute samples


@pytest.fixture(scope="module")
def errors(shared_data: Path) -> np.ndarray:
    """Seasonal-naive forecast errors of a real NAB series, with one spike near the end."""
    path = shared_data / "anomaly/nab/data/artificialNoAnomaly/art_daily_small_noise.csv"
    y = pd.read_csv(path)["value"].to_numpy().copy()
    y[len(y) - 100] += 40.0
    # (T,) -> (T - DAY,): forecast y[t] by y[t - DAY]
    return y[DAY:] - y[:-DAY]


def test_streaming_equals_batch(errors):
    batch = TailProbabilityScorer(window=500, short_window=4).score_batch(errors)
    stream = TailProbabilityScorer(window=500, short_window=4)
    one_by_one = np.array([stream.update(e) for e in errors])
    np.testing.assert_allclose(one_by_one, batch, rtol=0, atol=1e-9)
    assert stream.count == len(errors)


def test_resumed_stream_equals_batch(errors):
    whole = TailProbabilityScorer(window=500, short_window=4).score_batch(errors)
    first = TailProbabilityScorer(window=500, short_window=4)
    head = first.score_batch(errors[:1234])
    saved = json.loads(json.dumps(first.state_dict()))  # through JSON text, as on disk
    resumed = TailProbabilityScorer.from_state_dict(saved)
    tail = resumed.score_batch(errors[1234:])
    np.testing.assert_allclose(np.concatenate([head, tail]), whole, rtol=0, atol=1e-9)

    other = TailProbabilityScorer(window=499, short_window=4)
    with pytest.raises(ConfigError, match=r"state.config: expected"):
        other.load_state_dict(saved)


def test_future_errors_never_change_earlier_scores(errors):
    base = TailProbabilityScorer(window=300, short_window=5).score_batch(errors)
    changed = errors.copy()
    t = 2000
    changed[t] += 500.0
    after = TailProbabilityScorer(window=300, short_window=5).score_batch(changed)
    np.testing.assert_array_equal(after[:t], base[:t])
    assert after[t] > base[t]


def test_scores_are_probabilities_and_find_the_spike(errors):
    scores = TailProbabilityScorer(window=1000, short_window=1).score_batch(errors)
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    spike = len(errors) - 100
    assert scores[spike] > 1 - 1e-9
    assert np.median(scores[DAY:]) < 0.6


def test_constant_errors_score_one_half():
    scores = TailProbabilityScorer(window=50, short_window=3).score_batch(np.full(200, 2.0))
    np.testing.assert_allclose(scores, 0.5, atol=1e-12)


def test_scorer_refuses_bad_input():
    with pytest.raises(ConfigError, match=r"window: expected an int >= 2, got 1"):
        TailProbabilityScorer(window=1)
    with pytest.raises(ConfigError, match=r"short_window"):
        TailProbabilityScorer(short_window=0)
    scorer = TailProbabilityScorer(window=10, short_window=2)
    with pytest.raises(DataError, match=r"error #0: expected a finite number"):
        scorer.update(float("nan"))
    with pytest.raises(ShapeError, match=r"errors: expected shape \(T,\), got \(2, 3\)"):
        scorer.score_batch(np.zeros((2, 3)))


def test_gaussian_score():
    y = np.array([0.0, 1.959963984540054, -1.0, 3.0])
    got = gaussian_nll_score(y, 0.0, 1.0)
    np.testing.assert_allclose(got, [0.0, 0.95, math.erf(1 / math.sqrt(2)), 0.9973002039367398])
    # pointwise: scalar calls give the batch numbers
    assert [gaussian_nll_score(v, 0.0, 1.0) for v in y] == got.tolist()
    assert gaussian_nll_score(np.zeros((2, 3)), np.zeros(3), np.ones((2, 1))).shape == (2, 3)
    with pytest.raises(DataError, match=r"std: expected finite values > 0"):
        gaussian_nll_score(y, 0.0, np.array([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ShapeError, match=r"broadcastable"):
        gaussian_nll_score(np.zeros(3), np.zeros(4), 1.0)
