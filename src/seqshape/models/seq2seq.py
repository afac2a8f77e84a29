"""Many-to-many, seq2seq: a source sequence -> a target sequence of another length and kind.

Sources and targets are each either tokens (ids, a vocabulary of V) or values (F / O features per
step), so tokens -> tokens (grapheme -> phoneme, translation), values -> values with F != O and
S != U, values -> tokens and tokens -> values all go through the same model:

    src (B, S) ids | (B, S, F) values, src_lengths (B,)
      -> [embedding (B, S, E)] -> SequenceEncoder (bi)LSTM
           keys (B, S, D·H) zero on padding, final states (L·D, B, H) at each true end
      -> bridge: per layer, the D directions' final states side by side (L, B, D·H), and a learned
           Linear + tanh to the decoder size H_d when D·H != H_d -> decoder initial state (L, B, H_d)
    decoder, one unidirectional LSTM (a SequenceEncoder with D=1):
      input y_{u-1}: [embedding of the previous token (E)] | [previous value vector (O)], with
           BOS / a learned start vector at u = 0
      teacher forcing: one pass over the shifted target (B, U, ·) -> h (B, U, H_d)
      inference: `step` per target step with the carried (h, c) -> h (B, H_d); the same weights
      attention (none | additive | general | dot) of h_u over the keys, masked on source padding
           -> context (B, U, D·H), weights (B, U, S)
      h~_u = tanh(W_c [h_u; context_u])  (no attention: h~_u = h_u)
      out  = W_o h~_u -> logits (B, U, V) | values (B, U, O); values also get a stop logit (B, U)
           (the probability that step u is the last), so a value sequence can end by itself.

The decoder's LSTM input does not depend on the attention (Luong-style attention after the LSTM, no
input feeding), so teacher-forced training is one LSTM pass over the whole target and the step-by-step
inference path gives the same numbers when fed the same previous outputs (tested <= 1e-5).
Decoding of tokens uses `seqshape.models.search` (greedy and batched beam search) through
`log_prob_step`, whose state keeps the batch on dim 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as Fn

from ..data.vocab import BOS_ID, EOS_ID, PAD_ID
from ..errors import ConfigError, ShapeError
from ..shapes import check_shape
from .attention import KINDS as ATTENTION_KINDS
from .attention import Attention
from .encoder import EncoderConfig, SequenceEncoder, State
from .search import beam_search, greedy_decode

ATTENTIONS = ("none", *ATTENTION_KINDS)


@dataclass(frozen=True, kw_only=True)
class Seq2SeqConfig:
    """Exactly one of ``source_vocab_size`` (tokens) / ``source_features`` (values) is > 0, and
    exactly one of ``target_vocab_size`` / ``target_features``. Vocabulary sizes count the four
    specials (PAD, BOS, EOS, UNK)."""

    source_vocab_size: int = 0  # V_s
    source_features: int = 0  # F
    target_vocab_size: int = 0  # V_t
    target_features: int = 0  # O
    embedding_size: int = 64  # E
    hidden_size: int = 128  # H (encoder, per direction)
    num_layers: int = 1  # L (encoder and decoder)
    bidirectional: bool = True
    decoder_hidden_size: int = 0  # H_d; 0 means D·H (the directions side by side, no bridge)
    dropout: float = 0.0
    cell: str = "lstm"
    attention: str = "general"
    attention_size: int = 0  # additive only; 0 means the key size

    def __post_init__(self) -> None:
        for side, vocab, feats in (
            ("source", self.source_vocab_size, self.source_features),
            ("target", self.target_vocab_size, self.target_features),
        ):
            for name, v in ((f"{side}_vocab_size", vocab), (f"{side}_features", feats)):
                if not isinstance(v, int) or v < 0:
                    raise ConfigError(f"{name}: expected an integer >= 0, got {v!r}")
            if (vocab > 0) == (feats > 0):
                raise ConfigError(
                    f"{side}: expected exactly one of {side}_vocab_size (tokens) and "
                    f"{side}_features (values) to be > 0, got {vocab} and {feats}"
                )
            if 0 < vocab <= EOS_ID + 1:
                raise ConfigError(
                    f"{side}_vocab_size: expected more than the 4 special tokens, got {vocab}"
                )
        for name in ("embedding_size", "decoder_hidden_size", "attention_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ConfigError(f"{name}: expected an integer >= 0, got {v!r}")
        if self.embedding_size == 0 and (self.source_vocab_size or self.target_vocab_size):
            raise ConfigError("embedding_size: expected a positive integer for token sequences")
        if self.attention not in ATTENTIONS:
            raise ConfigError(
                f"attention: expected one of {', '.join(ATTENTIONS)}, got {self.attention!r}"
            )
        if self.attention_size and self.attention != "additive":
            raise ConfigError(
                f"attention_size: only used by attention 'additive', got {self.attention_size} "
                f"with {self.attention!r}"
            )
        if self.attention == "dot" and self.decoder_size != self.key_size:
            raise ConfigError(
                f"attention 'dot': expected decoder_hidden_size == D·H = {self.key_size}, got "
                f"{self.decoder_size} — use 'general' or 'additive' for different sizes"
            )
        self.encoder_config()  # validates hidden_size, num_layers, dropout, cell

    @property
    def source_kind(self) -> str:
        return "tokens" if self.source_vocab_size else "values"

    @property
    def target_kind(self) -> str:
        return "tokens" if self.target_vocab_size else "values"

    @property
    def key_size(self) -> int:
        """D·H: the width of the encoder outputs the attention reads."""
        return self.hidden_size * (2 if self.bidirectional else 1)

    @property
    def decoder_size(self) -> int:
        """H_d."""
        return self.decoder_hidden_size or self.key_size

    @property
    def output_size(self) -> int:
        """V_t or O."""
        return self.target_vocab_size or self.target_features

    def encoder_config(self) -> EncoderConfig:
        return EncoderConfig(
            input_size=self.embedding_size if self.source_vocab_size else self.source_features,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
            cell=self.cell,
        )

    def decoder_config(self) -> EncoderConfig:
        return EncoderConfig(
            input_size=self.embedding_size if self.target_vocab_size else self.target_features,
            hidden_size=self.decoder_size,
            num_layers=self.num_layers,
            bidirectional=False,
            dropout=self.dropout,
            cell=self.cell,
        )

    def to_dict(self) -> dict:
        return asdict(self)


class Seq2SeqOutput(NamedTuple):
    outputs: Tensor  # (B, U, V) logits | (B, U, O) values
    stop: Tensor | None  # (B, U) stop logits (values targets), else None
    attention: Tensor | None  # (B, U, S) weights, zero on source padding; None without attention


class Memory(NamedTuple):
    """What the decoder reads from the source, batch first."""

    keys: Tensor  # (B, S, D·H), zero on padding
    projected: Tensor | None  # (B, S, A) the keys' part of the attention score, computed once
    mask: Tensor  # (B, S) bool, True on valid source steps
    state: State  # decoder initial state, each (L, B, H_d)


# -- target-side helpers shared with the one-to-many generator --------------------------------
def shift_right(target: Tensor, start: Tensor | int) -> Tensor:
    """Decoder inputs for teacher forcing: the target delayed by one step, ``start`` first.

    Tokens: (B, U) ids -> (B, U) ``[BOS, y_0, .., y_{U-2}]``; values: (B, U, O) with ``start`` (O,)
    -> (B, U, O) ``[start, y_0, .., y_{U-2}]``.
    """
    if target.dim() == 2:
        # (B, U) -> (B, 1) BOS column + (B, U-1)
        first = torch.full_like(target[:, :1], int(start))
    else:
        # (O,) -> (B, 1, O)
        first = start.to(target.dtype).expand(target.shape[0], 1, target.shape[-1])
    return torch.cat([first, target[:, :-1]], dim=1)


def sequence_loss(
    outputs: Tensor,
    stop: Tensor | None,
    target: Tensor,
    lengths: Tensor,
    *,
    label_smoothing: float = 0.0,
    stop_weight: float = 1.0,
) -> Tensor:
    """Mean loss over the valid target steps; padding never counts.

    Tokens: cross-entropy of logits (B, U, V) against ids (B, U) (PAD ignored, optional label
    smoothing). Values: mean squared error of (B, U, O) against (B, U, O) on steps < length, plus
    ``stop_weight`` x the binary cross-entropy of the stop logits (B, U) (1 on each last step).
    """
    if target.dim() == 2:
        # (B, U, V) -> (B·U, V) against (B·U,)
        return Fn.cross_entropy(
            outputs.reshape(-1, outputs.shape[-1]),
            target.reshape(-1),
            ignore_index=PAD_ID,
            label_smoothing=label_smoothing,
        )
    B, U = target.shape[:2]
    steps = torch.arange(U, device=target.device)
    # (B, U): True on valid steps
    valid = steps[None, :] < lengths[:, None].to(target.device)
    n = valid.sum().clamp(min=1)
    # (B, U, O) -> (B, U): squared error per step, averaged over O, summed over valid steps
    mse = ((outputs - target) ** 2).mean(-1).masked_fill(~valid, 0.0).sum() / n
    if stop is None or stop_weight == 0:
        return mse
    # (B, U): 1.0 on each sequence's last step
    is_last = (steps[None, :] == (lengths[:, None].to(target.device) - 1)).to(stop.dtype)
    bce = Fn.binary_cross_entropy_with_logits(stop, is_last, reduction="none")
    return mse + stop_weight * bce.masked_fill(~valid, 0.0).sum() / n


def _check_target(target: Tensor, config_kind: str, size: int, batch: int) -> None:
    if config_kind == "tokens":
        check_shape(target, "B U", name="target", known={"B": batch})
        if target.dtype != torch.long:
            raise ShapeError(f"target: expected token ids (torch.long), got {target.dtype}")
    else:
        check_shape(target, "B U O", name="target", known={"B": batch, "O": size})


class Seq2SeqNet(nn.Module):
    """Encoder, bridge, attentive decoder; see the module docstring for the shapes."""

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.source_embedding = (
            nn.Embedding(c.source_vocab_size, c.embedding_size, padding_idx=PAD_ID)
            if c.source_vocab_size
            else None
        )
        self.encoder = SequenceEncoder(c.encoder_config())
        self.bridge = (
            nn.Linear(c.key_size, c.decoder_size) if c.key_size != c.decoder_size else None
        )
        if c.target_vocab_size:
            self.target_embedding = nn.Embedding(
                c.target_vocab_size, c.embedding_size, padding_idx=PAD_ID
            )
            self.start = None
        else:
            self.target_embedding = None
            # (O,): the decoder's input before the first value step, learned
            self.start = nn.Parameter(torch.zeros(c.target_features))
        self.decoder = SequenceEncoder(c.decoder_config())
        if c.attention == "none":
            self.attention = None
            self.combine = None
        else:
            self.attention = Attention(
                c.decoder_size, c.key_size, c.attention, c.attention_size or None
            )
            self.combine = nn.Linear(c.decoder_size + c.key_size, c.decoder_size)
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.decoder_size, c.output_size)
        self.stop_head = nn.Linear(c.decoder_size, 1) if c.target_features else None

    # -- the source side --------------------------------------------------------------------
    def _source_inputs(self, src: Tensor) -> Tensor:
        c = self.config
        if self.source_embedding is not None:
            check_shape(src, "B S", name="src")
            if src.dtype != torch.long:
                raise ShapeError(f"src: expected token ids (torch.long), got {src.dtype}")
            # (B, S) -> (B, S, E)
            return self.dropout(self.source_embedding(src))
        check_shape(src, "B S F", name="src", known={"F": c.source_features})
        return src

    def encode(self, src: Tensor, src_lengths: Tensor | None = None) -> Memory:
        """Read the source once: keys, their attention projection, mask, decoder initial state."""
        c = self.config
        x = self._source_inputs(src)
        enc = self.encoder(x, src_lengths, need_state=True)
        state = []
        for s in enc.state:
            # (L·D, B, H) -> (L, D, B, H) -> (L, B, D, H) -> (L, B, D·H): directions side by side
            s = s.view(c.num_layers, -1, s.shape[1], s.shape[2]).permute(0, 2, 1, 3)
            s = s.reshape(c.num_layers, s.shape[1], -1)
            if self.bridge is not None:
                # (L, B, D·H) -> (L, B, H_d)
                s = torch.tanh(self.bridge(s))
            state.append(s.contiguous())
        projected = None
        if self.attention is not None:
            # (B, S, D·H) -> (B, S, A)
            projected = self.attention.project_keys(enc.outputs)
        return Memory(keys=enc.outputs, projected=projected, mask=enc.mask, state=tuple(state))

    # -- the target side ----------------------------------------------------------------------
    def _decoder_inputs(self, prev: Tensor) -> Tensor:
        """Previous outputs -> decoder LSTM inputs: ids (B, [U]) -> (B, [U], E); values as they are."""
        if self.target_embedding is not None:
            return self.dropout(self.target_embedding(prev))
        return prev

    def _readout(self, h: Tensor, memory: Memory) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Decoder outputs h (B, [U,] H_d) -> (outputs, stop logits, attention weights)."""
        weights = None
        if self.attention is not None:
            # (B, [U,] H_d) over (B, S, D·H) -> context (B, [U,] D·H), weights (B, [U,] S)
            context, weights = self.attention(
                h, memory.keys, memory.mask, projected=memory.projected
            )
            # (B, [U,] H_d + D·H) -> (B, [U,] H_d)
            h = torch.tanh(self.combine(torch.cat([h, context], dim=-1)))
        h = self.dropout(h)
        # (B, [U,] H_d) -> (B, [U,] V | O)
        out = self.head(h)
        stop = self.stop_head(h).squeeze(-1) if self.stop_head is not None else None
        return out, stop, weights

    def start_input(self, batch: int, device=None) -> Tensor:
        """The first decoder input: BOS ids (B,) or the learned start vector (B, O)."""
        if self.start is None:
            return torch.full((batch,), BOS_ID, dtype=torch.long, device=device)
        # (O,) -> (B, O)
        return self.start.unsqueeze(0).expand(batch, -1)

    def forward(
        self,
        src: Tensor,
        src_lengths: Tensor | None,
        target: Tensor,
        *,
        teacher_forcing: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Seq2SeqOutput:
        """Teacher forcing: predict every target step from the true previous ones, in one pass.

        ``target`` is what the decoder must produce: ids (B, U) ending in EOS then PAD, or values
        (B, U, O). Returns outputs aligned with it (outputs[:, u] predicts target[:, u]). With
        ``teacher_forcing`` < 1, scheduled sampling (`decode_sampled`) instead; both go through
        here so that a DistributedDataParallel wrapper sees every training pass.
        """
        memory = self.encode(src, src_lengths)
        if teacher_forcing < 1.0:
            return self.decode_sampled(memory, target, teacher_forcing, generator)
        return self.decode_teacher_forced(memory, target)

    def decode_teacher_forced(self, memory: Memory, target: Tensor) -> Seq2SeqOutput:
        c = self.config
        _check_target(target, c.target_kind, c.target_features, memory.keys.shape[0])
        start = BOS_ID if self.start is None else self.start
        # (B, U[, O]) -> (B, U, E | O): the previous step's true output at every step
        inputs = self._decoder_inputs(shift_right(target, start))
        # one LSTM pass from the bridged state (all rows have length U: the "equal" path)
        dec = self.decoder(inputs, None, memory.state)
        out, stop, weights = self._readout(dec.outputs, memory)
        return Seq2SeqOutput(outputs=out, stop=stop, attention=weights)

    def decode_sampled(
        self, memory: Memory, target: Tensor, teacher_forcing: float, generator=None
    ) -> Seq2SeqOutput:
        """Scheduled sampling: step by step, feeding the true previous output with probability
        ``teacher_forcing`` and the model's own (argmax / predicted value, no gradient) otherwise."""
        c = self.config
        B = memory.keys.shape[0]
        _check_target(target, c.target_kind, c.target_features, B)
        prev = self.start_input(B, target.device)
        state = memory.state
        outs, stops, attns = [], [], []
        for u in range(target.shape[1]):
            h, state = self.decoder.step(self._decoder_inputs(prev), state)
            out, stop, weights = self._readout(h, memory)
            outs.append(out)
            stops.append(stop)
            attns.append(weights)
            own = out.argmax(-1) if c.target_kind == "tokens" else out.detach()
            # (B,): True where the true previous output is fed
            use_true = torch.rand(B, generator=generator, device=target.device) < teacher_forcing
            if c.target_kind == "tokens":
                prev = torch.where(use_true, target[:, u], own)
            else:
                prev = torch.where(use_true[:, None], target[:, u], own)
        # U x (B, ·) -> (B, U, ·)
        return Seq2SeqOutput(
            outputs=torch.stack(outs, 1),
            stop=torch.stack(stops, 1) if stops[0] is not None else None,
            attention=torch.stack(attns, 1) if attns[0] is not None else None,
        )

    # -- one step at a time -------------------------------------------------------------------
    def initial_step_state(self, memory: Memory) -> dict:
        """The decoding state with the batch on dim 0 (what `seqshape.models.search` expects)."""
        state = {
            # (L, B, H_d) -> (B, L, H_d)
            "rnn": tuple(s.transpose(0, 1) for s in memory.state),
            "keys": memory.keys,
            "mask": memory.mask,
        }
        if memory.projected is not None:
            state["projected"] = memory.projected
        return state

    def step(self, prev: Tensor, state: dict) -> tuple[Tensor, Tensor | None, Tensor | None, dict]:
        """One decoder step: previous ids (B,) or values (B, O) -> outputs (B, V | O), stop logit
        (B,) or None, attention (B, S) or None, and the new state."""
        memory = Memory(
            keys=state["keys"], projected=state.get("projected"), mask=state["mask"], state=()
        )
        # (B, L, H_d) -> (L, B, H_d)
        rnn = tuple(s.transpose(0, 1).contiguous() for s in state["rnn"])
        h, rnn = self.decoder.step(self._decoder_inputs(prev), rnn)
        out, stop, weights = self._readout(h, memory)
        new_state = dict(state)
        new_state["rnn"] = tuple(s.transpose(0, 1) for s in rnn)
        return out, stop, weights, new_state

    def log_prob_step(self, prev: Tensor, state: dict) -> tuple[Tensor, dict]:
        """The step function of `greedy_decode` / `beam_search`: ids (B,) -> log-probs (B, V)."""
        out, _, _, state = self.step(prev, state)
        return torch.log_softmax(out, dim=-1), state

    # -- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def generate_tokens(
        self,
        src: Tensor,
        src_lengths: Tensor | None,
        *,
        max_len: int,
        beam_size: int = 1,
        length_penalty: float = 1.0,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """Greedy (beam_size 1) or beam search. Returns tokens (B, U) ending with EOS then PAD,
        lengths (B,) counting the EOS, scores (B,) summed log-probs, attention (B, U, S) or None.

        The attention weights are those of a teacher-forced pass over the decoded tokens, which
        equal the weights seen while decoding (the two paths agree)."""
        if self.config.target_kind != "tokens":
            raise ConfigError(
                "generate_tokens: this model's targets are values; use generate_values"
            )
        memory = self.encode(src, src_lengths)
        B = memory.keys.shape[0]
        state = self.initial_step_state(memory)
        if beam_size == 1:
            tokens, lengths, scores = greedy_decode(
                self.log_prob_step, state, B, BOS_ID, EOS_ID, max_len, pad_id=PAD_ID
            )
        else:
            tokens, lengths, scores = beam_search(
                self.log_prob_step,
                state,
                B,
                BOS_ID,
                EOS_ID,
                max_len,
                beam_size,
                length_penalty,
                pad_id=PAD_ID,
            )
        attention = None
        if self.attention is not None:
            attention = self.decode_teacher_forced(memory, tokens).attention
        return tokens, lengths, scores, attention

    @torch.no_grad()
    def generate_values(
        self,
        src: Tensor,
        src_lengths: Tensor | None,
        *,
        steps: int,
        stop_at_end: bool = True,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Autoregressive values: each predicted (B, O) is the next decoder input.

        Runs ``steps`` steps; with ``stop_at_end`` a row's length ends at the first step whose stop
        probability exceeds 0.5 (else every length is ``steps``). Returns values (B, U, O), lengths
        (B,), attention (B, U, S) or None.
        """
        if self.config.target_kind != "values":
            raise ConfigError(
                "generate_values: this model's targets are tokens; use generate_tokens"
            )
        memory = self.encode(src, src_lengths)
        B = memory.keys.shape[0]
        state = self.initial_step_state(memory)
        prev = self.start_input(B, memory.keys.device)
        outs, attns = [], []
        lengths = torch.full((B,), steps, dtype=torch.long, device=memory.keys.device)
        done = torch.zeros(B, dtype=torch.bool, device=memory.keys.device)
        for u in range(steps):
            out, stop, weights, state = self.step(prev, state)
            outs.append(out)
            attns.append(weights)
            if stop_at_end:
                ends = (torch.sigmoid(stop) > 0.5) & ~done
                lengths = torch.where(ends, torch.full_like(lengths, u + 1), lengths)
                done = done | ends
                if bool(done.all()):
                    break
            prev = out
        # U x (B, O) -> (B, U, O)
        values = torch.stack(outs, 1)
        attention = torch.stack(attns, 1) if attns[0] is not None else None
        return values, lengths, attention
