"""The core of `explain`: the result (`Stage`, `Explanation`), the options of a dummy batch, the
`Trace` that checks every shape against its legend letters, the hooks that watch a forward pass,
the helpers the modes share, and the registry of modes (`EXPLAINERS`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..shapes import LEGEND

# Letters used here beyond the project legend (sub-sizes of one model).
EXTRA_LEGEND: dict[str, str] = {
    "C_f": "known-future covariates",
    "E": "embedding size",
    "H_d": "decoder hidden size",
    "P": "distribution parameters per value",
    "T_s": "segments of the history (one LSTM step each)",
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
        from .plot import _plot

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


# -- what the modes over the sequence encoder share ------------------------------------------------
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
