"""`explain` for sequence-to-sequence models: `Seq2SeqNet` (values or token ids, with or without
attention), teacher forcing and step-by-step decoding."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ShapeError
from .batches import _padded, _target, _tokens
from .core import (
    Explainer,
    ExplainOptions,
    Trace,
    _decoder_steps,
    _hooks,
    _lazy,
    _rows,
    _state_layout_note,
    _step_calls,
    register,
)


# ---- seq2seq -----------------------------------------------------------------------------------
def _s2s_build(o: ExplainOptions) -> nn.Module:
    from ..models.seq2seq import Seq2SeqConfig, Seq2SeqNet

    V = o.vocab
    cfg = Seq2SeqConfig(
        source_vocab_size=V,
        source_features=0 if V else (o.input_size or 5),
        target_vocab_size=V,
        target_features=0 if V else o.output_size,
        embedding_size=o.hidden,
        hidden_size=o.hidden,
        num_layers=o.layers,
        bidirectional=o.bidirectional,
    )
    return Seq2SeqNet(cfg)


def _s2s_example(net: nn.Module, o: ExplainOptions) -> tuple:
    c = net.config
    lengths = o.seq_lengths()
    if c.source_kind == "tokens":
        src = _tokens(lengths, o.T, c.source_vocab_size, seed=0)
    else:
        src = _padded(lengths, o.T, c.source_features)
    target = _target(c.target_kind, o.B, o.target_steps, c.output_size)
    return src, torch.as_tensor(lengths), target


def _s2s_read(net: nn.Module, batch: Any, scaler: Any) -> tuple:
    c = net.config
    if not isinstance(batch, tuple) or len(batch) not in (2, 3):
        raise ShapeError(
            "example_batch: expected (src, src_lengths) or (src, src_lengths, target), got "
            f"{type(batch).__name__}"
        )
    src = torch.as_tensor(batch[0])
    src = src.long() if c.source_kind == "tokens" else src.float()
    lengths = torch.as_tensor(batch[1], dtype=torch.long) if batch[1] is not None else None
    if lengths is None:
        lengths = torch.full((src.shape[0],), src.shape[1], dtype=torch.long)
    if len(batch) == 3:
        target = torch.as_tensor(batch[2])
        target = target.long() if c.target_kind == "tokens" else target.float()
    else:
        target = _target(c.target_kind, src.shape[0], ExplainOptions().target_steps, c.output_size)
    return src, lengths, target


def _s2s_sizes(net: nn.Module, b: tuple) -> dict[str, int]:
    c = net.config
    src, _, target = b
    sizes = {"B": int(src.shape[0]), "S": int(src.shape[1])}
    if c.source_kind == "tokens":
        sizes["V_s"] = c.source_vocab_size
    else:
        sizes["F"] = c.source_features
    if c.source_kind == "tokens" or c.target_kind == "tokens":
        sizes["E"] = c.embedding_size
    sizes.update({"H": c.hidden_size, "L": c.num_layers, "D": 2 if c.bidirectional else 1})
    sizes.update({"H_d": c.decoder_size, "U": int(target.shape[1])})
    sizes["V" if c.target_kind == "tokens" else "O"] = c.output_size
    return sizes


def _s2s_trace(net: nn.Module, batch: tuple, t: Trace) -> None:
    c = net.config
    src, lengths, target = batch
    tokens_in, tokens_out = c.source_kind == "tokens", c.target_kind == "tokens"
    Y = "V" if tokens_out else "O"
    with _hooks(
        source_embedding=net.source_embedding,
        encoder=net.encoder,
        decoder=net.decoder,
        attention=net.attention,
        combine=net.combine,
        stop_head=net.stop_head,
    ) as calls:
        out = net(src, lengths, target)
    if tokens_in:
        t.add("src", src, "B S", "source token ids, PAD (0) after each length")
    else:
        t.add("src", src, "B S F", "the padded source values, batch first")
    t.add("src_lengths", lengths, "B", f"[{_rows(lengths)}]: each source's true length")
    if tokens_in:
        emb = calls["source_embedding"][0][1]
        t.add("source embedding", emb, "B S E", "one vector per token", ("source_embedding",))
    enc = calls["encoder"][0][1]
    pad = int((~enc.mask).sum())
    t.add(
        "keys (encoder outputs)",
        enc.outputs,
        "B S D·H",
        f"the encoder's last layer at every source step, zero on the {pad} padded step(s): "
        "what the attention reads",
        ("encoder",),
    )
    t.add(
        "encoder h_n",
        enc.state[0],
        "L·D B H",
        "final states at each TRUE end; "
        + _state_layout_note(c.num_layers, 2 if c.bidirectional else 1),
    )
    args, dec = calls["decoder"][0]
    init = args[2]
    bridge = "then a Linear + tanh to H_d" if net.bridge is not None else "(D·H = H_d: no bridge)"
    t.add(
        "decoder initial h",
        init[0],
        "L B H_d",
        f"per layer, the D directions' final states side by side (D·H), {bridge}",
        ("bridge",),
    )
    if tokens_out:
        t.add("target", target, "B U", "target ids (ending in EOS then PAD in real data)")
    else:
        t.add("target", target, "B U O", "target value vectors")
    first = "BOS" if tokens_out else "a learned start vector"
    t.add(
        "decoder inputs",
        args[0],
        "B U E" if tokens_out else "B U O",
        f"teacher forcing: the target shifted right, [{first}, y_1 .. y_U-1], one LSTM pass",
        ("target_embedding",) if tokens_out else ("start",),
    )
    t.add(
        "decoder outputs",
        dec.outputs,
        "B U H_d",
        "the decoder's output per target step",
        ("decoder",),
    )
    if net.attention is not None:
        context, weights = calls["attention"][0][1]
        t.add(
            "attention weights",
            weights,
            "B U S",
            f"'{c.attention}' attention: for each target step, one weight per source step; "
            "exactly 0 on source padding, each row sums to 1",
            ("attention",),
        )
        t.add("context", context, "B U D·H", "the weighted sum of the keys per target step")
        t.add(
            "combined",
            calls["combine"][0][1],
            "B U H_d",
            "W_c [h; context] (tanh follows): what the head reads",
            ("combine",),
        )
    t.add(
        "outputs",
        out.outputs,
        f"B U {Y}",
        "logits over the target vocabulary per step" if tokens_out else "the O values per step",
        ("head",),
    )
    if out.stop is not None:
        t.add(
            "stop logits",
            out.stop,
            "B U",
            "per step: is this the last one? (values end by themselves)",
            ("stop_head",),
        )
    U = int(target.shape[1])
    with _step_calls(net.decoder) as steps:
        if tokens_out:
            net.generate_tokens(src, lengths, max_len=U)
        else:
            net.generate_values(src, lengths, steps=U, stop_at_end=False)
    _decoder_steps(
        t,
        steps,
        "E" if tokens_out else "O",
        "H_d",
        "inference: the previous prediction"
        + (" (its embedding)" if tokens_out else "")
        + " is the next decoder input; the source is encoded once",
    )
    t.notes.append(
        f"inference decodes step by step: {len(steps)} decoder cell steps for U={U}; teacher "
        "forcing and step-by-step decoding fed the same previous outputs agree"
    )


register(
    Explainer(
        mode="seq2seq",
        kind="seq2seq",
        summary="seq2seq: src (B, S, F) or ids (B, S) -> (B, U, O) or ids (B, U), S != U",
        net_class=_lazy("seq2seq", "Seq2SeqNet"),
        config_class=_lazy("seq2seq", "Seq2SeqConfig"),
        build=_s2s_build,
        example=_s2s_example,
        read=_s2s_read,
        trace=_s2s_trace,
        train_forward=lambda net, b: net(b[0], b[1], b[2]),
        sizes=_s2s_sizes,
        lengths=lambda b: b[1],
        fields=("input_size", "hidden", "layers", "bidirectional", "output_size", "vocab"),
    )
)
