"""Values a reader cannot store, on broken copies of the real files: timestamps outside
datetime64[ns], numbers beyond float32, fields over the csv module's limit. Each is one DataError
naming the file, the line and the column, and nothing is printed on the way (no numpy warning)."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest

from seqshape.data.sequences import from_arrays, read_long_csv, read_ts
from seqshape.data.series import from_arrays as series_from_arrays
from seqshape.data.series import read_series_csv
from seqshape.errors import DataError

DATA = Path("/work/shared/data")
AIR = DATA / "forecasting/AirPassengers.csv"
ETT = DATA / "forecasting/ETTh1.csv"
VOWELS = DATA / "classification/japanese_vowels/JapaneseVowels_TRAIN.ts"
RANGE = "is outside the supported range 1677-09-21 .. 2262-04-11"
F32 = "expected a number within float32's range (|x| <= 3.402823e+38)"


def quiet_error(fn, *args, **kwargs) -> str:
    """The DataError's message; fails if any warning is raised on the way."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError) as info:
            fn(*args, **kwargs)
    assert [str(w.message) for w in caught] == []
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 400, msg
    return msg


def air_lines() -> list[str]:
    return AIR.read_text().splitlines()


def write(tmp_path: Path, lines: list[str], name: str) -> Path:
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def air_long(n: int = 30) -> list[str]:
    """Two interleaved series (ids a, b) from the real monthly counts; line k+2 is row k."""
    out = ["series_id,month,passengers"]
    for k, row in enumerate(air_lines()[1 : n + 1]):
        month, count = row.split(",")
        out.append(f"{'ab'[k % 2]},{month}-01,{count}")
    return out


def vowels_ts(cases: int = 4) -> list[str]:
    lines = VOWELS.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("@data"))
    return lines[: start + 1 + cases]


# -- timestamps outside 1677-09-21 .. 2262-04-11 -----------------------------------------------


@pytest.mark.parametrize("year", ["1500", "2263", "0001", "9999"])
def test_wide_csv_timestamp_out_of_range(tmp_path: Path, year: str) -> None:
    lines = air_lines()[:30]
    lines[16] = f"{year}-05,150"  # line 17 as an editor counts, the header being line 1
    p = write(tmp_path, lines, "sales.csv")
    msg = quiet_error(read_series_csv, p, target="#Passengers")
    assert msg == f"{p} line 17: column 'Month': timestamp '{year}-05' {RANGE}"


def test_the_first_offending_row_is_named(tmp_path: Path) -> None:
    lines = air_lines()[:30]
    lines[20] = "1949-13,150"  # not a date at all, but after the out-of-range one
    lines[9] = "2300-01,150"
    p = write(tmp_path, lines, "air.csv")
    msg = quiet_error(read_series_csv, p, target="#Passengers")
    assert msg == f"{p} line 10: column 'Month': timestamp '2300-01' {RANGE}"
    lines[9] = air_lines()[9]
    p = write(tmp_path, lines, "air.csv")
    msg = quiet_error(read_series_csv, p, target="#Passengers")
    assert msg == f"{p} line 21: column 'Month': expected a timestamp, got '1949-13'"


def test_long_csv_timestamp_out_of_range(tmp_path: Path) -> None:
    lines = air_long()
    lines[12] = "a,1500-01-01,150"
    p = write(tmp_path, lines, "long.csv")
    msg = quiet_error(read_series_csv, p, target="passengers")
    assert msg == f"{p} line 13: column 'month': timestamp '1500-01-01' {RANGE}"


def test_a_utc_offset_that_moves_a_time_past_the_end(tmp_path: Path) -> None:
    # ETTh1's real rows, then one that is in range as written but not once converted to UTC
    lines = ETT.read_text().splitlines()[:6]
    t, rest = lines[5].split(",", 1)
    lines[5] = "2262-04-11 23:00:00-05:00," + rest
    p = write(tmp_path, lines, "ett.csv")
    msg = quiet_error(read_series_csv, p, target="OT")
    assert msg == f"{p} line 6: column 'date': timestamp '2262-04-11 23:00:00-05:00' {RANGE}"


def test_the_range_edges_read(tmp_path: Path) -> None:
    lines = ["date,y", "1677-09-22,1", "1677-09-23,2", "1677-09-24,3"]
    f = read_series_csv(write(tmp_path, lines, "first.csv"), target="y")
    assert str(f.timestamps[0][0]) == "1677-09-22T00:00:00.000000000"
    lines = ["date,y", "2262-04-09,1", "2262-04-10,2", "2262-04-11,3"]
    f = read_series_csv(write(tmp_path, lines, "last.csv"), target="y")
    assert str(f.timestamps[0][-1]) == "2262-04-11T00:00:00.000000000"


