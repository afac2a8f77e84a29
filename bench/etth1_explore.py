"""ETTh1 OT: one Forecaster variant against the linear baseline, with the validation MSE of the
least-squares start ("epoch0"), of every epoch, and the test MSE at K=24 and 48.

    .venv/bin/python bench/etth1_explore.py '{"lr": 2e-5, "epochs": 8, "max_windows_per_epoch": 1024}'

The argument is a JSON object of `Forecaster` options over the README's hybrid (lookback 168,
horizon 48, highway 168 frozen, lr 1e-4, dropout 0.3, 1 thread); "past" lists past-covariate
columns, "horizons" the test horizons. Used for the "also tried" list in the README; a search
tool, not a table (bench/etth1_results.py makes the table).
"""

import json
import sys
import time
from pathlib import Path

import torch

import seqshape.api.forecaster as F
from seqshape.cli.forecast import read_frame
from seqshape.data.series import ett_split

opts = json.loads(sys.argv[1])
past = opts.pop("past", [])
fut = opts.pop("future", "auto")
horizons = opts.pop("horizons", [24, 48])
spec = {
    "target": ["OT"],
    "past_covariates": past,
    "future_covariates": fut,
    "time_column": "date",
    "series_column": None,
    "missing": "error",
}
frame = read_frame(Path(__file__).resolve().parents[2] / "shared/data/forecasting/ETTh1.csv", spec)
series = frame.to_series()
tr, va, te = ett_split()
train_end, val_end, test_end = [tr], [tr + va], [tr + va + te]
base = dict(
    lookback=168,
    horizon=48,
    highway=168,
    train_highway=False,
    lr=1e-4,
    dropout=0.3,
    epochs=10,
    patience=3,
    threads=1,
    max_windows_per_epoch=4096,
    seed=0,
)
base.update(opts)
real_fit = F.fit


def wrapped(model, **kw):
    v = kw["validate"]
    if v is not None:
        model.eval()
        with torch.no_grad():
            print("epoch0", v(model), flush=True)
    r = real_fit(model, **kw)
    for row in r.history:
        print({k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    return r


F.fit = wrapped
t0 = time.perf_counter()
fc = F.Forecaster(**base)
fc.meta = {"freq": frame.freq}
fc.fit(series, train_end=train_end, val_end=val_end)
t1 = time.perf_counter()
res = F.backtest(fc, series, train_end, val_end, test_end, horizons)
out = {str(K): round(res["by_horizon"][str(K)]["mse"], 5) for K in horizons}
lin = {str(K): round(res["by_horizon"][str(K)]["baselines"]["linear"]["mse"], 5) for K in horizons}
print(
    "RESULT",
    json.dumps(sys.argv[1:]),
    "test",
    out,
    "linear",
    lin,
    f"train {t1 - t0:.0f}s",
    flush=True,
)
