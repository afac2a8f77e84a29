"""The pieces every ONNX exporter builds its graphs from: the graph contract (`TensorSpec`,
`OnnxGraph`, `OnnxExport`), example batches of mixed lengths, and the recurrent core restated for
tracing with exact final states (`packed_encode`). `seqshape.infer.export` documents the graphs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..models.encoder import CELLS, SequenceEncoder, State, reverse_within_length


@dataclass(frozen=True, kw_only=True)
class TensorSpec:
    """One graph input or output: its name, shape (legend letters for dynamic axes) and dtype."""

    name: str
    shape: tuple[str | int, ...]
    dtype: str
    doc: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "doc": self.doc}


@dataclass(frozen=True, kw_only=True)
class OnnxGraph:
    """One traceable module with example inputs (mixed lengths) and its input/output contract."""

    part: str
    module: nn.Module
    example: tuple[Tensor, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes: dict[str, dict[int, str]] = {}
        for spec in self.inputs + self.outputs:
            dyn = {i: s for i, s in enumerate(spec.shape) if isinstance(s, str)}
            if dyn:
                axes[spec.name] = dyn
        return axes


@dataclass(frozen=True, kw_only=True)
class OnnxExport:
    """Every graph of one model plus the metadata the runtime needs (classes, scaler, ...)."""

    graphs: tuple[OnnxGraph, ...]
    metadata: dict = field(default_factory=dict)


def example_batch(features: int, lengths: list[int], seed: int = 0) -> tuple[Tensor, Tensor]:
    """A zero-padded random batch (B, max(lengths), F) and its lengths (B,) int64."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    lens = torch.tensor(lengths, dtype=torch.long)
    # (B, T, F), zero after each sequence's end
    x = torch.randn(len(lengths), T, features, generator=g)
    x = x * (torch.arange(T)[None, :, None] < lens[:, None, None]).to(x.dtype)
    return x, lens


# -- the recurrent core with exact final states ------------------------------------------------
def packed_encode(encoder: SequenceEncoder, x: Tensor, lengths: Tensor) -> tuple[Tensor, State]:
    """`SequenceEncoder.forward(x, lengths, need_state=True)` restated for tracing.

    Each layer and direction runs on a PackedSequence (the encoder's ``packed`` path), which the
    exporter turns into the ONNX LSTM/GRU's ``sequence_lens`` input: every final state is the one
    at each sequence's true last step, as in torch's ``segmented`` path, and B and T stay dynamic.
    Returns outputs (B, T, D·H), zero on padding, and the state (h[, c]) each (L·D, B, H).
    """
    cfg = encoder.config
    # (T,) vs (B, 1) -> (B, T) bool, True on valid steps; T read from x, so it stays dynamic
    mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
    inp = x
    finals: list[tuple[Tensor, ...]] = []  # per (layer, direction): (h[, c]) each (B, H)
    for layer in encoder.layers:
        outs = []
        for name in ("fwd", "bwd")[: cfg.directions]:
            # (B, T, F_in): the backward direction reads each sequence reversed within its length
            seq = inp if name == "fwd" else reverse_within_length(inp, lengths)
            packed = nn.utils.rnn.pack_padded_sequence(
                seq, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            out, fin = layer[name](packed)
            # packed -> (B, T, H), zero after each sequence's end
            out, _ = nn.utils.rnn.pad_packed_sequence(
                out, batch_first=True, total_length=x.shape[1]
            )
            if name == "bwd":
                out = reverse_within_length(out, lengths)
            outs.append(out)
            # (1, B, H) -> (B, H) for h (and c)
            finals.append(tuple(f[0] for f in encoder.cell.as_tuple(fin)))
        # D x (B, T, H) -> (B, T, D·H), zero on padding (inter-layer dropout: off in eval)
        inp = torch.cat(outs, dim=-1) * mask.unsqueeze(-1).to(x.dtype)
    # L·D x (B, H) -> (L·D, B, H), nn.LSTM's layer-major, direction-minor order
    state = tuple(torch.stack([f[j] for f in finals]) for j in range(len(finals[0])))
    return inp, state


def _state_specs(layers: int, hidden: int, cell: str, suffix: str = "") -> tuple:
    """The recurrent state's inputs/outputs of a step graph: one (L, B, H) per state tensor."""
    names = CELLS[cell].state_names
    return tuple(
        TensorSpec(
            name=f"{n}{suffix}",
            shape=(layers, "B", hidden),
            dtype="float32",
            doc=f"recurrent {'hidden' if n == 'h' else 'cell'} state of every layer",
        )
        for n in names
    )