# -- numbers beyond float32 ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1e39", "-1e39", "3.5e38"])
def test_series_csv_number_beyond_float32(tmp_path: Path, value: str) -> None:
    lines = air_lines()[:30]
    lines[5] = f"1949-05,{value}"
    p = write(tmp_path, lines, "air.csv")
    msg = quiet_error(read_series_csv, p, target="#Passengers")
    assert msg == f"{p} line 6: column '#Passengers': {F32}, got '{value}'"
    # the long layout, in a covariate column
    lines = ["series_id,month,passengers,load"] + [f"{r},7" for r in air_long()[1:]]
    lines[8] = lines[8].rsplit(",", 1)[0] + f",{value}"
    p = write(tmp_path, lines, "long.csv")
    msg = quiet_error(read_series_csv, p, target="passengers", past_covariates=["load"])
    assert msg == f"{p} line 9: column 'load': {F32}, got '{value}'"


def test_the_largest_float32_still_reads(tmp_path: Path) -> None:
    lines = air_lines()[:30]
    lines[5] = "1949-05,3.4028234e38"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = read_series_csv(write(tmp_path, lines, "air.csv"), target="#Passengers")
    assert caught == []
    assert f.target[0][4, 0] == np.float32(3.4028234e38)


def test_ts_and_long_csv_numbers_beyond_float32(tmp_path: Path) -> None:
    lines = vowels_ts()
    case = len(lines) - 2  # the third case; 1-based line number len(lines) - 1
    dims = lines[case].split(":")
    values = dims[3].split(",")
    values[2] = "1e39"
    dims[3] = ",".join(values)
    lines[case] = ":".join(dims)
    p = write(tmp_path, lines, "v.ts")
    msg = quiet_error(read_ts, p)
    assert msg == f"{p} line {case + 1}: dimension 4, value 3: {F32}, got '1e39'"

    rows = ["sequence_id,step,f1,f2,label", "s,0,1,2,a", "s,1,3,-2e40,a", "t,0,1,2,b"]
    p = write(tmp_path, rows, "v.csv")
    msg = quiet_error(read_long_csv, p)
    assert msg == f"{p} line 3: column 'f2': {F32}, got '-2e40'"


def test_arrays_beyond_float32() -> None:
    x = [np.zeros((3, 2)), np.array([[1.0, 2.0], [3.0, 1e39]])]
    msg = quiet_error(from_arrays, x)
    assert msg == f"X[1] row 1, feature 1: {F32}, got '1e+39'"
    # a forecasting frame from arrays: the real counts with one value blown up
    y = np.loadtxt(AIR, delimiter=",", skiprows=1, usecols=1)
    y[7] = -1e39
    msg = quiet_error(series_from_arrays, y, freq="MS", calendar=True)
    assert msg == f"target[0] row 7, column 0: {F32}, got '-1e+39'"


# -- fields over the csv module's limit ----------------------------------------------------------


def test_a_giant_field_names_its_line(tmp_path: Path) -> None:
    limit = csv.field_size_limit()
    lines = air_long()
    lines[7] = lines[7].rsplit(",", 1)[0] + "," + "1" * (limit + 10)
    p = write(tmp_path, lines, "long.csv")
    msg = quiet_error(read_series_csv, p, target="passengers")
    assert msg == (
        f"{p} line 8: a field is longer than 131,072 characters, the most a CSV field may hold "
        "(is a quote left open?)"
    )
    assert csv.field_size_limit() == limit  # the process-wide setting is left alone

    rows = ["sequence_id,step,f1,label", "s,0,1,a", 's,1,"' + "2" * (limit + 1) + '",a']
    p = write(tmp_path, rows, "v.csv")
    msg = quiet_error(read_long_csv, p)
    assert msg.startswith(f"{p} line 3: a field is longer than 131,072 characters")


def test_an_open_quote_names_where_the_record_starts(tmp_path: Path) -> None:
    # a quote opened on line 8 swallows the rest of the file into one field
    lines = air_long(144)
    lines[7] = lines[7].rsplit(",", 1)[0] + ',"12'
    lines += [lines[1]] * 12_000  # enough text after it to pass the field limit
    p = write(tmp_path, lines, "long.csv")
    msg = quiet_error(read_series_csv, p, target="passengers")
    assert msg.startswith(f"{p} lines 8-")
    assert "a field is longer than 131,072 characters" in msg and "quote left open" in msg


def test_an_open_quote_under_the_limit_is_shown_short(tmp_path: Path) -> None:
    lines = air_long()
    lines[7] = lines[7].rsplit(",", 1)[0] + ',"12'
    p = write(tmp_path, lines, "long.csv")
    msg = quiet_error(read_series_csv, p, target="passengers")
    assert msg.startswith(f"{p} line 8: column 'passengers': expected a number, got '12\\n")
    assert msg.endswith(" characters)")
