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


TIME_LETTERS = ("T", "S", "U", "K", "N")


def _hint(spec: list[str], shape: tuple[int, ...], known: Mapping[str, int]) -> str:
    """The likely cause of a mismatch, or "" (missing batch axis, missing feature axis, swapped
    time and feature axes)."""
    if len(shape) == len(spec) - 1 and spec[0] == "B":
        # A missing batch axis: one sequence (T, F) where (B, T, F) was expected.
        rest = spec[1:]
        if all(known.get(s) in (None, n) for s, n in zip(rest, shape)):
            what = "sequence" if any(s in TIME_LETTERS for s in rest) else "sample"
            return f" — a single {what} without its batch axis? add one with x[None]"
        # A univariate batch (B, T) where (B, T, F=1) was expected.
        if known.get(spec[-1]) == 1 and all(
            known.get(s) in (None, n) for s, n in zip(spec[:-1], shape)
        ):
            return " — a univariate batch needs its feature axis: x[..., None]"
    if len(shape) == len(spec) == 3 and spec[1] in TIME_LETTERS:
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

    Names the first offending index: ``X[17]: expected (T, F=12), got (20, 11)``; when ``features``
    is not given, the first array fixes it and the hint says so (mixed feature counts).
    """
    inferred = features is None
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
            if shape[0] == features and shape[1] != features:
                hint = " — is it (F, T)? transpose it"
            elif inferred:
                hint = (
                    f" — mixed feature counts: {name}[0] has {features}, {name}[{i}] has {shape[1]}"
                )
            else:
                hint = ""
            raise ShapeError(f"{name}[{i}]: expected (T, F={features}), got {shape}{hint}")
    assert features is not None
    return features


def check_set_features(
    source: str, *, expected: int, got: int, lengths: Sequence[int], what: str = "the model's F"
) -> None:
    """Raise ShapeError when a data set's feature count is not the expected one.

    ``source: expected 12 features per step (the model's F), got 20``, with a hint when every
    sequence has exactly ``expected`` steps (time and features swapped in the file).
    """
    if got == expected:
        return
    hint = ""
    if len(lengths) and all(int(n) == expected for n in lengths):
        hint = (
            f" — every sequence has {expected} steps of {got} values: are time and features "
            "swapped?"
        )
    raise ShapeError(f"{source}: expected {expected} features per step ({what}), got {got}{hint}")


def as_float32_2d(a: Any, name: str, *, columns: str = "C"):
    """(T,) or (T, C) finite numbers -> (T, C) float32 array; ShapeError/DataError naming ``name``
    (and the first row holding NaN or inf). ``columns`` is the legend letter in the message."""
    import numpy as np

    arr = np.asarray(a, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ShapeError(f"{name}: expected (T, {columns}) or (T,), got {arr.shape}")
    finite = np.isfinite(arr)
    if not finite.all():
        from .errors import DataError

        raise DataError(f"{name}: row {int(np.argwhere(~finite)[0][0])} holds NaN or inf")
    return arr
