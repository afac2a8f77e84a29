"""A bounded, seeded fuzz of every file reader on small real files cut from ../shared/data.

Each mutated file must either read or raise a SeqshapeError (one line in the CLI); any other
exception, or any warning printed on the way, is a failure. The mutations are what users' files
really do: a line lost or doubled, a cut-off file, a cell swapped for text, a huge number, a
value beyond float32, nan/inf, an empty cell, a date outside pandas' range, a giant field,
non-UTF-8 bytes, a BOM, CRLF line ends, a column too many or too few, gzip (whole or cut off),
an empty file, a directory.
"""

from __future__ import annotations

import gzip
import random
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from seqshape.data.pairs import read_cmudict, read_tsv_pairs
from seqshape.data.sequences import read_long_csv, read_ts
from seqshape.data.series import read_series_csv
from seqshape.errors import SeqshapeError

DATA = Path("/work/shared/data")
ETT_COVS = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL"]
ROUNDS = 150  # mutated files per reader: 7 readers -> 1071 reads


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _ett() -> str:
    return "\n".join(_lines(DATA / "forecasting/ETTh1.csv")[:40]) + "\n"


def _air() -> str:
    return "\n".join(_lines(DATA / "forecasting/AirPassengers.csv")[:40]) + "\n"


def _air_long() -> str:
    # two interleaved series from the real monthly counts, one row per month
    rows = _lines(DATA / "forecasting/AirPassengers.csv")[1:41]
    out = ["series_id,month,passengers"]
    for k, row in enumerate(rows):
        month, n = row.split(",")
        out.append(f"{'ab'[k % 2]},{month}-01,{n}")
    return "\n".join(out) + "\n"


def _vowels_ts() -> str:
    lines = _lines(DATA / "classification/japanese_vowels/JapaneseVowels_TRAIN.ts")
    start = next(i for i, line in enumerate(lines) if line.lower().startswith("@data"))
    return "\n".join(lines[7 : start + 7]) + "\n"  # the headers, @data and 6 cases


def _vowels_long() -> str:
    lines = _lines(DATA / "classification/japanese_vowels/JapaneseVowels_TRAIN.ts")
    start = next(i for i, line in enumerate(lines) if line.lower().startswith("@data"))
    feats = [f"c{j}" for j in range(12)]
    out = ["sequence_id,step," + ",".join(feats) + ",label"]
    for case, line in enumerate(lines[start + 1 : start + 4]):
        *dims, label = line.split(":")
        cols = [d.split(",") for d in dims]
        for t in range(len(cols[0])):
            out.append(f"s{case},{t}," + ",".join(c[t] for c in cols) + f",{label}")
    return "\n".join(out) + "\n"


def _tatoeba() -> str:
    return "\n".join(_lines(DATA / "seq2seq/tatoeba/eng-fra.txt")[:30]) + "\n"


def _cmudict() -> str:
    return "\n".join(_lines(DATA / "seq2seq/cmudict/cmudict.dict")[1000:1040]) + "\n"


# name -> (file suffix, base text, read function)
READERS: dict[str, tuple[str, Callable[[], str], Callable[[Path], object]]] = {
    "ett_wide": (
        ".csv",
        _ett,
        lambda p: read_series_csv(
            p, target="OT", past_covariates=ETT_COVS, future_covariates="auto"
        ),
    ),
    "air_wide": (
        ".csv",
        _air,
        lambda p: read_series_csv(p, target="#Passengers", future_covariates="auto"),
    ),
    "air_long": (
        ".csv",
        _air_long,
        lambda p: read_series_csv(p, target="passengers", missing="ffill"),
    ),
    "vowels_ts": (".ts", _vowels_ts, lambda p: read_ts(p, missing="ffill")),
    "vowels_long": (".csv", _vowels_long, lambda p: read_long_csv(p, missing="zero")),
    "tatoeba": (".txt", _tatoeba, lambda p: read_tsv_pairs(p, tokenize="words")),
    "cmudict": (".dict", _cmudict, lambda p: read_cmudict(p, strip_stress=True)),
}

DATES = [b"1500-01-01", b"2300-01-01 00:00:00", b"0001-01-01", b"9999-12-31"]
GIANT = [b"7" * 100_000, b"1" * 200_000, b"x" * 200_000]  # the csv field limit is 131,072
CELLS = [
    b"abc",
    b"1e39",
    b"-1e39",
    b"3.5e38",
    b"1e309",
    b"9" * 400,
    b"nan",
    b"inf",
    b"-inf",
    b"",
    b"?",
    b'"',
    b"\xff\xfe",
    b"\x00",
    *DATES,
    *GIANT,
]
_TOKEN = re.compile(rb"[^,:\t \n]+|(?<=[,:\t])(?=[,:\t\n])")
_YEAR = re.compile(rb"\b(19|20)\d\d-")


