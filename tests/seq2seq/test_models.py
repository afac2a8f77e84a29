"""Seq2seq, aligned tagging and one-to-many: the invariants, round trips and small real tasks.

Real data: CMUdict words (grapheme -> phoneme), ETTh1 windows (values -> values, F != O, S != U),
JapaneseVowels (per-frame speaker tags), ETTh1 days (static vector -> a 24-hour profile).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from seqshape import datasets
from seqshape.api.generator import SequenceGenerator
from seqshape.api.seq2seq import Seq2Seq, split_indices
from seqshape.api.tagger import SequenceTagger, read_step_csv
from seqshape.data.pairs import read_cmudict, split_by_source
from seqshape.data.vocab import BOS_ID, EOS_ID
from seqshape.errors import ArtifactError, ConfigError, DataError, ShapeError
from seqshape.models.generator import GeneratorConfig, GeneratorNet
from seqshape.models.search import beam_search, greedy_decode
from seqshape.models.seq2seq import Seq2SeqConfig, Seq2SeqNet, sequence_loss
from seqshape.models.tagger import TaggerConfig, TaggerNet, tagger_loss

ATTENTIONS = ["none", "additive", "general", "dot"]
SRC_LENGTHS = torch.tensor([7, 2, 5, 7, 1])


def _net(attention="general", bidirectional=True, layers=2, **kw) -> Seq2SeqNet:
    cfg = Seq2SeqConfig(
        source_vocab_size=kw.pop("source_vocab_size", 11),
        target_vocab_size=kw.pop("target_vocab_size", 9),
        embedding_size=6,
        hidden_size=8,
        num_layers=layers,
        bidirectional=bidirectional,
        decoder_hidden_size=0 if attention == "dot" else 10,
        attention=attention,
        dropout=0.3,
        **kw,
    )
    return Seq2SeqNet(cfg).eval()


def _src(lengths=SRC_LENGTHS, vocab=11):
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, vocab, (len(lengths), int(lengths.max()) + 3), generator=g)
    # (B, S): PAD after each length
    return src.masked_fill(torch.arange(src.shape[1])[None] >= lengths[:, None], 0)


@pytest.fixture(scope="module")
def cmu(shared_data):
    pairs = read_cmudict(shared_data / "seq2seq/cmudict/cmudict.dict", strip_stress=True)
    train, test = split_by_source(pairs, (0.9, 0.1), seed=0)
    return train.subset(range(600)), test.subset(range(120))


@pytest.fixture(scope="module")
def g2p(cmu):
    train, _ = cmu
    # a 4-epoch run: the plateau schedule, unsmoothed (the defaults are a long run's recipe)
    return Seq2Seq(
        hidden_size=32,
        embedding_size=16,
        epochs=4,
        batch_size=32,
        lr=1e-2,
        dropout=0.0,
        lr_schedule="plateau",
        label_smoothing=0.0,
        patience=5,
    ).fit(train)


# -- the decoder's two paths agree ------------------------------------------------------------
@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_teacher_forced_logits_equal_step_by_step_logits(attention, bidirectional):
    net = _net(attention, bidirectional)
    src = _src()
    target = torch.randint(3, 9, (len(SRC_LENGTHS), 6))
    forced = net(src, SRC_LENGTHS, target)
    state = net.initial_step_state(net.encode(src, SRC_LENGTHS))
    prev = net.start_input(len(SRC_LENGTHS))
    steps, weights = [], []
    for u in range(target.shape[1]):
        out, _, w, state = net.step(prev, state)
        steps.append(out)
        weights.append(w)
        prev = target[:, u]  # the same previous tokens the teacher-forced pass saw
    # U x (B, V) -> (B, U, V)
    assert (torch.stack(steps, 1) - forced.outputs).abs().max().item() <= 1e-5
    if attention != "none":
        assert (torch.stack(weights, 1) - forced.attention).abs().max().item() <= 1e-5


def test_values_decoder_paths_agree_with_f_ne_o():
    cfg = Seq2SeqConfig(source_features=5, target_features=2, hidden_size=8, num_layers=2)
    net = Seq2SeqNet(cfg).eval()
    x = torch.randn(3, 9, 5)
    lengths = torch.tensor([9, 4, 6])
    y = torch.randn(3, 4, 2)
    forced = net(x, lengths, y)
    assert forced.outputs.shape == (3, 4, 2) and forced.stop.shape == (3, 4)
    state = net.initial_step_state(net.encode(x, lengths))
    prev = net.start_input(3)
    outs, stops = [], []
    for u in range(4):
        out, stop, _, state = net.step(prev, state)
        outs.append(out)
        stops.append(stop)
        prev = y[:, u]
    assert (torch.stack(outs, 1) - forced.outputs).abs().max().item() <= 1e-5
    assert (torch.stack(stops, 1) - forced.stop).abs().max().item() <= 1e-5


def test_scheduled_sampling_with_ratio_one_is_teacher_forcing():
    net = _net("additive")
    src = _src()
    target = torch.randint(3, 9, (len(SRC_LENGTHS), 5))
    memory = net.encode(src, SRC_LENGTHS)
    sampled = net.decode_sampled(memory, target, 1.0)
    forced = net.decode_teacher_forced(memory, target)
    assert (sampled.outputs - forced.outputs).abs().max().item() <= 1e-5


@pytest.mark.parametrize("kind", ["tokens", "values"])
def test_generator_teacher_forced_equals_step_by_step(kind):
    vocab = {"target_vocab_size": 10} if kind == "tokens" else {"target_features": 3}
    net = GeneratorNet(GeneratorConfig(input_size=4, num_layers=2, hidden_size=8, **vocab)).eval()
    static = torch.randn(3, 4)
    target = torch.randint(3, 10, (3, 5)) if kind == "tokens" else torch.randn(3, 5, 3)
    forced = net(static, target)
    state = net.initial_step_state(static)
    prev = net.start_input(3)
    outs = []
    for u in range(5):
        out, _, state = net.step(prev, state)
        outs.append(out)
        prev = target[:, u]
    assert (torch.stack(outs, 1) - forced.outputs).abs().max().item() <= 1e-5


# -- decoding ---------------------------------------------------------------------------------
def test_beam_size_one_equals_greedy_on_a_trained_g2p_model(g2p, cmu):
    _, test = cmu
    words = test.sources[:40]
    x, lengths = g2p.source.pad(g2p.source.encode(words, eos=False))
    net = g2p.net
    state = net.initial_step_state(net.encode(x, lengths))
    greedy = greedy_decode(net.log_prob_step, state, len(words), BOS_ID, EOS_ID, 30)
    beam1 = beam_search(net.log_prob_step, state, len(words), BOS_ID, EOS_ID, 30, beam_size=1)
    assert torch.equal(greedy[0], beam1[0]) and torch.equal(greedy[1], beam1[1])
    assert torch.allclose(greedy[2], beam1[2], atol=1e-6)
    assert g2p.predict(words, beam_size=1) == [g2p.target.vocab.decode(r) for r in greedy[0]]


def test_beam_search_returns_sequences_at_least_as_likely_as_greedy(g2p, cmu):
    _, test = cmu
    words = test.sources[:40]
    x, lengths = g2p.source.pad(g2p.source.encode(words, eos=False))
    _, _, greedy_scores, _ = g2p.net.generate_tokens(x, lengths, max_len=30)
    _, _, beam_scores, _ = g2p.net.generate_tokens(
        x, lengths, max_len=30, beam_size=5, length_penalty=0.0
    )
    # with no length normalisation a 5-wide beam keeps the greedy path unless it found better
    assert (beam_scores >= greedy_scores - 1e-4).all()


def test_g2p_learns_something_real(g2p, cmu):
    _, test = cmu
    result = g2p.evaluate(test)
    # 600 words, 4 epochs: far from the full-data figure, but far from chance too
    assert result["token_error_rate"] < 0.6
    assert set(result) >= {"exact_match", "wer", "token_error_rate", "bleu", "n", "n_pairs"}
    assert result["n"] == len({tuple(s) for s in test.sources})
    assert result["wer"] == pytest.approx(1 - result["exact_match"])


# -- padding never changes an answer ----------------------------------------------------------
@pytest.mark.parametrize("attention", ["none", "additive"])
def test_source_padding_does_not_change_outputs(attention):
    net = _net(attention)
    src = _src()
    target = torch.randint(3, 9, (len(SRC_LENGTHS), 4))
    batch = net(src, SRC_LENGTHS, target).outputs
    tokens, _, _, _ = net.generate_tokens(src, SRC_LENGTHS, max_len=6, beam_size=3)
    for b, n in enumerate(SRC_LENGTHS.tolist()):
        alone = net(src[b : b + 1, :n], None, target[b : b + 1]).outputs
        assert (batch[b] - alone[0]).abs().max().item() <= 1e-5
        tok_alone, _, _, _ = net.generate_tokens(src[b : b + 1, :n], None, max_len=6, beam_size=3)
        assert tokens[b, : tok_alone.shape[1]].tolist() == tok_alone[0].tolist()


@pytest.mark.parametrize("attention", ["additive", "general", "dot"])
def test_source_padding_gets_exactly_zero_attention(attention):
    net = _net(attention)
    src = _src()
    out = net(src, SRC_LENGTHS, torch.randint(3, 9, (len(SRC_LENGTHS), 4)))
    for b, n in enumerate(SRC_LENGTHS.tolist()):
        assert out.attention[b, :, n:].abs().max().item() == 0.0 if n < src.shape[1] else True
        assert torch.allclose(out.attention[b].sum(-1), torch.ones(4), atol=1e-6)


def test_api_attention_weights_cover_each_source_and_sum_to_one(g2p, cmu):
    _, test = cmu
    words = test.sources[:10]
    preds, attn = g2p.predict_with_attention(words)
    for w, p, a in zip(words, preds, attn, strict=True):
        assert a.shape[1] == len(w)
        assert a.shape[0] in (len(p), len(p) + 1)  # + the EOS step when one was produced
        np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-5)


def test_sequence_loss_ignores_target_padding():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    target = torch.tensor([[4, 5, 2, 0, 0], [6, 4, 5, 6, 2]])
    loss = sequence_loss(logits, None, target, torch.tensor([3, 5]))
    logits2 = logits.clone()
    logits2[0, 3:] = 100.0  # garbage on padded steps
    assert sequence_loss(logits2, None, target, torch.tensor([3, 5])) == loss
    # values: padded steps and their stop logits do not count either
    values, stop = torch.randn(2, 5, 3), torch.randn(2, 5)
    y = torch.randn(2, 5, 3)
    lengths = torch.tensor([2, 5])
    v2, s2, y2 = values.clone(), stop.clone(), y.clone()
    v2[0, 2:], s2[0, 2:], y2[0, 2:] = 50.0, -50.0, -9.0
    a = sequence_loss(values, stop, y, lengths)
    assert torch.allclose(a, sequence_loss(v2, s2, y2, lengths))


# -- continuous seq2seq on a real series: F != O, S != U --------------------------------------
@pytest.fixture(scope="module")
def ett(shared_data):
    df = pd.read_csv(shared_data / "forecasting/ETTh1.csv")
    return df[["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]].to_numpy(np.float32)[:4000]


def _windows(a, lo, hi, n, rng):
    X, Y = [], []
    for _ in range(n):
        S = int(rng.integers(24, 49))  # variable source length
        t = int(rng.integers(lo + S, hi - 12))
        X.append(a[t - S : t])  # (S, F=7): all seven columns
        Y.append(a[t : t + 12, [0, 6]])  # (U=12, O=2): the next 12 hours of HUFL and OT
    return X, Y


def test_continuous_seq2seq_on_etth1_windows(ett, tmp_path):
    rng = np.random.default_rng(0)
    Xtr, Ytr = _windows(ett, 0, 3000, 400, rng)
    Xte, Yte = _windows(ett, 3000, 4000, 100, rng)
    model = Seq2Seq(
        hidden_size=32, attention="general", epochs=15, batch_size=32, lr=1e-2, patience=5
    ).fit(Xtr, Ytr)
    preds = model.predict(Xte)
    assert all(p.shape == (12, 2) for p in preds)  # U = 12 though S varies from 24 to 48
    result = model.evaluate(Xte, Yte)
    flat = np.concatenate(Ytr).mean(0)
    mean_mae = float(np.mean([np.abs(y - flat).mean() for y in Yte]))
    assert result["mae"] < 0.5 * mean_mae  # reads the source, not just the average
    _, attn = model.predict_with_attention(Xte[:3])
    for x, a in zip(Xte[:3], attn, strict=True):
        assert a.shape == (12, len(x))
    model.save(tmp_path / "ett")
    again = Seq2Seq.load(tmp_path / "ett")
    for p, q in zip(model.predict(Xte[:10]), again.predict(Xte[:10]), strict=True):
        np.testing.assert_array_equal(p, q)


def test_values_to_tokens_and_variable_length_values():
    """Continuous -> tokens, and value targets of varying length ended by the stop head."""
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(int(rng.integers(3, 8)), 2)).astype(np.float32) for _ in range(60)]
    words = [["up" if x[:, 0].mean() > 0 else "down"] for x in X]
    model = Seq2Seq(hidden_size=16, epochs=30, batch_size=16, lr=1e-2, val_fraction=0).fit(X, words)
    assert model.evaluate(X, words)["exact_match"] > 0.8
    ramps = [np.arange(len(x), dtype=np.float32)[:, None] for x in X]  # U_i = S_i, O = 1
    model = Seq2Seq(hidden_size=16, epochs=40, batch_size=16, lr=1e-2, val_fraction=0).fit(X, ramps)
    lengths = [len(p) for p in model.predict(X)]
    assert np.mean([a == len(x) for a, x in zip(lengths, X, strict=True)]) > 0.8


# -- the aligned tagger -----------------------------------------------------------------------
def test_tagger_loss_ignores_padding():
    torch.manual_seed(0)
    out = torch.randn(3, 6, 4)
    target = torch.randint(0, 4, (3, 6))
    lengths = torch.tensor([6, 2, 4])
    loss = tagger_loss(out, target, lengths, "classification")
    # the same loss from the valid steps alone, concatenated
    valid = torch.cat([out[b, :n] for b, n in enumerate(lengths.tolist())])
    labels = torch.cat([target[b, :n] for b, n in enumerate(lengths.tolist())])
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(valid, labels))
    out2, target2 = out.clone(), target.clone()
    out2[1, 2:], target2[1, 2:] = 99.0, 3
    assert torch.allclose(loss, tagger_loss(out2, target2, lengths, "classification"))
    values, y = torch.randn(3, 6, 2), torch.randn(3, 6, 2)
    reg = tagger_loss(values, y, lengths, "regression")
    v2 = values.clone()
    v2[2, 4:] = 1e3
    assert torch.allclose(reg, tagger_loss(v2, y, lengths, "regression"))


def test_tagger_outputs_do_not_depend_on_padding():
    net = TaggerNet(TaggerConfig(input_size=3, num_outputs=4, num_layers=2)).eval()
    x = torch.randn(5, 10, 3)
    batch = net(x, SRC_LENGTHS)
    for b, n in enumerate(SRC_LENGTHS.tolist()):
        assert (batch[b, :n] - net(x[b : b + 1, :n])[0]).abs().max().item() <= 1e-5


@pytest.fixture(scope="module")
def vowels():
    train = datasets.load_japanese_vowels("train")
    test = datasets.load_japanese_vowels("test")
    # every frame is labelled with the utterance's speaker: a per-step task on real data
    tags = lambda s: [np.full(len(x), y, dtype=object) for x, y in zip(s.X, s.y, strict=True)]  # noqa: E731
    return train.X, tags(train), test.X[:150], tags(test)[:150]


def test_tagger_on_japanese_vowels_frames_and_round_trip(vowels, tmp_path):
    Xtr, Ytr, Xte, Yte = vowels
    tagger = SequenceTagger(hidden_size=32, epochs=12, batch_size=16, lr=1e-2).fit(Xtr, Ytr)
    result = tagger.evaluate(Xte, Yte)
    assert result["accuracy"] > 0.7  # 9 speakers: chance is ~0.11
    assert result["n_steps"] == sum(len(x) for x in Xte) and result["n"] == len(Xte)
    pred = tagger.predict(Xte[:5])
    assert [len(p) for p in pred] == [len(x) for x in Xte[:5]]
    proba = tagger.predict_proba(Xte[:5])
    assert all(np.allclose(p.sum(1), 1.0, atol=1e-5) for p in proba)
    tagger.save(tmp_path / "tag")
    again = SequenceTagger.load(tmp_path / "tag")
    for a, b in zip(proba, again.predict_proba(Xte[:5]), strict=True):
        np.testing.assert_array_equal(a, b)
    # the metrics see valid steps only: one sequence scored alone equals its share in a batch
    alone = tagger.evaluate(Xte[:1], Yte[:1])["accuracy"]
    hits = np.mean(tagger.predict(Xte[:1])[0] == Yte[0])
    assert alone == pytest.approx(hits)


def test_tagger_regression_and_errors(ett):
    # per-hour OT from the six load columns, in day-long sequences of varying length
    rng = np.random.default_rng(0)
    cuts = np.cumsum(rng.integers(12, 36, size=80))
    X = np.split(ett[: cuts[-1], :6], cuts[:-1])
    Y = np.split(ett[: cuts[-1], 6], cuts[:-1])
    tagger = SequenceTagger(task="regression", hidden_size=16, epochs=5, lr=1e-2).fit(X, Y)
    result = tagger.evaluate(X, Y)
    assert (
        result["n_steps"] == cuts[-1]
        and result["mae"] < np.abs(ett[:, 6] - ett[:, 6].mean()).mean()
    )
    with pytest.raises(
        ShapeError, match=r"Y\[1\]: expected \d+ targets \(one per step of X\[1\]\)"
    ):
        tagger.evaluate(X[:2], [Y[0], Y[1][:-1]])
    with pytest.raises(ShapeError, match="a single sequence"):
        tagger.predict(X[0])


def test_read_step_csv_and_its_errors(tmp_path):
    path = tmp_path / "steps.csv"
    path.write_text("sequence_id,step,a,b,label\ns1,1,0.5,1,x\ns1,0,0.1,2,y\ns2,0,3,4,x\n")
    table = read_step_csv(path, targets=["label"])
    assert table.ids == ["s1", "s2"] and table.feature_names == ["a", "b"]
    np.testing.assert_allclose(table.features[0], [[0.1, 2], [0.5, 1]])  # sorted by step
    assert table.targets[0].tolist() == ["y", "x"]
    path.write_text("sequence_id,step,a,label\ns1,0,0.5,x\ns1,1,abc,y\n")
    with pytest.raises(DataError, match=r"steps.csv line 3: column 'a': expected a finite number"):
        read_step_csv(path, targets=["label"])
    path.write_text("sequence_id,step,a,k\ns1,0,0.5,1\ns1,1,0.7,2\n")
    with pytest.raises(DataError, match=r"line 3: sequence 's1' has k='2' here but '1' on line 2"):
        read_step_csv(path, targets=[], static=["k"])


# -- one-to-many --------------------------------------------------------------------------------
def _days(ett):
    """Static: yesterday's 24-hour mean of each column (F=7) and the weekday (sin, cos) ->
    today's 24 hourly OT values (U=24, O=1)."""
    n_days = len(ett) // 24
    days = ett[: n_days * 24].reshape(n_days, 24, 7)
    V, Y = [], []
    for d in range(1, n_days):
        wd = 2 * np.pi * (d % 7) / 7
        V.append(np.concatenate([days[d - 1].mean(0), [np.sin(wd), np.cos(wd)]]))
        Y.append(days[d, :, 6:7])
    return np.array(V, dtype=np.float32), Y


