"""ONNX export of a model directory: one graph per part, self-describing, checked on export.

    export_onnx("runs/jv/model")               # -> runs/jv/model/model.onnx
    export_onnx("runs/jv/model", "clf.onnx")   # anywhere else

Every kind is a function ``ModelFiles -> OnnxExport`` registered in ``EXPORTERS``; it returns one
`OnnxGraph` per part. The first part is written to ``out_path``; further parts go beside it as
``<stem>.<part>.onnx`` (``model.step.onnx``) and are listed in the metadata. Every file carries the
same JSON under the ONNX metadata key ``"seqshape"`` (``metadata_props``): the kind, each part's
file and input/output names and shapes, the preprocessing (class names, scalers, vocabularies),
the model config, the SHA-256 of the weights it came from and the largest difference from torch
measured on export (each part's graph against its torch module, on a batch of mixed lengths and
on that batch reversed; more than 1e-4 and nothing is written). `seqshape.infer.onnx_runtime`
reads them back without torch. B, T, N, S are dynamic axes; all floats are float32, lengths int64.

Variable lengths travel as a ``lengths`` input, never as a PackedSequence, and padding sits after
each sequence's end. Where only outputs are needed (classifier) the graph runs the encoder's
*padded* path; where final states are needed (forecaster, seq2seq) every recurrent layer and
direction gets its lengths as the ONNX LSTM/GRU ``sequence_lens`` (`packed_encode`), so each
state is the one at each sequence's true last step. Either way a sequence's answer is the same
alone or in a padded batch, as in torch. Shapes: L layers, H hidden, Z = O+Cp values predicted and
fed back, Cf known covariates, P parameters per value (mse 1, gaussian 2, student_t 3, quantile Q).

``classifier`` (one file)::

    classifier    x (B, T, F), lengths (B,)                        -> logits (B, N)  (regression (B, O))

``forecaster``, autoregressive (``model.onnx`` = encode, ``model.step.onnx`` = step); GRU cells
have no ``c``/``c_next``; ``future_cov``/``f_next`` exist only when Cf > 0, ``recent`` /
``recent_next`` only with the linear highway (``highway`` = p > 0)::

    encode        history (B, N, Z)      scaled [targets, past covariates] of rows 0..N-1
                  lengths (B,)           each history's length, in [1, N]
                  future_cov (B, N, Cf)  scaled known covariates of rows 1..N (step t's input
                                         carries row t+1's, as in training)
               -> params (B, Z, P), point (B, Z)   the first forecast step (row N)
                  offset (B, Z)                    the window level (see below)
                  h, c (L, B, H)                   the state after each history's true last step
                  recent (B, p, Z)                 the highway's window: the last p values
                                                   (minus the offset), the first one repeated
                                                   in front of histories shorter than p
    step          z (B, Z)               the value fed back: the previous point (or a draw)
                  f_next (B, Cf)         scaled known covariates of the row being predicted
                  h, c (L, B, H), offset (B, Z), recent (B, p, Z)
               -> params (B, Z, P), point (B, Z), h_next, c_next (L, B, H), recent_next
                                                   (the window moved on by ``z``)

  K steps = encode once, then step K-1 times fed the previous ``point`` with the carried state
  (`ForecasterNet.forecast`'s loop; any K): the caller carries every step output named
  ``<input>_next`` back into that input. ``window_norm`` is handled inside the graphs: encode
  computes the window level from the history (``"last"``: each history's value at its true last
  step; ``"mean"``: its mean over valid steps; ``"none"``: zeros), subtracts it before the LSTM
  and returns it as ``offset``; every step takes it back, subtracts it from ``z`` and adds it to
  the location parameters it returns. So ``z``, ``params`` and ``point`` are all at the window's
  level in scaled units, and the caller only unscales (metadata ``scaling``, rows per series).
  ``point`` is ``params[..., point_index]`` (metadata: the mean, or the median quantile).

``forecaster``, direct (one file, K fixed at the training horizon)::

    direct        history, lengths, future_cov as in encode; horizon_cov (B, K, Cf) the known
                  covariates of the K forecast rows N..N+K-1  -> params (B, K, Z, P), point (B, K, Z)

``seq2seq`` (``model.onnx`` = encoder, ``model.decoder_step.onnx``); ``projected`` only for
attention additive/general, the step's keys/projected/mask/attention only with attention, a value
target gives ``values`` (B, O) and ``stop`` (B,) logits instead of ``logits``::

    encoder       src (B, S) ids, PAD after each end | (B, S, F) scaled values; src_lengths (B,)
               -> keys (B, S, D·H) zero on padding, projected (B, S, A), mask (B, S) bool,
                  h, c (L, B, H_d): the decoder's initial state (through the bridge)
    decoder_step  prev (B,) ids (BOS first) | (B, O) values (metadata ``start`` first),
                  h, c (L, B, H_d), keys, projected, mask
               -> logits (B, V), h_next, c_next (L, B, H_d), attention (B, S)

  Greedy decoding feeds each step's argmax back until every row has produced EOS
  (`onnx_runtime.OnnxSeq2Seq`); the graph is `Seq2SeqNet.step`, so beam search could drive it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .. import __version__
from ..artifacts import ModelFiles, build_net, config_from_dict, load_model_dir, writer_temp
from ..data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from ..errors import ArtifactError, ConfigError
from ..models.classifier import ClassifierConfig, ClassifierNet
from ..models.encoder import SequenceEncoder, State, gather_last, reverse_within_length
from ..models.forecaster import ForecasterConfig, ForecasterNet
from ..models.seq2seq import Memory, Seq2SeqConfig, Seq2SeqNet
from ..outfiles import file_mode
from .onnx_runtime import METADATA_KEY, ONNX_FORMAT, ONNX_FORMAT_VERSION, weights_digest

OPSET = 17
TOLERANCE = 1e-4  # largest |onnx - torch| accepted on the export check


@dataclass(frozen=True, kw_only=True)
class TensorSpec:
    """One graph input or output: its name, shape (legend letters for dynamic axes) and dtype."""

    name: str
    shape: tuple[str | int, ...]
    dtype: str
    doc: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "doc": self.doc}


@dataclass(frozen=True, kw_only=True)
class OnnxGraph:
    """One traceable module with example inputs (mixed lengths) and its input/output contract."""

    part: str
    module: nn.Module
    example: tuple[Tensor, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes: dict[str, dict[int, str]] = {}
        for spec in self.inputs + self.outputs:
            dyn = {i: s for i, s in enumerate(spec.shape) if isinstance(s, str)}
            if dyn:
                axes[spec.name] = dyn
        return axes


@dataclass(frozen=True, kw_only=True)
class OnnxExport:
    """Every graph of one model plus the metadata the runtime needs (classes, scaler, ...)."""

    graphs: tuple[OnnxGraph, ...]
    metadata: dict = field(default_factory=dict)


# -- classifier -------------------------------------------------------------------------------
class ClassifierGraph(nn.Module):
    """`ClassifierNet` for tracing: (x (B, T, F), lengths (B,)) -> logits (B, N).

    It runs the encoder's padded path on the net's own layers. The encoder's ``forward`` cannot be
    traced as it is: it picks a path and checks lengths with Python ``bool``/``int`` on tensors,
    and builds its mask from a Python int T, all of which the tracer would freeze into constants.
    """

    def __init__(self, net: ClassifierNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        enc = self.net.encoder
        directions = enc.config.directions
        conv = None
        if self.net.frontend is not None:
            # (B, T, F) -> (B, T', C) and each sequence's pooled length (all traceable ops)
            x, lengths = self.net.frontend(x, lengths)
            conv = x
        # (T,) vs (B, 1) -> (B, T) bool, True on valid steps; T read from x, so it stays dynamic
        steps = torch.arange(x.shape[1], device=x.device)
        mask = steps[None, :] < lengths[:, None]
        inp = x
        last = x.new_zeros(0)
        for layer in enc.layers:
            outs, lasts = [], []
            for name in ("fwd", "bwd")[:directions]:
                # (B, T, F_in): the backward direction reads each sequence reversed within its length
                seq = inp if name == "fwd" else reverse_within_length(inp, lengths)
                # (B, T, F_in) -> (B, T, H); the final state (after the padding) is never read
                out, _ = layer[name](seq)
                if name == "bwd":
                    # (B, T, H): back in time order; its summary is the output at step 0
                    out = reverse_within_length(out, lengths)
                    lasts.append(out[:, 0])
                else:
                    # (B, T, H) -> (B, H): output at each true last step
                    lasts.append(gather_last(out, lengths))
                outs.append(out)
            # D x (B, T, H) -> (B, T, D·H), zero on padding
            inp = torch.cat(outs, dim=-1) * mask.unsqueeze(-1).to(x.dtype)
            # D x (B, H) -> (B, D·H)
            last = torch.cat(lasts, dim=-1)
        # (B, T', D·H) -> (B, D·H [+ C]): the net's own pooling
        pooled = self.net.summary(inp, last, mask, conv)
        # (B, D·H [+ C]) -> (B, N)
        return self.net.head(pooled)


def example_batch(features: int, lengths: list[int], seed: int = 0) -> tuple[Tensor, Tensor]:
    """A zero-padded random batch (B, max(lengths), F) and its lengths (B,) int64."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    lens = torch.tensor(lengths, dtype=torch.long)
    # (B, T, F), zero after each sequence's end
    x = torch.randn(len(lengths), T, features, generator=g)
    x = x * (torch.arange(T)[None, :, None] < lens[:, None, None]).to(x.dtype)
    return x, lens


