"""`Forecaster`: N past steps -> any K future steps, for one series or many (a global model).

    fc = Forecaster(lookback=96, horizon=24).fit(series)           # series: list of SeriesData
    out = fc.forecast(history_target, k=48, future_cov=...)         # original units
    fc.save("model/"); Forecaster.load("model/")

A series is given as arrays: ``target`` (T, O), optional ``past_cov`` (T, Cp) (observed, not known
ahead) and ``future_cov`` (T, Cf) (known ahead, e.g. calendar features). Scaling is fitted per series
on the training part only (or globally), and every output is inverse-transformed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..artifacts import build_net, config_from_dict, json_field, load_model_dir, save_model_dir
from ..batching import Batch
from ..data.frames import DS, UID, future_rows, is_pandas_series_input, series_from_pandas
from ..data.series import check_history_length, future_timestamps
from ..errors import ConfigError, DataError, ShapeError
from ..models.forecaster import (
    HIGHWAY_STARTS,
    ColumnHighway,
    ForecasterConfig,
    ForecasterNet,
    apply_highway_start,
    forecast_loss,
    highway_starts,
)
from ..shapes import as_float32_2d
from ..train import forecast_metrics as FM
from ..train.checkpoint import data_digest
from ..train.loop import TrainConfig, TrainResult, fit
from .base import Estimator, params_from

KIND = "forecaster"


@dataclass
class SeriesData:
    """One series' arrays, all with the same number of rows T."""

    target: np.ndarray  # (T, O)
    past_cov: np.ndarray | None = None  # (T, Cp)
    future_cov: np.ndarray | None = None  # (T, Cf)
    name: str = "series"
    timestamps: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.target = _as_2d(self.target, f"{self.name}.target")
        T = len(self.target)
        for attr in ("past_cov", "future_cov"):
            v = getattr(self, attr)
            if v is None:
                setattr(self, attr, np.zeros((T, 0), np.float32))
            else:
                v = _as_2d(v, f"{self.name}.{attr}")
                if len(v) != T:
                    raise ShapeError(
                        f"{self.name}.{attr}: expected {T} rows like the target, got {len(v)}"
                    )
                setattr(self, attr, v)

    @property
    def z(self) -> np.ndarray:
        """(T, O+Cp): the values the model predicts and feeds back."""
        return np.concatenate([self.target, self.past_cov], axis=1)


def _as_2d(a, name: str) -> np.ndarray:
    return as_float32_2d(a, name, columns="O")


def as_series_list(series, *, past_cov=None, future_cov=None) -> tuple[list[SeriesData], dict]:
    """What ``fit`` accepts -> (list of SeriesData, the column roles when pandas came in).

    A SeriesData or a list of them; the SeriesFrame `read_series_csv` returns; a pandas Series
    or DataFrame (a DatetimeIndex, or neuralforecast's long ``unique_id, ds, y`` layout, see
    data/frames.py; ``past_cov``/``future_cov`` name covariate columns); a 1-D or 2-D array (one
    series, each column a target).
    """
    from ..data.series import SeriesFrame

    roles: dict = {}
    if isinstance(series, SeriesData):
        out = [series]
    elif isinstance(series, SeriesFrame):
        out = [
            SeriesData(target=t, past_cov=p, future_cov=f, name=str(sid), timestamps=ts)
            for sid, t, p, f, ts in zip(
                series.series_ids,
                series.target,
                series.past_cov,
                series.future_cov,
                series.timestamps,
            )
        ]
        roles = {
            "target": list(series.target_names),
            "past_cov": list(series.past_cov_names),
            "future_cov": list(series.future_cov_names),
            "long": len(series) > 1,
        }
    elif is_pandas_series_input(series):
        parts, roles = series_from_pandas(series, past_cov=past_cov, future_cov=future_cov)
        out = [SeriesData(**part) for part in parts]
    elif isinstance(series, np.ndarray) and series.dtype != object and series.ndim in (1, 2):
        out = [SeriesData(target=series, name="series")]
    elif isinstance(series, list | tuple) and all(isinstance(x, SeriesData) for x in series):
        out = list(series)
    else:
        raise DataError(
            f"series: expected SeriesData (or a list of them), a SeriesFrame, a pandas "
            f"Series/DataFrame or a 1-D/2-D array, got {type(series).__name__}"
        )
    if (past_cov or future_cov) and not is_pandas_series_input(series):
        raise ConfigError("past_cov/future_cov: column names apply to a pandas DataFrame only")
    if not out:
        raise DataError("series: expected at least one series, got none")
    return out, roles


