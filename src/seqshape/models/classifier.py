"""Many-to-one: a variable-length sequence (T, F) -> one class (N logits) or one value vector (O).

x (B, T, F), lengths (B,)
  -> [frontend "conv"] ConvFrontend: masked Conv1d(F, C, k) + ReLU, max-pool by `stride` P,
     masked Conv1d(C, C, k) + ReLU -> (B, T', C) with T' = ceil(T / P), lengths' = ceil(lengths / P)
  -> SequenceEncoder: outputs (B, T, D·H) zero on padding, last (B, D·H) at each true end
  -> pooling: last | mean over valid steps | attention over valid steps -> (B, D·H)
  -> head: Linear(D·H, N) -> logits (B, N)      (regression: (B, O))
  [kernels > 0] beside it, the kernel part (models/kernels.py): fixed dilated convolutions ->
     proportions of positive values -> a closed-form ridge -> its logits (B, N); the two parts'
     class probabilities are mixed, ``kernel_weight`` for the kernel part:
     logits = log((1 - w) softmax(LSTM logits) + w softmax(kernel logits))
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as nnf

from ..errors import ConfigError, ShapeError
from .encoder import EncoderConfig, SequenceEncoder
from .kernels import KernelPart

POOLINGS = ("last", "mean", "attention")
# what ``forward(part=...)`` returns: the mixture, the recurrent part alone, the kernel part alone
PARTS = ("all", "lstm", "kernels")
FRONTENDS = ("none", "conv")


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
    # "conv": a convolutional front-end before the recurrent core (LSTM-FCN, Karim et al. 2018)
    # whose max-pool by `stride` makes long series take ceil(T / stride) recurrent steps
    frontend: str = "none"
    conv_channels: int = 64
    conv_kernel: int = 7
    stride: int = 1
    # also the front-end's features averaged over each sequence's valid steps, concatenated to
    # the recurrent summary (the FCN branch of LSTM-FCN): head input D·H + C
    conv_summary: bool = False
    # the kernel part (models/kernels.py): about this many features, 0 for none; its layout,
    # fitted on the training lengths, and its share of the mixed class probabilities
    kernels: int = 0
    kernel_dilations: tuple[int, ...] = ()
    kernel_quantiles: tuple[int, ...] = ()
    kernel_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.frontend not in FRONTENDS:
            raise ConfigError(
                f"frontend: expected one of {', '.join(FRONTENDS)}, got {self.frontend!r}"
            )
        for name in ("conv_channels", "conv_kernel", "stride"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {v!r}")
        if self.conv_kernel % 2 == 0:
            raise ConfigError(
                f"conv_kernel: expected an odd width (centred, same length), got {self.conv_kernel}"
            )
        if self.frontend == "none" and (self.stride != 1 or self.conv_summary):
            raise ConfigError(
                f"stride, conv_summary: expected 1 and false without a front-end, got "
                f"{self.stride} and {self.conv_summary}"
            )
        if self.task not in ("classification", "regression"):
            raise ConfigError(f"task: expected 'classification' or 'regression', got {self.task!r}")
        if self.pooling not in POOLINGS:
            raise ConfigError(
                f"pooling: expected one of {', '.join(POOLINGS)}, got {self.pooling!r}"
            )
        if not isinstance(self.kernels, int) or isinstance(self.kernels, bool) or self.kernels < 0:
            raise ConfigError(f"kernels: expected 0 or a positive integer, got {self.kernels!r}")
        if self.kernels and self.task != "classification":
            raise ConfigError("kernels: the kernel part classifies; expected 0 for regression")
        if len(self.kernel_dilations) != len(self.kernel_quantiles):
            raise ConfigError(
                f"kernel_dilations, kernel_quantiles: expected equal lengths, got "
                f"{len(self.kernel_dilations)} and {len(self.kernel_quantiles)}"
            )
        if not 0.0 <= self.kernel_weight <= 1.0:
            raise ConfigError(
                f"kernel_weight: expected a value in [0, 1], got {self.kernel_weight!r}"
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
            input_size=self.conv_channels if self.frontend == "conv" else self.input_size,
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


def valid_mask(lengths: Tensor, steps: int) -> Tensor:
    """(B,) lengths -> (B, T) bool, True on valid steps; traceable (T from a tensor shape)."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


