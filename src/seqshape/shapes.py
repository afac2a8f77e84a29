"""The shape legend and the one function that checks shapes against it.

Legend (used in code comments, docs and error messages)::

    B batch · T input steps · S source steps · U target steps · K forecast horizon ·
    F input features · C covariates · O output features · H hidden size · L layers ·
    D directions (1 or 2) · V vocabulary size · N classes
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ShapeError

LEGEND: dict[str, str] = {
    "B": "batch",
    "T": "input steps",
    "S": "source steps",
    "U": "target steps",
    "K": "forecast horizon",
    "F": "input features",
    "C": "covariates",
    "O": "output features",
    "H": "hidden size",
    "L": "layers",
    "D": "directions",
    "V": "vocabulary size",
    "N": "classes",
}


def describe(spec: str, known: Mapping[str, int] | None = None) -> str:
    """Render a spec such as ``"B T F"`` as ``(B, T, F=12)`` using the known sizes."""
    known = known or {}
    parts = []
    for letter in spec.split():
        parts.append(f"{letter}={known[letter]}" if letter in known else letter)
    return "(" + ", ".join(parts) + ")"


def _hint(spec: list[str], shape: tuple[int, ...], known: Mapping[str, int]) -> str:
    # A missing batch axis: one sequence (T, F) where (B, T, F) was expected.
    if len(shape) == len(spec) - 1 and spec[0] == "B":
        rest = spec[1:]
        if all(known.get(s) in (None, n) for s, n in zip(rest, shape)):
            return " — a single sequence without its batch axis? add one with x[None]"
    if len(shape) == len(spec) == 3 and spec[1] in ("T", "S", "U"):
        feat = spec[2]
        if feat in known and shape[1] == known[feat] and shape[2] != known[feat]:
            return " — is the time axis second? (batch-first: (B, T, F))"
    return ""


def check_shape(
    x: Any,
    spec: str,
    *,
    name: str,
    known: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Check ``x.shape`` against ``spec`` ("B T F"); return the sizes bound to each letter.

    ``known`` fixes some letters (e.g. ``{"F": 12}``); a letter repeated in ``spec`` must have the
    same size each time. Raises ShapeError naming ``name``, the expected and the actual shape.
    """
    known = dict(known or {})
    letters = spec.split()
    shape = tuple(int(s) for s in getattr(x, "shape", ()))
    expected = describe(spec, known)
    if len(shape) != len(letters):
        hint = _hint(letters, shape, known)
        raise ShapeError(f"{name}: expected {expected}, got {shape}{hint}")
    bound: dict[str, int] = {}
    for letter, size in zip(letters, shape):
        want = known.get(letter, bound.get(letter))
        if want is not None and want != size:
            hint = _hint(letters, shape, known)
            raise ShapeError(f"{name}: expected {expected}, got {shape}{hint}")
        bound[letter] = size
    return bound


def check_feature_counts(arrays: Sequence[Any], *, name: str, features: int | None = None) -> int:
    """Check a list of (T_i, F) arrays has one feature count; return it.

    Names the first offending index: ``X[17]: expected (T, F=12), got (20, 11)``.
    """
    if len(arrays) == 0:
        raise ShapeError(f"{name}: expected at least one sequence, got an empty list")
    for i, a in enumerate(arrays):
        shape = tuple(getattr(a, "shape", ()))
        if len(shape) != 2:
            hint = ""
            if len(shape) == 1:
                hint = " — a univariate sequence needs a feature axis: a[:, None]"
            known = {"F": features} if features is not None else {}
            raise ShapeError(f"{name}[{i}]: expected {describe('T F', known)}, got {shape}{hint}")
        if shape[0] == 0:
            raise ShapeError(f"{name}[{i}]: expected at least one step, got an empty sequence")
        if features is None:
            features = shape[1]
        elif shape[1] != features:
            hint = ""
            if shape[0] == features and shape[1] != features:
                hint = " — is it (F, T)? transpose it"
            raise ShapeError(f"{name}[{i}]: expected (T, F={features}), got {shape}{hint}")
    assert features is not None
    return features
