"""`SequenceTagger`: many-to-many aligned, one label or value vector per valid step.

tag = SequenceTagger(task="classification").fit(X, Y)  # X: (T_i, F) arrays; Y: (T_i,) labels
tag = SequenceTagger(task="regression").fit(X, Y)      # Y: (T_i, O) or (T_i,) values
tag.predict(X) -> list of (T_i,) labels | (T_i, O) values; tag.predict_proba(X) -> (T_i, N) each
tag.evaluate(X, Y); tag.save("model/"); SequenceTagger.load("model/")

Losses and metrics count valid steps only, so padding never changes a number. Also here:
`read_step_csv`, the per-step long-CSV reader used by the CLI for tagging and generation
(``sequence_id, step, <columns...>``, where a target column may change from step to step).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..artifacts import build_net, config_from_dict, load_model_dir
from ..batching import BucketBatchSampler, collate, pad_sequences
from ..data.frames import check_layout, is_frame, sequences_from_frame, to_ntf
from ..data.labels import encode_labels, labels_array, normalize_labels, unique_labels
from ..data.scaling import StandardScaler
from ..data.sequences import sorted_labels
from ..errors import ArtifactError, ConfigError, DataError, ShapeError
from ..models.tagger import TASKS, TaggerConfig, TaggerNet, tagger_loss
from ..train.loop import TrainResult
from ..train.metrics import classification_report
from .base import Estimator, fitting, params_from
from .sides import _as_arrays, split_indices, value_metrics

KIND = "tagger"


# -- the per-step long CSV ----------------------------------------------------------------------
@dataclass
class StepTable:
    """Sequences read from a per-step long CSV, in the order of each sequence's first row."""

    ids: list[str]
    features: list[np.ndarray]  # (T_i, F) float32; F may be 0
    targets: list[np.ndarray] | None  # (T_i,) str labels | (T_i, O) float32; None without targets
    static: np.ndarray | None  # (n, C) float32 per-sequence columns, or None
    feature_names: list[str]
    target_names: list[str]
    static_names: list[str]
    source: str


