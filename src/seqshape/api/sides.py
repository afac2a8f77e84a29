"""What the sequence estimators (`Seq2Seq`, `SequenceTagger`, `SequenceGenerator`) share: one side
of the data (tokens with a vocabulary, or values with a scaler), checks of lists of arrays, the
validation split by unique source, and the token and value metrics."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..batching import pad_sequences
from ..data.pairs import PairSet
from ..data.scaling import StandardScaler
from ..data.vocab import Vocab, pad_batch
from ..errors import ArtifactError, ConfigError, DataError
from ..shapes import check_feature_counts
from ..train import text_metrics


# -- one side of the data: tokens or values -----------------------------------------------------
def sequence_kind(seqs: Sequence, name: str) -> str:
    """``"tokens"`` for lists of strings, ``"values"`` for (T, F) arrays; errors name the index."""
    if len(seqs) == 0:
        raise DataError(f"{name}: expected at least one sequence, got none")
    first = seqs[0]
    if isinstance(first, str):
        raise DataError(
            f"{name}[0]: expected a list of tokens or a (T, F) array, got the string "
            f"{first[:20]!r} — split it into tokens first (e.g. list(word) or text.split())"
        )
    if isinstance(first, (list, tuple)) and (len(first) == 0 or isinstance(first[0], str)):
        for i, s in enumerate(seqs):
            if isinstance(s, str) or not isinstance(s, (list, tuple)):
                raise DataError(f"{name}[{i}]: expected a list of tokens, got {type(s).__name__}")
            if len(s) == 0:
                raise DataError(f"{name}[{i}]: expected at least one token, got an empty list")
            for tok in s:
                if not isinstance(tok, str):
                    raise DataError(f"{name}[{i}]: expected string tokens, got {tok!r}")
        return "tokens"
    return "values"


def _as_arrays(seqs: Sequence, name: str, features: int | None = None) -> list[np.ndarray]:
    arrays = []
    for i, a in enumerate(seqs):
        try:
            a = np.asarray(a, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise DataError(f"{name}[{i}]: expected an array of numbers ({e})") from None
        arrays.append(a)
    check_feature_counts(arrays, name=name, features=features)
    for i, a in enumerate(arrays):
        if not np.isfinite(a).all():
            j, k = (int(v) for v in np.argwhere(~np.isfinite(a))[0])
            raise DataError(f"{name}[{i}] row {j}: expected finite numbers, got {a[j, k]}")
    return arrays


class Side:
    """How one side (source or target) turns into tensors and back.

    Tokens: a `Vocab` (ids; targets end with EOS). Values: an optional `StandardScaler`.
    """

    def __init__(
        self,
        kind: str,
        *,
        vocab: Vocab | None = None,
        scaler: StandardScaler | None = None,
        features: int = 0,
        max_length: int = 1,
        fixed_length: int | None = None,
    ) -> None:
        self.kind = kind
        self.vocab = vocab
        self.scaler = scaler
        self.features = features
        self.max_length = max_length  # longest training sequence (targets: EOS included)
        self.fixed_length = fixed_length  # every training sequence had this length (values)

    @classmethod
    def fit(cls, seqs: Sequence, *, name: str, eos: bool, min_freq: int = 1, scale: bool = True):
        kind = sequence_kind(seqs, name)
        if kind == "tokens":
            vocab = Vocab.build(seqs, min_freq=min_freq)
            return cls(kind, vocab=vocab, max_length=max(len(s) for s in seqs) + int(eos))
        arrays = _as_arrays(seqs, name)
        lengths = {len(a) for a in arrays}
        return cls(
            kind,
            scaler=StandardScaler().fit(arrays, name=name) if scale else None,
            features=int(arrays[0].shape[1]),
            max_length=max(lengths),
            fixed_length=lengths.pop() if len(lengths) == 1 else None,
        )

    @property
    def size(self) -> int:
        """V (vocabulary size, specials included) or F / O."""
        return len(self.vocab) if self.vocab is not None else self.features

    def check(self, seqs: Sequence, name: str) -> list:
        kind = sequence_kind(seqs, name)
        if kind != self.kind:
            raise DataError(f"{name}: expected {self.kind} (as in training), got {kind}")
        if kind == "values":
            return _as_arrays(seqs, name, self.features)
        return list(seqs)

    def encode(self, seqs: Sequence, *, eos: bool) -> list[np.ndarray]:
        """Token lists -> id arrays (+ EOS); arrays -> scaled float32 arrays."""
        if self.kind == "tokens":
            return [np.asarray(self.vocab.encode(s, add_eos=eos), dtype=np.int64) for s in seqs]
        arrays = [np.asarray(a, dtype=np.float32) for a in seqs]
        return self.scaler.transform(arrays) if self.scaler is not None else arrays

    def pad(self, encoded: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ids (B, T) long padded with PAD, or values (B, T, F) zero-padded; lengths (B,)."""
        if self.kind == "tokens":
            return pad_batch([e.tolist() for e in encoded])
        lengths = torch.as_tensor([len(e) for e in encoded], dtype=torch.long)
        return pad_sequences(encoded), lengths

    def decode(self, row: torch.Tensor, length: int) -> Any:
        """One decoded row -> tokens (EOS and after dropped) or an unscaled (U, O) array."""
        if self.kind == "tokens":
            return self.vocab.decode(row[:length])
        values = row[:length].detach().cpu().numpy().astype(np.float32)
        if self.scaler is not None:
            values = self.scaler.inverse_transform([values])[0]
        return values

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "vocab": self.vocab.to_dict() if self.vocab is not None else None,
            "scaler": self.scaler.to_dict() if self.scaler is not None else None,
            "features": self.features,
            "max_length": self.max_length,
            "fixed_length": self.fixed_length,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Side:
        if not isinstance(d, dict) or d.get("kind") not in ("tokens", "values"):
            raise ArtifactError(
                f"{where}: expected {{'kind': 'tokens' | 'values', ...}}, got {d!r}"
            )
        try:
            vocab = Vocab.from_dict(d["vocab"]) if d.get("vocab") is not None else None
            scaler = StandardScaler.from_dict(d["scaler"]) if d.get("scaler") is not None else None
        except (ConfigError, ArtifactError) as e:
            raise ArtifactError(f"{where}: {e}") from None
        if d["kind"] == "tokens" and vocab is None:
            raise ArtifactError(f"{where}: a token side needs its vocab")
        max_length = d.get("max_length")
        if not isinstance(max_length, int) or max_length < 1:
            raise ArtifactError(
                f"{where}.max_length: expected a positive integer, got {max_length!r}"
            )
        return cls(
            d["kind"],
            vocab=vocab,
            scaler=scaler,
            features=int(d.get("features") or 0),
            max_length=max_length,
            fixed_length=d.get("fixed_length"),
        )


