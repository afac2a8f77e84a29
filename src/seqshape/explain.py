"""`explain`: what shape goes in, what shape comes out, and why — read off a real forward pass.

``explain(model_or_net, example_batch=None)`` runs the model's own forward pass (no copy of its
logic) on ``example_batch`` or on a dummy batch built from its config, watches the tensors that
cross its sub-modules (forward hooks; `SequenceEncoder.step` calls are counted), and returns an
`Explanation`: one `Stage` per tensor with its name, its shape in the legend's letters and in
numbers, its parameters and one line on what it means; parameter counts per module and in total;
and the memory of one batch's activations. ``str(explanation)`` is the table `seqshape explain`
prints, ``explanation.to_dict()`` its JSON, ``explanation.plot("f.png")`` the picture.

Every recorded shape is checked against its legend letters when it is recorded (``(B, T, D·H)``
must equal the tensor's shape for the sizes in force), so the table cannot drift from the code.

Modes live in a small registry, ``EXPLAINERS[mode]``, one `Explainer` each: how to build a net
from CLI-style options, a dummy batch, how to read a user's batch, the traced pass and the training
forward whose saved tensors are measured. Adding a mode is adding one entry.
"""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .errors import ArtifactError, ConfigError, ShapeError
from .shapes import LEGEND, check_feature_counts, check_shape

# Letters used here beyond the project legend (sub-sizes of one model).
EXTRA_LEGEND: dict[str, str] = {
    "C_f": "known-future covariates",
    "E": "embedding size",
    "H_d": "decoder hidden size",
    "P": "distribution parameters per value",
    "V_s": "source vocabulary size",
}


# -- the result ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """One tensor of the forward pass."""

    name: str
    axes: tuple[str, ...]  # legend letters per axis, e.g. ("B", "T", "D·H")
    shape: tuple[int, ...]  # the tensor's real shape
    meaning: str
    params: int = 0  # parameters of the modules that produced it (each module counted once)
    modules: tuple[str, ...] = ()
    nbytes: int = 0

    @property
    def shape_text(self) -> str:
        """``(B=3, T=20, F=5)``."""
        return "(" + ", ".join(f"{a}={n}" for a, n in zip(self.axes, self.shape)) + ")"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "axes": list(self.axes),
            "shape": list(self.shape),
            "shape_text": self.shape_text,
            "meaning": self.meaning,
            "params": self.params,
            "modules": list(self.modules),
            "bytes": self.nbytes,
        }


@dataclass(frozen=True)
class Explanation:
    """The table of one forward pass; see the module docstring."""

    mode: str
    summary: str
    source: str
    sizes: dict[str, int]
    stages: tuple[Stage, ...]
    parameters: dict[str, int]  # module -> parameter count, in the order first used
    total_parameters: int
    activation_bytes: int  # distinct tensors listed in `stages`
    training_saved_bytes: int | None  # kept for backward by one training forward (measured)
    notes: tuple[str, ...] = ()
    lengths: tuple[int, ...] | None = None
    steps: int | None = None  # T or S: the padded length the lengths refer to

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"no stage {name!r}; stages: {', '.join(s.name for s in self.stages)}")

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def to_dict(self) -> dict:
        letters = sorted({p for s in self.stages for a in s.axes for p in _letters(a)})
        legend = {k: LEGEND.get(k) or EXTRA_LEGEND.get(k, "") for k in letters}
        return {
            "mode": self.mode,
            "summary": self.summary,
            "source": self.source,
            "sizes": dict(self.sizes),
            "legend": legend,
            "lengths": list(self.lengths) if self.lengths is not None else None,
            "stages": [s.to_dict() for s in self.stages],
            "parameters": {"total": self.total_parameters, "by_module": dict(self.parameters)},
            "memory": {
                "activation_bytes": self.activation_bytes,
                "activation_note": ACTIVATION_NOTE,
                "training_saved_bytes": self.training_saved_bytes,
                "training_note": TRAINING_NOTE,
            },
            "notes": list(self.notes),
        }

    def table(self) -> str:
        rows = [
            (str(i), s.name, s.shape_text, f"{s.params:,}" if s.params else "-", s.meaning)
            for i, s in enumerate(self.stages, 1)
        ]
        head = ("#", "stage", "shape", "params", "meaning")
        widths = [max(len(r[j]) for r in [head, *rows]) for j in range(4)]

        def line(r):
            return (
                f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  "
                f"{r[3]:>{widths[3]}}  {r[4]}"
            ).rstrip()

        sizes = " ".join(f"{k}={v}" for k, v in self.sizes.items())
        out = [f"seqshape explain: {self.mode} — {self.summary}", f"sizes: {sizes}"]
        out.append(f"batch: {self.source}")
        out += ["", line(head), *(line(r) for r in rows), ""]
        by = " + ".join(f"{k} {v:,}" for k, v in self.parameters.items() if v)
        out.append(f"parameters: {self.total_parameters:,} in total" + (f" = {by}" if by else ""))
        mem = f"activations of one batch: {_human(self.activation_bytes)} ({ACTIVATION_NOTE})"
        out.append(mem)
        if self.training_saved_bytes is not None:
            out.append(
                f"a training forward keeps {_human(self.training_saved_bytes)} for backward "
                f"({TRAINING_NOTE})"
            )
        if self.notes:
            out.append("notes:")
            out += [f"  - {n}" for n in self.notes]
        return "\n".join(out)

    __str__ = table

    def plot(self, path: str | Path) -> Path:
        """Draw the stages as a flow, the batch's mask and the parameters per module (PNG)."""
        return _plot(self, Path(path))


