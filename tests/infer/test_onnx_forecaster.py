"""ONNX export of the forecaster: the encode + step graphs driven from outside give torch's forecast
for any K (beyond the training horizon too), for every head, window_norm, cell, covariate layout
and the linear highway; mixed-length batches change nothing; the CLI forecasts with --backend onnx;
no torch is needed to run the export."""

import csv
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

from seqshape import ArtifactError, ConfigError, DataError, ShapeError, datasets
from seqshape.api.forecaster import Forecaster, SeriesData
from seqshape.artifacts import save_model_dir
from seqshape.cli import main
from seqshape.data.series import read_series_csv
from seqshape.infer.export import export_onnx, read_metadata
from seqshape.infer.onnx_runtime import OnnxForecaster
from seqshape.models.forecaster import ForecasterConfig, ForecasterNet

ENV = {**os.environ, "SEQSHAPE_THREADS": "1", "OMP_NUM_THREADS": "1"}
K_LONG = 30  # every model below was configured with horizon 6


@pytest.fixture(scope="module")
def ett(shared_data):
    """The first 1,500 hourly rows of ETTh1: OT target, HUFL/HULL observed, calendar known."""
    lines = (shared_data / "forecasting" / "ETTh1.csv").read_text().splitlines()[:1501]
    return lines


@pytest.fixture(scope="module")
def ett_frame(ett, tmp_path_factory):
    path = tmp_path_factory.mktemp("ett") / "ett.csv"
    path.write_text("\n".join(ett) + "\n")
    f = read_series_csv(
        path, target="OT", past_covariates=["HUFL", "HULL"], future_covariates="auto"
    )
    return f


def _standardise(a):
    return ((a - a.mean(0)) / a.std(0)).astype(np.float32)


def _windows(frame, Cp, Cf, lengths, k, seed=0):
    """Real scaled ETTh1 windows: histories of the given lengths (N_i, 1+Cp), their covariates
    (N_i+K, Cf)."""
    z = _standardise(np.concatenate([frame.target[0], frame.past_cov[0][:, :Cp]], 1))
    f = _standardise(frame.future_cov[0][:, :Cf]) if Cf else np.zeros((len(z), 0), np.float32)
    starts = np.random.default_rng(seed).integers(0, len(z) - max(lengths) - k, len(lengths))
    hists = [z[s : s + n] for s, n in zip(starts, lengths)]
    covs = [f[s : s + n + k] for s, n in zip(starts, lengths)]
    return hists, covs


def _export_random(tmp_path, cfg, n_series=1):
    """A ForecasterNet with random weights saved as a model directory and exported."""
    net = ForecasterNet(cfg).eval()
    scaling = {
        "z_mean": [[0.0] * cfg.n_fed] * n_series,
        "z_std": [[1.0] * cfg.n_fed] * n_series,
        "f_mean": [[0.0] * cfg.n_future] * n_series,
        "f_std": [[1.0] * cfg.n_future] * n_series,
        "global_": False,
    }
    d = save_model_dir(
        tmp_path / "m",
        kind="forecaster",
        config=cfg.to_dict(),
        state_dict=net.state_dict(),
        preprocessing={"scaling": scaling, "series_names": ["s"] * n_series},
    )
    return net, export_onnx(d)


CASES = [
    dict(),
    dict(loss="gaussian", window_norm="last", n_past=2),
    dict(loss="student_t", window_norm="mean", n_future=3),
    dict(loss="quantile", quantiles=(0.1, 0.5, 0.9), window_norm="last", n_past=1, n_future=3),
    dict(cell="gru", loss="gaussian", window_norm="mean", n_past=2, n_future=3),
    dict(cell="gru", num_layers=1, window_norm="none"),
    # the linear highway over the last p values, p above and below some history lengths
    dict(highway=10, loss="gaussian", window_norm="mean", n_past=1, n_future=3),
    dict(highway=3, cell="gru", loss="quantile", window_norm="last"),
    # count heads: the highway's term joins the rate before its positivity (a random highway of
    # 10 values over a past covariate grows its rates without bound here: 4 stays in range)
    dict(loss="poisson", highway=4, n_past=1, n_future=3),
    dict(loss="negbin", cell="gru", highway=3, n_future=3),
    dict(loss="negbin", num_layers=1),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()) or "mse")
