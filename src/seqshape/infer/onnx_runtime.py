"""Inference from an exported ONNX file with onnxruntime and numpy only (torch is never imported).

    clf = OnnxClassifier("runs/jv/model/model.onnx")
    clf.predict_proba(X)   # X: list of (T_i, F) arrays, any lengths -> (n, N)
    clf.predict(X)         # one class name per sequence

    fc = OnnxForecaster("runs/air/model/model.onnx")   # + model.step.onnx beside it
    fc.forecast(history, 36, future_cov=...)            # {"point": (K, O), ...}, any K

    s2s = OnnxSeq2Seq("runs/g2p/model/model.onnx")     # + model.decoder_step.onnx
    s2s.predict([list("hello")])                       # greedy decoding

The files carry their own metadata (written by `seqshape.infer.export.export_onnx`, which also
documents each graph's inputs and outputs): class names, scalers, vocabularies and the graphs'
input names, so nothing else is needed beside them. Sequences are scaled, sorted by length, cut
into batches, zero-padded at the end and run with their lengths; the answers come back in input
order and do not depend on the batching (the graphs are padding-invariant).

Layout: opening files and sessions lives in `onnx_session`, the forecaster's runner in
`onnx_forecaster`; the classifier and seq2seq runners live here, and every name is importable
from here.
"""

from __future__ import annotations

import os

import numpy as np

from ..data.labels import labels_array
from ..data.scaling import StandardScaler, znorm_each
from ..errors import ArtifactError, ConfigError, DataError, ShapeError
from ..outfiles import file_digest as weights_digest  # noqa: F401 (re-exported)
from ..shapes import check_feature_counts
from .onnx_forecaster import OnnxForecaster  # noqa: F401 (re-exported: it was defined here)
from .onnx_session import (  # noqa: F401 (re-exported: they were defined here)
    METADATA_KEY,
    ONNX_FORMAT,
    ONNX_FORMAT_VERSION,
    _float_2d,
    _OnnxModel,
    _open,
    _ort,
    _threads,
    open_parts,
    pad_batch,
)


