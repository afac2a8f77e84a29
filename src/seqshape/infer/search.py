"""Greedy and beam search live in `seqshape.models.search` (the decoders' own step loop); this
name is kept for imports written against it."""

from ..models.search import beam_search, greedy_decode, map_state

__all__ = ["beam_search", "greedy_decode", "map_state"]
