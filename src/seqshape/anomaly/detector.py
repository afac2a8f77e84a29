"""`AnomalyDetector`: a small LSTM forecaster whose one-step-ahead residuals become anomaly scores.

    det = AnomalyDetector(DetectorConfig()).fit(values[:n], timestamps[:n])   # train on a stretch
    out = det.score_series(values, timestamps)      # batch: prediction, error, score, is_anomaly
    score, flag = det.update(value, timestamp)      # streaming: one LSTM cell step per point
    det.save("detector/"); AnomalyDetector.load("detector/")

The pipeline at row ``t`` (legend: T rows, O value columns, Cf = 2 time-of-day covariates, H hidden)::

    LSTM input     x_{t-1} = [z_{t-1} (O), f_t (Cf)]      z: values scaled with the training
                                                          stretch's mean/std; f: time of day
    prediction     out_{t-1} (H) -> head -> z^_t (O) (+ std_t with the gaussian head)
    error          e_t = RMS over columns of (z_t - z^_t)   (scaled units)
    base score     "rank": how rare e_t (and its recent means) is among the errors seen so far
                   "tail": TailProbabilityScorer over e_t (Numenta's anomaly likelihood idea)
                   "likelihood": 1 - p-value of z_t under N(z^_t, std_t^2) (gaussian head)
    value records  a value beyond every earlier one scores like a rank p-value too (see below)
    hold           with hold = k > 0 a score only counts when it beats the previous k-1 ones
    warm-up        rows of the training stretch are scored 0 and never flagged

Everything at row ``t`` uses rows ``<= t`` only (causal). A batch pass over a whole series gives
every prediction at once (one encoder call); :meth:`update` advances one cell step with the
carried ``(h, c)`` and the same per-point scoring code, so the two agree: inference runs in
float64 and errors are rounded to ``1e-9`` before ranking, so rank ties cannot flip between paths.

The "rank" score is a conformal p-value: ``p_t = (1 + #{past e >= e_t}) / (1 + n)`` over the last
``history`` errors (a new record is divided further by ``(e_t / previous max) ** record_power``),
reported as ``min(-log10 p_t / score_cap, 1)``. It is calibrated the same way on every series,
which a threshold shared by many series (NAB's rule) needs. A *value record* — a value above the
maximum (or below the minimum) of the ``n`` earlier values by ``x`` times their range — gets
``p = exp(-x / record_margin) / (1 + n)`` on the same scale (the idea of the "spatial anomaly"
check of Numenta's NAB detector, graded instead of a fixed 5 % tolerance); the row's score is the
larger of the two. The defaults were tuned on NAB itself (docs/anomaly.md).
"""

from __future__ import annotations

import bisect
import copy
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__, runtime
from ..artifacts import build_net, config_from_dict, json_field, load_model_dir, save_model_dir
from ..batching import Batch
from ..errors import ArtifactError, ConfigError, DataError, ShapeError
from ..models.forecaster import ForecasterConfig, ForecasterNet, forecast_loss
from ..train.loop import TrainConfig, fit
from .scoring import TailProbabilityScorer, gaussian_nll_score
from .thresholds import dynamic_threshold

KIND = "detector"
SCORES = ("rank", "tail", "likelihood")
HEADS = ("mse", "gaussian")
_ERROR_DECIMALS = 9
_STATE_KIND = "AnomalyDetectorStream"
_STATE_VERSION = 1

__all__ = ["DetectorConfig", "AnomalyDetector", "RankScorer", "parse_threshold", "time_of_day"]