@dataclass
class Scaling:
    """Per-series (or global) mean/std of z = [target, past_cov] and of the known covariates."""

    z_mean: np.ndarray  # (S, O+Cp)
    z_std: np.ndarray
    f_mean: np.ndarray  # (S, Cf)
    f_std: np.ndarray
    global_: bool = False

    @classmethod
    def fit(cls, series: list[SeriesData], ends: list[int], global_: bool) -> Scaling:
        zs = [s.z[:e] for s, e in zip(series, ends)]
        fs = [s.future_cov[:e] for s, e in zip(series, ends)]
        if global_:
            zs, fs = [np.concatenate(zs)], [np.concatenate(fs)]
        stat = lambda arrs, f: np.stack([f(a, axis=0) for a in arrs]).astype(np.float32)  # noqa: E731
        z_std = stat(zs, np.std)
        f_std = stat(fs, np.std)
        return cls(
            z_mean=stat(zs, np.mean),
            z_std=np.where(z_std > 1e-8, z_std, 1.0).astype(np.float32),
            f_mean=stat(fs, np.mean),
            f_std=np.where(f_std > 1e-8, f_std, 1.0).astype(np.float32),
            global_=global_,
        )

    def row(self, i: int) -> int:
        return 0 if self.global_ else i

    def to_dict(self) -> dict:
        return {
            k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()
        }

    @classmethod
    def from_dict(cls, d: dict) -> Scaling:
        arr = lambda k: np.asarray(d[k], dtype=np.float32)  # noqa: E731
        return cls(arr("z_mean"), arr("z_std"), arr("f_mean"), arr("f_std"), bool(d["global_"]))


@dataclass
class Windows:
    """Index arrays of (series, start) windows: history rows [start, start+N), future [start+N, +K)."""

    series: np.ndarray
    start: np.ndarray
    lookback: int
    horizon: int
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.start)


def make_windows(
    lengths_lo_hi: list[tuple[int, int]], lookback: int, horizon: int, stride: int = 1
) -> Windows:
    """Windows whose forecast rows lie in [lo, hi) of each series (history may start before lo)."""
    ser, st = [], []
    for i, (lo, hi) in enumerate(lengths_lo_hi):
        first = max(lo - lookback, 0)
        last = hi - lookback - horizon
        if last < first:
            continue
        starts = np.arange(first, last + 1, stride)
        ser.append(np.full(len(starts), i))
        st.append(starts)
    if not st:
        return Windows(np.zeros(0, np.int64), np.zeros(0, np.int64), lookback, horizon)
    return Windows(np.concatenate(ser), np.concatenate(st), lookback, horizon)


