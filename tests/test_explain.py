"""`explain` against real forward passes: every stage's shape is asserted against the tensors the
model itself produces (computed here, independently), for each shape mode; then JSON, the CLI in a
subprocess (table, JSON, a trained model directory, errors) and the PNG."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from seqshape import SequenceClassifier, datasets
from seqshape.explain import EXPLAINERS, ExplainOptions, explain, explain_mode
from seqshape.models.classifier import ClassifierConfig, ClassifierNet
from seqshape.models.forecaster import ForecasterConfig, ForecasterNet
from seqshape.models.generator import GeneratorConfig, GeneratorNet
from seqshape.models.seq2seq import Seq2SeqConfig, Seq2SeqNet
from seqshape.models.tagger import TaggerConfig, TaggerNet

ENV = {**os.environ, "SEQSHAPE_THREADS": "1", "OMP_NUM_THREADS": "1"}
LENGTHS = [9, 4, 6]


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "seqshape", "explain", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )


def shapes(e) -> dict[str, tuple[int, ...]]:
    return {s.name: s.shape for s in e.stages}


def padded(lengths, F, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), F, generator=g)
    for i, n in enumerate(lengths):
        x[i, n:] = 0
    return x, torch.tensor(lengths)


def check_common(e, net):
    """Letters agree with numbers; parameters add up to the model's; memory is the listed tensors."""
    for s in e.stages:
        assert len(s.axes) == len(s.shape), s
        for axis, n in zip(s.axes, s.shape):
            if axis in e.sizes:
                assert e.sizes[axis] == n, (s.name, axis)
    total = sum(p.numel() for p in net.parameters())
    assert e.total_parameters == total
    assert sum(s.params for s in e.stages) == total  # every module counted once, none missed
    assert sum(e.parameters.values()) == total
    assert 0 < e.activation_bytes <= sum(s.nbytes for s in e.stages)
    assert e.training_saved_bytes > 0
    json.dumps(e.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    "pooling,bidirectional,layers,cell",
    [("last", True, 2, "lstm"), ("attention", False, 1, "lstm"), ("mean", True, 1, "gru")],
)
def test_classify_matches_the_forward_pass(pooling, bidirectional, layers, cell):
    cfg = ClassifierConfig(
        input_size=5,
        num_outputs=4,
        hidden_size=7,
        num_layers=layers,
        bidirectional=bidirectional,
        pooling=pooling,
        cell=cell,
    )
    net = ClassifierNet(cfg).eval()
    x, lengths = padded(LENGTHS, 5)
    rng = torch.get_rng_state()
    e = explain(net, (x, lengths))
    assert torch.equal(torch.get_rng_state(), rng)  # explain leaves the global RNG alone
    assert "step" not in vars(net.encoder)  # nothing left patched
    with torch.no_grad():
        logits = net(x, lengths)
        enc = net.encoder(x, lengths, need_state=True)
    got = shapes(e)
    assert got["x"] == tuple(x.shape) == (3, 9, 5)
    assert got["lengths"] == (3,) and e.lengths == tuple(LENGTHS)
    assert got["mask"] == tuple(enc.mask.shape)
    assert got["outputs"] == tuple(enc.outputs.shape)
    assert got["h_n"] == tuple(enc.state[0].shape) == (layers * (2 if bidirectional else 1), 3, 7)
    assert ("c_n" in got) == (cell == "lstm")
    assert got["last"] == tuple(enc.last.shape)
    assert got["logits"] == tuple(logits.shape) == (3, 4)
    if pooling == "attention":
        assert got["attention weights"] == (3, 9)
    # the claim about which slice of h_n is the last layer holds on these tensors
    D = 2 if bidirectional else 1
    assert torch.allclose(torch.cat(list(enc.state[0][-D:]), dim=-1), enc.last, atol=1e-6)
    assert f"h_n[-{D}" in e.stage("h_n").meaning if D == 2 else "h_n[-1]" in e.stage("h_n").meaning
    check_common(e, net)
    assert e.stage("outputs").params == sum(p.numel() for p in net.encoder.parameters())


