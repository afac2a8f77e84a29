"""Do static covariates help a global forecaster? M4 Hourly (414 series), one model with and
without two per-series statics (the log level of each series' training values, its log length),
same options and seeds; OWA, sMAPE and MASE on the official test file.

    SEQSHAPE_THREADS=1 .venv/bin/python bench/static_covariates_m4.py     # ~25 min on 1 thread

``keep_start=False`` so that the trained network is scored (with the default the seasonal-naive
start is kept in every run, and both variants score the same). Results: docs/api.md.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from seqshape.api.forecaster import Forecaster
from seqshape.api.m4 import evaluate_m4, m4_series
from seqshape.data.m4 import read_m4_pair

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/forecasting/m4_hourly"
K = 48


def main() -> None:
    train, test = read_m4_pair(DATA / "Hourly-train.csv", DATA / "Hourly-test.csv", horizon=K)
    results = {}
    for seed in (0, 1):
        for use in (False, True):
            series = m4_series(train)
            if use:
                series = [
                    replace(
                        s,
                        static=np.array(
                            [np.log1p(np.abs(s.target[:-K]).mean()), np.log(len(s.target))],
                            np.float32,
                        ),
                    )
                    for s in series
                ]
            fc = Forecaster(
                lookback=96,
                horizon=K,
                hidden_size=32,
                num_layers=1,
                epochs=6,
                max_windows_per_epoch=2048,
                keep_start=False,
                batch_size=128,
                progress=False,
                seed=seed,
            )
            lens = [len(s.target) for s in series]
            fc.fit(series, train_end=[n - K for n in lens], val_end=lens)
            scores = evaluate_m4(fc, train, test, season=24)
            name = f"seed{seed}_{'static' if use else 'plain'}"
            results[name] = {k: scores[k] for k in ("owa", "smape", "mase")}
            print(json.dumps({name: results[name]}), flush=True)


if __name__ == "__main__":
    main()
