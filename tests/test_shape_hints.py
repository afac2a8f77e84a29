"""Each shape hint fires on its case: through the models, the public API
(`SequenceClassifier.predict_proba`, `fit`) and the CLI (one line on stderr, exit code 2)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from seqshape import SequenceClassifier, ShapeError, datasets
from seqshape.models.encoder import EncoderConfig, SequenceEncoder
from seqshape.models.generator import GeneratorConfig, GeneratorNet
from seqshape.shapes import check_set_features, check_shape

ENV = {**os.environ, "SEQSHAPE_THREADS": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def jv():
    return datasets.load_japanese_vowels("test")


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    train = datasets.load_japanese_vowels("train")
    model = SequenceClassifier(epochs=1, hidden_size=6, val_fraction=0.0, seed=0, threads=1)
    model.fit(train.X[:60], train.y[:60])
    path = tmp_path_factory.mktemp("hints") / "model"
    model.save(path)
    model.path = path
    return model


# -- the models -----------------------------------------------------------------------------------
def test_time_and_feature_axes_swapped_in_a_batch():
    enc = SequenceEncoder(EncoderConfig(input_size=12, hidden_size=4))
    with pytest.raises(
        ShapeError,
        match=re.escape("x: expected (B, T, F=12), got (32, 12, 50) — is the time axis second?"),
    ):
        enc(torch.zeros(32, 12, 50))


def test_a_single_sequence_without_its_batch_axis():
    enc = SequenceEncoder(EncoderConfig(input_size=12, hidden_size=4))
    with pytest.raises(ShapeError, match=re.escape("got (20, 12) — a single sequence without its")):
        enc(torch.zeros(20, 12))
    gen = GeneratorNet(GeneratorConfig(input_size=5, target_features=1))
    with pytest.raises(ShapeError, match=re.escape("got (5,) — a single sample without its batch")):
        gen.initial_state(torch.zeros(5))


def test_a_univariate_batch_without_its_feature_axis():
    with pytest.raises(ShapeError, match=re.escape("got (8, 30) — a univariate batch needs its")):
        check_shape(torch.zeros(8, 30), "B T F", name="x", known={"F": 1})


def test_no_hint_where_none_is_likely():
    with pytest.raises(ShapeError) as e:
        check_shape(torch.zeros(4, 7, 3), "B T F", name="x", known={"F": 12})
    assert str(e.value) == "x: expected (B, T, F=12), got (4, 7, 3)"


# -- the public API --------------------------------------------------------------------------------
def test_predict_proba_time_and_features_swapped(clf, jv):
    X = np.stack([a[:7].T for a in jv.X[:5]])  # (B, F=12, T=7): every sequence transposed
    # a 3-D array: the channels-first layout of aeon/sktime is named, with the parameter to use
    with pytest.raises(
        ShapeError, match=re.escape("fitted on F=12: the (n, channels, time) layout")
    ):
        clf.predict_proba(X)
    # a list of arrays: each sequence is checked on its own
    with pytest.raises(
        ShapeError, match=re.escape("X[0]: expected (T, F=12), got (12, 7) — is it (F, T)?")
    ):
        clf.predict_proba(list(X))
    with pytest.raises(ShapeError, match=re.escape("X[2]: expected (T, F=12), got (12, ")):
        clf.predict_proba([jv.X[0], jv.X[1], jv.X[2].T])


def test_predict_proba_single_sequence(clf, jv):
    with pytest.raises(ShapeError, match=re.escape("a single sequence? pass [x]")):
        clf.predict_proba(jv.X[0])


def test_predict_proba_mixed_feature_counts_names_the_first_offender(clf, jv):
    X = [jv.X[0], jv.X[1], jv.X[2][:, :11], jv.X[3][:, :10]]
    with pytest.raises(
        ShapeError, match=re.escape(f"X[2]: expected (T, F=12), got ({len(jv.X[2])}, 11)")
    ):
        clf.predict_proba(X)


def test_fit_mixed_feature_counts_says_which_fixed_the_count(jv):
    X = [jv.X[0], jv.X[1], jv.X[2][:, :11]]
    with pytest.raises(
        ShapeError, match=re.escape("— mixed feature counts: X[0] has 12, X[2] has 11")
    ):
        SequenceClassifier(epochs=1).fit(X, jv.y[:3])


def test_data_set_feature_count_hint():
    with pytest.raises(ShapeError, match=r"are time and features swapped\?"):
        check_set_features("bad.csv", expected=12, got=20, lengths=[12, 12, 12])
    with pytest.raises(ShapeError) as e:
        check_set_features("bad.csv", expected=12, got=11, lengths=[20, 7])
    assert str(e.value) == "bad.csv: expected 12 features per step (the model's F), got 11"
    check_set_features("ok.csv", expected=12, got=12, lengths=[5])


# -- the CLI ---------------------------------------------------------------------------------------
def write_long_csv(path, arrays):
    rows = ["sequence_id,step," + ",".join(f"f{j}" for j in range(arrays[0].shape[1]))]
    for i, a in enumerate(arrays):
        rows += [f"s{i},{t}," + ",".join(f"{v:.5f}" for v in row) for t, row in enumerate(a)]
    path.write_text("\n".join(rows) + "\n")
    return path


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "seqshape", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )


def test_cli_swapped_axes_one_line_exit_2(clf, jv, tmp_path):
    """A file written time-major by mistake: 12 rows of 20 'features' per sequence."""
    long = [a for a in jv.X if len(a) >= 20][:3]
    bad = write_long_csv(tmp_path / "transposed.csv", [a[:20].T for a in long])
    p = run_cli("explain", clf.path, "--data", bad)
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1
    assert "X[0]: expected (T, F=12), got (12, 20) — is it (F, T)? transpose it" in p.stderr


def test_cli_wrong_feature_count_one_line_exit_2(clf, jv, tmp_path):
    from seqshape.cli import main

    bad = write_long_csv(tmp_path / "eleven.csv", [a[:, :11] for a in jv.X[:3]])
    out = tmp_path / "pred.csv"
    assert main(["predict", str(clf.path), "--data", str(bad), "--output", str(out)]) == 2
    assert not out.exists()
    assert main(["explain", str(clf.path), "--data", str(bad)]) == 2


def test_cli_wrong_feature_count_message(clf, jv, tmp_path, capsys):
    from seqshape.cli import main

    bad = write_long_csv(tmp_path / "eleven.csv", [a[:, :11] for a in jv.X[:3]])
    assert main(["explain", str(clf.path), "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"X[0]: expected (T, F=12), got ({len(jv.X[0])}, 11)" in err
