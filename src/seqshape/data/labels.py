"""Class labels in their own type: what a classifier or tagger learns from ``y`` and gives back.

Integers stay integers, floats floats, text text (numpy arrays of that dtype), so that
``accuracy_score(y, model.predict(X))`` compares like with like. numpy only: the ONNX runtime
reads labels too, without torch.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError, ShapeError


def normalize_labels(y) -> np.ndarray:
    """1-D labels (list, array, pandas Series) as one array of their own type: ints stay ints,
    floats floats, strings str; labels of mixed kinds (1 and "a") become text."""
    if hasattr(y, "to_numpy"):
        y = y.to_numpy()
    arr = np.asarray(y) if isinstance(y, np.ndarray) else np.asarray(list(y), dtype=object)
    if arr.ndim != 1:
        raise ShapeError(f"y: expected one label per sequence (a 1-D array), got shape {arr.shape}")
    if arr.dtype.kind == "O":
        values = arr.tolist()
        kinds = {type(v) for v in values}
        if kinds and all(issubclass(k, (int, np.integer)) for k in kinds):
            return np.asarray(values, dtype=np.int64)
        if kinds and all(issubclass(k, (int, float, np.integer, np.floating)) for k in kinds):
            return np.asarray(values, dtype=np.float64)
        return np.asarray([str(v) for v in values])
    if arr.dtype.kind == "S":
        return arr.astype(str)
    return arr


def unique_labels(y) -> np.ndarray:
    """The sorted distinct labels of ``y`` (see `normalize_labels`), in their own dtype."""
    return np.unique(normalize_labels(y))


def encode_labels(y, classes: np.ndarray, name: str = "y") -> np.ndarray:
    """Labels -> int64 positions in ``classes``; a label not among them is a DataError naming it.

    A label that matches a class only as text (the "3" of a file against the 3 of an array a
    model was trained on) counts as that class.
    """
    values = normalize_labels(y).tolist()
    index = {c: i for i, c in enumerate(classes.tolist())}
    by_text = {str(c): i for i, c in enumerate(classes.tolist())}
    out = np.empty(len(values), dtype=np.int64)
    unknown = set()
    for j, v in enumerate(values):
        k = index.get(v)
        if k is None:
            k = by_text.get(str(v))
        if k is None:
            unknown.add(str(v))
            continue
        out[j] = k
    if unknown:
        shown = sorted(unknown)[:10]
        raise DataError(
            f"{name}: labels {shown} were not seen in training (classes {classes.tolist()})"
        )
    return out


def labels_array(values: list) -> np.ndarray:
    """Saved class labels (JSON values) as one array of their own type."""
    return normalize_labels(values)
