"""Attention: masking gives exactly zero weight, batched == step by step, padding never matters."""

from __future__ import annotations

import math

import pytest
import torch

from seqshape.errors import ConfigError, ShapeError
from seqshape.models.attention import Attention

KINDS = ["additive", "general", "dot"]


def _make(kind: str, hq: int = 6, hk: int = 6) -> Attention:
    torch.manual_seed(0)
    return Attention(hq, hk, kind, attn_size=5 if kind == "additive" else None)


def _inputs(hq: int = 6, hk: int = 6, B: int = 3, U: int = 4, S: int = 7):
    g = torch.Generator().manual_seed(1)
    query = torch.randn(B, U, hq, generator=g)
    keys = torch.randn(B, S, hk, generator=g)
    lengths = torch.tensor([7, 3, 5])[:B]
    # (B, S): True on each sequence's first lengths[b] steps
    mask = torch.arange(S)[None, :] < lengths[:, None]
    return query, keys, mask, lengths


@pytest.mark.parametrize("kind", KINDS)
def test_masked_steps_get_exactly_zero_weight(kind: str) -> None:
    attn = _make(kind)
    query, keys, mask, _ = _inputs()
    context, weights = attn(query, keys, mask)
    assert context.shape == (3, 4, 6) and weights.shape == (3, 4, 7)
    assert torch.all(weights[~mask.unsqueeze(1).expand_as(weights)] == 0.0)
    assert torch.all(weights[mask.unsqueeze(1).expand_as(weights)] > 0.0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))


@pytest.mark.parametrize("kind", KINDS)
def test_batched_equals_step_by_step(kind: str) -> None:
    attn = _make(kind)
    query, keys, mask, _ = _inputs()
    context, weights = attn(query, keys, mask)
    projected = attn.project_keys(keys)
    for u in range(query.shape[1]):
        c_u, w_u = attn(query[:, u], keys, mask)
        assert c_u.shape == (3, 6) and w_u.shape == (3, 7)
        assert (c_u - context[:, u]).abs().max() <= 1e-6
        assert (w_u - weights[:, u]).abs().max() <= 1e-6
        # the decoder's fast path: keys projected once, reused at every step
        c_p, w_p = attn(query[:, u], keys, mask, projected=projected)
        assert (c_p - c_u).abs().max() <= 1e-6 and (w_p - w_u).abs().max() <= 1e-6


@pytest.mark.parametrize("kind", KINDS)
def test_padding_never_changes_the_answer(kind: str) -> None:
    attn = _make(kind)
    query, keys, mask, lengths = _inputs()
    # fill the padded steps with large garbage: masking must make it irrelevant
    noisy = keys.masked_fill(~mask.unsqueeze(-1), 1e3)
    context, weights = attn(query, noisy, mask)
    for b in range(3):
        n = int(lengths[b])
        c_alone, w_alone = attn(query[b : b + 1], keys[b : b + 1, :n])
        assert (c_alone[0] - context[b]).abs().max() <= 1e-5
        assert (w_alone[0] - weights[b, :, :n]).abs().max() <= 1e-6


def test_dot_attention_hand_computed() -> None:
    attn = Attention(2, 2, "dot")
    query = torch.tensor([[1.0, 0.0]])
    keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    mask = torch.tensor([[True, True, False]])
    context, weights = attn(query, keys, mask)
    e = math.e
    expected = torch.tensor([[e / (e + 1), 1 / (e + 1), 0.0]])
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(context, torch.tensor([[e / (e + 1), 1 / (e + 1)]]))


def test_general_attention_with_identity_is_dot() -> None:
    general = Attention(4, 4, "general")
    with torch.no_grad():
        general.key_proj.weight.copy_(torch.eye(4))
    dot = Attention(4, 4, "dot")
    query, keys, mask, _ = _inputs(4, 4)
    for a, b in zip(general(query, keys, mask), dot(query, keys, mask), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kind", ["additive", "general"])
def test_different_query_and_key_sizes(kind: str) -> None:
    attn = _make(kind, hq=3, hk=6)
    query, keys, mask, _ = _inputs(3, 6)
    context, weights = attn(query, keys, mask)
    assert context.shape == (3, 4, 6) and weights.shape == (3, 4, 7)


@pytest.mark.parametrize("kind", KINDS)
def test_fully_masked_row_gives_zeros_not_nan(kind: str) -> None:
    attn = _make(kind)
    query, keys, mask, _ = _inputs()
    mask[1] = False
    query.requires_grad_(True)
    context, weights = attn(query, keys, mask)
    assert torch.all(weights[1] == 0.0) and torch.all(context[1] == 0.0)
    assert torch.isfinite(weights).all() and torch.isfinite(context).all()
    context.sum().backward()
    assert torch.isfinite(query.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in attn.parameters())


def test_no_mask_means_all_steps_valid() -> None:
    attn = _make("additive")
    query, keys, _, _ = _inputs()
    full = torch.ones(3, 7, dtype=torch.bool)
    for a, b in zip(attn(query, keys), attn(query, keys, full), strict=True):
        torch.testing.assert_close(a, b)


def test_config_errors() -> None:
    with pytest.raises(
        ConfigError, match="kind 'dot': expected query_size == key_size, got 4 and 6"
    ):
        Attention(4, 6, "dot")
    with pytest.raises(ConfigError, match="expected one of"):
        Attention(4, 4, "multihead")
    with pytest.raises(ConfigError, match="attn_size: only used by kind 'additive'"):
        Attention(4, 4, "general", attn_size=8)
    with pytest.raises(ConfigError, match="query_size: expected an integer >= 1, got 0"):
        Attention(0, 4, "additive")
    assert Attention(4, 6, "additive").attn_size == 6


def test_shape_errors() -> None:
    attn = Attention(6, 6, "general")
    query, keys, mask, _ = _inputs()
    with pytest.raises(ShapeError, match=r"keys: expected \(B, S, H=6\), got \(3, 7, 5\)"):
        attn(query, keys[..., :5], mask)
    with pytest.raises(ShapeError, match=r"query: expected \(B=3, U, H=6\), got \(2, 4, 6\)"):
        attn(query[:2], keys, mask)
    with pytest.raises(ShapeError, match=r"mask: expected \(B=3, S=7\), got \(3, 6\)"):
        attn(query, keys, mask[:, :6])
    with pytest.raises(ShapeError, match="mask: expected dtype torch.bool"):
        attn(query, keys, mask.long())
    with pytest.raises(ShapeError, match="query: expected"):
        attn(query[0, 0], keys, mask)
