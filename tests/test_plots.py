"""Plots a person reads right, drawn from real data: the forecast marks its origin and keeps the
test years apart from the history; the training curve names its axis and marks the kept epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqshape.api.classifier import SequenceClassifier
from seqshape.data.series import future_timestamps, read_series_csv
from seqshape.datasets import load_japanese_vowels
from seqshape.models.baselines import seasonal_naive
from seqshape.plots import (
    forecast_png,
    forecasts_figure,
    training_curve_figure,
    training_curve_png,
)

AIR = Path("/work/shared/data/forecasting/AirPassengers.csv")


def lines_by_label(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


@pytest.fixture(scope="module")
def air():
    """The demo's split: history to the end of 1958 (120 months), 1959-60 as the test years,
    and a seasonal-naive forecast with its residual spread over 36 months from the origin."""
    f = read_series_csv(AIR, target="#Passengers")
    ts, y = f.timestamps[0], f.target[0]
    # (1, 120, 1) -> (1, 36, 1) -> (36, 1)
    point = seasonal_naive(y[None, :120], 36, 12)[0]
    spread = float((y[12:120] - y[:108]).std())
    result = {"point": point, "std": np.full_like(point, spread)}
    return ts, y, future_timestamps(ts[:120], 36), result


def test_forecast_marks_the_origin_and_the_test_years(air, tmp_path: Path) -> None:
    ts, y, fut, result = air
    items = [(None, ts[:120], y[:120], fut, result, (ts[120:], y[120:]))]
    fig = forecasts_figure(items, names=["passengers"])
    (ax,) = fig.axes
    lines = lines_by_label(ax)
    assert set(lines) == {"history", "actual (test)", "forecast origin", "forecast"}
    origin = lines["forecast origin"]
    assert list(origin.get_xdata()) == [ts[119], ts[119]]  # a vertical line at the end of 1958
    history = lines["history"]
    assert history.get_xdata()[-1] == ts[119] and len(history.get_xdata()) == 120
    actual = lines["actual (test)"]
    # the test years, joined to the last history point; drawn dashed, unlike the history
    assert np.array_equal(actual.get_ydata()[1:], y[120:, 0])
    assert actual.get_xdata()[1] == ts[120] and actual.get_linestyle() == "--"
    assert history.get_linestyle() == "-"
    assert np.array_equal(lines["forecast"].get_ydata(), result["point"][:, 0])
    assert len(ax.collections) == 1  # the band
    assert ax.get_title() == "passengers — forecast from 1958-12-01"

    path = forecast_png(
        ts[:120], y[:120], fut, result, tmp_path / "f.png", actual=(ts[120:], y[120:])
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_forecast_without_actual_still_marks_the_origin(air) -> None:
    ts, y, _, _ = air
    fut = future_timestamps(ts, 12)
    # (1, 144, 1) -> (12, 1): from the last month of the file
    fig = forecasts_figure([("air", ts, y, fut, {"point": seasonal_naive(y[None], 12, 12)[0]})])
    lines = lines_by_label(fig.axes[0])
    assert set(lines) == {"history", "forecast origin", "forecast"}
    assert list(lines["forecast origin"].get_xdata()) == [ts[-1], ts[-1]]


def test_training_curve_names_the_loss_and_marks_the_kept_epoch(tmp_path: Path) -> None:
    # a short real run: JapaneseVowels, a small net, validation on test cases
    train, test = load_japanese_vowels("train"), load_japanese_vowels("test")
    clf = SequenceClassifier(hidden_size=8, epochs=5, lr=1e-2, patience=0, seed=0, threads=1)
    clf.fit(train.X[:60], train.y[:60], X_val=test.X[:40], y_val=test.y[:40])
    result = clf.train_result
    best = result.best_epoch
    val = [r["val_loss"] for r in result.history]
    assert best == 1 + int(np.argmin(val))  # the kept epoch is the best validation loss

    fig = training_curve_figure(result.history, best_epoch=best)
    (ax,) = fig.axes
    assert ax.get_ylabel() == "loss" and ax.get_xlabel() == "epoch"
    lines = lines_by_label(ax)
    assert set(lines) == {"train_loss", "val_loss", f"kept: epoch {best}"}
    assert np.allclose(lines[f"kept: epoch {best}"].get_xdata(), best)
    assert np.allclose(lines["val_loss"].get_ydata(), val)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"kept: epoch {best}" in legend

    # the starting weights kept (validate_start): epoch 0, said in words
    fig = training_curve_figure(result.history, best_epoch=0, ylabel="cross-entropy")
    assert "kept: epoch 0 (the starting weights)" in lines_by_label(fig.axes[0])
    assert fig.axes[0].get_ylabel() == "cross-entropy"

    path = training_curve_png(result.history, tmp_path / "c.png", best_epoch=best)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
