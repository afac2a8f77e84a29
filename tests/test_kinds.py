"""The one registry of model kinds: every entry imports, and agrees with what it names."""

import importlib

import pytest

from seqshape import ConfigError, kinds


@pytest.mark.parametrize("kind", sorted(kinds.KINDS))
def test_every_role_of_every_kind_imports_and_agrees(kind):
    k = kinds.KINDS[kind]
    est = kinds.load(k.estimator)
    # the estimator's module writes model directories of this kind
    assert importlib.import_module(est.__module__).KIND == kind
    assert hasattr(kinds.load(k.cli), "__file__")
    for role in ("exporter", "onnx_runner", "adapter"):
        if getattr(k, role):
            assert callable(kinds.load(getattr(k, role)))


def test_a_role_a_kind_lacks_is_one_error_naming_the_kinds_that_have_it():
    with pytest.raises(
        ConfigError,
        match=r"ONNX export supports the kinds classifier, forecaster, seq2seq; got a 'tagger' model",
    ):
        kinds.resolve("tagger", "exporter", what="ONNX export")
    with pytest.raises(
        ConfigError, match="the server supports the kinds classifier, detector, forecaster"
    ):
        kinds.resolve("nonsense", "adapter", what="the server")