def _export_classifier(files: ModelFiles) -> OnnxExport:
    config = config_from_dict(ClassifierConfig, files.config, files.path / "config.json")
    net = build_net(ClassifierNet, config, files)
    net.eval()
    pre = files.preprocessing
    classes = pre.get("classes")
    if config.task == "classification" and (
        not isinstance(classes, list) or len(classes) != config.num_outputs
    ):
        raise ArtifactError(
            f"{files.path / 'preprocessing.json'}: classes: expected {config.num_outputs} names, "
            f"got {classes!r}"
        )
    F, N = config.input_size, config.num_outputs
    out_doc = "logits, columns in the order of 'classes'" if classes else "regression outputs"
    graph = OnnxGraph(
        part="classifier",
        module=ClassifierGraph(net).eval(),
        # mixed lengths, the longest first and a length-1 sequence among them
        example=example_batch(F, [11, 3, 7, 1]),
        inputs=(
            TensorSpec(
                name="x",
                shape=("B", "T", F),
                dtype="float32",
                doc="scaled sequences, zero-padded after each sequence's end",
            ),
            TensorSpec(name="lengths", shape=("B",), dtype="int64", doc="true lengths, in [1, T]"),
        ),
        outputs=(TensorSpec(name="logits", shape=("B", N), dtype="float32", doc=out_doc),),
    )
    return OnnxExport(
        graphs=(graph,),
        metadata={
            "task": config.task,
            "classes": classes if config.task == "classification" else None,
            "scaler": pre.get("scaler"),
            "series_norm": pre.get("series_norm", False) is True,
            "config": config.to_dict(),
        },
    )


