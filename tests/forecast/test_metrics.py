"""Forecast metrics against values computed by hand on tiny arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqshape.errors import ConfigError, DataError, ShapeError
from seqshape.train.forecast_metrics import (
    evaluate_forecasts,
    mae,
    mae_by_step,
    mase,
    mase_by_step,
    mase_scale,
    mse,
    mse_by_step,
    smape,
    smape_by_step,
)

# B = 2 windows, K = 2 steps, O = 1 channel; errors y - yhat: -1, 0 | 0, 3
Y = np.array([[[1.0], [2.0]], [[0.0], [4.0]]])
YHAT = np.array([[[2.0], [2.0]], [[0.0], [1.0]]])


def test_mse_mae_by_hand():
    assert mse(Y, YHAT) == pytest.approx((1 + 0 + 0 + 9) / 4)
    assert mae(Y, YHAT) == pytest.approx((1 + 0 + 0 + 3) / 4)
    np.testing.assert_allclose(mse_by_step(Y, YHAT), [0.5, 4.5])
    np.testing.assert_allclose(mae_by_step(Y, YHAT), [0.5, 1.5])
    assert mse(Y, Y) == 0.0


def test_smape_by_hand_with_the_zero_over_zero_convention():
    # terms: 200*1/3, 200*0/4, 0/0 -> 0, 200*3/5
    terms = [200 / 3, 0.0, 0.0, 120.0]
    assert smape(Y, YHAT) == pytest.approx(sum(terms) / 4)
    np.testing.assert_allclose(smape_by_step(Y, YHAT), [(200 / 3 + 0) / 2, (0 + 120) / 2])
    zero = np.zeros((1, 1, 1))
    assert smape(zero, zero) == 0.0
    assert smape(zero, zero + 5) == 200.0  # the maximum
    assert smape(-np.ones((1, 1, 1)), np.ones((1, 1, 1))) == 200.0


def test_mase_by_hand():
    insample = np.array([1.0, 3.0, 2.0, 6.0])
    # season 1: mean(|3-1|, |2-3|, |6-2|) = 7/3; MAE 1
    assert mase(Y, YHAT, insample, 1) == pytest.approx(3 / 7)
    # season 2: mean(|2-1|, |6-3|) = 2
    assert mase(Y, YHAT, insample[:, None], 2) == pytest.approx(0.5)
    np.testing.assert_allclose(mase_by_step(Y, YHAT, insample, 1), [0.5 * 3 / 7, 1.5 * 3 / 7])
    assert mase(Y, YHAT, insample) == pytest.approx(3 / 7)  # season defaults to 1


def test_mase_with_several_series_and_channels():
    scale = mase_scale([np.array([1.0, 3.0, 2.0, 6.0]), np.array([0.0, 10.0, 0.0, 10.0])], 1)
    np.testing.assert_allclose(scale.scale, [[7 / 3], [10.0]])
    rows = scale.rows([0, 1])
    # window 0 from series 0: |e| 1, 0 over 7/3; window 1 from series 1: 0, 3 over 10
    assert mase(Y, YHAT, rows) == pytest.approx((3 / 7 + 0 + 0 + 0.3) / 4)
    with pytest.raises(ShapeError, match=r"scale.rows\(series_idx\)"):
        mase(Y, YHAT, mase_scale([np.arange(4.0), np.arange(4.0) * 2, np.arange(4.0)], 1))
    with pytest.raises(ConfigError, match="season: 2 differs"):
        mase(Y, YHAT, rows, 2)
    # two channels, one scale each
    ins = np.array([[0.0, 0.0], [1.0, 2.0], [0.0, 0.0]])
    y2 = np.zeros((1, 1, 2))
    yh2 = np.array([[[1.0, 1.0]]])
    np.testing.assert_allclose(mase_scale(ins, 1).scale, [1.0, 2.0])
    assert mase(y2, yh2, ins, 1) == pytest.approx((1 / 1 + 1 / 2) / 2)


def test_evaluate_forecasts_is_json_safe_and_agrees():
    scale = mase_scale(np.array([1.0, 3.0, 2.0, 6.0]), 1)
    out = evaluate_forecasts(Y, YHAT, scale)
    assert json.loads(json.dumps(out)) == out
    assert out["n_windows"] == 2 and out["horizon"] == 2 and out["n_targets"] == 1
    assert out["mse"] == pytest.approx(2.5) and out["mae"] == pytest.approx(1.0)
    assert out["smape"] == pytest.approx(smape(Y, YHAT))
    assert out["mase"] == pytest.approx(3 / 7) and out["season"] == 1
    assert out["by_step"]["mse"] == pytest.approx([0.5, 4.5])
    assert out["by_step"]["mase"] == pytest.approx([0.5 * 3 / 7, 1.5 * 3 / 7])
    assert "mase" not in evaluate_forecasts(Y, YHAT)


def test_metric_errors():
    with pytest.raises(ShapeError, match=r"yhat: expected \(B=2, K=2, O=1\), got \(2, 3, 1\)"):
        mse(Y, np.zeros((2, 3, 1)))
    with pytest.raises(ShapeError, match="without its batch axis"):
        mae(Y[0], YHAT[0])
    bad = YHAT.copy()
    bad[1, 0, 0] = np.nan
    with pytest.raises(DataError, match=r"yhat: expected finite values, got nan at \[1, 0, 0\]"):
        smape(Y, bad)
    with pytest.raises(DataError, match="constant at lag 1, so its MASE scale is 0"):
        mase(Y, YHAT, np.ones(10), 1)
    with pytest.raises(DataError, match="needs more than season=12 steps for MASE, got 12"):
        mase(Y, YHAT, np.arange(12.0), 12)
    with pytest.raises(ConfigError, match="season: expected a positive integer"):
        mase_scale(np.arange(5.0), 0)
