"""ETTh1's target OT, split and windowed the same way for every contender of the peer benches.

Plain numpy and the csv module: imported by bench/bench_peers.py (project venv) and by
bench/peers/run_peer.py (inside a peer's own venv), never by seqshape.

The split is the usual one of bench/etth1_results.py (``seqshape.data.series.ett_split``):
12 months train, 4 validation, 4 test, months of 30 days -> rows [0, 8640), [8640, 11520),
[11520, 14400); the last 3,020 rows are unused. Values are standardised with the training part's
mean and (population) standard deviation. A window is ``lookback`` history rows followed by
``horizon`` future rows; a part's windows are those whose *future* rows lie in the part (history
may reach back into the part before), stride 1.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRAIN_ROWS, VAL_ROWS, TEST_ROWS = 8640, 2880, 2880
TRAIN_END = TRAIN_ROWS
VAL_END = TRAIN_ROWS + VAL_ROWS
TEST_END = TRAIN_ROWS + VAL_ROWS + TEST_ROWS
SEASON = 24  # hourly data, daily season


def default_csv() -> Path:
    """/work/shared/data/forecasting/ETTh1.csv, found from this file's place in the tree."""
    return Path(__file__).resolve().parents[3] / "shared/data/forecasting/ETTh1.csv"


@dataclass
class OTSeries:
    dates: list[str]  # (T,) "YYYY-MM-DD HH:MM:SS"
    raw: np.ndarray  # (T,) float64, original units
    z: np.ndarray  # (T,) float32, standardised with the training part's statistics
    mean: float
    std: float


def load_ot(path: str | Path | None = None) -> OTSeries:
    """Read the date and OT columns of ETTh1.csv and standardise OT with train statistics."""
    path = Path(path) if path else default_csv()
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        if "OT" not in header or "date" not in header:
            raise ValueError(f"{path}: expected columns 'date' and 'OT', got {header}")
        i_date, i_ot = header.index("date"), header.index("OT")
        dates, values = [], []
        for line_no, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise ValueError(
                    f"{path} line {line_no}: expected {len(header)} fields, got {len(row)}"
                )
            dates.append(row[i_date])
            values.append(float(row[i_ot]))
    raw = np.asarray(values, dtype=np.float64)
    if len(raw) < TEST_END:
        raise ValueError(f"{path}: expected at least {TEST_END} rows, got {len(raw)}")
    train = raw[:TRAIN_END]
    mean, std = float(train.mean()), float(train.std())
    z = ((raw - mean) / std).astype(np.float32)
    return OTSeries(dates=dates, raw=raw, z=z, mean=mean, std=std)


def window_starts(lo: int, hi: int, lookback: int, horizon: int) -> np.ndarray:
    """Start rows of the windows whose future rows [s+lookback, s+lookback+horizon) lie in [lo, hi)."""
    first = max(lo - lookback, 0)
    last = hi - lookback - horizon
    return np.arange(first, last + 1, dtype=np.int64)


def windows(z: np.ndarray, starts: np.ndarray, lookback: int, horizon: int):
    """-> history (W, lookback) and future (W, horizon) float32 arrays."""
    # (W, lookback + horizon): row s of the series and the following ones, per window
    idx = starts[:, None] + np.arange(lookback + horizon)[None, :]
    full = z[idx]
    return full[:, :lookback], full[:, lookback:]


def test_windows(z: np.ndarray, lookback: int, horizon: int):
    """The test part's windows -> (starts, history (W, N), future (W, K))."""
    starts = window_starts(VAL_END, TEST_END, lookback, horizon)
    hist, fut = windows(z, starts, lookback, horizon)
    return starts, hist, fut


def seasonal_naive(history: np.ndarray, horizon: int, season: int = SEASON) -> np.ndarray:
    """(W, N) -> (W, K): repeat the last ``season`` values."""
    last = history[:, -season:]
    reps = -(-horizon // season)
    return np.tile(last, (1, reps))[:, :horizon]


def errors(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """MSE and MAE on the standardised scale."""
    pred = np.asarray(pred, dtype=np.float64).reshape(truth.shape)
    d = pred - truth
    return {"mse": float(np.mean(d**2)), "mae": float(np.mean(np.abs(d)))}


def linear_baseline(z: np.ndarray, lookback: int, horizon: int, test_history: np.ndarray):
    """Least squares from the ``lookback`` lags (+ a bias) to the ``horizon`` values, fitted on the
    training windows -> predictions (W, K) for ``test_history`` (W, lookback)."""
    starts = window_starts(0, TRAIN_END, lookback, horizon)
    hist, fut = windows(z, starts, lookback, horizon)
    # (W, N) ++ (W, 1) -> (W, N+1): lags and a bias column
    design = np.hstack([hist, np.ones((len(hist), 1), np.float32)]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, fut.astype(np.float64), rcond=None)
    test_design = np.hstack([test_history, np.ones((len(test_history), 1))]).astype(np.float64)
    return test_design @ coef
