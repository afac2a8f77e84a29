"""Static covariates of a global forecaster (per-series constants, as neuralforecast's
``static_df``) on real ETTh1 columns: save/load, stream, ONNX, pandas, and clear errors."""

import json

import numpy as np
import pytest

from seqshape import DataError, ShapeError
from seqshape.api.forecaster import Forecaster, SeriesData
from seqshape.infer.stream import ForecastStream

COLS = {"HUFL": 0, "MUFL": 2, "LUFL": 4, "OT": 6}  # ETTh1 columns used as four series
ROWS = 600


@pytest.fixture(scope="module")
def ett(shared_data):
    """(ROWS, 7) float32 rows of ETTh1: HUFL, HULL, MUFL, MULL, LUFL, LULL, OT."""
    lines = (shared_data / "forecasting" / "ETTh1.csv").read_text().splitlines()[1 : ROWS + 1]
    return np.array([[float(v) for v in ln.split(",")[1:]] for ln in lines], dtype=np.float32)


def _statics(ett) -> dict[str, np.ndarray]:
    """Per series: its log level over the first 400 rows and a made-up category (load or oil)."""
    return {
        name: np.array([np.log(abs(ett[:400, j]).mean()), float(name == "OT")], np.float32)
        for name, j in COLS.items()
    }


def _series(ett, with_static=True) -> list[SeriesData]:
    st = _statics(ett)
    return [
        SeriesData(target=ett[:, j : j + 1], name=n, static=st[n] if with_static else None)
        for n, j in COLS.items()
    ]


@pytest.fixture(scope="module")
def fitted(ett):
    return Forecaster(
        lookback=24, horizon=6, hidden_size=8, num_layers=1, epochs=2, window_norm="none",
        max_windows_per_epoch=256, keep_start=False, progress=False, seed=0,
        strategy="autoregressive",
    ).fit(_series(ett), train_end=400, val_end=500)  # fmt: skip


def test_statics_are_known_covariates_scaled_across_series(fitted, ett):
    assert fitted.meta["static_names"] == ["static_0", "static_1"]
    assert fitted.config.n_future == 2
    st = np.array([_statics(ett)[n] for n in COLS])
    sc = fitted.scaling
    # one mean and std over the series' vectors, the same in every row (per series they would be 0)
    np.testing.assert_allclose(sc.f_mean, np.repeat(st.mean(0)[None], 4, 0), rtol=1e-6)
    np.testing.assert_allclose(sc.f_std, np.repeat(st.std(0)[None], 4, 0), rtol=1e-5)
    scaled = fitted._scaled([SeriesData(target=ett[:30, 6:7], name="OT")], rows=[3])[0][1]
    assert np.abs(scaled).min() > 0.1  # the statics reach the network, not zeros


