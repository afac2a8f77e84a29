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


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("stride", [1, 3, 4])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_padding_never_changes_logits_through_the_conv_frontend(
    jv_train, bidirectional, stride, pooling
):
    cfg = ClassifierConfig(
        input_size=12,
        num_outputs=9,
        hidden_size=16,
        bidirectional=bidirectional,
        pooling=pooling,
        frontend="conv",
        conv_channels=8,
        conv_kernel=5,
        stride=stride,
        conv_summary=True,
    )
    torch.manual_seed(0)
    net = ClassifierNet(cfg).eval()
    # lengths 7-29 (some not multiples of the stride, one shorter than it) next to a long one
    seqs = list(jv_train.X[:6]) + [jv_train.X[0][:2], jv_train.X[1][:1]]
    long = np.tile(jv_train.X[6], (12, 1))
    batch = collate(seqs + [long])
    x = batch.x.clone()
    # garbage after each end: the convolutions must not read past a sequence's length
    pad = ~batch.mask
    x[pad] = torch.randn(int(pad.sum()), 12, generator=torch.Generator().manual_seed(1)) * 50
    with torch.no_grad():
        together = net(x, batch.lengths)
        for i, s in enumerate(seqs):
            alone = net(torch.as_tensor(s)[None])
            assert torch.allclose(together[i], alone[0], atol=1e-5), (
                i,
                len(s),
                (together[i] - alone[0]).abs().max(),
            )
        # the pooled lengths are ceil(T / P): a batch of equal lengths pools like its members
        assert net(torch.as_tensor(long)[None]).shape == (1, 9)


def test_conv_frontend_takes_ceil_t_over_p_recurrent_steps():
    cfg = ClassifierConfig(input_size=1, num_outputs=2, frontend="conv", stride=4, hidden_size=4)
    net = ClassifierNet(cfg)
    x = torch.randn(3, 10, 1)
    h, lengths = net.frontend(x, torch.tensor([10, 9, 4]))
    assert h.shape == (3, 3, cfg.conv_channels)
    assert lengths.tolist() == [3, 3, 1]
    assert (h[2, 1:] == 0).all()  # zero after each pooled end


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (dict(frontend="fft"), r"frontend: expected one of none, conv, got 'fft'"),
        (dict(frontend="conv", conv_kernel=4), r"conv_kernel: expected an odd width"),
        (dict(frontend="conv", stride=0), r"stride: expected a positive integer, got 0"),
        (dict(stride=2), r"expected 1 and false without a front-end, got 2 and False"),
    ],
)
def test_frontend_config_errors_name_the_field(options, match):
    from seqshape import ConfigError

    with pytest.raises(ConfigError, match=match):
        ClassifierConfig(input_size=1, num_outputs=2, **options)


def test_univariate_series_are_z_normalised_and_the_choice_is_saved(tmp_path):
    from seqshape.data.scaling import znorm_each

    rng = np.random.default_rng(0)
    # two classes told apart by shape (a rising or a falling ramp), any level and amplitude
    X, y = [], []
    for i in range(24):
        T = int(rng.integers(20, 60))
        ramp = np.linspace(-1, 1, T) * (1 if i % 2 else -1)
        X.append((rng.uniform(-500, 500) + rng.uniform(1, 100) * ramp)[:, None])
        y.append("up" if i % 2 else "down")
    clf = SequenceClassifier(hidden_size=8, conv_channels=8, epochs=30, progress=False)
    clf.fit(X, y)
    assert clf.series_norm_ is True and clf.config.stride == 1  # median length < 64
    assert clf.score(X, y) == 1.0
    z = znorm_each([X[0]])[0]
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-4
    d = clf.save(tmp_path / "m")
    import json

    assert json.loads((d / "preprocessing.json").read_text())["series_norm"] is True
    loaded = SequenceClassifier.load(d)
    assert loaded.series_norm_ is True
    assert np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    # multivariate data keep their levels across features (UEA): "auto" leaves them alone
    assert SequenceClassifier(series_norm="auto").series_norm == "auto"


def test_auto_stride_leaves_about_64_recurrent_steps():
    from seqshape.api.classifier import auto_stride

    assert auto_stride([24] * 5) == 1
    assert auto_stride([64, 65, 200]) == 2
    assert auto_stride([1460] * 3) == 23


def test_a_diverging_run_restarts_by_itself_with_a_lower_lr(jv_train):
    from seqshape import TrainingError

    X, y = jv_train.X[::9], jv_train.y[::9]
    opts = dict(hidden_size=8, conv_channels=8, epochs=5, progress=False, threads=1)
    # lr 1e3 blows the gradient up to inf in epoch 2; lr 250 trains
    clf = SequenceClassifier(lr=1e3, **opts).fit(X, y)
    [restart] = clf.metrics["restarts"]
    assert restart["lr"] == 1e3 and "gradient norm is inf" in restart["error"]
    assert clf.metrics["lr_used"] == 250.0
    assert np.isfinite(clf.predict_proba(X)).all()
    # beyond help: it gives up after two restarts and says at which rates
    with pytest.raises(TrainingError, match=r"diverged at lr 1e\+06, 250000 before, restarting"):
        SequenceClassifier(lr=1e6, **opts).fit(X, y)


def test_explain_shows_the_frontend_of_a_default_model(fitted, jv_train):
    text = str(fitted.explain(jv_train.X[:3]))
    assert "front-end" in text and "T'=" in text and "C=128" in text
    assert "mean of the outputs over valid steps; the front-end's mean" in text
