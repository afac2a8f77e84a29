"""Small demo data sets shipped inside the package (sources and licences: README.md here).

- ``JapaneseVowels_TRAIN.ts.gz`` / ``JapaneseVowels_TEST.ts.gz``: 270 / 370 utterances, 12 features,
  7-29 steps, 9 speakers (many-to-one classification);
- ``AirPassengers.csv``: monthly airline passengers 1949-1960 (forecasting).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ..data.sequences import SequenceSet, read_ts
from ..errors import ConfigError, DataError

SPLITS = ("train", "test")


def available() -> list[str]:
    """Names of the bundled data files."""
    root = files(__name__)
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_file() and not p.name.endswith((".py", ".pyc")) and p.name != "README.md"
    )


def path(name: str) -> Path:
    """The file system path of a bundled data file, e.g. ``path("AirPassengers.csv")``."""
    names = available()
    if name not in names:
        raise DataError(f"no bundled data set {name!r}; available: {', '.join(names)}")
    return Path(str(files(__name__) / name))


def load_japanese_vowels(split: str = "train") -> SequenceSet:
    """The UEA JapaneseVowels split ("train": 270 sequences, "test": 370), labels "1".."9"."""
    if split not in SPLITS:
        raise ConfigError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    return read_ts(path(f"JapaneseVowels_{split.upper()}.ts.gz"))
