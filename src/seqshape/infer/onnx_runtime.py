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
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..data.scaling import StandardScaler, znorm_each
from ..data.series import check_history_length
from ..errors import ArtifactError, ConfigError, DataError, ShapeError
from ..shapes import as_float32_2d, check_feature_counts
from ..train import forecast_metrics as FM

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
        self.classes_: list = list(meta.get("classes") or [])
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
        return np.array([self.classes_[i] for i in proba.argmax(1)], dtype=object)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """(B, V) -> (B, V) log-probabilities, computed stably."""
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _float_2d(a, name: str) -> np.ndarray:
    """(T,) or (T, C) numbers -> (T, C) float32; ShapeError/DataError naming ``name``."""
    return as_float32_2d(a, name)


# -- forecaster -----------------------------------------------------------------------------------
class OnnxForecaster(_OnnxModel):
    """A forecaster exported by ``seqshape export DIR --format onnx``, run with onnxruntime.

        fc = OnnxForecaster("runs/air/model/model.onnx")     # model.step.onnx read beside it
        fc.forecast(history, k=36, future_cov=...)           # like Forecaster.forecast
        fc.forecast_scaled(histories, k)                     # like ForecasterNet.forecast

    The autoregressive strategy runs the ``encode`` graph once and the ``step`` graph K-1 times,
    each step fed the previous point forecast with the carried (h, c), so any K works; the direct
    strategy runs its one graph (K = its training horizon). Histories of different lengths share a
    batch (the graphs take their lengths); the answers do not depend on the batching.
    """

    kind = "forecaster"

    def __init__(
        self, path: str | os.PathLike, *, threads: int | None = None, batch_size: int = 256
    ) -> None:
        super().__init__(path, threads=threads, batch_size=batch_size)
        meta = self.metadata
        c = self.config
        self.strategy: str = c["strategy"]
        self.loss: str = c["loss"]
        self.quantiles: tuple[float, ...] = tuple(float(q) for q in c.get("quantiles", ()))
        self.n_targets, self.n_past, self.n_future = (
            int(c["n_targets"]),
            int(c["n_past"]),
            int(c["n_future"]),
        )
        self.n_fed = self.n_targets + self.n_past
        self.horizon = int(c["horizon"])
        self.lookback = int(c["lookback"])
        self.point_index = int(meta["point_index"])
        # P: distribution parameters per predicted value
        self.n_params = {"mse": 1, "gaussian": 2, "student_t": 3}.get(
            self.loss, len(self.quantiles)
        )
        sc = meta["scaling"]
        try:
            arr = lambda k: np.asarray(sc[k], dtype=np.float32).reshape(len(sc[k]), -1)  # noqa: E731
            self.z_mean, self.z_std = arr("z_mean"), arr("z_std")
            self.f_mean, self.f_std = arr("f_mean"), arr("f_std")
            self.global_scaling = bool(sc["global_"])
        except (KeyError, TypeError, ValueError) as e:
            raise ArtifactError(f"{self.path}: metadata 'scaling' is damaged ({e})") from None
        self.series_names: list[str] = list(meta.get("series_names") or [])
        self.meta: dict = dict(meta.get("meta") or {})
        if self.strategy != "direct":
            names = lambda part, io: [t["name"] for t in meta["parts"][part][io]]  # noqa: E731
            self._encode_out = names("encode", "outputs")
            self._carried = [
                n for n in names("step", "inputs") if n not in ("z", "f_next", "offset")
            ]
            self._carried_next = [f"{n}_next" for n in self._carried]

    # -- scaled units, like ForecasterNet.forecast ------------------------------------------------
    def forecast_scaled(self, history, k: int, future_cov=None) -> np.ndarray:
        """Forecast ``k`` steps -> (B, K, O+Cp, P) parameters, scaled units.

        ``history``: (B, N, O+Cp) or a list of (N_i, O+Cp) scaled arrays (any N_i >= 1);
        ``future_cov`` (Cf > 0): (B, N+K, Cf) or a list of (N_i+K, Cf), the known covariates of
        every history and forecast row, as `ForecasterNet.forecast` takes them.
        """
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ShapeError(f"K: expected a horizon >= 1, got {k!r}")
        k = int(k)
        if self.strategy == "direct" and k != self.horizon:
            raise ShapeError(
                f"K: the direct strategy emits exactly K={self.horizon} steps (its training "
                f"horizon), got {k}; train with --strategy autoregressive for any K"
            )
        hists = [_float_2d(h, f"history[{i}]") for i, h in enumerate(history)]
        if not hists:
            raise ShapeError("history: expected at least one history, got none")
        for i, h in enumerate(hists):
            if h.shape[1] != self.n_fed or len(h) < 1:
                raise ShapeError(
                    f"history[{i}]: expected (N >= 1, Z={self.n_fed}) (targets + past "
                    f"covariates), got {h.shape}"
                )
        covs: list[np.ndarray] = []
        if self.n_future:
            if future_cov is None:
                raise ShapeError(
                    f"future_cov: expected (B, N+K, Cf={self.n_future}) known covariates, got None"
                )
            covs = [_float_2d(f, f"future_cov[{i}]") for i, f in enumerate(future_cov)]
            if len(covs) != len(hists):
                raise ShapeError(
                    f"future_cov: expected one array per history ({len(hists)}), got {len(covs)}"
                )
            for i, (h, f) in enumerate(zip(hists, covs)):
                if f.shape != (len(h) + k, self.n_future):
                    raise ShapeError(
                        f"future_cov[{i}]: expected (N+K={len(h) + k}, Cf={self.n_future}), "
                        f"got {f.shape}"
                    )
        n = len(hists)
        out = np.empty((n, k, self.n_fed, self.n_params), dtype=np.float32)
        order = np.argsort([len(h) for h in hists], kind="stable")
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._run([hists[i] for i in idx], [covs[i] for i in idx] if covs else [], k)
        return out

    def _run(self, hists: list[np.ndarray], covs: list[np.ndarray], k: int) -> np.ndarray:
        x, lengths = pad_batch(hists)
        feeds = {"history": x, "lengths": lengths}
        B, Cf = len(hists), self.n_future
        ahead = np.zeros((B, k, Cf), dtype=np.float32)
        if Cf:
            # rows 1..N_i: each history step's input carries the next row's known covariates
            feeds["future_cov"] = pad_batch([f[1 : len(h) + 1] for h, f in zip(hists, covs)])[0]
            # (B, K, Cf): the covariates of the K forecast rows N_i..N_i+K-1
            ahead = np.stack([f[len(h) :] for h, f in zip(hists, covs)])
        if self.strategy == "direct":
            if Cf:
                feeds["horizon_cov"] = ahead
            (params,) = self.sessions["direct"].run(["params"], feeds)
            return params
        got = dict(zip(self._encode_out, self.sessions["encode"].run(self._encode_out, feeds)))
        params, z = [got["params"]], got["point"]
        # what each step carries: h[, c][, recent] (the highway's window)
        state = {n: got[n] for n in self._carried}
        step, out_names = self.sessions["step"], ["params", "point", *self._carried_next]
        for j in range(1, k):
            feeds = {"z": z, "offset": got["offset"], **state}
            if Cf:
                feeds["f_next"] = ahead[:, j]
            p, z, *new = step.run(out_names, feeds)
            state = dict(zip(self._carried, new))
            params.append(p)
        # K x (B, Z, P) -> (B, K, Z, P)
        return np.stack(params, axis=1)

    # -- original units, like Forecaster.forecast -------------------------------------------------
    def _row(self, series_index: int) -> int:
        if self.global_scaling:
            return 0
        if not 0 <= series_index < len(self.z_mean):
            raise ConfigError(
                f"series_index: expected 0..{len(self.z_mean) - 1} ({self.series_names}), "
                f"got {series_index}"
            )
        return series_index

    def _arrays(
        self, history, name: str, allow_short: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A SeriesData-like history (or a target array) -> target (N, O), past (N, Cp), known
        covariates (N, Cf)."""
        if isinstance(history, np.ndarray) or isinstance(history, list):
            target, past, fut = _float_2d(history, f"{name}.target"), None, None
        else:
            name = getattr(history, "name", name)
            target = _float_2d(history.target, f"{name}.target")
            past, fut = getattr(history, "past_cov", None), getattr(history, "future_cov", None)
        N = len(target)
        check_history_length(name, N, self.lookback, allow_short)
        past = np.zeros((N, 0), np.float32) if past is None else _float_2d(past, f"{name}.past_cov")
        fut = np.zeros((N, 0), np.float32) if fut is None else _float_2d(fut, f"{name}.future_cov")
        got = (target.shape[1], past.shape[1], fut.shape[1])
        if got != (self.n_targets, self.n_past, self.n_future) or len(past) != N or len(fut) != N:
            raise ShapeError(
                f"{name}: expected (O={self.n_targets}, Cp={self.n_past}, Cf={self.n_future}) "
                f"columns over {N} rows, got {got} over ({N}, {len(past)}, {len(fut)}) rows"
            )
        return target, past, fut

    def forecast_many(
        self,
        histories: list,
        k: int,
        *,
        series_index: int | list[int] = 0,
        future_cov: list | None = None,
        allow_short: bool = False,
    ) -> list[dict]:
        """`forecast` for many histories at once (batched, any lengths of at least ``lookback``,
        or fewer with ``allow_short``); one dict per history."""
        n = len(histories)
        rows = [series_index] * n if isinstance(series_index, (int, np.integer)) else series_index
        if len(rows) != n:
            raise ConfigError(f"series_index: expected one per history ({n}), got {len(rows)}")
        if self.n_future and future_cov is None:
            raise DataError(
                f"future_cov: this model uses {self.n_future} known covariates; give their "
                f"K={k} future rows"
            )
        zs, fs, scale_rows = [], [], []
        for i, h in enumerate(histories):
            target, past, fut = self._arrays(h, f"histories[{i}]", allow_short)
            r = self._row(int(rows[i]))
            scale_rows.append(r)
            # (N, O+Cp) scaled with the series' own statistics, float32 as in training
            zs.append((np.concatenate([target, past], 1) - self.z_mean[r]) / self.z_std[r])
            if self.n_future:
                ahead = _float_2d(future_cov[i], "future_cov")
                if ahead.shape != (k, self.n_future):
                    raise ShapeError(
                        f"future_cov: expected (K={k}, Cf={self.n_future}), got {ahead.shape}"
                    )
                fs.append((np.concatenate([fut, ahead]) - self.f_mean[r]) / self.f_std[r])
        params = self.forecast_scaled(zs, k, fs if self.n_future else None)
        O = self.n_targets
        results = []
        for p, r in zip(params, scale_rows):
            mean, std = self.z_mean[r, :O], self.z_std[r, :O]
            # (K, O, P) in scaled units -> original units (a scale parameter is only stretched)
            p = p[:, :O]
            if self.loss in ("mse", "quantile"):
                orig = p * std[:, None] + mean[:, None]
            else:
                orig = p.copy()
                orig[..., 0] = p[..., 0] * std + mean
                orig[..., 1] = p[..., 1] * std
            res: dict = {
                "point": p[..., self.point_index] * std + mean,
                "params": orig,
            }
            if self.loss == "quantile":
                res["quantiles"] = {q: orig[..., i] for i, q in enumerate(self.quantiles)}
            if self.loss in ("gaussian", "student_t"):
                res["std"] = FM.distribution_std(self.loss, orig)
            if self.loss == "student_t":
                res["scale"], res["df"] = orig[..., 1], orig[..., 2]
            results.append(res)
        return results

    def forecast(
        self,
        history,
        k: int,
        *,
        series_index: int = 0,
        future_cov: np.ndarray | None = None,
        allow_short: bool = False,
    ) -> dict:
        """Forecast ``k`` steps after the end of ``history`` (original units), as
        `Forecaster.forecast` does: {"point": (K, O), "params": (K, O, P)} plus "quantiles"
        {q: (K, O)} for a quantile head and "std" for a Gaussian or Student-t head.

        ``history``: a `SeriesData` (or any object with ``target``, ``past_cov``, ``future_cov``)
        or a (N, O) target array; ``future_cov`` (K, Cf) the known covariates of the K rows.
        """
        fc = None if future_cov is None else [future_cov]
        return self.forecast_many(
            [history], k, series_index=series_index, future_cov=fc, allow_short=allow_short
        )[0]


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
