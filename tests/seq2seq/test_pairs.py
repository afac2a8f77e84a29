"""Readers for seq2seq pairs on the real CMUdict and Tatoeba files, their errors, and the split."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from seqshape.data.pairs import (
    PairSet,
    detokenize,
    read_cmudict,
    read_pairs,
    read_tsv_pairs,
    split_by_source,
    tokenize_text,
)
from seqshape.errors import ConfigError, DataError

DATA = Path("/work/shared/data/seq2seq")
CMUDICT = DATA / "cmudict" / "cmudict.dict"
TATOEBA = DATA / "tatoeba" / "eng-fra.txt"


@pytest.fixture(scope="module")
def cmu() -> PairSet:
    return read_cmudict(CMUDICT)


def _pronunciations(pairs: PairSet, word: str) -> list[list[str]]:
    return [t for s, t in zip(pairs.sources, pairs.targets, strict=True) if "".join(s) == word]


# --- CMUdict ------------------------------------------------------------------------------------


def test_cmudict_counts_and_first_entries(cmu: PairSet) -> None:
    # 135,166 lines; two lines repeat an earlier pronunciation of their word exactly
    # (mormonism, tribalism) and are kept once.
    assert len(cmu) == 135_164
    assert cmu.unique_sources() == 126_052
    assert cmu.sources[0] == ["'", "b", "o", "u", "t"]
    assert cmu.targets[0] == ["B", "AW1", "T"]
    assert cmu.source == str(CMUDICT)


def test_cmudict_alternates_belong_to_their_word_and_are_adjacent(cmu: PairSet) -> None:
    assert _pronunciations(cmu, "a") == [["AH0"], ["EY1"]]
    assert _pronunciations(cmu, "zyuganov's") == [
        ["Z", "Y", "UW1", "G", "AA0", "N", "AA0", "V", "Z"],
        ["Z", "UW1", "G", "AA0", "N", "AA0", "V", "Z"],
    ]
    # no source keeps the "(2)" marker, and all pronunciations of a word are one run of lines
    assert not any("(" in "".join(s) for s in cmu.sources)
    seen: set[tuple[str, ...]] = set()
    previous: tuple[str, ...] | None = None
    for src in cmu.sources:
        key = tuple(src)
        if key != previous:
            assert key not in seen, f"{''.join(key)} appears in two separate runs"
            seen.add(key)
        previous = key


def test_cmudict_comments_are_dropped_and_graphemes_lowercase(cmu: PairSet) -> None:
    # the file's line: "aalborg AO1 L B AO0 R G # place, danish"
    assert _pronunciations(cmu, "aalborg")[0] == ["AO1", "L", "B", "AO0", "R", "G"]
    assert all(re.fullmatch(r"[A-Z]+[012]?", ph) for t in cmu.targets for ph in t)
    assert all(ch == ch.lower() and len(ch) == 1 for s in cmu.sources[:5000] for ch in s)


def test_cmudict_strip_stress_and_first_alternate() -> None:
    plain = read_cmudict(CMUDICT, strip_stress=True)
    assert all(not ph[-1].isdigit() for t in plain.targets for ph in t)
    assert _pronunciations(plain, "aalborg")[0] == ["AO", "L", "B", "AO", "R", "G"]
    # pronunciations that differed only in stress collapse into one
    assert len(plain) < 135_164
    assert plain.unique_sources() == 126_052
    first = read_cmudict(CMUDICT, alternates="first")
    assert len(first) == first.unique_sources() == 126_052
    assert _pronunciations(first, "a") == [["AH0"]]


def test_cmudict_upper_case_words_are_lowercased(tmp_path: Path) -> None:
    f = tmp_path / "old.dict"
    f.write_text(";;; an old-style comment\nHELLO  HH AH0 L OW1\nHELLO(1)  HH EH0 L OW1\n")
    pairs = read_cmudict(f)
    assert pairs.sources == [list("hello"), list("hello")]
    assert pairs.targets[1] == ["HH", "EH0", "L", "OW1"]


def test_cmudict_errors_name_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.dict"
    f.write_text("hello HH AH0 L OW1\nworld # no phonemes here\n")
    with pytest.raises(DataError, match=r"bad\.dict line 2: expected 'word PH1 PH2 \.\.\.'"):
        read_cmudict(f)
    f.write_text("hello HH AH0 L OW1\n\nworld W er1 L D\n")
    with pytest.raises(DataError, match=r"bad\.dict line 3: expected phonemes like .*got 'er1'"):
        read_cmudict(f)
    f.write_text("# only a comment\n")
    with pytest.raises(DataError, match=r"bad\.dict: expected at least one"):
        read_cmudict(f)
    with pytest.raises(ConfigError, match="alternates"):
        read_cmudict(CMUDICT, alternates="second")  # type: ignore[arg-type]


# --- TSV / Tatoeba ------------------------------------------------------------------------------


def test_tatoeba_pairs_and_attribution_ignored() -> None:
    pairs = read_tsv_pairs(TATOEBA)
    assert len(pairs) == 5000
    assert pairs.sources[0] == ["Go."] and pairs.targets[0] == ["Va", "!"]
    assert pairs.sources[-1] == ["I'm", "so", "tired!"]
    assert pairs.targets[-1] == ["Je", "suis", "si", "fatigué", "!"]
    joined = [" ".join(t) for t in pairs.sources + pairs.targets]
    assert not any("tatoeba" in s or "CC-BY" in s or "Attribution" in s for s in joined)
    assert pairs.unique_sources() == 2597


def test_tatoeba_tokenisations() -> None:
    words = read_tsv_pairs(TATOEBA, tokenize="words", lowercase=True)
    assert words.sources[0] == ["go", "."] and words.targets[0] == ["va", "!"]
    assert words.sources[-1] == ["i'm", "so", "tired", "!"]
    chars = read_tsv_pairs(TATOEBA, char=True)
    assert chars.sources[0] == ["G", "o", "."]
    assert chars.targets[0] == ["V", "a", " ", "!"]
    assert "".join(chars.targets[-1]) == "Je suis si fatigué !"
    with pytest.raises(ConfigError, match="char=True means tokenize='char'"):
        read_tsv_pairs(TATOEBA, char=True, tokenize="words")


def test_tokenize_text_and_detokenize() -> None:
    assert tokenize_text("  Qu'est-ce que c'est ?  ", "words") == ["Qu'est-ce", "que", "c'est", "?"]
    assert tokenize_text("Stop! Now, please.", "words") == ["Stop", "!", "Now", ",", "please", "."]
    assert tokenize_text("a  b", "char") == ["a", " ", "b"]
    assert detokenize(["a", " ", "b"], "char") == "a b"
    assert detokenize(["Go", "."], "words") == "Go ."
    with pytest.raises(ConfigError, match="tokenize: expected one of"):
        tokenize_text("x", "bpe")


def test_tsv_errors_name_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "pairs.tsv"
    f.write_text("a b\tx y\n\nc d\tz\nno tab here\n")
    with pytest.raises(
        DataError, match=r"pairs\.tsv line 4: expected 'source<TAB>target', got no tab"
    ):
        read_tsv_pairs(f)
    f.write_text("a\tx\n \ty\n")
    with pytest.raises(DataError, match=r"pairs\.tsv line 2: expected a non-empty source"):
        read_tsv_pairs(f)
    f.write_text("a\tx\r\nb\t  \tattribution\r\n")
    with pytest.raises(DataError, match=r"pairs\.tsv line 2: expected a non-empty target"):
        read_tsv_pairs(f)
    f.write_bytes(b"a\tx\nb\t\xff\n")
    with pytest.raises(DataError, match=r"pairs\.tsv line 2: expected UTF-8 text, got byte 0xff"):
        read_tsv_pairs(f)
    f.write_text("\n\n")
    with pytest.raises(DataError, match=r"pairs\.tsv: expected at least one"):
        read_tsv_pairs(f)
    with pytest.raises(DataError, match=r"missing\.tsv: no such file"):
        read_tsv_pairs(tmp_path / "missing.tsv")


def test_tsv_crlf_blank_lines_and_extra_columns(tmp_path: Path) -> None:
    f = tmp_path / "pairs.tsv"
    f.write_bytes(b"\xef\xbb\xbfa b\tx\tignored\tcolumns\r\n\r\nc\ty z\r\n")
    pairs = read_tsv_pairs(f)
    assert pairs.sources == [["a", "b"], ["c"]]
    assert pairs.targets == [["x"], ["y", "z"]]


def test_read_pairs_dispatches_and_rejects_foreign_options(tmp_path: Path) -> None:
    assert len(read_pairs(TATOEBA, "tsv")) == 5000
    f = tmp_path / "small.dict"
    f.write_text("cat K AE1 T\n")
    assert read_pairs(f).targets == [["K", "AE1", "T"]]  # auto: .dict -> cmudict
    assert read_pairs(f, "cmudict", strip_stress=True).targets == [["K", "AE", "T"]]
    with pytest.raises(ConfigError, match="apply to format 'cmudict' only"):
        read_pairs(TATOEBA, "tsv", strip_stress=True)
    with pytest.raises(ConfigError, match="apply to format 'tsv' only"):
        read_pairs(f, "cmudict", tokenize="char")
    with pytest.raises(ConfigError, match="format: expected one of"):
        read_pairs(f, "json")  # type: ignore[arg-type]


# --- split by unique source ---------------------------------------------------------------------


def test_split_cmudict_has_no_word_in_two_splits(cmu: PairSet) -> None:
    train, valid, test = split_by_source(cmu, (0.8, 0.1, 0.1), seed=0)
    words = [{tuple(s) for s in part.sources} for part in (train, valid, test)]
    assert not (words[0] & words[1]) and not (words[0] & words[2]) and not (words[1] & words[2])
    assert len(train) + len(valid) + len(test) == len(cmu)
    # fractions are of unique words: 126,052 -> 100,842 / 12,605 / 12,605
    assert [len(w) for w in words] == [100_842, 12_605, 12_605]
    # every pronunciation of a word travels with it
    assert sorted(
        _pronunciations(test, "a") + _pronunciations(train, "a") + _pronunciations(valid, "a")
    ) == [["AH0"], ["EY1"]]
    assert "part 3 of 3" in test.source


def test_split_is_deterministic_and_independent_of_order() -> None:
    pairs = read_tsv_pairs(TATOEBA)
    first = split_by_source(pairs, seed=3)
    again = split_by_source(pairs, seed=3)
    assert [p.sources for p in first] == [p.sources for p in again]
    assert [p.targets for p in first] == [p.targets for p in again]
    order = list(range(len(pairs)))
    random.Random(1).shuffle(order)
    shuffled = split_by_source(pairs.subset(order), seed=3)
    for a, b in zip(first, shuffled, strict=True):
        assert {tuple(s) for s in a.sources} == {tuple(s) for s in b.sources}
        assert len(a) == len(b)
    other = split_by_source(pairs, seed=4)
    assert {tuple(s) for s in other[2].sources} != {tuple(s) for s in first[2].sources}
    # each split keeps the file order of its pairs
    train = first[0]
    positions = [pairs.sources.index(s) for s in train.sources[:50]]
    assert positions == sorted(positions)


def test_split_counts_and_errors() -> None:
    tiny = PairSet(
        sources=[["a"], ["b"], ["c"], ["a"]], targets=[["1"], ["2"], ["3"], ["4"]], source="tiny"
    )
    parts = split_by_source(tiny, (0.9, 0.05, 0.05))
    # three unique sources, three non-empty parts: one source each, even at 5%
    assert sorted(p.unique_sources() for p in parts) == [1, 1, 1]
    assert sum(len(p) for p in parts) == 4
    two = split_by_source(tiny, (0.5, 0.5))
    assert sum(p.unique_sources() for p in two) == 3
    assert min(p.unique_sources() for p in two) >= 1
    with pytest.raises(ConfigError, match="fractions: expected non-negative numbers that sum to 1"):
        split_by_source(tiny, (0.8, 0.1))
    with pytest.raises(DataError, match="tiny: expected at least 4 unique sources"):
        split_by_source(tiny, (0.25, 0.25, 0.25, 0.25))
    with pytest.raises(DataError, match="expected as many targets as sources"):
        PairSet(sources=[["a"]], targets=[], source="broken")
