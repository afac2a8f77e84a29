"""M4's file layout, its metrics and its Naive2 benchmark, checked against the competition's
published Hourly figures and against hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqshape.data.m4 import read_m4, read_m4_pair
from seqshape.errors import DataError
from seqshape.models.baselines import classical_seasonal_indices, m4_seasonality_test, naive2
from seqshape.train.forecast_metrics import m4_scores, owa

M4 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "forecasting" / "m4_hourly"


@pytest.fixture(scope="module")
def hourly():
    return read_m4_pair(M4 / "Hourly-train.csv", M4 / "Hourly-test.csv", horizon=48)


def test_reads_the_official_hourly_files(hourly):
    tr, te = hourly
    assert len(tr) == len(te) == 414
    assert tr.ids[0] == "H1" and tr.ids[-1] == "H414"
    lengths = [v.size for v in tr.values]
    assert min(lengths) == 700 and max(lengths) == 960
    assert te.values[0][:3].tolist() == [619.0, 565.0, 532.0]


def test_naive2_and_seasonal_naive_reproduce_the_published_hourly_figures(hourly):
    """Naive2 18.383 / 2.395 and seasonal naive 13.912 / 1.193 (m4_hourly_results.csv)."""
    tr, te = hourly
    n2 = [naive2(x, 48, 24) for x in tr.values]
    sn = [np.tile(x[-24:], 2) for x in tr.values]
    a = m4_scores(tr.values, te.values, n2, 24)
    b = m4_scores(tr.values, te.values, sn, 24)
    assert a["smape"] == pytest.approx(18.383, rel=1e-3)
    assert a["mase"] == pytest.approx(2.395, rel=1e-3)
    assert b["smape"] == pytest.approx(13.912, rel=1e-3)
    assert b["mase"] == pytest.approx(1.193, rel=1e-3)
    assert owa(b["smape"], b["mase"], a["smape"], a["mase"]) == pytest.approx(0.627, abs=1e-3)


def test_metrics_on_a_hand_computed_case():
    insample = [np.array([1.0, 3.0, 2.0, 4.0])]  # lag-2 differences |2-1|, |4-3| -> scale 1
    y = [np.array([2.0, 4.0])]
    yhat = [np.array([1.0, 4.0])]
    s = m4_scores(insample, y, yhat, season=2)
    # sMAPE: (200*1/3 + 0) / 2 = 33.33; MASE: mean(|1|, 0) / 1 = 0.5
    assert s["smape"] == pytest.approx(100 / 3)
    assert s["mase"] == pytest.approx(0.5)
    assert owa(10.0, 1.0, 20.0, 2.0) == pytest.approx(0.5)


def test_seasonal_indices_and_naive2_on_a_pure_multiplicative_cycle():
    pattern = np.array([0.5, 1.0, 1.5, 1.0])
    x = 10.0 * np.tile(pattern, 20)
    assert m4_seasonality_test(x, 4)
    np.testing.assert_allclose(classical_seasonal_indices(x, 4), pattern, rtol=1e-12)
    np.testing.assert_allclose(naive2(x, 6, 4), 10.0 * np.tile(pattern, 2)[:6], rtol=1e-12)
    # white noise: the 90% test flags a few series in a hundred (|r_24| beyond 1.645 sigma;
    # the biased ACF shrinks by (T - 24) / T, so fewer than the nominal 10%)
    rng = np.random.default_rng(0)
    series = [rng.normal(size=300) + 50 for _ in range(400)]
    flagged = [m4_seasonality_test(x, 24) for x in series]
    assert 0.02 < np.mean(flagged) < 0.12
    plain = series[flagged.index(False)]
    assert naive2(plain, 3, 24).tolist() == [plain[-1]] * 3  # not seasonal: the naive forecast
    assert not m4_seasonality_test(x[:11], 4)  # under three seasons: never seasonal


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text('"V1","V2","V3","V4"\n' + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(
    "rows,needle",
    [
        (['"A","1","2","3"', '"B","1","x",""'], "line 3: series 'B': value 'x' in column 3"),
        (['"A","1","","3"'], "line 2: series 'A': empty cell in column 3 before"),
        (['"A","1","2"', '"A","3","4"'], "line 3: series id 'A' repeats line 2"),
        (['"","1","2"'], "line 2: the first cell (the series id) is empty"),
        (['"A","1e39","2"'], "line 2: series 'A': column 2: expected a number within float32"),
        (['"A","nan","2"'], "line 2: series 'A': value 'nan' in column 2: expected a finite"),
    ],
)
def test_reader_errors_name_file_and_line(rows, needle, tmp_path):
    path = _write(tmp_path / "train.csv", rows)
    with pytest.raises(DataError) as e:
        read_m4(path)
    assert str(e.value) == f"{path} {needle}" or str(e.value).startswith(f"{path} {needle}")


def test_a_test_file_whose_ids_or_lengths_disagree(tmp_path):
    train = _write(tmp_path / "train.csv", ['"A","1","2","3"', '"B","4","5","6"'])
    swapped = _write(tmp_path / "test.csv", ['"B","1","2"', '"A","1","2"'])
    with pytest.raises(DataError, match=r"test.csv line 2: expected series 'A' \(row 1"):
        read_m4_pair(train, swapped, horizon=2)
    short = _write(tmp_path / "test2.csv", ['"A","1","2"', '"B","1",""'])
    with pytest.raises(DataError, match=r"test2.csv line 3: series 'B': expected 2 values"):
        read_m4_pair(train, short, horizon=2)
    fewer = _write(tmp_path / "test3.csv", ['"A","1","2"'])
    with pytest.raises(DataError, match="expected 2 series as in"):
        read_m4_pair(train, fewer, horizon=2)


def test_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_m4(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="is a directory"):
        read_m4(tmp_path)
    (tmp_path / "bad.csv").write_bytes(b'"V1","V2"\n"A","1"\n"B","\xff"\n')
    with pytest.raises(DataError, match="bad.csv line 3: not UTF-8"):
        read_m4(tmp_path / "bad.csv")
    (tmp_path / "bad.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_m4(tmp_path / "bad.csv.gz")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty file"):
        read_m4(tmp_path / "empty.csv")


def test_train_and_evaluate_m4_files_through_the_cli(tmp_path, capsys):
    """`train forecast --format m4` and `evaluate --format m4 --json` on the first 6 series."""
    import json

    from seqshape.cli import main

    lines_tr = (M4 / "Hourly-train.csv").read_text().splitlines()[:7]
    lines_te = (M4 / "Hourly-test.csv").read_text().splitlines()[:7]
    (tmp_path / "tr.csv").write_text("\n".join(lines_tr) + "\n")
    (tmp_path / "te.csv").write_text("\n".join(lines_te) + "\n")
    out = tmp_path / "model"
    argv = ["train", "forecast", "--data", str(tmp_path / "tr.csv"), "--format", "m4"]
    argv += ["--horizon", "48", "--season", "24", "--epochs", "1", "--hidden", "8"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "baselines (MASE out of sample)" in err and "seasonal_naive" in err
    argv = ["evaluate", str(out), "--data", str(tmp_path / "tr.csv")]
    argv += ["--test", str(tmp_path / "te.csv"), "--format", "m4", "--json"]
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert {"smape", "mase", "owa"} <= set(r) and r["n_series"] == 6 and r["horizon"] == 48
    assert set(r["baselines"]) == {"naive", "seasonal_naive", "naive2"}
    # Naive2 through the CLI equals the benchmark computed here; OWA is relative to it
    tr, te = read_m4_pair(tmp_path / "tr.csv", tmp_path / "te.csv", horizon=48)
    want = m4_scores(tr.values, te.values, [naive2(x, 48, 24) for x in tr.values], 24)
    assert r["baselines"]["naive2"]["smape"] == pytest.approx(want["smape"])
    assert r["baselines"]["naive2"]["owa"] == pytest.approx(1.0)
    assert r["owa"] == pytest.approx(owa(r["smape"], r["mase"], want["smape"], want["mase"]))
    # without the test file, one line and exit 2
    assert main(argv[:-5] + ["--format", "m4"]) == 2
    assert "--test: --format m4 needs the test file" in capsys.readouterr().err
