"""Forecast heads as objects (models/heads.py): one registry; the count heads (Poisson, negative
binomial) score, draw and scale counts, on real tweet counts (NAB realTweets, GOOG: tweets per
5 minutes), through torch, save/load, ONNX, the CLI and the server. Stream == batch for the count
heads is in tests/infer/test_stream.py, ONNX == torch for random count nets in
tests/infer/test_onnx_forecaster.py."""

import json
import math

import numpy as np
import pytest
import torch

from seqshape.api.backtest import backtest
from seqshape.api.forecaster import Forecaster, SeriesData
from seqshape.data.scaling import Scaling
from seqshape.errors import ConfigError, DataError
from seqshape.models.forecaster import ForecasterConfig, ForecasterNet, fit_highway, forecast_loss
from seqshape.models.heads import HEADS, RATE_KNEE, count_quantiles

TWEETS = "anomaly/nab/data/realTweets/Twitter_volume_GOOG.csv"
ALL = ["mse", "mae", "gaussian", "student_t", "quantile", "poisson", "negbin"]
COUNT = ["poisson", "negbin"]


@pytest.fixture(scope="module")
def tweets(shared_data):
    """(4000, 1) float32: the first 4,000 five-minute tweet counts about GOOG (mean ~20)."""
    lines = (shared_data / TWEETS).read_text().splitlines()
    assert lines[0] == "timestamp,value"
    return np.array([[float(ln.split(",")[1])] for ln in lines[1:4001]], dtype=np.float32)


def _fc(loss: str, **kw) -> Forecaster:
    opts = dict(
        lookback=24, horizon=6, hidden_size=8, num_layers=1, epochs=1, loss=loss, season=1,
        max_windows_per_epoch=256, threads=1, progress=False, seed=0, strategy="autoregressive",
    )  # fmt: skip
    if loss in COUNT:
        opts["window_norm"] = "none"
    return Forecaster(**(opts | kw))


# -- the registry -----------------------------------------------------------------------------------
def test_every_head_is_found_by_name_and_others_are_refused():
    assert list(HEADS) == ALL
    sizes = {name: HEADS[name].n_params((0.1, 0.5, 0.9)) for name in ALL}
    assert sizes == {
        "mse": 1,
        "mae": 1,
        "gaussian": 2,
        "student_t": 3,
        "quantile": 3,
        "poisson": 1,
        "negbin": 2,
    }
    with pytest.raises(ConfigError, match="loss: expected one of mse, mae, gaussian, student_t, "
                       "quantile, poisson, negbin, got 'tweedie'"):  # fmt: skip
        ForecasterConfig(n_targets=1, lookback=4, horizon=2, loss="tweedie")
    # a rate has no location to subtract a window level from
    for norm in ("last", "mean"):
        with pytest.raises(ConfigError, match=f"window_norm: the poisson head .* got '{norm}'"):
            ForecasterConfig(n_targets=1, lookback=4, horizon=2, loss="poisson", window_norm=norm)
    assert HEADS["negbin"].default_window_norm == "none" == HEADS["poisson"].default_window_norm
    with pytest.raises(ConfigError, match=r"quantiles: expected increasing values in \(0, 1\)"):
        ForecasterConfig(n_targets=1, lookback=4, horizon=2, loss="quantile", quantiles=(0.9, 0.1))


# -- losses, draws, quantiles -----------------------------------------------------------------------
def _cfg(loss: str) -> ForecasterConfig:
    return ForecasterConfig(n_targets=1, lookback=4, horizon=1, loss=loss, window_norm="none")


def test_count_losses_equal_the_formula_on_a_hand_computed_case():
    # Poisson(rate 2) at y = 3: 2 - 3 ln 2 + ln 3!
    want = 2.0 - 3.0 * math.log(2.0) + math.log(6.0)
    p, y = torch.tensor([[[[2.0]]]]), torch.tensor([[[3.0]]])
    assert float(forecast_loss(p, y, _cfg("poisson"))) == pytest.approx(want, abs=1e-6)
    # the same count in scaled units: rate 0.5 and value 0.75 at a count scale of 4
    scale = torch.tensor([[4.0]])
    got = forecast_loss(p / 4, y / 4, _cfg("poisson"), scale=scale)
    assert float(got) == pytest.approx(want, abs=1e-6)
    # NegBin(mean 2, alpha 0.5) at y = 3: r = 2, p = 1/2: C(4, 3) / 2^5 = 1/8
    nb = torch.tensor([[[[2.0, 0.5]]]])
    assert float(forecast_loss(nb, y, _cfg("negbin"))) == pytest.approx(math.log(8.0), abs=1e-6)
    ref = -torch.distributions.NegativeBinomial(total_count=2.0, probs=0.5).log_prob(y)
    assert float(forecast_loss(nb, y, _cfg("negbin"))) == pytest.approx(float(ref), abs=1e-6)
    got = forecast_loss(nb * torch.tensor([0.25, 1.0]), y / 4, _cfg("negbin"), scale=scale)
    assert float(got) == pytest.approx(math.log(8.0), abs=1e-6)
    # ... and the number moves with the parameters
    assert float(forecast_loss(nb + torch.tensor([1.0, 0.0]), y, _cfg("negbin"))) != pytest.approx(
        math.log(8.0), abs=1e-3
    )


