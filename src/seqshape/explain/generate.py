"""`explain` for one-to-many models: `GeneratorNet`, a static vector to a sequence."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..models.encoder import CELLS
from ..shapes import check_shape
from .batches import _as_float, _seed_randn, _target
from .core import (
    Explainer,
    ExplainOptions,
    Trace,
    _decoder_steps,
    _hooks,
    _lazy,
    _step_calls,
    register,
)


# ---- one-to-many -------------------------------------------------------------------------------
def _gen_build(o: ExplainOptions) -> nn.Module:
    from ..models.generator import GeneratorConfig, GeneratorNet

    if o.bidirectional:
        raise ConfigError("--bidirectional: a generator produces steps forward; it has D=1")
    V = o.vocab
    cfg = GeneratorConfig(
        input_size=o.input_size or 5,
        target_vocab_size=V,
        target_features=0 if V else o.output_size,
        embedding_size=o.hidden,
        hidden_size=o.hidden,
        num_layers=o.layers,
    )
    return GeneratorNet(cfg)


def _gen_example(net: nn.Module, o: ExplainOptions) -> tuple:
    if o.lengths is not None or o.steps is not None:
        raise ConfigError(
            "--lengths/--steps: mode generate reads one static vector (B, F) per sequence; it "
            "has no input steps (set the output length with --target-steps)"
        )
    c = net.config
    static = _seed_randn(o.B, c.input_size)
    return static, _target(c.target_kind, o.B, o.target_steps, c.output_size)


def _gen_read(net: nn.Module, batch: Any, scaler: Any) -> tuple:
    c = net.config
    target = None
    if isinstance(batch, tuple):
        batch, target = batch
    static = _as_float(batch, "static")
    check_shape(static, "B F", name="static", known={"F": c.input_size})
    if target is None:
        U = ExplainOptions().target_steps
        target = _target(c.target_kind, static.shape[0], U, c.output_size)
    else:
        target = torch.as_tensor(target)
        target = target.long() if c.target_kind == "tokens" else target.float()
    return static, target


def _gen_sizes(net: nn.Module, b: tuple) -> dict[str, int]:
    c = net.config
    static, target = b
    sizes = {"B": int(static.shape[0]), "F": c.input_size, "U": int(target.shape[1])}
    if c.target_kind == "tokens":
        sizes["E"] = c.embedding_size
    sizes.update({"H": c.hidden_size, "L": c.num_layers})
    sizes["V" if c.target_kind == "tokens" else "O"] = c.output_size
    return sizes


def _gen_trace(net: nn.Module, batch: tuple, t: Trace) -> None:
    c = net.config
    static, target = batch
    tokens = c.target_kind == "tokens"
    Y = "V" if tokens else "O"
    n_states = CELLS[c.cell].n_states
    with _hooks(init=net.init, decoder=net.decoder) as calls:
        out = net(static, target)
    t.add("static", static, "B F", "one fixed-size vector per sequence to generate")
    t.add(
        "init",
        calls["init"][0][1],
        f"B {n_states}·L·H",
        f"a Linear of the static vector: every layer's h_0{' and c_0' if n_states == 2 else ''}",
        ("init",),
    )
    args, dec = calls["decoder"][0]
    t.add("decoder initial h", args[2][0], "L B H", "tanh of it, one row per layer")
    if tokens:
        t.add("target", target, "B U", "target ids (ending in EOS then PAD in real data)")
    else:
        t.add("target", target, "B U O", "target value vectors")
    step_in = "E" if tokens else "O"
    if c.condition_every_step:
        step_in += "+F"
    first = "BOS" if tokens else "a learned start vector"
    t.add(
        "decoder inputs",
        args[0],
        f"B U {step_in}",
        f"teacher forcing: the target shifted right, [{first}, y_1 .. y_U-1]"
        + (", with the static vector at every step" if c.condition_every_step else ""),
        ("embedding",) if tokens else ("start",),
    )
    t.add("decoder outputs", dec.outputs, "B U H", "the decoder's output per step", ("decoder",))
    t.add(
        "outputs",
        out.outputs,
        f"B U {Y}",
        "logits over the vocabulary per step" if tokens else "the O values per step",
        ("head",),
    )
    if out.stop is not None:
        t.add("stop logits", out.stop, "B U", "per step: is this the last one?", ("stop_head",))
    U = int(target.shape[1])
    with _step_calls(net.decoder) as steps:
        if tokens:
            net.generate_tokens(static, max_len=U)
        else:
            net.generate_values(static, steps=U, stop_at_end=False)
    _decoder_steps(
        t,
        steps,
        step_in,
        "H",
        "inference: the previous prediction is the next decoder input",
    )
    t.notes.append(f"generation runs {len(steps)} decoder cell steps for U={U}")


register(
    Explainer(
        mode="generate",
        kind="generator",
        summary="one-to-many: a static vector (B, F) -> a sequence (B, U, O) or ids (B, U)",
        net_class=_lazy("generator", "GeneratorNet"),
        config_class=_lazy("generator", "GeneratorConfig"),
        build=_gen_build,
        example=_gen_example,
        read=_gen_read,
        trace=_gen_trace,
        train_forward=lambda net, b: net(b[0], b[1]),
        sizes=_gen_sizes,
        fields=("input_size", "hidden", "layers", "output_size", "vocab"),
    )
)