def test_encode_and_steps_match_torch_beyond_the_horizon(case, ett_frame, tmp_path):
    cfg = ForecasterConfig(n_targets=1, lookback=24, horizon=6, hidden_size=16, **case)
    net, path = _export_random(tmp_path, cfg)
    onnx_fc = OnnxForecaster(path, batch_size=3)  # several batches, lengths mixed in each
    lengths = [24, 7, 48, 1, 24, 13]
    hists, covs = _windows(ett_frame, cfg.n_past, cfg.n_future, lengths, K_LONG)
    got = onnx_fc.forecast_scaled(hists, K_LONG, covs if cfg.n_future else None)
    assert got.shape == (len(lengths), K_LONG, cfg.n_fed, cfg.n_params)
    for i, (h, f) in enumerate(zip(hists, covs)):
        with torch.no_grad():
            ref = net.forecast(
                torch.from_numpy(h)[None],
                K_LONG,
                torch.from_numpy(f)[None] if cfg.n_future else None,
            )[0].numpy()
        np.testing.assert_allclose(got[i], ref, rtol=0, atol=1e-4)
    # K = 1 is the encode graph alone
    cov1 = [f[: len(h) + 1] for h, f in zip(hists[:2], covs)] if cfg.n_future else None
    one = onnx_fc.forecast_scaled(hists[:2], 1, cov1)
    np.testing.assert_allclose(one[:, 0], got[:2, 0], rtol=0, atol=1e-6)


def test_direct_strategy_is_one_graph_with_its_fixed_horizon(ett_frame, tmp_path):
    cfg = ForecasterConfig(
        n_targets=1, n_past=2, n_future=3, lookback=24, horizon=6, strategy="direct",
        loss="quantile", hidden_size=16, highway=12,
    )  # fmt: skip
    net, path = _export_random(tmp_path, cfg)
    meta = read_metadata(path)
    assert list(meta["parts"]) == ["direct"]
    assert [s["name"] for s in meta["parts"]["direct"]["inputs"]] == [
        "history", "lengths", "future_cov", "horizon_cov",
    ]  # fmt: skip
    onnx_fc = OnnxForecaster(path)
    hists, covs = _windows(ett_frame, 2, 3, [24, 5, 30], 6)
    got = onnx_fc.forecast_scaled(hists, 6, covs)
    for i, (h, f) in enumerate(zip(hists, covs)):
        with torch.no_grad():
            ref = net.forecast(torch.from_numpy(h)[None], 6, torch.from_numpy(f)[None])[0]
        np.testing.assert_allclose(got[i], ref.numpy(), rtol=0, atol=1e-4)
    # any K, block by block, as the torch model does it
    covs9 = [np.resize(f, (len(h) + 9, 3)) for h, f in zip(hists, covs)]
    got9 = onnx_fc.forecast_scaled(hists, 9, covs9)
    for i, (h, f) in enumerate(zip(hists, covs9)):
        with torch.no_grad():
            ref = net.forecast(torch.from_numpy(h)[None], 9, torch.from_numpy(f)[None])[0]
        np.testing.assert_allclose(got9[i], ref.numpy(), rtol=0, atol=1e-4)


def test_padding_never_changes_the_encode_graph(ett_frame, tmp_path):
    cfg = ForecasterConfig(
        n_targets=1, n_past=2, n_future=3, lookback=24, horizon=6, hidden_size=16,
        window_norm="mean", num_layers=2,
    )  # fmt: skip
    _, path = _export_random(tmp_path, cfg)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    hists, covs = _windows(ett_frame, 2, 3, [30, 4, 17], 1)
    x = np.random.default_rng(1).normal(0, 50, (3, 30, 3)).astype(np.float32)  # garbage padding
    f = np.random.default_rng(2).normal(0, 50, (3, 30, 3)).astype(np.float32)
    lengths = np.array([len(h) for h in hists], dtype=np.int64)
    for i, (h, c) in enumerate(zip(hists, covs)):
        x[i, : len(h)], f[i, : len(h)] = h, c[1 : len(h) + 1]
    names = ["params", "offset", "h", "c"]
    batched = sess.run(names, {"history": x, "lengths": lengths, "future_cov": f})
    for i, n in enumerate(lengths):
        feeds = {"history": x[i : i + 1, :n], "lengths": lengths[i : i + 1]}
        alone = sess.run(names, {**feeds, "future_cov": f[i : i + 1, :n]})
        for b, a, name in zip(batched, alone, names):
            row = b[:, i] if name in ("h", "c") else b[i]
            a = a[:, 0] if name in ("h", "c") else a[0]
            np.testing.assert_allclose(row, a, rtol=0, atol=1e-5, err_msg=name)


