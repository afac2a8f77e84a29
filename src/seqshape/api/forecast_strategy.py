"""What a `Forecaster` fit decides before training: each strategy's recipe for the options left
as None, the lookback, segment and window norm from the data, and strategy "auto"'s choice
between the direct and the autoregressive model by their best starts (docs/forecast.md).

A mixin of `seqshape.api.forecaster.Forecaster`: it reads the parameters and sets ``options_``,
``scaling``, ``config``, ``net``, ``season_`` and ``_scale_rows``.
"""

from __future__ import annotations

import torch

from ..data.scaling import Scaling
from ..data.series import SeriesData
from ..data.windows import make_windows
from ..errors import DataError
from ..models.forecaster import ForecasterConfig, ForecasterNet
from ..models.heads import head_of
from . import forecast_static as st

# strategy "auto": how much better the autoregressive start must validate to be "better"; a tie
# (within rounding) keeps the direct model
TIE = 1e-4

# each strategy's measured recipe, for what the parameters leave open (docs/forecast.md)
RECIPES = {
    "direct": {"loss": "mae", "hidden_size": 128},
    "autoregressive": {"loss": "mse", "hidden_size": 64},
}
TRAIN_RECIPES = {
    # the direct model's validation rises late: a cosine schedule over every epoch, and patience
    "direct": {"lr_schedule": "cosine", "patience": 10},
    "autoregressive": {"lr_schedule": "plateau", "patience": 5},
}


def recipe(opts: dict, fc) -> dict:
    """``opts`` with the loss and hidden size the parameters left as None taken from the
    recipe of ``opts["strategy"]``."""
    for key, value in RECIPES.get(opts["strategy"], RECIPES["direct"]).items():
        if getattr(fc, key) is None:
            opts[key] = value
    return opts


class StrategyChoice:
    def _prepare(self, series: list[SeriesData], tr: list[int], va: list[int]):
        """The scaling, network and windows of ``options_`` -> (scaled series, training
        windows, validation windows)."""
        N, K = self.options_["lookback"], self.options_["horizon"]
        for s, e in zip(series, tr):
            if e < N + K:
                raise DataError(
                    f"{s.name}: the training part has {e} rows; lookback {N} + horizon {K} = {N + K} "
                    f"rows are needed for one training window"
                )
        self.scaling = Scaling.fit(series, tr, self.global_scaling, rule=self._scaling_rule())
        if self.statics_:  # scaled across series: per series, a constant would map to 0
            st.pin_scaling(self.scaling, self.statics_)
        scaled = self._scaled(series)
        train_w = make_windows([(0, e) for e in tr], N, K, self.stride)
        # a series whose validation part is too short for a window just has none there
        val_w = make_windows(list(zip(tr, va)), N, K, max(self.stride, 1), skip_short=True)
        torch.manual_seed(self.seed)
        s0 = series[0]
        self.config = ForecasterConfig(
            n_targets=s0.target.shape[1],
            n_past=s0.past_cov.shape[1],
            n_future=s0.future_cov.shape[1],
            **self.options_,
        )
        self.net = ForecasterNet(self.config)
        self._scale_rows = self._mase_scales(scaled, tr)
        return scaled, train_w, val_w

    def _may_switch(self) -> bool:
        """Whether "auto" may still make the model autoregressive: nothing asked of it that only
        the direct strategy has (segments, a log window norm)."""
        return (
            self.strategy == "auto"
            and self.config.strategy == "direct"
            and self.segment in (None, 1)
            and self.window_norm != "log"
        )

    def _auto_strategy(self, series, tr, va, scored, prepared):
        """strategy "auto": the direct model stays unless the autoregressive one's best start
        (a one-step map iterated, which a long horizon can favour) validates better than the
        direct one's best, on the same validation targets (a tie, as when seasonal naive is best
        for both, keeps the direct model) -> (scored starts, scaled, training and validation
        windows) of the strategy kept, its network, config and scaling set."""
        kept = (self.options_, self.scaling, self.config, self.net, self._scale_rows)
        direct_best = min(scored[1].values())
        self.options_ = self._resolve_shape_options(series, tr, strategy="autoregressive")
        try:
            ar = self._prepare(series, tr, va)
        except DataError:  # its lookback does not fit: the direct model it is
            ar = None
        if ar is not None:
            ar_scored = self._score_starts(ar[0], tr, ar[2])
            if ar_scored[1]:
                ar_best = min(ar_scored[1].values())
                # each strategy's best start out of sample (MASE): what chose the strategy
                self.strategy_val_ = {"direct": direct_best, "autoregressive": ar_best}
                # better beyond float32 rounding: the same baseline (seasonal naive for both)
                # scores alike in either scaling, to about 1e-7
                if ar_best < (1 - TIE) * direct_best:
                    return (ar_scored, *ar)
        self.options_, self.scaling, self.config, self.net, self._scale_rows = kept
        return (scored, *prepared)

    def _scaling_rule(self) -> str:
        """How series are scaled: by their level alone under a log window norm, else the head's
        rule (see `Scaling`)."""
        opts = self.options_ if getattr(self, "options_", None) is not None else self.options
        if opts["window_norm"] == "log":
            return "level"
        return head_of(opts["loss"]).scaling

    # -- defaults from the data, and the baseline start -------------------------------------------
    def _resolve_shape_options(
        self, series: list[SeriesData], tr: list[int], strategy: str | None = None
    ) -> dict:
        """Fill what was left to the data: the season (from the training targets' ACF), the
        lookback (from the season and horizon), the segment, the window norm and the highway
        (the whole lookback). ``strategy``: resolve for this one instead of the parameter's."""
        from ..models.baselines import infer_season

        opts = self._raw_options()
        if strategy is not None:
            opts = recipe(opts | {"strategy": strategy}, self)
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
        direct = opts["strategy"] == "direct"
        if opts["lookback"] is None:
            if direct:
                # seven seasons (a week of hourly data) or two horizons, whichever is longer, up
                # to 720 steps: the LSTM reads them a season at a time
                want = max(7 * self.season_, min(2 * K, 720), 8)
            else:
                # three seasons or two horizons (capped at 336 steps, two weeks of hourly data:
                # the LSTM reads every one of them)
                want = max(3 * self.season_, min(2 * K, 336), 8)
            # within what the shortest training part allows with a few windows to train on
            room = (min(tr) - K) // 2
            if direct:
                # the direct map has a weight per lookback step for every output step: at least
                # two training windows per weight (a short series otherwise gets a lookback it
                # overfits; AirPassengers' test MSE was 5x that of a half-as-long one)
                room = min(room, (min(tr) - K + 1) // 3)
            n = int(max(1, min(want, room)))
            if direct and 1 < self.season_ <= n:  # whole seasons, so whole segments
                n -= n % self.season_
            opts["lookback"] = n
        N = opts["lookback"]
        if opts["segment"] is None:
            # a season per LSTM step (SegRNN), or twelve segments where there is no season
            if not direct:
                opts["segment"] = 1
            elif 1 < self.season_ <= N // 2:
                opts["segment"] = self.season_
            else:
                opts["segment"] = max(1, -(-N // 12))
        if opts["highway"] is None:
            opts["highway"] = N
        if opts["window_norm"] is None:
            head = head_of(opts["loss"])
            positive = all(bool((s.z[:e] > 0).all()) for s, e in zip(series, tr))
            if direct and "log" in head.window_norms and positive:
                # positive values: levels and swings are relative, errors too (sMAPE, MASE)
                opts["window_norm"] = "log"
            else:  # the head's own: "last", or "none" for counts
                opts["window_norm"] = head.default_window_norm
        return opts