def softmax(logits: np.ndarray) -> np.ndarray:
    """(n, N) -> (n, N) rows summing to 1, computed stably (max subtracted)."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class OnnxClassifier(_OnnxModel):
    """A classifier exported by ``seqshape export DIR --format onnx``, run with onnxruntime."""

    kind = "classifier"

    def __init__(
        self, path: str | os.PathLike, *, threads: int | None = None, batch_size: int = 256
    ) -> None:
        super().__init__(path, threads=threads, batch_size=batch_size)
        meta = self.metadata
        self.session = self.sessions["classifier"]
        self.task: str = meta.get("task", "classification")
        # the labels in their own type, as the torch model gives them back
        self.classes_: np.ndarray = labels_array(meta.get("classes") or [])
        self.n_features: int = int(meta["config"]["input_size"])
        self.n_outputs: int = int(meta["config"]["num_outputs"])
        self.scaler = StandardScaler.from_dict(meta["scaler"]) if meta.get("scaler") else None
        # each sequence z-normalised on its own before the scaler (SequenceClassifier series_norm)
        self.series_norm: bool = meta.get("series_norm", False) is True

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
        if self.series_norm:
            X = znorm_each(X, name=name)
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
        return self.classes_[proba.argmax(1)]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """(B, V) -> (B, V) log-probabilities, computed stably."""
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


# -- seq2seq --------------------------------------------------------------------------------------
class OnnxSeq2Seq(_OnnxModel):
    """A seq2seq model exported by ``seqshape export DIR --format onnx``, run with onnxruntime.

        s2s = OnnxSeq2Seq("runs/g2p/model.onnx")     # model.decoder_step.onnx read beside it
        s2s.predict([list("hello")])                 # greedy: [['HH', 'AH', 'L', 'OW']]

    The ``encoder`` graph reads a padded batch of sources once; the ``decoder_step`` graph runs one
    step at a time with the carried state, fed its own previous output (greedy decoding, as
    ``Seq2Seq.predict(beam_size=1)``). Beam search stays with the torch backend.
    """

    kind = "seq2seq"

    def __init__(
        self, path: str | os.PathLike, *, threads: int | None = None, batch_size: int = 128
    ) -> None:
        super().__init__(path, threads=threads, batch_size=batch_size)
        meta = self.metadata
        src, tgt = meta.get("source"), meta.get("target")
        if not isinstance(src, dict) or not isinstance(tgt, dict):
            raise ArtifactError(f"{self.path}: metadata lacks the source/target descriptions")
        self.source_kind: str = src["kind"]
        self.target_kind: str = tgt["kind"]
        self._src_itos = self._itos(src) if self.source_kind == "tokens" else []
        self._src_stoi = {t: i for i, t in enumerate(self._src_itos)}
        self._tgt_itos = self._itos(tgt) if self.target_kind == "tokens" else []
        self.source_scaler = StandardScaler.from_dict(src["scaler"]) if src.get("scaler") else None
        self.target_scaler = StandardScaler.from_dict(tgt["scaler"]) if tgt.get("scaler") else None
        self.source_features = int(src.get("features") or 0)
        self.target_max_length = int(tgt["max_length"])
        self.target_fixed_length = tgt.get("fixed_length")
        self.max_len = (meta.get("decoding") or {}).get("max_len")
        ids = meta["special_ids"]
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (
            int(ids[k]) for k in ("pad", "bos", "eos", "unk")
        )
        self.start = None if meta.get("start") is None else np.asarray(meta["start"], np.float32)
        self._enc_out = [s["name"] for s in meta["parts"]["encoder"]["outputs"]]
        self._step_in = [s["name"] for s in meta["parts"]["decoder_step"]["inputs"]]
        self._step_out = [s["name"] for s in meta["parts"]["decoder_step"]["outputs"]]

    @staticmethod
    def _itos(side: dict) -> list[str]:
        vocab = side.get("vocab") or {}
        return list(vocab.get("specials") or []) + list(vocab.get("tokens") or [])

    # -- one batch ------------------------------------------------------------------------------
    def encode_sources(self, sources) -> list[np.ndarray]:
        """Token lists -> id arrays (unknown tokens: UNK); value arrays -> scaled float32."""
        sources = list(sources)
        if not sources:
            raise DataError("sources: expected at least one sequence, got none")
        out = []
        if self.source_kind == "tokens":
            for i, s in enumerate(sources):
                if isinstance(s, str) or not isinstance(s, (list, tuple)):
                    raise DataError(
                        f"sources[{i}]: expected a list of tokens (as in training), got "
                        f"{type(s).__name__}"
                    )
                if len(s) == 0:
                    raise DataError(f"sources[{i}]: expected at least one token, got an empty list")
                out.append(np.array([self._src_stoi.get(t, self.unk_id) for t in s], np.int64))
            return out
        arrays = [np.asarray(a, dtype=np.float32) for a in sources]
        check_feature_counts(arrays, name="sources", features=self.source_features)
        if self.source_scaler is not None:
            return self.source_scaler.transform(arrays, name="sources")
        return arrays

    def _pad_sources(self, encoded: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if self.source_kind == "values":
            return pad_batch(encoded)
        lengths = np.array([len(e) for e in encoded], dtype=np.int64)
        # (B, S) PAD ids, each row's own ids first
        src = np.full((len(encoded), int(lengths.max())), self.pad_id, dtype=np.int64)
        for i, e in enumerate(encoded):
            src[i, : len(e)] = e
        return src, lengths

    def decode_batch(
        self, src: np.ndarray, src_lengths: np.ndarray, *, max_len: int, stop_at_end: bool = True
    ) -> dict:
        """Greedy decoding of one padded batch (scaled / id units), as `Seq2SeqNet.generate_*`.

        Tokens: {"tokens" (B, U) ending in EOS then PAD, "lengths" (B,) counting the EOS, "scores"
        (B,) summed log-probs, "logits" (B, U, V)}. Values: {"values" (B, U, O), "lengths",
        "stop" (B, U) logits}; ``max_len`` steps, a row ending at its first stop probability
        > 0.5 when ``stop_at_end``. Both add "attention" (B, U, S) when the model attends.
        """
        names = self._enc_out
        memory = dict(
            zip(
                names, self.sessions["encoder"].run(names, {"src": src, "src_lengths": src_lengths})
            )
        )
        B = len(src_lengths)
        state = {k: memory[k] for k in ("h", "c") if k in memory}
        step = self.sessions["decoder_step"]
        tokens = self.target_kind == "tokens"
        if tokens:
            prev = np.full(B, self.bos_id, dtype=np.int64)
        else:
            # (O,) -> (B, O): the learned start vector
            prev = np.repeat(self.start[None], B, axis=0)
        finished = np.zeros(B, dtype=bool)
        lengths = np.zeros(B, dtype=np.int64) if tokens else np.full(B, max_len, dtype=np.int64)
        scores = np.zeros(B, dtype=np.float32)
        outs, picks, stops, attns = [], [], [], []
        for u in range(max_len):
            feeds = {"prev": prev, **state}
            feeds.update({k: memory[k] for k in self._step_in if k in memory and k not in state})
            got = dict(zip(self._step_out, step.run(self._step_out, feeds)))
            state = {k: got[f"{k}_next"] for k in state}
            if "attention" in got:
                attns.append(got["attention"])
            if tokens:
                logits = got["logits"]
                outs.append(logits)
                logp = log_softmax(logits)
                # (B, V) -> (B,): the best token and its log-prob
                best = logp.argmax(-1)
                best_lp = logp[np.arange(B), best]
                token = np.where(finished, self.pad_id, best)
                scores = scores + np.where(finished, 0.0, best_lp).astype(np.float32)
                lengths = lengths + (~finished)
                finished = finished | (token == self.eos_id)
                picks.append(token)
                prev = token
            else:
                outs.append(got["values"])
                stops.append(got["stop"])
                if stop_at_end:
                    ends = (1.0 / (1.0 + np.exp(-got["stop"])) > 0.5) & ~finished
                    lengths = np.where(ends, u + 1, lengths)
                    finished = finished | ends
                prev = got["values"]
            if (tokens or stop_at_end) and finished.all():
                break
        result: dict = {"lengths": lengths}
        if tokens:
            U = int(lengths.max())
            # U x (B,) -> (B, U)
            result.update(tokens=np.stack(picks, 1)[:, :U], scores=scores, logits=np.stack(outs, 1))
        else:
            result.update(values=np.stack(outs, 1), stop=np.stack(stops, 1))
        if attns:
            result["attention"] = np.stack(attns, 1)
        return result

    # -- the public API, like Seq2Seq.predict ---------------------------------------------------
    def predict(self, sources, *, max_len: int | None = None, steps: int | None = None) -> list:
        """Greedy decoding of each source: token lists, or (U_i, O) arrays in the targets' units.

        Tokens: at most ``max_len`` tokens (default: the model's, else 1.5 x the longest training
        target + 5). Values: ``steps`` steps when given; else the training length when every
        training target had the same length; else until the stop head says so.
        """
        if max_len is not None and (not isinstance(max_len, int) or max_len < 1):
            raise ConfigError(f"max_len: expected None or an integer >= 1, got {max_len!r}")
        encoded = self.encode_sources(sources)
        n = len(encoded)
        preds: list = [None] * n
        if self.target_kind == "tokens":
            limit = max_len or self.max_len or int(1.5 * self.target_max_length) + 5
            stop = True
        elif steps is not None:
            limit, stop = int(steps), False
        elif self.target_fixed_length is not None:
            limit, stop = int(self.target_fixed_length), False
        else:
            limit, stop = max_len or self.target_max_length, True
        order = np.argsort([len(e) for e in encoded], kind="stable")
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            src, lengths = self._pad_sources([encoded[i] for i in idx])
            out = self.decode_batch(src, lengths, max_len=limit, stop_at_end=stop)
            for j, i in enumerate(idx):
                length = int(out["lengths"][j])
                if self.target_kind == "tokens":
                    row = out["tokens"][j, :length]
                    preds[i] = [
                        self._tgt_itos[t]
                        for t in row
                        if t not in (self.pad_id, self.bos_id, self.eos_id)
                    ]
                else:
                    values = out["values"][j, :length]
                    if self.target_scaler is not None:
                        values = self.target_scaler.inverse_transform([values])[0]
                    preds[i] = values.astype(np.float32)
        return preds
