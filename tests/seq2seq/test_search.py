"""Greedy and beam search over step functions: a real LSTMCell decoder, an adversarial table, and
exhaustive enumeration as the ground truth."""

from __future__ import annotations

import itertools
import math
from collections import namedtuple

import pytest
import torch
from torch import nn

from seqshape.errors import ConfigError, ShapeError
from seqshape.models.search import beam_search, greedy_decode, map_state

PAD, BOS, EOS = 0, 1, 2


# --- a real step function: Embedding -> LSTMCell -> Linear -> log_softmax ----------------------


class TinyDecoder(nn.Module):
    def __init__(self, vocab: int = 9, emb: int = 8, hidden: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(vocab, emb)
        self.cell = nn.LSTMCell(emb, hidden)
        self.out = nn.Linear(hidden, vocab)
        with torch.no_grad():
            self.out.weight.mul_(2.0)  # peakier distributions: rows end at different steps
            self.out.bias[PAD] = -1e4
            self.out.bias[BOS] = -1e4

    def step(self, prev: torch.Tensor, state):
        h, c = self.cell(self.emb(prev), (state["h"], state["c"]))
        # (B, H) -> (B, V)
        log_probs = torch.log_softmax(self.out(h), dim=-1)
        return log_probs, {"h": h, "c": c, "memory": state["memory"]}


def _lstm_state(B: int = 12, hidden: int = 16):
    g = torch.Generator().manual_seed(3)
    return {
        "h": torch.randn(B, hidden, generator=g) * 2,
        "c": torch.randn(B, hidden, generator=g),
        "memory": torch.randn(B, 5, 3, generator=g),  # e.g. encoder outputs riding along
    }


def test_beam_size_one_is_exactly_greedy_on_an_lstm_decoder() -> None:
    dec = TinyDecoder()
    state = _lstm_state()
    g_tok, g_len, g_score = greedy_decode(dec.step, state, 12, BOS, EOS, max_len=6)
    b_tok, b_len, b_score = beam_search(
        dec.step, state, 12, BOS, EOS, max_len=6, beam_size=1, length_penalty=1.0
    )
    # the case is not trivial: rows stop at different steps, some never emit EOS
    assert len(set(g_len.tolist())) >= 3
    assert (g_len == 6).any() and (g_len < 6).any()
    assert torch.equal(g_tok, b_tok)
    assert torch.equal(g_len, b_len)
    assert torch.equal(g_score, b_score)


def test_greedy_matches_a_hand_loop_per_row() -> None:
    dec = TinyDecoder()
    state = _lstm_state()
    tokens, lengths, scores = greedy_decode(dec.step, state, 12, BOS, EOS, max_len=12)
    assert tokens.dtype == torch.long and tokens.shape == (12, int(lengths.max()))
    for b in range(12):
        row = {k: v[b : b + 1] for k, v in state.items()}
        prev, out, total = torch.tensor([BOS]), [], 0.0
        with torch.no_grad():
            for _ in range(12):
                log_probs, row = dec.step(prev, row)
                prev = log_probs.argmax(-1)
                out.append(int(prev))
                total += float(log_probs[0, prev])
                if out[-1] == EOS:
                    break
        n = len(out)
        assert int(lengths[b]) == n
        assert tokens[b, :n].tolist() == out
        assert torch.all(tokens[b, n:] == PAD)
        assert abs(float(scores[b]) - total) < 1e-4


def test_beam_search_on_the_lstm_returns_consistent_scores() -> None:
    dec = TinyDecoder()
    state = _lstm_state()
    tokens, lengths, scores = beam_search(dec.step, state, 12, BOS, EOS, max_len=12, beam_size=4)
    # re-score each returned hypothesis by teacher forcing it through the same step function
    for b in range(12):
        row = {k: v[b : b + 1] for k, v in state.items()}
        prev, total = torch.tensor([BOS]), 0.0
        with torch.no_grad():
            for t in range(int(lengths[b])):
                log_probs, row = dec.step(prev, row)
                prev = tokens[b, t : t + 1]
                total += float(log_probs[0, prev])
        assert abs(float(scores[b]) - total) < 1e-4
        n = int(lengths[b])
        assert n == 12 or int(tokens[b, n - 1]) == EOS
        assert EOS not in tokens[b, : n - 1].tolist()
        assert torch.all(tokens[b, n:] == PAD)


# --- a table-driven step function whose distribution depends on the whole prefix ------------------

A, Bt = 3, 4
V = 5


def _table_step(table: torch.Tensor):
    """log-probs from a random table indexed by a hash of the whole prefix, carried in the state."""

    def step(prev: torch.Tensor, state):
        code = state.code * 7 + prev
        # (B,) -> (B, V)
        log_probs = table[code % table.shape[0]].clone()
        return log_probs, State(code=code, extra=state.extra)

    return step


State = namedtuple("State", ["code", "extra"])


def _table(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(997, V, generator=g, dtype=torch.float64) * 1.5
    logits[:, PAD] = float("-inf")
    logits[:, BOS] = float("-inf")
    return torch.log_softmax(logits, dim=-1)


def _exhaustive_best(table, start_code: int, max_len: int, alpha: float, kind: str):
    """Score every possible output (EOS-terminated, or cut at max_len) and return the best."""
    best = None
    for n in range(1, max_len + 1):
        for seq in itertools.product([EOS, A, Bt], repeat=n):
            if EOS in seq[:-1] or (seq[-1] != EOS and n < max_len):
                continue
            code, prev, total = start_code, BOS, 0.0
            for tok in seq:
                code = code * 7 + prev
                total += float(table[code % table.shape[0], tok])
                prev = tok
            norm = n**alpha if kind == "power" else ((5 + n) / 6) ** alpha
            if best is None or total / norm > best[0]:
                best = (total / norm, list(seq), total)
    return best


@pytest.mark.parametrize(("alpha", "kind"), [(0.0, "power"), (1.0, "power"), (0.6, "gnmt")])
def test_wide_beam_finds_the_exhaustive_optimum(alpha: float, kind: str) -> None:
    table = _table(5)
    B, max_len = 4, 4
    start = torch.arange(B, dtype=torch.long) * 11 + 1
    state = State(code=start, extra=[None, {"ones": torch.ones(B, 2)}])
    tokens, lengths, scores = beam_search(
        _table_step(table),
        state,
        B,
        BOS,
        EOS,
        max_len,
        beam_size=32,
        length_penalty=alpha,
        length_norm=kind,
    )
    for b in range(B):
        _, seq, total = _exhaustive_best(table, int(start[b]), max_len, alpha, kind)
        assert tokens[b, : int(lengths[b])].tolist() == seq
        assert abs(float(scores[b]) - total) < 1e-9


def test_batched_beam_equals_one_input_at_a_time() -> None:
    table = _table(7)
    B = 5
    start = torch.arange(B, dtype=torch.long) * 13 + 2
    state = State(code=start, extra=[None, {"ones": torch.ones(B, 2)}])
    step = _table_step(table)
    tokens, lengths, scores = beam_search(step, state, B, BOS, EOS, 6, beam_size=3)
    for b in range(B):
        one = State(code=start[b : b + 1], extra=[None, {"ones": torch.ones(1, 2)}])
        t1, l1, s1 = beam_search(step, one, 1, BOS, EOS, 6, beam_size=3)
        n = int(l1[0])
        assert int(lengths[b]) == n
        assert tokens[b, :n].tolist() == t1[0, :n].tolist()
        assert float(scores[b]) == float(s1[0])


def test_beam_finds_a_better_sequence_than_greedy() -> None:
    # P(a)=0.6, P(b)=0.4 first; after a, nothing is likely (greedy wanders to max_len);
    # after b, EOS has probability 0.9. Best: "b EOS" with 0.36 vs greedy's "a a a a a".
    def step(prev: torch.Tensor, state):
        probs = torch.zeros(prev.shape[0], V)
        probs[prev == BOS] = torch.tensor([0.0, 0.0, 0.0, 0.6, 0.4])
        probs[prev == A] = torch.tensor([0.0, 0.0, 0.2, 0.45, 0.35])
        probs[prev == Bt] = torch.tensor([0.0, 0.0, 0.9, 0.05, 0.05])
        probs[prev == PAD] = 1.0 / V  # rows of finished hypotheses: ignored by the search
        return probs.log(), state

    state = (torch.zeros(2, 1),)
    g_tok, g_len, g_score = greedy_decode(step, state, 2, BOS, EOS, max_len=5)
    assert g_tok[0].tolist() == [A, A, A, A, A] and int(g_len[0]) == 5
    assert abs(float(g_score[0]) - math.log(0.6 * 0.45**4)) < 1e-5
    for alpha in (0.0, 1.0):
        b_tok, b_len, b_score = beam_search(
            step, state, 2, BOS, EOS, max_len=5, beam_size=2, length_penalty=alpha
        )
        assert b_tok.tolist() == [[Bt, EOS], [Bt, EOS]]
        assert b_len.tolist() == [2, 2]
        assert abs(float(b_score[0]) - math.log(0.36)) < 1e-5
        assert float(b_score[0]) > float(g_score[0])
    one = beam_search(step, state, 2, BOS, EOS, max_len=5, beam_size=1)
    assert torch.equal(one[0], g_tok) and torch.equal(one[2], g_score)


def test_map_state_keeps_structure() -> None:
    Pair = namedtuple("Pair", ["h", "c"])
    state = {"rnn": Pair(torch.ones(2, 3), torch.zeros(2, 3)), "mask": [torch.ones(2, 4), None]}
    doubled = map_state(lambda t: t.repeat_interleave(2, dim=0), state)
    assert isinstance(doubled["rnn"], Pair) and doubled["rnn"].h.shape == (4, 3)
    assert doubled["mask"][0].shape == (4, 4) and doubled["mask"][1] is None


def test_errors_name_what_was_expected() -> None:
    dec = TinyDecoder()
    state = _lstm_state(B=3)
    with pytest.raises(ShapeError, match=r"state\['h'\]: expected the batch \(3\) on dim 0"):
        greedy_decode(dec.step, {**state, "h": state["h"][None]}, 3, BOS, EOS, 5)
    with pytest.raises(
        ShapeError, match=r"step_fn log_probs: expected \(B=6, V\), got \(6, 1, 9\)"
    ):
        beam_search(
            lambda p, s: (dec.step(p, s)[0][:, None], s), state, 3, BOS, EOS, 5, beam_size=2
        )
    with pytest.raises(ConfigError, match="eos_id: expected an id < V=9, got 9"):
        greedy_decode(dec.step, state, 3, BOS, 9, 5)
    with pytest.raises(ConfigError, match="beam_size: expected an integer >= 1, got 0"):
        beam_search(dec.step, state, 3, BOS, EOS, 5, beam_size=0)
    with pytest.raises(ConfigError, match="max_len: expected an integer >= 1, got 0"):
        greedy_decode(dec.step, state, 3, BOS, EOS, 0)
    with pytest.raises(ConfigError, match="length_norm"):
        beam_search(dec.step, state, 3, BOS, EOS, 5, length_norm="wu")