def _open(path: Path) -> io.TextIOBase:
    try:
        head = path.open("rb").read(2)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: expected a file, got a directory") from None
    raw = gzip.open(path, "rb") if head == b"\x1f\x8b" else path.open("rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _number(text: str, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not np.isfinite(v):
        raise DataError(f"{where}: expected a finite number, got {text.strip()!r}")
    return v


def read_step_csv(
    path: str | Path,
    *,
    targets: Sequence[str] = (),
    numeric_targets: bool = False,
    static: Sequence[str] = (),
    features: Sequence[str] | None = None,
    require_targets: bool = True,
) -> StepTable:
    """Read ``sequence_id, step, ...`` rows (plain or gzip CSV), one row per step.

    ``targets`` name the per-step target columns (labels as text, or numbers with
    ``numeric_targets``); ``static`` name per-sequence columns, which must hold the same value on
    every row of a sequence; ``features`` the per-step inputs (default: every other column).
    Rows of a sequence are ordered by ``step``. With ``require_targets=False`` missing target
    columns are allowed (prediction input). Errors name the file, the line and the column.
    """
    path = Path(path)
    name = str(path)
    with _open(path) as f:
        try:
            rows = list(csv.reader(f))
        except UnicodeDecodeError as e:
            raise DataError(f"{name}: not UTF-8 text ({e.reason})") from None
        except (OSError, EOFError) as e:
            raise DataError(f"{name}: cannot read (damaged gzip?): {e}") from None
    if not rows:
        raise DataError(f"{name}: empty file (expected a header line)")
    header = [h.strip() for h in rows[0]]
    for required in ("sequence_id", "step"):
        if required not in header:
            raise DataError(
                f"{name} line 1: expected a header with columns sequence_id, step, ..., got {header}"
            )
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise DataError(f"{name} line 1: column {dup!r} appears twice in the header")
    have_targets = all(t in header for t in targets)
    for col in [*static, *(targets if require_targets else [])]:
        if col not in header:
            raise DataError(f"{name} line 1: expected a column {col!r}, got {header}")
    taken = {"sequence_id", "step", *targets, *static}
    targets = list(targets) if have_targets else []
    if features is None:
        features = [h for h in header if h not in taken]
    for col in features:
        if col not in header:
            raise DataError(f"{name} line 1: expected a feature column {col!r}, got {header}")
    col = {h: i for i, h in enumerate(header)}
    order: list[str] = []
    seqs: dict[str, list[tuple[float, int, list[str]]]] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            raise DataError(
                f"{name} line {lineno}: expected {len(header)} fields (as in the header), "
                f"got {len(row)}"
            )
        sid = row[col["sequence_id"]].strip()
        if not sid:
            raise DataError(f"{name} line {lineno}: empty sequence_id")
        step = _number(row[col["step"]], f"{name} line {lineno}: column 'step'")
        if sid not in seqs:
            order.append(sid)
            seqs[sid] = []
        seqs[sid].append((step, lineno, row))
    if not order:
        raise DataError(f"{name}: no data rows after the header")
    X, Y, S = [], [], []
    for sid in order:
        steps = sorted(seqs[sid], key=lambda r: r[0])
        for (a, la, _), (b, lb, _) in zip(steps, steps[1:]):
            if a == b:
                raise DataError(
                    f"{name} line {lb}: sequence {sid!r} repeats step {a:g} (line {la})"
                )
        X.append(
            np.array(
                [
                    [_number(r[col[c]], f"{name} line {ln}: column {c!r}") for c in features]
                    for _, ln, r in steps
                ],
                dtype=np.float32,
            ).reshape(len(steps), len(features))
        )
        if targets:
            if numeric_targets:
                Y.append(
                    np.array(
                        [
                            [_number(r[col[c]], f"{name} line {ln}: column {c!r}") for c in targets]
                            for _, ln, r in steps
                        ],
                        dtype=np.float32,
                    )
                )
            else:
                labels = []
                for _, ln, r in steps:
                    v = r[col[targets[0]]].strip()
                    if not v:
                        raise DataError(f"{name} line {ln}: column {targets[0]!r} is empty")
                    labels.append(v)
                Y.append(np.array(labels, dtype=object))
        if static:
            first_line, first = steps[0][1], steps[0][2]
            values = []
            for c in static:
                v0 = first[col[c]].strip()
                for _, ln, r in steps[1:]:
                    if r[col[c]].strip() != v0:
                        raise DataError(
                            f"{name} line {ln}: sequence {sid!r} has {c}={r[col[c]].strip()!r} "
                            f"here but {v0!r} on line {first_line} (a static column is constant "
                            "within a sequence)"
                        )
                values.append(_number(v0, f"{name} line {first_line}: column {c!r}"))
            S.append(values)
    return StepTable(
        ids=order,
        features=X,
        targets=Y if targets else None,
        static=np.array(S, dtype=np.float32) if static else None,
        feature_names=list(features),
        target_names=list(targets),
        static_names=list(static),
        source=name,
    )


# -- the tagger ---------------------------------------------------------------------------------
class SequenceTagger(Estimator):
    """A (bi)LSTM that labels every step; see the module docstring.

    Every argument is a parameter under its own name (api/base.py). Fitted: ``classes_`` (the
    step labels in their own type, classification), ``n_features_in_``, ``net``, ``config``.
    """

    _kind = KIND

    def __init__(
        self,
        *,
        task: str = "classification",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = True,
        cell: str = "lstm",
        dropout: float = 0.1,
        epochs: int = 60,
        batch_size: int = 16,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        patience: int = 10,
        val_fraction: float = 0.1,
        seed: int = 0,
        scale: bool = True,
        threads: int | None = None,
        progress: bool = True,
        layout: str = "auto",
        device: str = "cpu",
        callback=None,
    ) -> None:
        self._store_params(locals())
        self.n_features_in_: int | None = None
        self.config: TaggerConfig | None = None
        self.net: TaggerNet | None = None
        self.scaler: StandardScaler | None = None
        self.target_scaler: StandardScaler | None = None
        self.classes_: np.ndarray = np.zeros(0)
        self.columns: dict | None = None  # the CLI's column names (saved with the model)
        self.metrics: dict = {}
        self.train_result: TrainResult | None = None

    def _check_params(self) -> None:
        super()._check_params()
        check_layout(self.layout)
        if self.task not in TASKS:
            raise ConfigError(f"task: expected one of {', '.join(TASKS)}, got {self.task!r}")

    @property
    def model_options(self) -> dict:
        """The network's options: the parameters that are TaggerConfig's fields."""
        return self._options(TaggerConfig)

    # -- data checks --------------------------------------------------------------------------
    def _inputs(self, X, name: str = "X") -> list[np.ndarray]:
        features = self.config.input_size if self.config is not None else None
        if is_frame(X):
            X = sequences_from_frame(X, name=name, targets="steps")[0]
        elif isinstance(X, np.ndarray) and X.ndim == 3 and X.dtype != object:
            X = to_ntf(X, self.layout, name, features)
        elif self.layout == "NCT":
            X = [np.asarray(a).T for a in X]
        if isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype != object:
            raise ShapeError(
                f"{name}: expected a list of (T, F) arrays, got one array {X.shape} — a single "
                "sequence? pass [x]"
            )
        return _as_arrays(list(X), name, features)

    def _targets(self, X: list[np.ndarray], Y, name: str = "Y") -> list[np.ndarray]:
        """Per-step targets, checked against the sequences' lengths: class ids or (T_i, O)."""
        Y = list(Y)
        if len(Y) != len(X):
            raise ShapeError(
                f"{name}: expected one target sequence per sequence ({len(X)}), got {len(Y)}"
            )
        out = []
        for i, (x, y) in enumerate(zip(X, Y, strict=True)):
            if self.task == "classification":
                y = np.asarray(y) if isinstance(y, np.ndarray) else np.asarray(list(y), object)
                if y.ndim != 1:
                    raise ShapeError(f"{name}[{i}]: expected (T,) labels, got shape {y.shape}")
                y = normalize_labels(y)
            else:
                y = np.asarray(y, dtype=np.float32)
                y = y[:, None] if y.ndim == 1 else y
                if y.ndim != 2:
                    raise ShapeError(f"{name}[{i}]: expected (T, O) values, got shape {y.shape}")
                if not np.isfinite(y).all():
                    raise DataError(f"{name}[{i}]: expected finite values, got NaN or inf")
            if len(y) != len(x):
                raise ShapeError(
                    f"{name}[{i}]: expected {len(x)} targets (one per step of X[{i}]), got {len(y)}"
                )
            out.append(y)
        if self.task == "regression":
            widths = {y.shape[1] for y in out}
            if len(widths) > 1:
                raise ShapeError(f"{name}: expected one output width O, got {sorted(widths)}")
        return out

    def _encode_labels(self, Y: list[np.ndarray], name: str) -> list[np.ndarray]:
        return [encode_labels(y, self.classes_, name=f"{name}[{i}]") for i, y in enumerate(Y)]

    # -- training -----------------------------------------------------------------------------
    @fitting
    def fit(
        self,
        X,
        Y=None,
        *,
        X_val=None,
        Y_val=None,
        log_path: str | Path | None = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
    ):
        """Train on sequences ``X`` and their per-step targets ``Y`` (or a long DataFrame:
        ``sequence_id, step``, the features and a per-step ``label`` column).

        ``checkpoint_dir``/``checkpoint_every``/``resume``: as in train.loop.fit (a resumed run
        needs the same data and options, and ends with the same weights).
        """
        self.config = None
        if is_frame(X) and Y is None:
            X, Y, _ = sequences_from_frame(X, name="X", targets="steps")
            if Y is None:
                raise DataError("X: a long DataFrame without Y needs a per-step 'label' column")
        if is_frame(X_val) and Y_val is None:
            X_val, Y_val, _ = sequences_from_frame(X_val, name="X_val", targets="steps")
        if Y is None:
            raise DataError("Y: expected per-step targets (one array per sequence), got None")
        X = self._inputs(X)
        Y = self._targets(X, Y)
        self.n_features_in_ = X[0].shape[1] if X else None
        if X_val is not None:
            Xtr, Ytr = X, Y
            Xva = self._inputs(X_val, "X_val")
            Yva = self._targets(Xva, Y_val, "Y_val")
        elif self.val_fraction > 0:
            tr, va = split_indices(X, self.val_fraction, self.seed)
            Xtr, Ytr = [X[i] for i in tr], [Y[i] for i in tr]
            Xva, Yva = [X[i] for i in va], [Y[i] for i in va]
        else:
            Xtr, Ytr, Xva, Yva = X, Y, [], []
        if self.task == "classification":
            self.classes_ = unique_labels(np.concatenate(Ytr))
            if self.classes_.dtype.kind == "U":
                self.classes_ = np.asarray(sorted_labels(self.classes_.tolist()))
            if len(self.classes_) < 2:
                raise DataError(f"Y: expected at least 2 classes, got {self.classes_.tolist()}")
            Ytr = self._encode_labels(Ytr, "Y")
            Yva = self._encode_labels(Yva, "Y_val") if Xva else []
            n_out = len(self.classes_)
        else:
            n_out = Ytr[0].shape[1]
            if self.scale:
                self.target_scaler = StandardScaler().fit(Ytr, name="Y")
                Ytr = self.target_scaler.transform(Ytr)
                Yva = self.target_scaler.transform(Yva) if Xva else []
        if self.scale:
            self.scaler = StandardScaler().fit(Xtr)
            Xtr = self.scaler.transform(Xtr)
            Xva = self.scaler.transform(Xva) if Xva else []
        torch.manual_seed(self.seed)
        self.config = TaggerConfig(
            input_size=Xtr[0].shape[1], num_outputs=n_out, **self.model_options
        )
        self.net = TaggerNet(self.config)
        tc = self.train_config
        if not Xva:
            tc = replace(tc, monitor="train_loss", patience=0)
        sampler = BucketBatchSampler([len(a) for a in Xtr], tc.batch_size, seed=tc.seed)

        def batches(epoch: int):
            sampler.set_epoch(epoch)
            for idx in sampler:
                b = collate([Xtr[i] for i in idx])
                b.y = self._pad_targets([Ytr[i] for i in idx])
                yield b

        def loss_fn(net, batch):
            return tagger_loss(net(batch.x, batch.lengths), batch.y, batch.lengths, self.task)

        def validate(net):
            out = self._outputs(Xva, scaled=True)
            targets = [torch.as_tensor(y) for y in Yva]
            n = sum(len(y) for y in Yva)
            if self.task == "classification":
                # per sequence (T_i, N) vs (T_i,): summed cross-entropy and hits over valid steps
                loss = sum(
                    float(torch.nn.functional.cross_entropy(o, t, reduction="sum"))
                    for o, t in zip(out, targets, strict=True)
                )
                hits = sum(
                    int((o.argmax(-1) == t).sum()) for o, t in zip(out, targets, strict=True)
                )
                return {"val_loss": loss / n, "val_accuracy": hits / n}
            loss = sum(
                float(((o - t) ** 2).mean(-1).sum()) for o, t in zip(out, targets, strict=True)
            )
            return {"val_loss": loss / n}

        self.train_result = self._train(
            "tag",
            batches,
            len(sampler),
            loss_fn,
            validate if Xva else None,
            tc,
            data=(Xtr, Ytr, Xva, Yva),
        )
        self.metrics = self.train_result.summary(
            tc.monitor,
            padding_waste=round(sampler.padding_waste(), 4),
            n_train=len(Xtr),
            n_val=len(Xva),
        )
        return self

    def _pad_targets(self, Y: list[np.ndarray]) -> torch.Tensor:
        if self.task == "classification":
            # (T_i,) ids -> (B, T) long; the padding value is ignored by the loss
            return pad_sequences([y[:, None] for y in Y], dtype=torch.long).squeeze(-1)
        # (T_i, O) -> (B, T, O)
        return pad_sequences(Y)

    # -- inference ----------------------------------------------------------------------------
    def _outputs(self, X: list[np.ndarray], *, scaled: bool = False, batch_size: int = 256):
        """Per sequence, its (T_i, N | O) network outputs (valid steps only), in input order."""
        self._check_fitted()
        if not scaled and self.scaler is not None:
            X = self.scaler.transform(X)
        out: list = [None] * len(X)
        sampler = BucketBatchSampler([len(a) for a in X], batch_size, shuffle=False)
        was_training = self.net.training
        device = self._device()
        self.net.eval()
        with torch.no_grad():
            for idx in sampler:
                b = collate([X[i] for i in idx]).to(device)
                y = self.net(b.x, b.lengths).cpu()
                for j, i in enumerate(idx):
                    # (T, N) -> (T_i, N): only this sequence's valid steps
                    out[i] = y[j, : len(X[i])]
        self.net.train(was_training)
        return out

    def predict_proba(self, X) -> list[np.ndarray]:
        """Per sequence, (T_i, N) class probabilities (columns in the order of ``classes_``)."""
        self._check_fitted()
        if self.task != "classification":
            raise ConfigError("predict_proba: this tagger does regression; use predict")
        with self._inferring():
            return [torch.softmax(o, -1).numpy() for o in self._outputs(self._inputs(X))]

    def predict(self, X) -> list[np.ndarray]:
        """Per sequence, (T_i,) labels (classification) or (T_i, O) values in the targets' units."""
        self._check_fitted()
        with self._inferring():
            out = self._outputs(self._inputs(X))
        if self.task == "classification":
            return [self.classes_[o.argmax(-1).numpy()] for o in out]
        values = [o.numpy().astype(np.float32) for o in out]
        return self.target_scaler.inverse_transform(values) if self.target_scaler else values

    def evaluate(self, X, Y) -> dict:
        """Over every valid step: accuracy, macro F1, confusion matrix | mse, rmse, mae."""
        self._check_fitted()
        X = self._inputs(X)
        Y = self._targets(X, Y)
        if self.task == "classification":
            ids = self._encode_labels(Y, "Y")
            pred = [o.argmax(-1).numpy() for o in self._outputs(X)]
            report = classification_report(
                np.concatenate(ids), np.concatenate(pred), len(self.classes_)
            )
            report["n_steps"] = report.pop("n")
            report["n"] = len(X)
            report["classes"] = [str(c) for c in self.classes_.tolist()]
            return report
        if Y[0].shape[1] != self.config.num_outputs:
            raise ShapeError(
                f"Y: expected {self.config.num_outputs} values per step, got {Y[0].shape[1]}"
            )
        return value_metrics(Y, self.predict(X))

    def score(self, X, Y) -> float:
        """scikit-learn's ``score``: accuracy over every valid step (classification), or R^2
        over every valid step and output (regression)."""
        if self.task == "classification":
            return self.evaluate(X, Y)["accuracy"]
        self._check_fitted()
        X = self._inputs(X)
        truth = np.concatenate(self._targets(X, Y))
        pred = np.concatenate(self.predict(X))
        total = float(((truth - truth.mean(0)) ** 2).sum())
        return 1.0 - float(((truth - pred) ** 2).sum()) / total if total > 0 else 0.0

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path, *, extra_metrics: dict | None = None) -> Path:
        return self._save(
            path,
            {
                "classes": self.classes_.tolist() if self.task == "classification" else None,
                "scaler": self.scaler.to_dict() if self.scaler is not None else None,
                "target_scaler": (
                    self.target_scaler.to_dict() if self.target_scaler is not None else None
                ),
                "columns": self.columns,
            },
            extra_metrics,
        )

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None) -> SequenceTagger:
        files = load_model_dir(path, kind=KIND)
        config = config_from_dict(TaggerConfig, files.config, files.path / "config.json")
        self = cls(**params_from(cls, config), threads=threads)
        self.n_features_in_ = config.input_size
        self.config = config
        self.net = build_net(TaggerNet, config, files)
        self.net.eval()
        pre = files.preprocessing
        where = files.path / "preprocessing.json"
        if config.task == "classification":
            classes = pre.get("classes")
            if not isinstance(classes, list) or len(classes) != config.num_outputs:
                raise ArtifactError(
                    f"{where}: classes: expected {config.num_outputs} names, got {classes!r}"
                )
            self.classes_ = labels_array(classes)
        try:
            self.scaler = StandardScaler.from_dict(pre["scaler"]) if pre.get("scaler") else None
            ts = pre.get("target_scaler")
            self.target_scaler = StandardScaler.from_dict(ts) if ts else None
        except ConfigError as e:
            raise ArtifactError(f"{where}: {e}") from None
        self.columns = pre.get("columns")
        self.metrics = files.metrics.get("train", {})
        return self
