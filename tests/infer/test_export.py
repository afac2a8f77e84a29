"""ONNX export of the classifier: the exported graph agrees with torch, keeps padding invariance,
runs without torch, and the CLI exports and predicts with it on the bundled JapaneseVowels."""

import csv
import gzip
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

from seqshape import ArtifactError, ConfigError, ShapeError, datasets
from seqshape.api.classifier import SequenceClassifier
from seqshape.artifacts import save_model_dir
from seqshape.batching import collate
from seqshape.cli import main
from seqshape.infer.export import export_onnx, read_metadata
from seqshape.infer.onnx_runtime import OnnxClassifier
from seqshape.models.classifier import ClassifierConfig, ClassifierNet

ENV = {**os.environ, "SEQSHAPE_THREADS": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def jv_train():
    return datasets.load_japanese_vowels("train")


@pytest.fixture(scope="module")
def jv_test():
    return datasets.load_japanese_vowels("test")


def _mixed_batch(jv, n=7):
    """Real sequences of lengths 7-29 plus one tiled to ~10x, so the others carry heavy padding."""
    seqs = list(jv.X[:n]) + [np.tile(jv.X[n], (10, 1))]
    return seqs


def _model_dir(path, net, classes=None, scaler=None):
    n = net.config.num_outputs
    classes = classes if classes is not None else [f"c{i}" for i in range(n)]
    if net.config.task == "regression":
        classes = None
    return save_model_dir(
        path,
        kind="classifier",
        config=net.config.to_dict(),
        state_dict=net.state_dict(),
        preprocessing={"classes": classes, "scaler": scaler},
    )


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


CASES = [
    dict(cell="lstm", bidirectional=False, num_layers=1),
    dict(cell="lstm", bidirectional=True, num_layers=1),
    dict(cell="lstm", bidirectional=False, num_layers=2),
    dict(cell="lstm", bidirectional=True, num_layers=2),
    dict(cell="gru", bidirectional=False, num_layers=1),
    dict(cell="gru", bidirectional=True, num_layers=2),
    dict(cell="lstm", bidirectional=True, num_layers=2, pooling="mean"),
    dict(cell="gru", bidirectional=True, num_layers=1, pooling="attention"),
    # the convolutional front-end: masked convolutions, a max-pool by the stride, the FCN summary
    dict(cell="lstm", bidirectional=False, num_layers=1, frontend="conv", stride=3),
    dict(
        cell="lstm",
        bidirectional=True,
        num_layers=1,
        pooling="mean",
        frontend="conv",
        stride=4,
        conv_summary=True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_onnx_matches_torch_on_mixed_lengths(case, jv_train, tmp_path):
    cfg = ClassifierConfig(input_size=12, num_outputs=9, hidden_size=16, dropout=0.2, **case)
    net = ClassifierNet(cfg).eval()
    path = export_onnx(_model_dir(tmp_path / "m", net), tmp_path / "m.onnx")
    sess = _session(path)
    # batch size and length both differ from the example the graph was traced with
    b = collate(_mixed_batch(jv_train))
    with torch.no_grad():
        ref = net(b.x, b.lengths).numpy()
    (got,) = sess.run(["logits"], {"x": b.x.numpy(), "lengths": b.lengths.numpy()})
    assert got.shape == ref.shape == (8, 9)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)
    # the graph does not hard-code the traced batch or time size: a single short sequence
    one = collate([jv_train.X[20]])
    with torch.no_grad():
        ref1 = net(one.x, one.lengths).numpy()
    (got1,) = sess.run(["logits"], {"x": one.x.numpy(), "lengths": one.lengths.numpy()})
    np.testing.assert_allclose(got1, ref1, rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "case",
    [CASES[3], CASES[5], CASES[7], CASES[8], CASES[9]],
    ids=["lstm", "gru", "attention", "conv", "conv-bi-summary"],
)
def test_padding_never_changes_onnx_logits(case, jv_train, tmp_path):
    cfg = ClassifierConfig(input_size=12, num_outputs=9, hidden_size=16, **case)
    net = ClassifierNet(cfg).eval()
    sess = _session(export_onnx(_model_dir(tmp_path / "m", net)))
    seqs = _mixed_batch(jv_train)
    b = collate(seqs)
    x = b.x.numpy().copy()
    # garbage instead of zeros after each end: the graph must not read past a sequence's length
    pad = ~b.mask.numpy()
    x[pad] = np.random.default_rng(0).normal(0, 50, size=(int(pad.sum()), 12))
    (batched,) = sess.run(["logits"], {"x": x, "lengths": b.lengths.numpy()})
    for i, s in enumerate(seqs):
        (alone,) = sess.run(
            ["logits"],
            {"x": s[None].astype(np.float32), "lengths": np.array([len(s)], dtype=np.int64)},
        )
        np.testing.assert_allclose(batched[i], alone[0], rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def fitted_dir(jv_train, tmp_path_factory):
    # a short real training run (with its scaler) on the bundled training split
    clf = SequenceClassifier(hidden_size=16, epochs=2, seed=0, threads=1).fit(jv_train)
    d = clf.save(tmp_path_factory.mktemp("fitted") / "model")
    export_onnx(d)
    return d


def test_onnx_classifier_matches_the_torch_api(fitted_dir, jv_test):
    clf = SequenceClassifier.load(fitted_dir)
    onnx_clf = OnnxClassifier(fitted_dir / "model.onnx", batch_size=7)  # many small batches
    assert onnx_clf.classes_.tolist() == clf.classes_.tolist()
    assert onnx_clf.classes_.dtype == clf.classes_.dtype
    np.testing.assert_allclose(
        onnx_clf.predict_proba(jv_test), clf.predict_proba(jv_test), rtol=0, atol=1e-5
    )
    assert (onnx_clf.predict(jv_test.X) == clf.predict(jv_test.X)).all()
    meta = read_metadata(fitted_dir / "model.onnx")
    assert meta["kind"] == "classifier" and meta["classes"] == clf.classes_.tolist()
    assert meta["scaler"] == clf.scaler.to_dict()
    part = meta["parts"]["classifier"]
    assert [(s["name"], s["shape"]) for s in part["inputs"]] == [
        ("x", ["B", "T", 12]),
        ("lengths", ["B"]),
    ]
    assert part["outputs"][0]["shape"] == ["B", 9]
    assert part["max_abs_diff_vs_torch"] <= 1e-4


def test_onnx_classifier_checks_its_input(fitted_dir, jv_test):
    onnx_clf = OnnxClassifier(fitted_dir / "model.onnx")
    with pytest.raises(ShapeError, match=r"X\[1\]: expected \(T, F=12\), got \(20, 11\)"):
        onnx_clf.predict_proba([jv_test.X[0], np.zeros((20, 11), np.float32)])
    with pytest.raises(ShapeError, match="a single sequence"):
        onnx_clf.predict_proba(jv_test.X[0])


def test_onnx_inference_needs_no_torch(fitted_dir):
    code = (
        "import sys\n"
        "from seqshape.data.sequences import read_ts\n"
        "from seqshape.datasets import path\n"
        "from seqshape.infer.onnx_runtime import OnnxClassifier\n"
        f"clf = OnnxClassifier({str(fitted_dir / 'model.onnx')!r})\n"
        "p = clf.predict_proba(read_ts(path('JapaneseVowels_TEST.ts.gz')))\n"
        "assert p.shape == (370, 9), p.shape\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def test_regression_outputs_are_exported_raw(jv_train, tmp_path):
    cfg = ClassifierConfig(input_size=12, num_outputs=2, task="regression", hidden_size=8)
    net = ClassifierNet(cfg).eval()
    clf = OnnxClassifier(export_onnx(_model_dir(tmp_path / "m", net)))
    seqs = _mixed_batch(jv_train)
    b = collate(seqs)
    with torch.no_grad():
        ref = net(b.x, b.lengths).numpy()
    np.testing.assert_allclose(clf.predict(seqs), ref, rtol=0, atol=1e-4)
    with pytest.raises(ConfigError, match="regressor"):
        clf.predict_proba(seqs)


def test_unsupported_kind_is_a_clear_error(tmp_path):
    d = save_model_dir(
        tmp_path / "tag",
        kind="tagger",
        config={"input_size": 1},
        state_dict={"w": torch.zeros(2)},
        preprocessing={},
    )
    with pytest.raises(
        ConfigError, match=r"supports the kinds classifier, forecaster, seq2seq; got a 'tagger'"
    ):
        export_onnx(d)
    assert not (d / "model.onnx").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_bad_out_path_and_foreign_onnx_file(fitted_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"ending in \.onnx"):
        export_onnx(fitted_dir, tmp_path / "model.bin")
    foreign = tmp_path / "foreign.onnx"
    torch.onnx.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),), str(foreign), dynamo=False)
    with pytest.raises(ArtifactError, match="no 'seqshape' metadata"):
        OnnxClassifier(foreign)
    with pytest.raises(ArtifactError, match="no such ONNX file"):
        OnnxClassifier(tmp_path / "absent.onnx")


# -- the CLI, in a real subprocess ----------------------------------------------------------------
def _run(*args, check=True):
    p = subprocess.run(
        [sys.executable, "-m", "seqshape", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_cli_export_then_predict_with_onnx(tmp_path):
    for split in ("TRAIN", "TEST"):
        src = datasets.path(f"JapaneseVowels_{split}.ts.gz")
        (tmp_path / f"{split.lower()}.ts").write_bytes(gzip.decompress(src.read_bytes()))
    model = tmp_path / "model"
    _run("train", "classify", "--train", tmp_path / "train.ts", "--out", model,
         "--epochs", "2", "--hidden", "8", "--seed", "1", "--no-progress")  # fmt: skip
    test = tmp_path / "test.ts"
    p = _run("export", model, "--format", "onnx")
    assert (model / "model.onnx").is_file() and "max |onnx - torch|" in p.stderr
    _run("predict", model, "--data", test, "--output", tmp_path / "onnx.csv", "--backend", "onnx")
    _run("predict", model, "--data", test, "--output", tmp_path / "torch.csv")
    head_o, rows_o = _read_csv(tmp_path / "onnx.csv")
    head_t, rows_t = _read_csv(tmp_path / "torch.csv")
    assert head_o == head_t and len(rows_o) == len(rows_t) == 370
    assert [r[:2] for r in rows_o] == [r[:2] for r in rows_t]  # ids and predicted classes
    p_o = np.array([[float(v) for v in r[2:]] for r in rows_o])
    p_t = np.array([[float(v) for v in r[2:]] for r in rows_t])
    # 6 decimals written; the kernel part's 10,000-term ridge sums in float32 are added in
    # another order by ONNX Runtime (a few 1e-6 in probability)
    np.testing.assert_allclose(p_o, p_t, rtol=0, atol=1e-5)
    meta = read_metadata(model / "model.onnx")
    assert [f"p_{c}" for c in meta["classes"]] == head_t[2:]


def test_cli_refuses_stale_or_unsupported_exports(fitted_dir, tmp_path, capsys):
    ts = tmp_path / "test.ts"
    ts.write_bytes(gzip.decompress(datasets.path("JapaneseVowels_TEST.ts.gz").read_bytes()))
    # the same model with one weight changed, and the first model's export copied in
    clf = SequenceClassifier.load(fitted_dir)
    with torch.no_grad():
        clf.net.head.bias[0] += 1.0
    other = clf.save(tmp_path / "other")
    out = tmp_path / "p.csv"
    args = ["predict", str(other), "--data", str(ts), "--output", str(out), "--backend", "onnx"]
    # before any export, --backend onnx says what to run
    assert main(args) == 2
    assert f"write it first with `seqshape export {other}" in capsys.readouterr().err
    (other / "model.onnx").write_bytes((fitted_dir / "model.onnx").read_bytes())
    assert main(args) == 2
    assert "exported from other weights" in capsys.readouterr().err and not out.exists()
    # --out puts the file anywhere, and a fresh export makes the model usable again
    assert main(["export", str(other), "--out", str(tmp_path / "elsewhere" / "clf.onnx")]) == 0
    assert (tmp_path / "elsewhere" / "clf.onnx").is_file()
    assert main(["export", str(other)]) == 0
    assert main(args) == 0 and len(out.read_text().splitlines()) == 371
    tag = save_model_dir(
        tmp_path / "tag",
        kind="tagger",
        config={},
        state_dict={"w": torch.zeros(1)},
        preprocessing={},
    )
    assert main(["export", str(tag)]) == 2
    assert (
        "ONNX export supports the kinds classifier, forecaster, seq2seq" in capsys.readouterr().err
    )
    assert main(["export", str(fitted_dir), "--format", "tflite"]) == 2
    assert "--format: expected one of onnx, got 'tflite'" in capsys.readouterr().err


def test_onnx_classifier_z_normalises_univariate_series_like_torch(tmp_path):
    # univariate series at any level and amplitude: the estimator z-normalises each one
    # (series_norm "auto"), and the ONNX runtime must do the same before its graph
    rng = np.random.default_rng(0)
    X = [
        rng.normal(rng.uniform(-300, 300), rng.uniform(1, 50), (int(n), 1))
        for n in rng.integers(5, 90, 20)
    ]
    y = [i % 2 for i in range(20)]
    clf = SequenceClassifier(hidden_size=8, conv_channels=8, epochs=2, threads=1, progress=False)
    clf.fit(X, y)
    assert clf.series_norm_ is True
    d = clf.save(tmp_path / "m")
    export_onnx(d)
    onnx_clf = OnnxClassifier(d / "model.onnx", batch_size=3)
    assert read_metadata(d / "model.onnx")["series_norm"] is True
    np.testing.assert_allclose(onnx_clf.predict_proba(X), clf.predict_proba(X), rtol=0, atol=1e-5)