def test_generator_daily_profile_from_static_features(ett, tmp_path):
    V, Y = _days(ett)
    gen = SequenceGenerator(hidden_size=32, epochs=30, lr=1e-2, batch_size=16).fit(V[:130], Y[:130])
    preds = gen.predict(V[130:])
    assert all(p.shape == (24, 1) for p in preds)  # the training length: every day has 24 hours
    result = gen.evaluate(V[130:], Y[130:])
    mean_profile = np.mean(Y[:130], axis=0)
    base = float(np.mean([np.abs(y - mean_profile).mean() for y in Y[130:]]))
    assert result["mae"] < base  # beats the average training day
    assert [len(p) for p in gen.predict(V[130:133], length=6)] == [6, 6, 6]
    gen.save(tmp_path / "gen")
    again = SequenceGenerator.load(tmp_path / "gen")
    for a, b in zip(preds, again.predict(V[130:]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_generator_tokens_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    V = rng.normal(size=(40, 3)).astype(np.float32)
    Y = [["a"] * (1 + int(v[0] > 0)) + ["b"] for v in V]
    gen = SequenceGenerator(hidden_size=16, epochs=40, lr=2e-2, val_fraction=0).fit(V, Y)
    assert gen.evaluate(V, Y)["exact_match"] > 0.8
    gen.save(tmp_path / "tok")
    again = SequenceGenerator.load(tmp_path / "tok")
    assert again.predict(V, beam_size=3) == gen.predict(V, beam_size=3)


# -- persistence and errors -------------------------------------------------------------------
def test_seq2seq_save_load_round_trip(g2p, cmu, tmp_path):
    _, test = cmu
    g2p.save(tmp_path / "g2p")
    pre = json.loads((tmp_path / "g2p/preprocessing.json").read_text())
    assert pre["source"]["vocab"]["tokens"] and pre["target"]["kind"] == "tokens"
    again = Seq2Seq.load(tmp_path / "g2p")
    words = test.sources[:30]
    assert again.predict(words, beam_size=3) == g2p.predict(words, beam_size=3)
    for name, t in g2p.net.state_dict().items():
        assert torch.equal(t, again.net.state_dict()[name])
    with pytest.raises(ArtifactError, match="expected a seq2seq model, got a"):
        Seq2Seq.load(_other_kind(tmp_path))


def _other_kind(tmp_path):
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(5, 2)) for _ in range(8)]
    Y = [np.array(list("abab" + "a")) for _ in range(8)]
    SequenceTagger(hidden_size=4, epochs=1, val_fraction=0).fit(X, Y).save(tmp_path / "tagger")
    return tmp_path / "tagger"