class Forecaster(Estimator):
    """An LSTM forecaster, autoregressive through the LSTM by default (see models/forecaster.py).

    Model: ``lookback`` N history steps (default: three seasons or two horizons, whichever is
    longer), training ``horizon`` K (an autoregressive model forecasts any K later), ``strategy``
    "autoregressive" | "direct", ``loss`` "mse" | "gaussian" | "student_t" | "quantile" (with
    ``quantiles``), ``hidden_size``, ``num_layers``, ``dropout``, ``cell``, ``window_norm``
    "last" | "mean" | "none" (the per-window level the LSTM does not see). ``season``: the seasonal
    period in steps (default: detected from the training part).

    Baselines first: ``highway`` P (default: the lookback; 0 turns it off) is a linear map of the
    last P values beside the LSTM, started as the baseline that forecasts best out of sample
    (``start="best"``: naive, seasonal naive or least squares, scored by MASE on the validation
    windows and the end of the training part) with the LSTM's head at zero;
    ``train_highway=False`` keeps that map fixed; ``keep_start`` keeps the start unless an epoch
    beats it on validation by ``start_margin`` (default 5% lower MASE), so the model returned
    never validates worse than its baseline, and a gain within validation noise keeps it.
    ``metrics["winner"]`` says which part won (docs/forecast.md).

    Training: ``epochs``, ``batch_size``, ``lr``, ``weight_decay``, ``patience`` (early stopping),
    ``lr_schedule`` "plateau" (halve after ``lr_patience`` stalled epochs) | "cosine", ``seed``,
    ``sampling_ratio`` (scheduled sampling), ``stride`` and ``max_windows_per_epoch`` (which
    training windows an epoch uses), ``global_scaling`` (one scaler for all series instead of one
    each), ``threads``, ``progress``.
    """

    def __init__(
        self,
        *,
        lookback: int | None = None,
        horizon: int = 24,
        strategy: str = "autoregressive",
        loss: str = "mse",
        quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        cell: str = "lstm",
        window_norm: str = "last",
        highway: int | None = None,
        train_highway: bool = True,
        keep_start: bool = True,
        season: int | None = None,
        start: str = "best",
        start_margin: float = 0.05,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        patience: int = 5,
        lr_schedule: str = "plateau",
        lr_patience: int | None = None,
        seed: int = 0,
        sampling_ratio: float = 0.0,
        stride: int = 1,
        max_windows_per_epoch: int | None = 4096,
        global_scaling: bool = False,
        threads: int | None = None,
        progress: bool = True,
        device: str = "cpu",
        callback=None,
    ) -> None:
        self.lookback = lookback
        self.horizon = horizon
        self.strategy = strategy
        self.loss = loss
        self.quantiles = quantiles
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.cell = cell
        self.window_norm = window_norm
        self.highway = highway
        self.train_highway = train_highway
        self.keep_start = keep_start
        self.season = season
        self.start = start
        self.start_margin = start_margin
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.lr_schedule = lr_schedule
        self.lr_patience = lr_patience
        self.seed = seed
        self.sampling_ratio = sampling_ratio
        self.stride = stride
        self.max_windows_per_epoch = max_windows_per_epoch
        self.global_scaling = global_scaling
        self.threads = threads
        self.progress = progress
        self.device = device
        self.callback = callback
        self._check_params()
        self.options_: dict | None = None  # fitted: the network's options, lookback resolved
        self.train_config_: TrainConfig | None = None  # fitted: what the loop ran with
        self.config: ForecasterConfig | None = None
        self.net: ForecasterNet | None = None
        self.scaling: Scaling | None = None
        self.series_names: list[str] = []
        self.metrics: dict = {}
        self.train_result: TrainResult | None = None
        self.meta: dict = {}

    def _check_params(self) -> None:
        super()._check_params()
        season, start = self.season, self.start
        if season is not None and (
            isinstance(season, bool) or not isinstance(season, int) or season < 1
        ):
            raise ConfigError(f"season: expected a whole number >= 1 (1: none), got {season!r}")
        if start not in ("best", *HIGHWAY_STARTS):
            raise ConfigError(
                f"start: expected one of best, {', '.join(HIGHWAY_STARTS)}, got {start!r}"
            )
        if not 0.0 <= self.sampling_ratio <= 1.0:
            raise ConfigError(
                f"sampling_ratio: expected a value in [0, 1], got {self.sampling_ratio!r}"
            )
        self.train_config  # noqa: B018 - checks the training options

    @property
    def options(self) -> dict:
        """The network's options (ForecasterConfig's fields other than the data's sizes); once
        fitted, with the lookback and highway the data decided."""
        if getattr(self, "options_", None) is not None:
            return dict(self.options_)
        return {
            k: getattr(self, k)
            for k in (
                "lookback",
                "horizon",
                "strategy",
                "loss",
                "hidden_size",
                "num_layers",
                "dropout",
                "cell",
                "window_norm",
                "highway",
            )
        } | {"quantiles": tuple(self.quantiles)}

    @property
    def train_config(self) -> TrainConfig:
        """The training options (once fitted: what the loop ran with, its monitor decided)."""
        if getattr(self, "train_config_", None) is not None:
            return self.train_config_
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            patience=self.patience,
            lr_patience=max(1, self.patience // 2)
            if self.lr_patience is None
            else self.lr_patience,
            lr_schedule=self.lr_schedule,
            seed=self.seed,
            # a highway model starts as a fitted baseline, which training must beat on
            # validation to replace (keep_start)
            validate_start=bool(self.keep_start),
            start_margin=self.start_margin,
        )

    # -- tensors from windows -------------------------------------------------------------------
    def _scaled(
        self,
        series: list[SeriesData],
        rows: list[int] | None = None,
        scaling: Scaling | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Scale each series with its own statistics (``rows``: which fitted series each one is;
        ``scaling``: other statistics than the fitted ones)."""
        sc = self.scaling if scaling is None else scaling
        rows = list(range(len(series))) if rows is None else rows
        out = []
        for i, s in zip(rows, series):
            r = sc.row(i)
            z = (s.z - sc.z_mean[r]) / sc.z_std[r]
            f = (s.future_cov - sc.f_mean[r]) / sc.f_std[r]
            out.append((z.astype(np.float32), f.astype(np.float32)))
        return out

    @staticmethod
    def _gather(scaled, win: Windows, idx: np.ndarray, k: int | None = None):
        """Window indices -> history (B, N, Z), future (B, K, Z), cov (B, N+K, Cf) tensors."""
        N = win.lookback
        K = win.horizon if k is None else k
        hist, fut, cov = [], [], []
        for j in idx:
            z, f = scaled[win.series[j]]
            s = win.start[j]
            hist.append(z[s : s + N])
            fut.append(z[s + N : s + N + K])
            cov.append(f[s : s + N + K])
        t = lambda a: torch.from_numpy(np.stack(a))  # noqa: E731
        return t(hist), t(fut), t(cov)

    # -- training -------------------------------------------------------------------------------
    def fit(
        self,
        series,
        *,
        train_end=None,
        val_end=None,
        past_cov: list[str] | None = None,
        future_cov: list[str] | None = None,
        log_path=None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
    ):
        """Train on rows [0, train_end) of each series; validate on windows forecasting [train_end, val_end).

        ``train_end``/``val_end`` are row counts (int for all series, or one per series); default: the
        last 20% of each series validates, nothing is held out for test (split before calling).
        ``checkpoint_dir``/``checkpoint_every``/``resume``: as in train.loop.fit (a resumed run
        needs the same series, split and options, and ends with the same weights).
        """
        with self._fitting() as device:
            return self._fit(
                series,
                device,
                train_end=train_end,
                val_end=val_end,
                past_cov=past_cov,
                future_cov=future_cov,
                log_path=log_path,
                checkpoint_dir=checkpoint_dir,
                checkpoint_every=checkpoint_every,
                resume=resume,
            )

    def _fit(
        self,
        series,
        device,
        *,
        train_end,
        val_end,
        past_cov,
        future_cov,
        log_path,
        checkpoint_dir,
        checkpoint_every,
        resume,
    ):
        self.options_ = self.train_config_ = None
        series, roles = as_series_list(series, past_cov=past_cov, future_cov=future_cov)
        self.meta = {k: v for k, v in self.meta.items() if k != "pandas"}
        if roles:
            # how to read and write pandas at forecast time: the columns' roles and the step
            self.meta["pandas"] = {**roles, "freq": _common_freq(series)}
        O, Cp, Cf = (
            series[0].target.shape[1],
            series[0].past_cov.shape[1],
            series[0].future_cov.shape[1],
        )
        for s in series:
            if (s.target.shape[1], s.past_cov.shape[1], s.future_cov.shape[1]) != (O, Cp, Cf):
                raise ShapeError(
                    f"{s.name}: expected (O={O}, Cp={Cp}, Cf={Cf}) columns like {series[0].name}, got "
                    f"({s.target.shape[1]}, {s.past_cov.shape[1]}, {s.future_cov.shape[1]})"
                )
        lens = [len(s.target) for s in series]
        tr = _per_series(train_end, lens, default=[int(0.8 * n) for n in lens], name="train_end")
        va = _per_series(val_end, lens, default=lens, name="val_end")
        self.options_ = self._resolve_shape_options(series, tr)
        N, K = self.options_["lookback"], self.options_["horizon"]
        for s, e in zip(series, tr):
            if e < N + K:
                raise DataError(
                    f"{s.name}: the training part has {e} rows; lookback {N} + horizon {K} = {N + K} "
                    f"rows are needed for one training window"
                )
        self.series_names = [s.name for s in series]
        self.scaling = Scaling.fit(series, tr, self.global_scaling)
        scaled = self._scaled(series)
        train_w = make_windows([(0, e) for e in tr], N, K, self.stride)
        val_w = make_windows(list(zip(tr, va)), N, K, max(self.stride, 1))
        torch.manual_seed(self.seed)
        self.config = ForecasterConfig(n_targets=O, n_past=Cp, n_future=Cf, **self.options_)
        self.n_features_in_ = O + Cp + Cf
        self.net = ForecasterNet(self.config)
        self.baselines_ = {}
        self._scale_rows = self._mase_scales(scaled, tr)
        if self.config.highway:
            # start from the best baseline the highway can hold, on the validation windows
            self.start_ = self._start_from_best_baseline(scaled, tr, val_w)
            # train_highway=False keeps the start's map; only the LSTM learns
            self.net.highway.requires_grad_(self.train_highway)
        # what the loop monitors, recorded as such in metrics.json; a model with a highway starts
        # as a fitted baseline, which an epoch must beat on validation to replace (keep_start)
        tc = replace(
            self.train_config,
            monitor="val_mase" if len(val_w) else "train_loss",
            validate_start=bool(self.config.highway) and self.keep_start,
        )
        self.train_config_ = tc
        per_epoch = len(train_w)
        if self.max_windows_per_epoch:
            per_epoch = min(per_epoch, self.max_windows_per_epoch)
        n_batches = max(1, -(-per_epoch // tc.batch_size))
        ratio = self.sampling_ratio
        cfg = self.config

        def batches(epoch: int):
            rng = np.random.default_rng(tc.seed + 7919 * epoch)
            order = rng.permutation(len(train_w))[:per_epoch]
            for b in range(n_batches):
                idx = order[b * tc.batch_size : (b + 1) * tc.batch_size]
                hist, fut, cov = self._gather(scaled, train_w, idx)
                yield Batch(
                    x=hist,
                    lengths=torch.full((len(idx),), N),
                    mask=torch.ones(len(idx), N, dtype=torch.bool),
                    y=fut,
                    extra={"cov": cov},
                )

        def loss_fn(net, batch):
            p = net(
                batch.x, batch.y, batch.extra["cov"] if cfg.n_future else None, sampling_ratio=ratio
            )
            return forecast_loss(p, batch.y, cfg)

        def validate(net):
            mse, mase = self._val_errors(net, scaled, val_w)
            return {"val_mase": mase, "val_mse": mse}

        self.train_result = fit(
            self.net,
            train_batches=batches,
            n_batches=n_batches,
            loss_fn=loss_fn,
            validate=validate if len(val_w) else None,
            config=tc,
            progress=self.progress,
            log_path=Path(log_path) if log_path else None,
            description="forecast",
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            resume=resume,
            # the scaled series and where training and validation end define the windows
            data_digest=data_digest(scaled, list(tr), list(va)),
            device=device,
            callback=self.callback,
        )
        self.metrics = self.train_result.summary(
            "val_mase" if len(val_w) else "train_loss",
            n_train_windows=len(train_w),
            n_val_windows=len(val_w),
        )
        self.metrics.update(self._which_part_won())
        return self

    # -- defaults from the data, and the baseline start -------------------------------------------
    def _resolve_shape_options(self, series: list[SeriesData], tr: list[int]) -> dict:
        """Fill what was left to the data: the season (from the training targets' ACF), the
        lookback (from the season and horizon) and the highway (the whole lookback)."""
        from ..models.baselines import infer_season

        opts = self.options
        K = opts["horizon"]
        season = self.season
        if season is None:
            # the most common season among (up to 64 of) the series' training parts
            found = [
                infer_season(s.target[: min(e, 4096), :1]) if e >= 8 else 1
                for s, e in list(zip(series, tr))[:64]
            ]
            season = max(set(found), key=found.count)
        self.season_ = int(season)
        self.meta["season"] = self.season_
        if opts["lookback"] is None:
            # three seasons or two horizons, whichever is longer (two horizons capped at 336
            # steps, two weeks of hourly data: the LSTM reads every one of them), within what the
            # shortest training part allows with a few windows to train on
            want = max(3 * self.season_, min(2 * K, 336), 8)
            room = (min(tr) - K) // 2
            opts["lookback"] = int(max(1, min(want, room)))
        if opts["highway"] is None:
            opts["highway"] = opts["lookback"]
        return opts

    def _start_from_best_baseline(self, scaled, tr: list[int], val_w: Windows) -> str:
        """Set the highway to the baseline (naive, seasonal naive, least-squares linear) that
        forecasts best out of sample, the LSTM's head at zero: the untrained model *is* that
        baseline, and ``keep_start`` keeps it unless an epoch beats it on validation. Returns the
        chosen start's name.

        The candidates are scored on the validation windows (fitted on the training rows) and on
        windows forecasting the last fifth of the training rows (fitted on the rows before them),
        pooled: a validation part of one or two windows (a short monthly series) alone would pick
        by chance.
        """
        z_train = [z[:e] for (z, _), e in zip(scaled, tr)]
        seed = self.seed
        ridges = (1e-4, 1e-2, 1e-1, 1.0)
        starts = highway_starts(self.net, z_train, season=self.season_, ridges=ridges, seed=seed)
        if self.start != "best":
            if self.start not in starts:
                raise ConfigError(
                    f"start: {self.start!r} needs 1 < season <= highway, got season "
                    f"{self.season_} and highway {self.config.highway}"
                )
            apply_highway_start(self.net, starts[self.start])
            self.start_weights_ = starts[self.start]
            return self.start
        N, K, O = self.config.lookback, self.config.horizon, self.config.n_targets
        errors = {name: [0.0, 0] for name in starts}  # sum of scaled absolute errors, count

        def score(cands: dict, win: Windows) -> None:
            if not len(win):
                return
            rng = np.random.default_rng(seed)
            idx = np.arange(len(win))
            if len(idx) > 20_000:  # enough to rank a few linear maps
                idx = np.sort(rng.choice(len(idx), 20_000, replace=False))
            hist, fut, _ = self._gather(scaled, win, idx)
            hist, fut = hist.numpy(), fut.numpy()[..., :O]
            # (W, 1, 1): each window's series scale (MASE, as the validation of the epochs)
            scale = self._scale_rows[win.series[idx]][:, None, None]
            for name, st in cands.items():
                err = np.abs(st.forecast(hist, K)[..., :O] - fut) / scale
                errors[name][0] += float(np.sum(err))
                errors[name][1] += err.size

        score(starts, val_w)
        cut = [e - max(K, e // 5) for e in tr]
        if min(cut) >= N + K:
            early = highway_starts(
                self.net,
                [z[:c] for z, c in zip(z_train, cut)],
                season=self.season_,
                ridges=ridges,
                seed=seed,
            )
            score(early, make_windows(list(zip(cut, tr)), N, K, max(self.stride, 1)))
        if all(n == 0 for _, n in errors.values()):
            apply_highway_start(self.net, starts["least_squares"])
            self.start_weights_ = starts["least_squares"]
            return "least_squares"
        self.baselines_ = {name: sse / n for name, (sse, n) in errors.items()}
        best = min(self.baselines_, key=self.baselines_.get)
        apply_highway_start(self.net, starts[best])
        self.start_weights_ = starts[best]  # the baseline alone, for ablations (not saved)
        return best

    def _which_part_won(self) -> dict:
        """metrics.json's account of the baselines and of what the model returned is."""
        if not self.config.highway:
            return {"season": self.season_, "winner": "lstm"}
        start = self.start_
        best_val = self.metrics.get("best_val_mase")
        start_val = self.metrics.get("start_val_mase")  # the start, on the validation windows
        lstm_won = self.metrics.get("best_epoch", 0) != 0 or not self.keep_start
        out = {"season": self.season_, "start": start}
        if self.baselines_:
            # each baseline's MASE out of sample (validation windows and the end of the training
            # part): what chose the start
            out["baselines_val_mase"] = dict(self.baselines_)
        out["winner"] = f"lstm+{start}" if lstm_won else start
        if best_val is not None and start_val:
            out["gain_vs_best_baseline"] = round(1.0 - best_val / start_val, 6)
        return out

    def _mase_scales(self, scaled, tr: list[int]) -> np.ndarray:
        """(S,) each series' in-sample mean absolute seasonal difference of its scaled targets
        (lag ``season_``, or 1 where the training part is too short): MASE's denominator."""
        O = self.config.n_targets
        out = []
        for (z, _), e in zip(scaled, tr):
            m = self.season_ if e > self.season_ else 1
            d = np.abs(z[m:e, :O] - z[: e - m, :O]) if e > m else np.zeros(1)
            out.append(max(float(d.mean()), 1e-8))
        return np.asarray(out)

    def _val_errors(self, net, scaled, win: Windows, batch_size: int = 512) -> tuple[float, float]:
        """(MSE, MASE) of the model's point forecasts over ``win`` (scaled units): MASE divides
        each window's absolute errors by its series' `_mase_scales`, so that every series counts
        alike, whatever its spread — the scale-free measure forecasts are judged by (M4)."""
        O = self.config.n_targets
        sq, ab, count = 0.0, 0.0, 0
        for b in range(0, len(win), batch_size):
            idx = np.arange(b, min(b + batch_size, len(win)))
            hist, fut, cov = self._gather(scaled, win, idx)
            dev = self._device()
            out = net.forecast(
                hist.to(dev), win.horizon, cov.to(dev) if self.config.n_future else None
            )
            err = (net.point(out).cpu() - fut)[..., :O].numpy()
            sq += float((err**2).sum())
            # (B, K, O) / (B, 1, 1): each window by its own series' scale
            ab += float((np.abs(err) / self._scale_rows[win.series[idx]][:, None, None]).sum())
            count += err.size
        return sq / max(count, 1), ab / max(count, 1)

    # -- inference ------------------------------------------------------------------------------
    def predict_windows(
        self,
        series: list[SeriesData],
        win: Windows,
        k: int | None = None,
        batch_size: int = 256,
        scaled_units: bool = False,
    ) -> dict[str, np.ndarray]:
        """Forecast every window -> {"point": (W, K, O), "truth": (W, K, O), "history": ...} arrays."""
        self._check_fitted()
        k = win.horizon if k is None else k
        scaled = self._scaled(series)
        O = self.config.n_targets
        points, truths, params_all = [], [], []
        self.net.eval()
        with torch.no_grad():
            for b in range(0, len(win), batch_size):
                idx = np.arange(b, min(b + batch_size, len(win)))
                hist, fut, cov = self._gather(scaled, win, idx, k)
                dev = self._device()
                p = self.net.forecast(
                    hist.to(dev), k, cov.to(dev) if self.config.n_future else None
                ).cpu()
                points.append(self.net.point(p)[..., :O].numpy())
                truths.append(fut[..., :O].numpy())
                params_all.append(p[..., :O, :].numpy())
        point = np.concatenate(points) if points else np.zeros((0, k, O), np.float32)
        truth = np.concatenate(truths) if truths else np.zeros((0, k, O), np.float32)
        params = (
            np.concatenate(params_all) if params_all else np.zeros((0, k, O, self.config.n_params))
        )
        if not scaled_units:
            point, truth, params = (
                self._unscale(point, win.series),
                self._unscale(truth, win.series),
                self._unscale_params(params, win.series),
            )
        return {"point": point, "truth": truth, "params": params}

    def _unscale(self, a: np.ndarray, series_idx: np.ndarray, scaling=None) -> np.ndarray:
        O = self.config.n_targets
        sc = self.scaling if scaling is None else scaling
        rows = np.array([sc.row(int(i)) for i in series_idx], dtype=np.int64)
        mean = sc.z_mean[rows][:, None, :O]
        std = sc.z_std[rows][:, None, :O]
        return a * std + mean

    def _unscale_params(self, p: np.ndarray, series_idx: np.ndarray, scaling=None) -> np.ndarray:
        O = self.config.n_targets
        sc = self.scaling if scaling is None else scaling
        rows = np.array([sc.row(int(i)) for i in series_idx], dtype=np.int64)
        mean = sc.z_mean[rows][:, None, :O, None]
        std = sc.z_std[rows][:, None, :O, None]
        out = p.copy()
        if self.config.loss in ("mse", "quantile"):
            return out * std + mean
        out[..., 0:1] = p[..., 0:1] * std + mean
        out[..., 1:2] = p[..., 1:2] * std
        return out

    def forecast(
        self,
        history,
        k: int | None = None,
        *,
        series_index: int | None = 0,
        future_cov: np.ndarray | None = None,
        samples: int = 0,
        seed: int = 0,
        allow_short: bool = False,
    ) -> dict:
        """Forecast ``k`` steps after the end of ``history`` (original units).

        ``history`` needs at least ``lookback`` rows, the window length the model was trained on;
        ``allow_short=True`` forecasts from fewer (at least 1: the LSTM reads any length, the
        highway repeats the first value), which the model never saw in training.
        ``future_cov`` (K, Cf) are the known covariates of the K future rows (required when Cf > 0).
        ``series_index``: which training series ``history`` continues (its scaling statistics);
        None: a series the model was not fitted on, scaled by its own history's mean and std.
        A pandas ``history`` (see `fit`) gives a DataFrame: future timestamps, the point forecast
        under the target's name, then the quantile or interval columns.
        Returns {"point": (K, O)} plus "quantiles" {q: (K, O)} for a quantile head, "std" (and
        "scale", "df" for a Student-t head), and "samples" (S, K, O) sample paths when
        ``samples`` > 0.
        """
        self._check_fitted()
        k = self.config.horizon if k is None else k
        if is_pandas_series_input(history):
            return self._forecast_frame(
                history,
                k,
                future_cov=future_cov,
                samples=samples,
                seed=seed,
                allow_short=allow_short,
            )
        if isinstance(history, np.ndarray):
            history = SeriesData(target=history, name="history")
        c = self.config
        N = len(history.target)
        check_history_length(history.name, N, c.lookback, allow_short)
        if c.n_future:
            if future_cov is None:
                raise DataError(
                    f"future_cov: this model uses {c.n_future} known covariates; give their K={k} future rows"
                )
            future_cov = _as_2d(future_cov, "future_cov")
            if future_cov.shape != (k, c.n_future):
                raise ShapeError(
                    f"future_cov: expected (K={k}, Cf={c.n_future}), got {future_cov.shape}"
                )
        else:
            future_cov = np.zeros((k, 0), np.float32)
        full = SeriesData(
            target=np.concatenate([history.target, np.zeros((k, c.n_targets), np.float32)]),
            past_cov=np.concatenate([history.past_cov, np.zeros((k, c.n_past), np.float32)]),
            future_cov=np.concatenate([history.future_cov, future_cov]),
            name=history.name,
        )
        if full.z.shape[1] != c.n_fed or full.future_cov.shape[1] != c.n_future:
            raise ShapeError(
                f"{history.name}: expected (O={c.n_targets}, Cp={c.n_past}, Cf={c.n_future}) columns, got "
                f"({history.target.shape[1]}, {history.past_cov.shape[1]}, {history.future_cov.shape[1]})"
            )
        sc = None  # the fitted statistics of series `series_index`
        if series_index is None and not self.scaling.global_:
            # a series the model was not fitted on: scaled by its own history's statistics
            sc = Scaling.fit([history], [N], global_=True)
            series_index = 0
        elif series_index is None:
            series_index = 0
        if not self.scaling.global_ and not 0 <= series_index < len(self.scaling.z_mean):
            raise ConfigError(
                f"series_index: expected 0..{len(self.scaling.z_mean) - 1} ({self.series_names}), got {series_index}"
            )
        scaled = self._scaled([full], rows=[series_index], scaling=sc)
        hist, _, cov = self._gather(
            scaled, Windows(np.array([0]), np.array([0]), N, k), np.array([0]), k
        )
        win = Windows(np.array([series_index]), np.array([0]), N, k)
        result: dict = {}
        self.net.eval()
        dev = self._device()
        hist, cov = hist.to(dev), cov.to(dev)
        with self._inferring(), torch.no_grad():
            p = self.net.forecast(hist, k, cov if c.n_future else None).cpu()
            params = self._unscale_params(p[..., : c.n_targets, :].numpy(), win.series, sc)[0]
            result["point"] = self._unscale(
                self.net.point(p)[..., : c.n_targets].numpy(), win.series, sc
            )[0]
            if c.loss == "quantile":
                result["quantiles"] = {q: params[..., i] for i, q in enumerate(c.quantiles)}
            if c.loss in ("gaussian", "student_t"):
                result["std"] = FM.distribution_std(c.loss, params)
            if c.loss == "student_t":
                result["scale"], result["df"] = params[..., 1], params[..., 2]
            if samples:
                g = torch.Generator(device=dev).manual_seed(seed)
                # the caller's global RNG is left as it was
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    paths = self.net.forecast(
                        hist, k, cov if c.n_future else None, samples=samples, generator=g
                    )
                paths = paths[:, 0, :, : c.n_targets].cpu().numpy()
                result["samples"] = self._unscale(paths, np.full(samples, series_index), sc)
        return result

    # -- pandas out -----------------------------------------------------------------------------
    def _series_index(self, name: str) -> int | None:
        """Which fitted series ``name`` is (its scaling): by name; the one series of a model
        fitted on one; else None: a new series, scaled by its own history (see `forecast`)."""
        if name in self.series_names:
            return self.series_names.index(name)
        if self.scaling.global_ or len(self.scaling.z_mean) == 1:
            return 0
        return None

    def _forecast_frame(self, history, k: int, *, future_cov, samples, seed, allow_short):
        """`forecast` for pandas in: a DataFrame out, one row per future step (and series), with
        future timestamps, the point forecast under the target's name and the interval columns."""
        import pandas as pd

        roles = self.meta.get("pandas") or {}
        parts, got = series_from_pandas(
            history, past_cov=roles.get("past_cov"), future_cov=roles.get("future_cov")
        )
        frames = []
        for part in parts:
            sd = SeriesData(**part)
            stamps = part["timestamps"]
            fut = None
            if self.config.n_future:
                last = stamps[-1] if stamps is not None else None
                fut = future_rows(future_cov, got, sd.name, k, last)
            out = self.forecast(
                sd,
                k,
                series_index=self._series_index(sd.name),
                future_cov=fut,
                samples=samples,
                seed=seed,
                allow_short=allow_short,
            )
            if stamps is None:
                when = np.arange(len(sd.target), len(sd.target) + k)
            else:
                when = future_timestamps(stamps, k, freq=roles.get("freq"), name=sd.name)
            cols = _result_columns(out, got["target"], self.config.loss)
            if got["long"]:
                frame = pd.DataFrame({UID: sd.name, DS: when, **cols})
            else:
                index = pd.DatetimeIndex(when, name=history.index.name or DS)
                frame = pd.DataFrame(cols, index=index if stamps is not None else when)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True) if got["long"] else frames[0]

    def score(self, X, y=None) -> float:
        """scikit-learn's ``score`` (higher is better): minus the mean MASE of forecasting the
        last ``horizon`` rows of each series from the rows before them (season: the fitted one)."""
        self._check_fitted()
        series, _ = as_series_list(
            X,
            past_cov=(self.meta.get("pandas") or {}).get("past_cov"),
            future_cov=(self.meta.get("pandas") or {}).get("future_cov"),
        )
        K, m = self.config.horizon, self.season_or_1()
        errors = []
        for s in series:
            T = len(s.target)
            if T - K < 1:
                raise DataError(f"{s.name}: {T} rows; scoring needs more than horizon={K}")
            hist = SeriesData(
                target=s.target[: T - K],
                past_cov=s.past_cov[: T - K],
                future_cov=s.future_cov[: T - K],
                name=s.name,
            )
            fut = s.future_cov[T - K :] if self.config.n_future else None
            idx = self._series_index(s.name)
            point = self.forecast(hist, K, series_index=idx, future_cov=fut, allow_short=True)
            train = s.target[: T - K]
            lag = m if len(train) > m else 1
            scale = np.mean(np.abs(train[lag:] - train[:-lag])) if len(train) > lag else 0.0
            errors.append(
                float(np.mean(np.abs(point["point"] - s.target[T - K :]))) / max(scale, 1e-8)
            )
        return -float(np.mean(errors))

    def season_or_1(self) -> int:
        return int(self.meta.get("season", 1) or 1)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path, *, extra_metrics: dict | None = None) -> Path:
        self._check_fitted()
        return save_model_dir(
            path,
            kind=KIND,
            config=self.config.to_dict(),
            state_dict=self.net.state_dict(),
            preprocessing={
                "scaling": self.scaling.to_dict(),
                "series_names": self.series_names,
                "meta": self.meta,
            },
            metrics={
                "seqshape_version": __version__,
                "train": self.metrics,
                "train_config": self.train_config.to_dict(),
                **(extra_metrics or {}),
            },
        )

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None) -> Forecaster:
        files = load_model_dir(path, kind=KIND)
        config = config_from_dict(ForecasterConfig, files.config, files.path / "config.json")
        self = cls(**params_from(cls, config), threads=threads)
        self.options_ = {k: v for k, v in config.to_dict().items() if k in self.options}
        self.n_features_in_ = config.n_fed + config.n_future
        self.config = config
        # weights saved with one highway map for all columns load as the same map per column
        upgrade = lambda t: ColumnHighway.upgrade(t, config.n_fed)  # noqa: E731
        self.net = build_net(ForecasterNet, config, files, upgrade=upgrade)
        self.net.eval()
        pre = files.preprocessing
        where = files.path / "preprocessing.json"
        self.scaling = _loaded_scaling(pre, config, where)
        self.series_names = json_field(pre, "series_names", list, where, [])
        self.meta = json_field(pre, "meta", dict, where, {})
        self.metrics = json_field(files.metrics, "train", dict, files.path / "metrics.json", {})
        return self


