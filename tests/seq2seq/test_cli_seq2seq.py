"""`seqshape train seq2seq | tag | generate`, `translate`, `evaluate`, `predict`: real subprocesses on
small real excerpts (CMUdict words, Tatoeba pairs, JapaneseVowels frames, ETTh1 days)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from seqshape import datasets

ENV = {**os.environ, "SEQSHAPE_THREADS": "1", "OMP_NUM_THREADS": "1"}


def run(*args, check=True, stdin=None):
    p = subprocess.run(
        [sys.executable, "-m", "seqshape", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        input=stdin,
        timeout=300,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


# -- seq2seq on CMUdict -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cmu_files(shared_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("cmu")
    lines = (shared_data / "seq2seq/cmudict/cmudict.dict").read_text().splitlines()
    # every 40th line of the real dictionary: ~3,400 entries spread over the alphabet
    (d / "train.dict").write_text("\n".join(lines[::40][:400]) + "\n")
    (d / "test.dict").write_text("\n".join(lines[7::40][:60]) + "\n")
    (d / "words.txt").write_text("hello\nworld\nseqshape\n")
    return d


@pytest.fixture(scope="module")
def g2p_model(cmu_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "g2p"
    p = run(
        "train", "seq2seq",
        "--train", cmu_files / "train.dict",
        "--strip-stress",
        "--holdout", "0.1",
        "--out", out,
        "--attention", "general",
        "--epochs", "3",
        "--hidden", "24",
        "--embedding", "16",
        "--lr", "0.01",
        "--no-progress",
    )  # fmt: skip
    assert "exact match" in p.stdout  # the held-out split was evaluated and printed
    return out


def test_train_seq2seq_writes_a_model_directory(g2p_model):
    names = {p.name for p in g2p_model.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessing.json", "metrics.json"} <= names
    assert "train_log.jsonl" in names and "training_curve.png" in names
    config = json.loads((g2p_model / "config.json").read_text())
    assert config["kind"] == "seq2seq" and config["config"]["attention"] == "general"
    pre = json.loads((g2p_model / "preprocessing.json").read_text())
    assert pre["text"]["format"] == "cmudict" and pre["text"]["strip_stress"] is True
    assert not any(t[-1].isdigit() for t in pre["target"]["vocab"]["tokens"])
    metrics = json.loads((g2p_model / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["token_error_rate"] and metrics["test"]["n"] >= 30


def test_evaluate_json_greedy_and_beam(g2p_model, cmu_files):
    greedy = json.loads(
        run("evaluate", g2p_model, "--data", cmu_files / "test.dict", "--json").stdout
    )
    for key in ("exact_match", "token_error_rate", "wer", "bleu", "n"):
        assert key in greedy
    assert greedy["kind"] == "seq2seq" and greedy["beam_size"] == 1
    assert greedy["wer"] == pytest.approx(1 - greedy["exact_match"])
    assert 0.0 <= greedy["token_error_rate"] < 1.0
    beam = run(
        "evaluate", g2p_model, "--data", cmu_files / "test.dict", "--json", "--beam", "4"
    )  # fmt: skip
    assert json.loads(beam.stdout)["beam_size"] == 4
    table = run("evaluate", g2p_model, "--data", cmu_files / "test.dict")
    assert "token error rate" in table.stdout


def test_translate_text_and_stdin(g2p_model):
    one = run("translate", g2p_model, "hello", "--beam", "3").stdout.splitlines()
    assert len(one) == 1 and one[0].strip()
    assert all(tok.isalpha() and tok.isupper() for tok in one[0].split())  # phonemes
    many = run("translate", g2p_model, stdin="hello\nworld\n").stdout.splitlines()
    assert len(many) == 2
    assert many[0] == run("translate", g2p_model, "hello").stdout.strip()


def test_predict_writes_one_row_per_line(g2p_model, cmu_files, tmp_path):
    out = tmp_path / "pred.csv"
    run("predict", g2p_model, "--data", cmu_files / "words.txt", "--output", out)
    rows = list(csv.DictReader(out.open()))
    assert [r["source"] for r in rows] == ["hello", "world", "seqshape"]
    assert all(r["prediction"] for r in rows)


def test_user_errors_are_one_line_and_exit_2(cmu_files, g2p_model, tmp_path):
    bad = tmp_path / "bad.dict"
    bad.write_text("hello HH AH0 L OW1\nworld w er1 l d\n")
    p = run("train", "seq2seq", "--train", bad, "--out", tmp_path / "m", check=False)
    assert p.returncode == 2
    assert "bad.dict line 2: expected phonemes like 'AH0' or 'K', got 'w'" in p.stderr
    p = run(
        "train", "seq2seq", "--train", cmu_files / "train.dict", "--char",
        "--out", tmp_path / "m", check=False,
    )  # fmt: skip
    assert p.returncode == 2 and "apply to --format tsv" in p.stderr
    p = run("translate", g2p_model, "   ", check=False)
    assert p.returncode == 2 and "expected some text to translate" in p.stderr


def test_tatoeba_words_with_attention_none(shared_data, tmp_path):
    lines = (shared_data / "seq2seq/tatoeba/eng-fra.txt").read_text().splitlines()
    (tmp_path / "train.tsv").write_text("\n".join(lines[:300]) + "\n")
    out = tmp_path / "mt"
    run(
        "train", "seq2seq", "--train", tmp_path / "train.tsv", "--tokenize", "words",
        "--lowercase", "--attention", "none", "--out", out, "--epochs", "2",
        "--hidden", "16", "--no-progress",
    )  # fmt: skip
    assert json.loads((out / "config.json").read_text())["config"]["attention"] == "none"
    result = json.loads(run("evaluate", out, "--data", tmp_path / "train.tsv", "--json").stdout)
    assert 0.0 <= result["bleu"] <= 100.0 and result["n_pairs"] == 300
    assert result["n"] < 300  # several translations of one sentence are one multi-reference item


# -- tag on JapaneseVowels frames -----------------------------------------------------------------
def _vowels_csv(path, split, n):
    data = datasets.load_japanese_vowels(split)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sequence_id", "step", *[f"c{k}" for k in range(12)], "speaker"])
        for i, (x, y) in enumerate(zip(data.X[:n], data.y[:n], strict=True)):
            for t, row in enumerate(x):
                w.writerow([f"{split}{i}", t, *[f"{v:.5f}" for v in row], y])


def test_train_tag_evaluate_predict(tmp_path):
    _vowels_csv(tmp_path / "train.csv", "train", 270)
    _vowels_csv(tmp_path / "test.csv", "test", 60)
    out = tmp_path / "tagger"
    run(
        "train", "tag", "--train", tmp_path / "train.csv", "--label", "speaker",
        "--test", tmp_path / "test.csv", "--out", out, "--epochs", "8", "--hidden", "24",
        "--lr", "0.01", "--no-progress",
    )  # fmt: skip
    result = json.loads(run("evaluate", out, "--data", tmp_path / "test.csv", "--json").stdout)
    assert result["kind"] == "tagger" and result["n"] == 60
    assert result["accuracy"] > 0.5  # per-frame speaker, 9 classes
    pred = tmp_path / "tags.csv"
    run("predict", out, "--data", tmp_path / "test.csv", "--output", pred)
    rows = list(csv.DictReader(pred.open()))
    n_steps = sum(len(x) for x in datasets.load_japanese_vowels("test").X[:60])
    assert len(rows) == n_steps == result["n_steps"]
    assert {f"p_{c}" for c in "123456789"} <= set(rows[0])


# -- generate ETTh1 daily profiles --------------------------------------------------------------
def _days_csv(ett, path, first, last):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sequence_id", "step", "prev_ot", "prev_hufl", "weekday", "OT"])
        for d in range(first, last):
            prev = ett[(d - 1) * 24 : d * 24]
            for t in range(24):
                w.writerow(
                    [f"day{d}", t, prev[:, 1].mean(), prev[:, 0].mean(), d % 7, ett[d * 24 + t, 1]]
                )


def test_train_generate_evaluate_predict(shared_data, tmp_path):
    ett = pd.read_csv(shared_data / "forecasting/ETTh1.csv")[["HUFL", "OT"]].to_numpy(np.float32)
    _days_csv(ett, tmp_path / "train.csv", 1, 120)
    _days_csv(ett, tmp_path / "test.csv", 120, 150)
    out = tmp_path / "gen"
    run(
        "train", "generate", "--train", tmp_path / "train.csv", "--out", out,
        "--static", "prev_ot", "--static", "prev_hufl", "--static", "weekday",
        "--target", "OT", "--epochs", "10", "--hidden", "16", "--lr", "0.01", "--no-progress",
    )  # fmt: skip
    result = json.loads(run("evaluate", out, "--data", tmp_path / "test.csv", "--json").stdout)
    assert result["kind"] == "generator" and result["n"] == 30 and result["n_steps"] == 720
    assert result["mae"] < 5.0
    pred = tmp_path / "profiles.csv"
    run("predict", out, "--data", tmp_path / "test.csv", "--output", pred)
    rows = list(csv.DictReader(pred.open()))
    assert len(rows) == 720 and set(rows[0]) == {"sequence_id", "step", "OT"}
    p = run(
        "train", "generate", "--train", tmp_path / "train.csv", "--out", tmp_path / "x",
        "--static", "OT", "--target", "prev_ot", check=False,
    )  # fmt: skip
    assert p.returncode == 2 and "a static column is constant within a sequence" in p.stderr


def test_train_seq2seq_takes_lr_schedule_and_defaults_to_the_g2p_recipe(cmu_files, tmp_path):
    base = ["train", "seq2seq", "--train", cmu_files / "train.dict", "--epochs", "1"]
    base += ["--embedding", "8", "--no-progress"]
    run(*base, "--hidden", "8", "--lr-schedule", "plateau", "--out", tmp_path / "p")
    metrics = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert metrics["train_config"]["lr_schedule"] == "plateau"
    # the defaults: the README's best G2P recipe (H=256, dropout 0.3, smoothing 0.1, cosine)
    run(*base, "--out", tmp_path / "d")
    metrics = json.loads((tmp_path / "d" / "metrics.json").read_text())
    config = json.loads((tmp_path / "d" / "config.json").read_text())["config"]
    assert metrics["train_config"]["lr_schedule"] == "cosine"
    assert config["hidden_size"] == 256 and config["dropout"] == 0.3
    p = run(*base, "--lr-schedule", "linear", "--out", tmp_path / "x", check=False)
    assert p.returncode == 2 and "linear" in p.stderr and "Traceback" not in p.stderr
