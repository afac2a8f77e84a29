"""ONNX graphs of the forecaster (kind "forecaster"): encode + step (autoregressive, any K) or one
direct graph; their inputs and outputs are documented in `seqshape.infer.export`. The step graph is
`ForecasterNet.step`, the one place of the one-step math, with the window level taken back.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from ..artifacts import ModelFiles, build_net, config_from_dict
from ..errors import ArtifactError
from ..models.encoder import CELLS, gather_last
from ..models.forecaster import (
    ForecasterConfig,
    ForecasterNet,
    from_model_space,
    to_model_space,
)
from .onnx_graphs import (
    OnnxExport,
    OnnxGraph,
    TensorSpec,
    _state_specs,
    example_batch,
    packed_encode,
)


# -- forecaster ---------------------------------------------------------------------------------
def window_offset(net: ForecasterNet, history: Tensor, lengths: Tensor) -> Tensor:
    """`ForecasterNet.offset` for right-padded histories: (B, N, Z), (B,) -> (B, Z)."""
    norm = net.config.window_norm
    if norm == "last":
        # (B, N, Z) -> (B, Z): the value at each history's true last step
        return gather_last(history, lengths)
    if norm in ("mean", "log"):
        # (B, N, Z) summed over valid steps / lengths -> (B, Z) (log: of the logs)
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
    return net.unshift(net.params(out, recent), offset)


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
    (B, Z, P), point (B, Z), h_next[, c_next][, recent_next]): one `ForecasterNet.step`, fed the
    previous forecast (and the highway's window moved on), at the window's level."""

    def __init__(self, net: ForecasterNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        net = self.net
        z, rest = inputs[0], list(inputs[1:])
        f_next = rest.pop(0) if net.config.n_future else None
        n_state = net.encoder.cell.n_states
        state, offset = tuple(rest[:n_state]), rest[n_state]
        recent = rest[n_state + 1] if net.highway is not None else None
        # (B, Z) at the window's level -> relative to it, as the model saw it in training
        params, state, recent = net.step(z - offset, f_next, state, recent)
        # (B, Z, P) back at the window's level
        params = net.unshift(params, offset)
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
        # a log window norm reads logs (padding rows too, which nothing below reads)
        history = to_model_space(history, c)
        offset = window_offset(net, history, lengths)
        # (B, N, Z) - (B, 1, Z): the history relative to its window level
        z = history - offset.unsqueeze(1)
        x = net.step_inputs(z, inputs[2] if c.n_future else None)
        if net.embed is not None:
            # segments: the runtime gives every history its full lookback (the first value
            # repeated in front), so no row is padding: S steps each; (B, S, H) -> (B, H)
            steps = torch.ones_like(lengths) * c.n_segments
            outputs, _ = packed_encode(net.encoder, net.segments(x), steps)
            feats = [gather_last(outputs, steps)]
        else:
            outputs, _ = packed_encode(net.encoder, x, lengths)
            # (B, N, H) -> (B, H)
            feats = [gather_last(outputs, lengths)]
        if c.n_future:
            # (B, K, Cf) -> (B, K·Cf): the known covariates of every future step
            feats.append(inputs[3].flatten(1))
        raw = net.head(torch.cat(feats, dim=-1))
        level = None
        if net.highway is not None:
            # (B, p, Z) -> (B, Z, K) -> (B, K, Z): the last p values mapped to the K steps
            level = net._highway(recent_values(net, z, lengths)).transpose(1, 2)
        # (B, K·Z·P) -> (B, K, Z·P) -> (B, K, Z, P) with the highway's term, then shifted back to
        # the window's level
        params = net._to_params(raw.view(raw.shape[0], c.horizon, c.n_fed * c.n_params), level)
        params = from_model_space(net.unshift(params, offset.unsqueeze(1)), c)
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
    # mixed lengths, the longest first and a length-1 history among them
    lengths = [11, 3, 7, 1]
    if c.segment > 1:  # a segment model is given whole rows (the runtime pads in front)
        lengths = [c.n_segments * c.segment] * 4
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
            *(torch.randn(L, B, H, generator=g) for _ in range(CELLS[c.cell].n_states)),
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
        step_in += _state_specs(L, H, c.cell) + level + window
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
                outputs=heads + level + _state_specs(L, H, c.cell) + window,
            ),
            OnnxGraph(
                part="step",
                module=ForecastStepGraph(net).eval(),
                example=step_example,
                inputs=step_in,
                outputs=heads
                + _state_specs(L, H, c.cell, "_next")
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
            "point_index": c.head.point_index(c.quantiles),
            "scaling": pre["scaling"],
            "series_names": list(pre.get("series_names") or []),
            "meta": pre.get("meta") or {},
            "statics": pre.get("statics") or {},
        },
    )