# -- a trained model, through the public APIs -------------------------------------------------------
@pytest.fixture(scope="module")
def air():
    f = read_series_csv(
        datasets.path("AirPassengers.csv"), target="#Passengers", future_covariates="auto"
    )
    return SeriesData(target=f.target[0], future_cov=f.future_cov[0], name="air")


@pytest.fixture(scope="module")
def air_model(air, tmp_path_factory):
    fc = Forecaster(
        lookback=24, horizon=6, hidden_size=16, num_layers=2, epochs=2, loss="gaussian",
        highway=12, seed=0, strategy="autoregressive",
    ).fit(air, train_end=108, val_end=126)  # fmt: skip
    d = fc.save(tmp_path_factory.mktemp("air") / "model")
    export_onnx(d)
    return fc, d


def test_onnx_forecaster_matches_forecaster_forecast(air_model, air):
    fc, d = air_model
    onnx_fc = OnnxForecaster(d / "model.onnx")
    assert (d / "model.step.onnx").is_file()
    hist = SeriesData(target=air.target[:100], future_cov=air.future_cov[:100])
    a = fc.forecast(hist, K_LONG, future_cov=air.future_cov[100 : 100 + K_LONG])
    b = onnx_fc.forecast(hist, K_LONG, future_cov=air.future_cov[100 : 100 + K_LONG])
    assert b["point"].shape == (K_LONG, 1) and b["params"].shape == (K_LONG, 1, 2)
    scale = float(fc.scaling.z_std[0, 0])  # compare in scaled units: passengers are in hundreds
    np.testing.assert_allclose(b["point"] / scale, a["point"] / scale, rtol=0, atol=1e-4)
    np.testing.assert_allclose(b["std"] / scale, a["std"] / scale, rtol=0, atol=1e-4)
    # histories of several lengths in one batch (1 is below the lookback of 24, so it must be
    # allowed): each answer as if forecast alone
    ns = [100, 37, 1, 64]
    many = onnx_fc.forecast_many(
        [SeriesData(target=air.target[:n], future_cov=air.future_cov[:n]) for n in ns],
        K_LONG,
        future_cov=[air.future_cov[n : n + K_LONG] for n in ns],
        allow_short=True,
    )
    for n, r in zip(ns, many):
        hist = SeriesData(target=air.target[:n], future_cov=air.future_cov[:n])
        ref = fc.forecast(hist, K_LONG, future_cov=air.future_cov[n : n + K_LONG], allow_short=True)
        np.testing.assert_allclose(r["point"] / scale, ref["point"] / scale, rtol=0, atol=1e-4)
    np.testing.assert_allclose(many[0]["point"], b["point"], rtol=0, atol=1e-6)