def test_count_quantiles_are_the_exact_inverse_cdf():
    def brute(mu, alpha, q):
        k, cdf = 0, 0.0
        while True:
            if alpha is None:
                cdf += math.exp(k * math.log(mu) - mu - math.lgamma(k + 1))
            else:
                r = 1 / alpha
                cdf += math.exp(
                    math.lgamma(k + r) - math.lgamma(r) - math.lgamma(k + 1)
                    + r * math.log(r / (r + mu)) + k * math.log(mu / (r + mu))
                )  # fmt: skip
            if cdf >= q:
                return k
            k += 1

    mu = np.array([0.3, 2.6, 20.0, 85.0, 400.0])
    alpha = np.array([2.0, 0.1, 0.3, 1.5, 0.01])
    qs = [0.025, 0.1, 0.5, 0.9, 0.975]
    got_p, got_nb = count_quantiles(mu, None, qs), count_quantiles(mu, alpha, qs)
    for i in range(len(mu)):
        for j, q in enumerate(qs):
            assert got_p[j, i] == brute(mu[i], None, q), (mu[i], q)
            assert got_nb[j, i] == brute(mu[i], alpha[i], q), (mu[i], alpha[i], q)
    assert (count_quantiles(np.zeros(3), None, [0.5, 0.99]) == 0).all()


def _count_net(loss: str, tweets, highway: int = 0):
    cfg = ForecasterConfig(
        n_targets=1, lookback=24, horizon=6, hidden_size=8, loss=loss, window_norm="none",
        highway=highway,
    )  # fmt: skip
    scale = 1.0 + float(tweets[:2800].mean())
    # (B=3, N=24, 1) real windows, divided by the count scale
    hist = torch.from_numpy(np.stack([tweets[s : s + 24] for s in (100, 900, 2000)]) / scale)
    return ForecasterNet(cfg).eval(), hist, scale


