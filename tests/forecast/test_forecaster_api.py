"""Forecaster API and CLI on the real ETTh1 / AirPassengers files: round trips and clear errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from seqshape import ConfigError, DataError, datasets
from seqshape.api.forecaster import Forecaster, SeriesData, make_windows
from seqshape.data.series import read_series_csv

ENV = {**os.environ, "SEQSHAPE_THREADS": "1"}


@pytest.fixture(scope="module")
def air():
    f = read_series_csv(
        datasets.path("AirPassengers.csv"), target="#Passengers", future_covariates="auto"
    )
    return SeriesData(
        target=f.target[0], future_cov=f.future_cov[0], name="air", timestamps=f.timestamps[0]
    )


@pytest.fixture(scope="module")
def fitted(air):
    return Forecaster(lookback=24, horizon=6, hidden_size=16, num_layers=1, epochs=3, seed=0).fit(
        air, train_end=108, val_end=126
    )


def test_save_load_round_trip_gives_identical_forecasts(fitted, air, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = Forecaster.load(tmp_path / "m")
    hist = SeriesData(target=air.target[:100], future_cov=air.future_cov[:100])
    a = fitted.forecast(hist, 30, future_cov=air.future_cov[100:130])
    b = loaded.forecast(hist, 30, future_cov=air.future_cov[100:130])
    assert a["point"].shape == (30, 1)
    assert np.array_equal(a["point"], b["point"])
    win = make_windows([(126, 144)], 24, 6)
    assert np.array_equal(
        fitted.predict_windows([air], win)["point"], loaded.predict_windows([air], win)["point"]
    )


def test_forecast_is_in_original_units_and_any_k_works(fitted, air):
    hist = SeriesData(target=air.target[:120], future_cov=air.future_cov[:120])
    for k in (1, 6, 48):
        out = fitted.forecast(
            hist,
            k,
            future_cov=air.future_cov[120 : 120 + k]
            if k <= 24
            else np.resize(air.future_cov[:24], (k, 2)),
        )
        assert out["point"].shape == (k, 1)
    # passengers are in the hundreds: outputs must be inverse-transformed
    assert 50 < float(out["point"].mean()) < 1500


def test_quantile_and_gaussian_heads_give_intervals(air):
    q = Forecaster(
        lookback=24, horizon=6, hidden_size=8, num_layers=1, epochs=2, loss="quantile"
    ).fit(air, train_end=108, val_end=126)
    out = q.forecast(
        SeriesData(target=air.target[:120], future_cov=air.future_cov[:120]),
        6,
        future_cov=air.future_cov[120:126],
    )
    lo, mid, hi = (out["quantiles"][v] for v in (0.1, 0.5, 0.9))
    assert (lo <= mid + 1e-5).all() and (mid <= hi + 1e-5).all()
    g = Forecaster(
        lookback=24, horizon=6, hidden_size=8, num_layers=1, epochs=2, loss="gaussian"
    ).fit(air, train_end=108, val_end=126)
    out = g.forecast(
        SeriesData(target=air.target[:120], future_cov=air.future_cov[:120]),
        6,
        future_cov=air.future_cov[120:126],
        samples=20,
    )
    assert out["samples"].shape == (20, 6, 1) and (out["std"] > 0).all()


def test_errors_too_short_nan_missing_covariates(air, fitted):
    with pytest.raises(DataError, match="lookback 24 \\+ horizon 6 = 30 rows"):
        Forecaster(lookback=24, horizon=6).fit(SeriesData(target=air.target[:40]), train_end=20)
    bad = air.target.copy()
    bad[5] = np.nan
    with pytest.raises(DataError, match="row 5 holds NaN"):
        SeriesData(target=bad, name="air")
    with pytest.raises(DataError, match="future_cov"):
        fitted.forecast(SeriesData(target=air.target[:50], future_cov=air.future_cov[:50]), 5)


def ett_excerpt(shared_data, tmp_path, n_lines: int):
    """The first ``n_lines`` lines of the real ETTh1.csv (header included), written to
    tmp_path/ett.csv -> (the lines, the file)."""
    lines = (shared_data / "forecasting" / "ETTh1.csv").read_text().splitlines()[:n_lines]
    data = tmp_path / "ett.csv"
    data.write_text("\n".join(lines) + "\n")
    return lines, data


def run(*args, check=True):
    p = subprocess.run(
        [sys.executable, "-m", "seqshape", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    if check and p.returncode != 0:
        raise AssertionError(p.stderr)
    return p


def test_cli_train_evaluate_forecast_on_etth1_excerpt(shared_data, tmp_path):
    lines, data = ett_excerpt(shared_data, tmp_path, 1501)
    out = tmp_path / "m"
    run(
        "train",
        "forecast",
        "--data",
        data,
        "--target",
        "OT",
        "--past-covariates",
        "HUFL",
        "--future-covariates",
        "auto",
        "--lookback",
        "24",
        "--horizon",
        "12",
        "--out",
        out,
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--layers",
        "1",
        "--no-progress",
    )
    result = json.loads(
        run("evaluate", out, "--data", data, "--json", "--horizons", "12,36").stdout
    )
    for k in ("12", "36"):
        row = result["by_horizon"][k]
        assert set(row["baselines"]) == {"naive", "seasonal_naive", "linear"}
        for m in ("mse", "mae", "mase", "smape"):
            assert np.isfinite(row[m]) and all(np.isfinite(b[m]) for b in row["baselines"].values())
    assert result["season"] == 24
    hist = tmp_path / "hist.csv"
    hist.write_text("\n".join(lines[:201]) + "\n")
    csv_out = tmp_path / "f.csv"
    run(
        "forecast",
        out,
        "--history",
        hist,
        "--horizon",
        "40",
        "--output",
        csv_out,
        "--plot",
        tmp_path / "f.png",
    )
    rows = csv_out.read_text().splitlines()
    assert len(rows) == 41 and rows[1].split(",")[1] == "2016-07-09 08:00:00"
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_data_errors_are_one_line(shared_data, tmp_path):
    lines = (shared_data / "forecasting" / "ETTh1.csv").read_text().splitlines()[:400]
    swapped = lines[:]
    swapped[10], swapped[11] = swapped[11], swapped[10]
    (tmp_path / "swap.csv").write_text("\n".join(swapped) + "\n")
    common = [
        "--lookback",
        "24",
        "--horizon",
        "12",
        "--out",
        tmp_path / "m",
        "--epochs",
        "1",
        "--no-progress",
    ]
    p = run(
        "train", "forecast", "--data", tmp_path / "swap.csv", "--target", "OT", *common, check=False
    )
    assert p.returncode == 2 and "swap.csv line 12" in p.stderr and "Traceback" not in p.stderr
    p = run(
        "train",
        "forecast",
        "--data",
        tmp_path / "swap.csv",
        "--target",
        "NOPE",
        *common,
        check=False,
    )
    assert p.returncode == 2 and "NOPE" in p.stderr
    nan = lines[:]
    nan[20] = nan[20].rsplit(",", 1)[0] + ","
    (tmp_path / "nan.csv").write_text("\n".join(nan) + "\n")
    p = run(
        "train", "forecast", "--data", tmp_path / "nan.csv", "--target", "OT", *common, check=False
    )
    assert p.returncode == 2 and "nan.csv line 21" in p.stderr
    assert not (tmp_path / "m").exists()


def test_highway_model_trains_saves_and_loads(air, tmp_path):
    fc = Forecaster(
        lookback=24, horizon=6, hidden_size=8, num_layers=1, epochs=2, seed=0, highway=12
    ).fit(air, train_end=108, val_end=126)
    fc.save(tmp_path / "m")
    loaded = Forecaster.load(tmp_path / "m")
    assert loaded.config.highway == 12
    hist = SeriesData(target=air.target[:100], future_cov=air.future_cov[:100])
    a = fc.forecast(hist, 30, future_cov=air.future_cov[100:130])
    b = loaded.forecast(hist, 30, future_cov=air.future_cov[100:130])
    assert np.array_equal(a["point"], b["point"])
    # the model started from the least-squares highway and stayed close to the data's level
    truth = air.target[100:130, 0]
    assert np.abs(a["point"][:, 0] - truth).mean() < 0.5 * truth.mean()


def _hybrid(air, **kw):
    kw = {"start": "least_squares", **kw}
    return Forecaster(
        lookback=24, horizon=6, hidden_size=8, num_layers=1, epochs=3, seed=0, highway=12,
        strategy="autoregressive", **kw,
    ).fit(air, train_end=108, val_end=126)  # fmt: skip


def test_a_highway_model_keeps_its_least_squares_start_unless_training_beats_it(air):
    # lr 0.05 wrecks the LSTM's residual: every epoch validates worse than the start
    kept = _hybrid(air, lr=5e-2)
    assert kept.metrics["best_epoch"] == 0
    assert kept.metrics["best_val_mase"] == kept.metrics["start_val_mase"]
    assert not kept.net.head.weight.detach().any()  # the head is still at zero: the start
    loose = _hybrid(air, lr=5e-2, keep_start=False)
    assert loose.metrics["best_epoch"] >= 1 and "start_val_mase" not in loose.metrics
    assert loose.metrics["best_val_mase"] > kept.metrics["start_val_mase"]
    hist = SeriesData(target=air.target[:110], future_cov=air.future_cov[:110])
    cov = air.future_cov[110:124]
    a = kept.forecast(hist, 14, future_cov=cov)["point"]
    b = loose.forecast(hist, 14, future_cov=cov)["point"]
    assert not np.allclose(a, b)


def test_a_highway_model_whose_lstm_helps_keeps_the_trained_epoch(air):
    fc = _hybrid(air, lr=1e-2)
    assert fc.metrics["best_epoch"] >= 1
    assert fc.metrics["best_val_mase"] < fc.metrics["start_val_mase"]
    assert fc.net.head.weight.detach().any()


def test_cli_highway_flags_reach_the_model_and_bad_schedule_is_refused(shared_data, tmp_path):
    lines, data = ett_excerpt(shared_data, tmp_path, 1501)
    common = ["--data", data, "--target", "OT", "--lookback", "48", "--horizon", "12"]
    common += ["--epochs", "2", "--hidden", "8", "--layers", "2", "--no-progress"]
    out = tmp_path / "m"
    flags = ["--highway", "24", "--freeze-highway", "--dropout", "0.2", "--lr-schedule", "cosine"]
    run("train", "forecast", *common, *flags, "--out", out)
    metrics = json.loads((out / "metrics.json").read_text())["train"]
    assert metrics["best_val_mase"] <= metrics["start_val_mase"]  # the start was a candidate
    log = [json.loads(r) for r in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[1]["lr"] < log[0]["lr"]  # cosine annealing, whatever the validation did
    loaded = Forecaster.load(out)
    assert loaded.config.highway == 24 and loaded.config.dropout == 0.2
    bad = ["--lr-schedule", "step", "--out", tmp_path / "x"]
    p = run("train", "forecast", *common, *bad, check=False)
    assert p.returncode == 2 and "--lr-schedule" in p.stderr and "'step'" in p.stderr
    assert not (tmp_path / "x").exists()


def test_interval_scores_count_what_the_intervals_hold():
    from seqshape.api.backtest import interval_scores
    from seqshape.models.forecaster import ForecasterConfig, ForecasterNet

    rng = np.random.default_rng(0)
    y = rng.standard_normal((400, 6, 1))  # N(0, 1) truths
    for loss, params, level in (
        ("gaussian", np.stack([np.zeros_like(y), np.ones_like(y)], -1), 0.8),
        ("student_t", np.stack([np.zeros_like(y), np.ones_like(y), np.full_like(y, 1e4)], -1), 0.8),
        ("quantile", np.stack([np.full_like(y, -1.2816), 0 * y, np.full_like(y, 1.2816)], -1), 0.8),
    ):
        net = ForecasterNet(ForecasterConfig(n_targets=1, lookback=4, horizon=6, loss=loss))
        s = interval_scores(net, params, y)
        assert s["level"] == level
        # the right distribution: ~80% inside (2,400 values: sd of the share 0.008)
        assert abs(s["coverage"] - 0.8) < 0.03, (loss, s)
        assert abs(s["width"] - 2 * 1.2816) < 0.05, (loss, s)
        # shifted by 3 sd, the interval holds almost nothing
        shifted = params.copy()
        shifted[..., 0] += 3.0
        if loss == "quantile":
            shifted += 3.0
        assert interval_scores(net, shifted, y)["coverage"] < 0.1
    assert "pinball" in s and s["pinball"] > 0


def test_a_quantile_model_backtest_reports_its_interval(air):
    from seqshape.api.backtest import backtest

    fc = Forecaster(
        lookback=24, horizon=6, hidden_size=8, num_layers=1, epochs=2, seed=0, highway=12,
        loss="quantile", quantiles=(0.1, 0.5, 0.9),
    ).fit(air, train_end=96, val_end=120)  # fmt: skip
    fc.meta = {"freq": "MS"}
    iv = backtest(fc, [air], [96], [120], [144], [6])["by_horizon"]["6"]["interval"]
    assert iv["level"] == 0.8 and 0 <= iv["coverage"] <= 1 and iv["width"] > 0
    assert iv["pinball"] > 0


def _png_height(path) -> int:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    return int.from_bytes(raw[20:24], "big")


def test_cli_long_csv_global_model_forecasts_and_plots_every_series(shared_data, tmp_path):
    import csv as _csv

    lines = (shared_data / "forecasting" / "ETTh1.csv").read_text().splitlines()
    head = lines[0].split(",")
    cols = {c: head.index(c) for c in ("HUFL", "MUFL", "OT")}
    with open(tmp_path / "long.csv", "w", newline="") as f:
        w = _csv.writer(f)
        w.writerow(["series_id", "timestamp", "target"])
        for name, j in cols.items():  # three series of 900 hours, one after the other
            for line in lines[1:901]:
                v = line.split(",")
                w.writerow([name, v[0], v[j]])
    out = tmp_path / "m"
    run(
        "train", "forecast", "--data", tmp_path / "long.csv", "--target", "target",
        "--series-column", "series_id", "--future-covariates", "auto", "--lookback", "24",
        "--horizon", "6", "--epochs", "1", "--hidden", "8", "--layers", "1", "--out", out,
        "--no-progress",
    )  # fmt: skip
    assert Forecaster.load(out).series_names == ["HUFL", "MUFL", "OT"]
    hist = tmp_path / "hist.csv"
    rows = (tmp_path / "long.csv").read_text().splitlines()
    keep = [r for i, r in enumerate(rows[1:]) if i % 900 < 120]  # each series' first 5 days
    hist.write_text("\n".join([rows[0], *keep]) + "\n")
    run("forecast", out, "--history", hist, "--horizon", "12", "--output", tmp_path / "f.csv",
        "--plot", tmp_path / "all.png")  # fmt: skip
    got = list(_csv.DictReader((tmp_path / "f.csv").open()))
    assert [r["series"] for r in got] == ["HUFL"] * 12 + ["MUFL"] * 12 + ["OT"] * 12
    one = tmp_path / "one.csv"
    one.write_text("\n".join([rows[0], *[r for r in keep if r.startswith("OT,")]]) + "\n")
    run("forecast", out, "--history", one, "--horizon", "12", "--output", tmp_path / "g.csv",
        "--plot", tmp_path / "one.png")  # fmt: skip
    # one panel per series (2.8 in at 110 dpi each, under a common title): two panels more
    assert _png_height(tmp_path / "all.png") - _png_height(tmp_path / "one.png") == 2 * 308


def test_cli_quantile_forecast_notes_one_step_bands_and_samples_widen(shared_data, tmp_path):
    lines, data = ett_excerpt(shared_data, tmp_path, 1201)
    out = tmp_path / "q"
    run(
        "train", "forecast", "--data", data, "--target", "OT", "--lookback", "48", "--horizon",
        "12", "--highway", "48", "--loss", "quantile", "--quantiles", "0.1,0.5,0.9",
        "--epochs", "1", "--hidden", "8", "--layers", "1", "--out", out, "--no-progress",
        "--strategy", "autoregressive",
    )  # fmt: skip
    hist = tmp_path / "hist.csv"
    hist.write_text("\n".join(lines[:301]) + "\n")
    p = run("forecast", out, "--history", hist, "--horizon", "48", "--output", tmp_path / "a.csv")
    assert "do not widen with the horizon" in p.stderr
    p = run("forecast", out, "--history", hist, "--horizon", "48", "--output", tmp_path / "b.csv",
            "--samples", "200")  # fmt: skip
    assert "do not widen" not in p.stderr
    import csv as _csv

    rows = list(_csv.DictReader((tmp_path / "b.csv").open()))
    band = [float(r["OT_p90"]) - float(r["OT_p10"]) for r in rows]
    q_band = [float(r["OT_q0.9"]) - float(r["OT_q0.1"]) for r in rows]
    assert min(q_band) > 0  # the start's residual quantiles, not a zero-width band
    assert np.mean(band[-6:]) > 1.5 * np.mean(band[:6])  # sample paths carry uncertainty forward
    # a history shorter than the lookback (48): refused, one line, nothing written; or allowed
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines[:31]) + "\n")
    p = run("forecast", out, "--history", short, "--horizon", "12", "--output",
            tmp_path / "c.csv", check=False)  # fmt: skip
    assert p.returncode == 2 and not (tmp_path / "c.csv").exists()
    assert "the history has 30 rows; this model reads lookback=48 rows" in p.stderr
    run("forecast", out, "--history", short, "--horizon", "12", "--output", tmp_path / "c.csv",
        "--allow-short-history")  # fmt: skip
    assert len((tmp_path / "c.csv").read_text().splitlines()) == 13


def test_sample_path_bands_hold_their_level_on_paths_the_model_could_have_drawn(air):
    from seqshape.api.backtest import sample_interval_scores

    fc = Forecaster(
        lookback=24, horizon=6, hidden_size=8, num_layers=1, epochs=2, seed=0, loss="gaussian",
        global_scaling=True,
    ).fit(air, train_end=108, val_end=126)  # fmt: skip
    # 400 futures drawn from the model itself (seed 1) after one 24-row history ...
    hist = SeriesData(target=air.target[36:60], future_cov=air.future_cov[36:60])
    paths = fc.forecast(hist, 6, future_cov=air.future_cov[60:66], samples=400, seed=1)["samples"]
    series = [
        SeriesData(target=np.concatenate([air.target[:60], p]), future_cov=air.future_cov[:66])
        for p in paths
    ]
    win = make_windows([(60, 66)] * len(series), 24, 6)
    assert len(win) == 400 and set(win.start) == {36}
    # ... so the 10-90% band of 200 other draws (seed 2) must hold about 80% of them
    s = sample_interval_scores(fc, series, win, 6, 200, seed=2)
    assert s["level"] == 0.8 and s["samples"] == 200
    assert abs(s["coverage"] - 0.8) < 0.05, s
    # a point model has no distribution to draw from
    with pytest.raises(ConfigError, match="sample paths need an autoregressive model"):
        sample_interval_scores(_mse_model(air), series, win, 6, 10)


def _mse_model(air):
    return Forecaster(lookback=24, horizon=6, hidden_size=8, num_layers=1, epochs=1).fit(
        air, train_end=108, val_end=126
    )