def test_metadata_and_input_errors(air_model, air):
    fc, d = air_model
    meta = read_metadata(d / "model.onnx")
    assert meta["kind"] == "forecaster" and list(meta["parts"]) == ["encode", "step"]
    assert meta["parts"]["step"]["file"] == "model.step.onnx"
    assert [s["name"] for s in meta["parts"]["encode"]["inputs"]] == [
        "history", "lengths", "future_cov",
    ]  # fmt: skip
    assert [s["name"] for s in meta["parts"]["step"]["inputs"]] == [
        "z", "f_next", "h", "c", "offset", "recent",
    ]  # fmt: skip
    assert meta["parts"]["step"]["outputs"][-1]["name"] == "recent_next"
    assert meta["parts"]["encode"]["outputs"][0]["shape"] == ["B", 1, 2]
    assert meta["scaling"] == fc.scaling.to_dict() and meta["config"]["window_norm"] == "last"
    assert all(p["max_abs_diff_vs_torch"] <= 1e-4 for p in meta["parts"].values())
    onnx_fc = OnnxForecaster(d / "model.onnx")
    hist = SeriesData(target=air.target[:50], future_cov=air.future_cov[:50])
    with pytest.raises(DataError, match="future_cov: this model uses 2 known covariates"):
        onnx_fc.forecast(hist, 5)
    with pytest.raises(ShapeError, match=r"future_cov: expected \(K=5, Cf=2\), got \(4, 2\)"):
        onnx_fc.forecast(hist, 5, future_cov=air.future_cov[50:54])
    with pytest.raises(ConfigError, match="series_index: expected 0..0"):
        onnx_fc.forecast(hist, 5, series_index=3, future_cov=air.future_cov[50:55])
    with pytest.raises(ShapeError, match="K: expected a horizon >= 1, got 0"):
        onnx_fc.forecast_scaled([np.zeros((5, 1), np.float32)], 0, [np.zeros((5, 2), np.float32)])


def test_parts_must_come_from_one_export(air_model, air, tmp_path):
    _, d = air_model
    other = Forecaster(
        lookback=24, horizon=6, hidden_size=16, num_layers=2, epochs=1, seed=1,
        strategy="autoregressive",
    )  # fmt: skip
    other.fit(air, train_end=108, val_end=126)
    od = other.save(tmp_path / "other")
    export_onnx(od)
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "model.onnx").write_bytes((d / "model.onnx").read_bytes())
    (tmp_path / "mixed" / "model.step.onnx").write_bytes((od / "model.step.onnx").read_bytes())
    with pytest.raises(ArtifactError, match="not from the same export"):
        OnnxForecaster(tmp_path / "mixed" / "model.onnx")
    (tmp_path / "mixed" / "model.step.onnx").unlink()
    with pytest.raises(ArtifactError, match=r"model\.step\.onnx: no such ONNX file"):
        OnnxForecaster(tmp_path / "mixed" / "model.onnx")