@pytest.mark.parametrize("loss", COUNT)
def test_count_draws_are_reproducible_whole_counts_with_the_predicted_moments(loss, tweets):
    net, hist, s = _count_net(loss, tweets)
    with torch.no_grad():
        net.head.bias[0] += 1.0  # rates near the series' level, not random ones near 0
    scale = torch.full((3, 1), s)

    def draws(seed, n=400):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            return net.forecast(hist, 6, samples=n, generator=g, scale=scale)[..., 0].numpy()

    a, b, c = draws(3), draws(3), draws(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    counts = a * s  # back in counts: whole and non-negative (float32 rounding of k / s * s)
    assert (counts >= 0).all() and np.abs(counts - np.round(counts)).max() < 1e-3 * counts.max()
    # the first step's draws have the head's mean and variance (4000 draws per window)
    with torch.no_grad():
        p = net.forecast(hist, 1)[:, 0, 0].numpy().astype(np.float64)  # (3, P)
    first = draws(5, 4000)[:, :, 0] * s  # (S, 3)
    mu = p[:, 0] * s
    var = mu if loss == "poisson" else mu + p[:, 1] * mu**2
    assert np.abs(first.mean(0) - mu).max() < 5 * np.sqrt(var / 4000).max()
    np.testing.assert_allclose(first.var(0), var, rtol=0.15)


def test_a_count_draw_without_a_scale_draws_the_values_as_counts(tweets):
    net, hist, _ = _count_net("poisson", tweets)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z = net.forecast(hist * 40, 3, samples=5, generator=g)
    np.testing.assert_array_equal(z.numpy(), np.round(z.numpy()))


# -- scaling and the highway -------------------------------------------------------------------------
def test_count_scaling_divides_by_one_plus_the_mean_and_keeps_its_json(tweets):
    s = SeriesData(target=tweets, name="goog")
    sc = Scaling.fit([s], [2800], False, rule="mean")
    assert sc.z_mean.tolist() == [[0.0]]
    assert sc.z_std[0, 0] == pytest.approx(1.0 + tweets[:2800].mean(), rel=1e-6)
    std = Scaling.fit([s], [2800], False)
    assert sc.to_dict().keys() == std.to_dict().keys()
    back = Scaling.from_dict(json.loads(json.dumps(sc.to_dict())))
    np.testing.assert_array_equal(back.z_std, sc.z_std)
    bad = tweets.copy()
    bad[7, 0] = -2.0
    with pytest.raises(DataError, match="goog: row 7, column 0: a count head expects counts >= 0"):
        Scaling.fit([SeriesData(target=bad, name="goog")], [2800], False, rule="mean")
    with pytest.raises(DataError, match="a count head expects counts >= 0"):
        _fc("poisson").fit(SeriesData(target=bad, name="goog"), train_end=2800, val_end=3400)


def test_a_count_highway_starts_as_its_baseline_and_keeps_rates_positive(tweets):
    net, _, s = _count_net("poisson", tweets, highway=8)
    z = tweets[:2800, 0] / s
    base = fit_highway(net, [z[:, None]])
    x = np.stack([z[t : t + 24] for t in range(0, 2700, 7)])[..., None]  # (W, 24, 1)
    with torch.no_grad():
        rate = net.forecast(torch.from_numpy(x), 1)[:, 0, 0, 0].numpy()
    lin = base.predict(x[:, -8:])[:, 0, 0]
    # the untrained model is its baseline wherever the baseline is a rate above the knee ...
    above = lin >= RATE_KNEE
    assert above.mean() > 0.9
    np.testing.assert_allclose(rate[above], lin[above], rtol=0, atol=1e-5)
    # ... and stays a positive rate, with finite gradients, where the linear term goes below
    # zero (here: moved down below every window's baseline)
    drop = float(lin.max()) + 1.0
    with torch.no_grad():
        net.highway.bias -= drop
    hist = torch.from_numpy(x)
    p = net.forecast(hist, 1)
    low = p[:, 0, 0, 0].detach().numpy()
    assert (lin - drop < 0).all() and (low > 0).all() and (low <= RATE_KNEE).all()
    forecast_loss(
        p[:, :, :, :], torch.from_numpy(z[24:25]).expand(len(x), 1, 1), net.config
    ).backward()
    assert all(torch.isfinite(t.grad).all() for t in net.parameters() if t.grad is not None)


# -- real counts -------------------------------------------------------------------------------------
def test_a_poisson_model_beats_the_naive_forecast_on_held_out_tweet_counts(tweets):
    s = SeriesData(target=tweets, name="goog")
    got = {}
    for loss in COUNT:
        fc = _fc(
            loss, lookback=48, horizon=12, hidden_size=16, epochs=6, max_windows_per_epoch=1024
        )
        fc.fit(s, train_end=2800, val_end=3400)
        got[loss] = backtest(fc, [s], [2800], [3400], [4000], [12], season=1)["by_horizon"]["12"]
    b = got["poisson"]
    # held-out windows (rows 3400-4000), mean absolute error in tweets
    assert b["mae_original"] < 0.95 * b["baselines"]["naive"]["mae_original"], b
    # tweets are overdispersed: the Poisson's 80% band holds far fewer, the negative binomial's
    # near its level
    nb = got["negbin"]["interval"]["coverage"]
    assert b["interval"]["level"] == 0.8 and nb > b["interval"]["coverage"] + 0.2
    assert 0.7 < nb < 0.95, got["negbin"]["interval"]


# -- save / load, ONNX --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(tweets):
    s = SeriesData(target=tweets[:1500], name="goog")
    return {loss: _fc(loss, highway=6).fit(s, train_end=1100, val_end=1300) for loss in ALL}


@pytest.mark.parametrize("loss", ALL)
def test_every_head_saves_and_loads_with_the_same_answers(loss, fitted, tweets, tmp_path):
    fc = fitted[loss]
    back = Forecaster.load(fc.save(tmp_path / loss))
    assert back.config == fc.config and back.scaling.to_dict() == fc.scaling.to_dict()
    hist = SeriesData(target=tweets[1300:1400])
    a, b = fc.forecast(hist, 9), back.forecast(hist, 9)
    assert a.keys() == b.keys() and "point" in a
    for key in a:
        if key == "quantiles":
            for q in a[key]:
                np.testing.assert_array_equal(a[key][q], b[key][q])
        else:
            np.testing.assert_array_equal(a[key], b[key])
    if loss in COUNT:
        assert {"std"} <= a.keys() and (a["point"] > 0).all()
        assert ("alpha" in a) == (loss == "negbin")


@pytest.mark.parametrize("loss", COUNT)
def test_a_count_model_answers_the_same_through_onnx(loss, fitted, tweets, tmp_path):
    from seqshape.infer.export import export_onnx
    from seqshape.infer.onnx_runtime import OnnxForecaster

    fc = fitted[loss]
    onnx_fc = OnnxForecaster(export_onnx(fc.save(tmp_path / "model")))
    hist = SeriesData(target=tweets[1300:1400])
    a, b = fc.forecast(hist, 30), onnx_fc.forecast(hist, 30)
    s = float(fc.scaling.z_std[0, 0])  # compare in scaled units
    for key in ("point", "std", *(("alpha",) if loss == "negbin" else ())):
        np.testing.assert_allclose(b[key] / s, a[key] / s, rtol=0, atol=1e-4, err_msg=key)


def test_a_direct_count_model_exports_too(tweets, tmp_path):
    from seqshape.artifacts import save_model_dir
    from seqshape.infer.export import export_onnx
    from seqshape.infer.onnx_runtime import OnnxForecaster

    cfg = ForecasterConfig(
        n_targets=1, lookback=24, horizon=6, hidden_size=8, loss="negbin", window_norm="none",
        strategy="direct", highway=12,
    )  # fmt: skip
    net = ForecasterNet(cfg).eval()
    scaling = {
        "z_mean": [[0.0]],
        "z_std": [[21.0]],
        "f_mean": [[]],
        "f_std": [[]],
        "global_": False,
    }
    d = save_model_dir(
        tmp_path / "m", kind="forecaster", config=cfg.to_dict(), state_dict=net.state_dict(),
        preprocessing={"scaling": scaling, "series_names": ["goog"]},
    )  # fmt: skip
    onnx_fc = OnnxForecaster(export_onnx(d))
    hists = [tweets[s : s + n] / 21.0 for s, n in ((0, 24), (500, 30), (900, 7))]
    got = onnx_fc.forecast_scaled(hists, 6)
    for i, h in enumerate(hists):
        with torch.no_grad():
            ref = net.forecast(torch.from_numpy(h)[None], 6)[0].numpy()
        np.testing.assert_allclose(got[i], ref, rtol=0, atol=1e-4)
        assert (got[i][..., 0] > 0).all() and (got[i][..., 1] > 0).all()


# -- CLI and server ----------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_cli_and_server_answer_a_count_heads_outputs(shared_data, tmp_path):
    from fastapi.testclient import TestClient

    from seqshape.cli import main
    from seqshape.serve.adapters import load_models
    from seqshape.serve.app import ServeConfig, create_app

    lines = (shared_data / TWEETS).read_text().splitlines()
    data = tmp_path / "goog.csv"
    data.write_text("\n".join(lines[:1601]) + "\n")
    cfg = tmp_path / "count.toml"
    cfg.write_text('window_norm = "none"\n')  # a count head's window norm
    model = tmp_path / "nb"
    args = ["train", "forecast", "--data", str(data), "--target", "value", "--lookback", "24",
            "--horizon", "6", "--loss", "negbin", "--epochs", "1", "--hidden", "8", "--layers",
            "1", "--seed", "0", "--config", str(cfg), "--out", str(model), "--no-progress",
            "--strategy", "autoregressive"]  # fmt: skip
    assert main(args) == 0
    assert json.loads((model / "config.json").read_text())["config"]["loss"] == "negbin"
    hist = tmp_path / "hist.csv"
    hist.write_text("\n".join(lines[:201]) + "\n")
    out = tmp_path / "f.csv"
    assert main(["forecast", str(model), "--history", str(hist), "--horizon", "8",
                 "--output", str(out)]) == 0  # fmt: skip
    head, *rows = [r.split(",") for r in out.read_text().splitlines()]
    assert head == ["series", "timestamp", "value", "value_std"] and len(rows) == 8
    assert all(float(r[2]) > 0 and float(r[3]) > 0 for r in rows)
    fc = Forecaster.load(model)
    y = np.array([[float(ln.split(",")[1])] for ln in lines[1:201]], np.float32)
    want = fc.forecast(SeriesData(target=y), 8)
    config = ServeConfig(state_path=tmp_path / "s.sqlite3")
    with TestClient(create_app(load_models([f"nb={model}"]), config)) as client:
        info = client.get("/v1/models/nb").json()
        assert info["loss"] == "negbin" and info["params"] == ["mean", "alpha"]
        r = client.post("/v1/models/nb/forecast", json={"history": y.tolist(), "k": 8}).json()
        for key in ("point", "std", "alpha"):
            np.testing.assert_allclose(np.array(r[key]), want[key], rtol=1e-5, err_msg=key)
        sid = client.post("/v1/models/nb/streams").json()["stream_id"]
        got = client.post(f"/v1/streams/{sid}/observe", json={"seq": 0, "points": y[:40].tolist()})
        res = got.json()["results"]
    stream = fc.stream()
    ref = stream.update(y[:40])
    has = ref["has_point"]
    assert has.sum() == 39 and [r["forecast"] is not None for r in res] == has.tolist()
    np.testing.assert_allclose(
        np.array([r["std"] for r in res if r["forecast"] is not None]), ref["std"][has], rtol=1e-6
    )
    assert all(r["alpha"][0] > 0 for r in res if r["forecast"] is not None)
