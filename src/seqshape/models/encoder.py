"""The variable-length recurrent core shared by every model.

`SequenceEncoder` runs an LSTM (or GRU) over a padded batch ``x`` (B, T, F) with ``lengths`` (B,) and
returns, for every sequence, exactly what running it alone would give:

- ``outputs`` (B, T, D·H): the last layer's per-step outputs, zero on padding;
- ``last`` (B, D·H): each sequence's summary at its *true* end (forward direction: the step at
  ``length - 1``; backward direction: step 0, having read the whole sequence backwards);
- ``state``: ``(h_n, c_n)`` (GRU: ``(h_n,)``), each (L·D, B, H) in nn.LSTM's layout, the states at each
  sequence's true last step — only when asked for (``need_state=True``), because on CPU it costs a
  little more.

Why not ``pack_padded_sequence``? On CPU oneDNN has no packed kernel and packed training runs 9-18x
slower than padded batches (measured before any code; see bench/). So the engine picks a path:

- ``equal``: every length equals T -> one call per layer and direction; states exact.
- ``padded`` (CPU, state not needed): one padded call per layer and direction; padding sits after each
  sequence's end (the backward direction reverses every sequence *within its own length* so its padding
  also stays at the end), so the outputs at valid steps are exact and ``last`` is gathered at each true
  end. Reading ``h_n`` of this run would be wrong: it is the state after the padding.
- ``segmented`` (CPU, state needed, unequal lengths): sort by length and run the padded kernel over the
  step ranges between consecutive distinct lengths, carrying (h, c) and dropping finished sequences: no
  padded step is computed and every final state is exact. With length bucketing a batch holds only a
  few distinct lengths, so this is a handful of oneDNN calls.
- ``packed`` (CUDA): cuDNN's packed kernel is the fast path there.

One step at a time (autoregression, streaming) goes through `step`, which applies the fused cell
function with the same weights (~43 µs per step against ~121 µs for a one-step nn.LSTM call).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..batching import lengths_to_mask
from ..errors import ConfigError, ShapeError
from ..shapes import check_shape

State = tuple[Tensor, ...]  # LSTM: (h, c); GRU: (h,). Each (L·D, B, H).


@dataclass(frozen=True)
class Cell:
    """A recurrent cell: its torch module, how many state tensors it carries ((h, c) or (h,)),
    and its fused one-step function. The one place a cell's facts live: the encoder, the
    decoders, the ONNX graphs, streams and the server ask `CELLS` rather than the cell's name."""

    name: str
    module: type[nn.Module]
    n_states: int
    # (input (B, F), states tuple of (B, H), *[w_ih, w_hh, b_ih, b_hh]) -> new states tuple
    step: Callable[..., tuple[Tensor, ...]]

    def hx(self, state: State):
        """A state tuple as the torch module takes it (a tuple for the LSTM, a tensor for GRU)."""
        return state if self.n_states > 1 else state[0]

    @property
    def state_names(self) -> tuple[str, ...]:
        """The state tensors' names, in order: ("h", "c") for the LSTM, ("h",) for the GRU."""
        return ("h", "c", "s2", "s3")[: self.n_states]

    def as_tuple(self, fin) -> tuple[Tensor, ...]:
        """What the torch module returns as its final state, as a state tuple."""
        return tuple(fin) if self.n_states > 1 else (fin,)


CELLS: dict[str, Cell] = {
    "lstm": Cell("lstm", nn.LSTM, 2, lambda x, s, *w: torch.lstm_cell(x, s, *w)),
    "gru": Cell("gru", nn.GRU, 1, lambda x, s, *w: (torch.gru_cell(x, s[0], *w),)),
}


def n_states(cell: str) -> int:
    """How many state tensors ``cell`` carries: 2 for the LSTM (h, c), 1 for the GRU (h)."""
    return CELLS[cell].n_states


@dataclass(frozen=True, kw_only=True)
class EncoderConfig:
    input_size: int
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    cell: str = "lstm"

    def __post_init__(self) -> None:
        for name in ("input_size", "hidden_size", "num_layers"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"encoder.{name}: expected a positive integer, got {v!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"encoder.dropout: expected a value in [0, 1), got {self.dropout!r}")
        if self.cell not in CELLS:
            raise ConfigError(
                f"encoder.cell: expected one of {', '.join(CELLS)}, got {self.cell!r}"
            )

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.directions

    def to_dict(self) -> dict:
        return asdict(self)


class EncoderOutput(NamedTuple):
    outputs: Tensor  # (B, T, D·H), zero on padding
    last: Tensor  # (B, D·H), each sequence's summary at its true end
    state: State | None  # (h_n[, c_n]) each (L·D, B, H) at true ends, or None
    mask: Tensor  # (B, T) bool


def reverse_within_length(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence's first ``length`` steps, leaving its padding at the end.

    Applying it twice gives back ``x``.
    """
    B, T = x.shape[0], x.shape[1]
    steps = torch.arange(T, device=x.device).expand(B, T)
    # (B, T): index length-1-t on valid steps, t on padding
    idx = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
    # (B, T) -> (B, T, F) index for gather along time
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))


def gather_last(outputs: Tensor, lengths: Tensor) -> Tensor:
    """(B, T, H) -> (B, H): each sequence's output at its true last step."""
    idx = (lengths - 1).clamp(min=0)
    # (B,) -> (B, 1, H) index; gather -> (B, 1, H) -> (B, H)
    return outputs.gather(1, idx.view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])).squeeze(1)


