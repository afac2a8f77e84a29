"""Inference from an exported ONNX file with onnxruntime and numpy only (torch is never imported).

    clf = OnnxClassifier("runs/jv/model/model.onnx")
    clf.predict_proba(X)   # X: list of (T_i, F) arrays, any lengths -> (n, N)
    clf.predict(X)         # one class name per sequence

The file carries its own metadata (written by `seqshape.infer.export.export_onnx`): class names,
the fitted scaler and the graph's input names, so nothing else is needed beside it. Sequences are
scaled, sorted by length, cut into batches, zero-padded at the end and run with their lengths; the
answers come back in input order and do not depend on the batching (the graph is padding-invariant).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..data.scaling import StandardScaler
from ..errors import ArtifactError, ConfigError, ShapeError
from ..shapes import check_feature_counts

METADATA_KEY = "seqshape"
ONNX_FORMAT = "seqshape-onnx"
ONNX_FORMAT_VERSION = 1


def weights_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file: ties an exported graph to the weights it came from."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def softmax(logits: np.ndarray) -> np.ndarray:
    """(n, N) -> (n, N) rows summing to 1, computed stably (max subtracted)."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class OnnxClassifier:
    """A classifier exported by ``seqshape export DIR --format onnx``, run with onnxruntime."""

    def __init__(
        self, path: str | os.PathLike, *, threads: int | None = None, batch_size: int = 256
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ConfigError(
                f"ONNX inference needs onnxruntime ({e}); install it with: pip install 'seqshape[onnx]'"
            ) from None
        if batch_size < 1:
            raise ConfigError(f"batch_size: expected a positive integer, got {batch_size!r}")
        self.path = Path(path)
        if not self.path.is_file():
            raise ArtifactError(f"{self.path}: no such ONNX file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads(threads)
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own exception types for damaged files
            raise ArtifactError(f"{self.path}: not a loadable ONNX model ({e})") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw is None:
            raise ArtifactError(
                f"{self.path}: no {METADATA_KEY!r} metadata; expected a file written by "
                "`seqshape export DIR --format onnx`"
            )
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ArtifactError(f"{self.path}: metadata is not valid JSON ({e})") from None
        if meta.get("format") != ONNX_FORMAT or meta.get("format_version") != ONNX_FORMAT_VERSION:
            raise ArtifactError(
                f"{self.path}: metadata format {meta.get('format')!r} version "
                f"{meta.get('format_version')!r}; this seqshape reads {ONNX_FORMAT} "
                f"version {ONNX_FORMAT_VERSION}"
            )
        if meta.get("kind") != "classifier":
            raise ArtifactError(
                f"{self.path}: expected a classifier model, got {meta.get('kind')!r}"
            )
        self.metadata: dict = meta
        self.task: str = meta.get("task", "classification")
        self.classes_: list = list(meta.get("classes") or [])
        self.n_features: int = int(meta["config"]["input_size"])
        self.n_outputs: int = int(meta["config"]["num_outputs"])
        self.scaler = StandardScaler.from_dict(meta["scaler"]) if meta.get("scaler") else None
        names = [i.name for i in self.session.get_inputs()]
        if names != ["x", "lengths"]:
            raise ArtifactError(f"{self.path}: expected graph inputs ['x', 'lengths'], got {names}")
        self.batch_size = int(batch_size)

    def _checked(self, X, name: str = "X") -> list[np.ndarray]:
        if hasattr(X, "X") and hasattr(X, "n_features"):  # a SequenceSet
            X = X.X
        if isinstance(X, np.ndarray) and X.ndim == 3:
            X = list(X)
        if isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == self.n_features:
            raise ShapeError(
                f"{name}: expected a list of (T, F={self.n_features}) arrays, got one array "
                f"{X.shape} — a single sequence? pass [x]"
            )
        check_feature_counts(X, name=name, features=self.n_features)
        if self.scaler is not None:
            return self.scaler.transform(X, name=name)
        return [np.asarray(a, dtype=np.float32) for a in X]

    def logits(self, X) -> np.ndarray:
        """(n,) list of (T_i, F) -> (n, N) raw outputs, in input order; batches sorted by length."""
        seqs = self._checked(X)
        n = len(seqs)
        out = np.empty((n, self.n_outputs), dtype=np.float32)
        order = np.argsort([len(s) for s in seqs], kind="stable")
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            x, lengths = pad_batch([seqs[i] for i in idx])
            # (B, T, F), (B,) -> (B, N)
            (logits,) = self.session.run(["logits"], {"x": x, "lengths": lengths})
            out[idx] = logits
        return out

    def predict_proba(self, X) -> np.ndarray:
        """(n, N) class probabilities, columns in the order of ``classes_``."""
        if self.task != "classification":
            raise ConfigError(f"{self.path}: predict_proba needs a classifier, this is a regressor")
        return softmax(self.logits(X))

    def predict(self, X) -> np.ndarray:
        """One predicted label per sequence (regression: the (n, O) outputs)."""
        if self.task != "classification":
            return self.logits(X)
        proba = self.predict_proba(X)
        return np.array([self.classes_[i] for i in proba.argmax(1)], dtype=object)
