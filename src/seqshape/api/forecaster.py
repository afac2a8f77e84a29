"""`Forecaster`: N past steps -> any K future steps, for one series or many (a global model).

    fc = Forecaster(lookback=96, horizon=24).fit(series)           # series: list of SeriesData
    out = fc.forecast(history_target, k=48, future_cov=...)         # original units
    fc.save("model/"); Forecaster.load("model/")

A series is given as arrays: ``target`` (T, O), optional ``past_cov`` (T, Cp) (observed, not known
ahead) and ``future_cov`` (T, Cf) (known ahead, e.g. calendar features). Scaling is fitted per series
on the training part only (or globally), and every output is inverse-transformed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..artifacts import build_net, config_from_dict, json_field, load_model_dir
from ..batching import Batch
from ..data.frames import is_pandas_series_input
from ..data.scaling import Scaling
from ..data.series import SeriesData, check_history_length
from ..data.windows import Windows, gather, make_windows  # noqa: F401 (re-exported)
from ..errors import ConfigError, DataError, ShapeError
from ..models.forecast_units import outputs, to_original
from ..models.forecaster import (
    HIGHWAY_STARTS,
    STRATEGIES,
    ColumnHighway,
    ForecasterConfig,
    ForecasterNet,
    forecast_loss,
)
from ..shapes import as_float32_2d
from ..train.loop import TrainConfig, TrainResult
from . import forecast_static as st
from .base import Estimator, check_fraction, fitting, params_from
from .forecast_baselines import BaselineStart
from .forecast_pandas import PandasIO, as_series_list, common_freq
from .forecast_strategy import TRAIN_RECIPES, StrategyChoice, recipe

KIND = "forecaster"


class Forecaster(Estimator, BaselineStart, StrategyChoice, PandasIO):
    """An LSTM forecaster: by default direct (all K steps at once), the LSTM reading the history
    a season at a time; autoregressive through the LSTM on request (see models/forecaster.py).

    Model: ``lookback`` N history steps (default, direct: seven seasons or two horizons, at most
    720, whole seasons, two training windows per step; autoregressive: three seasons or two horizons, at most 336), training ``horizon`` K,
    ``strategy`` "auto" (default: direct, unless the autoregressive model's best start validates
    better; ``metrics["strategy"]``) | "autoregressive" (any K one step at a
    time, streams, sample paths) | "direct" (K at a time, any K block by block), ``segment``
    (direct: steps per LSTM input; default the season, or twelve segments without one),
    ``loss`` "mae" | "mse" | "gaussian" | "student_t" | "quantile" (with ``quantiles``) |
    "poisson" | "negbin" (counts: scaled by 1 + their mean, not centred; see models/heads.py;
    default: "mae" direct, "mse" autoregressive), ``hidden_size`` (default 128 direct, 64
    autoregressive), ``num_layers``, ``dropout``, ``cell``, ``window_norm`` "log" | "last" |
    "mean" | "none" (the per-window level the LSTM does not see; default: "log" for a direct
    model of positive values, else the head's, "none" for counts). ``season``: the seasonal
    period in steps (default: detected from the training part).

    Baselines first: ``highway`` P (default: the lookback; 0 turns it off) is a linear map of the
    last P values beside the LSTM, started as the baseline that forecasts best out of sample
    (``start="best"``: naive, seasonal naive or least squares, scored by MASE on the validation
    windows and the end of the training part) with the LSTM's head at zero;
    ``train_highway=False`` keeps that map fixed; ``keep_start`` keeps the start unless an epoch
    beats it on validation by ``start_margin`` (default 5% lower MASE), so the model returned
    never validates worse than its baseline, and a gain within validation noise keeps it.
    ``metrics["winner"]`` says which part won (docs/forecast.md).

    Training: ``epochs``, ``batch_size``, ``lr``, ``weight_decay``, ``patience`` (early stopping;
    default 10 direct, 5 autoregressive), ``lr_schedule`` "plateau" (halve after ``lr_patience``
    stalled epochs) | "cosine" (default: cosine direct, plateau autoregressive), ``seed``,
    ``sampling_ratio`` (scheduled sampling), ``stride`` and ``max_windows_per_epoch`` (which
    training windows an epoch uses), ``global_scaling`` (one scaler for all series instead of one
    each), ``threads``, ``progress``.
    """

    _kind = KIND

    def __init__(
        self,
        *,
        lookback: int | None = None,
        horizon: int = 24,
        strategy: str = "auto",
        loss: str | None = None,
        quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
        hidden_size: int | None = None,
        num_layers: int = 2,
        dropout: float = 0.0,
        cell: str = "lstm",
        window_norm: str | None = None,
        segment: int | None = None,
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
        patience: int | None = None,
        lr_schedule: str | None = None,
        lr_patience: int | None = None,
        seed: int = 0,
        sampling_ratio: float = 0.0,
        stride: int = 1,
        max_windows_per_epoch: int | None = 16384,
        global_scaling: bool = False,
        threads: int | None = None,
        progress: bool = True,
        device: str = "cpu",
        callback=None,
    ) -> None:
        self._store_params(locals())
        self.options_: dict | None = None  # fitted: the network's options, lookback resolved
        self.train_config_: TrainConfig | None = None  # fitted: what the loop ran with
        self.config: ForecasterConfig | None = None
        self.net: ForecasterNet | None = None
        self.scaling: Scaling | None = None
        self.series_names: list[str] = []
        self.metrics: dict = {}
        self.train_result: TrainResult | None = None
        self.meta: dict = {}
        self.statics_: dict = {}  # fitted: {series name: its static covariates}

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
        check_fraction("sampling_ratio", self.sampling_ratio, closed=True)
        if self.strategy not in ("auto", *STRATEGIES):
            raise ConfigError(
                f"strategy: expected one of auto, {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )

    @property
    def options(self) -> dict:
        """The network's options (ForecasterConfig's fields other than the data's sizes); once
        fitted, with the lookback and highway the data decided."""
        if getattr(self, "options_", None) is not None:
            return dict(self.options_)
        return self._raw_options()

    def _raw_options(self) -> dict:
        """The options as the parameters give them, before the data fills the rest."""
        opts = self._options(ForecasterConfig) | {"quantiles": tuple(self.quantiles)}
        if opts["strategy"] == "auto":  # direct, unless one step is all there is to forecast
            opts["strategy"] = "direct" if self.horizon > 1 else "autoregressive"
        return recipe(opts, self)

    @property
    def train_config(self) -> TrainConfig:
        """The training options (once fitted: what the loop ran with, its monitor decided)."""
        if getattr(self, "train_config_", None) is not None:
            return self.train_config_
        # the strategy's recipe for what the parameters leave open (as fit will run it)
        config = getattr(self, "config", None)
        strategy = config.strategy if config is not None else self._raw_options()["strategy"]
        recipe = TRAIN_RECIPES.get(strategy, TRAIN_RECIPES["direct"])  # (an unknown one: refused)
        patience = recipe["patience"] if self.patience is None else self.patience
        lr_patience = self.lr_patience
        return self._training(
            patience=patience,
            lr_schedule=self.lr_schedule or recipe["lr_schedule"],
            lr_patience=max(1, patience // 2) if lr_patience is None else lr_patience,
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
        return sc.apply(st.attach(self, series, sc.f_mean.shape[1]), rows)

    _gather = staticmethod(gather)

    # -- training -------------------------------------------------------------------------------
    @fitting
    def fit(
        self,
        series,
        *,
        train_end=None,
        val_end=None,
        past_cov: list[str] | None = None,
        future_cov: list[str] | None = None,
        static_df=None,
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
        self.options_ = self.train_config_ = None
        series, roles = as_series_list(
            series, past_cov=past_cov, future_cov=future_cov, static_df=static_df
        )
        self.meta = {k: v for k, v in self.meta.items() if k not in ("pandas", "static_names")}
        names, self.statics_ = st.fit_statics(series, roles.pop("static", None))
        if names:  # the statics ride along as the last known covariates of every row
            self.meta["static_names"] = names
            series = [st.with_static(s, self.statics_[s.name]) for s in series]
        if roles:
            # how to read and write pandas at forecast time: the columns' roles and the step
            self.meta["pandas"] = {**roles, "freq": common_freq(series)}
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
        self.series_names = [s.name for s in series]
        self.n_features_in_ = O + Cp + Cf
        self.baselines_, self.strategy_val_ = {}, {}
        self.options_ = self._resolve_shape_options(series, tr)
        scaled, train_w, val_w = self._prepare(series, tr, va)
        N = self.config.lookback
        if self.config.highway:
            # start from the best baseline the highway can hold, on the validation windows
            scored = self._score_starts(scaled, tr, val_w)
            if self._may_switch() and scored[1]:
                scored, scaled, train_w, val_w = self._auto_strategy(
                    series, tr, va, scored, (scaled, train_w, val_w)
                )
                N = self.config.lookback
            self.start_ = self._start_from_best_baseline(scaled, tr, val_w, scored)
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
                rows = [self.scaling.row(int(i)) for i in train_w.series[idx]]
                yield Batch(
                    x=hist,
                    lengths=torch.full((len(idx),), N),
                    mask=torch.ones(len(idx), N, dtype=torch.bool),
                    y=fut,
                    # (B, Z): each window's series scale, with which a count head scores counts
                    extra={"cov": cov, "scale": torch.from_numpy(self.scaling.z_std[rows])},
                )

        def loss_fn(net, batch):
            p = net(
                batch.x, batch.y, batch.extra["cov"] if cfg.n_future else None, sampling_ratio=ratio
            )
            return forecast_loss(p, batch.y, cfg, scale=batch.extra["scale"])

        def validate(net):
            mse, mase = self._val_errors(net, scaled, val_w)
            return {"val_mase": mase, "val_mse": mse}

        self.train_result = self._train(
            "forecast",
            batches,
            n_batches,
            loss_fn,
            validate if len(val_w) else None,
            tc,
            data=(scaled, list(tr), list(va)),
        )
        self.metrics = self.train_result.summary(
            "val_mase" if len(val_w) else "train_loss",
            n_train_windows=len(train_w),
            n_val_windows=len(val_w),
        )
        self.metrics.update(self._which_part_won())
        return self

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
        """(W, K, O, P) scaled parameters -> original units, each window by its series' row."""
        O = self.config.n_targets
        sc = self.scaling if scaling is None else scaling
        rows = np.array([sc.row(int(i)) for i in series_idx], dtype=np.int64)
        # (W, O) -> (W, 1, O): one mean and std per window and target, over the K steps
        mean, std = sc.z_mean[rows][:, None, :O], sc.z_std[rows][:, None, :O]
        return to_original(self.config.loss, p, mean, std)

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
        static_df=None,
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
        ``samples`` > 0. A model with static covariates appends the series' own
        (``history.static``, pandas: ``static_df``), else those of fitted series ``series_index``.
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
                static_df=static_df,
            )
        if isinstance(history, np.ndarray):
            history = SeriesData(target=history, name="history")
        if st.static_names(self):  # (K, Cf_user) + the series' statics -> (K, Cf)
            vec = st.vector_for(self, history, series_index)
            future_cov = st.extend_future(self, vec, future_cov, k)
            history = st.with_static(history, vec)
        c = self.config
        N = len(history.target)
        check_history_length(history.name, N, c.lookback, allow_short)
        if c.n_future:
            if future_cov is None:
                raise DataError(
                    f"future_cov: this model uses {c.n_future} known covariates; give their K={k} future rows"
                )
            future_cov = as_float32_2d(future_cov, "future_cov", columns="O")
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
            sc = Scaling.fit([history], [N], global_=True, rule=self._scaling_rule())
            sc = st.pin_scaling(sc, self.statics_) if self.statics_ else sc
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
        self.net.eval()
        dev = self._device()
        hist, cov = hist.to(dev), cov.to(dev)
        with self._inferring(), torch.no_grad():
            p = self.net.forecast(hist, k, cov if c.n_future else None).cpu()
            params = self._unscale_params(p[..., : c.n_targets, :].numpy(), win.series, sc)[0]
            # point, quantiles, std, scale, df: as every forecaster answers (forecast_units)
            result = outputs(c.loss, c.quantiles, params)
            del result["params"]
            if samples:
                g = torch.Generator(device=dev).manual_seed(seed)
                # the caller's global RNG is left as it was
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    used = self.scaling if sc is None else sc
                    # (1, Z): the series' scale, with which a count head draws whole counts
                    scale = torch.from_numpy(used.z_std[used.row(series_index)][None]).to(dev)
                    paths = self.net.forecast(
                        hist,
                        k,
                        cov if c.n_future else None,
                        samples=samples,
                        generator=g,
                        scale=scale,
                    )
                paths = paths[:, 0, :, : c.n_targets].cpu().numpy()
                result["samples"] = self._unscale(paths, np.full(samples, series_index), sc)
        return result

    def stream(self, series: int | str | None = None):
        """A `seqshape.infer.stream.ForecastStream` over one of this model's series (name or
        index): one LSTM step per row, the one-step forecast after each, state as a value."""
        from ..infer.stream import ForecastStream

        self._check_fitted()
        return ForecastStream(self, series)

    # -- pandas out -----------------------------------------------------------------------------
    def series_index_of(self, name: str) -> int | None:
        """Which fitted series ``name`` is (its scaling): by name; the one series of a model
        fitted on one; else None: a new series, scaled by its own history (see `forecast`)."""
        if name in self.series_names:
            return self.series_names.index(name)
        if self.scaling.global_ or len(self.scaling.z_mean) == 1:
            return 0
        return None

    def season_or_1(self) -> int:
        return int(self.meta.get("season", 1) or 1)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path, *, extra_metrics: dict | None = None) -> Path:
        return self._save(
            path,
            {
                "scaling": self.scaling.to_dict(),
                "series_names": self.series_names,
                "meta": self.meta,
                "statics": self.statics_,
            },
            extra_metrics,
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
        self.scaling = Scaling.loaded(pre, config.n_fed, config.n_future, where)
        self.series_names = json_field(pre, "series_names", list, where, [])
        self.meta = json_field(pre, "meta", dict, where, {})
        self.statics_ = st.loaded_table(pre, self.meta, where)
        self.metrics = json_field(files.metrics, "train", dict, files.path / "metrics.json", {})
        return self


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
