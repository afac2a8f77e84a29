"""ONNX graphs of the seq2seq model (kind "seq2seq"): the encoder and one decoder step
(`Seq2SeqNet.step`); their inputs and outputs are documented in `seqshape.infer.export`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..artifacts import ModelFiles, build_net, config_from_dict
from ..data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from ..errors import ArtifactError
from ..models.encoder import CELLS
from ..models.seq2seq import Memory, Seq2SeqConfig, Seq2SeqNet
from .onnx_graphs import (
    OnnxExport,
    OnnxGraph,
    TensorSpec,
    _state_specs,
    example_batch,
    packed_encode,
)


# -- seq2seq ------------------------------------------------------------------------------------
class Seq2SeqEncoderGraph(nn.Module):
    """(src (B, S) ids | (B, S, F) values, src_lengths (B,)) -> (keys (B, S, D·H)[, projected
    (B, S, A)], mask (B, S) bool, h (L, B, H_d)[, c (L, B, H_d)]): `Seq2SeqNet.encode` restated."""

    def __init__(self, net: Seq2SeqNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, ...]:
        net = self.net
        c = net.config
        # (B, S) -> (B, S, E) (dropout: off in eval), or the values as they are
        x = net.source_embedding(src) if net.source_embedding is not None else src
        keys, enc_state = packed_encode(net.encoder, x, src_lengths)
        mask = torch.arange(src.shape[1])[None, :] < src_lengths[:, None]
        state = []
        for s in enc_state:
            # (L·D, B, H) -> (L, D, B, H) -> (L, B, D, H) -> (L, B, D·H): directions side by side
            s = s.view(c.num_layers, -1, s.shape[1], s.shape[2]).permute(0, 2, 1, 3)
            s = s.reshape(c.num_layers, s.shape[1], -1)
            if net.bridge is not None:
                # (L, B, D·H) -> (L, B, H_d)
                s = torch.tanh(net.bridge(s))
            state.append(s)
        projected = ()
        if _has_projection(c):
            # (B, S, D·H) -> (B, S, A): the keys' part of the score, computed once
            projected = (net.attention.project_keys(keys),)
        return (keys, *projected, mask, *state)


class Seq2SeqStepGraph(nn.Module):
    """(prev (B,) ids | (B, O) values, h[, c][, keys, projected, mask]) -> (logits (B, V) |
    values (B, O) and stop (B,), h_next[, c_next][, attention (B, S)]): `Seq2SeqNet.step`."""

    def __init__(self, net: Seq2SeqNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        net = self.net
        c = net.config
        n_state = CELLS[c.cell].n_states
        prev, rnn, rest = inputs[0], tuple(inputs[1 : 1 + n_state]), list(inputs[1 + n_state :])
        memory = None
        if net.attention is not None:
            keys = rest.pop(0)
            projected = rest.pop(0) if _has_projection(c) else keys
            memory = Memory(keys=keys, projected=projected, mask=rest.pop(0), state=())
        # (B,) ids -> (B, E) | (B, O) values, one cell step with the decoder's own weights
        h, rnn = net.decoder.step(net._decoder_inputs(prev), rnn)
        out, stop, weights = net._readout(h, memory)
        outs = (out,) if stop is None else (out, stop)
        return (*outs, *rnn, *((weights,) if weights is not None else ()))


def _has_projection(c: Seq2SeqConfig) -> bool:
    """Whether the attention's key projection is a separate tensor ('dot' reads the keys)."""
    return c.attention in ("additive", "general")


