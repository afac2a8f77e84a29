"""Many-to-one: a variable-length sequence (T, F) -> one class (N logits) or one value vector (O).

x (B, T, F), lengths (B,)
  -> SequenceEncoder: outputs (B, T, D·H) zero on padding, last (B, D·H) at each true end
  -> pooling: last | mean over valid steps | attention over valid steps -> (B, D·H)
  -> head: Linear(D·H, N) -> logits (B, N)      (regression: (B, O))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .encoder import EncoderConfig, SequenceEncoder

POOLINGS = ("last", "mean", "attention")


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig:
    input_size: int
    num_outputs: int  # N classes, or O regression outputs
    task: str = "classification"  # or "regression"
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    cell: str = "lstm"
    pooling: str = "last"

    def __post_init__(self) -> None:
        if self.task not in ("classification", "regression"):
            raise ConfigError(f"task: expected 'classification' or 'regression', got {self.task!r}")
        if self.pooling not in POOLINGS:
            raise ConfigError(
                f"pooling: expected one of {', '.join(POOLINGS)}, got {self.pooling!r}"
            )
        minimum = 2 if self.task == "classification" else 1
        if not isinstance(self.num_outputs, int) or self.num_outputs < minimum:
            what = "classes" if self.task == "classification" else "outputs"
            raise ConfigError(
                f"num_outputs: expected at least {minimum} {what}, got {self.num_outputs!r}"
            )
        self.encoder_config()  # validates the encoder fields

    def encoder_config(self) -> EncoderConfig:
        return EncoderConfig(
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
            cell=self.cell,
        )

    def to_dict(self) -> dict:
        return asdict(self)


class AttentionPooling(nn.Module):
    """Weighted mean of the valid steps, weights from a learned score per step."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(size, size)
        self.score = nn.Linear(size, 1, bias=False)

    def forward(self, outputs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        # (B, T, D·H) -> (B, T): one score per step
        scores = self.score(torch.tanh(self.proj(outputs))).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        # (B, T): zero weight on padding
        weights = torch.softmax(scores, dim=1)
        # (B, T, 1) * (B, T, D·H) summed over T -> (B, D·H)
        return (weights.unsqueeze(-1) * outputs).sum(1), weights


class ClassifierNet(nn.Module):
    """Encoder + pooling + linear head. ``forward(x, lengths) -> (B, N)``."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = SequenceEncoder(config.encoder_config())
        size = self.encoder.config.output_size
        self.attention = AttentionPooling(size) if config.pooling == "attention" else None
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(size, config.num_outputs)

    def pool(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        """(B, T, F) -> (B, D·H): the sequence summary the head sees."""
        enc = self.encoder(x, lengths)
        if self.config.pooling == "last":
            return enc.last
        if self.config.pooling == "mean":
            # (B, T, D·H) summed over valid steps / lengths -> (B, D·H); padding is already zero
            n = enc.mask.sum(1, keepdim=True).clamp(min=1).to(enc.outputs.dtype)
            return enc.outputs.sum(1) / n
        pooled, _ = self.attention(enc.outputs, enc.mask)
        return pooled

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        # (B, D·H) -> (B, N)
        return self.head(self.dropout(self.pool(x, lengths)))
