"""Batches of variable-length sequences: padded values + lengths + mask, and length bucketing.

A `Batch` holds ``x`` (B, T, F) zero-padded at the end, ``lengths`` (B,) and ``mask`` (B, T) with True on
valid steps. The `BucketBatchSampler` groups sequences of similar length so that padding (wasted
compute on CPU, where oneDNN has no packed kernel) stays near zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Batch:
    """A padded batch. ``y`` is whatever target the mode needs (class ids, per-step labels, ...)."""

    x: torch.Tensor  # (B, T, F) float32, zero after each sequence's length
    lengths: torch.Tensor  # (B,) int64, on the same device as x
    mask: torch.Tensor  # (B, T) bool, True on valid steps
    y: torch.Tensor | None = None
    index: torch.Tensor | None = None  # (B,) positions in the data set, to restore order
    extra: dict = field(default_factory=dict)

    def to(self, device: torch.device | str) -> Batch:
        move = lambda t: t.to(device) if isinstance(t, torch.Tensor) else t  # noqa: E731
        return Batch(
            x=move(self.x),
            lengths=move(self.lengths),
            mask=move(self.mask),
            y=move(self.y),
            index=self.index,
            extra={k: move(v) for k, v in self.extra.items()},
        )

    @property
    def padding_fraction(self) -> float:
        """Share of the (B, T) grid that is padding."""
        return 1.0 - float(self.mask.float().mean())


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool mask, True where step < length. Works on any device."""
    max_len = int(lengths.max()) if max_len is None else max_len
    # (T,) -> (1, T) compared with (B, 1) -> (B, T)
    steps = torch.arange(max_len, device=lengths.device)
    return steps[None, :] < lengths[:, None]


def pad_sequences(seqs: Sequence[np.ndarray | torch.Tensor], dtype=torch.float32) -> torch.Tensor:
    """List of (T_i, F) -> (B, max T_i, F), zero-padded at the end."""
    tensors = [torch.as_tensor(np.asarray(s), dtype=dtype) for s in seqs]
    # list of (T_i, F) -> (B, T, F)
    return torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True)


def collate(
    seqs: Sequence[np.ndarray],
    y: Sequence | np.ndarray | None = None,
    index: Sequence[int] | None = None,
    y_dtype=torch.long,
) -> Batch:
    """Pad a list of (T_i, F) arrays into a `Batch`."""
    x = pad_sequences(seqs)
    lengths = torch.as_tensor([len(s) for s in seqs], dtype=torch.long)
    mask = lengths_to_mask(lengths, x.shape[1])
    yt = None if y is None else torch.as_tensor(np.asarray(y), dtype=y_dtype)
    idx = None if index is None else torch.as_tensor(list(index), dtype=torch.long)
    return Batch(x=x, lengths=lengths, mask=mask, y=yt, index=idx)


class BucketBatchSampler:
    """Yields lists of indices whose sequences have similar lengths.

    Sort by length (ties broken randomly), cut into batches of ``batch_size``, shuffle the order of the
    batches. With ``shuffle=False`` the batches come in length order (deterministic, for inference).
    The epoch number feeds the seed, so a resumed run sees the same batches as an uninterrupted one.
    ``num_replicas``/``rank`` split the batches between processes for distributed training.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _batches(self) -> list[np.ndarray]:
        n = len(self.lengths)
        rng = np.random.default_rng(self.seed + 7919 * self.epoch)
        tiebreak = rng.random(n) if self.shuffle else np.arange(n)
        order = np.lexsort((tiebreak, self.lengths))
        batches = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            perm = rng.permutation(len(batches))
            batches = [batches[i] for i in perm]
        if self.num_replicas > 1:
            # every rank gets the same number of batches: wrap around
            per_rank = math.ceil(len(batches) / self.num_replicas)
            total = per_rank * self.num_replicas
            batches = (batches * math.ceil(total / max(len(batches), 1)))[:total]
            batches = batches[self.rank :: self.num_replicas]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for b in self._batches():
            yield b.tolist()

    def __len__(self) -> int:
        return len(self._batches())

    def padding_waste(self) -> float:
        """Processed / real steps minus 1 for one epoch (0.0 = no padding)."""
        real = padded = 0
        for b in self._batches():
            ls = self.lengths[b]
            real += int(ls.sum())
            padded += int(ls.max()) * len(ls)
        return padded / max(real, 1) - 1.0


class RandomBatchSampler(BucketBatchSampler):
    """Plain shuffled batches (no bucketing), for comparison and for small data sets."""

    def _batches(self) -> list[np.ndarray]:
        n = len(self.lengths)
        rng = np.random.default_rng(self.seed + 7919 * self.epoch)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        batches = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.num_replicas > 1:
            batches = batches[self.rank :: self.num_replicas]
        return batches
