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


def __getattr__(name: str):
    # Lazy re-exports keep `import seqshape` light (the CLI imports torch only when it needs it).
    if name == "SequenceClassifier":
        from .api.classifier import SequenceClassifier

        return SequenceClassifier
    if name == "SequenceEncoder":
        from .models.encoder import SequenceEncoder

        return SequenceEncoder
    if name == "EncoderConfig":
        from .models.encoder import EncoderConfig

        return EncoderConfig
    raise AttributeError(f"module 'seqshape' has no attribute {name!r}")


__all__ = [
    "__version__",
    "SeqshapeError",
    "DataError",
    "ShapeError",
    "ConfigError",
    "ArtifactError",
    "TrainingError",
    "SequenceClassifier",
    "SequenceEncoder",
    "EncoderConfig",
]
