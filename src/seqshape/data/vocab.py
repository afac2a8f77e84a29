"""A token vocabulary: strings <-> ids, with four fixed special ids, and padding of id lists.

Ids 0-3 are always the specials ``<pad>`` (0), ``<bos>`` (1), ``<eos>`` (2), ``<unk>`` (3); the
ordinary tokens follow in a deterministic order (frequency descending, then the token itself), so
the same data always gives the same ids. `to_dict`/`from_dict` give a JSON-safe form for the
model directory's ``preprocessing.json``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from ..errors import ArtifactError, ConfigError, DataError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIALS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
FORMAT_VERSION = 1


class Vocab:
    """Token <-> id mapping. ``len(vocab)`` counts the 4 specials; V in the shape legend."""

    PAD_ID = PAD_ID
    BOS_ID = BOS_ID
    EOS_ID = EOS_ID
    UNK_ID = UNK_ID

    def __init__(self, tokens: Iterable[str]) -> None:
        """Make a vocabulary whose ordinary tokens get ids 4, 5, ... in the order given."""
        self._itos: list[str] = list(SPECIALS)
        self._stoi: dict[str, int] = {tok: i for i, tok in enumerate(SPECIALS)}
        for tok in tokens:
            if not isinstance(tok, str) or tok == "":
                raise DataError(f"vocab tokens: expected non-empty strings, got {tok!r}")
            if tok in self._stoi:
                what = "a special token" if tok in SPECIALS else "a duplicate"
                raise DataError(f"vocab tokens: {tok!r} is {what}")
            self._stoi[tok] = len(self._itos)
            self._itos.append(tok)

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> Vocab:
        """Count tokens; keep those seen ``min_freq`` times or more, most frequent first.

        Ties are broken by the token string, so the ids do not depend on the data's order.
        ``max_size`` caps the number of *ordinary* tokens (the 4 specials come on top). A token in
        the data spelled like a special (``<eos>``...) is a DataError: it would be ambiguous.
        """
        if int(min_freq) < 1:
            raise ConfigError(f"min_freq: expected an integer >= 1, got {min_freq}")
        if max_size is not None and int(max_size) < 0:
            raise ConfigError(f"max_size: expected None or an integer >= 0, got {max_size}")
        counts: Counter[str] = Counter()
        for i, tokens in enumerate(token_lists):
            if isinstance(tokens, str):
                raise DataError(
                    f"token_lists[{i}]: expected a list of tokens, got the string {tokens[:20]!r}"
                )
            counts.update(tokens)
        clash = sorted(set(SPECIALS) & set(counts))
        if clash:
            raise DataError(
                f"vocab: the data contains {clash[0]!r}, which is spelled like a special token"
            )
        kept = sorted(
            (tok for tok, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            kept = kept[: int(max_size)]
        return cls(kept)

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self._itos == other._itos

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, tokens={self._itos[4:9]}{'...' if len(self) > 9 else ''})"

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order, specials first."""
        return list(self._itos)

    def token_to_id(self, token: str) -> int:
        """The id of ``token``, or UNK_ID."""
        return self._stoi.get(token, UNK_ID)

    def id_to_token(self, index: int) -> str:
        """The token of ``index``; DataError if out of range."""
        if not 0 <= index < len(self._itos):
            raise DataError(f"id: expected an id in [0, {len(self)}), got {index}")
        return self._itos[index]

    def encode(
        self, tokens: Sequence[str], add_bos: bool = False, add_eos: bool = False
    ) -> list[int]:
        """Tokens -> ids; unknown tokens become UNK_ID; optionally wrapped in BOS ... EOS."""
        if isinstance(tokens, str):
            raise DataError(f"tokens: expected a list of tokens, got the string {tokens[:20]!r}")
        ids = [self._stoi.get(tok, UNK_ID) for tok in tokens]
        if add_bos:
            ids.insert(0, BOS_ID)
        if add_eos:
            ids.append(EOS_ID)
        return ids

    def decode(
        self,
        ids: Sequence[int] | torch.Tensor,
        strip_specials: bool = True,
        stop_at_eos: bool = True,
    ) -> list[str]:
        """Ids -> tokens.

        ``stop_at_eos`` drops the first EOS and everything after it (a decoder's padding tail).
        ``strip_specials`` drops PAD, BOS and EOS; UNK stays as ``<unk>`` since it stands for a
        real token the vocabulary did not know.
        """
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise DataError(f"ids: expected a 1-d sequence (U,), got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        out: list[str] = []
        for position, index in enumerate(ids):
            index = int(index)
            if not 0 <= index < len(self._itos):
                raise DataError(f"ids[{position}]: expected an id in [0, {len(self)}), got {index}")
            if index == EOS_ID and stop_at_eos:
                break
            if strip_specials and index in (PAD_ID, BOS_ID, EOS_ID):
                continue
            out.append(self._itos[index])
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description: ``{"version", "specials", "tokens"}`` (ordinary tokens)."""
        return {"version": FORMAT_VERSION, "specials": list(SPECIALS), "tokens": self._itos[4:]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocab:
        """Inverse of `to_dict`; ArtifactError if the description is damaged or of another version."""
        if not isinstance(data, dict):
            raise ArtifactError(f"vocab: expected a JSON object, got {type(data).__name__}")
        if data.get("version") != FORMAT_VERSION:
            raise ArtifactError(
                f"vocab.version: expected {FORMAT_VERSION}, got {data.get('version')!r}"
            )
        if list(data.get("specials", [])) != list(SPECIALS):
            raise ArtifactError(
                f"vocab.specials: expected {list(SPECIALS)}, got {data.get('specials')!r}"
            )
        tokens = data.get("tokens")
        if not isinstance(tokens, list):
            raise ArtifactError(f"vocab.tokens: expected a list, got {type(tokens).__name__}")
        try:
            return cls(tokens)
        except DataError as e:
            raise ArtifactError(str(e)) from None

    def pad_batch(self, id_lists: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad id lists with PAD_ID; see `pad_batch`."""
        return pad_batch(id_lists, pad_id=PAD_ID)


def pad_batch(
    id_lists: Sequence[Sequence[int]], pad_id: int = PAD_ID
) -> tuple[torch.Tensor, torch.Tensor]:
    """List of B id lists -> (ids (B, U) long padded at the end with ``pad_id``, lengths (B,) long).

    U is the longest list's length; empty lists are allowed (length 0).
    """
    if len(id_lists) == 0:
        raise DataError("id_lists: expected at least one sequence, got an empty list")
    lengths = torch.tensor([len(ids) for ids in id_lists], dtype=torch.long)
    # (B,) -> (B, U) filled with pad_id, then each row's first lengths[b] entries set
    out = torch.full((len(id_lists), int(lengths.max())), pad_id, dtype=torch.long)
    for b, ids in enumerate(id_lists):
        if len(ids):
            out[b, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
    return out, lengths
