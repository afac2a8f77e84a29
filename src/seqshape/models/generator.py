"""One-to-many: a static vector (F) -> a sequence of tokens or of value vectors (U, O).

static (B, F)
  -> init: per layer, h_0 = tanh(W_h^l static), c_0 = tanh(W_c^l static)  -> state (L, B, H)
  decoder, a unidirectional LSTM (a SequenceEncoder with D=1):
    input at step u: [previous output: token embedding (E) | value vector (O)] and, with
         ``condition_every_step``, the static vector again (F); BOS / a learned start vector at u=0
    teacher forcing: one pass over the shifted target (B, U, ·) -> h (B, U, H)
    inference: `step` per output with the carried (h, c), the prediction fed back as next input
  -> head Linear(H, V | O): logits (B, U, V) | values (B, U, O); values also get a stop logit (B, U)
     so a sequence can end by itself (tokens end at EOS); or ask for a given length.

Training and inference agree: the teacher-forced pass and `step` fed the same previous outputs give
the same numbers (tested <= 1e-5).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ..data.vocab import BOS_ID, EOS_ID, PAD_ID
from ..errors import ConfigError, ShapeError
from ..shapes import check_shape
from .encoder import CELLS, EncoderConfig, SequenceEncoder, State
from .search import beam_search, greedy_decode
from .seq2seq import Seq2SeqOutput, shift_right


@dataclass(frozen=True, kw_only=True)
class GeneratorConfig:
    input_size: int  # F, the static vector's size
    target_vocab_size: int = 0  # V (tokens), counting the 4 specials
    target_features: int = 0  # O (values)
    embedding_size: int = 32  # E (tokens)
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    cell: str = "lstm"
    condition_every_step: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.input_size, int) or self.input_size < 1:
            raise ConfigError(f"input_size: expected a positive integer, got {self.input_size!r}")
        for name in ("target_vocab_size", "target_features", "embedding_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ConfigError(f"{name}: expected an integer >= 0, got {v!r}")
        if (self.target_vocab_size > 0) == (self.target_features > 0):
            raise ConfigError(
                "target: expected exactly one of target_vocab_size (tokens) and target_features "
                f"(values) to be > 0, got {self.target_vocab_size} and {self.target_features}"
            )
        if 0 < self.target_vocab_size <= EOS_ID + 1:
            raise ConfigError(
                f"target_vocab_size: expected more than the 4 special tokens, got "
                f"{self.target_vocab_size}"
            )
        if self.target_vocab_size and self.embedding_size < 1:
            raise ConfigError("embedding_size: expected a positive integer for token sequences")
        self.decoder_config()  # validates hidden_size, num_layers, dropout, cell

    @property
    def target_kind(self) -> str:
        return "tokens" if self.target_vocab_size else "values"

    @property
    def output_size(self) -> int:
        return self.target_vocab_size or self.target_features

    def decoder_config(self) -> EncoderConfig:
        step_in = self.embedding_size if self.target_vocab_size else self.target_features
        return EncoderConfig(
            input_size=step_in + (self.input_size if self.condition_every_step else 0),
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bidirectional=False,
            dropout=self.dropout,
            cell=self.cell,
        )

    def to_dict(self) -> dict:
        return asdict(self)


class GeneratorNet(nn.Module):
    """Static vector -> initial state -> autoregressive LSTM decoder; see the module docstring."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        n_states = CELLS[c.cell].n_states
        # (F,) -> (n_states · L · H): every layer's initial h (and c)
        self.init = nn.Linear(c.input_size, n_states * c.num_layers * c.hidden_size)
        if c.target_vocab_size:
            self.embedding = nn.Embedding(c.target_vocab_size, c.embedding_size, padding_idx=PAD_ID)
            self.start = None
        else:
            self.embedding = None
            self.start = nn.Parameter(torch.zeros(c.target_features))
        self.decoder = SequenceEncoder(c.decoder_config())
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden_size, c.output_size)
        self.stop_head = nn.Linear(c.hidden_size, 1) if c.target_features else None

    def initial_state(self, static: Tensor) -> State:
        """(B, F) -> decoder state, each (L, B, H)."""
        c = self.config
        check_shape(static, "B F", name="static", known={"F": c.input_size})
        B = static.shape[0]
        # (B, F) -> (B, n·L·H) -> (n, L, B, H)
        s = torch.tanh(self.init(static)).view(B, -1, c.num_layers, c.hidden_size)
        s = s.permute(1, 2, 0, 3).contiguous()
        return tuple(s[i] for i in range(s.shape[0]))

    def _inputs(self, prev: Tensor, static: Tensor) -> Tensor:
        """Previous outputs (B, [U,] ·) -> decoder inputs (B, [U,] E|O [+ F])."""
        x = self.dropout(self.embedding(prev)) if self.embedding is not None else prev
        if not self.config.condition_every_step:
            return x
        if x.dim() == 3:
            # (B, F) -> (B, U, F): the static vector at every step
            static = static.unsqueeze(1).expand(-1, x.shape[1], -1)
        return torch.cat([x, static.to(x.dtype)], dim=-1)

    def _readout(self, h: Tensor) -> tuple[Tensor, Tensor | None]:
        h = self.dropout(h)
        # (B, [U,] H) -> (B, [U,] V | O)
        out = self.head(h)
        stop = self.stop_head(h).squeeze(-1) if self.stop_head is not None else None
        return out, stop

    def forward(self, static: Tensor, target: Tensor) -> Seq2SeqOutput:
        """Teacher forcing: ``target`` ids (B, U) ending in EOS then PAD, or values (B, U, O)."""
        c = self.config
        B = static.shape[0]
        if c.target_kind == "tokens":
            check_shape(target, "B U", name="target", known={"B": B})
            if target.dtype != torch.long:
                raise ShapeError(f"target: expected token ids (torch.long), got {target.dtype}")
            start = BOS_ID
        else:
            check_shape(target, "B U O", name="target", known={"B": B, "O": c.target_features})
            start = self.start
        state = self.initial_state(static)
        # (B, U, ·): the true previous outputs, shifted right
        inputs = self._inputs(shift_right(target, start), static)
        dec = self.decoder(inputs, None, state)
        out, stop = self._readout(dec.outputs)
        return Seq2SeqOutput(outputs=out, stop=stop, attention=None)

    # -- one step at a time -------------------------------------------------------------------
    def start_input(self, batch: int, device=None) -> Tensor:
        if self.start is None:
            return torch.full((batch,), BOS_ID, dtype=torch.long, device=device)
        # (O,) -> (B, O)
        return self.start.unsqueeze(0).expand(batch, -1)

    def initial_step_state(self, static: Tensor) -> dict:
        """Decoding state with the batch on dim 0: rnn states (B, L, H) and the static vector."""
        return {
            "rnn": tuple(s.transpose(0, 1) for s in self.initial_state(static)),
            "static": static,
        }

    def step(self, prev: Tensor, state: dict) -> tuple[Tensor, Tensor | None, dict]:
        """Previous ids (B,) / values (B, O) -> outputs (B, V | O), stop logit (B,) or None, state."""
        # (B, L, H) -> (L, B, H)
        rnn = tuple(s.transpose(0, 1).contiguous() for s in state["rnn"])
        h, rnn = self.decoder.step(self._inputs(prev, state["static"]), rnn)
        out, stop = self._readout(h)
        return out, stop, {"rnn": tuple(s.transpose(0, 1) for s in rnn), "static": state["static"]}

    def log_prob_step(self, prev: Tensor, state: dict) -> tuple[Tensor, dict]:
        out, _, state = self.step(prev, state)
        return torch.log_softmax(out, dim=-1), state

    @torch.no_grad()
    def generate_tokens(
        self, static: Tensor, *, max_len: int, beam_size: int = 1, length_penalty: float = 1.0
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Greedy / beam search until EOS: tokens (B, U), lengths (B,) with EOS, scores (B,)."""
        if self.config.target_kind != "tokens":
            raise ConfigError(
                "generate_tokens: this model's targets are values; use generate_values"
            )
        state = self.initial_step_state(static)
        B = static.shape[0]
        if beam_size == 1:
            return greedy_decode(self.log_prob_step, state, B, BOS_ID, EOS_ID, max_len)
        return beam_search(
            self.log_prob_step, state, B, BOS_ID, EOS_ID, max_len, beam_size, length_penalty
        )

    @torch.no_grad()
    def generate_values(
        self, static: Tensor, *, steps: int, stop_at_end: bool = True
    ) -> tuple[Tensor, Tensor]:
        """``steps`` autoregressive value steps -> (B, U, O) and lengths (B,) (see Seq2SeqNet)."""
        if self.config.target_kind != "values":
            raise ConfigError(
                "generate_values: this model's targets are tokens; use generate_tokens"
            )
        B = static.shape[0]
        state = self.initial_step_state(static)
        prev = self.start_input(B, static.device)
        lengths = torch.full((B,), steps, dtype=torch.long, device=static.device)
        done = torch.zeros(B, dtype=torch.bool, device=static.device)
        outs = []
        for u in range(steps):
            out, stop, state = self.step(prev, state)
            outs.append(out)
            if stop_at_end:
                ends = (torch.sigmoid(stop) > 0.5) & ~done
                lengths = torch.where(ends, torch.full_like(lengths, u + 1), lengths)
                done = done | ends
                if bool(done.all()):
                    break
            prev = out
        # U x (B, O) -> (B, U, O)
        return torch.stack(outs, 1), lengths