class ConvFrontend(nn.Module):
    """Convolutions that never read across a sequence's end, then fewer steps for the LSTM.

    Padded steps are set to zero before and after each convolution, so a step near the end sees
    zeros past it in a padded batch exactly as it sees the convolution's own zero padding when
    the sequence is alone. The max-pool (ceil mode) runs over ReLU outputs (>= 0), where a padded
    zero never beats a valid step, so each pooled step is the same alone or in a batch.
    """

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        k, c = config.conv_kernel, config.conv_channels
        self.stride = config.stride
        self.conv1 = nn.Conv1d(config.input_size, c, k, padding=k // 2)
        self.conv2 = nn.Conv1d(c, c, k, padding=k // 2)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, F), lengths (B,) -> (B, ceil(T / P), C), lengths ceil(lengths / P)."""
        # (B, T) -> (B, 1, T): channels-first mask for Conv1d
        keep = valid_mask(lengths, x.shape[1]).unsqueeze(1).to(x.dtype)
        # (B, T, F) -> (B, F, T) -> (B, C, T), zero on padding before and after
        h = torch.relu(self.conv1(x.transpose(1, 2) * keep)) * keep
        if self.stride > 1:
            # (B, C, T) -> (B, C, ceil(T / P)): the last window may be partial
            h = nnf.max_pool1d(h, self.stride, self.stride, ceil_mode=True)
            lengths = torch.div(lengths + self.stride - 1, self.stride, rounding_mode="floor")
            keep = valid_mask(lengths, h.shape[2]).unsqueeze(1).to(x.dtype)
        # (B, C, T') -> (B, C, T') -> (B, T', C)
        h = torch.relu(self.conv2(h)) * keep
        return h.transpose(1, 2), lengths


class ClassifierNet(nn.Module):
    """Encoder + pooling + linear head. ``forward(x, lengths) -> (B, N)``."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.frontend = ConvFrontend(config) if config.frontend == "conv" else None
        self.encoder = SequenceEncoder(config.encoder_config())
        size = self.encoder.config.output_size
        self.attention = AttentionPooling(size) if config.pooling == "attention" else None
        self.dropout = nn.Dropout(config.dropout)
        extra = config.conv_channels if config.conv_summary else 0
        self.head = nn.Linear(size + extra, config.num_outputs)
        self.kernel_part = (
            KernelPart(
                config.input_size,
                config.num_outputs,
                config.kernel_dilations,
                config.kernel_quantiles,
            )
            if config.kernels and config.kernel_dilations
            else None
        )

    def summary(
        self, outputs: Tensor, last: Tensor, mask: Tensor, conv: Tensor | None = None
    ) -> Tensor:
        """Encoder outputs (B, T', D·H) zero on padding, ``last`` (B, D·H), ``mask`` (B, T') and
        the front-end's features (B, T', C) zero on padding -> (B, D·H [+ C]): what the head sees.
        The one place pooling is defined (the ONNX graph calls it too)."""
        # (B, T') -> (B, 1): valid steps per sequence
        n = mask.sum(1, keepdim=True).clamp(min=1).to(outputs.dtype)
        if self.config.pooling == "last":
            pooled = last
        elif self.config.pooling == "mean":
            # (B, T', D·H) summed over valid steps / lengths -> (B, D·H); padding is already zero
            pooled = outputs.sum(1) / n
        else:
            pooled, _ = self.attention(outputs, mask)
        if self.config.conv_summary and conv is not None:
            # (B, T', C) -> (B, C) mean over valid steps; (B, D·H) ++ (B, C) -> (B, D·H + C)
            pooled = torch.cat([pooled, conv.sum(1) / n], dim=-1)
        return pooled

    def pool(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        """(B, T, F) -> (B, D·H [+ C]): the sequence summary the head sees."""
        conv = None
        if self.frontend is not None:
            if lengths is None:
                lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
            lengths = lengths.to(device=x.device)
            if x.shape[0] and (int(lengths.min()) < 1 or int(lengths.max()) > x.shape[1]):
                raise ShapeError(
                    f"lengths: expected values in [1, T={x.shape[1]}], got min "
                    f"{int(lengths.min())}, max {int(lengths.max())}"
                )
            # (B, T, F) -> (B, T', C), lengths (B,) -> each sequence's pooled length
            x, lengths = self.frontend(x, lengths.to(dtype=torch.long))
            conv = x
        enc = self.encoder(x, lengths)
        return self.summary(enc.outputs, enc.last, enc.mask, conv)

    def mix(self, logits: Tensor, x: Tensor, lengths: Tensor | None, part: str = "all") -> Tensor:
        """The recurrent part's logits (B, N) -> what ``part`` asks for: the mixture with the
        kernel part's class probabilities, the recurrent logits, or the kernel part's logits.
        The one place the parts are combined (the ONNX graph calls it too)."""
        if part not in PARTS:
            raise ConfigError(f"part: expected one of {', '.join(PARTS)}, got {part!r}")
        if self.kernel_part is None or part == "lstm":
            if part == "kernels":
                raise ConfigError("part: this model has no kernel part (kernels=0)")
            return logits
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
        # (B, T, F) -> (B, N): the kernel part's logits
        kernel = self.kernel_part(x, lengths.to(device=x.device))
        if part == "kernels":
            return kernel
        return self.combine(logits, kernel)

    def combine(self, lstm: Tensor, kernel: Tensor) -> Tensor:
        """The two parts' logits (B, N) each -> the mixture's logits
        log((1 - w) p_lstm + w p_kernel), computed in log space."""
        w = self.config.kernel_weight
        # (B, 2, N) -> (B, N)
        both = torch.stack(
            [
                torch.log_softmax(lstm, -1) + math.log(max(1.0 - w, 1e-30)),
                torch.log_softmax(kernel, -1) + math.log(max(w, 1e-30)),
            ],
            dim=1,
        )
        return torch.logsumexp(both, dim=1)

    def forward(self, x: Tensor, lengths: Tensor | None = None, part: str = "all") -> Tensor:
        """(B, T, F), lengths (B,) -> (B, N) logits: the mixture of the parts by default;
        ``part="lstm"`` (what training fits) or ``"kernels"`` for one part alone."""
        if part == "kernels":
            return self.mix(x.new_zeros(0), x, lengths, part)
        # (B, D·H) -> (B, N)
        return self.mix(self.head(self.dropout(self.pool(x, lengths))), x, lengths, part)
