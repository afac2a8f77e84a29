"""Starting the forecaster's linear highway from a baseline fitted on the training rows.

The highway of `ForecasterNet` (see `seqshape.models.forecaster`) is a linear map of the last p
values relative to the newest one. Each baseline here is such a map, fitted in closed form, so
with the LSTM head's weights at zero the untrained model *is* that baseline (its residuals' spread
or quantiles as the head's bias) and training fits the LSTM to what the baseline leaves.
Shapes: W windows, p highway length, Z = O+Cp fed columns, width 1 (autoregressive) or K (direct).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import ConfigError

if TYPE_CHECKING:
    from .forecaster import ForecasterConfig, ForecasterNet

__all__ = [
    "HIGHWAY_STARTS",
    "HighwayStart",
    "apply_highway_start",
    "fit_highway",
    "highway_starts",
]


@dataclass(frozen=True)
class HighwayStart:
    """A linear forecaster the highway can hold, with the LSTM head at zero: ``weight``
    (Z, width, p) and ``bias`` (Z, width) in the highway's layout, and the head's ``head_bias``
    (the distribution of its training residuals, see `residual_head_bias`)."""

    name: str
    weight: np.ndarray
    bias: np.ndarray
    head_bias: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(W, p, Z) windows -> (W, width, Z): the map applied relative to each newest value."""
        x = np.asarray(x, dtype=np.float64)
        # (W, p, Z) relative to the newest value, through (Z, width, p) -> (W, width, Z)
        rel = x - x[:, -1:, :]
        return np.einsum("wpz,zkp->wkz", rel, self.weight) + self.bias.T[None] + x[:, -1:, :]

    def forecast(self, history: np.ndarray, k: int) -> np.ndarray:
        """(W, N, Z) histories -> (W, k, Z): the baseline alone, as the untrained model forecasts
        (a one-step map iterated on its own outputs, or the direct map's first k steps)."""
        p, width = self.weight.shape[2], self.weight.shape[1]
        # (W, p, Z): the last p values (N >= p, as the config guarantees)
        recent = np.asarray(history, dtype=np.float64)[:, -p:]
        if width > 1:
            return self.predict(recent)[:, :k]
        steps = []
        for _ in range(k):
            # (W, 1, Z): the next value, fed back as the newest of the window
            nxt = self.predict(recent)
            steps.append(nxt)
            recent = np.concatenate([recent[:, 1:], nxt], axis=1)
        return np.concatenate(steps, axis=1)


# the baselines a highway can start from (a seasonal naive needs p >= its season)
HIGHWAY_STARTS = ("least_squares", "naive", "seasonal_naive")


