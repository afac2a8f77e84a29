"""Scoring a `Forecaster` out of sample: the rolling-origin backtest against the baselines on the
same windows, and how well its intervals (per step, or of sample paths) hold the truth.

    backtest(fc, series, train_end, val_end, test_end, [24, 48])   # model and baselines, per K
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.windows import Windows, make_windows
from ..errors import ConfigError, DataError
from ..train import forecast_metrics as FM


def interval_scores(
    net, params: np.ndarray, truth: np.ndarray, *, seed: int = 0, mean=0.0, std=1.0
) -> dict:
    """How well a probabilistic head's intervals hold the truth, in scaled units.

    ``params`` (W, K, O, P) and ``truth`` (W, K, O), scaled; ``mean`` and ``std`` (W, 1, O) (or
    numbers) the scaling of each window's series, which a count head needs to know its counts.
    The interval is the head's (`Head.interval_level`, `Head.interval`): the outermost quantiles
    of a quantile head, else the central 80% (a Student-t's by 200 draws per point, as it has no
    closed form here). Returns {"level": nominal share, "coverage": share of true values inside,
    "width": mean width (scaled units)}, plus the head's own score (`Head.score_name`: "pinball"
    for a quantile head). Coverage well below the level means intervals too narrow: for an
    autoregressive model the per-step intervals hold one step's uncertainty around fed-back
    points; sample paths (`forecast(..., samples=S)`) carry it through the horizon.
    """
    c = net.config
    head = c.head
    y = np.asarray(truth, dtype=np.float64)
    p = np.asarray(params, dtype=np.float64)
    m = np.broadcast_to(np.asarray(mean, dtype=np.float64), y.shape)
    s = np.broadcast_to(np.asarray(std, dtype=np.float64), y.shape)
    # original units: where a count head's distribution is defined
    out_o = head.outputs(head.to_original(p, m, s), c.quantiles)
    level = head.interval_level(c.quantiles)
    band = head.interval(out_o, level)
    if band is None:
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        pt = torch.from_numpy(p.astype(np.float32))
        draws = torch.stack([net.sample(pt, g) for _ in range(200)]).numpy()
        lo_q = 0.5 - level / 2
        band = tuple(np.quantile(draws, (lo_q, 1.0 - lo_q), axis=0) * s + m)
    # back to scaled units
    lo, hi = ((b - m) / s for b in band)
    inside = (y >= lo) & (y <= hi)
    scores = {}
    if head.score_name:
        loss = head.loss(torch.from_numpy(p), torch.from_numpy(y), c.quantiles)
        scores[head.score_name] = float(loss)
    return {
        "level": round(level, 6),
        "coverage": float(inside.mean()),
        "width": float(np.mean(hi - lo)),
        **scores,
    }


def sample_interval_scores(
    fc,
    series,
    win: Windows,
    k: int,
    samples: int,
    *,
    level: float = 0.8,
    seed: int = 0,
    scaled: list | None = None,
) -> dict:
    """Coverage of the central ``level`` band of ``samples`` sample paths per window (scaled
    units): each path feeds its own draws back, so the band widens with the horizon as the
    per-step intervals do not. Autoregressive probabilistic models only."""
    c = fc.config
    if c.strategy != "autoregressive" or not c.head.probabilistic:
        raise ConfigError(
            "samples: sample paths need an autoregressive model with a probabilistic head "
            f"(this one: strategy {c.strategy!r}, loss {c.loss!r})"
        )
    scaled = fc._scaled(series) if scaled is None else scaled  # a backtest's, already scaled
    O, lo_q = c.n_targets, (1.0 - level) / 2
    inside, width, count = 0.0, 0.0, 0
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    per = max(1, 16384 // samples)  # windows per pass: S·B paths at a time
    fc.net.eval()
    with torch.no_grad():
        for b in range(0, len(win), per):
            idx = np.arange(b, min(b + per, len(win)))
            hist, fut, cov = fc._gather(scaled, win, idx, k)
            # (B, Z): each window's count scale (count heads draw whole counts)
            scale = torch.from_numpy(_scaling_rows(fc, win.series[idx])[1][:, 0].astype(np.float32))
            # (S, B, K, Z) paths -> their (B, K, O) band
            paths = fc.net.forecast(
                hist, k, cov if c.n_future else None, samples=samples, generator=g, scale=scale
            )[..., :O].numpy()
            lo, hi = np.quantile(paths, [lo_q, 1.0 - lo_q], axis=0)
            y = fut[..., :O].numpy()
            inside += float(((y >= lo) & (y <= hi)).sum())
            width += float((hi - lo).sum())
            count += y.size
    return {
        "level": level,
        "coverage": inside / max(count, 1),
        "width": width / max(count, 1),
        "samples": samples,
    }


def backtest(
    fc,
    series,
    train_end,
    val_end,
    test_end,
    horizons: list[int],
    season: int | None = None,
    samples: int = 0,
) -> dict:
    """Rolling-origin backtest on [val_end, test_end) of each series: model and baselines, same windows.

    ``samples`` > 0 (autoregressive probabilistic models): also the coverage of the 10-90% band
    of that many sample paths per window ("sample_interval")."""
    from ..models import baselines as BL  # noqa: N812

    N = fc.config.lookback
    O = fc.config.n_targets
    if season is None:
        season = fc.meta.get("season")  # what fit detected (or was given), kept with the model
    if not isinstance(season, int) or season < 1:
        season = BL.infer_season(series[0].target[: train_end[0], 0], freq=fc.meta.get("freq"))
    out: dict = {"lookback": N, "season": int(season), "by_horizon": {}}
    # the linear baseline is fitted on the training windows, per horizon
    scaled = fc._scaled(series)  # once, shared by every horizon and baseline
    std = _standard_std(fc, series, train_end)
    for K in horizons:
        win = make_windows(list(zip(val_end, test_end)), N, K, 1, skip_short=True)
        if len(win) == 0:
            need = N + K
            raise DataError(f"test split too short for lookback {N} + horizon {K} = {need} rows")
        pred = fc.predict_windows(series, win, K, scaled_units=True)
        truth, point = pred["truth"], pred["point"]
        # (W, N, O): each window's history of the targets, scaled like the model sees it
        hist = np.stack([scaled[i][0][s : s + N, :O] for i, s in zip(win.series, win.start)])
        tr_w = make_windows([(0, e) for e in train_end], N, K, 1, skip_short=True)
        tx = np.stack([scaled[i][0][s : s + N, :O] for i, s in zip(tr_w.series, tr_w.start)])
        ty = np.stack(
            [scaled[i][0][s + N : s + N + K, :O] for i, s in zip(tr_w.series, tr_w.start)]
        )
        linear = BL.LinearBaseline(N, K).fit(tx, ty)
        preds = {
            "model": point,
            "naive": BL.naive(hist, K),
            "seasonal_naive": BL.seasonal_naive(hist, K, season),
            "linear": linear.predict(hist),
        }
        # MASE: each window scaled by its own series' in-sample seasonal-naive error
        scale = FM.mase_scale(
            [scaled[i][0][: train_end[i], :O] for i in range(len(series))], season
        )
        scale = scale.rows(win.series)
        row = {}
        for name, p in preds.items():
            orig_p = fc._unscale(p, win.series)
            orig_t = fc._unscale(truth, win.series)
            # errors on the standardized scale, whatever the model's own scaling
            z_err = (orig_p - orig_t) / std[win.series][:, None, :O]
            row[name] = {
                "mse": float(np.mean(z_err**2)),
                "mae": float(np.mean(np.abs(z_err))),
                "mse_original": float(np.mean((orig_p - orig_t) ** 2)),
                "mae_original": float(np.mean(np.abs(orig_p - orig_t))),
                "mase": float(FM.mase(truth, p, scale)),
                "smape": float(FM.smape(orig_t, orig_p)),
            }
        if fc.config.head.probabilistic:
            m, sd = (a[..., :O] for a in _scaling_rows(fc, win.series))
            row["model"]["interval"] = interval_scores(
                fc.net, pred["params"], truth, mean=m, std=sd
            )
        if samples:
            row["model"]["sample_interval"] = sample_interval_scores(
                fc, series, win, K, samples, scaled=scaled
            )
        out["by_horizon"][str(K)] = {
            **row["model"],
            "baselines": {k: v for k, v in row.items() if k != "model"},
            "n_windows": len(win),
        }
    first = out["by_horizon"][str(horizons[0])]
    out.update(
        {k: first[k] for k in ("mse", "mae", "mase", "smape", "mse_original", "mae_original")}
    )
    out["baselines"] = first["baselines"]
    return out


def _standard_std(fc, series, train_end) -> np.ndarray:
    """(S, O+Cp) the standard deviation of each series' training part (one for all under global
    scaling): "mse" and "mae" are on that standardized scale, the same for a model that scales by
    level (a log window norm, counts) as for one that standardizes."""
    from ..data.scaling import Scaling

    sc = fc.scaling
    if fc._scaling_rule() != "standard":
        sc = Scaling.fit(list(series), list(train_end), sc.global_, rule="standard")
    rows = [sc.row(i) for i in range(len(series))]
    return sc.z_std[rows].astype(np.float64)


def _scaling_rows(fc, series_idx) -> tuple[np.ndarray, np.ndarray]:
    """Each window's series scaling: (W, 1, Z) z_mean and z_std rows, float64."""
    sc = fc.scaling
    rows = np.array([sc.row(int(i)) for i in series_idx], dtype=np.int64)
    return (sc.z_mean[rows][:, None].astype(np.float64), sc.z_std[rows][:, None].astype(np.float64))