def test_padded_hn_note_is_the_measured_drift():
    """The note's number is what nn.LSTM's own h_n on the padded batch gets wrong."""
    net = ClassifierNet(ClassifierConfig(input_size=5, num_outputs=3, hidden_size=6)).eval()
    x, lengths = padded(LENGTHS, 5)
    e = explain(net, (x, lengths))
    with torch.no_grad():
        _, (h_n, _) = net.encoder.layers[0]["fwd"](x)  # the plain nn.LSTM, no packing
        true = net.encoder(x, lengths, need_state=True).state[0]
    short = lengths < 9
    drift = float((h_n[-1, short] - true[-1, short]).abs().max())
    note = next(n for n in e.notes if "padded-h_n" in n)
    quoted = float(re.search(r"up to ([0-9.e+-]+)\.", note).group(1))
    assert drift > 1e-3 and quoted == pytest.approx(drift, rel=1e-2)
    # equal lengths: nothing to warn about
    assert not any("padded-h_n" in n for n in explain(net, (x, None)).notes)


def test_tag_matches_the_forward_pass():
    net = TaggerNet(TaggerConfig(input_size=3, num_outputs=5, hidden_size=4)).eval()
    x, lengths = padded(LENGTHS, 3)
    e = explain(net, (x, lengths))
    with torch.no_grad():
        out = net(x, lengths)
    assert shapes(e)["logits"] == tuple(out.shape) == (3, 9, 5)
    assert shapes(e)["outputs"] == (3, 9, 8)  # bidirectional by default: D·H
    n_pad = 3 * 9 - sum(LENGTHS)
    assert f"the {n_pad} padded step(s)" in e.stage("logits").meaning
    check_common(e, net)


@pytest.mark.parametrize("strategy", ["autoregressive", "direct"])
def test_forecast_matches_the_forward_pass_and_counts_cell_steps(strategy):
    cfg = ForecasterConfig(
        n_targets=2,
        n_past=1,
        n_future=2,
        lookback=6,
        horizon=4,
        hidden_size=5,
        num_layers=2,
        strategy=strategy,
        loss="gaussian",
    )
    net = ForecasterNet(cfg).eval()
    g = torch.Generator().manual_seed(0)
    history, cov = torch.randn(3, 6, 3, generator=g), torch.randn(3, 10, 2, generator=g)
    e = explain(net, (history, cov))
    with torch.no_grad():
        params = net.forecast(history, 4, cov)
        _, state = net.encode(history, cov)
    got = shapes(e)
    assert got["forecast"] == tuple(params.shape) == (3, 4, 3, 2)
    assert got["history"] == (3, 6, 3) and got["future_cov"] == (3, 10, 2)
    assert got["LSTM inputs"] == (3, 6, 5)  # O + C + C_f
    assert e.sizes["K"] == 4 and e.sizes["P"] == 2
    if strategy == "autoregressive":
        assert got["h_n"] == tuple(state[0].shape) == (2, 3, 5)
        assert got["fed back (step input)"] == (3, 5)
        assert "3 cell steps for K=4" in e.stage("cell step output").meaning  # K - 1
    check_common(e, net)


def test_forecast_any_horizon_on_a_dummy_batch():
    net = ForecasterNet(ForecasterConfig(n_targets=1, lookback=8, horizon=3, hidden_size=4))
    e = explain(net, horizon=11, batch=2)
    assert shapes(e)["forecast"] == tuple(net.forecast(torch.zeros(2, 8, 1), 11).shape)
    assert any("10 cell steps (K-1) for K=11" in n for n in e.notes)