def highway_starts(
    net: ForecasterNet,
    series: list,
    *,
    season: int = 1,
    ridges: tuple[float, ...] = (1e-4,),
    max_windows: int = 200_000,
    seed: int = 0,
) -> dict[str, HighwayStart]:
    """The baselines the highway can start from, each fitted on the training rows.

    ``series``: one (T, O+Cp) array per series (scaled, training rows only). Every start is a
    linear map of the last p values relative to the newest one (one map per fed column, shared by
    the series of a global model), so each is *exactly* the untrained model once set with
    `apply_highway_start`:
    - "least_squares": the ridge least-squares autoregression (`LinearBaseline` with
      ``subtract_last``): one step ahead (autoregressive, iterated) or all K at once (direct);
    - "naive": every step repeats the newest value (weights and bias 0);
    - "seasonal_naive": step j repeats the value one ``season`` earlier (a one-hot weight), when
      ``1 < season <= p``.
    """
    from .baselines import LinearBaseline

    c = net.config
    if net.highway is None:
        raise ConfigError("highway starts: this model has no highway (highway = 0)")
    p, width = c.highway, net.highway.out_features
    starts = [(i, s) for i, z in enumerate(series) for s in range(len(z) - p - width + 1)]
    if not starts:
        raise ConfigError(
            f"highway: no training window of {p} + {width} values; lower highway or add data"
        )
    rng = np.random.default_rng(seed)
    if len(starts) > max_windows:
        starts = [starts[j] for j in np.sort(rng.choice(len(starts), max_windows, replace=False))]
    # (W, p, Z) windows and (W, width, Z) what follows each
    x = np.stack([series[i][s : s + p] for i, s in starts])
    y = np.stack([series[i][s + p : s + p + width] for i, s in starts])
    Z = x.shape[2]
    out: dict[str, HighwayStart] = {}

    def add(name: str, weight: np.ndarray, bias: np.ndarray) -> None:
        start = HighwayStart(name, weight.astype(np.float32), bias.astype(np.float32), np.zeros(0))
        resid = y - start.predict(x)
        out[name] = replace(start, head_bias=residual_head_bias(c, resid, y))

    for j, ridge in enumerate(ridges):
        # one least-squares map per column, each from that column's own past; the first ridge is
        # "least_squares", the others (a stronger pull towards the naive forecast, for short
        # series) are named with their ridge
        ls = [
            LinearBaseline(p, width, ridge=ridge, subtract_last=True).fit(
                x[..., z : z + 1], y[..., z : z + 1]
            )
            for z in range(Z)
        ]
        name = "least_squares" if j == 0 else f"least_squares(ridge={ridge:g})"
        # LinearBaseline weight (p, W) -> the column's (W, p)
        add(name, np.stack([b.weight.T for b in ls]), np.stack([b.bias for b in ls]))
    add("naive", np.zeros((Z, width, p)), np.zeros((Z, width)))
    if 1 < season <= p:
        weight = np.zeros((Z, width, p))
        for j in range(width):
            # step j repeats y[t0 + j - season * (1 + j // season)], at this place in the window
            weight[:, j, p + j - season * (1 + j // season)] = 1.0
        add("seasonal_naive", weight, np.zeros((Z, width)))
    return out


def apply_highway_start(net: ForecasterNet, start: HighwayStart) -> None:
    """Set the highway to ``start`` and the LSTM head's weights to zero: the model *is* that
    baseline (with its residuals' spread or quantiles as the head's bias) until training moves it."""
    with torch.no_grad():
        net.highway.weight.copy_(torch.from_numpy(start.weight))
        net.highway.bias.copy_(torch.from_numpy(start.bias))
        net.head.weight.zero_()
        net.head.bias.copy_(torch.from_numpy(start.head_bias))


def fit_highway(net: ForecasterNet, series: list, *, max_windows: int = 200_000, seed: int = 0):
    """Start the highway from the least-squares autoregression (see `highway_starts`); the LSTM
    head's weights at zero, so the untrained model *is* that linear autoregression and training
    fits the LSTM to what it leaves."""
    start = highway_starts(net, series, max_windows=max_windows, seed=seed)["least_squares"]
    apply_highway_start(net, start)
    return start


def residual_head_bias(c: ForecasterConfig, resid, target) -> np.ndarray:
    """The head's bias that makes the start a probabilistic model of the highway's residuals.

    ``resid`` (W, width, Z): what the least-squares fit leaves on its training windows, and
    ``target`` (W, width, Z) what followed them. With the head's weights at zero its bias is the
    distribution around the highway, as the head defines it (`Head.start_bias`): nothing for
    "mse" and "poisson"; the residual spread for "gaussian" / "student_t" (so intervals are not
    an arbitrary softplus(0)); the residual quantiles for "quantile" (so the quantiles do not all
    sit on the highway, an interval of width zero); the residuals' overdispersion for "negbin".
    Returns (width·Z·P,) in the head's (width, Z, P) layout.
    """
    bias = c.head.start_bias(np.asarray(resid), np.asarray(target), c.quantiles)
    return bias.reshape(-1).astype(np.float32)
