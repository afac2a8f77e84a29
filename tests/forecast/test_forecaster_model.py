"""The forecaster's invariants: teacher forcing == step-by-step, K cell steps for K steps, any K."""

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


def test_direct_strategy_emits_its_horizon_and_refuses_other_k():
    net = _net(strategy="direct")
    hist, cov = torch.randn(2, 12, 3), torch.randn(2, 18, 3)
    with torch.no_grad():
        assert net.forecast(hist, 6, cov).shape == (2, 6, 3, 1)
    with pytest.raises(ShapeError, match="direct strategy emits exactly K=6"):
        net.forecast(hist, 7, torch.randn(2, 19, 3))


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
