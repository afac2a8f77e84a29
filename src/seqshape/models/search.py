"""Greedy and beam-search decoding, independent of any model, over a step function.

The step-function protocol::

    StepFn = Callable[[Tensor, State], tuple[Tensor, State]]
    # (prev_tokens (B,) long, state) -> (log_probs (B, V), new_state)

``State`` is any pytree -- nested tuples (named tuples included), lists and dicts -- whose tensor
leaves all have the batch on dim 0; non-tensor leaves (None, ints, strings) pass through unchanged.
Beam search grows the batch to B * beam_size rows by `torch.repeat_interleave` along dim 0 and
reorders it with `index_select` along dim 0, so every tensor leaf must be batch-first: keep an
LSTM's (h, c) as (B, L, H) in the state and transpose to (L, B, H) inside the step function, and
give encoder outputs (B, S, H) and source masks (B, S) as state leaves too (they get expanded and
reordered like the rest). A leaf whose dim 0 is not the current batch is a ShapeError.

Outputs, for both searches: ``tokens`` (B, U) long without the BOS, each row ending with its EOS
(when one was produced before ``max_len``) and then ``pad_id``; ``lengths`` (B,) the number of
generated tokens *including* the EOS; ``scores`` (B,) the summed log-probabilities of those
tokens, i.e. log P(tokens | input) -- not length-normalised, so that beam_size=1 returns exactly
the greedy result, numbers included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

from ..errors import ConfigError, ShapeError

State = Any
StepFn = Callable[[Tensor, State], tuple[Tensor, State]]


def map_state(fn: Callable[[Tensor], Tensor], state: State) -> State:
    """Apply ``fn`` to every tensor leaf of a pytree of tuples/lists/dicts; keep other leaves."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # a named tuple
        return type(state)(*(map_state(fn, s) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(fn, s) for s in state)
    if isinstance(state, dict):
        return {k: map_state(fn, v) for k, v in state.items()}
    return state


def _check_state(state: State, rows: int, where: str = "state") -> None:
    """Every tensor leaf must have ``rows`` on dim 0 (names the leaf's path when not)."""
    if isinstance(state, Tensor):
        if state.dim() == 0 or state.shape[0] != rows:
            raise ShapeError(
                f"{where}: expected the batch ({rows}) on dim 0, got shape {tuple(state.shape)} "
                "— state leaves must be batch-first, e.g. an LSTM's h as (B, L, H)"
            )
    elif isinstance(state, (tuple, list)):
        for i, s in enumerate(state):
            _check_state(s, rows, f"{where}[{i}]")
    elif isinstance(state, dict):
        for k, v in state.items():
            _check_state(v, rows, f"{where}[{k!r}]")


def _first_device(state: State) -> torch.device:
    found: list[torch.device] = []

    def note(t: Tensor) -> Tensor:
        found.append(t.device)
        return t

    map_state(note, state)
    return found[0] if found else torch.device("cpu")


def _check_args(batch_size: int, max_len: int, ids: dict[str, int]) -> None:
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size: expected an integer >= 1, got {batch_size}")
    if int(max_len) < 1:
        raise ConfigError(f"max_len: expected an integer >= 1, got {max_len}")
    for name, value in ids.items():
        if int(value) < 0:
            raise ConfigError(f"{name}: expected a token id >= 0, got {value}")


def _step(step_fn: StepFn, prev: Tensor, state: State, rows: int) -> tuple[Tensor, State]:
    log_probs, state = step_fn(prev, state)
    if log_probs.dim() != 2 or log_probs.shape[0] != rows:
        raise ShapeError(f"step_fn log_probs: expected (B={rows}, V), got {tuple(log_probs.shape)}")
    _check_state(state, rows, "step_fn new state")
    return log_probs, state


def _check_vocab(log_probs: Tensor, ids: dict[str, int]) -> None:
    vocab = log_probs.shape[1]
    for name, value in ids.items():
        if value >= vocab:
            raise ConfigError(f"{name}: expected an id < V={vocab}, got {value}")


@torch.no_grad()
def greedy_decode(
    step_fn: StepFn,
    state: State,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    *,
    pad_id: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Pick the most likely token at every step; stop a row at its EOS, all rows at ``max_len``.

    Returns (tokens (B, U) long, lengths (B,) long, scores (B,)); see the module docstring.
    Finished rows keep being fed to ``step_fn`` (the batch never shrinks) and their outputs
    are ignored.
    """
    ids = {"bos_id": bos_id, "eos_id": eos_id, "pad_id": pad_id}
    _check_args(batch_size, max_len, ids)
    _check_state(state, batch_size)
    device = _first_device(state)
    # (B,): every row starts from BOS
    prev = torch.full((batch_size,), bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    lengths = torch.zeros(batch_size, dtype=torch.long, device=device)
    scores = torch.zeros(batch_size, device=device)
    steps: list[Tensor] = []
    for t in range(max_len):
        log_probs, state = _step(step_fn, prev, state, batch_size)
        if t == 0:
            _check_vocab(log_probs, ids)
            scores = scores.to(log_probs.dtype)
        # (B, V) -> (B,): the best token and its log-prob (topk, as beam search does, so that
        # ties break the same way in both searches)
        best_lp, best = log_probs.topk(1, dim=-1)
        best, best_lp = best.squeeze(-1), best_lp.squeeze(-1)
        token = torch.where(finished, torch.full_like(best, pad_id), best)
        scores = scores + torch.where(finished, torch.zeros_like(best_lp), best_lp)
        lengths = lengths + (~finished).long()
        finished = finished | (token == eos_id)
        steps.append(token)
        prev = token
        if bool(finished.all()):
            break
    # U x (B,) -> (B, U)
    tokens = torch.stack(steps, dim=1)
    return tokens[:, : int(lengths.max())], lengths, scores


def _length_norm(lengths: Tensor, alpha: float, kind: str) -> Tensor:
    lengths = lengths.to(torch.float64)
    if kind == "gnmt":
        # Wu et al. 2016 (GNMT): lp(Y) = ((5 + |Y|) / 6) ** alpha
        return ((5.0 + lengths) / 6.0) ** alpha
    return lengths**alpha


@torch.no_grad()
def beam_search(
    step_fn: StepFn,
    state: State,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    beam_size: int = 5,
    length_penalty: float = 1.0,
    *,
    length_norm: Literal["power", "gnmt"] = "power",
    pad_id: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Batched beam search; returns the best hypothesis per input (tokens, lengths, scores).

    All B inputs are searched at once on B * beam_size rows. At each step the beam_size best
    continuations of each input are chosen among its beams' beam_size * V candidates by summed
    log-prob. A hypothesis that emits EOS is finished: it stops growing but keeps its place in the
    beam (its only continuation is ``pad_id`` at no cost) and competes on its score, so it is
    dropped only when beam_size better hypotheses exist. The search ends when every kept
    hypothesis is finished or after ``max_len`` steps.

    The winner among each input's final beam maximises ``score / norm(length)``, where
    ``norm(n) = n ** length_penalty`` (``length_norm="power"``; 0 means no normalisation, 1 the
    mean log-prob per token) or the GNMT penalty ``((5 + n) / 6) ** length_penalty`` (Wu et al.
    2016, ``length_norm="gnmt"``). The returned score is the winner's summed log-prob, not
    normalised. With beam_size=1 the result is exactly `greedy_decode`'s.
    """
    ids = {"bos_id": bos_id, "eos_id": eos_id, "pad_id": pad_id}
    _check_args(batch_size, max_len, ids)
    if int(beam_size) < 1:
        raise ConfigError(f"beam_size: expected an integer >= 1, got {beam_size}")
    if length_norm not in ("power", "gnmt"):
        raise ConfigError(f"length_norm: expected 'power' or 'gnmt', got {length_norm!r}")
    if float(length_penalty) < 0:
        raise ConfigError(f"length_penalty: expected a number >= 0, got {length_penalty}")
    _check_state(state, batch_size)
    B, k = int(batch_size), int(beam_size)
    device = _first_device(state)
    # every leaf (B, ...) -> (B * k, ...): row b * k + j is beam j of input b
    state = map_state(lambda x: x.repeat_interleave(k, dim=0), state)
    # (B * k,): every beam starts from BOS
    prev = torch.full((B * k,), bos_id, dtype=torch.long, device=device)
    # (B, k): only beam 0 is live at first, so the k identical start beams do not fill the beam
    scores = torch.full((B, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    finished = torch.zeros(B, k, dtype=torch.bool, device=device)
    lengths = torch.zeros(B, k, dtype=torch.long, device=device)
    # (B, k, t): the tokens of each hypothesis so far
    history = torch.zeros(B, k, 0, dtype=torch.long, device=device)
    # (B, 1): offset of each input's first row in the (B * k) layout
    offsets = torch.arange(B, device=device).unsqueeze(1) * k
    frozen = None
    for t in range(max_len):
        log_probs, state = _step(step_fn, prev, state, B * k)
        V = log_probs.shape[1]
        if t == 0:
            _check_vocab(log_probs, ids)
            scores = scores.to(log_probs.dtype)
            # (V,): the one continuation of a finished hypothesis: pad_id at no cost
            frozen = torch.full((V,), float("-inf"), dtype=log_probs.dtype, device=device)
            frozen[pad_id] = 0.0
        # (B * k, V) -> (B, k, V)
        log_probs = log_probs.view(B, k, V)
        log_probs = torch.where(finished.unsqueeze(-1), frozen, log_probs)
        # (B, k, 1) + (B, k, V) -> (B, k * V): every continuation of every beam of an input
        candidates = (scores.unsqueeze(-1) + log_probs).view(B, k * V)
        # (B, k * V) -> (B, k): the k best, sorted best first
        scores, flat = candidates.topk(k, dim=-1)
        beam = torch.div(flat, V, rounding_mode="floor")
        token = flat - beam * V
        was_finished = finished.gather(1, beam)
        lengths = lengths.gather(1, beam) + (~was_finished).long()
        # a hypothesis scored -inf is dead (only reachable when k exceeds the live continuations)
        finished = was_finished | (token == eos_id) | torch.isneginf(scores)
        # (B, k, t) reordered by the backpointers, then (B, k, t + 1) with the new tokens
        history = history.gather(1, beam.unsqueeze(-1).expand(-1, -1, history.shape[-1]))
        history = torch.cat([history, token.unsqueeze(-1)], dim=-1)
        # (B, k) -> (B * k,): the row each new beam continues from
        rows = (offsets + beam).view(-1)
        state = map_state(lambda x, rows=rows: x.index_select(0, rows), state)
        prev = token.view(-1)
        if bool(finished.all()):
            break
    # (B, k): the length-normalised score picks the winner of each input's beam
    norm = scores.to(torch.float64) / _length_norm(
        lengths.clamp(min=1), length_penalty, length_norm
    )
    norm = torch.where(torch.isneginf(scores), torch.full_like(norm, float("-inf")), norm)
    best = norm.argmax(dim=-1, keepdim=True)
    # (B, k, U) -> (B, U) and (B, k) -> (B,): the winners
    best_tokens = history.gather(1, best.unsqueeze(-1).expand(-1, -1, history.shape[-1])).squeeze(1)
    best_lengths = lengths.gather(1, best).squeeze(1)
    best_scores = scores.gather(1, best).squeeze(1)
    # the winners' tokens after their length are padding (a finished beam only appends pad_id)
    return best_tokens[:, : int(best_lengths.max())], best_lengths, best_scores