@pytest.mark.parametrize("tokens", [True, False])
def test_seq2seq_matches_the_forward_pass(tokens):
    if tokens:
        cfg = Seq2SeqConfig(
            source_vocab_size=13,
            target_vocab_size=11,
            embedding_size=4,
            hidden_size=5,
            num_layers=2,
            decoder_hidden_size=7,
            attention="additive",
        )
        src = torch.randint(4, 13, (3, 9))
        target = torch.randint(4, 11, (3, 6))
    else:
        cfg = Seq2SeqConfig(source_features=3, target_features=2, hidden_size=5, attention="dot")
        src, target = padded(LENGTHS, 3)[0], torch.randn(3, 6, 2)
    net = Seq2SeqNet(cfg).eval()
    lengths = torch.tensor(LENGTHS)
    e = explain(net, (src, lengths, target))
    with torch.no_grad():
        out = net(src, lengths, target)
        memory = net.encode(src, lengths)
        enc = net.encoder(net._source_inputs(src), lengths, need_state=True)
    got = shapes(e)
    assert got["outputs"] == tuple(out.outputs.shape) == (3, 6, 11 if tokens else 2)
    assert got["attention weights"] == tuple(out.attention.shape) == (3, 6, 9)  # (B, U, S)
    assert got["keys (encoder outputs)"] == tuple(memory.keys.shape)
    assert got["encoder h_n"] == tuple(enc.state[0].shape)
    assert got["decoder initial h"] == tuple(memory.state[0].shape)
    assert ("stop logits" in got) == (not tokens)
    if not tokens:
        assert got["stop logits"] == tuple(out.stop.shape)
    assert "6 decoder cell steps" in e.stage("decoder step output").meaning or tokens
    check_common(e, net)


@pytest.mark.parametrize("tokens", [True, False])
def test_generate_matches_the_forward_pass(tokens):
    if tokens:
        cfg = GeneratorConfig(input_size=3, target_vocab_size=9, embedding_size=4, hidden_size=6)
        target = torch.randint(4, 9, (2, 5))
    else:
        cfg = GeneratorConfig(input_size=3, target_features=2, hidden_size=6, num_layers=2)
        target = torch.randn(2, 5, 2)
    net = GeneratorNet(cfg).eval()
    static = torch.randn(2, 3)
    e = explain(net, (static, target))
    with torch.no_grad():
        out = net(static, target)
        state = net.initial_state(static)
    got = shapes(e)
    assert got["outputs"] == tuple(out.outputs.shape)
    assert got["decoder initial h"] == tuple(state[0].shape)
    assert got["static"] == (2, 3)
    check_common(e, net)


@pytest.mark.parametrize("mode", sorted(EXPLAINERS))
def test_every_mode_explains_a_fresh_model(mode):
    seq = mode in ("classify", "tag", "seq2seq")
    opts = ExplainOptions(hidden=4, lengths=(5, 2, 4) if seq else None)
    e = explain_mode(mode, opts)
    assert e.mode == mode and e.stages and e.total_parameters > 0
    if seq:
        assert e.lengths == (5, 2, 4)
    assert str(e).startswith(f"seqshape explain: {mode}")


def test_options_are_checked():
    with pytest.raises(Exception, match="--lengths: gives 3 sequences but --batch is 2"):
        ExplainOptions(lengths=(3, 2, 1), batch=2)
    with pytest.raises(Exception, match="forecast windows all have one length"):
        explain_mode("forecast", ExplainOptions(lengths=(5, 3)))
    with pytest.raises(Exception, match="mode: expected one of"):
        explain_mode("sideways")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    train = datasets.load_japanese_vowels("train")
    clf = SequenceClassifier(epochs=1, hidden_size=6, val_fraction=0.0, seed=0, threads=1)
    clf.fit(train.X[:60], train.y[:60])
    path = tmp_path_factory.mktemp("explain") / "model"
    clf.save(path)
    return clf, path


