"""Forecasting: N past steps -> the next K steps, any K at inference.

One recurrent core reads the history and then keeps going into the future:

    step input  x_t = [y_t (O), p_t (Cp), f_{t+1} (Cf)]     target, past covariates, known covariates
                                                           of the step being predicted
    history     x_0 .. x_{N-1} (B, N, O+Cp+Cf) -> SequenceEncoder.forward -> state (h, c), out_{N-1}
    head        out_t (B, H) -> distribution parameters of z_{t+1} = [y_{t+1}, p_{t+1}] (B, O+Cp, P)
    strategy "autoregressive" (default): the predicted z_{t+1} (mean / median / a sample) is fed back
                as the next *input of the LSTM* with the carried (h, c): K steps = K cell steps
                (`ForecasterNet.step`, the one place of the one-step math, which forecasts,
                streams, the server, the detector and the ONNX step graph all call). Past
                covariates are forecast too, so they can be fed back; known covariates come from
                the caller.
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

Heads (``loss``): objects in `seqshape.models.heads` ("mse", "gaussian", "student_t", "quantile",
"poisson", "negbin"), each owning its parameters, loss, sampling and scaling rule; a count head's
highway term joins its rate before the positivity. Shapes use the legend: B batch, N lookback,
K horizon, O targets, Cp past covariates, Cf known-future covariates, H hidden, L layers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from ..errors import ConfigError, ShapeError
from ..shapes import check_shape
from .encoder import EncoderConfig, SequenceEncoder, State
from .heads import HEADS, Head, head_of
from .highway_starts import (  # noqa: F401 (re-exported: they were defined here)
    HIGHWAY_STARTS,
    HighwayStart,
    apply_highway_start,
    fit_highway,
    highway_starts,
)

LOSSES = tuple(HEADS)  # the heads' names
STRATEGIES = ("autoregressive", "direct")
# "log": the LSTM reads log values relative to the window's mean log (a multiplicative level);
# the scaling then only divides each series by its level (rule "level"), so values are positive
WINDOW_NORMS = ("none", "last", "mean", "log")
# the smallest scaled value a log window norm reads (a value 10^4 below the series' level)
LOG_FLOOR = 1e-4


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
    segment: int = 1  # direct only: the LSTM reads the history `segment` steps at a time

    def __post_init__(self) -> None:
        if self.window_norm not in WINDOW_NORMS:
            raise ConfigError(
                f"window_norm: expected {'|'.join(WINDOW_NORMS)}, got {self.window_norm!r}"
            )
        for name in ("n_targets", "lookback", "horizon", "segment"):
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
        if self.strategy != "direct":
            # one value fed back at a time: nothing to read in segments, no log to carry back
            if self.segment > 1:
                raise ConfigError(
                    f"segment: reading the history {self.segment} steps at a time needs strategy "
                    f"'direct', got {self.strategy!r}"
                )
            if self.window_norm == "log":
                raise ConfigError(
                    f"window_norm: 'log' needs strategy 'direct', got {self.strategy!r}"
                )
        object.__setattr__(self, "quantiles", tuple(float(q) for q in self.quantiles))
        head_of(self.loss).check(self.quantiles, self.window_norm)
        self.encoder_config()

    @property
    def head(self) -> Head:
        """The head object of ``loss`` (see `seqshape.models.heads`)."""
        return head_of(self.loss)

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
        return self.head.n_params(self.quantiles)

    @property
    def n_segments(self) -> int:
        """How many steps the LSTM takes over a history: one per segment (the lookback rounded
        up to whole segments, the first value repeated in front)."""
        return -(-self.lookback // self.segment)

    def encoder_config(self) -> EncoderConfig:
        return EncoderConfig(
            # segments are embedded to H values each before the LSTM (SegRNN)
            input_size=self.input_size if self.segment == 1 else self.hidden_size,
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
        self.embed: nn.Module | None = None
        if config.segment > 1:
            # (B, S, segment·(Z+Cf)) -> (B, S, H): each segment of the history one LSTM input
            self.embed = nn.Sequential(nn.Linear(config.segment * config.input_size, H), nn.ReLU())
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
        if self.highway is None:
            return self._to_params(self.head(out))
        if recent is None:
            raise ShapeError("recent: this model has a highway; expected (B, p, Z) recent values")
        # (B, ..., p, Z) -> (B, ..., Z): the highway's term, added to the location
        return self._to_params(self.head(out), self._highway(recent)[..., 0])

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

    def _to_params(self, raw: Tensor, level: Tensor | None = None) -> Tensor:
        """(B, ..., Z·P) head outputs [+ (B, ..., Z) highway term] -> (B, ..., Z, P) parameters
        (the head's positivity and ordering; the term added to its location)."""
        c = self.config
        # (B, ..., Z·P) -> (B, ..., Z, P)
        return c.head.to_params(raw.view(*raw.shape[:-1], c.n_fed, c.n_params), level)

    def point(self, p: Tensor) -> Tensor:
        """(..., Z, P) parameters -> (..., Z) point forecast (mean, or the median quantile)."""
        return p[..., self.config.head.point_index(self.config.quantiles)]

    def sample(
        self, p: Tensor, generator: torch.Generator | None = None, scale: Tensor | None = None
    ) -> Tensor:
        """(..., Z, P) -> (..., Z) one draw from the predicted distribution. ``scale`` (..., Z):
        a count head's count scale per value (the scaling's z_std; None: the values are counts),
        so that it draws whole counts; other heads ignore it."""
        c = self.config
        return c.head.sample(p, generator, c.quantiles, scale)

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
        history, future_cov = self.fit_length(history, future_cov)
        history, future = to_model_space(history, c), to_model_space(future, c)
        offset = self.offset(history)
        history, future = history - offset, future - offset
        # a log window norm's parameters stay in log space here, where the loss compares them
        return self.unshift(self._forward(history, future, future_cov, sampling_ratio), offset)

    def offset(self, history: Tensor) -> Tensor:
        """(B, N, Z) -> (B, 1, Z): the per-window level removed before the LSTM (window_norm)."""
        if self.config.window_norm == "last":
            return history[:, -1:]
        if self.config.window_norm in ("mean", "log"):
            return history.mean(dim=1, keepdim=True)
        return torch.zeros_like(history[:, :1])

    def unshift(self, params: Tensor, offset: Tensor) -> Tensor:
        """Add the window level back to the location parameters of (B, K, Z, P)."""
        if self.config.window_norm == "none":
            return params
        return self.shift(params, offset)

    def shift(self, params: Tensor, level: Tensor) -> Tensor:
        """(..., Z, P) parameters with (..., Z) ``level`` added to their location."""
        return self.config.head.shift(params, level)

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
        # scheduled sampling: each step is fed the model's own point with that probability
        p, state, recent = self.begin(history, future_cov)
        params = [p]
        for k in range(K - 1):
            use_pred = torch.rand(history.shape[0], 1) < sampling_ratio
            z_next = torch.where(use_pred, self.point(p).detach(), future[:, k])
            f_next = future_cov[:, N + k + 1] if c.n_future else None
            p, state, recent = self.step(z_next, f_next, state, recent)
            params.append(p)
        # K x (B, Z, P) -> (B, K, Z, P)
        return torch.stack(params, dim=1)

    def _direct_blocks(self, history: Tensor, k: int, future_cov: Tensor | None) -> Tensor:
        """The direct strategy for any k: K steps at a time, each block's points appended to the
        history the next block reads (its length kept), -> (B, k, Z, P). Covariates of steps past
        the last requested one, which a final partial block's head also reads, repeat the last
        given row; its extra steps are dropped."""
        K, N = self.config.horizon, history.shape[1]
        blocks, done = [], 0
        while done < k:
            f = None
            if self.config.n_future:
                # (B, N+K, Cf): this block's rows, the last given row repeated past the end
                f = future_cov[:, done : done + N + K]
                if f.shape[1] < N + K:
                    pad = f[:, -1:].expand(-1, N + K - f.shape[1], -1)
                    f = torch.cat([f, pad], dim=1)
            p = self.forecast(history, K, f)
            blocks.append(p)
            # (B, N, Z) ++ (B, K, Z) -> the last N rows: the next block's history
            history = torch.cat([history, self.point(p)], dim=1)[:, -N:]
            done += K
        return torch.cat(blocks, dim=1)[:, :k]

    def _direct(self, history: Tensor, future_cov: Tensor | None, K: int) -> Tensor:
        c = self.config
        if K != c.horizon:  # a programming error: forecast() goes block by block
            raise ShapeError(f"K: the direct head emits K={c.horizon} steps, got {K}")
        B, N = history.shape[0], history.shape[1]
        f_next = future_cov[:, 1 : N + 1] if c.n_future else None
        enc = self.encoder(self.segments(self.step_inputs(history, f_next)))
        feats = [enc.outputs[:, -1]]
        if c.n_future:
            # (B, K, Cf) -> (B, K·Cf): the known covariates of every future step
            feats.append(future_cov[:, N : N + K].reshape(B, -1))
        raw = self.head(torch.cat(feats, dim=-1))
        # (B, p, Z) -> (B, Z, K) -> (B, K, Z): the linear map of the last p values to K steps
        level = None
        if self.highway is not None:
            level = self._highway(self.recent(history)).transpose(1, 2)
        # (B, K·Z·P) -> (B, K, Z·P) -> (B, K, Z, P) via the head's transforms
        return self._to_params(raw.view(B, K, c.n_fed * c.n_params), level)

    def fit_length(
        self, history: Tensor, future_cov: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """A segment model reads exactly S·segment rows: (B, N, Z) histories (and their
        (B, N+K, Cf) known covariates) cut to their last rows or with the first row repeated in
        front; a model without segments gets them back as they are."""
        if self.embed is None:
            return history, future_cov
        want = self.config.n_segments * self.config.segment
        return _to_rows(history, want), (
            None
            if future_cov is None
            else _to_rows(future_cov, future_cov.shape[1] - history.shape[1] + want)
        )

    def segments(self, x: Tensor) -> Tensor:
        """(B, N, Z+Cf) step inputs -> the LSTM's inputs: themselves, or with ``segment`` > 1
        (the rows `fit_length` gives) cut into segments and embedded: (B, S, H)."""
        c = self.config
        if self.embed is None:
            return x
        # (B, S·segment, F) -> (B, S, segment·F) -> (B, S, H)
        return self.embed(x.reshape(x.shape[0], c.n_segments, c.segment * x.shape[2]))

    # -- one step at a time: the only place of the one-step math ---------------------------------
    def encode(self, history: Tensor, future_cov: Tensor | None = None) -> tuple[Tensor, State]:
        """Read the history -> (out (B, H) predicting step N, carried state)."""
        c = self.config
        N = history.shape[1]
        f_next = future_cov[:, 1 : N + 1] if c.n_future else None
        enc = self.encoder(self.step_inputs(history, f_next))
        return enc.outputs[:, -1], enc.state

    def begin(
        self, history: Tensor, future_cov: Tensor | None = None
    ) -> tuple[Tensor, State, Tensor | None]:
        """Read a history (B, N, Z) relative to its window level (``future_cov`` (B, >= N+1, Cf)
        as in `forecast`) -> (params (B, Z, P) of step N, the carried state, the highway's window
        (B, p, Z) or None): what `step` continues from."""
        out, state = self.encode(history, future_cov)
        recent = self.recent(history) if self.highway is not None else None
        return self.params(out, recent), state, recent

    def step(
        self, z: Tensor, f_next: Tensor | None, state: State, recent: Tensor | None = None
    ) -> tuple[Tensor, State, Tensor | None]:
        """Feed one value and predict the next: one cell step with the carried state.

        ``z`` (B, Z) the newest value (scaled, relative to the window level); ``f_next`` (B, Cf)
        the known covariates of the row being predicted (None when Cf = 0); ``state`` the (h[, c])
        after the previous value; ``recent`` (B, p, Z) the highway's window before ``z`` (None
        without a highway) -> (params (B, Z, P) of the next value, the new state, the window moved
        on by ``z``). Forecasts, scheduled sampling, streams, the server, the anomaly detector and
        the exported ONNX step graph all step through here.
        """
        if recent is not None:
            recent = self.push(recent, z)
        # (B, Z) ++ (B, Cf) -> (B, Z+Cf) -> (B, H): one cell step per layer, the LSTM's own weights
        out, state = self.encoder.step(self.step_inputs(z, f_next), state)
        return self.params(out, recent), state, recent

    def rollout(
        self,
        p: Tensor,
        state: State,
        recent: Tensor | None,
        k: int,
        f_ahead: Tensor | None = None,
        *,
        draw: bool = False,
        generator: torch.Generator | None = None,
        scale: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``k`` steps from the first one's parameters ``p`` (B, Z, P): each step's point (with
        ``draw``: a sample, ``scale`` (B, Z) as in `sample`) is fed back through `step` ->
        (params (B, K, Z, P), the values fed (B, K, Z)). ``f_ahead`` (B, K, Cf): the known
        covariates of the K rows predicted."""
        params, values = [], []
        for j in range(k):
            params.append(p)
            z = self.sample(p, generator, scale) if draw else self.point(p)
            values.append(z)
            if j < k - 1:
                f_next = f_ahead[:, j + 1] if self.config.n_future else None
                p, state, recent = self.step(z, f_next, state, recent)
        # K x (B, Z, P) -> (B, K, Z, P); K x (B, Z) -> (B, K, Z)
        return torch.stack(params, dim=1), torch.stack(values, dim=1)

    def forecast(
        self,
        history: Tensor,
        k: int,
        future_cov: Tensor | None = None,
        *,
        samples: int = 0,
        generator: torch.Generator | None = None,
        scale: Tensor | None = None,
    ) -> Tensor:
        """Forecast ``k`` steps -> (B, K, O+Cp, P) parameters; with ``samples`` > 0 -> (S, B, K, O+Cp)
        sample paths, each step's draw fed back through the LSTM.

        ``history`` (B, N, O+Cp) any N >= 1; ``future_cov`` (B, N+K, Cf) when Cf > 0. The
        autoregressive path costs one encoder pass plus K-1 cell steps. ``scale`` (B, O+Cp): each
        window's count scale (its series' z_std row), which a count head needs to draw whole
        counts (see `sample`); other heads ignore it.
        """
        if not isinstance(k, int) or k < 1:
            raise ShapeError(f"K: expected a horizon >= 1, got {k!r}")
        self._check(history, future_cov, k)
        c = self.config
        if c.strategy == "direct":
            if samples:
                raise ConfigError("samples: sample paths need the autoregressive strategy")
            if k != c.horizon:
                return self._direct_blocks(history, k, future_cov)
            history, future_cov = self.fit_length(history, future_cov)
            history = to_model_space(history, c)
            offset = self.offset(history)
            params = self.unshift(self._direct(history - offset, future_cov, k), offset)
            return from_model_space(params, c)
        offset = self.offset(history)
        history = history - offset
        B, N = history.shape[0], history.shape[1]
        if samples:
            # (B, ...) -> (S·B, ...): every path carries its own state
            history = history.repeat(samples, 1, 1)
            future_cov = future_cov.repeat(samples, 1, 1) if future_cov is not None else None
            scale = scale.repeat(samples, 1) if scale is not None else None
        p, state, recent = self.begin(history, future_cov)
        f_ahead = future_cov[:, N:] if c.n_future else None
        params, draws = self.rollout(
            p, state, recent, k, f_ahead, draw=bool(samples), generator=generator, scale=scale
        )
        if samples:
            # (S·B, K, Z) -> (S, B, K, Z), back at the window's level
            return draws.view(samples, B, k, c.n_fed) + offset.unsqueeze(0)
        return self.unshift(params, offset)


def _to_rows(x: Tensor, n: int) -> Tensor:
    """(B, T, F) -> (B, n, F): the last n rows, the first row repeated in front when T < n."""
    if x.shape[1] >= n:
        return x[:, x.shape[1] - n :]
    # (B, 1, F) repeated n - T times ++ (B, T, F)
    return torch.cat([x[:, :1].expand(-1, n - x.shape[1], -1), x], dim=1)


def to_model_space(values: Tensor, config: ForecasterConfig) -> Tensor:
    """Scaled values -> what the network reads: their logs under a log window norm (floored at
    LOG_FLOOR), else themselves."""
    if config.window_norm != "log":
        return values
    return torch.log(values.clamp(min=LOG_FLOOR))


def from_model_space(params: Tensor, config: ForecasterConfig) -> Tensor:
    """(..., Z, P) parameters in the network's space -> scaled units: a log window norm's heads
    have locations only (a point, or quantiles), each carried back by exp."""
    return params.exp() if config.window_norm == "log" else params


def forecast_loss(
    params: Tensor, target: Tensor, config: ForecasterConfig, scale: Tensor | None = None
) -> Tensor:
    """Mean loss of (B, K, Z, P) parameters (as `ForecasterNet.forward` returns them) against
    (B, K, Z) true values (scaled units), the head's (`seqshape.models.heads`); under a log
    window norm both in log space, so an error counts relative to the level. ``scale`` (B, Z):
    each window's count scale (its series' z_std row), with which a count head scores the counts
    themselves (the exact likelihood); None: the scaled values are scored as counts. Other heads
    ignore it."""
    s = None if scale is None else scale.unsqueeze(1)
    return config.head.loss(params, to_model_space(target, config), config.quantiles, s)
