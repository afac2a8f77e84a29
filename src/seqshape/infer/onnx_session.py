"""Opening exported ONNX files with onnxruntime (torch is never imported): sessions with a bounded
thread count, the ``seqshape`` metadata every file carries, the parts of one export checked to
belong together, and the base every runner of `seqshape.infer.onnx_runtime` starts from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import ArtifactError, ConfigError
from ..shapes import as_float32_2d

METADATA_KEY = "seqshape"
ONNX_FORMAT = "seqshape-onnx"
ONNX_FORMAT_VERSION = 1


def _threads(threads: int | None) -> int:
    if threads is None:
        env = os.environ.get("SEQSHAPE_THREADS")
        threads = int(env) if env else 0
    try:
        free = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        free = os.cpu_count() or 1
    return max(1, min(int(threads), free)) if threads else max(1, free)


def pad_batch(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """List of (T_i, F) -> x (B, max T_i, F) float32 zero-padded at the end, lengths (B,) int64."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    # (B, T, F): zeros, each sequence copied to its own first T_i steps
    x = np.zeros((len(seqs), int(lengths.max()), seqs[0].shape[1]), dtype=np.float32)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
    return x, lengths


def _ort():
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ConfigError(
            f"ONNX inference needs onnxruntime ({e}); install it with: pip install 'seqshape[onnx]'"
        ) from None
    return ort


def _open(path: Path, threads: int | None):
    """An onnxruntime session on ``path`` and the seqshape metadata it carries."""
    ort = _ort()
    if not path.is_file():
        raise ArtifactError(f"{path}: no such ONNX file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = _threads(threads)
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as e:  # onnxruntime raises its own exception types for damaged files
        raise ArtifactError(f"{path}: not a loadable ONNX model ({e})") from None
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise ArtifactError(
            f"{path}: no {METADATA_KEY!r} metadata; expected a file written by "
            "`seqshape export DIR --format onnx`"
        )
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}: metadata is not valid JSON ({e})") from None
    if meta.get("format") != ONNX_FORMAT or meta.get("format_version") != ONNX_FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: metadata format {meta.get('format')!r} version "
            f"{meta.get('format_version')!r}; this seqshape reads {ONNX_FORMAT} "
            f"version {ONNX_FORMAT_VERSION}"
        )
    return session, meta


def open_parts(
    path: str | os.PathLike, *, kind: str, threads: int | None = None
) -> tuple[dict, dict]:
    """Open an export of ``kind``: its first file ``path`` and the parts listed beside it.

    Returns ({part: session}, metadata). Every part must carry the same metadata (the same export
    of the same weights) and the graph inputs the metadata lists; else ArtifactError.
    """
    path = Path(path)
    session, meta = _open(path, threads)
    if meta.get("kind") != kind:
        raise ArtifactError(f"{path}: expected a {kind} model, got {meta.get('kind')!r}")
    parts = meta.get("parts")
    if not isinstance(parts, dict) or not parts:
        raise ArtifactError(f"{path}: metadata lists no graph parts")
    sessions = {}
    for i, (part, info) in enumerate(parts.items()):
        if i == 0:
            sessions[part] = session
            continue
        other = path.with_name(info["file"])
        sess, other_meta = _open(other, threads)
        if other_meta != meta:
            raise ArtifactError(
                f"{other}: not from the same export as {path} (its metadata differs); export "
                "the model again"
            )
        sessions[part] = sess
    for part, sess in sessions.items():
        names = [i.name for i in sess.get_inputs()]
        want = [s["name"] for s in parts[part]["inputs"]]
        if names != want:
            raise ArtifactError(
                f"{path.with_name(parts[part]['file'])}: expected graph inputs {want}, got {names}"
            )
    return sessions, meta


class _OnnxModel:
    """What every runner does first: check the batch size, open the parts, keep the metadata."""

    kind = ""

    def __init__(self, path: str | os.PathLike, *, threads: int | None, batch_size: int) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size: expected a positive integer, got {batch_size!r}")
        self.path = Path(path)
        self.batch_size = int(batch_size)
        self.sessions, meta = open_parts(self.path, kind=self.kind, threads=threads)
        self.metadata: dict = meta
        self.config: dict = meta["config"]


def _float_2d(a, name: str) -> np.ndarray:
    """(T,) or (T, C) numbers -> (T, C) float32; ShapeError/DataError naming ``name``."""
    return as_float32_2d(a, name)
