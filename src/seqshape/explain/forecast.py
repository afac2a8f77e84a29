"""`explain` for forecasters: `ForecasterNet`, one pass over the history and then a carried state
stepped through the cell for each future step."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import ConfigError, ShapeError
from ..shapes import check_shape
from .batches import _as_float, _seed_randn
from .core import Explainer, ExplainOptions, Trace, _hooks, _lazy, _step_calls, register


# ---- forecast ----------------------------------------------------------------------------------
def _forecast_build(o: ExplainOptions) -> nn.Module:
    from ..models.forecaster import ForecasterConfig, ForecasterNet

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
    if c.segment > 1:
        sizes["T_s"] = c.n_segments
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
    steps_axis = "T"
    if c.segment > 1:
        steps_axis = "T_s"
        t.notes.append(
            f"segments: the last {c.n_segments * c.segment} history rows (the first repeated in "
            f"front of a shorter history) cut into T_s={c.n_segments} segments of {c.segment} "
            f"steps, each embedded (Linear + ReLU) into one LSTM input of H values"
        )
        t.add(
            "LSTM inputs",
            args[0],
            "B T_s H",
            "one encoder pass over the segments"
            + (" (each row with the NEXT row's known covariates)" if c.n_future else ""),
            modules=("embed",),
        )
    else:
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
        f"B {steps_axis} H",
        f"the LSTM's output at every history {'segment' if c.segment > 1 else 'step'}; the "
        "last one predicts the future",
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
