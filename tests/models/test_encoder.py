"""The variable-length engine: every path gives what running each sequence alone gives."""

import pytest
import torch

from seqshape.errors import ConfigError, ShapeError
from seqshape.models.encoder import (
    EncoderConfig,
    SequenceEncoder,
    gather_last,
    reverse_within_length,
)

LENGTHS = torch.tensor([9, 3, 6, 9, 1, 4])


def _encoder(cell, bi, layers):
    cfg = EncoderConfig(
        input_size=5, hidden_size=7, num_layers=layers, bidirectional=bi, cell=cell, dropout=0.2
    )
    return SequenceEncoder(cfg).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bi", [False, True])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("path", ["padded", "segmented", "packed"])
def test_each_path_equals_running_each_sequence_alone(cell, bi, layers, path):
    enc = _encoder(cell, bi, layers)
    # pad to far beyond the longest sequence
    x = torch.randn(len(LENGTHS), 40, 5)
    out = enc(x, LENGTHS, path=path, need_state=path != "padded")
    for b, n in enumerate(LENGTHS.tolist()):
        alone = enc(x[b : b + 1, :n])
        assert torch.allclose(out.outputs[b, :n], alone.outputs[0], atol=1e-5)
        assert torch.allclose(out.last[b], alone.last[0], atol=1e-5)
        assert out.outputs[b, n:].abs().max().item() == 0.0 if n < 40 else True
        if out.state is not None:
            for s, a in zip(out.state, alone.state):
                assert torch.allclose(s[:, b], a[:, 0], atol=1e-5)


def test_padded_h_n_would_be_wrong_and_the_engine_does_not_use_it():
    """The trap this engine exists for: nn.LSTM's h_n on a padded batch is the post-padding state."""
    enc = _encoder("lstm", False, 1)
    x = torch.randn(len(LENGTHS), 40, 5)
    x = x * (torch.arange(40)[None, :, None] < LENGTHS[:, None, None])
    _, (h_n, _) = enc.layers[0]["fwd"](x)
    right = enc(x, LENGTHS).last
    assert (h_n[0] - right).abs().max().item() > 1e-3


def test_segmented_path_backpropagates_like_separate_runs():
    enc = _encoder("lstm", True, 2)
    x = torch.randn(len(LENGTHS), 12, 5, requires_grad=True)
    out = enc(x, LENGTHS, path="segmented", need_state=True)
    (out.last.sum() + out.state[1].sum()).backward()
    g_batch = x.grad.clone()
    x.grad = None
    total = 0
    for b, n in enumerate(LENGTHS.tolist()):
        alone = enc(x[b : b + 1, :n])
        total = total + alone.last.sum() + alone.state[1].sum()
    total.backward()
    assert torch.allclose(g_batch, x.grad, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_by_step_equals_full_pass(cell):
    enc = _encoder(cell, False, 2)
    x = torch.randn(3, 15, 5)
    state = enc.init_state(3)
    outs = []
    for t in range(15):
        h, state = enc.step(x[:, t], state)
        outs.append(h)
    full = enc(x)
    assert torch.allclose(torch.stack(outs, 1), full.outputs, atol=1e-5)
    for a, b in zip(state, full.state):
        assert torch.allclose(a, b, atol=1e-5)


def test_reverse_within_length_is_an_involution_and_keeps_padding_last():
    x = torch.arange(2 * 5, dtype=torch.float32).view(2, 5, 1)
    r = reverse_within_length(x, torch.tensor([3, 5]))
    assert r[0, :, 0].tolist() == [2.0, 1.0, 0.0, 3.0, 4.0]
    assert r[1, :, 0].tolist() == [9.0, 8.0, 7.0, 6.0, 5.0]
    assert torch.equal(reverse_within_length(r, torch.tensor([3, 5])), x)
    assert gather_last(x, torch.tensor([3, 5]))[:, 0].tolist() == [2.0, 9.0]


def test_shape_errors_name_the_argument_and_hint():
    enc = _encoder("lstm", False, 1)
    with pytest.raises(
        ShapeError, match=r"x: expected \(B, T, F=5\), got \(4, 5, 30\) — is the time axis second"
    ):
        enc(torch.randn(4, 5, 30))
    with pytest.raises(ShapeError, match=r"without its batch axis"):
        enc(torch.randn(30, 5))
    with pytest.raises(ShapeError, match=r"lengths: expected values in \[1, T=6\]"):
        enc(torch.randn(2, 6, 5), torch.tensor([7, 2]))
    with pytest.raises(ConfigError, match="cannot run one step"):
        _encoder("lstm", True, 1).step(torch.randn(2, 5), None)
    with pytest.raises(ConfigError, match="encoder.cell"):
        EncoderConfig(input_size=3, cell="rnn")
