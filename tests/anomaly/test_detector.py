"""AnomalyDetector on real NAB series: streaming == batch, causality, warm-up, errors, persistence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seqshape.anomaly.detector import AnomalyDetector, DetectorConfig, RankScorer, parse_threshold
from seqshape.anomaly.nab import load_corpus
from seqshape.errors import ConfigError, DataError

FAST = dict(hidden_size=16, epochs=3, chunk=32)


@pytest.fixture(scope="module")
def nab(shared_data: Path) -> Path:
    return shared_data / "anomaly" / "nab"


@pytest.fixture(scope="module")
def speed(nab: Path):
    """realTraffic/speed_7578.csv: 1127 rows, 4 labelled windows, probation 169 rows."""
    series = [s for s in load_corpus(nab) if s.name == "speed_7578.csv"][0]
    return series.values.copy(), series.timestamps.copy(), series.probation


@pytest.fixture(scope="module")
def fitted(speed):
    values, stamps, p = speed
    return AnomalyDetector(DetectorConfig(**FAST)).fit(values[:p], stamps[:p])


def test_streaming_equals_batch(speed, fitted):
    values, stamps, p = speed
    batch = fitted.score_series(values, stamps)
    # the stream continues right after the training stretch it was fitted on
    det = fitted
    state = det.state_dict()
    streamed = [det.update(v, t) for v, t in zip(values[p:], stamps[p:])]
    det.load_state_dict(state)
    scores = np.array([s for s, _ in streamed])
    flags = np.array([f for _, f in streamed])
    assert np.abs(scores - batch["score"][p:]).max() <= 1e-5
    np.testing.assert_array_equal(flags, batch["is_anomaly"][p:])
    assert scores.max() > 0.5  # the series has anomalies: the comparison is not of zeros
    # a fresh stream from row 0 with the same warm-up gives the batch pass too
    det.reset(warmup=p)
    again = np.array([det.update(v, t)[0] for v, t in zip(values, stamps)])
    det.load_state_dict(state)
    assert np.abs(again - batch["score"]).max() <= 1e-5


@pytest.mark.parametrize("score", ["tail", "likelihood"])
def test_other_scores_stream_like_batch(speed, score):
    values, stamps, p = speed
    det = AnomalyDetector(DetectorConfig(**FAST, score=score)).fit(values[:p], stamps[:p])
    batch = det.score_series(values[:500], stamps[:500])["score"]
    streamed = np.array([det.update(v, t)[0] for v, t in zip(values[p:500], stamps[p:500])])
    assert np.abs(streamed - batch[p:]).max() <= 1e-5
    assert 0.0 <= batch.min() and batch.max() <= 1.0
    assert batch[p:].std() > 0


def test_changing_a_future_point_never_changes_an_earlier_score(speed, fitted):
    values, stamps, p = speed
    base = fitted.score_series(values, stamps)
    k = 700
    changed = values.copy()
    changed[k] += 40.0
    after = fitted.score_series(changed, stamps)
    np.testing.assert_array_equal(after["score"][:k], base["score"][:k])
    np.testing.assert_array_equal(after["prediction"][: k + 1], base["prediction"][: k + 1])
    assert after["score"][k] != base["score"][k]  # the change itself is seen at once


def test_warm_up_rows_are_never_flagged(speed, fitted):
    values, stamps, p = speed
    fitted.set_threshold("fixed:0")  # flags every scored row
    try:
        out = fitted.score_series(values, stamps)
    finally:
        fitted.set_threshold("fixed:0.5")
    assert not out["is_anomaly"][:p].any()
    assert (out["score"][:p] == 0).all()
    assert out["is_anomaly"][p:].all()


def test_threshold_methods_find_an_injected_spike(speed):
    values, stamps, p = speed
    x = values.copy()
    k = 900
    x[k : k + 12] = x[p:].max() + 30 * x[:p].std()  # a burst far above anything seen
    det = AnomalyDetector(DetectorConfig(**FAST)).fit(x[:p], stamps[:p])
    for spec in ("fixed:0.9", "quantile:0.999", "dynamic"):
        det.set_threshold(spec)
        flags = det.score_series(x, stamps)["is_anomaly"]
        # fixed and quantile flag the burst's first row; dynamic smooths the errors, a few rows late
        assert flags[k] if spec != "dynamic" else flags[k : k + 12].any(), spec
        assert flags.sum() < 0.05 * len(x), spec
    with pytest.raises(ConfigError, match="dynamic"):
        det.update(x[0], stamps[0])


def test_save_load_round_trip_resumes_the_stream(tmp_path, speed, fitted):
    values, stamps, p = speed
    state = fitted.state_dict()
    for v, t in zip(values[p:400], stamps[p:400]):
        fitted.update(v, t)
    fitted.save(tmp_path / "det")
    loaded = AnomalyDetector.load(tmp_path / "det")
    rest = list(zip(values[400:600], stamps[400:600]))
    a = [loaded.update(v, t) for v, t in rest]
    b = [fitted.update(v, t) for v, t in rest]
    fitted.load_state_dict(state)
    assert a == b
    np.testing.assert_array_equal(
        loaded.score_series(values, stamps)["score"], fitted.score_series(values, stamps)["score"]
    )
    files = {f.name for f in (tmp_path / "det").iterdir()}
    assert {"config.json", "model.safetensors", "preprocessing.json", "stream.json"} <= files


def test_state_dict_is_json_and_resumes_identically(speed, fitted):
    values, stamps, p = speed
    start = fitted.state_dict()
    for v, t in zip(values[p:300], stamps[p:300]):
        fitted.update(v, t)
    saved = json.loads(json.dumps(fitted.state_dict(), allow_nan=False))
    tail = list(zip(values[300:450], stamps[300:450]))
    first = [fitted.update(v, t) for v, t in tail]
    fitted.load_state_dict(saved)
    second = [fitted.update(v, t) for v, t in tail]
    fitted.load_state_dict(start)
    assert first == second
    other = AnomalyDetector(DetectorConfig(**{**FAST, "hidden_size": 8}))
    with pytest.raises(ConfigError, match="config"):
        other.load_state_dict(saved)


def test_errors_name_what_is_wrong(speed):
    values, stamps, p = speed
    det = AnomalyDetector(DetectorConfig(**FAST))
    with pytest.raises(
        DataError, match=r"training stretch has 20 rows; the lookback \(chunk\) is 32"
    ):
        det.fit(values[:20], stamps[:20])
    bad = values[:p].copy()
    bad[50] = np.nan
    with pytest.raises(DataError, match="row 50 column 0: expected a finite number, got nan"):
        det.fit(bad, stamps[:p])
    back = stamps[:p].copy()
    back[60], back[61] = back[61], back[60]
    with pytest.raises(DataError, match="row 61: .* comes before row 60"):
        det.fit(values[:p], back)
    missing = stamps[:p].copy()
    missing[70] = np.datetime64("NaT")
    with pytest.raises(DataError, match="row 70: expected a timestamp"):
        det.fit(values[:p], missing)
    with pytest.raises(ConfigError, match="timestamps"):
        det.fit(values[:p])
    with pytest.raises(ConfigError, match="not fitted"):
        det.score_series(values, stamps)
    with pytest.raises(ConfigError, match="likelihood"):
        DetectorConfig(score="likelihood", head="mse")
    with pytest.raises(ConfigError, match="threshold"):
        parse_threshold("quantile:2")


def test_several_columns_and_no_calendar(speed):
    values, stamps, p = speed
    # two real columns: the speed and its value 12 rows earlier (a second sensor's stand-in)
    x = np.stack([values[12:], values[:-12]], axis=1)
    det = AnomalyDetector(DetectorConfig(**FAST, n_targets=2, calendar=False)).fit(x[:p])
    out = det.score_series(x)
    assert out["prediction"].shape == x.shape
    assert np.isnan(out["prediction"][0]).all() and np.isfinite(out["prediction"][1:]).all()
    streamed = [det.update(v)[0] for v in x[p:]]
    assert np.abs(np.array(streamed) - out["score"][p:]).max() <= 1e-5


def test_rank_scorer_rates_records_and_resumes():
    rng = np.random.default_rng(0)
    errors = np.abs(rng.normal(size=400))
    errors[300] = 10 * errors[:300].max()
    scorer = RankScorer(smoothing=1, history=1000, min_history=20)
    scores = np.array([scorer.update(e) for e in errors[:350]])
    assert scores[:20].max() == 0.0
    assert scores[300] == scores.max() and scores[300] > 0.5
    assert np.median(scores[20:300]) < 0.1
    saved = json.loads(json.dumps(scorer.state_dict()))
    resumed = RankScorer(smoothing=1, history=1000, min_history=20)
    resumed.load_state_dict(saved)
    assert [resumed.update(e) for e in errors[350:]] == [scorer.update(e) for e in errors[350:]]