def test_errors_name_what_was_expected(g2p):
    with pytest.raises(ConfigError, match="exactly one of source_vocab_size"):
        Seq2SeqConfig(source_vocab_size=10, source_features=3, target_vocab_size=10)
    with pytest.raises(ConfigError, match="attention: expected one of none, additive"):
        Seq2SeqConfig(source_features=3, target_features=2, attention="luong")
    with pytest.raises(ConfigError, match="attention 'dot': expected decoder_hidden_size"):
        Seq2SeqConfig(source_features=3, target_features=2, attention="dot", decoder_hidden_size=7)
    with pytest.raises(
        DataError, match=r"sources\[0\]: expected a list of tokens .* got the string"
    ):
        g2p.predict(["hello"])
    with pytest.raises(DataError, match="expected tokens \\(as in training\\), got values"):
        g2p.predict([np.zeros((3, 2))])
    with pytest.raises(ConfigError, match="beam_size: expected an integer >= 1, got 0"):
        g2p.predict([list("cat")], beam_size=0)
    with pytest.raises(ShapeError, match=r"src: expected \(B, S, F=3\)"):
        Seq2SeqNet(Seq2SeqConfig(source_features=3, target_features=1))(
            torch.zeros(2, 5, 4), None, torch.zeros(2, 3, 1)
        )
    with pytest.raises(ConfigError, match="not fitted yet"):
        Seq2Seq().predict([["a"]])


def test_split_indices_keeps_every_source_on_one_side():
    sources = [list("ab"), list("cd"), list("ab"), list("ef"), list("cd"), list("gh")] * 3
    train, val = split_indices(sources, 0.34, seed=1)
    assert not {tuple(sources[i]) for i in train} & {tuple(sources[i]) for i in val}
    assert len(train) + len(val) == len(sources) and len(val) > 0
