"""Forecasting on real data: AirPassengers with calendar covariates (the example of docs/forecast.md).

144 monthly totals of airline passengers (thousands), 1949-1960, bundled with the package. The
month of each row, as sin/cos, is a known-future covariate (Cf=2). Train on 1949-1957, validate on
1958, backtest on 1959-1960 against naive, seasonal-naive and linear baselines on the same windows,
then forecast 36 months from the end of 1958 (any K: the model was trained with K=12) and plot it.

    python examples/forecast_airpassengers.py             # default settings (the docs' numbers)
    python examples/forecast_airpassengers.py --small     # a quick run (the test suite runs this)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from seqshape import Forecaster, SeriesData, datasets
from seqshape.api.backtest import backtest
from seqshape.data.series import calendar_features, future_timestamps, read_series_csv
from seqshape.plots import forecast_png


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run: 15 epochs, H=16")
    parser.add_argument("--out", type=Path, default=None, help="where to write the plot and model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="forecast_air-"))

    # 1. data: one series, target (T=144, O=1), month as sin/cos known ahead (T, Cf=2)
    frame = read_series_csv(
        datasets.path("AirPassengers.csv"), target="#Passengers", future_covariates="auto"
    )
    ts = frame.timestamps[0]
    s = SeriesData(
        target=frame.target[0],
        future_cov=frame.future_cov[0],
        name="AirPassengers",
        timestamps=ts,
    )
    print(
        f"AirPassengers: T={len(s.target)} months ({str(ts[0])[:7]} .. {str(ts[-1])[:7]}), "
        f"freq {frame.freq}, covariates {list(frame.future_cov_names)}"
    )

    # 2. fit: rows [0, 108) train (1949-1957), [108, 120) validate (1958)
    tr, va, te = 108, 120, 144
    small = dict(hidden_size=16, epochs=15) if args.small else dict(hidden_size=32, epochs=60)
    t0 = time.perf_counter()
    fc = Forecaster(
        lookback=24,
        horizon=12,
        num_layers=1,
        patience=15,
        batch_size=16,
        lr=3e-3,
        seed=args.seed,
        threads=args.threads,
        **small,
    ).fit(s, train_end=tr, val_end=va)
    print(
        f"trained {fc.metrics['epochs_run']} epochs in {time.perf_counter() - t0:.1f} s "
        f"({fc.metrics['n_train_windows']} training windows)"
    )

    # 3. backtest on 1959-1960: every 12-step window whose forecast lies in [120, 144)
    result = backtest(fc, [s], [tr], [va], [te], horizons=[12], season=12)
    row = result["by_horizon"]["12"]
    print(f"\nbacktest K=12, {row['n_windows']} windows (MSE in scaled units, MASE, sMAPE %):")
    print(f"  {'model':<16} {'mse':>8} {'mase':>7} {'smape':>7}")
    for name, m in [("seqshape", row), *row["baselines"].items()]:
        print(f"  {name:<16} {m['mse']:>8.4f} {m['mase']:>7.3f} {m['smape']:>7.2f}")

    # 4. any K: 36 months ahead from the end of 1958, with the calendar of those months
    history = SeriesData(target=s.target[:va], future_cov=s.future_cov[:va], name=s.name)
    future_ts = future_timestamps(ts[:va], 36, freq=frame.freq)
    # (K=36,) timestamps -> (K, Cf=2): the same calendar features, continued
    future_cov, _ = calendar_features(future_ts, freq=frame.freq)
    res = fc.forecast(history, 36, future_cov=future_cov)
    # (K, O) -> first 24 months, compared with what happened in 1959-1960
    err = np.abs(res["point"][:24, 0] - s.target[va:te, 0])
    print(f"\nforecast K=36 from 1958-12: point {res['point'].shape}, 1959-60 MAE {err.mean():.1f}")
    plot = forecast_png(
        ts, s.target, future_ts, res, out / "forecast.png", names=["passengers (thousands)"]
    )
    print(f"plot written to {plot}")

    # 5. save and load: JSON + safetensors; the loaded model forecasts the same numbers
    fc.save(out / "model", extra_metrics={"test": result})
    again = Forecaster.load(out / "model").forecast(history, 36, future_cov=future_cov)
    assert np.allclose(again["point"], res["point"], atol=1e-5)
    print(f"model saved to {out / 'model'} and loaded back")


if __name__ == "__main__":
    main()
