"""M4-style work with a `Forecaster`: one global model over the series of an M4 train file,
validated on the last ``horizon`` values of each, scored on the test file as the competition did.

    train, test = read_m4_pair("Hourly-train.csv", "Hourly-test.csv", horizon=48)
    fc = fit_m4(Forecaster(horizon=48, season=24), train)
    evaluate_m4(fc, train, test, season=24)   # {"smape", "mase", "owa", "baselines": {...}}

sMAPE, MASE and OWA follow the competition's definitions (`train.forecast_metrics.m4_scores`,
`owa`); OWA is relative to Naive2 computed here the competition's way (`models.baselines.naive2`).
"""

from __future__ import annotations

import numpy as np

from ..data.m4 import M4Set
from ..data.series import SeriesData
from ..data.windows import make_windows
from ..errors import DataError
from ..models.baselines import naive2
from ..train.forecast_metrics import m4_scores, owa
from .forecaster import Forecaster


def m4_series(m4: M4Set) -> list[SeriesData]:
    """One univariate `SeriesData` per row of an M4 file, named by its id."""
    return [SeriesData(target=v[:, None], name=i) for i, v in zip(m4.ids, m4.values)]


def fit_m4(fc: Forecaster, train: M4Set, **fit_kwargs) -> Forecaster:
    """Fit one global model on every series; the last ``horizon`` values of each validate."""
    K = fc.options["horizon"]
    lens = [v.size for v in train.values]
    short = [i for i, n in zip(train.ids, lens) if n <= K + 2]
    if short:
        raise DataError(
            f"{train.path}: series {short[0]!r} has {lens[train.ids.index(short[0])]} values; "
            f"more than horizon + 2 = {K + 2} are needed to train and validate"
        )
    return fc.fit(m4_series(train), train_end=[n - K for n in lens], val_end=lens, **fit_kwargs)


def forecast_m4(fc: Forecaster, train: M4Set, k: int) -> list[np.ndarray]:
    """(k,) forecasts from the end of every training series, in one batched pass."""
    lens = [v.size for v in train.values]
    # each series followed by k placeholder rows: one window per series, forecasting them
    full = [
        SeriesData(target=np.r_[v, np.full(k, v[-1])][:, None], name=i)
        for i, v in zip(train.ids, train.values)
    ]
    N = fc.config.lookback
    if min(lens) < N:
        i = int(np.argmin(lens))
        raise DataError(
            f"{train.path}: series {train.ids[i]!r} has {lens[i]} values, fewer than the model's "
            f"lookback {N}"
        )
    win = make_windows([(n, n + k) for n in lens], N, k, k)
    pred = fc.predict_windows(full, win, k, scaled_units=False)
    return [pred["point"][j, :, 0].astype(np.float64) for j in range(len(lens))]


def benchmark_forecasts(train: M4Set, k: int, season: int) -> dict[str, list[np.ndarray]]:
    """The competition's simple benchmarks for each training series: naive, seasonal naive and
    Naive2 (OWA's reference), ``k`` values each."""
    x = train.values
    return {
        "naive": [np.full(k, v[-1]) for v in x],
        "seasonal_naive": [np.resize(v[-season:], k) for v in x],
        "naive2": [naive2(v, k, season) for v in x],
    }


def score_m4(train: M4Set, test: M4Set, preds: dict, season: int) -> dict[str, dict]:
    """sMAPE, MASE and OWA of each named set of forecasts (one (K,) array per series, in the
    files' order), and of the benchmarks; OWA is relative to Naive2 on the same test file.
    Forecasts made anywhere (another library's, say) are scored by the same code."""
    k = int(test.values[0].size)
    preds = {**preds, **benchmark_forecasts(train, k, season)}
    scores = {
        name: m4_scores(train.values, test.values, list(p), season) for name, p in preds.items()
    }
    ref = scores["naive2"]
    for s in scores.values():
        s["owa"] = owa(s["smape"], s["mase"], ref["smape"], ref["mase"])
    return scores


def evaluate_m4(fc: Forecaster, train: M4Set, test: M4Set, season: int) -> dict:
    """The model and the competition's benchmarks on the test file: sMAPE, MASE and OWA each,
    with Naive2 (OWA's reference), naive and seasonal naive under "baselines"."""
    k = int(test.values[0].size)
    scores = score_m4(train, test, {"model": forecast_m4(fc, train, k)}, season)
    model = scores.pop("model")
    return {
        **model,
        "horizon": k,
        "season": int(season),
        "n_series": len(train.values),
        "baselines": scores,
    }