def _export_seq2seq(files: ModelFiles) -> OnnxExport:
    config = config_from_dict(Seq2SeqConfig, files.config, files.path / "config.json")
    net = build_net(Seq2SeqNet, config, files)
    net.eval()
    c = config
    L, Hd, DH = c.num_layers, c.decoder_size, c.key_size
    lengths = [9, 3, 6, 1]
    B, S = len(lengths), max(lengths)
    g = torch.Generator().manual_seed(5)
    lens = torch.tensor(lengths)
    if c.source_kind == "tokens":
        # (B, S) ids in [4, V), PAD after each end
        src = torch.randint(4, c.source_vocab_size, (B, S), generator=g)
        src = src.masked_fill(torch.arange(S)[None, :] >= lens[:, None], PAD_ID)
        src_spec = TensorSpec(
            name="src", shape=("B", "S"), dtype="int64", doc="source token ids, PAD after each end"
        )
    else:
        src = example_batch(c.source_features, lengths, seed=6)[0]
        src_spec = TensorSpec(
            name="src",
            shape=("B", "S", c.source_features),
            dtype="float32",
            doc="scaled source values, zero-padded after each end",
        )
    enc_module = Seq2SeqEncoderGraph(net).eval()
    with torch.no_grad():
        memory = enc_module(src, lens)
    memory_specs: tuple[TensorSpec, ...] = ()
    if net.attention is not None:
        memory_specs += (
            TensorSpec(
                name="keys",
                shape=("B", "S", DH),
                dtype="float32",
                doc="encoder outputs, zero on padding",
            ),
        )
        if _has_projection(c):
            A = int(memory[1].shape[-1])
            memory_specs += (
                TensorSpec(
                    name="projected",
                    shape=("B", "S", A),
                    dtype="float32",
                    doc="the keys' part of the attention score",
                ),
            )
        memory_specs += (
            TensorSpec(
                name="mask", shape=("B", "S"), dtype="bool", doc="True on valid source steps"
            ),
        )
    # the encoder always returns its keys and mask (the attention or not: they are cheap)
    enc_outputs = (
        memory_specs
        if net.attention is not None
        else (
            TensorSpec(
                name="keys",
                shape=("B", "S", DH),
                dtype="float32",
                doc="encoder outputs, zero on padding",
            ),
            TensorSpec(
                name="mask", shape=("B", "S"), dtype="bool", doc="True on valid source steps"
            ),
        )
    )
    enc_outputs += _state_specs(L, Hd, c.cell)
    n_mem = len(memory) - CELLS[c.cell].n_states
    state0 = memory[n_mem:]
    if c.target_kind == "tokens":
        prev = torch.randint(4, c.target_vocab_size, (B,), generator=g)
        prev_spec = TensorSpec(
            name="prev", shape=("B",), dtype="int64", doc="previous token ids (BOS first)"
        )
        out_specs: tuple[TensorSpec, ...] = (
            TensorSpec(
                name="logits", shape=("B", c.target_vocab_size), dtype="float32", doc="next token"
            ),
        )
    else:
        prev = torch.randn(B, c.target_features, generator=g)
        prev_spec = TensorSpec(
            name="prev",
            shape=("B", c.target_features),
            dtype="float32",
            doc="previous values, scaled (the learned start vector first: metadata 'start')",
        )
        out_specs = (
            TensorSpec(
                name="values",
                shape=("B", c.target_features),
                dtype="float32",
                doc="next values, scaled",
            ),
            TensorSpec(
                name="stop", shape=("B",), dtype="float32", doc="logit that this step is the last"
            ),
        )
    out_specs += _state_specs(L, Hd, c.cell, "_next")
    if net.attention is not None:
        out_specs += (
            TensorSpec(
                name="attention", shape=("B", "S"), dtype="float32", doc="weights over the source"
            ),
        )
    step_example = (prev, *state0, *(memory[:n_mem] if net.attention is not None else ()))
    graphs = (
        OnnxGraph(
            part="encoder",
            module=enc_module,
            example=(src, lens),
            inputs=(
                src_spec,
                TensorSpec(name="src_lengths", shape=("B",), dtype="int64", doc="in [1, S]"),
            ),
            outputs=enc_outputs,
        ),
        OnnxGraph(
            part="decoder_step",
            module=Seq2SeqStepGraph(net).eval(),
            example=step_example,
            inputs=(prev_spec, *_state_specs(L, Hd, c.cell), *memory_specs),
            outputs=out_specs,
        ),
    )
    pre = files.preprocessing
    for side, kind in (("source", c.source_kind), ("target", c.target_kind)):
        d = pre.get(side)
        if not isinstance(d, dict) or d.get("kind") != kind:
            raise ArtifactError(
                f"{files.path / 'preprocessing.json'}: {side}: expected a description of its "
                f"{kind} (kind, vocab or scaler, max_length), got {d!r}"[:300]
            )
    start = None if net.start is None else [float(v) for v in net.start.detach()]
    return OnnxExport(
        graphs=graphs,
        metadata={
            "config": c.to_dict(),
            "source": pre.get("source"),
            "target": pre.get("target"),
            "decoding": pre.get("decoding") or {},
            "text": pre.get("text") or {},
            "special_ids": {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID, "unk": UNK_ID},
            "start": start,
        },
    )
