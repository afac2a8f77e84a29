"""The forecaster's invariants: teacher forcing == step-by-step, K cell steps for K steps, any K."""

import numpy as np
import pytest
import torch

from seqshape.errors import ConfigError, ShapeError
from seqshape.models.forecaster import ForecasterConfig, ForecasterNet, forecast_loss


def _net(loss="mse", strategy="autoregressive", O=2, Cp=1, Cf=3, layers=2):
    cfg = ForecasterConfig(
        n_targets=O,
        n_past=Cp,
        n_future=Cf,
        lookback=12,
        horizon=6,
        loss=loss,
        strategy=strategy,
        hidden_size=8,
        num_layers=layers,
    )
    return ForecasterNet(cfg).eval()


@pytest.mark.parametrize("loss", ["mse", "gaussian", "student_t", "quantile"])
def test_teacher_forcing_equals_step_by_step_fed_the_same_values(loss):
    net = _net(loss)
    B, N, K = 4, 12, 6
    hist, fut, cov = torch.randn(B, N, 3), torch.randn(B, K, 3), torch.randn(B, N + K, 3)
    with torch.no_grad():
        forced = net(hist, fut, cov)
        out, state = net.encode(hist, cov)
        steps = []
        for k in range(K):
            steps.append(net.params(out))
            if k < K - 1:
                out, state = net.encoder.step(net.step_inputs(fut[:, k], cov[:, N + k + 1]), state)
    assert forced.shape == (B, K, 3, net.config.n_params)
    assert torch.allclose(torch.stack(steps, 1), forced, atol=1e-5)


def test_forecasting_k_steps_runs_k_minus_one_cell_steps_and_one_encoder_pass():
    net = _net()
    calls = {"step": 0, "forward": 0}
    step, forward = net.encoder.step, net.encoder.forward

    def counting_step(*a, **kw):
        calls["step"] += 1
        return step(*a, **kw)

    def counting_forward(*a, **kw):
        calls["forward"] += 1
        return forward(*a, **kw)

    net.encoder.step = counting_step
    net.encoder.forward = counting_forward
    for K in (1, 24, 96):
        calls.update(step=0, forward=0)
        with torch.no_grad():
            out = net.forecast(torch.randn(2, 12, 3), K, torch.randn(2, 12 + K, 3))
        assert out.shape == (2, K, 3, 1)
        # the window is read once; each further step is one cell step (never a recomputed window)
        assert calls == {"step": K - 1, "forward": 1}


def test_any_k_and_any_history_length_and_input_size_differs_from_output():
    net = _net(O=1, Cp=0, Cf=4)
    assert net.config.input_size == 5 and net.config.n_fed == 1
    with torch.no_grad():
        for N, K in ((3, 50), (40, 7), (1, 1)):
            out = net.forecast(torch.randn(5, N, 1), K, torch.randn(5, N + K, 4))
            assert out.shape == (5, K, 1, 1)


def test_sample_paths_feed_their_own_draws_back():
    net = _net("gaussian")
    torch.manual_seed(1)
    with torch.no_grad():
        paths = net.forecast(torch.randn(3, 12, 3), 9, torch.randn(3, 21, 3), samples=50)
    assert paths.shape == (50, 3, 9, 3)
    # the paths spread out as the horizon grows (each draw is fed back through the LSTM)
    assert paths[:, :, 0].std(0).mean() > 0 and paths.std(0).mean() > 0


