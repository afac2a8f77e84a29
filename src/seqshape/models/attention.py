"""Attention over encoder outputs: additive (Bahdanau) and general/dot (Luong) scores.

Shapes (legend in seqshape.shapes): query (B, H_q) for one decoder step or (B, U, H_q) for U
teacher-forced steps at once; keys (B, S, H_k) the encoder outputs; mask (B, S) bool, True on
valid source steps. Returns context (B, [U,] H_k) and weights (B, [U,] S).

Scores (Bahdanau et al. 2015, Luong et al. 2015):
- ``additive``: ``v^T tanh(W_q q + W_k k)``, with an ``attn_size``-wide hidden layer;
- ``general``: ``q^T W k``;
- ``dot``: ``q^T k`` (needs H_q == H_k).

Padded source steps get exactly zero weight; a row whose source is entirely masked gets all-zero
weights and a zero context (instead of NaN). The batched (B, U, H_q) form gives the same numbers
as U single-step calls, so teacher-forced training and step-by-step inference agree.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, ShapeError
from ..shapes import check_shape

KINDS: tuple[str, ...] = ("additive", "general", "dot")


class Attention(nn.Module):
    """Scores a query against keys, softmax over valid source steps, weighted sum of keys."""

    def __init__(
        self, query_size: int, key_size: int, kind: str = "additive", attn_size: int | None = None
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"attention kind: expected one of {KINDS}, got {kind!r}")
        for name, value in (("query_size", query_size), ("key_size", key_size)):
            if int(value) < 1:
                raise ConfigError(f"attention {name}: expected an integer >= 1, got {value}")
        if kind == "dot" and query_size != key_size:
            raise ConfigError(
                f"attention kind 'dot': expected query_size == key_size, got {query_size} and "
                f"{key_size} — use kind 'general' or 'additive' for different sizes"
            )
        if kind != "additive" and attn_size is not None:
            raise ConfigError(
                f"attention attn_size: only used by kind 'additive', got {attn_size} with {kind!r}"
            )
        if attn_size is not None and int(attn_size) < 1:
            raise ConfigError(f"attention attn_size: expected an integer >= 1, got {attn_size}")
        self.kind = kind
        self.query_size = int(query_size)
        self.key_size = int(key_size)
        self.attn_size = int(attn_size or key_size) if kind == "additive" else None
        if kind == "additive":
            self.query_proj = nn.Linear(self.query_size, self.attn_size, bias=False)
            self.key_proj = nn.Linear(self.key_size, self.attn_size, bias=True)
            self.energy = nn.Linear(self.attn_size, 1, bias=False)
        elif kind == "general":
            self.key_proj = nn.Linear(self.key_size, self.query_size, bias=False)

    def extra_repr(self) -> str:
        attn = f", attn_size={self.attn_size}" if self.attn_size is not None else ""
        return f"query_size={self.query_size}, key_size={self.key_size}, kind={self.kind!r}{attn}"

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """The part of the score that depends on the keys only; compute once per source batch.

        Pass the result as ``projected`` to `forward` when decoding step by step, so the keys are
        not projected again at every step. (B, S, H_k) -> (B, S, A) for additive (A = attn_size),
        (B, S, H_q) for general, the keys themselves for dot.
        """
        if self.kind == "dot":
            return keys
        # (B, S, H_k) -> (B, S, A) additive / (B, S, H_q) general
        return self.key_proj(keys)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        projected: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (context (B, [U,] H_k), weights (B, [U,] S)); see the module docstring."""
        sizes = check_shape(keys, "B S H", name="keys", known={"H": self.key_size})
        single = query.dim() == 2
        spec = "B H" if single else "B U H"
        if query.dim() not in (2, 3):
            raise ShapeError(
                f"query: expected (B, H={self.query_size}) or (B, U, H={self.query_size}), "
                f"got {tuple(query.shape)}"
            )
        check_shape(query, spec, name="query", known={"B": sizes["B"], "H": self.query_size})
        if mask is not None:
            check_shape(mask, "B S", name="mask", known={"B": sizes["B"], "S": sizes["S"]})
            if mask.dtype != torch.bool:
                raise ShapeError(
                    f"mask: expected dtype torch.bool (True = valid), got {mask.dtype}"
                )
        if projected is None:
            projected = self.project_keys(keys)
        # (B, H_q) -> (B, 1, H_q): one step is the U = 1 case of the batched form
        q = query.unsqueeze(1) if single else query
        if self.kind == "additive":
            # (B, U, H_q) -> (B, U, 1, A) + (B, 1, S, A) -> (B, U, S, A) -> (B, U, S)
            hidden = torch.tanh(self.query_proj(q).unsqueeze(2) + projected.unsqueeze(1))
            scores = self.energy(hidden).squeeze(-1)
        else:
            # (B, U, H_q) @ (B, H_q, S) -> (B, U, S)
            scores = torch.bmm(q, projected.transpose(1, 2))
        if mask is not None:
            # (B, S) -> (B, 1, S): the same source mask for every target step
            valid = mask.unsqueeze(1)
            # (B, 1, 1): rows with no valid step at all get finite scores, then zero weights
            any_valid = valid.any(dim=-1, keepdim=True)
            scores = scores.masked_fill(~valid, float("-inf")).masked_fill(~any_valid, 0.0)
        # (B, U, S): softmax over the source steps; masked steps are exactly 0
        weights = torch.softmax(scores, dim=-1)
        if mask is not None:
            weights = weights.masked_fill(~valid, 0.0)
        # (B, U, S) @ (B, S, H_k) -> (B, U, H_k)
        context = torch.bmm(weights, keys)
        if single:
            # (B, 1, H_k) -> (B, H_k), (B, 1, S) -> (B, S)
            return context.squeeze(1), weights.squeeze(1)
        return context, weights