# -- the recurrent core with exact final states ------------------------------------------------
def packed_encode(encoder: SequenceEncoder, x: Tensor, lengths: Tensor) -> tuple[Tensor, State]:
    """`SequenceEncoder.forward(x, lengths, need_state=True)` restated for tracing.

    Each layer and direction runs on a PackedSequence (the encoder's ``packed`` path), which the
    exporter turns into the ONNX LSTM/GRU's ``sequence_lens`` input: every final state is the one
    at each sequence's true last step, as in torch's ``segmented`` path, and B and T stay dynamic.
    Returns outputs (B, T, D·H), zero on padding, and the state (h[, c]) each (L·D, B, H).
    """
    cfg = encoder.config
    # (T,) vs (B, 1) -> (B, T) bool, True on valid steps; T read from x, so it stays dynamic
    mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
    inp = x
    finals: list[tuple[Tensor, ...]] = []  # per (layer, direction): (h[, c]) each (B, H)
    for layer in encoder.layers:
        outs = []
        for name in ("fwd", "bwd")[: cfg.directions]:
            # (B, T, F_in): the backward direction reads each sequence reversed within its length
            seq = inp if name == "fwd" else reverse_within_length(inp, lengths)
            packed = nn.utils.rnn.pack_padded_sequence(
                seq, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            out, fin = layer[name](packed)
            # packed -> (B, T, H), zero after each sequence's end
            out, _ = nn.utils.rnn.pad_packed_sequence(
                out, batch_first=True, total_length=x.shape[1]
            )
            if name == "bwd":
                out = reverse_within_length(out, lengths)
            outs.append(out)
            # (1, B, H) -> (B, H) for h (and c)
            finals.append(tuple(f[0] for f in (fin if encoder.is_lstm else (fin,))))
        # D x (B, T, H) -> (B, T, D·H), zero on padding (inter-layer dropout: off in eval)
        inp = torch.cat(outs, dim=-1) * mask.unsqueeze(-1).to(x.dtype)
    # L·D x (B, H) -> (L·D, B, H), nn.LSTM's layer-major, direction-minor order
    state = tuple(torch.stack([f[j] for f in finals]) for j in range(len(finals[0])))
    return inp, state


def _lstm_state_specs(layers: int, hidden: int, lstm: bool, suffix: str = "") -> tuple:
    names = ("h", "c") if lstm else ("h",)
    return tuple(
        TensorSpec(
            name=f"{n}{suffix}",
            shape=(layers, "B", hidden),
            dtype="float32",
            doc=f"recurrent {'hidden' if n == 'h' else 'cell'} state of every layer",
        )
        for n in names
    )


# -- forecaster ---------------------------------------------------------------------------------
def window_offset(net: ForecasterNet, history: Tensor, lengths: Tensor) -> Tensor:
    """`ForecasterNet.offset` for right-padded histories: (B, N, Z), (B,) -> (B, Z)."""
    norm = net.config.window_norm
    if norm == "last":
        # (B, N, Z) -> (B, Z): the value at each history's true last step
        return gather_last(history, lengths)
    if norm == "mean":
        # (B, N, Z) summed over valid steps / lengths -> (B, Z)
        mask = torch.arange(history.shape[1])[None, :] < lengths[:, None]
        total = (history * mask.unsqueeze(-1).to(history.dtype)).sum(1)
        return total / lengths[:, None].to(history.dtype)
    return torch.zeros_like(history[:, 0])


def recent_values(net: ForecasterNet, z: Tensor, lengths: Tensor) -> Tensor:
    """`ForecasterNet.recent` for right-padded histories: (B, N, Z), (B,) -> (B, p, Z), the last p
    valid values of each, its first value repeated in front when it is shorter than p."""
    p = net.config.highway
    # (B, p): step index of each window position, clamped at 0 for short histories
    idx = (lengths[:, None] - p + torch.arange(p)[None, :]).clamp(min=0)
    # (B, N, Z) gathered along time -> (B, p, Z)
    return z.gather(1, idx.unsqueeze(-1).expand(-1, -1, z.shape[-1]))


def _level(net: ForecasterNet, out: Tensor, offset: Tensor, recent: Tensor | None) -> Tensor:
    """Decoder output (B, H) [+ the highway's window (B, p, Z)] -> parameters (B, Z, P) at the
    window's level (offset (B, Z) added)."""
    # (B, H) -> (B, 1, Z, P), shifted with the offset as (B, 1, Z), back to (B, Z, P)
    return net.unshift(net.params(out, recent).unsqueeze(1), offset.unsqueeze(1)).squeeze(1)


class ForecastEncodeGraph(nn.Module):
    """(history (B, N, Z), lengths (B,)[, future_cov (B, N, Cf)]) -> (params (B, Z, P),
    point (B, Z), offset (B, Z), h (L, B, H)[, c (L, B, H)][, recent (B, p, Z)]): read the
    history, predict row N."""

    def __init__(self, net: ForecasterNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        net = self.net
        history, lengths = inputs[0], inputs[1]
        future_cov = inputs[2] if net.config.n_future else None
        offset = window_offset(net, history, lengths)
        # (B, N, Z) - (B, 1, Z): the history relative to its window level
        z = history - offset.unsqueeze(1)
        # (B, N, Z) ++ (B, N, Cf) -> (B, N, Z+Cf): the LSTM's inputs
        outputs, state = packed_encode(net.encoder, net.step_inputs(z, future_cov), lengths)
        recent = recent_values(net, z, lengths) if net.highway is not None else None
        # (B, N, H) -> (B, H): the output at each true last step predicts the next one
        params = _level(net, gather_last(outputs, lengths), offset, recent)
        extra = (recent,) if recent is not None else ()
        return (params, net.point(params), offset, *state, *extra)


class ForecastStepGraph(nn.Module):
    """(z (B, Z)[, f_next (B, Cf)], h[, c], offset (B, Z)[, recent (B, p, Z)]) -> (params
    (B, Z, P), point (B, Z), h_next[, c_next][, recent_next]): one cell step through
    `SequenceEncoder.step`, fed the previous forecast (and the highway's window moved on)."""

    def __init__(self, net: ForecasterNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        net = self.net
        z, rest = inputs[0], list(inputs[1:])
        f_next = rest.pop(0) if net.config.n_future else None
        n_state = 2 if net.encoder.is_lstm else 1
        state, offset = tuple(rest[:n_state]), rest[n_state]
        # (B, Z) at the window's level -> relative to it, as the model saw it in training
        z = z - offset
        recent = net.push(rest[n_state + 1], z) if net.highway is not None else None
        # (B, Z) ++ (B, Cf) -> (B, Z+Cf) LSTM input -> (B, H), one cell step
        out, state = net.encoder.step(net.step_inputs(z, f_next), state)
        params = _level(net, out, offset, recent)
        extra = (recent,) if recent is not None else ()
        return (params, net.point(params), *state, *extra)


class ForecastDirectGraph(nn.Module):
    """(history (B, N, Z), lengths (B,)[, future_cov (B, N, Cf), horizon_cov (B, K, Cf)]) ->
    (params (B, K, Z, P), point (B, K, Z)): the direct strategy, K fixed at its training horizon."""

    def __init__(self, net: ForecasterNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        net = self.net
        c = net.config
        history, lengths = inputs[0], inputs[1]
        offset = window_offset(net, history, lengths)
        # (B, N, Z) - (B, 1, Z): the history relative to its window level
        z = history - offset.unsqueeze(1)
        x = net.step_inputs(z, inputs[2] if c.n_future else None)
        outputs, _ = packed_encode(net.encoder, x, lengths)
        # (B, N, H) -> (B, H)
        feats = [gather_last(outputs, lengths)]
        if c.n_future:
            # (B, K, Cf) -> (B, K·Cf): the known covariates of every future step
            feats.append(inputs[3].flatten(1))
        raw = net.head(torch.cat(feats, dim=-1))
        # (B, K·Z·P) -> (B, K, Z·P) -> (B, K, Z, P), shifted back to the window's level
        params = net._to_params(raw.view(raw.shape[0], c.horizon, c.n_fed * c.n_params))
        if net.highway is not None:
            # (B, p, Z) -> (B, Z, K) -> (B, K, Z): the last p values mapped to the K steps
            params = net.shift(params, net._highway(recent_values(net, z, lengths)).transpose(1, 2))
        params = net.unshift(params, offset.unsqueeze(1))
        return params, net.point(params)


def _forecaster_net(files: ModelFiles) -> ForecasterNet:
    config = config_from_dict(ForecasterConfig, files.config, files.path / "config.json")
    net = build_net(ForecasterNet, config, files)
    net.eval()
    return net


def _export_forecaster(files: ModelFiles) -> OnnxExport:
    net = _forecaster_net(files)
    c = net.config
    Z, P, Cf, H, L, K = c.n_fed, c.n_params, c.n_future, c.hidden_size, c.num_layers, c.horizon
    lstm = c.cell == "lstm"
    # mixed lengths, the longest first and a length-1 history among them
    lengths = [11, 3, 7, 1]
    history, lens = example_batch(Z, lengths, seed=1)
    cov_hist = (example_batch(Cf, lengths, seed=2)[0],) if Cf else ()
    hist_in = (
        TensorSpec(
            name="history",
            shape=("B", "N", Z),
            dtype="float32",
            doc="scaled [targets, past covariates] of rows 0..N-1, zero-padded after each end",
        ),
        TensorSpec(name="lengths", shape=("B",), dtype="int64", doc="history lengths, in [1, N]"),
    )
    if Cf:
        hist_in += (
            TensorSpec(
                name="future_cov",
                shape=("B", "N", Cf),
                dtype="float32",
                doc="scaled known covariates of rows 1..N (each step's input carries the next "
                "row's), zero-padded after each end",
            ),
        )
    params_doc = "distribution parameters, scaled units, at the window's level"
    if c.strategy == "direct":
        g = torch.Generator().manual_seed(3)
        horizon_cov = (torch.randn(len(lengths), K, Cf, generator=g),) if Cf else ()
        direct_in = hist_in
        if Cf:
            direct_in += (
                TensorSpec(
                    name="horizon_cov",
                    shape=("B", K, Cf),
                    dtype="float32",
                    doc="scaled known covariates of the K forecast rows N..N+K-1",
                ),
            )
        graphs: tuple[OnnxGraph, ...] = (
            OnnxGraph(
                part="direct",
                module=ForecastDirectGraph(net).eval(),
                example=(history, lens, *cov_hist, *horizon_cov),
                inputs=direct_in,
                outputs=(
                    TensorSpec(
                        name="params", shape=("B", K, Z, P), dtype="float32", doc=params_doc
                    ),
                    TensorSpec(
                        name="point", shape=("B", K, Z), dtype="float32", doc="point forecast"
                    ),
                ),
            ),
        )
    else:
        level = (
            TensorSpec(
                name="offset",
                shape=("B", Z),
                dtype="float32",
                doc=f"window level (window_norm {c.window_norm!r}; zeros for 'none'); give it to "
                "every step",
            ),
        )
        g = torch.Generator().manual_seed(4)
        B = len(lengths)
        step_example = (
            torch.randn(B, Z, generator=g),
            *((torch.randn(B, Cf, generator=g),) if Cf else ()),
            *(torch.randn(L, B, H, generator=g) for _ in range(2 if lstm else 1)),
            torch.randn(B, Z, generator=g),
            *((torch.randn(B, c.highway, Z, generator=g),) if c.highway else ()),
        )
        window: tuple[TensorSpec, ...] = ()
        if c.highway:
            window = (
                TensorSpec(
                    name="recent",
                    shape=("B", c.highway, Z),
                    dtype="float32",
                    doc="the highway's window: the last p values, minus the offset",
                ),
            )
        step_in = (
            TensorSpec(
                name="z",
                shape=("B", Z),
                dtype="float32",
                doc="the value fed back: the previous step's point (or a draw), scaled, at the "
                "window's level",
            ),
        )
        if Cf:
            step_in += (
                TensorSpec(
                    name="f_next",
                    shape=("B", Cf),
                    dtype="float32",
                    doc="scaled known covariates of the row being predicted",
                ),
            )
        step_in += _lstm_state_specs(L, H, lstm) + level + window
        heads = (
            TensorSpec(name="params", shape=("B", Z, P), dtype="float32", doc=params_doc),
            TensorSpec(name="point", shape=("B", Z), dtype="float32", doc="point forecast"),
        )
        graphs = (
            OnnxGraph(
                part="encode",
                module=ForecastEncodeGraph(net).eval(),
                example=(history, lens, *cov_hist),
                inputs=hist_in,
                outputs=heads + level + _lstm_state_specs(L, H, lstm) + window,
            ),
            OnnxGraph(
                part="step",
                module=ForecastStepGraph(net).eval(),
                example=step_example,
                inputs=step_in,
                outputs=heads
                + _lstm_state_specs(L, H, lstm, "_next")
                + tuple(replace(w, name=f"{w.name}_next") for w in window),
            ),
        )
    pre = files.preprocessing
    if not isinstance(pre.get("scaling"), dict):
        raise ArtifactError(f"{files.path / 'preprocessing.json'}: field 'scaling' is missing")
    return OnnxExport(
        graphs=graphs,
        metadata={
            "config": c.to_dict(),
            "point_index": _point_index(c),
            "scaling": pre["scaling"],
            "series_names": list(pre.get("series_names") or []),
            "meta": pre.get("meta") or {},
        },
    )


def _point_index(c: ForecasterConfig) -> int:
    """Which of the P parameters is the point forecast (the mean, or the median quantile)."""
    if c.loss == "quantile":
        return int(np.argmin([abs(q - 0.5) for q in c.quantiles]))
    return 0


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
        n_state = 2 if c.cell == "lstm" else 1
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
    lstm = c.cell == "lstm"
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
    enc_outputs += _lstm_state_specs(L, Hd, lstm)
    n_mem = len(memory) - (2 if lstm else 1)
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
    out_specs += _lstm_state_specs(L, Hd, lstm, "_next")
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
            inputs=(prev_spec, *_lstm_state_specs(L, Hd, lstm), *memory_specs),
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


# kind recorded in config.json -> function building its graphs
EXPORTERS: dict[str, Callable[[ModelFiles], OnnxExport]] = {
    "classifier": _export_classifier,
    "forecaster": _export_forecaster,
    "seq2seq": _export_seq2seq,
}


# -- writing ----------------------------------------------------------------------------------
def _require_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ConfigError(
            f"ONNX export needs the packages onnx and onnxruntime ({e}); "
            "install them with: pip install 'seqshape[onnx]'"
        ) from None
    return onnx, onnxruntime


@contextlib.contextmanager
def _native_stderr_without(noise: str):
    """Drop the lines containing ``noise`` that C++ code writes to file descriptor 2 meanwhile
    (they bypass Python's warnings); every other line is written to stderr afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode(errors="replace").splitlines():
                if noise not in line:
                    print(line, file=sys.stderr)


def _trace(graph: OnnxGraph, path: Path, opset: int) -> None:
    # The TorchScript-based exporter: the torch.export-based one (dynamo=True) needs onnxscript and
    # adds nothing for these graphs. Its warnings (legacy exporter, LSTM batch size with an initial
    # state we never pass, no shape inference for the packing around an LSTM given its lengths)
    # are not the user's business.
    with _native_stderr_without("shape inference of prim::Pa"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(
                graph.module,
                graph.example,
                str(path),
                dynamo=False,
                input_names=[s.name for s in graph.inputs],
                output_names=[s.name for s in graph.outputs],
                dynamic_axes=graph.dynamic_axes(),
                opset_version=opset,
                do_constant_folding=True,
            )


def _check(graph: OnnxGraph, path: Path, ort) -> float:
    """Run the graph in onnxruntime on its example and on a re-ordered batch; max |onnx - torch|."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    flipped = tuple(t.flip(0) for t in graph.example)
    for example in (graph.example, flipped):
        with torch.no_grad():
            ref = graph.module(*example)
        refs = ref if isinstance(ref, tuple) else (ref,)
        feeds = {s.name: t.numpy() for s, t in zip(graph.inputs, example)}
        got = session.run([s.name for s in graph.outputs], feeds)
        for r, g in zip(refs, got):
            # bool outputs (masks) compare as 0/1
            diff = np.abs(r.numpy().astype(np.float64) - np.asarray(g, dtype=np.float64))
            worst = max(worst, float(diff.max()) if diff.size else 0.0)
    return worst


def export_onnx(
    model_dir: str | os.PathLike, out_path: str | os.PathLike | None = None, *, opset: int = OPSET
) -> Path:
    """Export the model directory ``model_dir`` to ONNX; return the path written.

    ``out_path`` defaults to ``model_dir/model.onnx``. The export is checked before it is kept:
    onnxruntime must reproduce torch within 1e-4 on a batch of mixed lengths, else ArtifactError.
    The file is written atomically (a temporary sibling renamed into place).
    """
    onnx, ort = _require_onnx()
    files = load_model_dir(model_dir)
    build = EXPORTERS.get(files.kind)
    if build is None:
        raise ConfigError(
            f"{files.path}: ONNX export supports the kinds {', '.join(sorted(EXPORTERS))}; "
            f"got a {files.kind!r} model"
        )
    spec = build(files)
    out = Path(out_path) if out_path is not None else files.path / "model.onnx"
    if out.suffix != ".onnx":
        raise ConfigError(f"--out: expected a file name ending in .onnx, got {str(out)!r}")
    if out.is_dir():
        raise ConfigError(f"--out: {out} is a directory; expected a file name ending in .onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out] + [out.with_name(f"{out.stem}.{g.part}.onnx") for g in spec.graphs[1:]]
    metadata = {
        "format": ONNX_FORMAT,
        "format_version": ONNX_FORMAT_VERSION,
        "kind": files.kind,
        "seqshape_version": __version__,
        "opset": opset,
        # provenance: where the graphs came from ("source" is a seq2seq side's description)
        "origin": {
            "model_dir": str(files.path),
            "weights_sha256": weights_digest(files.path / "model.safetensors"),
        },
        **spec.metadata,
        "parts": {
            g.part: {
                "file": p.name,
                "inputs": [s.to_dict() for s in g.inputs],
                "outputs": [s.to_dict() for s in g.outputs],
            }
            for g, p in zip(spec.graphs, paths)
        },
    }
    written: list[tuple[Path, Path]] = []
    try:
        for graph, path in zip(spec.graphs, paths):
            # .NAME.tmp-PID-*: a killed export's are removed by the next export of NAME
            tmp = writer_temp(path)
            written.append((tmp, path))
            _trace(graph, tmp, opset)
            diff = _check(graph, tmp, ort)
            if not diff <= TOLERANCE:
                raise ArtifactError(
                    f"{path}: the exported {graph.part} graph differs from torch by {diff:.3g} "
                    f"(expected <= {TOLERANCE:g}); not written"
                )
            metadata["parts"][graph.part]["max_abs_diff_vs_torch"] = diff
        for graph, (tmp, _) in zip(spec.graphs, written):
            model = onnx.load(str(tmp))
            onnx.checker.check_model(model)
            model.doc_string = f"seqshape {files.kind} ({graph.part}), exported from {files.path}"
            del model.metadata_props[:]
            entry = model.metadata_props.add()
            entry.key, entry.value = METADATA_KEY, json.dumps(metadata, allow_nan=False)
            onnx.save(model, str(tmp))
        for tmp, path in written:
            os.chmod(tmp, file_mode())  # the umask's mode, as any file a command writes
            os.replace(tmp, path)
    finally:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
    return out


def read_metadata(path: str | os.PathLike) -> dict:
    """The ``seqshape`` metadata of an exported file (needs onnx, not onnxruntime)."""
    onnx, _ = _require_onnx()
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise ArtifactError(f"{path}: no {METADATA_KEY!r} metadata; not written by seqshape export")
