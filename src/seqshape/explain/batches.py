"""Batches for `explain`: seeded dummy batches of a mode's shape, and a user's batch read into
tensors (checked against the model's sizes, scaled like `predict`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ShapeError
from ..shapes import check_feature_counts, check_shape
from .core import ExplainOptions


def _seed_randn(*shape: int, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def _padded(lengths: Sequence[int], T: int, F: int, seed: int = 0) -> Tensor:
    """(B, T, F) random values, zero after each length (as collate pads)."""
    x = _seed_randn(len(lengths), T, F, seed=seed)
    steps = torch.arange(T)
    # (B, T) valid-step mask -> (B, T, 1)
    valid = steps[None, :] < torch.as_tensor(list(lengths))[:, None]
    return x * valid.unsqueeze(-1)


def _as_float(x: Any, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x.float()
    try:
        return torch.as_tensor(np.asarray(x, dtype=np.float32))
    except (TypeError, ValueError) as e:
        raise ShapeError(f"{name}: expected an array of numbers ({e})") from None


def _with_lengths(x: Tensor, lengths: Any) -> tuple[Tensor, Tensor]:
    B, T = x.shape[0], x.shape[1] if x.dim() > 1 else 0
    if lengths is None:
        return x, torch.full((B,), T, dtype=torch.long)
    return x, torch.as_tensor(lengths, dtype=torch.long)


def _sequence_batch(batch: Any, features: int, scaler: Any = None) -> tuple[Tensor, Tensor]:
    """A user's batch for (B, T, F) models -> (x, lengths).

    Accepts a `Batch`, ``(x, lengths)``, a (B, T, F) array, or a list of (T_i, F) arrays (checked
    with `check_feature_counts`, scaled with the model's scaler when it has one, then padded).
    """
    from ..batching import collate

    if hasattr(batch, "x") and hasattr(batch, "lengths"):
        return batch.x.float(), batch.lengths
    if isinstance(batch, tuple) and len(batch) == 2:
        x = _as_float(batch[0], "x")
        check_shape(x, "B T F", name="x", known={"F": features})
        return _with_lengths(x, batch[1])
    if isinstance(batch, (Tensor, np.ndarray)) and batch.ndim != 1 and batch.dtype != object:
        x = _as_float(batch, "x")
        check_shape(x, "B T F", name="x", known={"F": features})
        return _with_lengths(x, None)
    if isinstance(batch, (list, np.ndarray)):
        arrays = [np.asarray(a, dtype=np.float32) for a in batch]
        check_feature_counts(arrays, name="X", features=features)
        if scaler is not None and hasattr(scaler, "transform"):
            arrays = scaler.transform(arrays)
        b = collate(arrays)
        return b.x, b.lengths
    raise ShapeError(
        f"example_batch: expected a Batch, (x, lengths), a (B, T, F={features}) array or a list "
        f"of (T, F={features}) arrays, got {type(batch).__name__}"
    )


def _seq_example(net: nn.Module, o: ExplainOptions) -> tuple:
    lengths = o.seq_lengths()
    return _padded(lengths, o.T, net.config.input_size), torch.as_tensor(lengths)


def _seq_read(net: nn.Module, batch: Any, scaler: Any) -> tuple:
    return _sequence_batch(batch, net.config.input_size, scaler)


def _tokens(lengths: Sequence[int], T: int, vocab: int, seed: int) -> Tensor:
    """(B, T) random ids in [4, V) (no specials), PAD (0) after each length."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (len(lengths), T), generator=g)
    # (B, T): True on valid steps
    valid = torch.arange(T)[None, :] < torch.as_tensor(list(lengths))[:, None]
    return ids * valid


def _target(kind: str, B: int, U: int, size: int) -> Tensor:
    if kind == "tokens":
        return _tokens([U] * B, U, size, seed=1)
    return _seed_randn(B, U, size, seed=1)
