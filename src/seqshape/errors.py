"""The error hierarchy.

Every error a *user* can cause (bad file, wrong shape, bad option, damaged model directory) is a
`SeqshapeError`; the CLI prints its message on one line and exits with code 2. Anything else is a
programming error and keeps its traceback.

Messages name where (file, line, field or argument), what was expected and what came:
``DataError: train.ts line 214: expected 12 features, got 11``.
"""

from __future__ import annotations


class SeqshapeError(Exception):
    """Base class of every user-facing error."""


class DataError(SeqshapeError, ValueError):
    """A data file or in-memory data set is malformed (names the file/line/field)."""


class ShapeError(SeqshapeError, ValueError):
    """A tensor or array has the wrong shape (names the argument, expected and actual shape)."""


class ConfigError(SeqshapeError, ValueError):
    """An option or configuration value is invalid."""


class ArtifactError(SeqshapeError):
    """A model directory is missing, incomplete, damaged or of an unknown version."""


class TrainingError(SeqshapeError):
    """Training cannot go on (a NaN/inf loss, names the epoch and step)."""
