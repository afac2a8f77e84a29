"""The NAB corpus reader and scorer, checked against NAB's published scoreboard."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from seqshape.anomaly import (
    CostProfile,
    NabSeries,
    load_corpus,
    load_profiles,
    probationary_length,
    read_results,
    score_corpus,
    score_detector,
    sweep_thresholds,
    write_results,
)
from seqshape.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def nab(shared_data: Path) -> Path:
    return shared_data / "anomaly" / "nab"


@pytest.fixture(scope="module")
def corpus(nab: Path) -> list[NabSeries]:
    return load_corpus(nab)


@pytest.fixture(scope="module")
def numenta(nab: Path, corpus) -> dict[str, np.ndarray]:
    return read_results(nab / "results", "numenta", corpus)


def test_probation_follows_nab():
    # min(floor(0.15 n), 0.15 * 5000)
    assert probationary_length(4032) == 604
    assert probationary_length(1000) == 150
    assert probationary_length(10320) == 750


def test_corpus_reads_every_series_and_window(nab, corpus):
    labels = json.loads((nab / "labels" / "combined_windows.json").read_text())
    assert len(corpus) == 58
    assert sum(len(s) for s in corpus) == 365558
    assert sum(len(s.windows) for s in corpus) == 116
    for s in corpus:
        assert len(s.values) == len(s)
        for (first, last), (t1, t2) in zip(s.windows, labels[s.relative_name], strict=True):
            assert s.timestamps[first] == np.datetime64(t1[:19])
            assert s.timestamps[last] == np.datetime64(t2[:19])
            assert s.probation <= first  # no window in this corpus starts in probation


def test_numenta_row_is_reproduced(nab):
    published = json.loads((nab / "results" / "final_results.json").read_text())["numenta"]
    got = score_detector(nab, nab / "results", "numenta")
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert abs(got[profile] - published[profile]) < 0.5, profile
        assert 0.0 < got["thresholds"][profile] < 1.0
    # the exact sweep can only match or beat NAB's local search on the same data
    assert got["standard"] == pytest.approx(70.10, abs=0.01)
    assert got["reward_low_FN_rate"] == pytest.approx(74.32, abs=0.01)
    assert got["reward_low_FP_rate"] >= published["reward_low_FP_rate"] - 1e-9


def test_published_thresholds_give_published_scores(nab):
    published = json.loads((nab / "results" / "final_results.json").read_text())["numenta"]
    chosen = json.loads((nab / "config" / "thresholds.json").read_text())["numenta"]
    got = score_detector(
        nab, nab / "results", "numenta", thresholds={p: v["threshold"] for p, v in chosen.items()}
    )
    for profile, entry in chosen.items():
        assert got["raw"][profile] == pytest.approx(entry["score"], abs=1e-9)
        assert got[profile] == pytest.approx(published[profile], abs=1e-9)


def test_sweep_agrees_with_scoring_at_a_fixed_threshold(corpus, numenta):
    # two code paths: the cumulative sweep and a direct count at one threshold
    profile = CostProfile(tp_weight=1.0, fp_weight=0.22, fn_weight=1.0)
    thresholds, raw = sweep_thresholds(corpus, numenta, profile)
    assert np.all(np.diff(thresholds) < 0)
    assert raw[0] == -116.0  # nothing detected: every window missed
    for m in (1, 5, 50, len(thresholds) // 2, len(thresholds) - 1):
        at = score_corpus(corpus, numenta, profile, threshold=float(thresholds[m]))
        assert at.raw == pytest.approx(raw[m], rel=1e-10, abs=1e-9)
    best = score_corpus(corpus, numenta, profile)
    assert best.raw == pytest.approx(raw.max(), abs=1e-12)


def test_perfect_detector_scores_100_and_null_0(nab, corpus, tmp_path):
    perfect = {}
    for s in corpus:
        x = np.zeros(len(s))
        x[[first for first, _ in s.windows]] = 1.0
        perfect[s.relative_name] = x
    write_results(tmp_path, "perfect", corpus, perfect)
    assert (tmp_path / "perfect" / "realKnownCause" / "perfect_nyc_taxi.csv").is_file()
    got = score_detector(nab, tmp_path, "perfect")
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert got[profile] == pytest.approx(100.0, abs=1e-9)
        assert got["thresholds"][profile] == 1.0

    null = {s.relative_name: np.full(len(s), 0.5) for s in corpus}
    for profile in load_profiles(nab).values():
        assert score_corpus(corpus, null, profile).normalized == pytest.approx(0.0, abs=1e-12)


def test_results_round_trip(corpus, numenta, tmp_path):
    some = corpus[:3]
    write_results(tmp_path, "copy", some, {s.relative_name: numenta[s.relative_name] for s in some})
    back = read_results(tmp_path, "copy", some)
    for s in some:
        np.testing.assert_array_equal(back[s.relative_name], numenta[s.relative_name])
    assert set(read_results(tmp_path, "copy")) == {s.relative_name for s in some}


def test_scoring_rule_by_hand():
    # 100 rows, probation 15, one window on rows 50..59 (W = 10)
    times = np.arange(100).astype("datetime64[m]").astype("datetime64[ns]")
    s = NabSeries(
        category="c", name="x.csv", timestamps=times, values=np.zeros(100), windows=((50, 59),)
    )
    profile = CostProfile(tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
    x = np.zeros(100)
    x[[10, 30, 52, 55, 70]] = 1.0  # row 10 is probationary and ignored

    def sigma(v):
        return -1.0 if v >= 3 else 2.0 / (1.0 + math.exp(5.0 * v)) - 1.0

    tp = sigma(-(59 - 52 + 1) / 10) / sigma(-1.0)  # only the earliest detection counts
    fp_before = -0.11  # no window precedes row 30
    fp_after = 0.11 * sigma((70 - 59) / 9)
    got = score_corpus([s], {"c/x.csv": x}, profile, threshold=1.0)
    assert got.raw == pytest.approx(tp + fp_before + fp_after, abs=1e-12)
    assert got.null == -1.0 and got.perfect == 1.0

    missed = score_corpus([s], {"c/x.csv": np.where(np.arange(100) == 80, 1.0, 0.0)}, profile, 1.0)
    assert missed.raw == pytest.approx(-1.0 + 0.11 * sigma((80 - 59) / 9), abs=1e-12)


def _small_tree(nab: Path, root: Path, names: list[str]) -> Path:
    labels = json.loads((nab / "labels" / "combined_windows.json").read_text())
    for name in names:
        (root / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(nab / "data" / name, root / "data" / name)
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(
        json.dumps({n: labels[n] for n in names})
    )
    (root / "config").mkdir()
    shutil.copy(nab / "config" / "profiles.json", root / "config" / "profiles.json")
    return root


NAMES = ["realKnownCause/nyc_taxi.csv", "artificialNoAnomaly/art_flatline.csv"]


def test_missing_directories_and_files_are_named(nab, tmp_path):
    with pytest.raises(DataError, match=r"data: expected the NAB data directory"):
        load_corpus(tmp_path)
    tree = _small_tree(nab, tmp_path / "nab", NAMES)
    (tree / "labels" / "combined_windows.json").unlink()
    with pytest.raises(DataError, match=r"combined_windows.json: file not found"):
        load_corpus(tree)


def test_label_and_data_must_match(nab, tmp_path):
    tree = _small_tree(nab, tmp_path / "nab", NAMES)
    labels = json.loads((tree / "labels" / "combined_windows.json").read_text())
    labels["realKnownCause/gone.csv"] = []
    (tree / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    with pytest.raises(DataError, match=r"labels name 'realKnownCause/gone.csv'"):
        load_corpus(tree)
    labels.pop("realKnownCause/gone.csv")
    labels["realKnownCause/nyc_taxi.csv"][0][0] = "2014-10-30 15:31:00.000000"
    (tree / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    with pytest.raises(
        DataError, match=r"nyc_taxi.csv window 0: limit 2014-10-30 15:31:00.000000 is not"
    ):
        load_corpus(tree)


def test_bad_data_line_is_named(nab, tmp_path):
    tree = _small_tree(nab, tmp_path / "nab", NAMES)
    path = tree / "data" / NAMES[1]
    lines = path.read_text().splitlines()
    lines[7] = lines[7].split(",")[0] + ",oops"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"art_flatline.csv line 8: expected a finite number"):
        load_corpus(tree)


def test_results_errors_name_the_file(nab, tmp_path):
    tree = _small_tree(nab, tmp_path / "nab", NAMES)
    corpus = load_corpus(tree)
    results = tmp_path / "results"
    with pytest.raises(DataError, match=r"results/numenta: expected the results directory"):
        read_results(results, "numenta", corpus)
    shutil.copytree(
        nab / "results" / "numenta" / "realKnownCause", results / "numenta" / "realKnownCause"
    )
    with pytest.raises(DataError, match=r"numenta_art_flatline.csv: expected a results file"):
        read_results(results, "numenta", corpus)
    shutil.copytree(
        nab / "results" / "numenta" / "artificialNoAnomaly",
        results / "numenta" / "artificialNoAnomaly",
    )
    assert set(read_results(results, "numenta", corpus)) == set(NAMES)

    gz = results / "numenta" / "realKnownCause" / "numenta_nyc_taxi.csv.gz"
    lines = gzip.decompress(gz.read_bytes()).decode().splitlines()
    gz.unlink()
    short = results / "numenta" / "realKnownCause" / "numenta_nyc_taxi.csv"
    short.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match=r"numenta_nyc_taxi.csv: expected 10320 rows .* got 10319"):
        read_results(results, "numenta", corpus)
    lines[3] = "2014-07-01 01:05:00," + lines[3].split(",")[1]
    short.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"numenta_nyc_taxi.csv line 4: expected timestamp 2014-07-01 01:00:00"
    ):
        read_results(results, "numenta", corpus)


def test_bad_inputs_are_refused(corpus):
    s = corpus[0]
    with pytest.raises(DataError, match=r"expected shape \(4032,\), got \(3,\)"):
        score_corpus([s], {s.relative_name: np.zeros(3)}, CostProfile())
    with pytest.raises(DataError, match=r"expected an entry for"):
        score_corpus([s], {}, CostProfile())
    with pytest.raises(ConfigError, match=r"fp_weight"):
        CostProfile(fp_weight=-1.0)
    with pytest.raises(ConfigError, match=r"detector"):
        write_results("/tmp", "my_detector", [s], {})
