"""The classifier's kernel part (models/kernels.py): padding never changes an answer, the ridge's
leave-one-out shortcut equals refitting, the mixture with the LSTM, save/load and ONNX."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from seqshape import ConfigError, datasets
from seqshape.api.classifier import SequenceClassifier
from seqshape.batching import collate
from seqshape.data.sequences import read_sequences
from seqshape.models.classifier import ClassifierConfig, ClassifierNet
from seqshape.models.kernels import (
    N_KERNELS,
    DualRidge,
    class_codes,
    fit_kernel_part,
    kernel_weights,
    plan,
)


@pytest.fixture(scope="module")
def jv_train():
    return datasets.load_japanese_vowels("train")


@pytest.fixture(scope="module")
def arrowhead(shared_data):
    d = shared_data / "classification" / "ucr" / "ArrowHead"
    return read_sequences(d / "ArrowHead_TRAIN.ts"), read_sequences(d / "ArrowHead_TEST.ts")


def _codes(y):
    classes = sorted(set(y))
    return np.array([classes.index(v) for v in y]), len(classes)


def test_the_84_kernels_sum_to_zero_and_differ():
    w = kernel_weights()
    assert w.shape == (N_KERNELS, 9) == (84, 9)
    assert torch.all(w.sum(1) == 0)
    assert len({tuple(r.tolist()) for r in w}) == 84


@pytest.mark.parametrize("length", [7, 24, 251, 1460])
def test_dilations_reach_the_series_length_and_share_out_the_features(length):
    dilations, quantiles = plan(length, 10_000)
    assert dilations[0] == 1 and list(dilations) == sorted(set(dilations))
    # the widest kernel spans about the series: 8 * d_max <= length - 1 (or d = 1 for short ones)
    assert 8 * dilations[-1] <= max(8, length - 1)
    assert 8 * dilations[-1] * 2 > length - 1 or dilations[-1] == 1
    assert N_KERNELS * sum(quantiles) <= 10_000 and N_KERNELS * sum(quantiles) > 9_000


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("data", ["jv", "arrowhead"])
def test_padding_never_changes_the_kernel_part_or_the_mixture(
    data, bidirectional, jv_train, arrowhead
):
    if data == "jv":
        X, y = list(jv_train.X[:40]), jv_train.y[:40]
    else:
        # ArrowHead cut to different lengths, the shortest below one kernel's width
        rng = np.random.default_rng(0)
        X = [a[: int(rng.integers(5, len(a) + 1))] for a in arrowhead[0].X]
        X[0] = X[0][:4]
        y = arrowhead[0].y
    codes, n = _codes(list(y))
    part, _ = fit_kernel_part(X, codes, n, 2_000, seed=0)
    F = X[0].shape[1]
    cfg = ClassifierConfig(
        input_size=F,
        num_outputs=n,
        hidden_size=8,
        bidirectional=bidirectional,
        pooling="mean",
        frontend="conv",
        conv_channels=8,
        conv_kernel=5,
        stride=3,
        conv_summary=True,
        kernels=2_000,
        kernel_dilations=part.dilations,
        kernel_quantiles=part.quantiles,
    )
    torch.manual_seed(0)
    net = ClassifierNet(cfg).eval()
    net.kernel_part.load_state_dict(part.state_dict())
    seqs = X[:8]
    long = np.tile(X[8], (6, 1))
    batch = collate(seqs + [long])
    x = batch.x.clone()
    # garbage after each end: neither part may read past a sequence's length
    pad = ~batch.mask
    x[pad] = torch.randn(int(pad.sum()), F, generator=torch.Generator().manual_seed(1)) * 50
    with torch.no_grad():
        for which in ("all", "kernels"):
            together = net(x, batch.lengths, part=which)
            for i, s in enumerate(seqs):
                alone = net(torch.as_tensor(s, dtype=torch.float32)[None], part=which)
                assert torch.allclose(together[i], alone[0], atol=1e-5), (which, i, len(s))
        feats = net.kernel_part.features(x, batch.lengths)
    assert feats.shape == (9, part.n_features)
    assert float(feats.min()) >= 0.0 and float(feats.max()) <= 1.0


def test_leave_one_out_shortcut_equals_refitting_without_each_row(arrowhead):
    train, _ = arrowhead
    codes, n = _codes(list(train.y))
    part, _ = fit_kernel_part(list(train.X), codes, n, 1_000, seed=0)
    b = collate(list(train.X))
    Z = part.features(b.x, b.lengths).double()
    Z = (Z - Z.mean(0)) / Z.std(0, unbiased=False).clamp(min=1e-12)
    Y = class_codes(codes, n)
    ridge = DualRidge(Z, Y)
    for alpha in (0.5, 30.0):
        loo = ridge.loo(alpha)
        for i in (0, 7, 35):
            keep = torch.arange(len(Z)) != i
            Zk, Yk = Z[keep], Y[keep]
            zm, ym = Zk.mean(0), Yk.mean(0)
            # the primal ridge with an unpenalised intercept on the other rows
            A = (Zk - zm).T @ (Zk - zm) + alpha * torch.eye(Z.shape[1], dtype=torch.float64)
            W = torch.linalg.solve(A, (Zk - zm).T @ (Yk - ym))
            refit = (Z[i] - zm) @ W + ym
            assert torch.allclose(loo[i], refit, atol=1e-6), (alpha, i)


def test_the_classifier_reports_each_part_and_keeps_it_through_save_and_onnx(arrowhead, tmp_path):
    from seqshape.infer.export import export_onnx, read_metadata
    from seqshape.infer.onnx_runtime import OnnxClassifier

    train, test = arrowhead
    clf = SequenceClassifier(
        epochs=2, hidden_size=8, conv_channels=8, kernels=3_000, seed=0, progress=False
    ).fit(train)
    report = clf.metrics["kernel_part"]
    assert report["features"] == clf.net.kernel_part.n_features
    assert 0.0 <= report["loo_accuracy"] <= 1.0
    ev = clf.evaluate(test)
    parts = ev["parts"]
    assert parts["all"] == round(ev["accuracy"], 4)
    # two epochs of LSTM on 36 series know little; the fitted kernel part already knows ArrowHead
    assert parts["kernels"] > parts["lstm"] and parts["kernels"] > 0.7
    d = clf.save(tmp_path / "m")
    same = SequenceClassifier.load(d)
    assert same.config.kernel_dilations == clf.config.kernel_dilations
    np.testing.assert_allclose(same.predict_proba(test), clf.predict_proba(test), atol=1e-6)
    path = export_onnx(d)
    assert read_metadata(path)["parts"]["classifier"]["max_abs_diff_vs_torch"] <= 1e-4
    onnx = OnnxClassifier(path)
    np.testing.assert_allclose(onnx.predict_proba(test), clf.predict_proba(test), atol=1e-4)


def test_kernel_weight_moves_the_mixture_between_the_parts(arrowhead):
    train, test = arrowhead
    clf = SequenceClassifier(
        epochs=1, hidden_size=8, conv_channels=8, kernels=1_000, seed=0, progress=False
    ).fit(train)
    X = list(test.X[:20])
    lstm = clf._logits(X, part="lstm").softmax(1)
    kern = clf._logits(X, part="kernels").softmax(1)
    for w in (0.0, 0.3, 1.0):
        clf.net.config = clf.config = replace(clf.config, kernel_weight=w)
        mixed = clf._logits(X).softmax(1)
        assert torch.allclose(mixed, (1 - w) * lstm + w * kern, atol=1e-5), w


def test_kernel_options_are_checked():
    with pytest.raises(ConfigError, match=r"kernels: expected 0 or a positive integer, got -1"):
        ClassifierConfig(input_size=1, num_outputs=2, kernels=-1)
    with pytest.raises(ConfigError, match=r"kernel_weight: expected a value in \[0, 1\], got 2"):
        ClassifierConfig(input_size=1, num_outputs=2, kernel_weight=2)
    with pytest.raises(ConfigError, match="expected 0 for regression"):
        ClassifierConfig(input_size=1, num_outputs=1, task="regression", kernels=100)
    with pytest.raises(ConfigError, match="no kernel part"):
        ClassifierNet(ClassifierConfig(input_size=1, num_outputs=2))(
            torch.zeros(1, 5, 1), part="kernels"
        )


def test_the_estimator_checks_its_kernel_options_when_they_are_set():
    with pytest.raises(ConfigError, match=r"kernel_weight: expected a value in \[0, 1\], got 2"):
        SequenceClassifier(kernel_weight=2.0)
    clf = SequenceClassifier(kernels=500)
    with pytest.raises(ConfigError, match="kernels: expected 0 or a positive integer, got -1"):
        clf.set_params(kernels=-1)
    assert clf.kernels == 500  # the refused value left the old one
