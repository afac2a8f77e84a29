"""seqshape: LSTM sequence models of every input/output shape, done right.

Shape legend: B batch · T input steps · S source steps · U target steps · K forecast horizon ·
F input features · C covariates · O output features · H hidden size · L layers · D directions ·
V vocabulary size · N classes.
"""

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    ArtifactError,
    ConfigError,
    DataError,
    SeqshapeError,
    ShapeError,
    TrainingError,
)

_LAZY = {
    "SequenceClassifier": "seqshape.api.classifier",
    "Forecaster": "seqshape.api.forecaster",
    "SeriesData": "seqshape.data.series",
    "Seq2Seq": "seqshape.api.seq2seq",
    "SequenceTagger": "seqshape.api.tagger",
    "SequenceGenerator": "seqshape.api.generator",
    "AnomalyDetector": "seqshape.anomaly.detector",
    "SequenceEncoder": "seqshape.models.encoder",
    "EncoderConfig": "seqshape.models.encoder",
}


def __getattr__(name: str):
    # Lazy re-exports keep `import seqshape` light (the CLI imports torch only when it needs it).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seqshape' has no attribute {name!r}")


__all__ = [
    "__version__",
    "SeqshapeError",
    "DataError",
    "ShapeError",
    "ConfigError",
    "ArtifactError",
    "TrainingError",
    *_LAZY,
]