def test_direct_strategy_forecasts_any_k_block_by_block():
    net = _net(strategy="direct").eval()
    hist, cov = torch.randn(2, 12, 3), torch.randn(2, 12 + 15, 3)
    with torch.no_grad():
        six = net.forecast(hist, 6, cov[:, :18])
        assert six.shape == (2, 6, 3, 1)
        # 15 = 6 + 6 + 3: the first block is the K-step forecast itself
        many = net.forecast(hist, 15, cov)
        assert many.shape == (2, 15, 3, 1)
        assert torch.allclose(many[:, :6], six, atol=1e-6)
        # the second block reads the first block's points as the newest history rows
        hist2 = torch.cat([hist, net.point(six)], dim=1)[:, -12:]
        assert torch.allclose(many[:, 6:12], net.forecast(hist2, 6, cov[:, 6:24]), atol=1e-5)
        # fewer than K: the first steps of a block, the missing covariates the last row's
        two = net.forecast(hist, 2, cov[:, :14])
        padded = torch.cat([cov[:, :14], cov[:, 13:14].expand(-1, 4, -1)], dim=1)
        assert torch.allclose(two, net.forecast(hist, 6, padded)[:, :2], atol=1e-6)
    with pytest.raises(ConfigError, match="sample paths need the autoregressive"):
        net.forecast(hist, 6, cov[:, :18], samples=3)


def test_quantile_head_never_crosses_and_pinball_loss_trains():
    net = _net("quantile").train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    hist, fut, cov = torch.randn(8, 12, 3), torch.randn(8, 6, 3), torch.randn(8, 18, 3)
    first = None
    for _ in range(30):
        p = net(hist, fut, cov)
        loss = forecast_loss(p, fut, net.config)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first
    assert (p[..., 1:] >= p[..., :-1]).all()


def test_shape_errors_name_the_argument():
    net = _net()
    with pytest.raises(ShapeError, match=r"history: expected \(B, N, Z=3\)"):
        net.forecast(torch.randn(2, 12, 4), 3, torch.randn(2, 15, 3))
    with pytest.raises(ShapeError, match=r"future_cov: expected \(B, N\+K, Cf=3\)"):
        net.forecast(torch.randn(2, 12, 3), 3, None)
    with pytest.raises(ShapeError, match="future_cov"):
        net.forecast(torch.randn(2, 12, 3), 3, torch.randn(2, 14, 3))
    with pytest.raises(ConfigError, match="quantiles"):
        ForecasterConfig(n_targets=1, lookback=3, horizon=2, loss="quantile", quantiles=(0.9, 0.1))


def _highway_net(loss="mse", strategy="autoregressive", window_norm="none", p=5):
    cfg = ForecasterConfig(
        n_targets=2,
        n_past=1,
        n_future=2,
        lookback=12,
        horizon=6,
        loss=loss,
        strategy=strategy,
        window_norm=window_norm,
        hidden_size=8,
        num_layers=2,
        highway=p,
    )
    net = ForecasterNet(cfg).eval()
    with torch.no_grad():  # a highway far from zero, so a wrong window would show
        net.highway.weight.normal_()
        net.highway.bias.normal_()
    return net


@pytest.mark.parametrize("loss", ["mse", "gaussian", "quantile"])
@pytest.mark.parametrize("window_norm", ["none", "last"])
def test_highway_teacher_forcing_equals_step_by_step(loss, window_norm):
    net = _highway_net(loss, window_norm=window_norm)
    B, N, K = 3, 12, 6
    hist, fut, cov = torch.randn(B, N, 3), torch.randn(B, K, 3), torch.randn(B, N + K, 2)
    with torch.no_grad():
        forced = net(hist, fut, cov)
        off = net.offset(hist)
        h, f = hist - off, fut - off
        out, state = net.encode(h, cov)
        recent, steps = net.recent(h), []
        for k in range(K):
            steps.append(net.params(out, recent))
            if k < K - 1:
                recent = net.push(recent, f[:, k])
                out, state = net.encoder.step(net.step_inputs(f[:, k], cov[:, N + k + 1]), state)
        stepped = net.unshift(torch.stack(steps, 1), off)
    assert torch.allclose(stepped, forced, atol=1e-5)
    # the highway term really is in there: the same model without it differs
    net.highway = None
    with torch.no_grad():
        assert not torch.allclose(net(hist, fut, cov), forced, atol=1e-3)


