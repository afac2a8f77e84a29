"""Many-to-one classifier: the invariants on real JapaneseVowels sequences, the API, save/load."""

import numpy as np
import pytest
import torch

from seqshape import ArtifactError, ShapeError, datasets
from seqshape.api.classifier import SequenceClassifier
from seqshape.batching import collate
from seqshape.models.classifier import ClassifierConfig, ClassifierNet


@pytest.fixture(scope="module")
def jv_train():
    return datasets.load_japanese_vowels("train")


@pytest.fixture(scope="module")
def fitted(jv_train):
    # a short real training run shared by the API tests
    return SequenceClassifier(hidden_size=32, epochs=8, seed=0).fit(jv_train)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
def test_padding_never_changes_logits(jv_train, bidirectional, layers, pooling):
    cfg = ClassifierConfig(
        input_size=12,
        num_outputs=9,
        hidden_size=16,
        num_layers=layers,
        bidirectional=bidirectional,
        pooling=pooling,
        dropout=0.1,
    )
    net = ClassifierNet(cfg).eval()
    seqs = jv_train.X[:6]
    # one much longer sequence forces heavy padding on the others
    long = np.tile(jv_train.X[6], (12, 1))
    assert len(long) > 3 * max(len(s) for s in seqs)
    batch = collate(seqs + [long])
    with torch.no_grad():
        together = net(batch.x, batch.lengths)
        for i, s in enumerate(seqs):
            alone = net(torch.as_tensor(s)[None])
            assert torch.allclose(together[i], alone[0], atol=1e-5), (
                i,
                (together[i] - alone[0]).abs().max(),
            )


def test_batch_order_and_single_sequence(fitted, jv_train):
    X = jv_train.X[:40]
    p = fitted.predict_proba(X)
    perm = np.random.default_rng(0).permutation(40)
    p_perm = fitted.predict_proba([X[i] for i in perm])
    assert np.allclose(p[perm], p_perm, atol=1e-6)
    p_one = fitted.predict_proba([X[7]])
    assert p_one.shape == (1, 9)
    assert np.allclose(p_one[0], p[7], atol=1e-6)
    assert np.allclose(p.sum(1), 1.0, atol=1e-5)


def test_save_load_gives_identical_predictions(fitted, jv_train, tmp_path):
    fitted.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "metrics.json",
        "model.safetensors",
        "preprocessing.json",
    ]
    loaded = SequenceClassifier.load(tmp_path / "m")
    X = jv_train.X[:50]
    assert np.array_equal(fitted.predict_proba(X), loaded.predict_proba(X))
    assert list(loaded.predict(X)) == list(fitted.predict(X))


def test_tiny_overfit_drives_training_loss_near_zero(jv_train):
    X, y = jv_train.X[::17][:16], jv_train.y[::17][:16]
    clf = SequenceClassifier(
        hidden_size=32,
        epochs=150,
        lr=1e-2,
        val_fraction=0.0,
        seed=0,
        label_smoothing=0.0,
        dropout=0.0,
    )
    clf.fit(X, y)
    assert clf.train_result.history[-1]["train_loss"] < 0.05
    assert list(clf.predict(X)) == list(y)


def test_training_is_deterministic(jv_train):
    X, y = jv_train.X[::4], jv_train.y[::4]
    a = SequenceClassifier(hidden_size=16, epochs=3, seed=3).fit(X, y)
    b = SequenceClassifier(hidden_size=16, epochs=3, seed=3).fit(X, y)
    for k, v in a.net.state_dict().items():
        assert torch.equal(v, b.net.state_dict()[k]), k


def test_input_errors_name_the_argument(fitted, jv_train):
    x = jv_train.X[0]
    with pytest.raises(ShapeError, match=r"a single sequence\? pass \[x\]"):
        fitted.predict_proba(x)
    with pytest.raises(ShapeError, match=r"X\[1\]: expected \(T, F=12\), got \(20, 11\)"):
        fitted.predict_proba([x, np.zeros((20, 11), np.float32)])
    with pytest.raises(
        ShapeError, match=r"X\[0\]: expected \(T, F=12\), got \(12, 20\) — is it \(F, T\)"
    ):
        fitted.predict_proba([np.zeros((12, 20), np.float32)])


def test_damaged_model_files_raise_artifact_error(fitted, tmp_path):
    d = fitted.save(tmp_path / "m")
    raw = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ArtifactError, match="model.safetensors"):
        SequenceClassifier.load(d)
    fitted.save(d)
    text = (d / "config.json").read_text().replace('"hidden_size": 32', '"hidden_size": 33')
    (d / "config.json").write_text(text)
    with pytest.raises(ArtifactError, match="expected shape"):
        SequenceClassifier.load(d)
