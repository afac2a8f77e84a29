"""StandardScaler on real JapaneseVowels sequences: statistics, round trips, JSON, errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from seqshape.data import StandardScaler, from_arrays
from seqshape.datasets import load_japanese_vowels
from seqshape.errors import ConfigError, DataError, ShapeError


@pytest.fixture(scope="module")
def train_X() -> list[np.ndarray]:
    return load_japanese_vowels("train").X


def test_fit_matches_statistics_of_all_real_steps(train_X: list[np.ndarray]) -> None:
    scaler = StandardScaler()
    assert not scaler.fitted
    assert scaler.fit(train_X) is scaler and scaler.fitted
    steps = np.concatenate(train_X).astype(np.float64)
    np.testing.assert_allclose(scaler.mean, steps.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(scaler.std, steps.std(axis=0), rtol=1e-10)
    scaled = np.concatenate(scaler.transform(train_X))
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, atol=1e-5)


def test_fit_ignores_padding(train_X: list[np.ndarray]) -> None:
    # padding every sequence to the longest with zeros would change the statistics
    longest = max(len(a) for a in train_X)
    padded = [np.pad(a, ((0, longest - len(a)), (0, 0))) for a in train_X]
    on_real = StandardScaler().fit(train_X)
    on_padded = StandardScaler().fit(padded)
    assert not np.allclose(on_real.mean, on_padded.mean)
    # the same statistics come from the real steps however they are split into sequences
    regrouped = [np.concatenate(train_X[:100]), *train_X[100:]]
    np.testing.assert_allclose(StandardScaler().fit(regrouped).mean, on_real.mean, rtol=1e-10)


def test_inverse_transform_round_trip(train_X: list[np.ndarray]) -> None:
    scaler = StandardScaler().fit(train_X)
    back = scaler.inverse_transform(scaler.transform(train_X))
    assert [b.shape for b in back] == [a.shape for a in train_X]
    for a, b in zip(train_X, back, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5)


def test_constant_feature_gets_std_one() -> None:
    rng = np.random.default_rng(1)
    X = [np.column_stack([rng.normal(size=t), np.full(t, 0.1)]) for t in (3, 8, 5)]
    scaler = StandardScaler().fit(X)
    assert scaler.std[1] == 1.0
    out = scaler.transform(X)
    assert all(np.isfinite(a).all() for a in out)
    np.testing.assert_allclose(np.concatenate(out)[:, 1], 0.0, atol=1e-7)


def test_json_round_trip(train_X: list[np.ndarray]) -> None:
    scaler = StandardScaler().fit(train_X)
    d = json.loads(json.dumps(scaler.to_dict()))
    again = StandardScaler.from_dict(d)
    assert again.fitted and again.n_features == 12
    for a, b in zip(scaler.transform(train_X[:20]), again.transform(train_X[:20]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_feature_count_mismatch_names_the_sequence(train_X: list[np.ndarray]) -> None:
    scaler = StandardScaler().fit(train_X)
    X = [*train_X[:3], np.zeros((20, 11), dtype=np.float32)]
    with pytest.raises(ShapeError, match=re.escape("X[3]: expected (T, F=12), got (20, 11)")):
        scaler.transform(X)
    with pytest.raises(ShapeError, match=re.escape("X[0]: expected (T, F=12), got (20, 11)")):
        scaler.inverse_transform([np.zeros((20, 11))])


def test_errors() -> None:
    with pytest.raises(ConfigError, match="not fitted"):
        StandardScaler().transform([np.zeros((2, 3))])
    with pytest.raises(ConfigError, match="not fitted"):
        StandardScaler().to_dict()
    with pytest.raises(DataError, match=re.escape("X[1] row 0: expected finite numbers")):
        StandardScaler().fit([np.ones((2, 2)), np.array([[np.inf, 1.0]])])
    with pytest.raises(ConfigError, match="scaler.std: expected positive values"):
        StandardScaler.from_dict({"kind": "standard", "mean": [0.0], "std": [0.0]})
    with pytest.raises(ConfigError, match="as many std values as mean values"):
        StandardScaler.from_dict({"kind": "standard", "mean": [0.0, 1.0], "std": [1.0]})
    with pytest.raises(ConfigError, match="scaler.kind"):
        StandardScaler.from_dict({"mean": [0.0], "std": [1.0]})


def test_scales_a_sequence_set_from_arrays() -> None:
    ds = from_arrays([np.arange(6.0).reshape(3, 2), np.arange(4.0).reshape(2, 2)])
    out = StandardScaler().fit(ds.X).transform(ds.X)
    assert [a.shape for a in out] == [(3, 2), (2, 2)]