def test_save_load_identical_and_statics_change_the_forecast(fitted, ett, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = Forecaster.load(tmp_path / "m")
    assert loaded.statics_ == fitted.statics_
    hist = ett[:480, 6:7]
    a = fitted.forecast(hist, 12, series_index=3)
    b = loaded.forecast(hist, 12, series_index=3)
    assert np.array_equal(a["point"], b["point"])
    # the series' own statics by SeriesData.static give the same; other statics another forecast
    own = fitted.forecast(SeriesData(target=hist, static=_statics(ett)["OT"]), 12, series_index=3)
    assert np.array_equal(own["point"], a["point"])
    other = fitted.forecast(
        SeriesData(target=hist, static=_statics(ett)["HUFL"]), 12, series_index=3
    )
    assert not np.allclose(other["point"], a["point"], atol=1e-4)


def test_stream_gives_the_forecasts_of_the_estimator(fitted, ett):
    n, k = 300, 8
    stream = ForecastStream(fitted, series="LUFL")
    got = stream.update(ett[:n, 4:5])
    want = fitted.forecast(ett[:n, 4:5], k, series_index=2)
    np.testing.assert_allclose(stream.forecast(k)["point"], want["point"], rtol=0, atol=1e-5)
    # one-step outputs: the forecast made for row t equals forecasting 1 step from rows < t
    for t in (100, 250, 299):
        one = fitted.forecast(ett[:t, 4:5], 1, series_index=2)["point"][0]
        np.testing.assert_allclose(got["point"][t], one, rtol=0, atol=1e-5)


def test_onnx_runner_appends_the_statics(fitted, ett, tmp_path):
    from seqshape.infer.export import export_onnx
    from seqshape.infer.onnx_forecaster import OnnxForecaster

    d = fitted.save(tmp_path / "m")
    export_onnx(d)
    onnx_fc = OnnxForecaster(d / "model.onnx")
    hist = ett[:480, 0:1]
    a = fitted.forecast(hist, 12, series_index=0)
    b = onnx_fc.forecast(hist, 12, series_index=0)
    scale = float(fitted.scaling.z_std[0, 0])
    np.testing.assert_allclose(b["point"] / scale, a["point"] / scale, rtol=0, atol=1e-4)
    new = SeriesData(target=hist, static=_statics(ett)["OT"], name="new")
    np.testing.assert_allclose(
        onnx_fc.forecast(new, 12, series_index=0)["point"] / scale,
        fitted.forecast(new, 12, series_index=0)["point"] / scale,
        rtol=0,
        atol=1e-4,
    )


def test_pandas_static_df_like_neuralforecast(ett):
    pd = pytest.importorskip("pandas")
    ds = pd.date_range("2016-07-01", periods=ROWS, freq="h")
    df = pd.concat(
        [pd.DataFrame({"unique_id": n, "ds": ds, "y": ett[:, j]}) for n, j in COLS.items()]
    )
    st = _statics(ett)
    static_df = pd.DataFrame(
        {
            "unique_id": list(st),
            "level": [v[0] for v in st.values()],
            "oil": [v[1] for v in st.values()],
        }
    )
    fc = Forecaster(lookback=24, horizon=6, hidden_size=8, num_layers=1, epochs=1, progress=False)
    fc.fit(df, static_df=static_df)
    assert fc.meta["static_names"] == ["level", "oil"]
    out = fc.forecast(df, 6)
    assert len(out) == 4 * 6 and set(out["unique_id"]) == set(COLS)
    ref = fc.forecast(ett[:, 6:7], 6, series_index=3)["point"][:, 0]
    np.testing.assert_allclose(out[out["unique_id"] == "OT"]["y"].to_numpy(), ref, rtol=1e-6)
    # a new series needs its statics: by static_df, else a DataError naming the columns
    new = df[df["unique_id"] == "OT"].assign(unique_id="OT2")
    with pytest.raises(DataError, match=r"static covariates \['level', 'oil'\]"):
        fc.forecast(new, 6)
    got = fc.forecast(new, 6, static_df=static_df.assign(unique_id=["a", "b", "c", "OT2"]))
    assert len(got) == 6
    with pytest.raises(DataError, match="static_df: no row for series 'OT'"):
        fc.fit(df, static_df=static_df.iloc[:3])


def test_errors_name_what_is_missing_or_wrong(fitted, ett):
    with pytest.raises(DataError, match=r"x.static: expected \(C_s,\) finite numbers"):
        SeriesData(target=ett[:10, :1], name="x", static=[1.0, np.nan])
    with pytest.raises(ShapeError, match=r"history.static: expected \(2,\)"):
        fitted.forecast(SeriesData(target=ett[:100, :1], static=[1.0], name="history"), 3)
    with pytest.raises(DataError, match="static covariates"):
        fitted.forecast(ett[:100, :1], 3, series_index=None)
    series = _series(ett)
    series[1] = SeriesData(target=ett[:, 2:3], name="MUFL")  # one series without statics
    with pytest.raises(DataError, match="MUFL: expected the 2 static covariates"):
        Forecaster(lookback=24, horizon=6, epochs=1, progress=False).fit(series)


def _long_csv(ett, path, *, change_at=None):
    """The four series one after the other in a long CSV with two static columns (their log level,
    an oil flag); ``change_at``: a row whose level is changed (an error)."""
    import csv

    st = _statics(ett)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["series_id", "timestamp", "target", "level", "oil"])
        stamps = np.arange("2016-07-01T00", ROWS, dtype="datetime64[h]")
        for n, j in COLS.items():
            for t in range(ROWS):
                level = st[n][0] + (1.0 if (n, t) == change_at else 0.0)
                w.writerow([n, str(stamps[t]), f"{ett[t, j]:.6g}", f"{level:.6g}", int(st[n][1])])
    return path


