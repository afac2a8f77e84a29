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

import copy
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__, runtime
from ..artifacts import build_net, json_field, load_model_dir, save_model_dir
from ..batching import Batch
from ..data.scaling import Scaling
from ..data.series import SeriesData
from ..errors import ArtifactError, ConfigError, DataError, ShapeError
from ..models.forecaster import ForecasterNet, forecast_loss
from ..models.heads import head_of
from ..train.loop import TrainConfig, fit
from .detector_config import HEADS, SCORES, DetectorConfig, parse_threshold, time_of_day
from .detector_stream import DetectorStream as _Stream
from .detector_stream import RankScorer
from .thresholds import dynamic_threshold

KIND = "detector"
_STATE_KIND = "AnomalyDetectorStream"
_STATE_VERSION = 1

__all__ = [
    "HEADS",
    "SCORES",
    "AnomalyDetector",
    "DetectorConfig",
    "RankScorer",
    "parse_threshold",
    "time_of_day",
]


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
        # the library's one series scaling (data/scaling.py), over the whole training stretch
        sc = Scaling.fit([SeriesData(target=v, name="values")], [n], global_=True)
        self.mean = sc.z_mean[0].astype(np.float64)
        self.std = sc.z_std[0].astype(np.float64)
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
        return p[..., 0].numpy(), head_of(self.config.head).std(p.numpy()), enc.state

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
        if self.config.has_std:
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
            # (O,) -> (1, O): the previous value, fed with this row's covariates (1, Cf)
            z_prev = torch.from_numpy(s.last_z)[None]
            f_next = torch.from_numpy(f)[None] if c.calendar else None
            with torch.no_grad():
                # one ForecasterNet.step -> (1, O, P) -> (O, P)
                p, state, _ = net.step(z_prev, f_next, state)
                p = p[0]
            s.lstm = state
            pred = p[:, 0].numpy()
            std = head_of(c.head).std(p.numpy())
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