def _common_freq(series: list[SeriesData]) -> str | None:
    """The step the series' timestamps share (None without timestamps or when they disagree)."""
    from ..data.series import infer_freq

    found = set()
    for s in series:
        if s.timestamps is None or len(s.timestamps) < 2:
            return None
        try:
            found.add(infer_freq(np.asarray(s.timestamps), strict=False, name=s.name))
        except (DataError, ConfigError):
            return None
    return found.pop() if len(found) == 1 else None


def _result_columns(out: dict, targets: list[str], loss: str) -> dict[str, np.ndarray]:
    """A forecast's arrays as named columns: the point under each target's name, then per target
    the quantiles (``y_q0.1``), or the std and the 80%/95% intervals (``y_lo_80``, ``y_hi_80``):
    from the distribution for a Gaussian head, from the sample paths otherwise when asked for."""
    from statistics import NormalDist

    cols: dict[str, np.ndarray] = {}
    for j, name in enumerate(targets):
        cols[name] = out["point"][:, j]
        for q, v in (out.get("quantiles") or {}).items():
            cols[f"{name}_q{q:g}"] = v[:, j]
        if "std" in out:
            cols[f"{name}_std"] = out["std"][:, j]
        for level in (80, 95):
            lo_q, hi_q = (1 - level / 100) / 2, 1 - (1 - level / 100) / 2
            if loss == "gaussian":
                z = NormalDist().inv_cdf(hi_q)
                lo = out["point"][:, j] - z * out["std"][:, j]
                hi = out["point"][:, j] + z * out["std"][:, j]
            elif "samples" in out:
                lo = np.quantile(out["samples"][:, :, j], lo_q, axis=0)
                hi = np.quantile(out["samples"][:, :, j], hi_q, axis=0)
            else:
                continue
            cols[f"{name}_lo_{level}"], cols[f"{name}_hi_{level}"] = lo, hi
    return cols


