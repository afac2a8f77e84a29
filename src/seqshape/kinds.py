"""The one registry of model kinds: for each kind a model directory records (config.json's
``kind``), everything the library does with it, as ``module:attribute`` strings imported only when
needed (no import cycles, no torch in the ONNX runtime's path).

A new kind is one entry here plus the modules it names; the CLI, the ONNX export and runtime, the
server and ``seqshape explain`` all look it up here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Kind:
    name: str  # what config.json records
    mode: str  # the CLI's name for the shape mode (`seqshape train MODE`)
    estimator: str  # the scikit-learn style class
    cli: str  # the CLI module with its evaluate/predict commands
    exporter: str | None = None  # ModelFiles -> OnnxExport
    onnx_runner: str | None = None  # the ONNX Runtime class
    adapter: str | None = None  # the server's adapter class
    evaluates: bool = True  # `seqshape evaluate/predict DIR` go to ``cli``


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "classifier",
            "classify",
            "seqshape.api.classifier:SequenceClassifier",
            "seqshape.cli.classify",
            exporter="seqshape.infer.export:_export_classifier",
            onnx_runner="seqshape.infer.onnx_runtime:OnnxClassifier",
            adapter="seqshape.serve.adapters:ClassifierAdapter",
        ),
        Kind(
            "forecaster",
            "forecast",
            "seqshape.api.forecaster:Forecaster",
            "seqshape.cli.forecast",
            exporter="seqshape.infer.export:_export_forecaster",
            onnx_runner="seqshape.infer.onnx_runtime:OnnxForecaster",
            adapter="seqshape.serve.forecast_adapter:ForecasterAdapter",
        ),
        Kind(
            "seq2seq",
            "seq2seq",
            "seqshape.api.seq2seq:Seq2Seq",
            "seqshape.cli.seq2seq",
            exporter="seqshape.infer.export:_export_seq2seq",
            onnx_runner="seqshape.infer.onnx_runtime:OnnxSeq2Seq",
        ),
        Kind("tagger", "tag", "seqshape.api.tagger:SequenceTagger", "seqshape.cli.tag"),
        Kind(
            "generator",
            "generate",
            "seqshape.api.generator:SequenceGenerator",
            "seqshape.cli.generate",
        ),
        Kind(
            "detector",
            "detect",
            "seqshape.anomaly.detector:AnomalyDetector",
            "seqshape.cli.anomaly",
            adapter="seqshape.serve.adapters:DetectorAdapter",
            evaluates=False,  # scored by `seqshape detect` and `seqshape nab`
        ),
    )
}


def load(target: str) -> Any:
    """``"package.module:attribute"`` -> the attribute (``"package.module"`` -> the module)."""
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj


def kinds_with(role: str) -> list[str]:
    """The kinds that have ``role`` (e.g. "exporter", "adapter"), in registry order."""
    return [name for name, k in KINDS.items() if getattr(k, role)]


def resolve(kind: str, role: str, *, where: str = "", what: str = "") -> Any:
    """The object playing ``role`` for ``kind``; a kind without it is a ConfigError naming the
    kinds that have it (``where``: the model directory; ``what``: the action, for the message)."""
    entry = KINDS.get(kind)
    target = getattr(entry, role) if entry is not None else None
    if target is None:
        have = ", ".join(sorted(kinds_with(role)))
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}{what or role} supports the kinds {have}; got a {kind!r} model")
    return load(target)


def by_mode(mode: str) -> Kind | None:
    return next((k for k in KINDS.values() if k.mode == mode), None)