ACTIVATION_NOTE = (
    "sum of the tensors listed above, each counted once; a forward pass without gradients"
)
TRAINING_NOTE = (
    "measured: bytes of the non-parameter tensors autograd saves in one training-mode forward"
)


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def _letters(axis: str) -> list[str]:
    return [f for term in axis.split("+") for f in term.split("·") if not f.isdigit()]


# -- options for a dummy batch --------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ExplainOptions:
    """Sizes for `seqshape explain MODE` (a fresh, untrained model) and for dummy batches.

    ``None`` means the mode's default. ``batch``/``lengths``/``steps``/``target_steps`` also apply
    to a trained model; the others define the model and only apply to a fresh one.
    """

    input_size: int | None = None  # F (forecast: O + C)
    hidden: int = 16  # H
    layers: int = 1  # L
    bidirectional: bool = False  # D = 2
    output_size: int = 1  # O
    classes: int = 3  # N
    horizon: int | None = None  # K (a trained forecaster: its training K)
    vocab: int = 0  # V (> 0: token sequences for seq2seq / generate)
    pooling: str = "last"
    batch: int | None = None  # B
    lengths: tuple[int, ...] | None = None
    steps: int | None = None  # T (or S)
    target_steps: int = 8  # U

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "output_size", "target_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"--{_flag(name)}: expected a positive integer, got {v!r}")
        for name in ("input_size", "batch", "steps", "horizon"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ConfigError(f"--{_flag(name)}: expected a positive integer, got {v!r}")
        if not isinstance(self.classes, int) or self.classes < 2:
            raise ConfigError(f"--classes: expected at least 2 classes, got {self.classes!r}")
        if not isinstance(self.vocab, int) or self.vocab < 0 or 0 < self.vocab <= 4:
            raise ConfigError(
                f"--vocab: expected 0 (values) or more than the 4 special tokens, got {self.vocab!r}"
            )
        if self.lengths is not None:
            lengths = tuple(self.lengths)
            object.__setattr__(self, "lengths", lengths)
            if not lengths or any(not isinstance(n, int) or n < 1 for n in lengths):
                raise ConfigError(
                    f"--lengths: expected positive integers like 20,7,13, got {list(lengths)}"
                )
            if self.batch is not None and self.batch != len(lengths):
                raise ConfigError(
                    f"--lengths: gives {len(lengths)} sequences but --batch is {self.batch}"
                )
            if self.steps is not None and max(lengths) > self.steps:
                raise ConfigError(
                    f"--lengths: expected values <= --steps {self.steps}, got {max(lengths)}"
                )

    @property
    def B(self) -> int:
        return len(self.lengths) if self.lengths else (self.batch or 3)

    @property
    def T(self) -> int:
        if self.steps is not None:
            return self.steps
        return max(self.lengths) if self.lengths else 20

    def seq_lengths(self) -> list[int]:
        return list(self.lengths) if self.lengths else [self.T] * self.B


MODEL_FIELDS = (
    "input_size",
    "hidden",
    "layers",
    "bidirectional",
    "output_size",
    "classes",
    "vocab",
    "pooling",
)


def _flag(name: str) -> str:
    return name.replace("_", "-")


# -- tracing ---------------------------------------------------------------------------------------
class Trace:
    """Collects stages while a forward pass runs; checks every shape against its letters."""

    def __init__(self, net: nn.Module, sizes: dict[str, int]) -> None:
        self.net = net
        self.sizes = dict(sizes)
        self.stages: list[Stage] = []
        self.notes: list[str] = []
        self.parameters: dict[str, int] = {}
        self._tensors: dict[tuple, int] = {}

    def size(self, axis: str) -> int:
        total = 0
        for term in axis.split("+"):
            prod = 1
            for factor in term.split("·"):
                if factor.isdigit():
                    prod *= int(factor)
                elif factor in self.sizes:
                    prod *= self.sizes[factor]
                else:
                    raise KeyError(f"explain: no size for letter {factor!r} in {self.sizes}")
            total += prod
        return total

    def add(
        self, name: str, tensor: Tensor, axes: str, meaning: str, modules: Sequence[str] = ()
    ) -> Tensor:
        axes_t = tuple(axes.split())
        shape = tuple(int(n) for n in tensor.shape)
        want = tuple(self.size(a) for a in axes_t)
        if shape != want:  # a programming error: the legend and the code disagree
            raise AssertionError(
                f"explain: stage {name!r}: letters ({', '.join(axes_t)}) = {want}, but the forward "
                f"pass gave {shape}"
            )
        params = 0
        for m in modules:
            if m in self.parameters:
                continue
            n = _count(getattr(self.net, m, None))
            self.parameters[m] = n
            params += n
        # the same tensor (or the same view) listed twice counts once
        key = (tensor.data_ptr(), shape, tuple(tensor.stride()))
        self._tensors[key] = tensor.element_size() * tensor.numel()
        self.stages.append(
            Stage(
                name=name,
                axes=axes_t,
                shape=shape,
                meaning=meaning,
                params=params,
                modules=tuple(modules),
                nbytes=tensor.element_size() * tensor.numel(),
            )
        )
        return tensor

    @property
    def activation_bytes(self) -> int:
        return sum(self._tensors.values())


def _count(obj: Any) -> int:
    if obj is None:
        return 0
    if isinstance(obj, nn.Parameter):
        return obj.numel()
    return sum(p.numel() for p in obj.parameters())


@contextmanager
def _hooks(**modules: nn.Module | None):
    """Record (args, output) of every call of each named module during the block."""
    calls: dict[str, list[tuple[tuple, Any]]] = {name: [] for name in modules}
    handles = []
    for name, m in modules.items():
        if m is not None:
            handles.append(
                m.register_forward_hook(lambda _m, args, out, n=name: calls[n].append((args, out)))
            )
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


@contextmanager
def _step_calls(encoder: nn.Module):
    """Record every `SequenceEncoder.step` call (x_t, state in, (out, state out)) in the block.

    The bound method is shadowed on the instance for the block's duration only.
    """
    calls: list[tuple[Tensor, tuple, tuple]] = []
    original = encoder.step

    def step(x_t, state):
        result = original(x_t, state)
        calls.append((x_t, state, result))
        return result

    encoder.step = step
    try:
        yield calls
    finally:
        del encoder.step


def _saved_bytes(net: nn.Module, forward: Callable[[], Any]) -> int:
    """Bytes of the non-parameter tensors autograd saves for backward during ``forward()``."""
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params and s.nbytes():
            seen[s.data_ptr()] = s.nbytes()
        return t

    was_training = net.training
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net.train()
            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                forward()
    finally:
        net.train(was_training)
    return sum(seen.values())


def _rows(mask_or_lengths: Tensor) -> str:
    return ", ".join(str(int(v)) for v in mask_or_lengths)


def _max_abs(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().max()) if a.numel() else 0.0


def _state_layout_note(L: int, D: int, name: str = "h_n") -> str:
    if D == 1:
        last = f"{name}[-1] (row {L - 1} of {L})"
        return f"row = layer; the last layer is {last}"
    return (
        f"row = layer·2 + direction; the last layer is {name}[-2:] (rows {2 * L - 2}, {2 * L - 1}"
        f" of {2 * L}): {name}[-2] forward, {name}[-1] backward"
    )


def _seed_randn(*shape: int, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def _padded(lengths: Sequence[int], T: int, F: int, seed: int = 0) -> Tensor:
    """(B, T, F) random values, zero after each length (as collate pads)."""
    x = _seed_randn(len(lengths), T, F, seed=seed)
    steps = torch.arange(T)
    # (B, T) valid-step mask -> (B, T, 1)
    valid = steps[None, :] < torch.as_tensor(list(lengths))[:, None]
    return x * valid.unsqueeze(-1)


def _as_float(x: Any, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x.float()
    try:
        return torch.as_tensor(np.asarray(x, dtype=np.float32))
    except (TypeError, ValueError) as e:
        raise ShapeError(f"{name}: expected an array of numbers ({e})") from None


def _with_lengths(x: Tensor, lengths: Any) -> tuple[Tensor, Tensor]:
    B, T = x.shape[0], x.shape[1] if x.dim() > 1 else 0
    if lengths is None:
        return x, torch.full((B,), T, dtype=torch.long)
    return x, torch.as_tensor(lengths, dtype=torch.long)


def _sequence_batch(batch: Any, features: int, scaler: Any = None) -> tuple[Tensor, Tensor]:
    """A user's batch for (B, T, F) models -> (x, lengths).

    Accepts a `Batch`, ``(x, lengths)``, a (B, T, F) array, or a list of (T_i, F) arrays (checked
    with `check_feature_counts`, scaled with the model's scaler when it has one, then padded).
    """
    from .batching import collate

    if hasattr(batch, "x") and hasattr(batch, "lengths"):
        return batch.x.float(), batch.lengths
    if isinstance(batch, tuple) and len(batch) == 2:
        x = _as_float(batch[0], "x")
        check_shape(x, "B T F", name="x", known={"F": features})
        return _with_lengths(x, batch[1])
    if isinstance(batch, (Tensor, np.ndarray)) and batch.ndim != 1 and batch.dtype != object:
        x = _as_float(batch, "x")
        check_shape(x, "B T F", name="x", known={"F": features})
        return _with_lengths(x, None)
    if isinstance(batch, (list, np.ndarray)):
        arrays = [np.asarray(a, dtype=np.float32) for a in batch]
        check_feature_counts(arrays, name="X", features=features)
        if scaler is not None and hasattr(scaler, "transform"):
            arrays = scaler.transform(arrays)
        b = collate(arrays)
        return b.x, b.lengths
    raise ShapeError(
        f"example_batch: expected a Batch, (x, lengths), a (B, T, F={features}) array or a list "
        f"of (T, F={features}) arrays, got {type(batch).__name__}"
    )


# -- the registry ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Explainer:
    """How one shape mode is explained. See `EXPLAINERS`."""

    mode: str  # CLI name
    kind: str  # the model directory's kind (config.json)
    summary: str  # input -> output in legend letters
    net_class: Callable[[], type]  # lazy import
    config_class: Callable[[], type]
    build: Callable[[ExplainOptions], nn.Module]  # a fresh net from options
    example: Callable[[nn.Module, ExplainOptions], tuple]  # a dummy batch
    read: Callable[[nn.Module, Any, Any], tuple]  # (net, user batch, scaler) -> batch
    trace: Callable[[nn.Module, tuple, Trace], None]
    train_forward: Callable[[nn.Module, tuple], Any]
    sizes: Callable[[nn.Module, tuple], dict[str, int]]
    lengths: Callable[[tuple], Tensor | None] = lambda batch: None
    fields: tuple[str, ...] = ()  # which ExplainOptions model fields this mode reads


EXPLAINERS: dict[str, Explainer] = {}


def _lazy(module: str, name: str) -> Callable[[], type]:
    """A class imported on first use (``explain`` imports only the models it needs)."""
    return lambda: getattr(importlib.import_module(f"seqshape.models.{module}"), name)


def register(explainer: Explainer) -> Explainer:
    EXPLAINERS[explainer.mode] = explainer
    return explainer


# ---- many-to-one -----------------------------------------------------------------------------
def _classify_build(o: ExplainOptions) -> nn.Module:
    from .models.classifier import ClassifierConfig, ClassifierNet

    cfg = ClassifierConfig(
        input_size=o.input_size or 5,
        num_outputs=o.classes,
        hidden_size=o.hidden,
        num_layers=o.layers,
        bidirectional=o.bidirectional,
        pooling=o.pooling,
    )
    return ClassifierNet(cfg)


def _seq_example(net: nn.Module, o: ExplainOptions) -> tuple:
    lengths = o.seq_lengths()
    return _padded(lengths, o.T, net.config.input_size), torch.as_tensor(lengths)


def _seq_read(net: nn.Module, batch: Any, scaler: Any) -> tuple:
    return _sequence_batch(batch, net.config.input_size, scaler)


def _encoder_sizes(net: nn.Module, x: Tensor, out_letter: str | None = None) -> dict[str, int]:
    ec = net.encoder.config
    sizes = {
        "B": int(x.shape[0]),
        "T": int(x.shape[1]),
        "F": ec.input_size,
        "H": ec.hidden_size,
        "L": ec.num_layers,
        "D": ec.directions,
    }
    if out_letter:
        sizes[out_letter] = net.config.num_outputs
    return sizes


def _out_letter(config) -> str:
    return "N" if config.task == "classification" else "O"


def _trace_encoder_input(t: Trace, x: Tensor, lengths: Tensor, mask: Tensor) -> None:
    B, T = x.shape[0], x.shape[1]
    t.add("x", x, "B T F", "the padded input batch, batch first; zeros after each length")
    pad = int((~mask).sum())
    t.add("lengths", lengths, "B", f"[{_rows(lengths)}]: each sequence's true number of steps")
    what = "every step is valid" if pad == 0 else f"{pad} of {B * T} (B·T) steps are padding"
    t.add("mask", mask, "B T", f"True on valid steps; {what}")


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
    return sizes


def _classify_trace(net: nn.Module, batch: tuple, t: Trace) -> None:
    from .models.classifier import valid_mask

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
    t.add("logits" if N == "N" else "values", calls["head"][0][1], f"B {N}", what, ("head",))
    assert torch.equal(calls["head"][0][1], logits)
    naive = _padded_hn_note(t, net, x, lengths, state)
    if naive is not None and c.pooling == "last" and not c.conv_summary:
        wrong = net.head(torch.cat(list(naive[-ec.directions :]), dim=-1))
        short = lengths < x.shape[1]
        t.notes.append(
            f"fed to the head, that wrong h_n would move those logits by up to "
            f"{_max_abs(wrong[short], logits[short]):.3g}"
        )


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


# ---- many-to-many, aligned ---------------------------------------------------------------------
def _tag_build(o: ExplainOptions) -> nn.Module:
    from .models.tagger import TaggerConfig, TaggerNet

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


# ---- forecast ----------------------------------------------------------------------------------
def _forecast_build(o: ExplainOptions) -> nn.Module:
    from .models.forecaster import ForecasterConfig, ForecasterNet

    O = o.output_size
    F = o.input_size or O
    if F < O:
        raise ConfigError(
            f"--input-size: a forecaster's inputs are the O={O} targets plus C covariates, "
            f"expected at least {O}, got {F}"
        )
    if o.bidirectional:
        raise ConfigError("--bidirectional: a forecaster steps forward in time; it has D=1")
    cfg = ForecasterConfig(
        n_targets=O,
        n_past=F - O,
        lookback=o.T,
        horizon=o.horizon or 6,
        hidden_size=o.hidden,
        num_layers=o.layers,
    )
    return ForecasterNet(cfg)


def _forecast_example(net: nn.Module, o: ExplainOptions) -> tuple:
    c = net.config
    if o.lengths and len(set(o.lengths)) > 1:
        raise ConfigError(
            f"--lengths: forecast windows all have one length T, got {list(o.lengths)}; "
            "give --steps T"
        )
    T = o.steps or (o.lengths[0] if o.lengths else c.lookback)
    K = o.horizon or c.horizon
    history = _seed_randn(o.B, T, c.n_fed)
    future_cov = _seed_randn(o.B, T + K, c.n_future, seed=1) if c.n_future else None
    return history, future_cov, K


def _forecast_read(net: nn.Module, batch: Any, scaler: Any) -> tuple:
    c = net.config
    cov = None
    K = c.horizon
    if isinstance(batch, tuple):
        if len(batch) == 3:
            batch, cov, K = batch
        elif len(batch) == 2:
            batch, cov = batch
        else:
            raise ShapeError(
                f"example_batch: expected history or (history, future_cov[, K]), got a tuple of "
                f"{len(batch)}"
            )
    history = _as_float(batch, "history")
    check_shape(history, "B T O", name="history", known={"O": c.n_fed})
    if cov is not None:
        cov = _as_float(cov, "future_cov")
        K = cov.shape[1] - history.shape[1]
    return history, cov, int(K)


def _forecast_sizes(net: nn.Module, b: tuple) -> dict[str, int]:
    c = net.config
    history, _, K = b
    sizes = {"B": int(history.shape[0]), "T": int(history.shape[1]), "K": K, "O": c.n_targets}
    if c.n_past:
        sizes["C"] = c.n_past
    if c.n_future:
        sizes["C_f"] = c.n_future
    sizes.update({"H": c.hidden_size, "L": c.num_layers, "P": c.n_params})
    return sizes


def _forecast_trace(net: nn.Module, batch: tuple, t: Trace) -> None:
    history, cov, K = batch
    c = net.config
    fed = "O+C" if c.n_past else "O"
    lstm_in = fed + ("+C_f" if c.n_future else "")
    with (
        _hooks(encoder=net.encoder, head=net.head) as calls,
        _step_calls(net.encoder) as steps,
    ):
        params = net.forecast(history, K, cov)
    what = "the past values of the O targets" + (" and C past covariates" if c.n_past else "")
    t.add("history", history, f"B T {fed}", f"{what} (the lookback window, T steps)")
    if cov is not None:
        t.add("future_cov", cov, "B T+K C_f", "known covariates of every history and future step")
    args, enc = calls["encoder"][0]
    if c.window_norm != "none":
        t.notes.append(f"window_norm '{c.window_norm}': each window's level is removed first")
    t.add(
        "LSTM inputs",
        args[0],
        f"B T {lstm_in}",
        "one encoder pass over the history"
        + (" (each step with the NEXT step's known covariates)" if c.n_future else ""),
    )
    t.add(
        "outputs",
        enc.outputs,
        "B T H",
        "the LSTM's output at every history step; the last one predicts step T+1",
        modules=("encoder",),
    )
    if c.strategy == "direct":
        raw = calls["head"][0][1]
        t.add(
            "head (all K at once)",
            raw.view(history.shape[0], K, c.n_fed, c.n_params),
            f"B K {fed} P",
            "the direct strategy: one Linear maps the last output"
            + (" and the future covariates" if c.n_future else "")
            + " to all K steps; K is fixed at training",
            modules=("head",),
        )
        t.add("forecast", params, f"B K {fed} P", "distribution parameters of the K future steps")
        return
    t.add(
        "h_n",
        enc.state[0],
        "L B H",
        "the state after the history, CARRIED into the future, never recomputed (row = layer)",
    )
    if len(enc.state) > 1:
        t.add("c_n", enc.state[1], "L B H", "the cell state after the history, carried too")
    t.add(
        "step 1 parameters",
        calls["head"][0][1].view(history.shape[0], c.n_fed, c.n_params),
        f"B {fed} P",
        f"the head on the last output: {c.n_params} parameter(s) of each value of step T+1 "
        f"(loss '{c.loss}')",
        modules=("head",),
    )
    if steps:
        x_t, _, (out, new_state) = steps[0]
        t.add(
            "fed back (step input)",
            x_t,
            f"B {lstm_in}",
            "the predicted point of the previous step goes back in as the next LSTM INPUT"
            + (", with that step's known covariates" if c.n_future else ""),
        )
        t.add(
            "cell step output",
            out,
            "B H",
            f"SequenceEncoder.step with the carried (h, c): {len(steps)} cell steps for K={K} "
            "(counted in this run); the window is never re-read",
        )
        t.add("carried h", new_state[0], "L B H", "the new state, carried to the next step")
    t.add(
        "forecast",
        params,
        f"B K {fed} P",
        "distribution parameters of the K future steps (the point: the mean / median)",
    )
    t.notes.append(
        f"the autoregressive loop: 1 encoder pass over T={history.shape[1]} steps, then "
        f"{len(steps)} cell steps (K-1) for K={K}; each step's prediction is the next LSTM input"
    )


register(
    Explainer(
        mode="forecast",
        kind="forecaster",
        summary="forecast: history (B, T, O+C) -> (B, K, O) for any horizon K",
        net_class=_lazy("forecaster", "ForecasterNet"),
        config_class=_lazy("forecaster", "ForecasterConfig"),
        build=_forecast_build,
        example=_forecast_example,
        read=_forecast_read,
        trace=_forecast_trace,
        train_forward=lambda net, b: net(
            b[0], _seed_randn(b[0].shape[0], b[2], net.config.n_fed, seed=2), b[1]
        ),
        sizes=_forecast_sizes,
        fields=("input_size", "hidden", "layers", "output_size", "horizon"),
    )
)


# ---- seq2seq -----------------------------------------------------------------------------------
def _s2s_build(o: ExplainOptions) -> nn.Module:
    from .models.seq2seq import Seq2SeqConfig, Seq2SeqNet

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


def _tokens(lengths: Sequence[int], T: int, vocab: int, seed: int) -> Tensor:
    """(B, T) random ids in [4, V) (no specials), PAD (0) after each length."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (len(lengths), T), generator=g)
    # (B, T): True on valid steps
    valid = torch.arange(T)[None, :] < torch.as_tensor(list(lengths))[:, None]
    return ids * valid


def _target(kind: str, B: int, U: int, size: int) -> Tensor:
    if kind == "tokens":
        return _tokens([U] * B, U, size, seed=1)
    return _seed_randn(B, U, size, seed=1)


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


def _decoder_steps(t: Trace, steps: list, prev_axes: str, hid: str, what: str) -> None:
    if not steps:
        return
    x_t, _, (out, _) = steps[0]
    t.add("step input (fed back)", x_t, f"B {prev_axes}", what)
    t.add(
        "decoder step output",
        out,
        f"B {hid}",
        f"SequenceEncoder.step with the carried (h, c): {len(steps)} decoder cell steps "
        "(counted in this run)",
    )


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


# ---- one-to-many -------------------------------------------------------------------------------
def _gen_build(o: ExplainOptions) -> nn.Module:
    from .models.generator import GeneratorConfig, GeneratorNet

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
    n_states = 2 if c.cell == "lstm" else 1
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


# -- the front -----------------------------------------------------------------------------------
def _run(ex: Explainer, net: nn.Module, batch: tuple, source: str) -> Explanation:
    device = next(net.parameters()).device
    batch = tuple(b.to(device) if isinstance(b, Tensor) else b for b in batch)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            t = Trace(net, ex.sizes(net, batch))
            ex.trace(net, batch, t)
        saved = _saved_bytes(net, lambda: ex.train_forward(net, batch))
    finally:
        net.train(was_training)
    total = _count(net)
    counted = sum(t.parameters.values())
    if counted != total:
        t.parameters["other"] = total - counted
        t.notes.append(f"{total - counted:,} parameters belong to modules not shown as a stage")
    lengths = ex.lengths(batch)
    return Explanation(
        mode=ex.mode,
        summary=ex.summary,
        source=source,
        sizes={k: v for k, v in t.sizes.items()},
        stages=tuple(t.stages),
        parameters=dict(t.parameters),
        total_parameters=total,
        activation_bytes=t.activation_bytes,
        training_saved_bytes=saved,
        notes=tuple(t.notes),
        lengths=tuple(int(v) for v in lengths) if lengths is not None else None,
        steps=t.sizes.get("T", t.sizes.get("S")),
    )


def explainer_for(net: nn.Module) -> Explainer:
    for ex in EXPLAINERS.values():
        if isinstance(net, ex.net_class()):
            return ex
    known = ", ".join(ex.net_class().__name__ for ex in EXPLAINERS.values())
    raise ConfigError(
        f"explain: expected a seqshape model or one of {known}, got {type(net).__name__}"
    )


def _options(**sizes) -> ExplainOptions:
    given = {k: v for k, v in sizes.items() if v is not None}
    if "lengths" in given:
        given["lengths"] = tuple(int(v) for v in given["lengths"])
    return ExplainOptions(**given)


def explain(
    model_or_net: Any,
    example_batch: Any = None,
    *,
    batch: int | None = None,
    lengths: Sequence[int] | None = None,
    steps: int | None = None,
    target_steps: int | None = None,
    horizon: int | None = None,
) -> Explanation:
    """Run a real forward pass of a model and explain it stage by stage.

    ``model_or_net``: a fitted `SequenceClassifier` / `SequenceTagger` / `Forecaster` / `Seq2Seq`
    / `SequenceGenerator` (anything with a ``.net``) or one of their nets. ``example_batch``: the
    mode's input — classify/tag: a list of (T_i, F) arrays (scaled like `predict` when the model
    has a scaler), a `Batch`, ``(x, lengths)`` or a (B, T, F) array; forecast: history (B, T, O+C)
    or ``(history, future_cov)``; seq2seq: ``(src, src_lengths[, target])``; generate: static
    (B, F) or ``(static, target)``. Without it a dummy batch is made from the config and the sizes
    given here (``lengths=[20, 7, 13]`` makes a mixed-length batch).
    """
    net = model_or_net if isinstance(model_or_net, nn.Module) else getattr(model_or_net, "net", 0)
    if net is None:
        raise ConfigError(f"explain: this {type(model_or_net).__name__} is not fitted yet")
    if not isinstance(net, nn.Module):
        raise ConfigError(
            f"explain: expected a seqshape model or its net, got {type(model_or_net).__name__}"
        )
    ex = explainer_for(net)
    if example_batch is None:
        opts = _options(
            batch=batch, lengths=lengths, steps=steps, target_steps=target_steps, horizon=horizon
        )
        return _run(ex, net, ex.example(net, opts), "a dummy batch (random values)")
    scaler = getattr(model_or_net, "scaler", None)
    return _run(ex, net, ex.read(net, example_batch, scaler), "the example batch given")


def explain_mode(mode: str, options: ExplainOptions | None = None) -> Explanation:
    """Explain a fresh (untrained, seeded) model of ``mode`` built from ``options``."""
    if mode not in EXPLAINERS:
        raise ConfigError(f"mode: expected one of {', '.join(EXPLAINERS)}, got {mode!r}")
    ex = EXPLAINERS[mode]
    options = options or ExplainOptions()
    if options.pooling != "last" and mode != "classify":
        raise ConfigError(f"--pooling: only mode classify pools, got mode {mode}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = ex.build(options)
    return _run(ex, net, ex.example(net, options), "a dummy batch (random values), untrained model")


def load_net(path: str | Path) -> tuple[Explainer, nn.Module, Any]:
    """A model directory -> (its explainer, its net with the trained weights, its files)."""
    from .artifacts import build_net, config_from_dict, load_model_dir

    files = load_model_dir(path)
    ex = next((e for e in EXPLAINERS.values() if e.kind == files.kind), None)
    if ex is None:
        kinds = ", ".join(e.kind for e in EXPLAINERS.values())
        raise ArtifactError(
            f"{files.path}: model kind {files.kind!r} cannot be explained (known: {kinds})"
        )
    cfg = dict(files.config)
    if isinstance(cfg.get("quantiles"), list):
        cfg["quantiles"] = tuple(cfg["quantiles"])
    config = config_from_dict(ex.config_class(), cfg, files.path / "config.json")
    net = build_net(ex.net_class(), config, files)
    return ex, net.eval(), files


def explain_model_dir(
    path: str | Path, options: ExplainOptions | None = None, data: Any = None
) -> Explanation:
    """Explain the trained model in ``path`` on a dummy batch, or on ``data`` (a list of arrays,
    classify/tag: the first ``options.batch`` sequences, scaled as the model was trained)."""
    ex, net, files = load_net(path)
    options = options or ExplainOptions()
    if data is None:
        return _run(ex, net, ex.example(net, options), f"a dummy batch for {files.path}")
    scaler = None
    pre = files.preprocessing.get("scaler")
    if pre:
        from .data.scaling import StandardScaler

        scaler = StandardScaler.from_dict(pre)
    if options.lengths is not None or options.steps is not None:
        raise ConfigError("--lengths/--steps: with data, the data's own lengths are used")
    data = list(data)[: options.batch or 3]
    batch = ex.read(net, data, scaler)
    return _run(ex, net, batch, f"the first {len(data)} sequences of the data given")


# -- the picture ---------------------------------------------------------------------------------
def _plot(e: Explanation, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    n = len(e.stages)
    height = max(4.0, 0.62 * n + 1.2)
    fig = plt.figure(figsize=(13, height), dpi=100)
    grid = fig.add_gridspec(2, 2, width_ratios=[2.3, 1], wspace=0.15, hspace=0.45)
    ax = fig.add_subplot(grid[:, 0])
    ax.set_xlim(0, 1)
    ax.set_ylim(-n + 0.3, 1.0)
    ax.axis("off")
    ax.set_title(f"seqshape explain: {e.mode} — {e.summary}", fontsize=10, loc="left")
    for i, s in enumerate(e.stages):
        y = -i
        face = "#e8f0fb" if s.params else "#f4f4f4"
        ax.add_patch(
            FancyBboxPatch(
                (0.01, y - 0.36),
                0.98,
                0.72,
                boxstyle="round,pad=0.01,rounding_size=0.02",
                facecolor=face,
                edgecolor="#7a8ca8",
                linewidth=0.8,
            )
        )
        params = f"   [{s.params:,} params]" if s.params else ""
        ax.text(
            0.025,
            y + 0.12,
            f"{s.name}  {s.shape_text}{params}",
            fontsize=8.5,
            fontweight="bold",
            va="center",
            family="monospace",
        )
        meaning = textwrap.shorten(s.meaning, width=120, placeholder=" …")
        ax.text(0.025, y - 0.17, meaning, fontsize=7.5, va="center", color="#333333")
        if i + 1 < n:
            ax.annotate(
                "",
                xy=(0.5, y - 0.62),
                xytext=(0.5, y - 0.38),
                arrowprops={"arrowstyle": "->", "color": "#7a8ca8", "lw": 0.8},
            )
    top = fig.add_subplot(grid[0, 1])
    if e.lengths is not None and e.steps:
        T = e.steps
        # (B, T): 1 on valid steps
        mask = (np.arange(T)[None, :] < np.asarray(e.lengths)[:, None]).astype(float)
        top.imshow(mask, cmap="Greens", vmin=0, vmax=1.3, aspect="auto", interpolation="nearest")
        letter = "S" if "S" in e.sizes else "T"
        top.set_title(f"mask (B, {letter}): valid steps green, padding white", fontsize=9)
        top.set_xlabel("step")
        top.set_yticks(range(len(e.lengths)), labels=[f"len {v}" for v in e.lengths])
    else:
        top.axis("off")
        sizes = "\n".join(f"{k} = {v}" for k, v in e.sizes.items())
        top.text(0.05, 0.95, "sizes\n" + sizes, va="top", family="monospace", fontsize=9)
    bottom = fig.add_subplot(grid[1, 1])
    names = [k for k, v in e.parameters.items() if v]
    values = [e.parameters[k] for k in names]
    bottom.barh(range(len(names)), values, color="#7a8ca8")
    bottom.set_yticks(range(len(names)), labels=names, fontsize=8)
    bottom.invert_yaxis()
    bottom.set_title(f"parameters: {e.total_parameters:,} in total", fontsize=9)
    bottom.tick_params(axis="x", labelsize=7)
    fig.text(0.67, 0.01, f"activations of one batch: {_human(e.activation_bytes)}", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
