"""Forecasting: N past steps -> the next K steps, any K at inference.

One recurrent core reads the history and then keeps going into the future:

    step input  x_t = [y_t (O), p_t (Cp), f_{t+1} (Cf)]     target, past covariates, known covariates
                                                           of the step being predicted
    history     x_0 .. x_{N-1} (B, N, O+Cp+Cf) -> SequenceEncoder.forward -> state (h, c), out_{N-1}
    head        out_t (B, H) -> distribution parameters of z_{t+1} = [y_{t+1}, p_{t+1}] (B, O+Cp, P)
    strategy "autoregressive" (default): the predicted z_{t+1} (mean / median / a sample) is fed back
                as the next *input of the LSTM* with the carried (h, c): K steps = K cell steps
                (SequenceEncoder.step, the same weights). Past covariates are forecast too, so they
                can be fed back; known covariates come from the caller.
    strategy "direct": one head maps [out_{N-1}, f_{N+1..N+K}] to all K steps at once (K fixed).

Teacher forcing in training runs the same core over [history, true future] in one pass; step-by-step
decoding fed the same true values gives the same numbers (tested ≤1e-5).

Highway (``highway`` = p > 0, off by default): a linear term in parallel with the LSTM, the
"autoregressive highway" of LSTNet (Lai et al., SIGIR 2018). Each fed series' location gets
``last + w · (recent - last) + b`` added, where ``recent`` are its last p values (true ones in
teacher forcing, fed-back predictions when decoding: the highway runs autoregressively too) and
``last`` the newest of them. Each fed column (target or past covariate) has its own w (p,) and
b, shared by the series of a global model. The direct strategy maps the last p history values to
all K steps (w (K, p) per column). The term is shift-equivariant, so it commutes
with ``window_norm``. `fit_highway` solves it by least squares before training, so training starts
from the linear autoregression (with the spread or quantiles of its residuals as the distribution
head's start) and the LSTM learns what it misses.

Heads (``loss``): "mse" (P=1, the point), "gaussian" (mean, std), "student_t" (mean, scale, df),
"quantile" (one output per quantile, pinball loss). Shapes use the legend: B batch, N lookback,
K horizon, O targets, Cp past covariates, Cf known-future covariates, H hidden, L layers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as Fn

from ..errors import ConfigError, ShapeError
from ..shapes import check_shape
from .encoder import EncoderConfig, SequenceEncoder, State

LOSSES = ("mse", "gaussian", "student_t", "quantile")
STRATEGIES = ("autoregressive", "direct")


@dataclass(frozen=True, kw_only=True)
class ForecasterConfig:
    n_targets: int  # O
    n_past: int = 0  # Cp
    n_future: int = 0  # Cf
    lookback: int  # N used in training; `Forecaster.forecast` asks for >= N history rows
    horizon: int  # K used in training (autoregressive: any K at inference)
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.0
    cell: str = "lstm"
    strategy: str = "autoregressive"
    loss: str = "mse"
    quantiles: tuple[float, ...] = field(default=(0.1, 0.5, 0.9))
    window_norm: str = (
        "none"  # "last": subtract each window's last history value, add it back after
    )
    highway: int = 0  # p: a linear autoregressive term over the last p values (0: off)

    def __post_init__(self) -> None:
        if self.window_norm not in ("none", "last", "mean"):
            raise ConfigError(f"window_norm: expected none|last|mean, got {self.window_norm!r}")
        for name in ("n_targets", "lookback", "horizon"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {v!r}")
        for name in ("n_past", "n_future", "highway"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ConfigError(f"{name}: expected an integer >= 0, got {v!r}")
        if self.highway > self.lookback:
            raise ConfigError(
                f"highway: expected at most lookback={self.lookback} values, got {self.highway}; "
                f"a training window holds {self.lookback} history values, so a longer highway "
                f"would read padding (raise --lookback or lower --highway)"
            )
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"strategy: expected one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        if self.loss not in LOSSES:
            raise ConfigError(f"loss: expected one of {', '.join(LOSSES)}, got {self.loss!r}")
        object.__setattr__(self, "quantiles", tuple(float(q) for q in self.quantiles))
        if self.loss == "quantile":
            qs = self.quantiles
            if not qs or any(not 0 < q < 1 for q in qs) or list(qs) != sorted(set(qs)):
                raise ConfigError(
                    f"quantiles: expected increasing values in (0, 1), got {list(qs)}"
                )
        self.encoder_config()

    @property
    def n_fed(self) -> int:
        """Values predicted and fed back per step: targets + past covariates (O + Cp)."""
        return self.n_targets + self.n_past

    @property
    def input_size(self) -> int:
        return self.n_targets + self.n_past + self.n_future

    @property
    def n_params(self) -> int:
        """Distribution parameters per predicted value (P)."""
        return {"mse": 1, "gaussian": 2, "student_t": 3, "quantile": len(self.quantiles)}[self.loss]

    def encoder_config(self) -> EncoderConfig:
        return EncoderConfig(
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout,
            cell=self.cell,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["quantiles"] = list(self.quantiles)
        return d


class ColumnHighway(nn.Module):
    """One linear map per fed column (target or past covariate) of its last p values:
    (..., Z, p) -> (..., Z, width). Columns differ in their dynamics (a temperature and a load);
    series of a global model share each column's map. ``weight`` (Z, width, p), ``bias`` (Z, width).
    """

    def __init__(self, n_columns: int, p: int, width: int) -> None:
        super().__init__()
        self.in_features, self.out_features = p, width
        bound = 1.0 / math.sqrt(p)  # nn.Linear's default range
        self.weight = nn.Parameter(torch.empty(n_columns, width, p).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_columns, width).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        # (..., Z, 1, p) * (Z, width, p) summed over p -> (..., Z, width). A product and a sum
        # rather than a batched matmul: each row's result does not depend on the batch around it
        return (x.unsqueeze(-2) * self.weight).sum(-1) + self.bias

    @staticmethod
    def upgrade(tensors: dict, n_columns: int) -> dict:
        """A model saved with one map shared by all columns (weight (width, p), bias (width,)) as
        the same map repeated per column: loads into this module with identical forecasts."""
        w = tensors.get("highway.weight")
        if w is None or w.dim() != 2:
            return tensors
        out = dict(tensors)
        out["highway.weight"] = w.unsqueeze(0).repeat(n_columns, 1, 1).contiguous()
        out["highway.bias"] = tensors["highway.bias"].unsqueeze(0).repeat(n_columns, 1).contiguous()
        return out


class ForecasterNet(nn.Module):
    """See the module docstring. All tensors batch-first and already scaled."""

    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = SequenceEncoder(config.encoder_config())
        H, Z, P = config.hidden_size, config.n_fed, config.n_params
        if config.strategy == "autoregressive":
            self.head = nn.Linear(H, Z * P)
        else:
            self.head = nn.Linear(H + config.horizon * config.n_future, config.horizon * Z * P)
        self.highway: ColumnHighway | None = None
        if config.highway:
            # (..., Z, p) deltas to the newest value -> (..., Z, 1) next step, or (..., Z, K) direct
            width = 1 if config.strategy == "autoregressive" else config.horizon
            self.highway = ColumnHighway(Z, config.highway, width)

    # -- inputs ---------------------------------------------------------------------------------
    def step_inputs(self, z: Tensor, f_next: Tensor | None) -> Tensor:
        """(B, ..., O+Cp) values and (B, ..., Cf) next-step known covariates -> LSTM inputs."""
        if self.config.n_future == 0:
            return z
        # (B, ..., O+Cp) ++ (B, ..., Cf) -> (B, ..., O+Cp+Cf)
        return torch.cat([z, f_next], dim=-1)

    def _check(self, history: Tensor, future_cov: Tensor | None, k: int) -> None:
        c = self.config
        dims = check_shape(history, "B N Z", name="history", known={"Z": c.n_fed})
        if dims["N"] < 1:
            raise ShapeError("history: expected at least 1 step, got 0")
        if c.n_future:
            if future_cov is None:
                raise ShapeError(
                    f"future_cov: expected (B, N+K, Cf={c.n_future}) known covariates, got None"
                )
            check_shape(
                future_cov,
                "B NK C",
                name="future_cov",
                known={"B": dims["B"], "NK": dims["N"] + k, "C": c.n_future},
            )

    # -- heads ----------------------------------------------------------------------------------
    def params(self, out: Tensor, recent: Tensor | None = None) -> Tensor:
        """(B, ..., H) -> (B, ..., O+Cp, P) distribution parameters (std/scale/df made positive).

        With a highway, ``recent`` (B, ..., p, O+Cp) are the last p values of each fed series.
        """
        p = self._to_params(self.head(out))
        if self.highway is None:
            return p
        if recent is None:
            raise ShapeError("recent: this model has a highway; expected (B, p, Z) recent values")
        # (B, ..., p, Z) -> (B, ..., Z)
        return self.shift(p, self._highway(recent)[..., 0])

    def _highway(self, recent: Tensor) -> Tensor:
        """(B, ..., p, Z) recent values -> (B, ..., Z, W) highway term (W = 1, or K if direct)."""
        # (B, ..., p, Z) -> (B, ..., Z, p): each series' window, relative to its newest value
        win = recent.transpose(-1, -2)
        last = win[..., -1:]
        return self.highway(win - last) + last

    def recent(self, z: Tensor) -> Tensor:
        """(B, T, Z) values -> (B, p, Z): the last p, the first one repeated when T < p."""
        p = self.config.highway
        if z.shape[1] >= p:
            return z[:, z.shape[1] - p :]
        # (B, 1, Z) repeated p - T times ++ (B, T, Z) -> (B, p, Z)
        return torch.cat([z[:, :1].expand(-1, p - z.shape[1], -1), z], dim=1)

    def windows(self, z: Tensor, first: int) -> Tensor:
        """(B, T, Z) -> (B, T - first, p, Z): the p values up to and including each t >= first."""
        p = self.config.highway
        # (B, p-1, Z) ++ (B, T, Z) -> (B, T+p-1, Z): edge-padded on the left
        padded = torch.cat([z[:, :1].expand(-1, p - 1, -1), z], dim=1)
        # unfold -> (B, T, Z, p) -> (B, T, p, Z), then keep t >= first
        return padded.unfold(1, p, 1).transpose(-1, -2)[:, first:]

    @staticmethod
    def push(recent: Tensor, z: Tensor) -> Tensor:
        """(B, p, Z) window and (B, Z) new values -> the window moved on by one step."""
        # (B, p-1, Z) ++ (B, 1, Z) -> (B, p, Z)
        return torch.cat([recent[:, 1:], z.unsqueeze(1)], dim=1)

    def _to_params(self, raw: Tensor) -> Tensor:
        c = self.config
        # (B, ..., Z·P) -> (B, ..., Z, P)
        p = raw.view(*raw.shape[:-1], c.n_fed, c.n_params)
        if c.loss in ("gaussian", "student_t"):
            scale = Fn.softplus(p[..., 1:2]) + 1e-4
            rest = [p[..., :1], scale]
            if c.loss == "student_t":
                rest.append(Fn.softplus(p[..., 2:3]) + 2.0)  # df > 2: finite variance
            p = torch.cat(rest, dim=-1)
        elif c.loss == "quantile":
            # sorted along P: quantiles never cross
            p = torch.sort(p, dim=-1).values
        return p

    def point(self, p: Tensor) -> Tensor:
        """(..., Z, P) parameters -> (..., Z) point forecast (mean, or the median quantile)."""
        c = self.config
        if c.loss == "quantile":
            qs = torch.tensor(c.quantiles)
            return p[..., int(torch.argmin((qs - 0.5).abs()))]
        return p[..., 0]

    def sample(self, p: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(..., Z, P) -> (..., Z) one draw from the predicted distribution."""
        c = self.config
        if c.loss == "gaussian":
            eps = torch.randn(p.shape[:-1], generator=generator, dtype=p.dtype)
            return p[..., 0] + p[..., 1] * eps
        if c.loss == "student_t":
            # a t draw is a normal draw scaled by sqrt(df / chi2(df)); chi2 from the global RNG
            z = torch.randn(p.shape[:-1], generator=generator, dtype=p.dtype)
            chi2 = torch.distributions.Chi2(p[..., 2]).sample()
            return p[..., 0] + p[..., 1] * z * torch.sqrt(p[..., 2] / chi2)
        if c.loss == "quantile":
            # inverse-CDF draw by linear interpolation between the predicted quantiles
            u = torch.rand(p.shape[:-1], generator=generator, dtype=p.dtype)
            qs = torch.tensor(c.quantiles, dtype=p.dtype)
            idx = (
                torch.searchsorted(qs, u.reshape(-1).contiguous())
                .clamp(1, len(qs) - 1)
                .view(u.shape)
            )
            lo_q, hi_q = qs[idx - 1], qs[idx]
            lo = p.gather(-1, (idx - 1).unsqueeze(-1)).squeeze(-1)
            hi = p.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
            w = ((u - lo_q) / (hi_q - lo_q)).clamp(0, 1)
            return lo + w * (hi - lo)
        return p[..., 0]

    # -- training -------------------------------------------------------------------------------
    def forward(
        self,
        history: Tensor,
        future: Tensor,
        future_cov: Tensor | None = None,
        *,
        sampling_ratio: float = 0.0,
    ) -> Tensor:
        """Teacher-forced training pass -> (B, K, O+Cp, P) parameters of the K future steps.

        ``history`` (B, N, O+Cp) and ``future`` (B, K, O+Cp) are true values; ``future_cov``
        (B, N+K, Cf) the known covariates of every step. With ``sampling_ratio`` > 0 (scheduled
        sampling) each decoder step feeds back the model's own point forecast with that probability.
        """
        c = self.config
        K = future.shape[1]
        self._check(history, future_cov, K)
        check_shape(future, "B K Z", name="future", known={"B": history.shape[0], "Z": c.n_fed})
        offset = self.offset(history)
        history, future = history - offset, future - offset
        return self.unshift(self._forward(history, future, future_cov, sampling_ratio), offset)

    def offset(self, history: Tensor) -> Tensor:
        """(B, N, Z) -> (B, 1, Z): the per-window level removed before the LSTM (window_norm)."""
        if self.config.window_norm == "last":
            return history[:, -1:]
        if self.config.window_norm == "mean":
            return history.mean(dim=1, keepdim=True)
        return torch.zeros_like(history[:, :1])

    def unshift(self, params: Tensor, offset: Tensor) -> Tensor:
        """Add the window level back to the location parameters of (B, K, Z, P)."""
        if self.config.window_norm == "none":
            return params
        return self.shift(params, offset)

    def shift(self, params: Tensor, level: Tensor) -> Tensor:
        """(..., Z, P) parameters with (..., Z) ``level`` added to their location."""
        # (..., Z) -> (..., Z, 1)
        off = level.unsqueeze(-1)
        if self.config.loss == "quantile" or self.config.loss == "mse":
            return params + off
        return torch.cat([params[..., :1] + off, params[..., 1:]], dim=-1)

    def _forward(self, history, future, future_cov, sampling_ratio):
        c = self.config
        N, K = history.shape[1], future.shape[1]
        if c.strategy == "direct":
            return self._direct(history, future_cov, K)
        if sampling_ratio <= 0:
            # inputs x_0..x_{N+K-2}: true values, each with the next step's known covariates
            z = torch.cat([history, future[:, :-1]], dim=1)
            f_next = future_cov[:, 1 : N + K] if c.n_future else None
            # (B, N+K-1, O+Cp+Cf) -> outputs (B, N+K-1, H); the last K predict the future
            enc = self.encoder(self.step_inputs(z, f_next))
            # (B, K, p, Z): the values each of the K predictions sees, for the highway
            recent = self.windows(z, N - 1) if self.highway is not None else None
            return self.params(enc.outputs[:, N - 1 :], recent)
        enc = self.encoder(
            self.step_inputs(history, future_cov[:, 1 : N + 1] if c.n_future else None)
        )
        state, out = enc.state, enc.outputs[:, -1]
        recent = self.recent(history) if self.highway is not None else None
        params = []
        for k in range(K):
            p = self.params(out, recent)
            params.append(p)
            if k == K - 1:
                break
            use_pred = torch.rand(history.shape[0], 1) < sampling_ratio
            z_next = torch.where(use_pred, self.point(p).detach(), future[:, k])
            if recent is not None:
                recent = self.push(recent, z_next)
            f_next = future_cov[:, N + k + 1] if c.n_future else None
            out, state = self.encoder.step(self.step_inputs(z_next, f_next), state)
        # K x (B, Z, P) -> (B, K, Z, P)
        return torch.stack(params, dim=1)

    def _direct(self, history: Tensor, future_cov: Tensor | None, K: int) -> Tensor:
        c = self.config
        if K != c.horizon:
            raise ShapeError(
                f"K: the direct strategy emits exactly K={c.horizon} steps (its training horizon), "
                f"got {K}; train with --strategy autoregressive for any K"
            )
        B, N = history.shape[0], history.shape[1]
        f_next = future_cov[:, 1 : N + 1] if c.n_future else None
        enc = self.encoder(self.step_inputs(history, f_next))
        feats = [enc.outputs[:, -1]]
        if c.n_future:
            # (B, K, Cf) -> (B, K·Cf): the known covariates of every future step
            feats.append(future_cov[:, N : N + K].reshape(B, -1))
        raw = self.head(torch.cat(feats, dim=-1))
        # (B, K·Z·P) -> (B, K, Z·P) -> (B, K, Z, P) via the shared positivity transforms
        params = self._to_params(raw.view(B, K, c.n_fed * c.n_params))
        if self.highway is None:
            return params
        # (B, p, Z) -> (B, Z, K) -> (B, K, Z): the linear map of the last p values to K steps
        return self.shift(params, self._highway(self.recent(history)).transpose(1, 2))

    # -- inference ------------------------------------------------------------------------------
    def encode(self, history: Tensor, future_cov: Tensor | None = None) -> tuple[Tensor, State]:
        """Read the history -> (out (B, H) predicting step N, carried state)."""
        c = self.config
        N = history.shape[1]
        f_next = future_cov[:, 1 : N + 1] if c.n_future else None
        enc = self.encoder(self.step_inputs(history, f_next))
        return enc.outputs[:, -1], enc.state

    def forecast(
        self,
        history: Tensor,
        k: int,
        future_cov: Tensor | None = None,
        *,
        samples: int = 0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Forecast ``k`` steps -> (B, K, O+Cp, P) parameters; with ``samples`` > 0 -> (S, B, K, O+Cp)
        sample paths, each step's draw fed back through the LSTM.

        ``history`` (B, N, O+Cp) any N >= 1; ``future_cov`` (B, N+K, Cf) when Cf > 0. The
        autoregressive path costs one encoder pass plus K-1 cell steps.
        """
        if not isinstance(k, int) or k < 1:
            raise ShapeError(f"K: expected a horizon >= 1, got {k!r}")
        self._check(history, future_cov, k)
        c = self.config
        offset = self.offset(history)
        history = history - offset
        if c.strategy == "direct":
            if samples:
                raise ConfigError("samples: sample paths need the autoregressive strategy")
            return self.unshift(self._direct(history, future_cov, k), offset)
        B, N = history.shape[0], history.shape[1]
        if samples:
            # (B, ...) -> (S·B, ...): every path carries its own state
            history = history.repeat(samples, 1, 1)
            future_cov = future_cov.repeat(samples, 1, 1) if future_cov is not None else None
        out, state = self.encode(history, future_cov)
        recent = self.recent(history) if self.highway is not None else None
        params, draws = [], []
        for j in range(k):
            p = self.params(out, recent)
            params.append(p)
            z = self.sample(p, generator) if samples else self.point(p)
            draws.append(z)
            if j == k - 1:
                break
            if recent is not None:
                recent = self.push(recent, z)
            f_next = future_cov[:, N + j + 1] if c.n_future else None
            out, state = self.encoder.step(self.step_inputs(z, f_next), state)
        if samples:
            # K x (S·B, Z) -> (S·B, K, Z) -> (S, B, K, Z), back at the window's level
            return torch.stack(draws, dim=1).view(samples, B, k, c.n_fed) + offset.unsqueeze(0)
        # K x (B, Z, P) -> (B, K, Z, P)
        return self.unshift(torch.stack(params, dim=1), offset)


@dataclass(frozen=True)
class HighwayStart:
    """A linear forecaster the highway can hold, with the LSTM head at zero: ``weight``
    (Z, width, p) and ``bias`` (Z, width) in the highway's layout, and the head's ``head_bias``
    (the distribution of its training residuals, see `_residual_head_bias`)."""

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
        out[name] = replace(start, head_bias=_residual_head_bias(c, resid))

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


def _residual_head_bias(c: ForecasterConfig, resid) -> np.ndarray:
    """The head's bias that makes the start a probabilistic model of the highway's residuals.

    ``resid`` (W, width, Z): what the least-squares fit leaves on its training windows. With the
    head's weights at zero its bias is the distribution around the highway: nothing for "mse";
    the residual spread for "gaussian" / "student_t" (so intervals are not an arbitrary softplus(0));
    the residual quantiles for "quantile" (so the quantiles do not all sit on the highway, an
    interval of width zero). Returns (width·Z·P,) in the head's (width, Z, P) layout.
    """
    width, Z = resid.shape[1], resid.shape[2]
    bias = np.zeros((width, Z, c.n_params))
    if c.loss == "quantile":
        # (Q, width, Z) -> (width, Z, Q)
        bias[:] = np.moveaxis(np.quantile(resid, c.quantiles, axis=0), 0, -1)
    elif c.loss in ("gaussian", "student_t"):
        std = resid.std(axis=0)  # (width, Z)
        if c.loss == "student_t":
            df = float(Fn.softplus(torch.zeros(()))) + 2.0  # the df a zero raw output gives
            std = std * np.sqrt((df - 2.0) / df)  # the t scale with that variance
        s = np.maximum(std - 1e-4, 1e-6)
        bias[..., 1] = s + np.log(-np.expm1(-s))  # softplus^-1, stable for large s
    return bias.reshape(-1).astype(np.float32)


def forecast_loss(params: Tensor, target: Tensor, config: ForecasterConfig) -> Tensor:
    """Mean loss of (B, K, Z, P) parameters against (B, K, Z) true values (scaled units)."""
    loss = config.loss
    if loss == "mse":
        return Fn.mse_loss(params[..., 0], target)
    if loss == "gaussian":
        return Fn.gaussian_nll_loss(params[..., 0], target, params[..., 1] ** 2, full=True)
    if loss == "student_t":
        loc, scale, df = params[..., 0], params[..., 1], params[..., 2]
        return -torch.distributions.StudentT(df, loc, scale).log_prob(target).mean()
    qs = torch.tensor(config.quantiles, dtype=params.dtype)
    # (B, K, Z, 1) - (B, K, Z, Q) -> pinball loss averaged over everything
    diff = target.unsqueeze(-1) - params
    return torch.maximum(qs * diff, (qs - 1) * diff).mean()


def gaussian_interval(params: Tensor, level: float) -> tuple[Tensor, Tensor]:
    """Central interval of a Gaussian head at ``level`` (e.g. 0.8) -> (lower, upper)."""
    z = math.sqrt(2) * torch.erfinv(torch.tensor(level))
    return params[..., 0] - z * params[..., 1], params[..., 0] + z * params[..., 1]
