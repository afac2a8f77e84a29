"""The forecaster's baselines-first start: which baseline the highway starts as, how the model is
scored on validation (MASE), and metrics.json's account of which part won (docs/forecast.md).

A mixin of `seqshape.api.forecaster.Forecaster`: it reads the fitted network (``net``,
``config``), ``season_``, ``seed``, ``start``, ``stride``, ``keep_start`` and ``metrics``.
"""

from __future__ import annotations

import numpy as np

from ..data.windows import Windows, make_windows
from ..errors import ConfigError
from ..models.forecaster import LOG_FLOOR, apply_highway_start, highway_starts


class BaselineStart:
    def _start_from_best_baseline(self, scaled, tr: list[int], val_w: Windows, scored=None) -> str:
        """Set the highway to the baseline (naive, seasonal naive, least-squares linear) that
        forecasts best out of sample, the LSTM's head at zero: the untrained model *is* that
        baseline, and ``keep_start`` keeps it unless an epoch beats it on validation. Returns the
        chosen start's name. ``scored``: what `_score_starts` returned, if it already ran.
        """
        starts, baselines = self._score_starts(scaled, tr, val_w) if scored is None else scored
        if self.start != "best":
            if self.start not in starts:
                raise ConfigError(
                    f"start: {self.start!r} needs 1 < season <= highway, got season "
                    f"{self.season_} and highway {self.config.highway}"
                )
            best = self.start
        elif not baselines:  # no window to score on
            best = "least_squares"
        else:
            self.baselines_ = dict(baselines)
            best = min(baselines, key=baselines.get)
        apply_highway_start(self.net, starts[best])
        self.start_weights_ = starts[best]  # the baseline alone, for ablations (not saved)
        return best

    def _score_starts(self, scaled, tr: list[int], val_w: Windows) -> tuple[dict, dict]:
        """The starts the highway can hold, each fitted on the training rows, and (with
        ``start="best"``) each one's MASE out of sample -> ({name: HighwayStart}, {name: MASE};
        empty when there was no window to score on).

        The candidates are scored on the validation windows (fitted on the training rows) and on
        windows forecasting the last fifth of the training rows (fitted on the rows before them),
        pooled: a validation part of one or two windows (a short monthly series) alone would pick
        by chance.
        """
        seed = self.seed
        ridges = (1e-4, 1e-2, 1e-1, 1.0)
        # the highway runs where the LSTM does: in log space under a log window norm (naive and
        # seasonal naive are the same there; least squares fits relative changes)
        log = self.config.window_norm == "log"
        space = (lambda a: np.log(np.maximum(a, LOG_FLOOR))) if log else (lambda a: a)  # noqa: E731
        back = np.exp if log else (lambda a: a)  # noqa: E731
        z_train = [space(z[:e]) for (z, _), e in zip(scaled, tr)]

        def candidates(rows: list[np.ndarray]) -> dict:
            return highway_starts(self.net, rows, season=self.season_, ridges=ridges, seed=seed)

        starts = candidates(z_train)
        if self.start != "best":
            return starts, {}
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
                err = np.abs(back(st.forecast(space(hist), K))[..., :O] - fut) / scale
                errors[name][0] += float(np.sum(err))
                errors[name][1] += err.size

        score(starts, val_w)
        cut = [e - max(K, e // 5) for e in tr]
        if min(cut) >= N + K:
            early = candidates([z[:c] for z, c in zip(z_train, cut)])
            early_w = make_windows(list(zip(cut, tr)), N, K, max(self.stride, 1), skip_short=True)
            score(early, early_w)
        if all(n == 0 for _, n in errors.values()):
            return starts, {}
        return starts, {name: sse / n for name, (sse, n) in errors.items()}

    def _which_part_won(self) -> dict:
        """metrics.json's account of the baselines and of what the model returned is."""
        if not self.config.highway:
            return {"season": self.season_, "winner": "lstm"}
        start = self.start_
        best_val = self.metrics.get("best_val_mase")
        start_val = self.metrics.get("start_val_mase")  # the start, on the validation windows
        lstm_won = self.metrics.get("best_epoch", 0) != 0 or not self.keep_start
        out = {"season": self.season_, "start": start, "strategy": self.config.strategy}
        if self.baselines_:
            # each baseline's MASE out of sample (validation windows and the end of the training
            # part): what chose the start
            out["baselines_val_mase"] = dict(self.baselines_)
        if getattr(self, "strategy_val_", None):
            out["strategy_val_mase"] = dict(self.strategy_val_)
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
