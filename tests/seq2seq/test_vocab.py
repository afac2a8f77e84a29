"""Vocab: fixed specials, deterministic ids, encode/decode, JSON round trip, padding."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from seqshape.data.pairs import read_tsv_pairs
from seqshape.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocab, pad_batch
from seqshape.errors import ArtifactError, ConfigError, DataError

TATOEBA = Path("/work/shared/data/seq2seq/tatoeba/eng-fra.txt")


def test_specials_are_fixed() -> None:
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    v = Vocab([])
    assert len(v) == 4
    assert v.tokens == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert Vocab.PAD_ID == 0 and Vocab.EOS_ID == 2


def test_build_orders_by_frequency_then_token() -> None:
    data = [["b", "a", "c"], ["a", "c"], ["d", "a"], ["c"]]
    v = Vocab.build(data)
    # a: 3, c: 3 (tie broken alphabetically), then b: 1, d: 1
    assert v.tokens[4:] == ["a", "c", "b", "d"]
    assert Vocab.build(list(reversed(data))) == v
    assert Vocab.build(data, min_freq=2).tokens[4:] == ["a", "c"]
    assert Vocab.build(data, max_size=3).tokens[4:] == ["a", "c", "b"]
    with pytest.raises(ConfigError, match="min_freq: expected an integer >= 1, got 0"):
        Vocab.build(data, min_freq=0)


def test_build_rejects_specials_in_data_and_strings() -> None:
    with pytest.raises(DataError, match="'<eos>', which is spelled like a special token"):
        Vocab.build([["a", "<eos>"]])
    with pytest.raises(DataError, match=r"token_lists\[1\]: expected a list of tokens"):
        Vocab.build([["a"], "abc"])


def test_encode_decode_round_trip_on_tatoeba() -> None:
    pairs = read_tsv_pairs(TATOEBA, tokenize="words")
    v = Vocab.build(pairs.targets)
    assert v.tokens[4] == "."  # the most frequent French token
    for tokens in pairs.targets[:200]:
        ids = v.encode(tokens, add_bos=True, add_eos=True)
        assert ids[0] == BOS_ID and ids[-1] == EOS_ID
        assert v.decode(ids) == tokens
    # the ids do not depend on the order of the data
    shuffled = list(pairs.targets)
    random.Random(0).shuffle(shuffled)
    assert Vocab.build(shuffled) == v


def test_unknown_tokens_and_decode_options() -> None:
    v = Vocab(["x", "y"])
    assert v.encode(["x", "zzz", "y"]) == [4, UNK_ID, 5]
    assert v.token_to_id("zzz") == UNK_ID and "x" in v and "zzz" not in v
    ids = [BOS_ID, 4, UNK_ID, 5, EOS_ID, 4, PAD_ID]
    assert v.decode(ids) == ["x", "<unk>", "y"]
    assert v.decode(torch.tensor(ids)) == ["x", "<unk>", "y"]
    assert v.decode(ids, stop_at_eos=False) == ["x", "<unk>", "y", "x"]
    assert v.decode(ids, strip_specials=False) == ["<bos>", "x", "<unk>", "y"]
    assert v.decode(ids, strip_specials=False, stop_at_eos=False) == [
        "<bos>",
        "x",
        "<unk>",
        "y",
        "<eos>",
        "x",
        "<pad>",
    ]
    with pytest.raises(DataError, match=r"ids\[1\]: expected an id in \[0, 6\), got 6"):
        v.decode([4, 6])
    with pytest.raises(DataError, match="expected a list of tokens, got the string"):
        v.encode("xy")


def test_to_dict_is_json_safe_and_round_trips() -> None:
    v = Vocab.build([["é", "a", "b"], ["a"]])
    restored = Vocab.from_dict(json.loads(json.dumps(v.to_dict())))
    assert restored == v and restored.tokens == v.tokens
    assert restored.encode(["a", "é"]) == v.encode(["a", "é"])


def test_from_dict_rejects_damaged_descriptions() -> None:
    good = Vocab(["a"]).to_dict()
    with pytest.raises(ArtifactError, match="vocab.version: expected 1, got 7"):
        Vocab.from_dict({**good, "version": 7})
    with pytest.raises(ArtifactError, match="vocab.specials"):
        Vocab.from_dict({**good, "specials": ["<pad>"]})
    with pytest.raises(ArtifactError, match="'a' is a duplicate"):
        Vocab.from_dict({**good, "tokens": ["a", "a"]})
    with pytest.raises(ArtifactError, match="vocab.tokens: expected a list"):
        Vocab.from_dict({**good, "tokens": "ab"})


def test_pad_batch() -> None:
    v = Vocab(["a", "b"])
    ids, lengths = v.pad_batch([[4, 5, 4], [5], []])
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert ids.tolist() == [[4, 5, 4], [5, 0, 0], [0, 0, 0]]
    assert lengths.tolist() == [3, 1, 0]
    ids, _ = pad_batch([[7], [7, 8]], pad_id=9)
    assert ids.tolist() == [[7, 9], [7, 8]]
    with pytest.raises(DataError, match="expected at least one sequence"):
        pad_batch([])
