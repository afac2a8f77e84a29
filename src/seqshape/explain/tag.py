"""`explain` for many-to-many aligned models: `TaggerNet`, one label per valid step."""

from __future__ import annotations

from torch import nn

from .batches import _seq_example, _seq_read
from .core import (
    Explainer,
    ExplainOptions,
    Trace,
    _encoder_sizes,
    _hooks,
    _lazy,
    _out_letter,
    _trace_encoder_input,
    register,
)


# ---- many-to-many, aligned ---------------------------------------------------------------------
def _tag_build(o: ExplainOptions) -> nn.Module:
    from ..models.tagger import TaggerConfig, TaggerNet

    cfg = TaggerConfig(
        input_size=o.input_size or 5,
        num_outputs=o.classes,
        hidden_size=o.hidden,
        num_layers=o.layers,
        bidirectional=o.bidirectional,
    )
    return TaggerNet(cfg)


def _tag_trace(net: nn.Module, batch: tuple, t: Trace) -> None:
    x, lengths = batch
    N = _out_letter(net.config)
    with _hooks(encoder=net.encoder, head=net.head) as calls:
        out = net(x, lengths)
    enc = calls["encoder"][0][1]
    _trace_encoder_input(t, x, lengths, enc.mask)
    t.add(
        "outputs",
        enc.outputs,
        "B T D·H",
        "the last layer's output at every step, zero on padding; a backward direction reads each "
        "sequence from its own true end",
        modules=("encoder",),
    )
    pad = int((~enc.mask).sum())
    what = "one score per class" if N == "N" else "O values"
    t.add(
        "logits" if N == "N" else "values",
        out,
        f"B T {N}",
        f"{what} at every step; the {pad} padded step(s) get numbers too, but losses, metrics and "
        "predictions drop them",
        modules=("head",),
    )


register(
    Explainer(
        mode="tag",
        kind="tagger",
        summary="many-to-many aligned: x (B, T, F) -> (B, T, N), one label per valid step",
        net_class=_lazy("tagger", "TaggerNet"),
        config_class=_lazy("tagger", "TaggerConfig"),
        build=_tag_build,
        example=_seq_example,
        read=_seq_read,
        trace=_tag_trace,
        train_forward=lambda net, b: net(b[0], b[1]),
        sizes=lambda net, b: _encoder_sizes(net, b[0], _out_letter(net.config)),
        lengths=lambda b: b[1],
        fields=("input_size", "hidden", "layers", "bidirectional", "classes"),
    )
)