def _mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One seeded mutation of ``data``: the new bytes and what was done."""
    lines = data.split(b"\n")
    i = rng.randrange(len(lines))
    kind = rng.choice(
        [
            "delete",
            "duplicate",
            "swap",
            "truncate",
            "cell",
            "cell",
            "cell",
            "cell",
            "date",
            "giant",
            "bytes",
            "bom",
            "crlf",
            "extra",
            "missing",
            "header_only",
            "gzip",
            "gzip_cut",
        ]
    )
    if kind == "delete":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind == "swap" and i + 1 < len(lines):
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    elif kind == "truncate":
        return data[: rng.randrange(len(data))], kind
    elif kind in ("cell", "giant", "date"):
        i = rng.randrange(1, len(lines)) if len(lines) > 1 else 0
        spans = [m.span() for m in _TOKEN.finditer(lines[i])]
        years = [m.span() for m in _YEAR.finditer(lines[i])]
        if kind == "date" and years:  # the year of a date moved out of 1677..2262
            spans, new = years, rng.choice([b"1500-", b"2263-", b"0001-", b"9999-"])
        elif kind == "date":
            new = rng.choice(DATES)
        else:
            new = rng.choice(GIANT if kind == "giant" else CELLS)
        if spans:
            a, b = rng.choice(spans)
            lines[i] = lines[i][:a] + new + lines[i][b:]
            kind = f"{kind} line {i + 1} -> {new[:20]!r}"
    elif kind == "bytes":
        k = rng.randrange(len(data) + 1)
        return data[:k] + rng.choice([b"\xff", b"\xc3\x28", b"\x80\x80", b"\xed\xa0\x80"]) + data[
            k:
        ], kind
    elif kind == "bom":
        return b"\xef\xbb\xbf" + data, kind
    elif kind == "crlf":
        return data.replace(b"\n", b"\r\n"), kind
    elif kind == "extra":
        lines[i] += rng.choice([b",1", b"\t1", b":1", b",", b" X"])
    elif kind == "missing":
        cut = max(lines[i].rfind(b","), lines[i].rfind(b":"), lines[i].rfind(b"\t"))
        lines[i] = lines[i][: max(cut, 0)]
    elif kind == "header_only":
        return lines[0] + b"\n", kind
    elif kind == "gzip":
        return gzip.compress(data), kind
    elif kind == "gzip_cut":
        z = gzip.compress(data)
        return z[: rng.randrange(2, len(z))], kind
    return b"\n".join(lines), kind


def _attempt(read: Callable[[Path], object], path: Path) -> str | None:
    """None when the read succeeds or raises a SeqshapeError; else what went wrong."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            read(path)
        except SeqshapeError as e:
            if "\n" in str(e) or len(str(e)) > 1000:
                return f"a SeqshapeError over several lines or too long: {str(e)[:200]!r}"
        except Exception as e:  # noqa: BLE001 - counting exactly these is the point
            return f"{type(e).__name__}: {str(e)[:200]}"
    if caught:
        w = caught[0]
        return f"warning {w.category.__name__}: {str(w.message)[:200]}"
    return None


def fuzz(tmp: Path, rounds: int = ROUNDS, seed: int = 0) -> tuple[int, list[str]]:
    """Read ``rounds`` mutated copies of each base file; (reads done, the failures)."""
    failures: list[str] = []
    reads = 0
    for name, (suffix, base, read) in READERS.items():
        rng = random.Random(f"{seed}-{name}")
        data = base().encode("utf-8")
        assert _attempt(read, _write(tmp, name + suffix, data)) is None, name  # base reads
        cases = [(b"", "empty file"), (b"  \n\n", "blank lines")]
        for r in range(rounds):
            mutated, what = data, []
            for _ in range(rng.choice([1, 1, 2])):
                mutated, kind = _mutate(mutated, rng)
                what.append(kind)
            cases.append((mutated, f"round {r}: " + ", ".join(what)))
        for mutated, what in cases:
            reads += 1
            bad = _attempt(read, _write(tmp, name + suffix, mutated))
            if bad:
                failures.append(f"{name} [{what}]: {bad}")
        reads += 1
        bad = _attempt(read, tmp)  # a directory
        if bad:
            failures.append(f"{name} [a directory]: {bad}")
    return reads, failures


def _write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


def test_every_reader_raises_only_seqshape_errors(tmp_path: Path) -> None:
    reads, failures = fuzz(tmp_path)
    assert reads == len(READERS) * (ROUNDS + 3)
    assert failures == [], f"{len(failures)} of {reads} reads:\n" + "\n".join(failures[:30])


@pytest.mark.parametrize("name", ["ett_wide", "vowels_ts"])
def test_the_fuzz_can_fail(tmp_path: Path, name: str) -> None:
    # the harness itself: a reader that lets a foreign exception through is caught
    def leaky(p: Path) -> object:
        READERS[name][2](p)
        raise KeyError("leaked")

    data = READERS[name][1]().encode("utf-8")
    assert _attempt(leaky, _write(tmp_path, "x" + READERS[name][0], data)) == "KeyError: 'leaked'"
