"""The data layer: readers, checks and scalers for sequence data sets."""

from .scaling import StandardScaler
from .sequences import SequenceSet, from_arrays, read_long_csv, read_sequences, read_ts

__all__ = [
    "SequenceSet",
    "StandardScaler",
    "from_arrays",
    "read_long_csv",
    "read_sequences",
    "read_ts",
]
