"""The forecaster's heads: one object per output distribution, found by name in `HEADS`.

A head owns everything that differs between likelihoods, so the rest of the package asks it
instead of switching on the loss name:

- its parameters: how many (P), their names, which one is the point forecast, how each moves
  with the scaling ("loc" is shifted and stretched, "scale" only stretched, "fixed" neither);
- its scaling rule: "standard" ((x - mean) / std per series) or "mean" for counts
  (x / (1 + the training part's mean), no centring, as DeepAR scales counts: Salinas et al., IJF
  2020); which window norms it allows;
- NumPy (no torch, so the ONNX runtime can use it): parameters back to original units, the
  standard deviation, the answer every forecaster gives (`outputs`), central intervals;
- torch (imported inside the methods): raw network outputs -> parameters, the training loss, one
  draw with a `torch.Generator`, the location shift of window_norm and the highway;
- the head's bias when the highway starts as a fitted baseline (`start_bias`).

Shapes: (..., Z, P) parameters of Z values, P per value; (..., Z) values. A new head is one class
here, added to `HEADS`, and its tests (docs/forecast.md, "Heads").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from ..errors import ConfigError

__all__ = ["HEADS", "Head", "count_quantiles", "head_of"]

# positivity of a count head's rate: the identity above RATE_KNEE (so a highway start forecasts
# exactly its baseline), an exponential below it, continuous with its slope, never 0
RATE_KNEE = 0.05


def _inv_softplus(s: np.ndarray) -> np.ndarray:
    """softplus^-1, stable for large values."""
    return s + np.log(-np.expm1(-s))


class Head:
    """The base: a point forecast with location parameters only (subclasses override)."""

    name = ""
    kinds: tuple[str, ...] = ("loc",)  # per parameter: "loc" | "scale" | "fixed"
    names: tuple[str, ...] = ("point",)
    scaling = "standard"
    window_norms = ("none", "last", "mean")
    # why the others are refused, for the error message
    why_norms = "has a spread, which a log window norm would not carry back"
    default_window_norm = "last"  # what an estimator left to choose should use
    probabilistic = True
    takes_quantiles = False
    extras: dict[str, int] = {}  # parameters an answer carries by name, e.g. {"df": 2}
    score_name: str | None = None  # the loss reported beside an interval (backtests)

    # -- parameters -------------------------------------------------------------------------------
    def n_params(self, quantiles: Sequence[float] = ()) -> int:
        """P: parameters per predicted value."""
        return len(self.param_names(quantiles))

    def param_names(self, quantiles: Sequence[float] = ()) -> tuple[str, ...]:
        return self.names

    def kinds_of(self, n: int) -> tuple[str, ...]:
        """How each of the ``n`` parameters moves with the scaling."""
        return self.kinds

    def point_index(self, quantiles: Sequence[float] = ()) -> int:
        """Which parameter is the point forecast."""
        return 0

    def check(self, quantiles: Sequence[float], window_norm: str) -> None:
        """ConfigError when the options do not fit this head."""
        if window_norm not in self.window_norms:
            raise ConfigError(
                f"window_norm: the {self.name} head {self.why_norms}; expected "
                f"{' or '.join(self.window_norms)}, got {window_norm!r}"
            )

    # -- NumPy: original units and answers --------------------------------------------------------
    def to_original(self, params: np.ndarray, mean, std) -> np.ndarray:
        """(..., O, P) scaled parameters -> original units with (..., O) ``mean`` and ``std``:
        locations are unscaled, scales stretched, the rest kept."""
        p = np.asarray(params)
        m, s = np.asarray(mean), np.asarray(std)
        kinds = self.kinds_of(p.shape[-1])
        if all(k == "loc" for k in kinds):
            # (..., O) -> (..., O, 1): one mean and std per value, over its parameters
            return p * s[..., None] + m[..., None]
        out = p.astype(np.result_type(p, m, s), copy=True)
        for i, kind in enumerate(kinds):
            if kind == "loc":
                out[..., i] = p[..., i] * s + m
            elif kind == "scale":
                out[..., i] = p[..., i] * s
        return out

    def std(self, params: np.ndarray) -> np.ndarray | None:
        """(..., P) parameters in original units -> (...) standard deviations (None: no spread)."""
        return None

    def outputs(self, params: np.ndarray, quantiles: Sequence[float] = ()) -> dict:
        """(..., O, P) parameters in original units -> the answer every forecaster gives:
        {"point" (..., O), "params"} plus what the head has: "quantiles" {q: (..., O)}, "std",
        and its named parameters (`extras`, e.g. "scale", "df", "alpha")."""
        res: dict = {"point": params[..., self.point_index(quantiles)], "params": params}
        if self.takes_quantiles:
            res["quantiles"] = {float(q): params[..., i] for i, q in enumerate(quantiles)}
        sd = self.std(params)
        if sd is not None:
            res["std"] = sd
        for key, i in self.extras.items():
            res[key] = params[..., i]
        return res

    def interval_level(self, quantiles: Sequence[float] = ()) -> float:
        """The central interval a backtest scores."""
        return 0.8

    def interval(self, out: dict, level: float) -> tuple[np.ndarray, np.ndarray] | None:
        """The central ``level`` interval (lower, upper) from an `outputs` dict, in its units;
        None when the head has no closed form for it (draw sample paths instead)."""
        return None

    def start_bias(self, resid: np.ndarray, target: np.ndarray, quantiles=()) -> np.ndarray:
        """The head's bias when its weights are zero and the highway holds a fitted baseline:
        the distribution of the baseline's residuals ``resid`` (W, width, Z) on the training
        windows (``target`` (W, width, Z) what followed them) -> (width, Z, P)."""
        return np.zeros((*resid.shape[1:], self.n_params(quantiles)))

    # -- torch ------------------------------------------------------------------------------------
    def to_params(self, raw, level=None):
        """(..., Z, P) raw network outputs -> parameters, with ``level`` (..., Z) (the highway's
        linear term) added to the location."""
        p = self._positive(raw)
        return p if level is None else self.shift(p, level)

    def _positive(self, raw):
        return raw

    def shift(self, params, level):
        """(..., Z, P) parameters with (..., Z) ``level`` added to every location."""
        import torch

        # (..., Z) -> (..., Z, 1)
        off = level.unsqueeze(-1)
        kinds = self.kinds_of(params.shape[-1])
        if all(k == "loc" for k in kinds):
            return params + off
        mask = torch.tensor([k == "loc" for k in kinds], dtype=params.dtype)
        return params + off * mask

    def loss(self, params, target, quantiles=(), scale=None):
        """Mean loss of (..., Z, P) parameters against (..., Z) true values (scaled units)."""
        from torch.nn import functional as Fn

        return Fn.mse_loss(params[..., 0], target)

    def sample(self, params, generator=None, quantiles=(), scale=None):
        """(..., Z, P) -> (..., Z) one draw (a point head draws its point)."""
        return params[..., self.point_index(quantiles)]


class MseHead(Head):
    name = "mse"
    probabilistic = False
    window_norms = ("none", "last", "mean", "log")


class MaeHead(Head):
    """A point forecast trained on absolute errors: the median, robust to outliers, and in log
    space (window_norm "log") an error relative to the level, as sMAPE and MASE judge."""

    name = "mae"
    probabilistic = False
    window_norms = ("none", "last", "mean", "log")

    def loss(self, params, target, quantiles=(), scale=None):
        from torch.nn import functional as Fn

        return Fn.l1_loss(params[..., 0], target)


class GaussianHead(Head):
    name = "gaussian"
    kinds, names = ("loc", "scale"), ("mean", "std")

    def std(self, params):
        return params[..., 1]

    def interval(self, out, level):
        z = NormalDist().inv_cdf(0.5 + level / 2)
        return out["point"] - z * out["std"], out["point"] + z * out["std"]

    def start_bias(self, resid, target, quantiles=()):
        bias = super().start_bias(resid, target, quantiles)
        s = np.maximum(self._spread(resid.std(axis=0)) - 1e-4, 1e-6)
        bias[..., 1] = _inv_softplus(s)
        return bias

    def _spread(self, std: np.ndarray) -> np.ndarray:
        """The scale parameter of a residual standard deviation."""
        return std

    def _positive(self, raw):
        import torch
        from torch.nn import functional as Fn

        return torch.cat([raw[..., :1], Fn.softplus(raw[..., 1:2]) + 1e-4], dim=-1)

    def loss(self, params, target, quantiles=(), scale=None):
        from torch.nn import functional as Fn

        return Fn.gaussian_nll_loss(params[..., 0], target, params[..., 1] ** 2, full=True)

    def sample(self, params, generator=None, quantiles=(), scale=None):
        import torch

        eps = torch.randn(params.shape[:-1], generator=generator, dtype=params.dtype)
        return params[..., 0] + params[..., 1] * eps


class StudentTHead(GaussianHead):
    name = "student_t"
    kinds, names = ("loc", "scale", "fixed"), ("loc", "scale", "df")
    extras = {"scale": 1, "df": 2}

    def std(self, params):
        df = params[..., 2]
        return params[..., 1] * np.sqrt(df / (df - 2.0))

    def interval(self, out, level):
        return None  # no t quantile function without scipy: sample paths or draws

    def _spread(self, std):
        df = math.log(2.0) + 2.0  # the df a zero raw output gives: softplus(0) + 2
        return std * np.sqrt((df - 2.0) / df)  # the t scale with that variance

    def _positive(self, raw):
        import torch
        from torch.nn import functional as Fn

        # df > 2: finite variance
        return torch.cat([super()._positive(raw[..., :2]), Fn.softplus(raw[..., 2:3]) + 2.0], -1)

    def loss(self, params, target, quantiles=(), scale=None):
        import torch

        loc, sc, df = params[..., 0], params[..., 1], params[..., 2]
        return -torch.distributions.StudentT(df, loc, sc).log_prob(target).mean()

    def sample(self, params, generator=None, quantiles=(), scale=None):
        import torch

        # a t draw is a normal draw scaled by sqrt(df / chi2(df)); chi2 from the global RNG
        z = torch.randn(params.shape[:-1], generator=generator, dtype=params.dtype)
        chi2 = torch.distributions.Chi2(params[..., 2]).sample()
        return params[..., 0] + params[..., 1] * z * torch.sqrt(params[..., 2] / chi2)


class QuantileHead(Head):
    name = "quantile"
    takes_quantiles = True
    window_norms = ("none", "last", "mean", "log")
    score_name = "pinball"

    def param_names(self, quantiles=()):
        return tuple(f"q{float(q):g}" for q in quantiles)

    def kinds_of(self, n):
        return ("loc",) * n

    def point_index(self, quantiles=()):
        """The median quantile (the one nearest 0.5)."""
        return int(np.argmin([abs(float(q) - 0.5) for q in quantiles]))

    def check(self, quantiles, window_norm):
        super().check(quantiles, window_norm)
        qs = list(quantiles)
        if not qs or any(not 0 < q < 1 for q in qs) or qs != sorted(set(qs)):
            raise ConfigError(f"quantiles: expected increasing values in (0, 1), got {qs}")

    def interval_level(self, quantiles=()):
        return float(quantiles[-1] - quantiles[0])

    def interval(self, out, level):
        """The pair of predicted quantiles ``level`` apart: central ones first, else the
        outermost; None when no pair fits."""
        qs = sorted(out["quantiles"])
        lo_q, hi_q = 0.5 - level / 2, 0.5 + level / 2
        pairs = [(a, b) for a in qs for b in qs if abs(a - lo_q) < 1e-9 and abs(b - hi_q) < 1e-9]
        if not pairs and abs(qs[-1] - qs[0] - level) < 1e-9:
            pairs = [(qs[0], qs[-1])]
        if not pairs:
            return None
        return out["quantiles"][pairs[0][0]], out["quantiles"][pairs[0][1]]

    def start_bias(self, resid, target, quantiles=()):
        # (Q, width, Z) -> (width, Z, Q)
        return np.moveaxis(np.quantile(resid, list(quantiles), axis=0), 0, -1)

    def _positive(self, raw):
        import torch

        # sorted along P: quantiles never cross
        return torch.sort(raw, dim=-1).values

    def loss(self, params, target, quantiles=(), scale=None):
        import torch

        qs = torch.tensor(quantiles, dtype=params.dtype)
        # (..., Z, 1) - (..., Z, Q) -> pinball loss averaged over everything
        diff = target.unsqueeze(-1) - params
        return torch.maximum(qs * diff, (qs - 1) * diff).mean()

    def sample(self, params, generator=None, quantiles=(), scale=None):
        import torch

        # inverse-CDF draw by linear interpolation between the predicted quantiles
        u = torch.rand(params.shape[:-1], generator=generator, dtype=params.dtype)
        qs = torch.tensor(quantiles, dtype=params.dtype)
        idx = torch.searchsorted(qs, u.reshape(-1).contiguous()).clamp(1, len(qs) - 1)
        idx = idx.view(u.shape)
        lo_q, hi_q = qs[idx - 1], qs[idx]
        lo = params.gather(-1, (idx - 1).unsqueeze(-1)).squeeze(-1)
        hi = params.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        w = ((u - lo_q) / (hi_q - lo_q)).clamp(0, 1)
        return lo + w * (hi - lo)


# -- counts ----------------------------------------------------------------------------------------
class PoissonHead(Head):
    """Counts: y ~ Poisson(rate). Scaled by 1 + the series' mean (no centring), so the scaled
    rate times that scale is the count's rate. ``scale`` (..., Z) in `loss` and `sample`: each
    value's count scale (the scaling's z_std row); None: the values are the counts themselves."""

    name = "poisson"
    names = ("rate",)
    scaling = "mean"
    window_norms = ("none",)
    why_norms = (
        "predicts a rate, from which no window level can be subtracted (its scaling already "
        "divides each series by 1 + its mean)"
    )
    default_window_norm = "none"

    def std(self, params):
        return np.sqrt(params[..., 0])

    def _alpha(self, out: dict):
        return None

    def interval(self, out, level):
        lo_q = 0.5 - level / 2
        q = count_quantiles(out["point"], self._alpha(out), [lo_q, 1.0 - lo_q])
        return q[0], q[1]

    def _positive(self, raw):
        return _rate(raw)

    def to_params(self, raw, level=None):
        # the highway's level joins the rate *before* the positivity: rates stay > 0
        if level is None:
            return self._positive(raw)
        import torch

        return self._positive(torch.cat([raw[..., :1] + level.unsqueeze(-1), raw[..., 1:]], -1))

    def loss(self, params, target, quantiles=(), scale=None):
        import torch

        s = 1.0 if scale is None else scale
        # scaled rate and values (..., Z) -> counts
        rate, y = params[..., 0] * s, target * s
        # -log p(y) = rate - y log(rate) + log(y!)
        return (rate - y * torch.log(rate) + torch.lgamma(y + 1.0)).mean()

    def sample(self, params, generator=None, quantiles=(), scale=None):
        import torch

        s = 1.0 if scale is None else scale
        # a count at the count's rate, back in scaled units (count / scale)
        return torch.poisson(params[..., 0] * s, generator=generator) / s


class NegBinHead(PoissonHead):
    """Overdispersed counts: y ~ NegBin(mean, alpha), variance mean + alpha * mean^2 (the
    parameterisation of DeepAR). alpha is a shape, so it keeps its value in original units."""

    name = "negbin"
    kinds, names = ("loc", "fixed"), ("mean", "alpha")
    extras = {"alpha": 1}

    def std(self, params):
        mu = params[..., 0]
        return np.sqrt(mu + params[..., 1] * mu**2)

    def _alpha(self, out):
        return out["alpha"]

    def start_bias(self, resid, target, quantiles=()):
        bias = super().start_bias(resid, target, quantiles)
        # the residuals' overdispersion var / mean^2 (the Poisson part, mean / scale^2 in scaled
        # units, neglected)
        mean = np.maximum(np.abs(target.mean(axis=0)), 1e-3)
        alpha = np.clip(resid.var(axis=0) / mean**2, 1e-3, 1e3)
        bias[..., 1] = _inv_softplus(alpha - 1e-4)
        return bias

    def _positive(self, raw):
        import torch
        from torch.nn import functional as Fn

        return torch.cat([_rate(raw[..., :1]), Fn.softplus(raw[..., 1:2]) + 1e-4], dim=-1)

    def loss(self, params, target, quantiles=(), scale=None):
        import torch

        s = 1.0 if scale is None else scale
        # scaled mean and values (..., Z) -> counts; alpha is a shape, the same in both units
        mu, y, alpha = params[..., 0] * s, target * s, params[..., 1]
        r = 1.0 / alpha
        # -log p(y) = log y! + lgamma(r) - lgamma(y + r) + r log(1 + a mu) - y log(a mu / (1 + a mu))
        log1p = torch.log1p(alpha * mu)
        nll = (
            torch.lgamma(y + 1.0)
            + torch.lgamma(r)
            - torch.lgamma(y + r)
            + r * log1p
            - y * (torch.log(alpha * mu) - log1p)
        )
        return nll.mean()

    def sample(self, params, generator=None, quantiles=(), scale=None):
        import torch

        s = 1.0 if scale is None else scale
        mu, r = params[..., 0] * s, 1.0 / params[..., 1]
        # gamma-Poisson: rate ~ Gamma(shape r, mean mu), then a Poisson count at that rate
        rate = torch._standard_gamma(r, generator=generator) * (mu / r)
        return torch.poisson(rate, generator=generator) / s


def _rate(x):
    """A count head's positivity: x above RATE_KNEE, an exponential below it (same value and
    slope at the knee), clamped so it is never 0 and its gradient never NaN."""
    import torch

    c = RATE_KNEE
    return torch.where(x >= c, x, c * torch.exp(torch.clamp(x / c - 1.0, min=-30.0, max=0.0)))


def count_quantiles(mean, alpha, qs: Sequence[float], max_steps: int = 1_000_000) -> np.ndarray:
    """Exact quantiles of Poisson(mean) (``alpha`` None) or NegBin(mean, alpha) counts: per
    element the smallest k with P(X <= k) >= q -> (len(qs), *mean.shape).

    The CDF is summed upwards from max(0, mean - 12 sd) (below it lies less than 1e-30 of the
    mass of these near-normal cases), one term per step by the pmf's ratio recurrence, in float64.
    """
    mu = np.maximum(np.asarray(mean, dtype=np.float64), 0.0)
    shape = mu.shape
    mu = mu.reshape(-1)
    a = None if alpha is None else np.maximum(np.asarray(alpha, np.float64).reshape(-1), 1e-12)
    var = mu if a is None else mu + a * mu**2
    k = np.floor(np.maximum(0.0, mu - 12.0 * np.sqrt(var)))
    lg = np.vectorize(math.lgamma, otypes=[np.float64])
    with np.errstate(divide="ignore", invalid="ignore"):
        if a is None:
            logp = np.where(
                mu > 0, k * np.log(mu) - mu - lg(k + 1.0), np.where(k == 0, 0.0, -np.inf)
            )
        else:
            r = 1.0 / a
            logp = (
                lg(k + r) - lg(r) - lg(k + 1.0)
                + r * (np.log(r) - np.log(r + mu))
                + np.where(k > 0, k * (np.log(mu) - np.log(r + mu)), 0.0)
            )  # fmt: skip
        ratio = np.log(mu) if a is None else np.log(mu) - np.log(r + mu)
    cdf = np.exp(logp)
    # the levels to reach, a hair lower so that a sum of float64 terms does not miss 1.0
    targets = np.asarray(qs, dtype=np.float64) * (1.0 - 1e-12)
    out = np.full((len(targets), mu.size), np.nan)
    for j, q in enumerate(targets):
        out[j, cdf >= q] = k[cdf >= q]
    active = np.isnan(out).any(axis=0) & (mu > 0)
    for _ in range(max_steps):
        if not active.any():
            break
        i = np.flatnonzero(active)
        ki = k[i]
        # log p(k + 1) - log p(k): log(mu / (k + 1)) or log((k + r) / (k + 1) * mu / (r + mu))
        step = ratio[i] - np.log(ki + 1.0)
        if a is not None:
            step = step + np.log(ki + r[i])
        logp[i] += step
        k[i] = ki + 1.0
        cdf[i] += np.exp(logp[i])
        for j, q in enumerate(targets):
            hit = i[np.isnan(out[j, i]) & (cdf[i] >= q)]
            out[j, hit] = k[hit]
        active[i] = np.isnan(out[:, i]).any(axis=0)
    out[:, mu == 0] = 0.0
    return out.reshape(len(targets), *shape)


HEADS: dict[str, Head] = {
    h.name: h
    for h in (
        MseHead(),
        MaeHead(),
        GaussianHead(),
        StudentTHead(),
        QuantileHead(),
        PoissonHead(),
        NegBinHead(),
    )
}


def head_of(loss: str) -> Head:
    """The head called ``loss``; ConfigError naming the known ones otherwise."""
    head = HEADS.get(loss) if isinstance(loss, str) else None
    if head is None:
        raise ConfigError(f"loss: expected one of {', '.join(HEADS)}, got {loss!r}")
    return head
