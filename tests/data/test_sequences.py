"""Readers, checks and bundled data: real JapaneseVowels files plus small broken files."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqshape.data import SequenceSet, from_arrays, read_long_csv, read_sequences, read_ts
from seqshape.datasets import available, load_japanese_vowels, path
from seqshape.errors import ConfigError, DataError, ShapeError

SHARED = Path("/work/shared/data/classification/japanese_vowels")

HEADER = """# a tiny test file
@problemName Tiny
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b
@data
"""


def write_ts(tmp_path: Path, body: str, header: str = HEADER, name: str = "tiny.ts") -> Path:
    p = tmp_path / name
    p.write_text(header + body)
    return p


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    return str(info.value)


# --- the bundled JapaneseVowels files -----------------------------------------------------------


@pytest.fixture(scope="module")
def train() -> SequenceSet:
    return load_japanese_vowels("train")


@pytest.fixture(scope="module")
def test() -> SequenceSet:
    return load_japanese_vowels("test")


def test_japanese_vowels_sizes(train: SequenceSet, test: SequenceSet) -> None:
    assert (len(train), len(test)) == (270, 370)
    for ds in (train, test):
        assert ds.n_features == 12
        assert ds.class_names == [str(i) for i in range(1, 10)]
        assert ds.lengths.dtype == np.int64
        assert all(
            a.dtype == np.float32 and a.shape == (t, 12)
            for a, t in zip(ds.X, ds.lengths, strict=True)
        )
        assert ds.ids[:3] == ["0", "1", "2"]
    lengths = np.concatenate([train.lengths, test.lengths])
    assert (lengths.min(), lengths.max()) == (7, 29)
    assert sorted(set(train.y)) == train.class_names
    # the training split has 30 utterances per speaker
    assert all(train.y.count(c) == 30 for c in train.class_names)


def test_japanese_vowels_values_match_the_text(train: SequenceSet) -> None:
    text = gzip.decompress(path("JapaneseVowels_TRAIN.ts.gz").read_bytes()).decode()
    data = text.split("@data", 1)[1]
    # every number in the data section (labels are single digits after the last ':')
    numbers = re.findall(r"-?\d+\.\d+(?:e-?\d+)?", data)
    assert sum(a.size for a in train.X) == len(numbers)
    first = train.X[0]
    # the first case's dimension 1 starts 1.860936,1.891651 and dimension 2 -0.207383
    np.testing.assert_allclose(first[:2, 0], [1.860936, 1.891651], rtol=1e-6)
    assert first[0, 1] == pytest.approx(-0.207383, rel=1e-6)
    assert first.shape == (20, 12)


def test_bundled_files_equal_the_shared_originals() -> None:
    for split in ("TRAIN", "TEST"):
        packed = gzip.decompress(path(f"JapaneseVowels_{split}.ts.gz").read_bytes())
        assert packed == (SHARED / f"JapaneseVowels_{split}.ts").read_bytes()
    air = pd.read_csv(path("AirPassengers.csv"))
    assert list(air.columns) == ["Month", "#Passengers"] and len(air) == 144


def test_plain_and_gzip_read_the_same(train: SequenceSet) -> None:
    plain = read_sequences(SHARED / "JapaneseVowels_TRAIN.ts")
    assert plain.y == train.y and plain.source.endswith("JapaneseVowels_TRAIN.ts")
    assert all(np.array_equal(a, b) for a, b in zip(plain.X, train.X, strict=True))


def test_dataset_path_errors() -> None:
    assert "AirPassengers.csv" in available()
    msg = error_of(path, "nope.csv")
    assert "'nope.csv'" in msg and "JapaneseVowels_TRAIN.ts.gz" in msg
    with pytest.raises(ConfigError, match="split: expected one of train, test, got 'dev'"):
        load_japanese_vowels("dev")


def test_round_trip_ts_to_long_csv(tmp_path: Path, train: SequenceSet) -> None:
    frames = []
    for sid, a, label in zip(train.ids, train.X, train.y, strict=True):
        df = pd.DataFrame(a, columns=[f"c{j}" for j in range(12)])
        df.insert(0, "step", np.arange(len(a)))
        df.insert(0, "sequence_id", f"utt{sid}")
        df["label"] = label
        frames.append(df)
    # shuffle the rows: the reader orders each sequence by step, sequences by first appearance
    long = pd.concat(frames, ignore_index=True)
    first_rows = long.groupby("sequence_id", sort=False).head(1)
    rest = long.drop(first_rows.index).sample(frac=1.0, random_state=0)
    for name, compression in (("train.csv", None), ("train.csv.gz", "gzip")):
        p = tmp_path / name
        pd.concat([first_rows, rest]).to_csv(
            p, index=False, float_format="%.9g", compression=compression
        )
        back = read_sequences(p)
        assert back.ids == [f"utt{i}" for i in train.ids]
        assert back.y == train.y and back.class_names == train.class_names
        assert back.n_features == 12
        assert all(np.array_equal(a, b) for a, b in zip(back.X, train.X, strict=True))


# --- .ts errors ----------------------------------------------------------------------------------


def test_ts_small_file_reads(tmp_path: Path) -> None:
    ds = read_ts(write_ts(tmp_path, "1,2,3:4,5,6:b\n\n# comment\n7:8:a\n"))
    assert ds.y == ["b", "a"] and ds.class_names == ["a", "b"]
    np.testing.assert_array_equal(ds.X[0], [[1, 4], [2, 5], [3, 6]])
    assert ds.X[1].shape == (1, 2)


def test_ts_missing_values_each_mode(tmp_path: Path) -> None:
    p = write_ts(tmp_path, "1,2:3,4:a\n?,5,NaN,,7:1,2,3,4,5:b\n")
    msg = error_of(read_ts, p)
    assert f"{p} line 11: dimension 1, value 1 is missing" in msg
    assert "missing='ffill'" in msg
    ffill = read_ts(p, missing="ffill")
    # leading gap back-filled, inner gaps carry the last value forward
    np.testing.assert_array_equal(ffill.X[1][:, 0], [5, 5, 5, 5, 7])
    zero = read_ts(p, missing="zero")
    np.testing.assert_array_equal(zero.X[1][:, 0], [0, 5, 0, 0, 7])
    np.testing.assert_array_equal(zero.X[1][:, 1], [1, 2, 3, 4, 5])


def test_ts_ffill_needs_one_value(tmp_path: Path) -> None:
    p = write_ts(tmp_path, "1,2:?,?:a\n")
    msg = error_of(read_ts, p, missing="ffill")
    assert f"{p} line 10: dimension 2 is entirely missing" in msg
    assert read_ts(p, missing="zero").X[0][:, 1].tolist() == [0, 0]


def test_missing_option_is_checked(tmp_path: Path) -> None:
    p = write_ts(tmp_path, "1:2:a\n")
    for fn in (read_ts, read_long_csv, read_sequences):
        with pytest.raises(ConfigError, match="missing: expected one of error, ffill, zero"):
            fn(p, missing="drop")


def test_ts_wrong_dimension_count(tmp_path: Path) -> None:
    p = write_ts(tmp_path, "1,2:3,4:a\n1,2:a\n")
    msg = error_of(read_ts, p)
    assert f"{p} line 11: expected 2 dimensions and a class label" in msg
    assert "got 2 fields" in msg


def test_ts_uneven_dimensions(tmp_path: Path) -> None:
    header = HEADER.replace("@dimensions 2", "@dimensions 3")
    p = write_ts(tmp_path, "1,2:3,4:5,6:a\n1,2:3,4:5:b\n", header=header)
    assert f"{p} line 11: dimension 3 has 1 values, dimension 1 has 2" in error_of(read_ts, p)


def test_ts_unknown_label(tmp_path: Path) -> None:
    p = write_ts(tmp_path, "1:2:a\n1:2:c\n")
    msg = error_of(read_ts, p)
    assert f"{p} line 11: label 'c' is not one of the declared @classLabel values a b" in msg


def test_ts_bad_number(tmp_path: Path) -> None:
    p = write_ts(tmp_path, "1,2:3,4:a\n1,2:3,x4:b\n")
    msg = error_of(read_ts, p)
    assert f"{p} line 11: dimension 2, value 2: expected a number, got 'x4'" in msg
    p = write_ts(tmp_path, "1,inf:3,4:a\n")
    assert "line 10: dimension 1, value 2: expected a finite number" in error_of(read_ts, p)


def test_ts_empty_case_and_missing_data(tmp_path: Path) -> None:
    p = write_ts(tmp_path, "1:2:a\n::b\n")
    assert f"{p} line 11: empty case" in error_of(read_ts, p)
    p = write_ts(tmp_path, "1:2:a\n", header=HEADER.replace("@data\n", ""))
    assert f"{p} line 9:" in error_of(read_ts, p) and "@data line missing" in error_of(read_ts, p)
    p = write_ts(tmp_path, "", header=HEADER.replace("@data\n", ""))
    assert "no @data line" in error_of(read_ts, p)
    p = write_ts(tmp_path, "")
    assert "no cases after @data" in error_of(read_ts, p)


def test_ts_unlabelled_and_equal_length(tmp_path: Path) -> None:
    header = "@dimensions 1\n@equalLength true\n@seriesLength 3\n@classLabel false\n@data\n"
    ds = read_ts(write_ts(tmp_path, "1,2,3\n4,5,6\n", header=header))
    assert ds.y is None and ds.class_names is None and ds.X[1][:, 0].tolist() == [4, 5, 6]
    p = write_ts(tmp_path, "1,2,3\n4,5\n", header=header)
    assert "line 7: expected 3 steps (@seriesLength), got 2" in error_of(read_ts, p)


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "data.txt"
    p.write_text("x")
    msg = error_of(read_sequences, p)
    assert str(p) in msg and ".ts, .ts.gz, .csv, .csv.gz" in msg
    assert "no such file" in error_of(read_sequences, tmp_path / "absent.ts")


def test_damaged_gzip(tmp_path: Path) -> None:
    good = gzip.compress(b"@dimensions 1\n@data\n" + b"1,2,3\n" * 200)
    p = tmp_path / "cut.ts.gz"
    p.write_bytes(good[: len(good) // 2])
    assert str(p) in error_of(read_sequences, p)


# --- long CSV errors ------------------------------------------------------------------------------


def write_csv(tmp_path: Path, text: str, name: str = "long.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_small_file_reads(tmp_path: Path) -> None:
    text = "sequence_id,step,x,y\ns2,1,10,11\ns1,0,1,2\n\ns2,0,8,9\ns1,1,3,4\n"
    ds = read_long_csv(write_csv(tmp_path, text))
    assert ds.ids == ["s2", "s1"] and ds.y is None
    np.testing.assert_array_equal(ds.X[0], [[8, 9], [10, 11]])
    np.testing.assert_array_equal(ds.X[1], [[1, 2], [3, 4]])


def test_csv_numeric_labels_sort_by_value(tmp_path: Path) -> None:
    text = "sequence_id,step,x,label\na,0,1,10\nb,0,1,2\nc,0,1,1\n"
    assert read_long_csv(write_csv(tmp_path, text)).class_names == ["1", "2", "10"]


def test_csv_duplicate_step(tmp_path: Path) -> None:
    text = "sequence_id,step,x\na,0,1\na,1,2\nb,0,3\na,1,4\n"
    p = write_csv(tmp_path, text)
    assert f"{p} line 5: sequence 'a' repeats step 1 (also on line 3)" in error_of(read_long_csv, p)


def test_csv_changing_label(tmp_path: Path) -> None:
    text = "sequence_id,step,x,label\na,0,1,cat\na,1,2,cat\na,2,3,dog\n"
    p = write_csv(tmp_path, text)
    msg = error_of(read_long_csv, p)
    assert f"{p} line 4: sequence 'a' has label 'dog' here but 'cat' on line 2" in msg


def test_csv_missing_values_each_mode(tmp_path: Path) -> None:
    text = "sequence_id,step,x,y\na,0,,1\na,1,2,?\na,2,NaN,3\na,3,4,4\n"
    p = write_csv(tmp_path, text)
    msg = error_of(read_long_csv, p)
    assert f"{p} line 2: column 'x' is missing" in msg
    ffill = read_long_csv(p, missing="ffill").X[0]
    np.testing.assert_array_equal(ffill, [[2, 1], [2, 1], [2, 3], [4, 4]])
    zero = read_long_csv(p, missing="zero").X[0]
    np.testing.assert_array_equal(zero, [[0, 1], [2, 0], [0, 3], [4, 4]])
    p = write_csv(tmp_path, "sequence_id,step,x,y\na,0,,1\na,1,?,2\n")
    msg = error_of(read_long_csv, p, missing="ffill")
    assert "lines 2-3: sequence 'a', column 'x' is entirely missing" in msg


def test_csv_structure_errors(tmp_path: Path) -> None:
    p = write_csv(tmp_path, "")
    assert f"{p}: empty file" in error_of(read_long_csv, p)
    p = write_csv(tmp_path, "sequence_id,step,x\n")
    assert "no data rows" in error_of(read_long_csv, p)
    p = write_csv(tmp_path, "id,step,x\na,0,1\n")
    assert f"{p} line 1: expected a header with columns sequence_id, step" in error_of(
        read_long_csv, p
    )
    p = write_csv(tmp_path, "sequence_id,step,label\na,0,x\n")
    assert "line 1: expected at least one feature column" in error_of(read_long_csv, p)
    p = write_csv(tmp_path, "sequence_id,step,x\na,0,1\na,1\n")
    assert "line 3: expected 3 fields (as in the header), got 2" in error_of(read_long_csv, p)
    p = write_csv(tmp_path, "sequence_id,step,x\na,zero,1\n")
    assert "line 2: column 'step': expected a number, got 'zero'" in error_of(read_long_csv, p)
    p = write_csv(tmp_path, "sequence_id,step,x\na,0,1\na,1,one\n")
    assert "line 3: column 'x': expected a number, got 'one'" in error_of(read_long_csv, p)


# --- from_arrays ----------------------------------------------------------------------------------


def test_from_arrays_accepts_and_checks() -> None:
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(t, 3)) for t in (5, 1, 9)]
    ds = from_arrays(X, y=np.array([0, 1, 0]))
    assert ds.y == ["0", "1", "0"] and ds.class_names == ["0", "1"]
    assert ds.source == "<arrays>" and ds.ids == ["0", "1", "2"]
    assert ds.lengths.tolist() == [5, 1, 9] and ds.X[0].dtype == np.float32

    bad = [*X, rng.normal(size=(4, 2))]
    with pytest.raises(ShapeError, match=re.escape("X[3]: expected (T, F=3), got (4, 2)")):
        from_arrays(bad)
    with pytest.raises(ShapeError, match=re.escape("X[0]: expected (T, F=4), got (5, 3)")):
        from_arrays(X, features=4)
    with pytest.raises(ShapeError, match="wrap a single sequence in a list"):
        from_arrays(X[0])
    with pytest.raises(ShapeError, match="y: expected 3 labels"):
        from_arrays(X, y=["a", "b"])
    X[2][4, 1] = np.nan
    with pytest.raises(DataError, match=re.escape("seqs[2] row 4: expected finite numbers")):
        from_arrays(X, name="seqs")
