"""ONNX export of seq2seq: the encoder + decoder_step graphs, driven by greedy decoding outside,
give torch's tokens, scores, logits, attention and values, on mixed-length batches of real CMUdict
words and JapaneseVowels sequences; the trained API model decodes the same; no torch needed."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from seqshape import datasets
from seqshape.api.seq2seq import Seq2Seq
from seqshape.artifacts import save_model_dir
from seqshape.cli import main
from seqshape.data.pairs import read_cmudict
from seqshape.data.vocab import Vocab, pad_batch
from seqshape.infer.export import export_onnx, read_metadata
from seqshape.infer.onnx_runtime import OnnxSeq2Seq
from seqshape.models.seq2seq import Seq2SeqConfig, Seq2SeqNet

ENV = {**os.environ, "SEQSHAPE_THREADS": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def cmu(shared_data, tmp_path_factory):
    """~600 real CMUdict entries spread over the alphabet (every 200th line), stress stripped."""
    lines = (shared_data / "seq2seq/cmudict/cmudict.dict").read_text().splitlines()
    path = tmp_path_factory.mktemp("cmu") / "small.dict"
    path.write_text("\n".join(lines[::200][:600]) + "\n")
    return read_cmudict(path, strip_stress=True)


@pytest.fixture(scope="module")
def jv():
    return datasets.load_japanese_vowels("train")


def _side(vocab, features):
    """The preprocessing of one side as `Seq2Seq.save` writes it (no scaler: inputs as given)."""
    kind = "tokens" if vocab is not None else "values"
    return {"kind": kind, "vocab": vocab.to_dict() if vocab is not None else None, "scaler": None,
            "features": features, "max_length": 20, "fixed_length": None}  # fmt: skip


def _export_random(tmp_path, cfg, src_vocab, tgt_vocab):
    """A Seq2SeqNet with random weights saved as a model directory and exported."""
    net = Seq2SeqNet(cfg).eval()
    pre = {
        "source": _side(src_vocab if cfg.source_vocab_size else None, cfg.source_features),
        "target": _side(tgt_vocab if cfg.target_vocab_size else None, cfg.target_features),
    }
    d = save_model_dir(
        tmp_path / "m", kind="seq2seq", config=cfg.to_dict(), state_dict=net.state_dict(),
        preprocessing=pre,
    )  # fmt: skip
    return net, export_onnx(d)


def _sources(kind, cmu, jv, src_vocab):
    """A real mixed-length batch: 7 words (lengths 2-13) or 7 JapaneseVowels sequences (7-26)."""
    if kind == "tokens":
        words = [cmu.sources[i] for i in (0, 5, 17, 40, 77, 123, 300)] + [list("a")]
        x, lengths = pad_batch([src_vocab.encode(w) for w in words])
        return x, lengths
    seqs = [torch.from_numpy(jv.X[i]) for i in (0, 3, 9, 30, 51, 80, 99)]
    lengths = torch.tensor([len(s) for s in seqs])
    x = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
    return x, lengths


CASES = [
    dict(src="tokens", tgt="tokens", attention="general"),
    dict(src="tokens", tgt="tokens", attention="additive", cell="gru", num_layers=2),
    dict(src="tokens", tgt="tokens", attention="dot", bidirectional=False),
    dict(src="tokens", tgt="tokens", attention="none", decoder_hidden_size=12),
    dict(src="values", tgt="tokens", attention="general", num_layers=2, decoder_hidden_size=10),
    dict(src="values", tgt="values", attention="additive"),
    dict(src="tokens", tgt="values", attention="general", cell="gru"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_greedy_decoding_from_the_graphs_matches_torch(case, cmu, jv, tmp_path):
    case = dict(case)
    src_kind, tgt_kind = case.pop("src"), case.pop("tgt")
    src_vocab = Vocab.build(cmu.sources)
    tgt_vocab = Vocab.build(cmu.targets)
    sizes = {
        "source_vocab_size": len(src_vocab) if src_kind == "tokens" else 0,
        "source_features": 12 if src_kind == "values" else 0,
        "target_vocab_size": len(tgt_vocab) if tgt_kind == "tokens" else 0,
        "target_features": 3 if tgt_kind == "values" else 0,
    }
    cfg = Seq2SeqConfig(embedding_size=8, hidden_size=8, **sizes, **case)
    net, path = _export_random(tmp_path, cfg, src_vocab, tgt_vocab)
    runner = OnnxSeq2Seq(path)
    x, lengths = _sources(src_kind, cmu, jv, src_vocab)
    if tgt_kind == "tokens":
        got = runner.decode_batch(x.numpy(), lengths.numpy(), max_len=12)
        tokens, t_lengths, scores, attention = net.generate_tokens(x, lengths, max_len=12)
        np.testing.assert_array_equal(got["tokens"], tokens.numpy())
        np.testing.assert_array_equal(got["lengths"], t_lengths.numpy())
        np.testing.assert_allclose(got["scores"], scores.numpy(), rtol=0, atol=1e-4)
        with torch.no_grad():
            # the logits of every step, fed the decoded tokens (the two paths agree)
            ref = net.decode_teacher_forced(net.encode(x, lengths), tokens)
        U = tokens.shape[1]
        np.testing.assert_allclose(got["logits"][:, :U], ref.outputs.numpy(), rtol=0, atol=1e-4)
    else:
        got = runner.decode_batch(x.numpy(), lengths.numpy(), max_len=9)
        values, t_lengths, attention = net.generate_values(x, lengths, steps=9)
        np.testing.assert_allclose(got["values"], values.numpy(), rtol=0, atol=1e-4)
        np.testing.assert_array_equal(got["lengths"], t_lengths.numpy())
    if cfg.attention == "none":
        assert attention is None and "attention" not in got
    else:
        U = attention.shape[1]
        np.testing.assert_allclose(got["attention"][:, :U], attention.numpy(), rtol=0, atol=1e-4)


def test_padding_never_changes_the_decoded_tokens(cmu, jv, tmp_path):
    src_vocab, tgt_vocab = Vocab.build(cmu.sources), Vocab.build(cmu.targets)
    cfg = Seq2SeqConfig(
        source_vocab_size=len(src_vocab), target_vocab_size=len(tgt_vocab), embedding_size=8,
        hidden_size=8, num_layers=2, attention="additive",
    )  # fmt: skip
    _, path = _export_random(tmp_path, cfg, src_vocab, tgt_vocab)
    runner = OnnxSeq2Seq(path)
    x, lengths = _sources("tokens", cmu, jv, src_vocab)
    batched = runner.decode_batch(x.numpy(), lengths.numpy(), max_len=10)
    for i, n in enumerate(lengths.tolist()):
        alone = runner.decode_batch(
            x[i : i + 1, :n].numpy(), lengths[i : i + 1].numpy(), max_len=10
        )
        U = alone["tokens"].shape[1]
        np.testing.assert_array_equal(batched["tokens"][i, :U], alone["tokens"][0])
        np.testing.assert_allclose(
            batched["logits"][i, :U], alone["logits"][0, :U], rtol=0, atol=1e-5
        )


# -- trained models, through the public APIs and the CLI ---------------------------------------------
@pytest.fixture(scope="module")
def g2p(cmu, tmp_path_factory):
    s2s = Seq2Seq(hidden_size=24, embedding_size=16, epochs=4, batch_size=32, lr=0.01, seed=0)
    s2s.fit(cmu.sources[:500], cmu.targets[:500])
    d = s2s.save(tmp_path_factory.mktemp("g2p") / "model")
    assert main(["export", str(d)]) == 0  # the CLI writes both parts
    return s2s, d


def test_onnx_seq2seq_predicts_like_the_api(g2p, cmu):
    s2s, d = g2p
    assert (d / "model.onnx").is_file() and (d / "model.decoder_step.onnx").is_file()
    runner = OnnxSeq2Seq(d / "model.onnx", batch_size=7)  # many small batches
    words = cmu.sources[500:] + [list("zyzzyva"), list("q"), list("ça")]  # unknown 'ç' -> <unk>
    ref = s2s.predict(words, beam_size=1)
    got = runner.predict(words)
    assert got == ref
    assert sum(len(p) > 0 for p in got) > len(got) // 2  # a trained model, not empty outputs
    assert runner.predict(words[:3], max_len=2) == s2s.predict(words[:3], beam_size=1, max_len=2)
    meta = read_metadata(d / "model.onnx")
    assert list(meta["parts"]) == ["encoder", "decoder_step"]
    assert [s["name"] for s in meta["parts"]["decoder_step"]["inputs"]] == [
        "prev", "h", "c", "keys", "projected", "mask",
    ]  # fmt: skip
    assert meta["target"]["vocab"]["tokens"] == s2s.target.vocab.tokens[4:]


def test_value_targets_stop_by_themselves(jv, tmp_path):
    # values -> values: a JapaneseVowels sequence -> its first 3 features, reversed in time
    src = list(jv.X[:120])
    tgt = [a[::-1, :3].copy() for a in src]
    s2s = Seq2Seq(hidden_size=16, embedding_size=8, epochs=2, batch_size=32, seed=0).fit(src, tgt)
    d = s2s.save(tmp_path / "m")
    export_onnx(d)
    runner = OnnxSeq2Seq(d / "model.onnx")
    test = list(jv.X[150:190])
    got, ref = runner.predict(test), s2s.predict(test)
    assert [len(g) for g in got] == [len(r) for r in ref]
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-4)  # original units
    got5, ref5 = runner.predict(test[:4], steps=5), s2s.predict(test[:4], steps=5)
    assert all(g.shape == (5, 3) for g in got5)
    for g, r in zip(got5, ref5):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-4)


def test_onnx_seq2seq_needs_no_torch(g2p):
    _, d = g2p
    code = (
        "import sys\n"
        "from seqshape.infer.onnx_runtime import OnnxSeq2Seq\n"
        f"s2s = OnnxSeq2Seq({str(d / 'model.onnx')!r})\n"
        "out = s2s.predict([list('hello'), list('world')])\n"
        "assert len(out) == 2 and all(isinstance(t, str) for p in out for t in p), out\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def test_translate_cli_onnx_backend_prints_what_torch_prints(g2p, capsys):
    _, d = g2p
    outs = {}
    for backend in ("torch", "onnx"):
        assert main(["translate", str(d), "s t r e e t", "--backend", backend]) == 0
        outs[backend] = capsys.readouterr().out
    assert outs["onnx"] == outs["torch"] and outs["torch"].strip()
    # beam search is the torch backend's: asked of onnx, a one-line error and exit code 2
    assert main(["translate", str(d), "s t r e e t", "--backend", "onnx", "--beam", "3"]) == 2
    assert "greedily" in capsys.readouterr().err
