"""Many-to-many, aligned: one label (N classes) or one value vector (O) per valid input step.

x (B, T, F), lengths (B,)
  -> SequenceEncoder (bi)LSTM: outputs (B, T, D·H), zero on padding; a bidirectional encoder reads
     each sequence backwards from its own true end, so padding never leaks into a valid step
  -> dropout -> head Linear(D·H, N | O) -> (B, T, N) logits | (B, T, O) values

The head also produces numbers on padded steps; `tagger_loss` and the metrics drop them using the
lengths, so padding never changes a loss, a metric or a prediction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as Fn

from ..batching import lengths_to_mask
from ..errors import ConfigError, ShapeError
from ..shapes import check_shape
from .encoder import EncoderConfig, SequenceEncoder

TASKS = ("classification", "regression")
IGNORE = -100  # the label of a padded step (classification)


@dataclass(frozen=True, kw_only=True)
class TaggerConfig:
    input_size: int  # F
    num_outputs: int  # N classes, or O values per step
    task: str = "classification"
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.0
    cell: str = "lstm"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task: expected one of {', '.join(TASKS)}, got {self.task!r}")
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


class TaggerNet(nn.Module):
    """Encoder + per-step linear head. ``forward(x, lengths) -> (B, T, N | O)``."""

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = SequenceEncoder(config.encoder_config())
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.encoder.config.output_size, config.num_outputs)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        enc = self.encoder(x, lengths)
        # (B, T, D·H) -> (B, T, N | O)
        return self.head(self.dropout(enc.outputs))


def tagger_loss(outputs: Tensor, target: Tensor, lengths: Tensor, task: str) -> Tensor:
    """Mean loss over valid steps only.

    Classification: cross-entropy of (B, T, N) logits against (B, T) class ids; regression: mean
    squared error of (B, T, O) against (B, T, O). Whatever sits on padded steps of ``target`` or
    ``outputs`` is ignored.
    """
    B, T = outputs.shape[:2]
    mask = lengths_to_mask(lengths.to(outputs.device), T)
    if task == "classification":
        check_shape(target, "B T", name="target", known={"B": B, "T": T})
        if target.dtype != torch.long:
            raise ShapeError(f"target: expected class ids (torch.long), got {target.dtype}")
        # (B, T): padded steps -> IGNORE, then (B·T, N) against (B·T,)
        labels = target.masked_fill(~mask, IGNORE)
        return Fn.cross_entropy(
            outputs.reshape(-1, outputs.shape[-1]), labels.reshape(-1), ignore_index=IGNORE
        )
    check_shape(target, "B T O", name="target", known={"B": B, "T": T, "O": outputs.shape[-1]})
    # (B, T, O) -> (B, T): squared error averaged over O, summed over valid steps
    err = ((outputs - target) ** 2).mean(-1).masked_fill(~mask, 0.0)
    return err.sum() / mask.sum().clamp(min=1)