def test_highway_with_a_zero_head_is_the_linear_autoregression_fed_its_own_output():
    net = _highway_net(p=4)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
        hist = torch.randn(2, 12, 3)
        pred = net.point(net.forecast(hist, 10, torch.randn(2, 22, 2)))
    # one map per fed column: w (Z, p), b (Z,)
    w, b = net.highway.weight[:, 0].detach(), net.highway.bias[:, 0].detach()
    buf = hist[:, -4:].clone()
    for k in range(10):
        last = buf[:, -1]
        # (B, p, Z) -> (B, Z): last + w_z . (window_z - last_z) + b_z, per series and column
        nxt = last + torch.einsum("bpz,zp->bz", buf - last[:, None], w) + b
        assert torch.allclose(pred[:, k], nxt, atol=1e-5)
        buf = torch.cat([buf[:, 1:], nxt[:, None]], 1)


def test_highway_direct_maps_the_last_p_values_and_a_short_history_is_edge_padded():
    net = _highway_net(strategy="direct", p=8)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
        hist = torch.randn(2, 12, 3)
        got = net.point(net.forecast(hist, 6, torch.randn(2, 18, 2)))
        last = hist[:, -1]
        # (B, Z, p) with each column's (K, p) map -> (B, Z, K) -> (B, K, Z)
        x = (hist[:, -8:] - last[:, None]).transpose(1, 2)
        want = torch.einsum("bzp,zkp->bzk", x, net.highway.weight) + net.highway.bias
        want = want.transpose(1, 2) + last[:, None]
        assert torch.allclose(got, want, atol=1e-5)
        short = torch.randn(2, 3, 3)
        padded = torch.cat([short[:, :1].expand(-1, 5, -1), short], 1)
        assert torch.equal(net.recent(short), padded)


def test_fit_highway_recovers_an_integrated_ar1_process_and_zeroes_the_head():
    from seqshape.models.forecaster import fit_highway

    # z_t = z_{t-1} + 0.5 (z_{t-1} - z_{t-2}) + e_t, i.e. around the newest value:
    # z_t = last + w0 (z_{t-2} - last) with w0 = -0.5 (the highway's form)
    g = torch.Generator().manual_seed(0)
    z = torch.zeros(4000, dtype=torch.float64)
    noise = 0.1 * torch.randn(4000, generator=g, dtype=torch.float64)
    for t in range(2, 4000):
        z[t] = z[t - 1] + 0.5 * (z[t - 1] - z[t - 2]) + noise[t]
    cfg = ForecasterConfig(n_targets=1, lookback=12, horizon=6, hidden_size=8, highway=2)
    net = ForecasterNet(cfg)
    fit_highway(net, [z[:, None].numpy()])
    assert not net.head.weight.detach().any() and not net.head.bias.detach().any()
    w0, w1 = (float(v) for v in net.highway.weight[0, 0].detach())
    assert abs(w0 + 0.5) < 0.05  # the coefficient, recovered
    assert abs(w1) < 1e-6  # the newest value minus itself: always 0, so its weight stays at 0
    assert abs(float(net.highway.bias.detach())) < 0.01
    with pytest.raises(ConfigError, match="no highway"):
        fit_highway(_net(), [z[:, None].numpy()])


# -- the highway's start is a probabilistic model of its residuals ------------------------------


