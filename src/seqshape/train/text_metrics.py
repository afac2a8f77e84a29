"""Metrics for token-sequence outputs: edit distance, token error rate, exact match, BLEU.

References and hypotheses are token lists (``["HH", "AH0", "L", "OW1"]``). A reference may also be
a list of *alternative* token lists (a word's several CMUdict pronunciations, a sentence's several
translations): the error metrics then count the alternative closest to the hypothesis, and BLEU
uses them all as references -- the usual convention for G2P and for multi-reference BLEU.

G2P papers report two numbers, and this module follows their convention:
- phoneme error rate (PER) = `token_error_rate`: summed edit distances / summed reference lengths;
- "word error rate" (WER) = `wer_sentence_level`: the share of words whose predicted pronunciation
  is not exactly right, i.e. ``1 - exact_match``. This is *not* the ASR word error rate, which is
  the token error rate computed on word tokens.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from ..errors import ConfigError, DataError

Tokens = Sequence[Hashable]


def edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning a into b."""
    if len(a) < len(b):
        a, b = b, a
    # one row of the (len(a)+1) x (len(b)+1) table: distances from a[:i] to every prefix of b
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(
                min(
                    previous[j] + 1,  # delete x
                    current[j - 1] + 1,  # insert y
                    previous[j - 1] + (x != y),  # substitute (free when equal)
                )
            )
        previous = current
    return previous[-1]


def _alternatives(ref: Sequence) -> list[Sequence[Hashable]]:
    """A reference as a list of alternatives: one token list, or a list of token lists."""
    if isinstance(ref, str):
        raise DataError(f"reference: expected a list of tokens, got the string {ref[:20]!r}")
    if len(ref) > 0 and all(isinstance(r, (list, tuple)) for r in ref):
        return list(ref)
    return [ref]


def _check_pairs(refs: Sequence, hyps: Sequence) -> None:
    if len(refs) != len(hyps):
        raise DataError(
            f"refs/hyps: expected as many hypotheses as references, got {len(refs)} references "
            f"and {len(hyps)} hypotheses"
        )
    if len(refs) == 0:
        raise DataError("refs: expected at least one reference, got none")


def _closest(ref: Sequence, hyp: Tokens) -> tuple[int, int]:
    """(edit distance, reference length) for the alternative closest to hyp."""
    scored = [(edit_distance(alt, hyp), len(alt)) for alt in _alternatives(ref)]
    # closest first; among equally close, the longer reference (a smaller rate)
    return min(scored, key=lambda s: (s[0], -s[1]))


def token_error_rate(refs: Sequence, hyps: Sequence[Tokens]) -> float:
    """Summed edit distances / summed reference lengths (PER for phonemes, CER for characters)."""
    _check_pairs(refs, hyps)
    errors = 0
    total = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        distance, length = _closest(ref, hyp)
        errors += distance
        total += length
    if total == 0:
        raise DataError("refs: expected at least one non-empty reference, got only empty ones")
    return errors / total


def exact_match(refs: Sequence, hyps: Sequence[Tokens]) -> float:
    """The share of hypotheses equal to their reference (to one of its alternatives)."""
    _check_pairs(refs, hyps)
    hits = sum(
        any(list(alt) == list(hyp) for alt in _alternatives(ref))
        for ref, hyp in zip(refs, hyps, strict=True)
    )
    return hits / len(refs)


def wer_sentence_level(refs: Sequence, hyps: Sequence[Tokens]) -> float:
    """``1 - exact_match``: G2P's "word error rate" (a word is wrong unless all its phonemes are)."""
    return 1.0 - exact_match(refs, hyps)


def bleu(refs: Sequence, hyps: Sequence[Tokens], *, joiner: str = " ") -> float:
    """Corpus BLEU (0-100) with sacrebleu's ``corpus_bleu`` and its default settings.

    Tokenisation: each token list is first joined back into a string with ``joiner`` (``" "`` for
    word tokens, ``""`` for character tokens whose spaces are tokens themselves); sacrebleu then
    applies its own standard ``13a`` tokenisation (punctuation split off) to hypotheses and
    references alike, so the score does not depend on how the data was tokenised for the model.
    Strings are accepted in place of token lists and used as they are.
    """
    _check_pairs(refs, hyps)
    try:
        import sacrebleu
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "bleu: needs the sacrebleu package: pip install 'seqshape[text]'"
        ) from None

    def text(tokens: Sequence[Hashable] | str) -> str:
        return tokens if isinstance(tokens, str) else joiner.join(str(t) for t in tokens)

    hyp_lines = [text(h) for h in hyps]
    alts = [
        [ref] if isinstance(ref, str) else [text(a) for a in _alternatives(ref)] for ref in refs
    ]
    # sacrebleu wants one stream per reference slot; a missing alternative is None
    width = max(len(a) for a in alts)
    streams = [[a[i] if i < len(a) else None for a in alts] for i in range(width)]
    return float(sacrebleu.corpus_bleu(hyp_lines, streams).score)
