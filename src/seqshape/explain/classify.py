"""`explain` for many-to-one models: `ClassifierNet` (classify, and regression with O outputs)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .batches import _seq_example, _seq_read
from .core import (
    Explainer,
    ExplainOptions,
    Trace,
    _encoder_sizes,
    _hooks,
    _lazy,
    _max_abs,
    _out_letter,
    _rows,
    _state_layout_note,
    _trace_encoder_input,
    register,
)


# ---- many-to-one -----------------------------------------------------------------------------
def _classify_build(o: ExplainOptions) -> nn.Module:
    from ..models.classifier import ClassifierConfig, ClassifierNet

    cfg = ClassifierConfig(
        input_size=o.input_size or 5,
        num_outputs=o.classes,
        hidden_size=o.hidden,
        num_layers=o.layers,
        bidirectional=o.bidirectional,
        pooling=o.pooling,
    )
    return ClassifierNet(cfg)


def _padded_hn_note(t: Trace, net: nn.Module, x: Tensor, lengths: Tensor, state) -> Tensor | None:
    """h_n read after the padding (the classic mistake), against the true one; returns it."""
    if bool((lengths == x.shape[1]).all()):
        return None
    D = net.encoder.config.directions
    naive = net.encoder(x, None, need_state=True).state[0]
    short = lengths < x.shape[1]
    drift = _max_abs(naive[-D:, short], state[0][-D:, short])
    t.notes.append(
        f"the padded-h_n mistake: nn.LSTM's h_n for this padded batch run without packing is the "
        f"state after the padding; for the {int(short.sum())} shorter sequence(s) its last layer "
        f"differs from the true one by up to {drift:.3g}. seqshape reads each sequence at its "
        "true end instead."
    )
    return naive


def _classify_sizes(net: nn.Module, batch: tuple) -> dict[str, int]:
    """The encoder's letters, with F the model's input features; a conv front-end adds C (its
    channels) and T' (the steps the LSTM takes, ceil(T / stride))."""
    sizes = _encoder_sizes(net, batch[0], _out_letter(net.config))
    c = net.config
    if c.frontend == "conv":
        sizes.update(F=c.input_size, C=c.conv_channels, **{"T'": -(-sizes["T"] // c.stride)})
    if net.kernel_part is not None:
        sizes["R"] = net.kernel_part.n_features
    return sizes


def _classify_trace(net: nn.Module, batch: tuple, t: Trace) -> None:
    from ..models.classifier import valid_mask

    x, lengths = batch
    c = net.config
    ec = net.encoder.config
    N = _out_letter(c)
    with _hooks(encoder=net.encoder, attention=net.attention, head=net.head) as calls:
        logits = net(x, lengths)
    enc = calls["encoder"][0][1]
    _trace_encoder_input(t, x, lengths, valid_mask(lengths, x.shape[1]))
    T = "T"
    if net.frontend is not None:
        T = "T'"
        # (B, T, F) -> (B, T', C): what the LSTM reads
        x, lengths = net.frontend(x, lengths)
        t.add(
            "front-end",
            x,
            "B T' C",
            f"masked Conv1d(F, C, {c.conv_kernel}) + ReLU, max-pool by {c.stride}, masked "
            f"Conv1d(C, C, {c.conv_kernel}) + ReLU; zero on padding",
            modules=("frontend",),
        )
        t.add("lengths'", lengths, "B", f"[{_rows(lengths)}]: ceil(length / {c.stride})")
    path = net.encoder.choose_path(x, lengths, False)
    t.add(
        "outputs",
        enc.outputs,
        f"B {T} D·H",
        f"the last layer's output at every step (directions side by side), zero on padding; "
        f"encoder path '{path}'",
        modules=("encoder",),
    )
    state = net.encoder(x, lengths, need_state=True).state  # exact final states, for display
    t.add(
        "h_n",
        state[0],
        "L·D B H",
        "final hidden states at each TRUE end; " + _state_layout_note(ec.num_layers, ec.directions),
    )
    if len(state) > 1:
        t.add("c_n", state[1], "L·D B H", "final cell states, the same layout as h_n")
    # (L·D, B, H) -> (B, D·H): the last layer's directions side by side
    from_state = torch.cat(list(state[0][-ec.directions :]), dim=-1)
    agree = _max_abs(from_state, enc.last)
    t.add(
        "last",
        enc.last,
        "B D·H",
        f"each sequence's summary at its true end = the last layer of h_n side by side "
        f"(max diff {agree:.1g})",
    )
    summary = "D·H+C" if c.conv_summary else "D·H"
    also = "; the front-end's mean over valid steps beside it" if c.conv_summary else ""
    if c.pooling == "mean":
        # (B, T, D·H) summed over valid steps / lengths -> (B, D·H [+ C])
        pooled = net.pool(*batch)
        t.add("pooled", pooled, f"B {summary}", "mean of the outputs over valid steps" + also)
    elif c.pooling == "attention":
        pooled, weights = calls["attention"][0][1]
        t.add(
            "attention weights",
            weights,
            f"B {T}",
            "one weight per step, exactly 0 on padding; each row sums to 1",
            modules=("attention",),
        )
        t.add("pooled", pooled, "B D·H", "the weighted mean of the outputs")
    else:
        t.notes.append("pooling 'last': the head reads `last`")
    what = (
        "one score per class (softmax -> probabilities)" if N == "N" else "the O predicted values"
    )
    head = calls["head"][0][1]
    if net.kernel_part is None:
        t.add("logits" if N == "N" else "values", head, f"B {N}", what, ("head",))
        assert torch.equal(head, logits)
    else:
        _kernel_trace(net, batch, head, logits, t)
    naive = _padded_hn_note(t, net, x, lengths, state)
    if naive is not None and c.pooling == "last" and not c.conv_summary:
        wrong = net.head(torch.cat(list(naive[-ec.directions :]), dim=-1))
        short = lengths < x.shape[1]
        t.notes.append(
            f"fed to the head, that wrong h_n would move those logits by up to "
            f"{_max_abs(wrong[short], logits[short]):.3g}"
        )


def _kernel_trace(net: nn.Module, batch: tuple, head: Tensor, logits: Tensor, t: Trace) -> None:
    """The kernel part beside the LSTM: its features, its logits and the mixture."""
    kp, w = net.kernel_part, net.config.kernel_weight
    t.add("LSTM logits", head, "B N", "the LSTM part's score per class", ("head",))
    feats = kp.features(*batch)
    t.add(
        "kernel features",
        feats,
        "B R",
        f"share of valid steps where each of 84 fixed kernels, at dilations "
        f"{', '.join(map(str, kp.dilations))}, is above each of its biases (set in closed form "
        "at fit, no gradient)",
        ("kernel_part",),
    )
    kernel = kp(*batch)
    t.add("kernel logits", kernel, "B N", f"ridge scores x temperature {float(kp.temperature):.3g}")
    t.add(
        "logits",
        logits,
        "B N",
        f"log((1 - w) softmax(LSTM) + w softmax(kernel)), w = {w:g} (softmax -> probabilities)",
    )
    assert torch.allclose(net.mix(head, *batch), logits, atol=1e-6)


register(
    Explainer(
        mode="classify",
        kind="classifier",
        summary="many-to-one: x (B, T, F), T varies per sequence -> (B, N) class scores",
        net_class=_lazy("classifier", "ClassifierNet"),
        config_class=_lazy("classifier", "ClassifierConfig"),
        build=_classify_build,
        example=_seq_example,
        read=_seq_read,
        trace=_classify_trace,
        train_forward=lambda net, b: net(b[0], b[1]),
        sizes=_classify_sizes,
        lengths=lambda b: b[1],
        fields=("input_size", "hidden", "layers", "bidirectional", "classes", "pooling"),
    )
)
