"""Token-sequence pairs for seq2seq: TSV readers, a CMUdict reader and a split by unique source.

A `PairSet` holds ``sources[i]`` and ``targets[i]`` as lists of string tokens (the vocabulary turns
them into ids later). Two file formats are read (docs/seq2seq-data.md describes them in full):

- **TSV**: ``source<TAB>target[<TAB>ignored...]`` per line, e.g. the Tatoeba ``eng-fra.txt`` whose
  third column is the attribution. Tokens come from one of three tokenisations:
  ``"space"`` (split on whitespace), ``"char"`` (every character, spaces included, runs of
  whitespace collapsed to one space) or ``"words"`` (words kept whole, each punctuation mark its
  own token: ``"Go."`` -> ``["Go", "."]``, ``"I'm"`` stays one token).
- **CMUdict**: ``word PH1 PH2 ...`` per line, ``word(2)`` for the second pronunciation of
  ``word``, an optional ``# comment`` at the end of the line. Sources are the word's characters,
  lowercased; targets are the phonemes (``AH0``: stress digit 0/1/2 on vowels, optionally stripped).

`split_by_source` splits by *unique* source so that a source never lands in two splits (all
pronunciations of a word, all translations of a sentence go to the same side): a model is never
tested on an input it was trained on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ConfigError, DataError
from .cells import shown

Tokenize = Literal["space", "char", "words"]
TOKENIZE_CHOICES: tuple[str, ...] = ("space", "char", "words")
FORMAT_CHOICES: tuple[str, ...] = ("tsv", "cmudict", "auto")

# A word: letters/digits/underscore, with inner apostrophes or hyphens ("I'm", "aujourd'hui",
# "well-known"); anything else that is not a space is one punctuation token.
_WORDS_RE = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]")
# ``word(2)``: an alternate pronunciation of ``word``.
_ALTERNATE_RE = re.compile(r"^(?P<word>.+)\((?P<n>\d+)\)$")
# A CMUdict phoneme: capital letters, with a stress digit on vowels.
_PHONEME_RE = re.compile(r"^[A-Z]+[0-9]?$")
_STRESS_RE = re.compile(r"[0-9]$")


@dataclass
class PairSet:
    """Parallel lists of token sequences; ``source`` says where they came from (file or split)."""

    sources: list[list[str]]
    targets: list[list[str]]
    source: str

    def __post_init__(self) -> None:
        if len(self.sources) != len(self.targets):
            raise DataError(
                f"{self.source}: expected as many targets as sources, "
                f"got {len(self.sources)} sources and {len(self.targets)} targets"
            )

    def __len__(self) -> int:
        return len(self.sources)

    def subset(self, indices: Sequence[int], source: str | None = None) -> PairSet:
        """The pairs at ``indices`` (in that order), as a new PairSet."""
        return PairSet(
            sources=[self.sources[i] for i in indices],
            targets=[self.targets[i] for i in indices],
            source=self.source if source is None else source,
        )

    def unique_sources(self) -> int:
        """How many distinct source sequences there are."""
        return len({tuple(s) for s in self.sources})


def tokenize_text(text: str, tokenize: str = "space") -> list[str]:
    """Split one string into tokens: ``"space"``, ``"char"`` or ``"words"`` (see module doc)."""
    if tokenize == "space":
        return text.split()
    if tokenize == "char":
        return list(" ".join(text.split()))
    if tokenize == "words":
        return _WORDS_RE.findall(text)
    raise ConfigError(f"tokenize: expected one of {TOKENIZE_CHOICES}, got {tokenize!r}")


def detokenize(tokens: Sequence[str], tokenize: str = "space") -> str:
    """Inverse of `tokenize_text` up to whitespace: ``"char"`` joins with '', others with ' '."""
    if tokenize not in TOKENIZE_CHOICES:
        raise ConfigError(f"tokenize: expected one of {TOKENIZE_CHOICES}, got {tokenize!r}")
    return ("" if tokenize == "char" else " ").join(tokens)


def _read_lines(path: Path) -> list[str]:
    """The file's lines, decoded as UTF-8 one by one so a bad byte is reported with its line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: expected a file, got a directory") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines = []
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            lines.append(chunk.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as e:
            raise DataError(
                f"{path} line {number}: expected UTF-8 text, got byte {chunk[e.start]:#04x} "
                f"at column {e.start + 1}"
            ) from None
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return lines


def _resolve_tokenize(char: bool, tokenize: str | None) -> str:
    if char and tokenize not in (None, "char"):
        raise ConfigError(f"char=True means tokenize='char', but tokenize={tokenize!r} was given")
    mode = "char" if char else (tokenize or "space")
    if mode not in TOKENIZE_CHOICES:
        raise ConfigError(f"tokenize: expected one of {TOKENIZE_CHOICES}, got {mode!r}")
    return mode


def read_tsv_pairs(
    path: str | Path,
    *,
    char: bool = False,
    lowercase: bool = False,
    tokenize: Tokenize | None = None,
) -> PairSet:
    """Read ``source<TAB>target[<TAB>ignored...]`` lines into a PairSet.

    Columns after the second (Tatoeba's attribution) are ignored. Blank lines are skipped.
    ``char=True`` is short for ``tokenize="char"``; the default tokenisation is ``"space"``.
    ``lowercase`` lowercases both sides before tokenising. Raises DataError naming the file and
    the 1-based line for a line without a tab or with an empty source or target.
    """
    mode = _resolve_tokenize(char, tokenize)
    path = Path(path)
    sources: list[list[str]] = []
    targets: list[list[str]] = []
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(
                f"{path} line {number}: expected 'source<TAB>target', got no tab in {line[:40]!r}"
            )
        src, tgt = fields[0], fields[1]
        if lowercase:
            src, tgt = src.lower(), tgt.lower()
        src_tokens = tokenize_text(src, mode)
        tgt_tokens = tokenize_text(tgt, mode)
        if not src_tokens:
            raise DataError(f"{path} line {number}: expected a non-empty source, got {src!r}")
        if not tgt_tokens:
            raise DataError(f"{path} line {number}: expected a non-empty target, got {tgt!r}")
        sources.append(src_tokens)
        targets.append(tgt_tokens)
    if not sources:
        raise DataError(f"{path}: expected at least one 'source<TAB>target' line, got none")
    return PairSet(sources=sources, targets=targets, source=str(path))


def read_cmudict(
    path: str | Path,
    *,
    strip_stress: bool = False,
    alternates: Literal["all", "first"] = "all",
) -> PairSet:
    """Read a CMUdict file: graphemes (the word's characters, lowercased) -> phonemes.

    ``word(2)``, ``word(3)`` ... are alternate pronunciations of ``word``: with ``alternates="all"``
    each is its own pair with the same source, and all pairs of one word are adjacent (in the
    order of the word's first line); with ``"first"`` only the first pronunciation is kept.
    ``strip_stress`` drops the stress digit from vowels (``AH0`` -> ``AH``); pronunciations of a
    word that become identical are kept once. ``# comment`` at a line's end and ``;;;`` comment
    lines (older releases) are ignored. Errors name the file and the 1-based line.
    """
    if alternates not in ("all", "first"):
        raise ConfigError(f"alternates: expected 'all' or 'first', got {alternates!r}")
    path = Path(path)
    # word -> its pronunciations, in file order; dicts keep the words' first-seen order.
    prons: dict[str, list[tuple[str, ...]]] = {}
    for number, line in enumerate(_read_lines(path), start=1):
        if line.startswith(";;;"):
            continue
        body = line.split("#", 1)[0]
        fields = body.split()
        if not fields:
            continue
        head, phonemes = fields[0], fields[1:]
        match = _ALTERNATE_RE.match(head)
        word = (match.group("word") if match else head).lower()
        if not phonemes:
            raise DataError(
                f"{path} line {number}: expected 'word PH1 PH2 ...', got no phonemes for {shown(head)}"
            )
        for ph in phonemes:
            if not _PHONEME_RE.match(ph):
                raise DataError(
                    f"{path} line {number}: expected phonemes like 'AH0' or 'K', got {shown(ph)}"
                )
        if strip_stress:
            phonemes = [_STRESS_RE.sub("", ph) for ph in phonemes]
        known = prons.setdefault(word, [])
        pron = tuple(phonemes)
        if pron not in known and not (alternates == "first" and known):
            known.append(pron)
    if not prons:
        raise DataError(f"{path}: expected at least one 'word PH1 PH2 ...' line, got none")
    sources: list[list[str]] = []
    targets: list[list[str]] = []
    for word, word_prons in prons.items():
        for pron in word_prons:
            sources.append(list(word))
            targets.append(list(pron))
    return PairSet(sources=sources, targets=targets, source=str(path))


def read_pairs(
    path: str | Path,
    format: Literal["tsv", "cmudict", "auto"] = "auto",
    *,
    tokenize: Tokenize = "space",
    lowercase: bool = False,
    strip_stress: bool = False,
    alternates: Literal["all", "first"] = "all",
) -> PairSet:
    """Read pairs in ``format``: ``"tsv"``, ``"cmudict"`` or ``"auto"`` (``.dict`` -> cmudict).

    ``tokenize``/``lowercase`` apply to TSV, ``strip_stress``/``alternates`` to CMUdict; giving an
    option that does not apply to the format is a ConfigError rather than silently ignored.
    """
    if format not in FORMAT_CHOICES:
        raise ConfigError(f"format: expected one of {FORMAT_CHOICES}, got {format!r}")
    if format == "auto":
        format = "cmudict" if Path(path).suffix.lower() == ".dict" else "tsv"
    if format == "tsv":
        if strip_stress or alternates != "all":
            raise ConfigError(
                "strip_stress/alternates: apply to format 'cmudict' only, got format 'tsv'"
            )
        return read_tsv_pairs(path, tokenize=tokenize, lowercase=lowercase)
    if tokenize != "space" or lowercase:
        raise ConfigError(
            "tokenize/lowercase: apply to format 'tsv' only (CMUdict sources are always "
            "lowercased characters), got format 'cmudict'"
        )
    return read_cmudict(path, strip_stress=strip_stress, alternates=alternates)


def _source_rank(key: tuple[str, ...], seed: int) -> bytes:
    """A pseudo-random but reproducible sort key for a source (stable across runs and versions)."""
    text = f"{seed}\x1e" + "\x1f".join(key)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Split n items by fractions (largest remainder); every non-zero fraction gets >= 1 item."""
    exact = [f * n for f in fractions]
    counts = [int(x) for x in exact]
    order = sorted(
        (i for i, f in enumerate(fractions) if f > 0), key=lambda i: (-(exact[i] - counts[i]), i)
    )
    for k in range(n - sum(counts)):
        counts[order[k % len(order)]] += 1
    for i, f in enumerate(fractions):
        if f > 0 and counts[i] == 0:
            donor = max(range(len(counts)), key=lambda j: (counts[j], -j))
            counts[donor] -= 1
            counts[i] += 1
    return counts


def split_by_source(
    pairs: PairSet,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> tuple[PairSet, ...]:
    """Split into ``len(fractions)`` PairSets by unique source; no source is in two splits.

    The unique sources are put in a pseudo-random order given by a hash of ``(seed, source)``, so
    the split depends only on the set of sources and the seed (not on file order, the Python or
    NumPy version), and a source keeps its side when other sources are added. ``fractions`` are
    shares of unique sources (not of pairs); each split keeps its pairs in the original order.
    """
    fractions = [float(f) for f in fractions]
    if not fractions or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(
            f"fractions: expected non-negative numbers that sum to 1, got {tuple(fractions)}"
        )
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, src in enumerate(pairs.sources):
        groups.setdefault(tuple(src), []).append(i)
    nonzero = sum(f > 0 for f in fractions)
    if len(groups) < nonzero:
        raise DataError(
            f"{pairs.source}: expected at least {nonzero} unique sources to split into "
            f"{nonzero} non-empty parts, got {len(groups)}"
        )
    keys = sorted(groups, key=lambda k: _source_rank(k, seed))
    counts = _split_counts(len(keys), fractions)
    parts = []
    start = 0
    for part, count in enumerate(counts):
        chosen = keys[start : start + count]
        start += count
        indices = sorted(i for key in chosen for i in groups[key])
        name = f"{pairs.source} [part {part + 1} of {len(counts)}]"
        parts.append(pairs.subset(indices, source=name))
    return tuple(parts)
