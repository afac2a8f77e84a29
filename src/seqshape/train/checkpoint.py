"""Training checkpoints: crash-safe, resumable to the bit, and free of pickle.

A checkpoint is ONE file, ``checkpoint.safetensors``, in a checkpoint directory:

- every tensor of the training state (model weights, best-so-far weights, the optimizer's moments
  and step counts, torch's RNG state, a uint8 tensor) is a named tensor in the file;
- everything else (loop position, counters, history, the learning-rate scheduler, numpy's and
  Python's RNG states, and the *structure* of the optimizer state with its hyper-parameters) is one
  JSON document stored in the file's header metadata under ``"state"``; where the structure held a
  tensor, the JSON holds ``{"$tensor": "<name in the file>"}``.

One file means one atomic step: the new checkpoint is written to a temporary file in the same
directory, flushed to disk (fsync), then renamed over the old one (and the directory entry is
fsynced), so a reader finds the previous checkpoint or the new one, never a mixture, whatever moment
the writer is killed at. Reading never executes anything: the header is JSON and the tensors are raw
bytes that safetensors checks against the header.

The JSON encoding is lossless for what training states hold: tuples stay tuples, dicts with
non-string keys (the optimizer's ``state`` is keyed by parameter index) keep their keys, non-finite
floats (ReduceLROnPlateau starts with ``best = inf``) survive, numpy arrays keep their dtype.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import ArtifactError

FORMAT = "seqshape-checkpoint"
FORMAT_VERSION = 1
FILENAME = "checkpoint.safetensors"
_TMP_PREFIX = f".{FILENAME}.tmp-"
_TAGS = ("$tensor", "$tuple", "$items", "$float", "$ndarray")


# -- lossless JSON + named tensors --------------------------------------------------------------


def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """Turn ``obj`` into JSON-able data, moving every tensor into ``tensors`` under its path.

    The path of a value is the ``/``-joined keys and indices leading to it, e.g.
    ``optimizer/state/0/exp_avg``; tensors are detached, moved to the CPU and copied.
    """
    if isinstance(obj, torch.Tensor):
        name = prefix or "tensor"
        if name in tensors:
            raise ValueError(f"{name}: two tensors of the state map to the same name")
        # a private copy: tensors sharing storage (tied weights) cannot go into one file
        tensors[name] = obj.detach().cpu().contiguous().clone()
        return {"$tensor": name}
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"$float": repr(obj)}
    if isinstance(obj, np.ndarray):
        return {
            "$ndarray": {"dtype": obj.dtype.str, "shape": list(obj.shape), "data": obj.tolist()}
        }
    if isinstance(obj, np.generic):
        return flatten(obj.item(), tensors, prefix)
    if isinstance(obj, tuple):
        return {"$tuple": [flatten(v, tensors, f"{prefix}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, tensors, f"{prefix}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {
                k: flatten(v, tensors, f"{prefix}/{k}" if prefix else k) for k, v in obj.items()
            }
        return {
            "$items": [
                [flatten(k, tensors, f"{prefix}/key{i}"), flatten(v, tensors, f"{prefix}/{k}")]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    raise TypeError(f"{prefix or 'state'}: cannot checkpoint a value of type {type(obj).__name__}")


def unflatten(obj: Any, tensors: dict[str, torch.Tensor], where: str = "checkpoint") -> Any:
    """The inverse of `flatten`; a reference to a tensor the file lacks is an ArtifactError."""
    if isinstance(obj, list):
        return [unflatten(v, tensors, where) for v in obj]
    if not isinstance(obj, dict):
        return obj
    tag = next((k for k in obj if k.startswith("$")), None)
    if tag is None:
        return {k: unflatten(v, tensors, where) for k, v in obj.items()}
    if len(obj) != 1 or tag not in _TAGS:
        raise ArtifactError(f"{where}: unknown entry {sorted(obj)} in the checkpoint state")
    value = obj[tag]
    if tag == "$tensor":
        if value not in tensors:
            raise ArtifactError(f"{where}: the state refers to tensor {value!r}, which is missing")
        return tensors[value]
    if tag == "$tuple":
        return tuple(unflatten(v, tensors, where) for v in value)
    if tag == "$items":
        return {unflatten(k, tensors, where): unflatten(v, tensors, where) for k, v in value}
    if tag == "$float":
        return float(value)
    return np.asarray(value["data"], dtype=np.dtype(value["dtype"])).reshape(value["shape"])


# -- the training data's digest ----------------------------------------------------------------


def data_digest(*parts: Any) -> str:
    """A sha256 over training data: arrays and tensors (dtype, shape and bytes), strings, numbers,
    None, and lists/tuples of them, nested. Two calls agree exactly when the data are the same;
    a resumed run compares it with the interrupted run's (train.loop.fit's ``data_digest``)."""
    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        if isinstance(x, np.ndarray) and x.dtype != object:
            a = np.ascontiguousarray(x)
            h.update(f"a{a.dtype.str}{a.shape}:".encode())
            h.update(a.tobytes())
        elif isinstance(x, list | tuple | np.ndarray):
            h.update(f"l{len(x)}:".encode())
            for v in x:
                feed(v)
        elif isinstance(x, str):
            b = x.encode("utf-8", "surrogatepass")
            h.update(f"s{len(b)}:".encode())
            h.update(b)
        elif x is None or isinstance(x, bool | int | float | np.generic):
            h.update(f"v{x!r};".encode())
        else:
            raise TypeError(f"data_digest: cannot digest a value of type {type(x).__name__}")

    for part in parts:
        feed(part)
    return h.hexdigest()


# -- random number generators -------------------------------------------------------------------


def rng_states() -> dict:
    """The global RNG states of torch (CPU, and CUDA when present), numpy and Python's random."""
    states = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(legacy=False),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    """Restore what `rng_states` captured."""
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# -- the file ----------------------------------------------------------------------------------


def checkpoint_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / FILENAME


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(directory: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` (nested dicts/lists/tuples of tensors, numbers, strings, numpy arrays)
    atomically to ``directory/checkpoint.safetensors``; return the file's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(_TMP_PREFIX + "*"):  # left by a writer that was killed
        stale.unlink(missing_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    doc = json.dumps(flatten(state, tensors), allow_nan=False, separators=(",", ":"))
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "state": doc}
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=directory)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, directory / FILENAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    return directory / FILENAME


def load_checkpoint(directory: str | os.PathLike) -> dict | None:
    """The state saved in ``directory``, or None when it holds no checkpoint.

    A damaged, truncated or foreign file raises ArtifactError naming it; nothing is unpickled.
    """
    path = checkpoint_path(directory)
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ArtifactError(f"{path}: unreadable or damaged checkpoint ({e})") from None
    if metadata.get("format") != FORMAT:
        raise ArtifactError(
            f"{path}: not a seqshape checkpoint (format {metadata.get('format')!r}, "
            f"expected {FORMAT!r})"
        )
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise ArtifactError(
            f"{path}: checkpoint format_version {metadata.get('format_version')!r} is not "
            f"supported (this seqshape reads {FORMAT_VERSION})"
        )
    try:
        doc = json.loads(metadata.get("state", ""))
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}: the checkpoint state is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ArtifactError(f"{path}: expected the checkpoint state to be a JSON object")
    try:
        return unflatten(doc, tensors, str(path))
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(f"{path}: malformed checkpoint state ({e})") from None