def test_cli_train_and_forecast_with_static_covariates(ett, tmp_path):
    import csv
    import subprocess
    import sys

    def run(*args):
        p = subprocess.run(
            [sys.executable, "-m", "seqshape", *map(str, args)], capture_output=True, text=True
        )
        return p

    data = _long_csv(ett, tmp_path / "long.csv")
    out = tmp_path / "m"
    p = run(
        "train", "forecast", "--data", data, "--target", "target", "--static-covariates",
        "level,oil", "--lookback", "24", "--horizon", "6", "--epochs", "1", "--hidden", "8",
        "--layers", "1", "--out", out, "--no-progress",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    fc = Forecaster.load(out)
    assert fc.meta["static_names"] == ["level", "oil"] and fc.config.n_future == 2
    np.testing.assert_allclose(fc.statics_["OT"], _statics(ett)["OT"], rtol=1e-5)
    # the forecast command: the history file's statics (the same as trained) give the library's
    hist = tmp_path / "hist.csv"
    rows = data.read_text().splitlines()
    keep = [r for i, r in enumerate(rows[1:]) if i % ROWS < 200]
    hist.write_text("\n".join([rows[0], *keep]) + "\n")
    p = run("forecast", out, "--history", hist, "--horizon", "6", "--output", tmp_path / "f.csv")
    assert p.returncode == 0, p.stderr
    got = [r for r in csv.DictReader((tmp_path / "f.csv").open()) if r["series"] == "OT"]
    want = fc.forecast(
        np.array([[float(r.split(",")[2])] for r in keep[600:800]]), 6, series_index=3
    )
    np.testing.assert_allclose([float(r["target"]) for r in got], want["point"][:, 0], rtol=1e-4)
    # a static value that changes within a series: one line naming file, series and line
    bad = _long_csv(ett, tmp_path / "bad.csv", change_at=("MUFL", 5))
    p = run(
        "train", "forecast", "--data", bad, "--target", "target", "--static-covariates",
        "level,oil", "--epochs", "1", "--out", tmp_path / "m2", "--no-progress",
    )  # fmt: skip
    assert p.returncode != 0
    assert f"{bad} line {ROWS + 7}: static covariate 'level' of series 'MUFL' changes" in p.stderr


def test_server_adapter_appends_the_statics_by_series(fitted, ett, tmp_path):
    from seqshape.serve.forecast_adapter import ForecasterAdapter

    d = fitted.save(tmp_path / "m")
    ad = ForecasterAdapter("m", d)
    assert ad.Cu == 0 and ad.features == 1  # the client sends the target only
    got = ad.forecast(ett[:300, 4:5], 6, None, series="LUFL")
    want = fitted.forecast(ett[:300, 4:5], 6, series_index=2)
    np.testing.assert_allclose(got["point"], want["point"], rtol=0, atol=1e-5)
    stream, results = ad.observe(ad.new_stream({"series": "LUFL"}), ett[:300, 4:5].astype(float))
    one = fitted.forecast(ett[:250, 4:5], 1, series_index=2)["point"][0]
    np.testing.assert_allclose(results[250]["forecast"], one, rtol=0, atol=1e-5)


def test_a_damaged_statics_table_is_refused_on_load(fitted, tmp_path):
    import json

    from seqshape import ArtifactError

    d = fitted.save(tmp_path / "m")
    pre = json.loads((d / "preprocessing.json").read_text())
    pre["statics"]["OT"] = [1.0]  # one number where the model reads two
    (d / "preprocessing.json").write_text(json.dumps(pre))
    with pytest.raises(ArtifactError, match=r"field 'statics': expected one list of 2 finite"):
        Forecaster.load(d)


def test_a_restored_stream_keeps_its_series_statics_under_global_scaling(ett):
    # one scaling for all series: the scaling row (0) does not say whose statics a stream reads
    fc = Forecaster(
        lookback=24, horizon=6, hidden_size=8, num_layers=1, epochs=1, window_norm="none",
        max_windows_per_epoch=128, global_scaling=True, progress=False, seed=0,
        strategy="autoregressive",
    ).fit(_series(ett), train_end=400, val_end=500)  # fmt: skip
    stream = ForecastStream(fc, series="OT")
    stream.update(ett[:100, 6:7])
    state = json.loads(json.dumps(stream.state()))
    again = ForecastStream.from_state(fc, state)
    np.testing.assert_array_equal(again.static, stream.static)
    assert not np.allclose(again.static, ForecastStream(fc, series="HUFL").static)
    np.testing.assert_array_equal(again.forecast(6)["point"], stream.forecast(6)["point"])


def test_a_direct_segment_model_takes_the_statics_through_onnx(ett, tmp_path):
    """The default strategy: statics ride in every segment as known covariates, and the ONNX
    runner (which pads a short history in front, as torch does) agrees."""
    from seqshape.infer.export import export_onnx
    from seqshape.infer.onnx_forecaster import OnnxForecaster

    fc = Forecaster(
        lookback=48, horizon=6, hidden_size=8, num_layers=1, epochs=1, season=24,
        max_windows_per_epoch=256, keep_start=False, progress=False, seed=0, strategy="direct",
    ).fit(_series(ett), train_end=400, val_end=500)  # fmt: skip
    assert fc.config.segment == 24 and fc.config.n_future == 2
    d = fc.save(tmp_path / "m")
    onnx_fc = OnnxForecaster(export_onnx(d))
    scale = float(fc.scaling.z_std[3, 0])
    for hist, k in ((ett[:480, 6:7], 6), (ett[:30, 6:7], 6), (ett[:480, 6:7], 14)):
        a = fc.forecast(hist, k, series_index=3, allow_short=True)["point"]
        b = onnx_fc.forecast(hist, k, series_index=3, allow_short=True)["point"]
        np.testing.assert_allclose(b / scale, a / scale, rtol=0, atol=1e-4)