def parse_threshold(spec: str) -> tuple[str, float | None]:
    """``"fixed:V"`` | ``"quantile:Q"`` | ``"dynamic"`` -> (method, value)."""
    if not isinstance(spec, str):
        raise ConfigError(f"threshold: expected fixed:V, quantile:Q or dynamic, got {spec!r}")
    method, _, raw = spec.partition(":")
    method = method.strip().lower()
    if method == "dynamic" and not raw:
        return "dynamic", None
    if method in ("fixed", "quantile") and raw:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if method == "fixed" and math.isfinite(value):
            return method, value
        if method == "quantile" and 0.0 <= value <= 1.0:
            return method, value
    raise ConfigError(
        f"threshold: expected fixed:V (a number), quantile:Q (0 <= Q <= 1) or dynamic, got {spec!r}"
    )


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """Everything that defines a detector; saved as JSON in its model directory."""

    n_targets: int = 1  # O value columns
    calendar: bool = True  # time-of-day sin/cos as known covariates (needs timestamps)
    hidden_size: int = 32
    num_layers: int = 1
    chunk: int = 64  # training chunk length (the lookback); training needs chunk + 1 rows
    head: str = "gaussian"  # "mse" (a point) or "gaussian" (mean and std; needed by "likelihood")
    epochs: int = 30
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    score: str = "rank"
    smoothing: tuple[int, ...] = (1, 10)  # "rank"/"tail": means of the last s errors, max over s
    history: int = 5000  # "rank": errors remembered
    min_history: int = 20  # "rank": errors needed before the first non-zero score
    record_power: float = 4.0  # "rank": weight of a new record's margin over the previous max
    score_cap: float = 8.0  # "rank": -log10 p of this size maps to a score of 1
    tail_window: int = 1000  # "tail": TailProbabilityScorer window
    record_margin: float | None = 0.003  # value records (see the module docstring); None: off
    hold: int = 0  # 0: off; k: a score counts only above the previous k-1 base scores
    threshold: str = "fixed:0.5"

    def __post_init__(self) -> None:
        ints = {
            "n_targets": 1,
            "hidden_size": 1,
            "num_layers": 1,
            "chunk": 2,
            "epochs": 1,
            "batch_size": 1,
            "history": 2,
            "min_history": 1,
            "tail_window": 2,
            "hold": 0,
        }
        for name, low in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"{name}: expected an integer >= {low}, got {v!r}")
        if self.head not in HEADS:
            raise ConfigError(f"head: expected one of {', '.join(HEADS)}, got {self.head!r}")
        if self.score not in SCORES:
            raise ConfigError(f"score: expected one of {', '.join(SCORES)}, got {self.score!r}")
        if self.score == "likelihood" and self.head != "gaussian":
            raise ConfigError("score: 'likelihood' needs head='gaussian' (a predicted std)")
        smoothing = tuple(self.smoothing) if isinstance(self.smoothing, list | tuple) else ()
        if not smoothing or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in smoothing
        ):
            raise ConfigError(
                f"smoothing: expected a list of integers >= 1, got {self.smoothing!r}"
            )
        object.__setattr__(self, "smoothing", smoothing)
        if self.min_history > self.history:
            raise ConfigError(
                f"min_history: expected <= history={self.history}, got {self.min_history}"
            )
        for name in ("lr", "record_power", "score_cap"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ConfigError(f"{name}: expected a number > 0, got {v!r}")
        if not (isinstance(self.weight_decay, int | float) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay: expected a number >= 0, got {self.weight_decay!r}")
        m = self.record_margin
        if m is not None and not (isinstance(m, int | float) and math.isfinite(m) and m > 0):
            raise ConfigError(f"record_margin: expected a number > 0 or None, got {m!r}")
        parse_threshold(self.threshold)

    @property
    def n_future(self) -> int:
        """Cf: known covariates per step (time of day as sin, cos)."""
        return 2 if self.calendar else 0

    def forecaster_config(self) -> ForecasterConfig:
        return ForecasterConfig(
            n_targets=self.n_targets,
            n_future=self.n_future,
            lookback=self.chunk,
            horizon=1,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            loss=self.head,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["smoothing"] = list(self.smoothing)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: Path) -> DetectorConfig:
        d = dict(d)
        if "smoothing" in d and isinstance(d["smoothing"], list):
            d["smoothing"] = tuple(d["smoothing"])
        return config_from_dict(cls, d, where)


def time_of_day(timestamps: np.ndarray) -> np.ndarray:
    """(T,) datetime64 -> (T, 2) float64: sin and cos of the time of day."""
    ts = np.asarray(timestamps).astype("datetime64[ns]")
    ns = ts.astype(np.int64)
    day = 86_400 * 10**9
    angle = 2.0 * np.pi * (ns % day) / day
    # 2 x (T,) -> (T, 2)
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)


class RankScorer:
    """Errors -> conformal tail scores in [0, 1], batch or streaming (one value at a time).

    At each step the mean ``m`` of the last ``smoothing`` errors is ranked among the earlier
    means (the last ``history`` of them): ``p = (1 + #{earlier >= m}) / (1 + n)``; a new record
    (``m`` above every earlier one) gets ``p = 1 / (1 + n) / (m / max) ** record_power``. The
    score is ``min(-log10 p / cap, 1)``; 0 until ``min_history`` earlier means exist.
    """

    def __init__(
        self,
        *,
        smoothing: int = 1,
        history: int = 20000,
        min_history: int = 20,
        record_power: float = 4.0,
        cap: float = 8.0,
    ) -> None:
        self.smoothing = smoothing
        self.history = history
        self.min_history = min_history
        self.record_power = record_power
        self.cap = cap
        self.reset()

    def reset(self) -> None:
        self._recent: deque[float] = deque()
        self._recent_sum = 0.0
        self._order: deque[float] = deque()  # means in arrival order
        self._sorted: list[float] = []  # the same means, sorted

    def update(self, error: float) -> float:
        e = abs(float(error))
        if len(self._recent) == self.smoothing:
            self._recent.popleft()
        self._recent.append(e)
        # a fresh sum each step (smoothing is small): no rounding drift between paths
        m = round(math.fsum(self._recent) / len(self._recent), _ERROR_DECIMALS)
        n = len(self._sorted)
        score = 0.0
        if n >= self.min_history:
            at_least = n - bisect.bisect_left(self._sorted, m)
            if at_least == 0:
                top = self._sorted[-1]
                ratio = m / top if top > 0 else math.inf
                log_p = -math.log10(n + 1) - self.record_power * math.log10(ratio)
            else:
                log_p = math.log10(at_least + 1) - math.log10(n + 1)
            score = min(max(-log_p / self.cap, 0.0), 1.0)
        bisect.insort(self._sorted, m)
        self._order.append(m)
        if len(self._order) > self.history:
            old = self._order.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        return score

    def state_dict(self) -> dict[str, Any]:
        return {"recent": list(self._recent), "means": list(self._order)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            recent = [float(x) for x in state["recent"]]
            means = [float(x) for x in state["means"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"rank scorer state: missing or malformed field ({exc})") from None
        if len(recent) > self.smoothing or len(means) > self.history:
            raise ConfigError(
                f"rank scorer state: expected at most {self.smoothing} recent errors and "
                f"{self.history} means, got {len(recent)} and {len(means)}"
            )
        if not all(math.isfinite(x) for x in [*recent, *means]):
            raise ConfigError("rank scorer state: expected finite numbers only")
        self._recent = deque(recent)
        self._order = deque(means)
        self._sorted = sorted(means)


class _Stream:
    """The per-point scoring state shared by the batch and the streaming paths."""

    def __init__(self, config: DetectorConfig, warmup: int = 0) -> None:
        c = config
        self.config = config
        self.warmup = warmup  # the first `warmup` rows are scored 0 and never flagged
        self.count = 0
        self.lo: np.ndarray | None = None  # (O,) running min of the scaled values
        self.hi: np.ndarray | None = None
        self.last_z: np.ndarray | None = None  # (O,) previous scaled value, the next LSTM input
        self.lstm: tuple[torch.Tensor, torch.Tensor] | None = None  # (L, 1, H) each, float64
        self.recent: deque[float] = deque()  # the last hold-1 base scores
        if c.score == "rank":
            self.scorers: list[Any] = [
                RankScorer(
                    smoothing=s,
                    history=c.history,
                    min_history=c.min_history,
                    record_power=c.record_power,
                    cap=c.score_cap,
                )
                for s in c.smoothing
            ]
        elif c.score == "tail":
            self.scorers = [
                TailProbabilityScorer(window=c.tail_window, short_window=s) for s in c.smoothing
            ]
        else:
            self.scorers = []

    @property
    def warming(self) -> bool:
        """Whether the last row advanced was a warm-up row."""
        return self.count <= self.warmup

    def advance(
        self, z: np.ndarray, pred: np.ndarray | None, std: np.ndarray | None
    ) -> tuple[float, float, float]:
        """Score the scaled value ``z`` (O,) against its prediction -> (error, residual score,
        score): the residual score leaves out value records, hold and warm-up."""
        c = self.config
        error, base = 0.0, 0.0
        if pred is not None:
            # (O,) residual -> RMS over columns, rounded so both paths rank identical numbers
            error = round(float(np.sqrt(np.mean((z - pred) ** 2))), _ERROR_DECIMALS)
            if c.score == "likelihood":
                base = float(np.max(gaussian_nll_score(z, pred, std)))
            else:
                base = max(s.update(error) for s in self.scorers)
        residual = base
        if c.record_margin is not None and self.lo is not None:
            span = self.hi - self.lo
            # (O,) how far beyond the earlier range each column lies, in units of that range
            beyond = np.where(span > 0, np.maximum(z - self.hi, self.lo - z), 0.0) / np.where(
                span > 0, span, 1.0
            )
            x = float(beyond.max())
            if x > 0:
                log_p = -math.log10(self.count + 1) - x / (c.record_margin * math.log(10))
                base = max(base, min(-log_p / c.score_cap, 1.0))
        self.lo = z.copy() if self.lo is None else np.minimum(self.lo, z)
        self.hi = z.copy() if self.hi is None else np.maximum(self.hi, z)
        score = base
        if c.hold > 0:
            if self.recent and base <= max(self.recent):
                score = 0.0
            self.recent.append(base)
            if len(self.recent) > c.hold - 1:
                self.recent.popleft()
        self.count += 1
        if self.warming:
            score = 0.0
        return error, residual, score

    # -- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        tolist = lambda a: None if a is None else [float(v) for v in np.ravel(a)]  # noqa: E731
        return {
            "warmup": self.warmup,
            "count": self.count,
            "lo": tolist(self.lo),
            "hi": tolist(self.hi),
            "last_z": tolist(self.last_z),
            "h": None if self.lstm is None else self.lstm[0].tolist(),
            "c": None if self.lstm is None else self.lstm[1].tolist(),
            "recent": list(self.recent),
            "scorers": [s.state_dict() for s in self.scorers],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        c = self.config
        O, L, H = c.n_targets, c.num_layers, c.hidden_size

        def vector(key: str) -> np.ndarray | None:
            v = state.get(key)
            if v is None:
                return None
            a = np.asarray(v, dtype=np.float64)
            if a.shape != (O,) or not np.isfinite(a).all():
                raise ConfigError(f"state.{key}: expected {O} finite numbers, got {v!r}")
            return a

        try:
            warmup, count = int(state["warmup"]), int(state["count"])
            recent = [float(x) for x in state["recent"]]
            scorer_states = list(state["scorers"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"state: missing or malformed field ({exc})") from None
        if len(scorer_states) != len(self.scorers):
            raise ConfigError(
                f"state.scorers: expected {len(self.scorers)} scorer states, got {len(scorer_states)}"
            )
        lstm = None
        if state.get("h") is not None:
            try:
                # nested lists -> (L, 1, H) float64
                h = torch.tensor(state["h"], dtype=torch.float64)
                cc = torch.tensor(state["c"], dtype=torch.float64)
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"state.h/c: malformed ({exc})") from None
            for name, t in (("h", h), ("c", cc)):
                if tuple(t.shape) != (L, 1, H):
                    raise ConfigError(
                        f"state.{name}: expected shape ({L}, 1, {H}), got {tuple(t.shape)}"
                    )
            lstm = (h, cc)
        lo, hi, last_z = vector("lo"), vector("hi"), vector("last_z")
        if (lo is None) != (hi is None):
            raise ConfigError(f"state.lo/hi: expected both or neither, got {lo!r} and {hi!r}")
        self.warmup, self.count = warmup, count
        self.lo, self.hi, self.last_z = lo, hi, last_z
        self.lstm = lstm
        self.recent = deque(recent)
        for scorer, s in zip(self.scorers, scorer_states, strict=True):
            scorer.load_state_dict(s)


class AnomalyDetector:
    """See the module docstring. Not fitted until :meth:`fit` or :meth:`load`."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self.method, self.threshold_value = parse_threshold(self.config.threshold)
        self.net: ForecasterNet | None = None  # float32, trained and saved
        self._net64: ForecasterNet | None = None  # float64 copy for inference
        self.mean: np.ndarray | None = None  # (O,) scaling fitted on the training stretch
        self.std: np.ndarray | None = None
        self.n_train = 0
        self.quantile_cut: float | None = None
        self.train_scores: np.ndarray | None = None  # unreported scores of the training stretch
        self.metrics: dict = {}
        self._stream = _Stream(self.config)

    # -- inputs ---------------------------------------------------------------------------------
    def _check(
        self, values: Any, timestamps: Any, name: str, check_order: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """-> values (T, O) float64 and known covariates (T, Cf) float64."""
        c = self.config
        v = np.asarray(values, dtype=np.float64)
        if v.ndim == 1:
            v = v[:, None]
        if v.ndim != 2 or v.shape[1] != c.n_targets:
            raise ShapeError(
                f"{name}: expected (T, O={c.n_targets}) or (T,), got {np.shape(values)}"
            )
        bad = np.argwhere(~np.isfinite(v))
        if len(bad):
            i, j = (int(x) for x in bad[0])
            raise DataError(f"{name}: row {i} column {j}: expected a finite number, got {v[i, j]}")
        if not c.calendar:
            # (T, 0): no known covariates
            return v, np.zeros((len(v), 0))
        if timestamps is None:
            raise ConfigError(
                "timestamps: this detector uses the time of day (calendar=True); pass timestamps "
                "or use DetectorConfig(calendar=False)"
            )
        ts = np.asarray(timestamps)
        if ts.shape != (len(v),):
            raise ShapeError(f"timestamps: expected ({len(v)},) like {name}, got {ts.shape}")
        try:
            ts = ts.astype("datetime64[ns]")
        except (TypeError, ValueError):
            raise DataError(f"timestamps: expected datetimes, got dtype {ts.dtype}") from None
        if np.isnat(ts).any():
            i = int(np.flatnonzero(np.isnat(ts))[0])
            raise DataError(f"timestamps: row {i}: expected a timestamp, got a missing one (NaT)")
        back = np.flatnonzero(np.diff(ts.astype(np.int64)) < 0) if check_order else []
        if len(back):
            i = int(back[0]) + 1
            raise DataError(
                f"timestamps: row {i}: {ts[i]} comes before row {i - 1}'s {ts[i - 1]} "
                "(expected non-decreasing time)"
            )
        return v, time_of_day(ts)

    def _scale(self, v: np.ndarray) -> np.ndarray:
        return (v - self.mean) / self.std

    def _require_fitted(self) -> None:
        if self.net is None:
            raise ConfigError("this AnomalyDetector is not fitted yet: call fit() or load()")

    # -- training -------------------------------------------------------------------------------
    def fit(
        self,
        values: Any,
        timestamps: Any = None,
        *,
        progress: bool = False,
        check_order: bool = True,
    ) -> AnomalyDetector:
        """Train on ``values`` (T, O) or (T,), the initial stretch of a series, then run the stream
        over it (scored 0), so that :meth:`update` continues right after it.

        ``timestamps`` (T,) must not go back in time unless ``check_order=False`` (NAB's files
        hold a few daylight-saving repeats; only the time of day is used).
        """
        c = self.config
        runtime.configure()
        v, f = self._check(values, timestamps, "values", check_order)
        n = len(v)
        if n < c.chunk + 1:
            raise DataError(
                f"values: the training stretch has {n} rows; the lookback (chunk) is {c.chunk}, "
                f"so at least {c.chunk + 1} rows are needed (lower chunk or train on more rows)"
            )
        self.mean = v.mean(axis=0)
        std = v.std(axis=0)
        self.std = np.where((std > 1e-12) & (v.max(axis=0) > v.min(axis=0)), std, 1.0)
        z = self._scale(v)
        # inputs x_t = [z_t, f_{t+1}] (n-1, O+Cf) and targets z_{t+1} (n-1, O)
        x = torch.from_numpy(np.concatenate([z[:-1], f[1:]], axis=1).astype(np.float32))
        y = torch.from_numpy(z[1:].astype(np.float32))
        L = c.chunk
        starts = np.arange(n - L)  # every chunk of L inputs inside the stretch
        n_batches = -(-len(starts) // c.batch_size)
        torch.manual_seed(c.seed)
        fcfg = c.forecaster_config()
        net = ForecasterNet(fcfg)
        offsets = torch.arange(L)

        def batches(epoch: int):
            rng = np.random.default_rng(c.seed + 7919 * epoch)
            order = rng.permutation(starts)
            for b in range(n_batches):
                idx = torch.from_numpy(order[b * c.batch_size : (b + 1) * c.batch_size])
                # (B,) starts -> (B, L) rows -> (B, L, O+Cf) inputs and (B, L, O) targets
                rows = idx[:, None] + offsets[None, :]
                yield Batch(
                    x=x[rows],
                    lengths=torch.full((len(idx),), L),
                    mask=torch.ones(len(idx), L, dtype=torch.bool),
                    y=y[rows],
                )

        def loss_fn(model: ForecasterNet, batch: Batch) -> torch.Tensor:
            # (B, L, O+Cf) -> (B, L, H) -> (B, L, O, P): a next-step prediction at every position
            params = model.params(model.encoder(batch.x).outputs)
            return forecast_loss(params, batch.y, fcfg)

        result = fit(
            net,
            train_batches=batches,
            n_batches=n_batches,
            loss_fn=loss_fn,
            validate=None,
            config=TrainConfig(
                epochs=c.epochs,
                batch_size=c.batch_size,
                lr=c.lr,
                weight_decay=c.weight_decay,
                patience=0,
                seed=c.seed,
                monitor="train_loss",
            ),
            progress=progress,
            description="detector",
        )
        self._set_net(net)
        self.n_train = n
        self.metrics = {
            "train_rows": n,
            "train_loss": result.best_metric,
            "epochs": len(result.history),
            "train_seconds": round(result.seconds, 3),
        }
        # warm the stream over the training stretch; its (unreported) scores set the quantile cut
        self.reset(warmup=n)
        out = self._run(v, f, self._stream)
        self.train_scores = out["residual"]
        self._set_cut()
        return self

    def _set_cut(self) -> None:
        if self.method == "quantile" and self.train_scores is not None:
            self.quantile_cut = float(np.quantile(self.train_scores, self.threshold_value))
        else:
            self.quantile_cut = None

    def set_threshold(self, spec: str) -> None:
        """Change the flagging rule (``fixed:V``, ``quantile:Q`` or ``dynamic``); scores do not change.

        ``quantile:Q`` cuts at the Q-quantile of the residual scores (value records left out) that the
        training stretch gets (in-sample, so a high Q such as 0.999 is the usual choice).
        """
        self.method, self.threshold_value = parse_threshold(spec)
        self.config = replace(self.config, threshold=spec)
        self._set_cut()

    def _set_net(self, net: ForecasterNet) -> None:
        self.net = net.eval()
        self._net64 = copy.deepcopy(net).double().eval()

    # -- scoring --------------------------------------------------------------------------------
    def reset(self, warmup: int = 0) -> None:
        """Start a fresh stream (the start of a series); its first ``warmup`` rows score 0."""
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ConfigError(f"warmup: expected an integer >= 0, got {warmup!r}")
        self._stream = _Stream(self.config, warmup)

    def _predict_all(self, z: np.ndarray, f: np.ndarray, state=None):
        """One encoder pass: predictions of rows 1..T-1 -> (mean (T-1, O), std or None, state)."""
        net = self._net64
        # (T-1, O+Cf) inputs [z_t, f_{t+1}] -> (1, T-1, O+Cf)
        x = torch.from_numpy(np.concatenate([z[:-1], f[1:]], axis=1))[None]
        with torch.no_grad():
            enc = net.encoder(x, state=state)
            # (1, T-1, H) -> (T-1, O, P)
            p = net.params(enc.outputs)[0]
        std = p[..., 1].numpy() if self.config.head == "gaussian" else None
        return p[..., 0].numpy(), std, enc.state

    def _run(self, v: np.ndarray, f: np.ndarray, stream: _Stream) -> dict:
        """Score rows of ``v`` continuing ``stream``; the batch twin of :meth:`update`."""
        T, O = v.shape
        z = self._scale(v)
        mean = np.full((T, O), np.nan)
        std = np.full((T, O), np.nan)
        first = 0
        if stream.last_z is not None:
            # the stream already holds a previous row: prepend it so row 0 gets a prediction
            zz, ff = np.concatenate([stream.last_z[None], z]), np.concatenate([f[:1], f])
            ff[0] = np.nan  # never used: an input takes the covariates of the row it predicts
        else:
            zz, ff, first = z, f, 1
        if len(zz) >= 2:
            m, s, state = self._predict_all(zz, ff, stream.lstm)
            mean[first:] = m
            if s is not None:
                std[first:] = s
            stream.lstm = state
        errors, residual, scores = np.zeros(T), np.zeros(T), np.zeros(T)
        has_pred = np.zeros(T, dtype=bool)
        has_pred[first:] = True
        for t in range(T):
            p = mean[t] if has_pred[t] else None
            errors[t], residual[t], scores[t] = stream.advance(z[t], p, std[t])
        stream.last_z = z[-1].copy() if T else stream.last_z
        return {"mean": mean, "std": std, "error": errors, "residual": residual, "score": scores}

    def score_series(
        self,
        values: Any,
        timestamps: Any = None,
        *,
        warmup: int | None = None,
        check_order: bool = True,
    ) -> dict:
        """Score a whole series from its start (a fresh stream; the detector's own is untouched).

        Returns ``{"prediction": (T,) or (T, O), "error": (T,), "score": (T,), "is_anomaly": (T,)}``
        (+ ``"std"`` with the gaussian head), in original units. Row 0 has no prediction (NaN).
        The first ``warmup`` rows (default: as many as :meth:`fit` trained on) score 0.
        """
        self._require_fitted()
        v, f = self._check(values, timestamps, "values", check_order)
        warm = self.n_train if warmup is None else int(warmup)
        if not 0 <= warm <= len(v):
            raise ConfigError(f"warmup: expected 0..{len(v)} rows, got {warm}")
        out = self._run(v, f, _Stream(self.config, warm))
        flags = self._flags(out["score"], out["error"], warm)
        result = {
            "prediction": self._unscale(out["mean"]),
            "error": out["error"],
            "score": out["score"],
            "is_anomaly": flags,
        }
        if self.config.head == "gaussian":
            result["std"] = self._squeeze(out["std"] * self.std)
        return result

    def _squeeze(self, a: np.ndarray) -> np.ndarray:
        return a[:, 0] if self.config.n_targets == 1 else a

    def _unscale(self, z: np.ndarray) -> np.ndarray:
        return self._squeeze(z * self.std + self.mean)

    def _flags(self, scores: np.ndarray, errors: np.ndarray, warm: int) -> np.ndarray:
        flags = np.zeros(len(scores), dtype=bool)
        if self.method == "fixed":
            flags = scores >= self.threshold_value
        elif self.method == "quantile":
            flags = scores > self.quantile_cut
        elif len(errors) > warm:
            flags[warm:] = dynamic_threshold(errors[warm:])
        flags[:warm] = False
        return flags

    def update(
        self, value: Any, timestamp: Any = None, *, stream: _Stream | None = None
    ) -> tuple[float, bool]:
        """Advance the stream by one row -> (score, flag): one LSTM cell step, O(1).

        ``stream``: a stream from :meth:`new_stream` / :meth:`stream_from_state` to advance
        instead of the detector's own (a server keeps one per client).
        """
        self._require_fitted()
        if self.method == "dynamic":
            raise ConfigError(
                "threshold: 'dynamic' looks ahead over a window of errors and cannot flag one "
                "point at a time; use fixed:V or quantile:Q for streaming"
            )
        c = self.config
        v = np.asarray(value, dtype=np.float64).reshape(-1)
        if v.shape != (c.n_targets,):
            raise ShapeError(
                f"value: expected {c.n_targets} number(s), got shape {np.shape(value)}"
            )
        if not np.isfinite(v).all():
            raise DataError(f"value: expected finite numbers, got {value!r}")
        if c.calendar:
            if timestamp is None:
                raise ConfigError("timestamp: this detector uses the time of day; pass timestamp=")
            try:
                stamp = np.datetime64(timestamp, "ns")
            except (TypeError, ValueError):
                raise DataError(f"timestamp: expected a date and time, got {timestamp!r}") from None
            if np.isnat(stamp):
                raise DataError("timestamp: expected a date and time, got a missing one (NaT)")
            # (1,) datetime -> (2,) time of day
            f = time_of_day(np.asarray([stamp]))[0]
        else:
            f = np.zeros(0)
        z = self._scale(v[None])[0]
        s = self._stream if stream is None else stream
        pred = std = None
        if s.last_z is not None:
            net = self._net64
            state = s.lstm if s.lstm is not None else net.encoder.init_state(1, dtype=torch.float64)
            # (O,) ++ (Cf,) -> (1, O+Cf): the previous value with this row's covariates
            x = torch.from_numpy(np.concatenate([s.last_z, f]))[None]
            with torch.no_grad():
                out, state = net.encoder.step(x, state)
                # (1, H) -> (O, P)
                p = net.params(out)[0]
            s.lstm = state
            pred = p[:, 0].numpy()
            std = p[:, 1].numpy() if c.head == "gaussian" else None
        _, _, score = s.advance(z, pred, std)
        s.last_z = z
        if s.warming:
            return score, False
        if self.method == "fixed":
            return score, bool(score >= self.threshold_value)
        return score, bool(score > self.quantile_cut)

    # -- stream persistence ---------------------------------------------------------------------
    def _stream_config(self) -> dict:
        d = self.config.to_dict()
        d.pop("threshold")  # flags are not part of the stream's state
        return d

    def state_dict(self, stream: _Stream | None = None) -> dict[str, Any]:
        """The stream's state as JSON-safe numbers and lists (weights are saved by :meth:`save`);
        ``stream``: one from :meth:`new_stream` instead of the detector's own."""
        return {
            "kind": _STATE_KIND,
            "version": _STATE_VERSION,
            "config": self._stream_config(),
            **(self._stream if stream is None else stream).state_dict(),
        }

    def new_stream(self, warmup: int = 0) -> _Stream:
        """A fresh stream owned by the caller (the detector's own is untouched): pass it to
        ``update(..., stream=)`` and ``state_dict(stream)``; its first ``warmup`` rows score 0."""
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ConfigError(f"warmup: expected an integer >= 0, got {warmup!r}")
        return _Stream(self.config, warmup)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume a stream saved by :meth:`state_dict` (its config must equal this detector's)."""
        self._stream = self.stream_from_state(state)

    def stream_from_state(self, state: Mapping[str, Any]) -> _Stream:
        """A stream rebuilt from :meth:`state_dict`, owned by the caller (see :meth:`new_stream`)."""
        if not isinstance(state, Mapping) or state.get("kind") != _STATE_KIND:
            raise ConfigError(f"state: expected a {_STATE_KIND} state dict")
        if state.get("version") != _STATE_VERSION:
            raise ConfigError(
                f"state.version: expected {_STATE_VERSION}, got {state.get('version')!r}"
            )
        if state.get("config") != self._stream_config():
            raise ConfigError(
                "state.config: the stream was saved by a detector with another config"
            )
        stream = _Stream(self.config)
        stream.load_state_dict(state)
        return stream

    # -- model directory ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write a model directory (kind "detector"): weights, config, scaling, stream state."""
        self._require_fitted()
        return save_model_dir(
            path,
            kind=KIND,
            config=self.config.to_dict(),
            state_dict=self.net.state_dict(),
            preprocessing={
                "mean": [float(x) for x in self.mean],
                "std": [float(x) for x in self.std],
                "n_train": self.n_train,
                "train_scores": [float(x) for x in self.train_scores],
            },
            metrics={"seqshape_version": __version__, "train": self.metrics},
            extra={"stream.json": self.state_dict()},
        )

    @classmethod
    def load(cls, path: str | Path) -> AnomalyDetector:
        """Read a model directory written by :meth:`save`; the stream resumes where it was saved."""
        runtime.configure()
        files = load_model_dir(path, kind=KIND)
        config = DetectorConfig.from_dict(files.config, files.path / "config.json")
        self = cls(config)
        net = build_net(ForecasterNet, config.forecaster_config(), files)
        self._set_net(net)
        pre = files.preprocessing
        where = files.path / "preprocessing.json"
        try:
            self.mean = np.asarray(pre["mean"], dtype=np.float64)
            self.std = np.asarray(pre["std"], dtype=np.float64)
            self.n_train = int(pre["n_train"])
            self.train_scores = np.asarray(pre["train_scores"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{where}: damaged ({exc})") from None
        self._set_cut()
        O = config.n_targets
        if self.mean.shape != (O,) or self.std.shape != (O,) or not (self.std > 0).all():
            raise ArtifactError(f"{where}: expected {O} means and {O} positive stds")
        self.metrics = json_field(files.metrics, "train", dict, files.path / "metrics.json", {})
        stream = files.extra.get("stream.json")
        if stream is not None:
            try:
                self.load_state_dict(stream)
            except ConfigError as exc:
                raise ArtifactError(f"{files.path / 'stream.json'}: {exc}") from None
        return self
