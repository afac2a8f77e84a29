"""Text metrics on hand-computed cases and on the real Tatoeba file."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqshape.data.pairs import read_tsv_pairs
from seqshape.errors import DataError
from seqshape.train.text_metrics import (
    bleu,
    edit_distance,
    exact_match,
    token_error_rate,
    wer_sentence_level,
)

TATOEBA = Path("/work/shared/data/seq2seq/tatoeba/eng-fra.txt")


def test_edit_distance_hand_computed() -> None:
    assert edit_distance(list("kitten"), list("sitting")) == 3
    assert edit_distance(list("sitting"), list("kitten")) == 3
    assert edit_distance([], ["a", "b"]) == 2
    assert edit_distance(["a", "b"], []) == 2
    assert edit_distance(["a", "b", "c"], ["a", "b", "c"]) == 0
    assert edit_distance(["a", "b", "c"], ["a", "c"]) == 1
    assert edit_distance(["HH", "AH0", "L", "OW1"], ["HH", "EH0", "L", "OW1", "Z"]) == 2
    assert edit_distance(["ab", "cd"], ["abcd"]) == 2  # tokens, not characters


def test_token_error_rate_exact_match_and_wer() -> None:
    refs = [["a", "b", "c", "d"], ["x", "y"], ["p"]]
    hyps = [["a", "c", "d"], ["x", "y", "z"], ["p"]]
    # (1 + 1 + 0) / (4 + 2 + 1)
    assert token_error_rate(refs, hyps) == pytest.approx(2 / 7)
    assert exact_match(refs, hyps) == pytest.approx(1 / 3)
    assert wer_sentence_level(refs, hyps) == pytest.approx(2 / 3)
    assert token_error_rate(refs, refs) == 0.0 and exact_match(refs, refs) == 1.0


def test_alternative_references_count_the_closest() -> None:
    # "either": two CMUdict pronunciations; a prediction matching either one is right
    refs = [[["IY1", "DH", "ER0"], ["AY1", "DH", "ER0"]], ["K", "AE1", "T"]]
    hyps = [["AY1", "DH", "ER0"], ["K", "AH0", "T"]]
    assert exact_match(refs, hyps) == 0.5
    assert wer_sentence_level(refs, hyps) == 0.5
    assert token_error_rate(refs, hyps) == pytest.approx(1 / 6)
    # equally close alternatives (one edit each): the longer one counts, 1 / 4 rather than 1 / 2
    assert token_error_rate([[["A", "B"], ["A", "B", "C", "D"]]], [["A", "B", "C"]]) == 0.25


def test_bleu_hand_computed() -> None:
    ref = "the cat sat on a mat".split()
    hyp = "the cat sat on the mat".split()
    # precisions 5/6, 3/5, 2/4, 1/3; equal lengths so no brevity penalty
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert bleu([ref], [hyp]) == pytest.approx(expected, abs=1e-6)
    assert bleu([ref], [ref]) == pytest.approx(100.0)
    # character tokens (spaces are tokens) are joined with ""
    assert bleu([list("the cat sat on a mat")], [list("the cat sat on the mat")], joiner="") == (
        pytest.approx(expected, abs=1e-6)
    )
    # sacrebleu's 13a tokenisation splits punctuation: "tired." and "tired ." score the same
    assert bleu([["I", "am", "so", "tired."]], [["I", "am", "so", "tired", "."]]) == (
        pytest.approx(100.0)
    )


def test_bleu_multiple_references_on_tatoeba() -> None:
    pairs = read_tsv_pairs(TATOEBA)
    translations: dict[tuple[str, ...], list[list[str]]] = {}
    for src, tgt in zip(pairs.sources, pairs.targets, strict=True):
        translations.setdefault(tuple(src), []).append(tgt)
    refs = list(translations.values())
    last = [alts[-1] for alts in refs]
    first_only = [alts[0] for alts in refs]
    # the last translation of each sentence is among its references: a perfect score
    assert bleu(refs, last) == pytest.approx(100.0)
    assert exact_match(refs, last) == 1.0
    # against the first translation alone it is not
    assert bleu(first_only, last) < 90.0
    assert exact_match(first_only, last) < 0.7


def test_errors() -> None:
    with pytest.raises(DataError, match="got 2 references and 1 hypotheses"):
        token_error_rate([["a"], ["b"]], [["a"]])
    with pytest.raises(DataError, match="expected at least one reference"):
        exact_match([], [])
    with pytest.raises(DataError, match="expected at least one non-empty reference"):
        token_error_rate([[]], [["a"]])
    with pytest.raises(DataError, match="expected a list of tokens, got the string"):
        token_error_rate(["abc"], [["a"]])