def test_onnx_forecaster_needs_no_torch(air_model, air):
    _, d = air_model
    code = (
        "import sys, numpy as np\n"
        "from seqshape.infer.onnx_runtime import OnnxForecaster\n"
        f"fc = OnnxForecaster({str(d / 'model.onnx')!r})\n"
        f"y = np.array({air.target[:60, 0].tolist()!r})\n"
        f"f = np.array({air.future_cov[:100].tolist()!r}, dtype=np.float32)\n"
        "class H: target, past_cov, future_cov = y, None, f[:60]\n"
        "out = fc.forecast(H(), 40, future_cov=f[60:100])\n"
        "assert out['point'].shape == (40, 1), out['point'].shape\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


# -- the CLI ----------------------------------------------------------------------------------------
def _rows(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_cli_export_then_forecast_with_onnx(ett, tmp_path, capsys):
    data = tmp_path / "ett.csv"
    data.write_text("\n".join(ett) + "\n")
    model = tmp_path / "m"
    args = ["train", "forecast", "--data", str(data), "--target", "OT",
            "--past-covariates", "HUFL", "--future-covariates", "auto", "--lookback", "24",
            "--horizon", "12", "--loss", "quantile", "--out", str(model), "--epochs", "1",
            "--hidden", "8", "--layers", "2", "--seed", "0", "--no-progress",
            "--strategy", "autoregressive"]  # fmt: skip
    assert main(args) == 0
    hist = tmp_path / "hist.csv"
    hist.write_text("\n".join(ett[:201]) + "\n")
    fc_args = ["forecast", str(model), "--history", str(hist), "--horizon", "40"]
    onnx_csv, torch_csv = tmp_path / "onnx.csv", tmp_path / "torch.csv"
    capsys.readouterr()
    assert main([*fc_args, "--output", str(onnx_csv), "--backend", "onnx"]) == 2
    assert f"write it first with `seqshape export {model}" in capsys.readouterr().err
    assert main(["export", str(model)]) == 0
    err = capsys.readouterr().err
    assert "encode: history (B, N, 2)" in err and "step: z (B, 2)" in err
    assert "shape inference" not in err  # the exporter's native noise is filtered
    assert main([*fc_args, "--output", str(onnx_csv), "--backend", "onnx"]) == 0
    assert main([*fc_args, "--output", str(torch_csv)]) == 0
    head_o, rows_o = _rows(onnx_csv)
    head_t, rows_t = _rows(torch_csv)
    assert head_o == head_t == ["series", "timestamp", "OT", "OT_q0.1", "OT_q0.5", "OT_q0.9"]
    assert len(rows_o) == 40 and [r[:2] for r in rows_o] == [r[:2] for r in rows_t]
    v_o = np.array([[float(v) for v in r[2:]] for r in rows_o])
    v_t = np.array([[float(v) for v in r[2:]] for r in rows_t])
    np.testing.assert_allclose(v_o, v_t, rtol=1e-5, atol=1e-4)
    # refused: samples, an unknown backend, an export of other weights
    assert main([*fc_args, "--output", str(onnx_csv), "--backend", "onnx", "--samples", "5"]) == 2
    assert "--samples: sample paths need --backend torch" in capsys.readouterr().err
    assert main([*fc_args, "--output", str(onnx_csv), "--backend", "tflite"]) == 2
    assert "--backend: expected torch or onnx, got 'tflite'" in capsys.readouterr().err
    fc = Forecaster.load(model)
    with torch.no_grad():
        fc.net.head.bias[0] += 1.0
    fc.save(tmp_path / "m2")
    for name in ("model.onnx", "model.step.onnx"):
        (tmp_path / "m2" / name).write_bytes((model / name).read_bytes())
    args2 = ["forecast", str(tmp_path / "m2"), "--history", str(hist), "--horizon", "5"]
    assert main([*args2, "--output", str(tmp_path / "x.csv"), "--backend", "onnx"]) == 2
    assert "exported from other weights" in capsys.readouterr().err


def test_a_student_t_forecast_reports_its_standard_deviation_not_its_scale(air, tmp_path):
    fc = Forecaster(
        lookback=24, horizon=6, hidden_size=8, num_layers=1, epochs=1, loss="student_t",
        highway=12, seed=0,
    ).fit(air, train_end=108, val_end=126)  # fmt: skip
    d = fc.save(tmp_path / "t")
    export_onnx(d)
    hist = SeriesData(target=air.target[:100], future_cov=air.future_cov[:100])
    cov = air.future_cov[100:118]
    a = fc.forecast(hist, 18, future_cov=cov)
    b = OnnxForecaster(d / "model.onnx").forecast(hist, 18, future_cov=cov)
    for r in (a, b):
        assert (r["df"] > 2).all()
        np.testing.assert_allclose(
            r["std"], r["scale"] * np.sqrt(r["df"] / (r["df"] - 2)), rtol=1e-6
        )
        assert (r["std"] > r["scale"]).all()  # a t's std exceeds its scale
    np.testing.assert_allclose(b["std"], a["std"], rtol=1e-4)


def test_a_history_shorter_than_the_lookback_is_refused_unless_allowed(air_model, air):
    fc, d = air_model
    onnx_fc = OnnxForecaster(d / "model.onnx")
    short = SeriesData(target=air.target[:23], future_cov=air.future_cov[:23], name="recent")
    cov = air.future_cov[23:29]
    for run in (fc.forecast, onnx_fc.forecast):
        with pytest.raises(DataError, match="recent: the history has 23 rows; this model reads "
                           "lookback=24 rows"):  # fmt: skip
            run(short, 6, future_cov=cov)
        assert run(short, 6, future_cov=cov, allow_short=True)["point"].shape == (6, 1)
    enough = SeriesData(target=air.target[:24], future_cov=air.future_cov[:24])
    assert fc.forecast(enough, 6, future_cov=air.future_cov[24:30])["point"].shape == (6, 1)