@pytest.mark.parametrize("strategy", ["autoregressive", "direct"])
@pytest.mark.parametrize("loss", ["quantile", "gaussian", "student_t"])
def test_the_highway_start_has_the_residual_spread_not_zero_width_intervals(loss, strategy):
    from seqshape import datasets
    from seqshape.data.series import read_series_csv
    from seqshape.models.forecaster import ForecasterConfig, ForecasterNet, fit_highway

    f = read_series_csv(datasets.path("AirPassengers.csv"), target="#Passengers")
    z = f.target[0].astype(np.float32)
    z = (z - z[:108].mean()) / z[:108].std()
    cfg = ForecasterConfig(
        n_targets=1, lookback=24, horizon=6, highway=13, loss=loss, strategy=strategy,
        quantiles=(0.1, 0.5, 0.9), hidden_size=8, num_layers=1,
    )  # fmt: skip
    net = ForecasterNet(cfg).eval()
    base = fit_highway(net, [z[:108]])
    # every training window: 13 values -> the next (AR) or next 6 (direct) values
    width = 1 if strategy == "autoregressive" else 6
    starts = range(108 - 13 - width + 1)
    x = np.stack([z[s : s + 13] for s in starts])  # (W, 13, 1)
    y = np.stack([z[s + 13 : s + 13 + width] for s in starts])  # (W, width, 1)
    resid = y - base.predict(x)
    hist = torch.from_numpy(x)
    with torch.no_grad():
        p = net.forecast(hist, width)  # (W, width, 1, P)
    point = net.point(p)[..., 0].numpy()
    if loss == "quantile":
        lo, hi = p[..., 0, 0].numpy(), p[..., 0, 2].numpy()
        assert (hi - lo).min() > 0.05  # not the zero-width interval of an all-zero head
        inside = ((y[..., 0] >= lo) & (y[..., 0] <= hi)).mean()
        assert 0.75 <= inside <= 0.85, inside  # the 10-90% band holds ~80% of the training rows
        np.testing.assert_allclose(
            point, (base.predict(x) + np.median(resid, 0))[..., 0], atol=1e-4
        )
    else:
        std = p[..., 0, 1].numpy()
        if loss == "student_t":
            df = p[..., 0, 2].numpy()
            std = std * np.sqrt(df / (df - 2))
        np.testing.assert_allclose(std, np.broadcast_to(resid.std(0)[..., 0], std.shape), rtol=1e-3)
        np.testing.assert_allclose(point, base.predict(x)[..., 0], atol=1e-4)


def test_a_highway_longer_than_the_lookback_is_refused():
    with pytest.raises(ConfigError, match="highway: expected at most lookback=24 values, got 48"):
        ForecasterConfig(n_targets=1, lookback=24, horizon=6, highway=48)
    ForecasterConfig(n_targets=1, lookback=24, horizon=6, highway=24)


def test_fit_highway_fits_each_column_its_own_map():
    from seqshape.models.forecaster import fit_highway

    # two columns with opposite dynamics around their newest value: a shared map fits neither
    g = torch.Generator().manual_seed(1)
    z = torch.zeros(4000, 2, dtype=torch.float64)
    noise = 0.1 * torch.randn(4000, 2, generator=g, dtype=torch.float64)
    for t in range(2, 4000):
        z[t, 0] = z[t - 1, 0] + 0.5 * (z[t - 1, 0] - z[t - 2, 0]) + noise[t, 0]  # w0 = -0.5
        z[t, 1] = z[t - 1, 1] - 0.5 * (z[t - 1, 1] - z[t - 2, 1]) + noise[t, 1]  # w0 = +0.5
    cfg = ForecasterConfig(n_targets=1, n_past=1, lookback=12, horizon=6, hidden_size=8, highway=2)
    net = ForecasterNet(cfg)
    fit_highway(net, [z.numpy()])
    w = net.highway.weight.detach()[:, 0, 0]  # each column's weight on z_{t-2} - last
    assert abs(float(w[0]) + 0.5) < 0.05 and abs(float(w[1]) - 0.5) < 0.05


def test_a_model_saved_with_one_shared_highway_map_loads_with_the_same_forecasts(tmp_path):
    from seqshape.models.forecaster import ColumnHighway

    net = _highway_net(p=4)  # Z = 3 fed columns
    shared_w, shared_b = torch.randn(1, 4), torch.randn(1)
    old = {k: v for k, v in net.state_dict().items()}
    old["highway.weight"], old["highway.bias"] = shared_w, shared_b  # the former layout
    net.load_state_dict(ColumnHighway.upgrade(old, 3))
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
        hist = torch.randn(2, 12, 3)
        pred = net.point(net.forecast(hist, 5, torch.randn(2, 17, 2)))
        buf = hist[:, -4:].clone()
        for k in range(5):
            last = buf[:, -1]
            nxt = last + torch.einsum("bpz,p->bz", buf - last[:, None], shared_w[0]) + shared_b
            assert torch.allclose(pred[:, k], nxt, atol=1e-5)
            buf = torch.cat([buf[:, 1:], nxt[:, None]], 1)
