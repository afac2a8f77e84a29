"""The estimators in scikit-learn's protocol, on real data: clone, cross_val_score, GridSearchCV,
Pipeline, labels in their own type, not-fitted errors, and a fit that leaves global state alone."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.validation import check_is_fitted

from seqshape import ConfigError, datasets
from seqshape.api.base import NotFittedError
from seqshape.api.classifier import SequenceClassifier
from seqshape.api.forecaster import Forecaster
from seqshape.api.generator import SequenceGenerator
from seqshape.api.m4 import m4_series
from seqshape.api.seq2seq import Seq2Seq
from seqshape.api.tagger import SequenceTagger
from seqshape.data.m4 import read_m4

TINY_CLF = dict(hidden_size=8, conv_channels=8, epochs=2, batch_size=16, progress=False, threads=1)


@pytest.fixture(scope="module")
def vowels():
    """The first 120 training utterances of JapaneseVowels, labels as ints (speakers 1..9)."""
    train = datasets.load_japanese_vowels("train")
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(train.X), 120, replace=False))
    X = [train.X[i] for i in idx]
    y = np.array([int(train.y[i]) for i in idx])
    return X, y


@pytest.fixture(scope="module")
def m4(shared_data):
    data = read_m4(shared_data / "forecasting/m4_hourly/Hourly-train.csv")
    return m4_series(data)[:6]


ALL = [SequenceClassifier, SequenceTagger, Forecaster, Seq2Seq, SequenceGenerator]


@pytest.mark.parametrize("cls", ALL)
def test_parameters_are_the_constructor_arguments_under_their_own_names(cls):
    est = cls(seed=3, epochs=7, progress=False)
    params = est.get_params()
    assert params["seed"] == 3 and params["epochs"] == 7 and params["device"] == "cpu"
    # every constructor argument, nothing else
    import inspect

    names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert sorted(params) == sorted(names)
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    # the arguments that differ from the defaults, in the signature's order
    assert repr(est) == f"{cls.__name__}(epochs=7, seed=3, progress=False)"
    est.set_params(epochs=2)
    assert est.epochs == 2 and est.train_config.epochs == 2
    with pytest.raises(ConfigError, match="unknown parameter.*epoch\\b.*valid:"):
        est.set_params(epoch=2)
    with pytest.raises(ConfigError, match="device"):
        est.set_params(device="tpu")
    assert est.device == "cpu"  # a refused value leaves the old one
    with pytest.raises(NotFittedError, match="not fitted yet"):
        est._check_fitted()
    with pytest.raises(Exception, match="not fitted"):
        check_is_fitted(est)


def test_cuda_asked_for_without_cuda_is_one_clear_error(vowels):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the error is for machines without it")
    X, y = vowels
    with pytest.raises(ConfigError, match="device: 'cuda' asked for, but this machine has no"):
        SequenceClassifier(device="cuda", **TINY_CLF).fit(X, y)
    auto = SequenceClassifier(device="auto", **TINY_CLF).fit(X, y)
    assert next(auto.net.parameters()).device.type == "cpu"


def test_classifier_labels_keep_their_type_and_sklearn_tools_work(vowels):
    X, y = vowels
    clf = SequenceClassifier(**TINY_CLF).fit(X, y)
    check_is_fitted(clf)
    assert clf.classes_.dtype.kind == "i" and clf.n_features_in_ == 12
    pred = clf.predict(X[:30])
    assert pred.dtype.kind == "i" and set(pred) <= set(clf.classes_.tolist())
    assert accuracy_score(y[:30], pred) == pytest.approx(clf.score(X[:30], y[:30]))
    names = np.array([f"speaker{v}" for v in y])
    by_name = SequenceClassifier(**TINY_CLF).fit(X, names)
    assert by_name.classes_.dtype.kind == "U" and by_name.predict(X[:3])[0].startswith("speaker")
    scores = cross_val_score(SequenceClassifier(**TINY_CLF), X, y, cv=3)
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    search = GridSearchCV(SequenceClassifier(**TINY_CLF), {"hidden_size": [4, 8]}, cv=2)
    search.fit(X, y)
    assert search.best_params_["hidden_size"] in (4, 8)
    assert search.best_estimator_.predict(X[:2]).dtype.kind == "i"
    crop = FunctionTransformer(lambda seqs: [s[:10] for s in seqs])
    pipe = Pipeline([("crop", crop), ("clf", SequenceClassifier(**TINY_CLF))]).fit(X, y)
    assert pipe.predict(X[:4]).shape == (4,)


def test_tagger_in_sklearn_tools(vowels):
    X, y = vowels
    Y = [np.full(len(x), label) for x, label in zip(X, y)]
    tag = SequenceTagger(hidden_size=8, epochs=2, progress=False, threads=1)
    scores = cross_val_score(tag, X, Y, cv=KFold(2, shuffle=True, random_state=0))
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    fitted = clone(tag).fit(X, Y)
    assert fitted.classes_.dtype.kind == "i" and fitted.predict(X[:1])[0].dtype.kind == "i"
    folds = KFold(2, shuffle=True, random_state=0)
    search = GridSearchCV(tag, {"hidden_size": [4, 8]}, cv=folds).fit(X, Y)
    assert search.best_params_["hidden_size"] in (4, 8)


def test_forecaster_in_sklearn_tools(m4):
    fc = Forecaster(horizon=48, season=24, hidden_size=8, num_layers=1, epochs=1, progress=False)
    scores = cross_val_score(fc, m4, cv=KFold(2))
    # minus MASE: negative, and finite
    assert scores.shape == (2,) and np.all(np.isfinite(scores)) and np.all(scores < 0)
    search = GridSearchCV(fc, {"hidden_size": [4, 8]}, cv=KFold(2)).fit(m4)
    assert search.best_params_["hidden_size"] in (4, 8)
    # the fitted lookback is the data's decision, not a changed parameter
    fitted = clone(fc).fit(m4)
    assert fitted.lookback is None and fitted.options["lookback"] >= 24
    assert clone(fitted).get_params() == fc.get_params()


def test_fit_leaves_the_global_rng_and_the_thread_count_alone(vowels):
    X, y = vowels
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    SequenceClassifier(**{**TINY_CLF, "threads": 1}).fit(X, y)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads
    # and two fits with one seed still train to the same weights
    a = SequenceClassifier(**TINY_CLF).fit(X, y).net.state_dict()
    b = SequenceClassifier(**TINY_CLF).fit(X, y).net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_callback_sees_every_epoch_and_can_stop_training(vowels):
    X, y = vowels
    seen = []

    def hook(row):
        seen.append(row)
        return "stop" if row["epoch"] == 2 else None

    clf = SequenceClassifier(**{**TINY_CLF, "epochs": 6}, callback=hook).fit(X, y)
    assert [r["epoch"] for r in seen] == [1, 2]
    assert {"train_loss", "lr", "seconds"} <= set(seen[0])
    assert len(clf.train_result.history) == 2 and clf.train_result.stopped_early
    with pytest.raises(ConfigError, match="callback: expected a callable"):
        SequenceClassifier(callback="print")


def test_a_refused_parameter_is_refused_by_the_constructor_and_set_params_alike():
    for bad in ({"val_fraction": 1.5}, {"stride": 0}, {"layout": "TNF"}, {"lr": -1.0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            SequenceClassifier(**bad)
        clf = SequenceClassifier()
        with pytest.raises(ConfigError, match=next(iter(bad))):
            clf.set_params(**bad)
        assert clf.get_params() == SequenceClassifier().get_params()