def test_the_python_twin_on_real_sequences(trained):
    clf, _ = trained
    test = datasets.load_japanese_vowels("test")
    X = test.X[:4]
    e = clf.explain(X)
    T = max(len(a) for a in X)
    assert shapes(e)["x"] == (4, T, 12)
    assert e.lengths == tuple(len(a) for a in X)
    assert shapes(e)["logits"] == clf.predict_proba(X).shape
    assert e.sizes["N"] == len(clf.classes_)


def test_cli_table_json_and_plot(tmp_path):
    png = tmp_path / "explain.png"
    p = cli("classify", "--lengths", "20,7,13", "--bidirectional", "--hidden", "8", "--plot", png)
    assert p.returncode == 0, p.stderr
    assert "(B=3, T=20, F=5)" in p.stdout and "[20, 7, 13]" in p.stdout
    assert "(L·D=2, B=3, H=8)" in p.stdout and "h_n[-2] forward, h_n[-1] backward" in p.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(png).shape[0] > 200


def test_cli_json(capsys):
    """The same entry point in process: JSON that matches the options' shapes."""
    from seqshape.cli import main

    args = ["seq2seq", "--input-size", "4", "--output-size", "2", "--lengths", "7,3"]
    assert main(["explain", *args, "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    got = {s["name"]: s["shape"] for s in d["stages"]}
    assert got["src"] == [2, 7, 4] and got["attention weights"] == [2, 8, 7]
    assert got["outputs"] == [2, 8, 2]
    assert d["parameters"]["total"] == sum(d["parameters"]["by_module"].values())
    assert d["legend"]["U"] == "target steps"


def test_cli_model_directory_and_errors(trained, tmp_path):
    clf, path = trained
    p = cli(path, "--lengths", "29,7", "--format", "json")
    assert p.returncode == 0, p.stderr
    got = {s["name"]: s["shape"] for s in json.loads(p.stdout)["stages"]}
    assert got["x"] == [2, 29, 12] and got["logits"] == [2, len(clf.classes_)]


@pytest.mark.parametrize(
    "args,message",
    [
        (("MODEL", "--hidden", "3"), "--hidden: "),
        (("nowhere",), "expected a mode"),
        (("forecast", "--classes", "3"), "--classes: not used by mode forecast"),
        (("classify", "--lengths", "7,x"), "--lengths: expected comma-separated"),
        (("classify", "--format", "xml"), "--format: expected table or json"),
    ],
)
def test_cli_user_errors_are_one_line_exit_2(trained, capsys, args, message):
    """The CLI's own entry point, in process (the subprocess runs above cover the wiring)."""
    from seqshape.cli import main

    args = [str(trained[1]) if a == "MODEL" else a for a in args]
    assert main(["explain", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_explain_does_not_change_the_model(trained):
    clf, _ = trained
    X = datasets.load_japanese_vowels("test").X[:5]
    before = clf.predict_proba(X)
    clf.net.train()
    clf.explain(X)
    assert clf.net.training  # the mode is restored
    clf.net.eval()
    assert np.array_equal(clf.predict_proba(X), before)


@pytest.mark.parametrize("mode", sorted(EXPLAINERS))
def test_every_kind_of_model_directory_loads(mode, tmp_path):
    """A directory written the way the APIs write theirs (config.to_dict() + weights)."""
    from seqshape.artifacts import save_model_dir
    from seqshape.explain import explain_model_dir

    ex = EXPLAINERS[mode]
    net = ex.build(ExplainOptions(hidden=4))
    save_model_dir(
        tmp_path / "m",
        kind=ex.kind,
        config=net.config.to_dict(),
        state_dict=net.state_dict(),
        preprocessing={},
    )
    e = explain_model_dir(tmp_path / "m", ExplainOptions(batch=2))
    fresh = explain(net, batch=2)
    assert [(s.name, s.shape) for s in e.stages] == [(s.name, s.shape) for s in fresh.stages]
    assert e.total_parameters == fresh.total_parameters