def split_indices(sources: Sequence, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices with ``fraction`` of the *unique* sources in val; no source in both.

    The order of unique sources comes from a hash of (seed, source), so it is reproducible.
    """
    groups: dict[bytes, list[int]] = {}
    for i, s in enumerate(sources):
        key = "\x1f".join(s).encode() if isinstance(s, (list, tuple)) else np.asarray(s).tobytes()
        groups.setdefault(key, []).append(i)
    keys = sorted(
        groups, key=lambda k: hashlib.blake2b(f"{seed}\x1e".encode() + k, digest_size=16).digest()
    )
    n_val = int(round(fraction * len(keys)))
    if fraction > 0 and len(keys) >= 2:
        n_val = min(max(n_val, 1), len(keys) - 1)
    val = sorted(i for k in keys[:n_val] for i in groups[k])
    train = sorted(i for k in keys[n_val:] for i in groups[k])
    return np.array(train, dtype=np.int64), np.array(val, dtype=np.int64)


def group_by_source(sources: Sequence, targets: Sequence) -> tuple[list, list[list]]:
    """Unique sources (first-seen order) and, for each, all its targets (alternative references)."""
    order: list = []
    refs: dict[Any, list] = {}
    for s, t in zip(sources, targets, strict=True):
        key = tuple(s) if isinstance(s, (list, tuple)) else np.asarray(s).tobytes()
        if key not in refs:
            refs[key] = []
            order.append((key, s))
        refs[key].append(t)
    return [s for _, s in order], [refs[k] for k, _ in order]


def token_metrics(refs: Sequence[list], hyps: Sequence[list[str]], *, joiner: str = " ") -> dict:
    """exact_match, wer (1 - exact match), token_error_rate (edit distance / reference length) and
    sacrebleu's corpus BLEU; each ref is a list of alternative token lists."""
    return {
        "n": len(hyps),
        "exact_match": text_metrics.exact_match(refs, hyps),
        "wer": text_metrics.wer_sentence_level(refs, hyps),
        "token_error_rate": text_metrics.token_error_rate(refs, hyps),
        "bleu": text_metrics.bleu(refs, hyps, joiner=joiner),
    }


def value_metrics(trues: Sequence[np.ndarray], preds: Sequence[np.ndarray]) -> dict:
    """MSE, RMSE, MAE over every step and feature (original units), and per output feature."""
    # sum_i (U_i, O) -> (N_steps, O)
    t = np.concatenate([np.asarray(a, dtype=np.float64) for a in trues])
    p = np.concatenate([np.asarray(a, dtype=np.float64) for a in preds])
    err = p - t
    return {
        "n": len(trues),
        "n_steps": int(t.shape[0]),
        "mse": float(np.mean(err**2)),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "mae_per_output": [float(v) for v in np.mean(np.abs(err), axis=0)],
    }


def _pairs(sources, targets) -> tuple[list, list]:
    if isinstance(sources, PairSet):
        if targets is not None:
            raise ConfigError("fit(pairs): a PairSet carries its targets; do not pass targets")
        return sources.sources, sources.targets
    if targets is None:
        raise ConfigError("fit: expected targets (or a PairSet as the only argument)")
    sources, targets = list(sources), list(targets)
    if len(sources) != len(targets):
        raise DataError(
            f"targets: expected one target per source ({len(sources)}), got {len(targets)}"
        )
    return sources, targets
