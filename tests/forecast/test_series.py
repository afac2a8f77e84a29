"""Series reader, calendar features, splits and the series scaling on the real ETTh1 / AirPassengers / NAB files,
and on broken copies of them written to tmp_path."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from seqshape.data.scaling import Scaling
from seqshape.data.series import (
    SeriesData,
    SeriesFrame,
    Splits,
    calendar_features,
    date_range,
    ett_split,
    from_arrays,
    future_timestamps,
    infer_freq,
    parse_freq,
    read_series_csv,
    split_by_counts,
    split_by_dates,
    split_by_fraction,
)
from seqshape.errors import ConfigError, DataError, ShapeError

FC = Path("/work/shared/data/forecasting")
ETT = FC / "ETTh1.csv"
AIR = FC / "AirPassengers.csv"
NAB = Path("/work/shared/data/anomaly/nab/data")
ETT_COVS = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL"]


@pytest.fixture(scope="module")
def ett() -> SeriesFrame:
    return read_series_csv(ETT, target="OT", past_covariates=ETT_COVS, future_covariates="auto")


@pytest.fixture(scope="module")
def air() -> SeriesFrame:
    return read_series_csv(AIR, target="#Passengers", future_covariates="auto")


def ett_lines() -> list[str]:
    return ETT.read_text().splitlines()


def write(tmp_path: Path, lines: list[str], name: str = "ETTh1.csv") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    return str(info.value)


# -- reading the real files ------------------------------------------------------------------


def test_ett_wide(ett: SeriesFrame):
    assert ett.series_ids == ["ETTh1"]
    assert ett.lengths.tolist() == [17420]
    assert ett.target_names == ["OT"] and ett.past_cov_names == ETT_COVS
    assert ett.future_cov_names == [
        "hour_of_day_sin",
        "hour_of_day_cos",
        "day_of_week_sin",
        "day_of_week_cos",
    ]
    assert ett.calendar_names == ett.future_cov_names
    assert ett.freq == "h"
    assert ett.target[0].shape == (17420, 1) and ett.target[0].dtype == np.float32
    assert ett.past_cov[0].shape == (17420, 6) and ett.future_cov[0].shape == (17420, 4)
    assert str(ett.timestamps[0][0]) == "2016-07-01T00:00:00.000000000"
    assert str(ett.timestamps[0][-1]) == "2018-06-26T19:00:00.000000000"
    # line 2 of the file: first row; last line: last row
    first = ett_lines()[1].split(",")
    assert ett.target[0][0, 0] == pytest.approx(float(first[7]), rel=1e-6)
    np.testing.assert_allclose(ett.past_cov[0][0], [float(v) for v in first[1:7]], rtol=1e-6)
    last = ett_lines()[-1].split(",")
    assert ett.target[0][-1, 0] == pytest.approx(float(last[7]), rel=1e-6)


def test_ett_several_targets_and_explicit_time_column():
    f = read_series_csv(ETT, target=["OT", "HUFL"], time_column="date")
    assert f.target_names == ["OT", "HUFL"] and f.n_past_cov == 0 and f.n_future_cov == 0
    assert f.past_cov[0].shape == (17420, 0) and f.future_cov[0].shape == (17420, 0)
    assert f.calendar_names == [] and f.freq == "h"


def test_air_monthly(air: SeriesFrame):
    assert air.lengths.tolist() == [144] and air.freq == "MS"
    assert air.future_cov_names == ["month_sin", "month_cos"]
    assert str(air.timestamps[0][0])[:10] == "1949-01-01"
    assert air.target[0][:3, 0].tolist() == [112, 118, 132]
    # January is month 0: sin 0, cos 1; April is month 3: sin 1, cos 0
    np.testing.assert_allclose(air.future_cov[0][0], [0.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(air.future_cov[0][3], [1.0, 0.0], atol=1e-7)


def test_nab_five_minutes_with_gaps_uses_the_median_step():
    f = read_series_csv(NAB / "realTraffic" / "speed_6005.csv", target="value")
    assert f.freq == "5min" and f.series_ids == ["speed_6005"]
    with pytest.raises(DataError, match="irregular steps"):
        future_timestamps(f.timestamps[0], 3)
    # with the step given, the future is placed anyway
    ahead = future_timestamps(f.timestamps[0], 2, freq=f.freq)
    assert (ahead - f.timestamps[0][-1]).astype("timedelta64[m]").astype(int).tolist() == [5, 10]


def test_gzip_and_long_format(tmp_path: Path):
    lines = ett_lines()
    gz = tmp_path / "ett.csv.gz"
    gz.write_bytes(gzip.compress(("\n".join(lines[:50]) + "\n").encode()))
    f = read_series_csv(gz, target="OT")
    assert f.lengths.tolist() == [49]

    # a long file from real rows: two series whose rows interleave
    air_rows = AIR.read_text().splitlines()[1:]
    ett_rows = lines[1:31]
    out = ["series_id,timestamp,load,passengers"]
    for k in range(30):
        t, *vals = ett_rows[k].split(",")
        out.append(f"ett,{t},{vals[6]},0")
        month, n = air_rows[k].split(",")
        out.append(f"air,{month}-01 00:00:00,1,{n}")
    p = write(tmp_path, out, "long.csv")
    frame = read_series_csv(p, target=["passengers"], past_covariates=["load"])
    assert frame.series_ids == ["ett", "air"]
    assert frame.lengths.tolist() == [30, 30]
    assert frame.freq is None  # hourly and monthly series
    assert frame.target[1][:3, 0].tolist() == [112, 118, 132]
    assert frame.past_cov[0][0, 0] == pytest.approx(30.531, rel=1e-4)
    msg = error_of(read_series_csv, p, target="passengers", future_covariates="auto")
    assert "one frequency" in msg and "'ett': h" in msg and "'air': MS" in msg
    # an explicit series column, and a series out of order within its own rows
    out2 = [line.replace("series_id", "site") for line in out]
    out2[3], out2[5] = out2[5], out2[3]  # swap two rows of series 'ett'
    p2 = write(tmp_path, out2, "long2.csv")
    msg = error_of(read_series_csv, p2, target="passengers", series_column="site")
    assert "long2.csv line 6: timestamp 2016-07-01 01:00:00 is not after line 4's" in msg
    assert "(series 'ett')" in msg


# -- every error message ----------------------------------------------------------------------


def test_missing_file(tmp_path: Path):
    msg = error_of(read_series_csv, tmp_path / "nope.csv", target="OT")
    assert msg == f"{tmp_path / 'nope.csv'}: no such file"


def test_dropped_column_lists_the_available_ones(tmp_path: Path):
    lines = [",".join(line.split(",")[:-1]) for line in ett_lines()[:30]]  # drop OT
    p = write(tmp_path, lines)
    msg = error_of(read_series_csv, p, target="OT")
    assert msg.endswith(
        "ETTh1.csv line 1: no value column 'OT' (columns: date, HUFL, HULL, MUFL, MULL, LUFL, LULL)"
    )
    msg = error_of(read_series_csv, p, target="HUFL", time_column="when")
    assert "no time column 'when'" in msg


def test_nan_and_empty_values(tmp_path: Path):
    lines = ett_lines()[:30]
    cells = lines[9].split(",")
    cells[7] = "NaN"
    lines[9] = ",".join(cells)
    cells = lines[14].split(",")
    cells[1] = ""
    lines[14] = ",".join(cells)
    p = write(tmp_path, lines)
    msg = error_of(read_series_csv, p, target="OT")
    assert msg.endswith(
        "ETTh1.csv line 10: column 'OT': expected a number, got an empty/NaN value "
        "(pass missing='ffill' to fill gaps)"
    )
    msg = error_of(read_series_csv, p, target="OT", past_covariates=["HUFL"])
    assert "line 10: column 'OT'" in msg  # the first bad cell of the block
    msg = error_of(read_series_csv, p, target="HUFL")
    assert "line 15: column 'HUFL'" in msg
    f = read_series_csv(p, target="OT", past_covariates=["HUFL"], missing="ffill")
    assert f.target[0][8, 0] == f.target[0][7, 0]  # line 10 is row 8, filled from row 7
    assert f.past_cov[0][13, 0] == f.past_cov[0][12, 0]
    with pytest.raises(ConfigError, match="missing: expected one of error, ffill"):
        read_series_csv(p, target="OT", missing="zero")


def test_ffill_back_fills_a_leading_gap_and_rejects_an_empty_column(tmp_path: Path):
    lines = ett_lines()[:6]
    for r in (1, 2):
        cells = lines[r].split(",")
        cells[7] = ""
        lines[r] = ",".join(cells)
    f = read_series_csv(write(tmp_path, lines), target="OT", missing="ffill")
    assert f.target[0][0, 0] == f.target[0][2, 0] == f.target[0][1, 0]
    lines = [lines[0]] + [",".join(line.split(",")[:7] + [""]) for line in lines[1:]]
    msg = error_of(read_series_csv, write(tmp_path, lines), target="OT", missing="ffill")
    assert "column 'OT' has no value at all" in msg


def test_non_numeric_value(tmp_path: Path):
    lines = ett_lines()[:30]
    cells = lines[20].split(",")
    cells[3] = "12,5".replace(",", ";")
    lines[20] = ",".join(cells)
    msg = error_of(read_series_csv, write(tmp_path, lines), target="OT", past_covariates=["MUFL"])
    assert msg.endswith("ETTh1.csv line 21: column 'MUFL': expected a number, got '12;5'")
    cells[3] = "inf"
    lines[20] = ",".join(cells)
    msg = error_of(read_series_csv, write(tmp_path, lines), target="MUFL")
    assert msg.endswith("line 21: column 'MUFL': expected a finite number, got 'inf'")


def test_swapped_timestamps(tmp_path: Path):
    lines = ett_lines()[:200]
    lines[120], lines[121] = lines[121], lines[120]  # file lines 121 and 122
    msg = error_of(read_series_csv, write(tmp_path, lines), target="OT")
    assert msg.endswith(
        "ETTh1.csv line 122: timestamp 2016-07-05 23:00:00 is not after "
        "line 121's 2016-07-06 00:00:00"
    )


def test_duplicate_timestamp(tmp_path: Path):
    lines = ett_lines()[:50]
    lines.insert(11, lines[10])
    msg = error_of(read_series_csv, write(tmp_path, lines), target="OT")
    assert msg.endswith(
        "line 12: timestamp 2016-07-01 09:00:00 is not after line 11's 2016-07-01 09:00:00 "
        "(a duplicate)"
    )


def test_bad_and_empty_dates(tmp_path: Path):
    lines = ett_lines()[:30]
    lines[6] = "2016-07-01 xx:00:00," + lines[6].split(",", 1)[1]
    msg = error_of(read_series_csv, write(tmp_path, lines), target="OT")
    assert msg.endswith(
        "ETTh1.csv line 7: column 'date': expected a timestamp, got '2016-07-01 xx:00:00'"
    )
    lines[6] = "," + lines[6].split(",", 1)[1]
    msg = error_of(read_series_csv, write(tmp_path, lines), target="OT")
    assert msg.endswith("line 7: column 'date': expected a timestamp, got an empty cell")


def test_structure_errors(tmp_path: Path):
    lines = ett_lines()[:10]
    lines[4] = lines[4] + ",9"
    msg = error_of(read_series_csv, write(tmp_path, lines), target="OT")
    assert "ETTh1.csv line 5: expected 8 fields (date, HUFL" in msg and msg.endswith("got 9")
    assert "empty file" in error_of(read_series_csv, write(tmp_path, [""]), target="OT")
    assert "no data rows" in error_of(
        read_series_csv, write(tmp_path, ett_lines()[:1]), target="OT"
    )
    numbers = [line.split(",", 1)[1] for line in ett_lines()[:10]]
    msg = error_of(read_series_csv, write(tmp_path, numbers), target="OT")
    assert "line 2: no column parses as timestamps" in msg and "pass time_column=" in msg
    with pytest.raises(ConfigError, match="'OT' is already used as target"):
        read_series_csv(ETT, target="OT", past_covariates=["OT"])


# -- frequencies and calendar features --------------------------------------------------------


def test_infer_and_parse_freq():
    assert infer_freq(date_range("2020-01-01", 5, "15min")) == "15min"
    assert infer_freq(date_range("2020-01-31", 5, "ME")) == "ME"
    assert infer_freq(date_range("2020-01-01", 5, "3MS")) == "3MS"
    assert infer_freq(date_range("2020-01-01", 5, "7D")) == "7D"
    assert parse_freq("12MS") == (12, "MS")
    with pytest.raises(ConfigError, match="expected \\[n\\]unit"):
        parse_freq("hourly")
    ts = date_range("2020-01-01", 6, "h")
    ts[4] += np.timedelta64(30, "m")
    with pytest.raises(DataError, match="irregular steps: .* is 1h but .* is 90min"):
        infer_freq(ts)
    assert infer_freq(ts, strict=False) == "h"


def test_month_end_and_month_start_futures(air: SeriesFrame):
    ends = date_range("2019-11-30", 3, "ME")
    assert [str(t)[:10] for t in ends] == ["2019-11-30", "2019-12-31", "2020-01-31"]
    ahead = future_timestamps(ends, 2)
    assert [str(t)[:10] for t in ahead] == ["2020-02-29", "2020-03-31"]
    ahead = future_timestamps(air.timestamps[0], 13)
    assert str(ahead[0])[:10] == "1961-01-01" and str(ahead[-1])[:10] == "1962-01-01"


@pytest.mark.parametrize("which", ["ett", "air"])
def test_calendar_features_extend_into_the_future(which: str, ett, air):
    frame = {"ett": ett, "air": air}[which]
    ts, full = frame.timestamps[0], frame.future_cov[0]
    cut = len(ts) - 30
    ahead = future_timestamps(ts[:cut], 30)
    np.testing.assert_array_equal(ahead, ts[cut:])
    feats, names = calendar_features(ahead, freq=frame.freq)
    assert names == frame.calendar_names
    np.testing.assert_allclose(feats, full[cut:], atol=1e-6)
    # the frame's own helper continues past the end of the data
    more = frame.future_cov_ahead(0, 5)
    expect, _ = calendar_features(frame.future_timestamps(0, 5), freq=frame.freq)
    np.testing.assert_array_equal(more, expect)


def test_calendar_feature_values():
    # 2016-07-01 was a Friday (day 4 with Monday = 0); hour 6 is a quarter turn
    feats, names = calendar_features(np.array(["2016-07-01T06:00"], dtype="M8[ns]"), freq="h")
    np.testing.assert_allclose(
        feats[0], [1, 0, np.sin(2 * np.pi * 4 / 7), np.cos(2 * np.pi * 4 / 7)], atol=1e-6
    )
    day, names = calendar_features(date_range("1949-04-04", 2, "D"))  # a Monday in April
    assert names == ["day_of_week_sin", "day_of_week_cos", "month_sin", "month_cos"]
    np.testing.assert_allclose(day[0], [0, 1, 1, 0], atol=1e-6)
    sub, _ = calendar_features(date_range("2020-01-06 18:30", 2, "30min"))
    assert sub[0, 0] == pytest.approx(np.sin(2 * np.pi * 18.5 / 24), abs=1e-6)
    yearly, names = calendar_features(date_range("2000-01-01", 3, "12MS"))
    assert yearly.shape == (3, 0) and names == []


def test_future_cov_ahead_needs_user_columns():
    target = np.arange(48, dtype=np.float32)
    f = from_arrays(target, future_cov=np.ones((48, 1)), future_cov_names=["promo"], calendar=True)
    assert f.future_cov_names[0] == "promo" and f.calendar_names[0] == "hour_of_day_sin"
    with pytest.raises(DataError, match=r"\['promo'\] are not calendar features"):
        f.future_cov_ahead(0, 3)
    got = f.future_cov_ahead(0, 3, known=np.zeros((3, 1)))
    assert got.shape == (3, 5) and (got[:, 0] == 0).all()
    with pytest.raises(ShapeError, match=r"known: expected \(3, 1\)"):
        f.future_cov_ahead(0, 3, known=np.zeros((2, 1)))


# -- splits -----------------------------------------------------------------------------------


def test_ett_split(ett: SeriesFrame):
    assert ett_split() == (8640, 2880, 2880)
    assert ett_split(steps_per_hour=4) == (34560, 11520, 11520)
    sp = split_by_counts(ett, ett_split())
    assert sp.bounds.tolist() == [[8640, 11520, 14400]]
    assert sp.train.tolist() == [[0, 8640]] and sp.val.tolist() == [[8640, 11520]]
    assert sp.test.tolist() == [[11520, 14400]]
    # the split starts are midnights of 2017-06-26 and 2017-10-24
    assert str(ett.timestamps[0][8640])[:19] == "2017-06-26T00:00:00"
    assert str(ett.timestamps[0][11520])[:19] == "2017-10-24T00:00:00"
    assert Splits.from_dict(json.loads(json.dumps(sp.to_dict()))).bounds.tolist() == [
        [8640, 11520, 14400]
    ]


def test_split_by_fraction_and_dates(ett: SeriesFrame, air: SeriesFrame):
    sp = split_by_fraction(air, (0.6, 0.2, 0.2))
    assert sp.bounds.tolist() == [[86, 115, 144]]  # 86.4, 115.2, 144
    sp = split_by_fraction(ett, (0.7, 0.1, 0.1))
    assert sp.bounds.tolist() == [[12194, 13936, 15678]]
    sp = split_by_dates(ett, ["2017-06-26", "2017-10-24"])
    assert sp.bounds.tolist() == [[8640, 11520, 17420]]
    sp = split_by_dates(air, ["1958-01", "1959-06-15"])
    assert sp.bounds.tolist() == [[108, 126, 144]]  # 1959-07 is the first month after 06-15
    with pytest.raises(ConfigError, match="validation start before the test start"):
        split_by_dates(air, ["1959-01", "1958-01"])
    with pytest.raises(ConfigError, match="summing to at most 1"):
        split_by_fraction(air, (0.7, 0.2, 0.2))


def test_too_short_splits(air: SeriesFrame):
    msg = error_of(split_by_counts, air, ett_split())
    assert msg.endswith(
        "series 'AirPassengers': the split needs 8640 + 2880 + 2880 = 14400 steps, the series has 144"
    )
    msg = error_of(split_by_dates, air, ["1940-01", "1950-01"])
    assert "train/val/test sizes (0, 12, 132)" in msg
    tiny = from_arrays(np.arange(3.0))
    assert "sizes (2, 0, 1)" in error_of(split_by_fraction, tiny, (0.6, 0.2, 0.2))


# -- scaling ----------------------------------------------------------------------------------


def test_scaling_fits_on_the_training_part_only(ett: SeriesFrame):
    sp = split_by_counts(ett, ett_split())
    series = ett.to_series()
    sc = Scaling.fit(series, list(sp.train_end), global_=False)
    train = ett.target[0][:8640].astype(np.float64)
    assert sc.z_mean[0, 0] == pytest.approx(train.mean(), rel=1e-4)  # float32 sums
    assert sc.z_std[0, 0] == pytest.approx(train.std(), rel=1e-4)
    assert sc.z_mean[0, 0] != pytest.approx(ett.target[0].astype(np.float64).mean(), rel=1e-3)
    ((z, f),) = sc.apply(series)
    assert abs(z[:8640, 0].mean()) < 1e-3 and z[:8640, 0].std() == pytest.approx(1.0, abs=1e-3)
    # the rows after the training part change nothing
    cut = SeriesData(
        target=ett.target[0][:8640],
        past_cov=ett.past_cov[0][:8640],
        future_cov=ett.future_cov[0][:8640],
    )
    again = Scaling.fit([cut], [8640], global_=False)
    np.testing.assert_array_equal(again.z_mean, sc.z_mean)


def test_scaling_round_trip_and_global_vs_per_series(tmp_path: Path):
    air_rows = AIR.read_text().splitlines()[1:]
    out = ["series_id,month,passengers"]
    for row in air_rows:
        month, n = row.split(",")
        out.append(f"a,{month},{n}")
        out.append(f"b,{month},{int(n) * 10}")
    series = read_series_csv(write(tmp_path, out, "two.csv"), target="passengers").to_series()
    per = Scaling.fit(series, [100, 100], global_=False)
    glob = Scaling.fit(series, [100, 100], global_=True)
    assert per.z_mean.shape == (2, 1) and glob.z_mean.shape == (1, 1)
    assert per.z_mean[1, 0] == pytest.approx(10 * per.z_mean[0, 0], rel=1e-5)
    pooled = np.concatenate([series[0].target[:100], series[1].target[:100]]).astype(np.float64)
    assert glob.z_mean[0, 0] == pytest.approx(pooled.mean(), rel=1e-5)
    # per-series scaling maps both series onto the same values, a global one does not
    p = per.apply(series)
    np.testing.assert_allclose(p[0][0], p[1][0], rtol=1e-5, atol=1e-5)
    g = glob.apply(series)
    assert not np.allclose(g[0][0], g[1][0])
    for sc, expect in ((per, p), (glob, g)):
        again = Scaling.from_dict(json.loads(json.dumps(sc.to_dict())))
        for got, want in zip(again.apply(series), expect):
            np.testing.assert_array_equal(got[0], want[0])