class SequenceEncoder(nn.Module):
    """Stacked (bi)LSTM/GRU over variable-length batches; see the module docstring."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.cell = CELLS[config.cell]
        rnn_cls = self.cell.module
        self.layers = nn.ModuleList()
        in_size = config.input_size
        for _ in range(config.num_layers):
            layer = nn.ModuleDict({"fwd": rnn_cls(in_size, config.hidden_size, batch_first=True)})
            if config.bidirectional:
                layer["bwd"] = rnn_cls(in_size, config.hidden_size, batch_first=True)
            self.layers.append(layer)
            in_size = config.output_size
        self.dropout = nn.Dropout(config.dropout)

    @property
    def is_lstm(self) -> bool:
        return self.config.cell == "lstm"

    def init_state(self, batch_size: int, device=None, dtype=torch.float32) -> State:
        c = self.config
        z = torch.zeros(
            c.num_layers * c.directions, batch_size, c.hidden_size, device=device, dtype=dtype
        )
        return (z,) + tuple(z.clone() for _ in range(self.cell.n_states - 1))

    def choose_path(self, x: Tensor, lengths: Tensor, need_state: bool) -> str:
        if bool((lengths == x.shape[1]).all()):
            return "equal"
        if x.is_cuda:
            return "packed"
        return "segmented" if need_state else "padded"

    def forward(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        state: State | None = None,
        *,
        need_state: bool = False,
        path: str | None = None,
    ) -> EncoderOutput:
        """Encode ``x`` (B, T, F) with ``lengths`` (B,) (default: all T) from ``state`` (default zeros)."""
        cfg = self.config
        dims = check_shape(x, "B T F", name="x", known={"F": cfg.input_size})
        B, T = dims["B"], dims["T"]
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=x.device)
        else:
            lengths = lengths.to(device=x.device, dtype=torch.long)
            check_shape(lengths, "B", name="lengths", known={"B": B})
            if B and (int(lengths.min()) < 1 or int(lengths.max()) > T):
                raise ShapeError(
                    f"lengths: expected values in [1, T={T}], got min {int(lengths.min())}, "
                    f"max {int(lengths.max())}"
                )
        path = path or self.choose_path(x, lengths, need_state)
        if path not in ("equal", "padded", "segmented", "packed"):
            raise ConfigError(f"path: expected equal|padded|segmented|packed, got {path!r}")
        if state is not None:
            for i, s in enumerate(state):
                check_shape(
                    s,
                    "LD B H",
                    name=f"state[{i}]",
                    known={"LD": cfg.num_layers * cfg.directions, "B": B, "H": cfg.hidden_size},
                )
        mask = lengths_to_mask(lengths, T)
        finals: list[list[Tensor]] = []  # per (layer, direction): [h] or [h, c], each (B, H)
        inp = x
        last = None
        for li, layer in enumerate(self.layers):
            dir_outputs = []
            dir_lasts = []
            for di, name in enumerate(["fwd", "bwd"][: cfg.directions]):
                rnn = layer[name]
                init = None
                if state is not None:
                    k = li * cfg.directions + di
                    init = tuple(s[k : k + 1] for s in state)
                seq = inp if name == "fwd" else reverse_within_length(inp, lengths)
                out, fin = _run(rnn, seq, lengths, init, path, self.cell)
                # (B, T, H): the backward direction's outputs back in time order
                if name == "bwd":
                    out = reverse_within_length(out, lengths)
                    # backward direction's summary: its output at original step 0
                    dir_lasts.append(out[:, 0])
                else:
                    dir_lasts.append(gather_last(out, lengths))
                dir_outputs.append(out)
                if fin is not None:
                    finals.append(fin)
            # (B, T, D·H)
            out = torch.cat(dir_outputs, dim=-1) if len(dir_outputs) > 1 else dir_outputs[0]
            out = out * mask.unsqueeze(-1).to(out.dtype)
            last = torch.cat(dir_lasts, dim=-1) if len(dir_lasts) > 1 else dir_lasts[0]
            inp = self.dropout(out) if li < cfg.num_layers - 1 else out
        out_state: State | None = None
        if path != "padded":
            # L·D x (B, H) -> (L·D, B, H), in nn.LSTM's layer-major, direction-minor order
            out_state = tuple(torch.stack([f[j] for f in finals]) for j in range(len(finals[0])))
        elif need_state:
            raise ConfigError("path 'padded' cannot give final states: use 'segmented'")
        return EncoderOutput(outputs=inp, last=last, state=out_state, mask=mask)

    # -- one step at a time -------------------------------------------------------------------
    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        """Advance every layer one step: ``x_t`` (B, F), ``state`` (L, B, H)s -> (B, H), new state.

        Uses the fused cell function with the recurrent layers' own weights, so K steps cost K cell
        calls and agree with a full-sequence pass (training and inference paths agree).
        Unidirectional only: a backward direction cannot be stepped.
        """
        if self.config.bidirectional:
            raise ConfigError("step: a bidirectional encoder cannot run one step at a time")
        if x_t.dim() != 2 or x_t.shape[1] != self.config.input_size:
            # the full check (and its message) only when something is off: this is a hot path
            check_shape(x_t, "B F", name="x_t", known={"F": self.config.input_size})
        inp = x_t
        drop = self.training and self.config.dropout > 0
        last = self.config.num_layers - 1
        cell_step = self.cell.step
        # each state tensor (L, B, H) -> L x (B, H), once
        per_layer = [s.unbind(0) for s in state]
        new: list[list[Tensor]] = [[] for _ in state]
        for li, layer in enumerate(self.layers):
            # [w_ih, w_hh, b_ih, b_hh]: the layer's own parameters (nn.LSTM keeps this list in
            # step with them, also after .to()/load_state_dict), read without Module.__getattr__
            w = layer["fwd"]._flat_weights
            out = cell_step(inp, tuple(s[li] for s in per_layer), *w)
            for j, t in enumerate(out):
                new[j].append(t)
            h = out[0]
            inp = self.dropout(h) if drop and li < last else h
        # L x (B, H) -> (L, B, H), per state tensor
        return inp, tuple(torch.stack(n) for n in new)


def _run(
    rnn: nn.Module, x: Tensor, lengths: Tensor, init: State | None, path: str, cell: Cell
) -> tuple[Tensor, list[Tensor] | None]:
    """Run one unidirectional single-layer rnn; return (B, T, H) outputs and final [h, c] (B, H)."""
    hx = None if init is None else cell.hx(init)
    if path == "equal":
        out, fin = rnn(x, hx)
        return out, _finals(fin, cell)
    if path == "padded":
        out, _ = rnn(x, hx)  # the final state here is after the padding: never used
        return out, None
    if path == "packed":
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, fin = rnn(packed, hx)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, _finals(fin, cell)
    return _run_segmented(rnn, x, lengths, init, cell)


def _finals(fin, cell: Cell) -> list[Tensor]:
    # each (1, B, H) -> (B, H)
    return [t[0] for t in cell.as_tuple(fin)]


def _run_segmented(
    rnn: nn.Module, x: Tensor, lengths: Tensor, init: State | None, cell: Cell
) -> tuple[Tensor, list[Tensor]]:
    B, T, _ = x.shape
    H = rnn.hidden_size
    order = torch.argsort(lengths, descending=True, stable=True)
    inverse = torch.argsort(order)
    xs = x.index_select(0, order)
    ls = lengths.index_select(0, order).tolist()
    if init is None:
        z = x.new_zeros(1, B, H)
        st = [z] + [z.clone() for _ in range(cell.n_states - 1)]
    else:
        st = [s.index_select(1, order) for s in init]
    distinct = sorted(set(ls))
    segments: list[Tensor] = []
    final_chunks: list[list[Tensor]] = []  # chunks of finished rows, shortest last in sorted order
    prev = 0
    for length in distinct:
        n_active = sum(1 for v in ls if v >= length)
        n_next = sum(1 for v in ls if v > length)
        hx = tuple(s[:, :n_active] for s in st)
        # (n_active, length - prev, F) -> (n_active, length - prev, H)
        out, fin = rnn(xs[:n_active, prev:length], cell.hx(hx))
        fin = list(cell.as_tuple(fin))
        if n_active < B:
            out = torch.cat([out, out.new_zeros(B - n_active, length - prev, H)], dim=0)
        segments.append(out)
        final_chunks.append([f[0, n_next:n_active] for f in fin])
        st = [f[:, :n_next] for f in fin]
        prev = length
    if prev < T:
        segments.append(x.new_zeros(B, T - prev, H))
    # segments along time -> (B, T, H), rows in sorted order
    out = torch.cat(segments, dim=1)
    # finished chunks were produced shortest-first; sorted order is longest-first
    finals = [torch.cat([ch[j] for ch in reversed(final_chunks)], dim=0) for j in range(len(st))]
    return out.index_select(0, inverse), [f.index_select(0, inverse) for f in finals]