def _loaded_scaling(pre: dict, config: ForecasterConfig, where: Path) -> Scaling:
    """preprocessing.json's ``scaling``, checked: (S, O+Cp) and (S, Cf) finite means and
    positive stds, S >= 1."""
    from ..errors import ArtifactError

    try:
        sc = Scaling.from_dict(pre["scaling"])
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise ArtifactError(f"{where}: field 'scaling' is damaged ({e})") from None
    S = sc.z_mean.shape[0] if sc.z_mean.ndim == 2 else 0
    for name, cols in (("z", config.n_fed), ("f", config.n_future)):
        mean, std = getattr(sc, f"{name}_mean"), getattr(sc, f"{name}_std")
        if S < 1 or mean.shape != (S, cols) or std.shape != (S, cols):
            raise ArtifactError(
                f"{where}: scaling.{name}_mean/{name}_std: expected shape (S, {cols}) each, "
                f"got {mean.shape} and {std.shape}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ArtifactError(
                f"{where}: scaling.{name}_mean/{name}_std: expected finite means and positive stds"
            )
    if not isinstance(pre["scaling"].get("global_"), bool):
        raise ArtifactError(f"{where}: scaling.global_: expected true or false")
    return sc


def _per_series(value, lens: list[int], *, default: list[int], name: str) -> list[int]:
    if value is None:
        return default
    vals = [int(value)] * len(lens) if np.isscalar(value) else [int(v) for v in value]
    if len(vals) != len(lens):
        raise ConfigError(f"{name}: expected one value per series ({len(lens)}), got {len(vals)}")
    for v, n in zip(vals, lens):
        if not 0 < v <= n:
            raise ConfigError(f"{name}: expected a row count in [1, {n}], got {v}")
    return vals
