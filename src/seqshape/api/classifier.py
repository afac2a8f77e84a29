"""`SequenceClassifier`: many-to-one classification in the scikit-learn habit.

clf = SequenceClassifier(hidden_size=64).fit(X, y)   # X: list of (T_i, F) arrays, any lengths
clf.predict(X); clf.predict_proba(X); clf.save("model/"); SequenceClassifier.load("model/")
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..artifacts import build_net, config_from_dict, load_model_dir
from ..batching import BucketBatchSampler, collate
from ..data.frames import check_layout, is_frame, labels_for, sequences_from_frame, to_ntf
from ..data.labels import encode_labels, labels_array, unique_labels
from ..data.scaling import StandardScaler, znorm_each
from ..data.sequences import SequenceSet, from_arrays, sorted_labels
from ..errors import ConfigError, DataError, ShapeError, TrainingError
from ..models.classifier import ClassifierConfig, ClassifierNet
from ..models.kernels import fit_kernel_part
from ..shapes import check_feature_counts
from ..train.loop import TrainResult
from ..train.metrics import classification_report
from ..untrusted import fits
from .base import Estimator, fitting, params_from

KIND = "classifier"
# stride="auto": pool by ceil(median training length / AUTO_STEPS), so that a long series takes
# about AUTO_STEPS recurrent steps (ACSF1: 1,460 -> 64) and a short one keeps every step
AUTO_STEPS = 64
# a run that diverges (non-finite loss or gradient) starts again with lr / 4, at most this often
RESTARTS = 2
# what a classifier needs (with bidirectional=False) to answer the server's streams one point at a
# time: each step read once, in order, and the prefix's summary at its last step
STREAM_OPTIONS = {"pooling": "last", "frontend": "none", "series_norm": False, "kernels": 0}


def auto_stride(lengths: list[int], steps: int = AUTO_STEPS) -> int:
    """The pooling stride that leaves about ``steps`` recurrent steps for the median length."""
    return max(1, -(-int(np.median(lengths)) // steps))


def _classes(y) -> np.ndarray:
    """The distinct labels, sorted, in their own type (text labels by `sorted_labels`' order:
    "2" before "10")."""
    classes = unique_labels(y)
    if classes.dtype.kind == "U":
        classes = np.asarray(sorted_labels(classes.tolist()))
    return classes


def _as_set(X, y=None, name="X") -> SequenceSet:
    if isinstance(X, SequenceSet):
        return X
    return from_arrays(X, y, name=name)


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): ``fraction`` of each class (at least one when it has 2+) go to val."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = int(round(fraction * len(idx)))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        val.extend(idx[:k].tolist())
        train.extend(idx[k:].tolist())
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))


class SequenceClassifier(Estimator):
    """An LSTM classifier of variable-length multivariate sequences.

    The defaults were chosen on the suite of bench/classify_suite.py (JapaneseVowels, six UCR/UEA
    sets from 24 to 1,460 steps, and their randomly cropped variable-length variants; the results
    in docs/classify.md), never on one set: univariate series z-normalised one by one
    (``series_norm="auto"``), a masked convolutional front-end whose max-pool leaves about 64
    recurrent steps (``stride="auto"``), a bidirectional LSTM, mean pooling plus the front-end's
    mean (LSTM-FCN), AdamW with a cosine schedule over 400 epochs in batches of 8, on all of the
    training data (no validation split unless ``X_val`` or ``val_fraction`` is given). A run
    whose gradient blows up starts again by itself at a quarter of the learning rate (twice).

    Beside the LSTM, a kernel part (``kernels`` features, 0 for none; models/kernels.py): fixed
    dilated convolutions whose proportions of positive values feed a ridge classifier, fitted in
    closed form with its penalty and temperature chosen by exact leave-one-out — the idea of
    ROCKET/MiniRocket (Dempster et al. 2020, 2021). The answer mixes the two parts' class
    probabilities, ``kernel_weight`` (0.6) for the kernel part; ``evaluate`` reports each part's
    accuracy alone (``parts``), ``metrics["kernel_part"]`` the leave-one-out accuracy.

    Every argument is a parameter under its own name (``get_params``/``set_params``; see
    api/base.py for ``device``, ``callback`` and what ``fit`` leaves alone). Fitted:
    ``classes_`` (the labels in their own type), ``n_features_in_``, ``net``, ``config``,
    ``metrics``.
    """

    _kind = KIND

    _estimator_type = "classifier"

    def __init__(
        self,
        *,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        cell: str = "lstm",
        dropout: float = 0.3,
        pooling: str = "mean",
        frontend: str = "conv",
        conv_channels: int = 128,
        conv_kernel: int = 7,
        conv_summary: bool = True,
        stride: int | str = "auto",
        series_norm: bool | str = "auto",
        kernels: int = 10_000,
        kernel_weight: float = 0.6,
        epochs: int = 400,
        batch_size: int = 8,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        patience: int = 0,
        lr_schedule: str = "cosine",
        label_smoothing: float = 0.1,
        val_fraction: float = 0.0,
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
        self.series_norm_ = False  # fitted: "auto" resolved (z-normalise univariate series)
        self.config: ClassifierConfig | None = None
        self.net: ClassifierNet | None = None
        self.scaler: StandardScaler | None = None
        self.classes_: np.ndarray = np.zeros(0)
        self.metrics: dict = {}
        self.train_result: TrainResult | None = None

    def _check_params(self) -> None:
        super()._check_params()
        check_layout(self.layout)
        stride, series_norm = self.stride, self.series_norm
        if stride != "auto" and not (
            isinstance(stride, int) and not isinstance(stride, bool) and stride >= 1
        ):
            raise ConfigError(f"stride: expected a positive integer or 'auto', got {stride!r}")
        if series_norm not in (True, False, "auto"):
            raise ConfigError(f"series_norm: expected true, false or 'auto', got {series_norm!r}")
        # the network's options, checked now rather than at fit (sizes from the data stand in)
        options = self._resolved_options([8])
        ClassifierConfig(input_size=1, num_outputs=2, **options)

    def _resolved_options(self, lengths: list[int]) -> dict:
        """The network's options as fit uses them: without a front-end its own options do not
        apply; ``stride="auto"`` from the median of ``lengths``."""
        options = dict(self.model_options, stride=self.stride)
        if options["frontend"] == "none":
            options.update(stride=1, conv_summary=False)
        elif options["stride"] == "auto":
            options["stride"] = auto_stride(lengths)
        return options

    @property
    def model_options(self) -> dict:
        """The network's options: the parameters that are ClassifierConfig's fields."""
        return self._options(ClassifierConfig)

    # -- training -----------------------------------------------------------------------------
    @fitting
    def fit(
        self,
        X,
        y=None,
        *,
        X_val=None,
        y_val=None,
        log_path: str | Path | None = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
    ):
        """Train on ``X`` (list of (T_i, F) arrays or a SequenceSet) and labels ``y``.

        With ``X_val`` (or ``val_fraction`` > 0: a stratified share of the training data, never the
        test set) the epoch best on it is kept; by default every training series trains, for the
        whole schedule, and the epoch with the lowest training loss is kept. ``checkpoint_dir``:
        write a checkpoint there after every epoch (and every ``checkpoint_every`` steps);
        ``resume``: continue from it, with the same data and options, to the same weights as an
        uninterrupted run (see train.loop.fit).
        """
        X, y = self._from_frame(X, y)
        train = _as_set(X, y)
        if train.y is None:
            raise DataError(f"{train.source}: no labels; a classifier needs one label per sequence")
        raw_y = train.y if isinstance(X, SequenceSet) else y
        self.classes_ = _classes(raw_y)
        if len(self.classes_) < 2:
            raise DataError(
                f"{train.source}: expected at least 2 classes, got {self.classes_.tolist()}"
            )
        self.n_features_in_ = train.n_features
        y_all = encode_labels(raw_y, self.classes_)
        if X_val is not None:
            X_val, y_val = self._from_frame(X_val, y_val, name="X_val")
            val = _as_set(X_val, y_val, name="X_val")
            raw_val = val.y if isinstance(X_val, SequenceSet) else y_val
            if raw_val is None:
                raise DataError(f"{val.source}: no labels; validation needs one per sequence")
            Xtr, ytr = train.X, y_all
            Xva, yva = val.X, encode_labels(raw_val, self.classes_, name=val.source)
        elif self.val_fraction > 0:
            tr_idx, va_idx = stratified_split(y_all, self.val_fraction, self.seed)
            Xtr, ytr = [train.X[i] for i in tr_idx], y_all[tr_idx]
            Xva, yva = [train.X[i] for i in va_idx], y_all[va_idx]
        else:
            Xtr, ytr, Xva, yva = train.X, y_all, [], np.zeros(0, dtype=np.int64)
        self.series_norm_ = (
            train.n_features == 1 if self.series_norm == "auto" else bool(self.series_norm)
        )
        if self.series_norm_:
            Xtr = znorm_each(Xtr)
            Xva = znorm_each(Xva, name="X_val") if len(Xva) else Xva
        if self.scale:
            self.scaler = StandardScaler().fit(Xtr)
            Xtr = self.scaler.transform(Xtr)
            Xva = self.scaler.transform(Xva) if len(Xva) else Xva
        options = self._resolved_options([len(a) for a in Xtr])
        self.config = ClassifierConfig(
            input_size=train.n_features, num_outputs=len(self.classes_), **options
        )
        kernel_part = None
        if self.config.kernels:
            # the kernel part is fitted in closed form before the LSTM trains; its layout (the
            # dilations for these lengths) goes into the config, so a saved model rebuilds it
            kernel_part, report = fit_kernel_part(
                Xtr, ytr, len(self.classes_), self.config.kernels, self.seed
            )
            self.config = replace(
                self.config,
                kernel_dilations=kernel_part.dilations,
                kernel_quantiles=kernel_part.quantiles,
            )
        tc = self.train_config
        if not len(Xva):
            tc = replace(tc, monitor="train_loss", patience=0)
        sampler = BucketBatchSampler([len(a) for a in Xtr], tc.batch_size, seed=tc.seed)
        loss_f = torch.nn.CrossEntropyLoss(label_smoothing=self.label_smoothing)

        def batches(epoch: int):
            sampler.set_epoch(epoch)
            for idx in sampler:
                yield collate([Xtr[i] for i in idx], ytr[idx])

        def loss_fn(net, batch):
            # the LSTM learns on its own; the kernel part is fixed and mixed in at prediction
            return loss_f(net(batch.x, batch.lengths, part="lstm"), batch.y)

        def validate(net):
            logits = self._logits(Xva, scaled=True)
            loss = float(loss_f(logits, torch.as_tensor(yva)))
            acc = float((logits.argmax(1).numpy() == yva).mean())
            return {"val_loss": loss, "val_accuracy": acc}

        restarts = []
        while True:
            torch.manual_seed(tc.seed)
            self.net = ClassifierNet(self.config)
            if kernel_part is not None:
                self.net.kernel_part.load_state_dict(kernel_part.state_dict())
            try:
                self.train_result = self._train(
                    "classify",
                    batches,
                    len(sampler),
                    loss_fn,
                    validate if len(Xva) else None,
                    tc,
                    data=(Xtr, ytr, Xva, yva),
                    resume=bool(self._loop["resume"]) and not restarts,
                )
                break
            except TrainingError as e:
                # diverged: start again, slower, by itself; a user never meets "lower --lr"
                if len(restarts) >= RESTARTS:
                    lrs = ", ".join(f"{r['lr']:g}" for r in restarts)
                    raise TrainingError(
                        f"{e}; it had diverged at lr {lrs} before, restarting at a quarter each time"
                    ) from None
                restarts.append({"lr": tc.lr, "error": str(e)})
                tc = replace(tc, lr=tc.lr / 4)
        self.metrics = self.train_result.summary(
            tc.monitor,
            padding_waste=round(sampler.padding_waste(), 4),
            n_train=len(Xtr),
            n_val=len(Xva),
        )
        if kernel_part is not None:
            self.metrics["kernel_part"] = report
            if len(Xva):
                self.metrics["val_parts"] = self._parts_accuracy(Xva, yva, scaled=True)
        if restarts:
            self.metrics["restarts"] = restarts
            self.metrics["lr_used"] = tc.lr
        return self

    def _from_frame(self, X, y, name: str = "X"):
        """A long DataFrame (sequence_id, step, features, label) -> (list of (T_i, F), labels);
        a 3-D array -> a list, in (n, T, F) after ``layout``; anything else as it is."""
        if is_frame(X):
            seqs, labels, ids = sequences_from_frame(X, name=name)
            return seqs, labels if y is None else labels_for(y, ids, name="y")
        if isinstance(X, np.ndarray) and X.ndim == 3 and X.dtype != object:
            return list(to_ntf(X, self.layout, name, self.n_features_in_)), y
        if self.layout == "NCT" and not isinstance(X, SequenceSet):
            X = [np.asarray(a).T for a in X]
        return X, y

    # -- inference ----------------------------------------------------------------------------
    def _logits(
        self, X: list[np.ndarray], *, scaled: bool = False, batch_size: int = 256, part: str = "all"
    ) -> torch.Tensor:
        """(n,) list of (T_i, F) -> (n, N) logits, in input order; batches sorted by length."""
        self._check_fitted()
        if not scaled and self.series_norm_:
            X = znorm_each(X)
        if not scaled and self.scaler is not None:
            X = self.scaler.transform(X)
        n = len(X)
        out = torch.empty(n, self.config.num_outputs)
        if n == 0:
            return out
        sampler = BucketBatchSampler([len(a) for a in X], batch_size, shuffle=False)
        was_training = self.net.training
        device = self._device()
        self.net.eval()
        with torch.no_grad():
            for idx in sampler:
                b = collate([X[i] for i in idx]).to(device)
                out[torch.as_tensor(idx)] = self.net(b.x, b.lengths, part=part).cpu()
        self.net.train(was_training)
        return out

    def _checked(self, X, name="X") -> list[np.ndarray]:
        self._check_fitted()
        X, _ = self._from_frame(X, None, name=name)
        if isinstance(X, SequenceSet):
            if X.n_features != self.config.input_size:
                raise ShapeError(
                    f"{X.source}: expected {self.config.input_size} features per step "
                    f"(the model's F), got {X.n_features}"
                )
            return X.X
        if isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == self.config.input_size:
            raise ShapeError(
                f"{name}: expected a list of (T, F={self.config.input_size}) arrays, got one array "
                f"{X.shape} — a single sequence? pass [x]"
            )
        check_feature_counts(X, name=name, features=self.config.input_size)
        return _as_set(X, None, name=name).X

    def predict_proba(self, X) -> np.ndarray:
        """(n, N) class probabilities, columns in the order of ``classes_``."""
        with self._inferring():
            return torch.softmax(self._logits(self._checked(X)), dim=1).numpy()

    def predict(self, X) -> np.ndarray:
        """One predicted label per sequence, of the training labels' type."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(1)]

    def evaluate(self, X, y=None) -> dict:
        """Accuracy, macro F1, n and the confusion matrix (rows true, columns predicted)."""
        self._check_fitted()
        X, y = self._from_frame(X, y)
        data = _as_set(X, y)
        if data.y is None:
            raise DataError(f"{data.source}: no labels to evaluate against")
        raw = data.y if isinstance(X, SequenceSet) else y
        y_true = encode_labels(raw, self.classes_, name=data.source)
        parts = None
        if self.net.kernel_part is not None:
            with self._inferring():
                parts = self._parts_logits(self._checked(data))
            y_pred = parts["all"].argmax(1).numpy()
        else:
            y_pred = self.predict_proba(data).argmax(1)
        report = classification_report(y_true, y_pred, len(self.classes_))
        report["classes"] = [str(c) for c in self.classes_.tolist()]
        if parts is not None:  # which part won: the mixture and each part alone
            report["parts"] = _accuracies(parts, y_true)
        return report

    def _parts_logits(self, X: list[np.ndarray], *, scaled: bool = False) -> dict:
        """{"all", "lstm", "kernels"}: (n, N) logits, each part run once, the mixture from them."""
        lstm = self._logits(X, scaled=scaled, part="lstm")
        kernels = self._logits(X, scaled=scaled, part="kernels")
        with torch.no_grad():
            return {"all": self.net.combine(lstm, kernels), "lstm": lstm, "kernels": kernels}

    def _parts_accuracy(self, X: list[np.ndarray], y: np.ndarray, *, scaled: bool = False) -> dict:
        """Accuracy of the mixture and of each part alone on ``X``: which part won."""
        return _accuracies(self._parts_logits(X, scaled=scaled), y)

    def score(self, X, y=None) -> float:
        """Accuracy (scikit-learn's ``score`` of a classifier)."""
        return self.evaluate(X, y)["accuracy"]

    def explain(self, example_batch=None, **sizes):
        """Each stage of a real forward pass: name, shape in legend letters, parameters, meaning.

        ``example_batch``: a list of (T_i, F) arrays (scaled like `predict`), or None for a dummy
        batch (``lengths=[20, 7, 13]`` makes a mixed one). See `seqshape.explain.explain`.
        """
        from ..explain import explain

        self._check_fitted()
        return explain(self, example_batch, **sizes)

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path, *, extra_metrics: dict | None = None) -> Path:
        return self._save(
            path,
            {
                "classes": self.classes_.tolist(),
                "scaler": self.scaler.to_dict() if self.scaler is not None else None,
                "series_norm": self.series_norm_,
            },
            extra_metrics,
        )

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None) -> SequenceClassifier:
        files = load_model_dir(path, kind=KIND)
        config = config_from_dict(ClassifierConfig, files.config, files.path / "config.json")
        self = cls(**params_from(cls, config), threads=threads)
        self.config = config
        self.net = build_net(ClassifierNet, config, files)
        self.net.eval()
        pre = files.preprocessing
        classes = pre.get("classes")
        if not fits(classes, list[str | int | float])[0] or len(classes) != config.num_outputs:
            raise _artifact_error(
                files.path, f"classes: expected {config.num_outputs} names, got {classes!r}"
            )
        self.classes_ = labels_array(classes)
        self.n_features_in_ = config.input_size
        series_norm = pre.get("series_norm", False)
        if not isinstance(series_norm, bool):
            raise _artifact_error(
                files.path, f"series_norm: expected true or false, got {series_norm!r}"
            )
        self.series_norm_ = series_norm
        try:
            self.scaler = StandardScaler.from_dict(pre["scaler"]) if pre.get("scaler") else None
        except ConfigError as e:
            raise _artifact_error(files.path, str(e)) from None
        self.metrics = files.metrics.get("train", {})
        return self


def _accuracies(logits: dict, y: np.ndarray) -> dict:
    return {k: round(float((v.argmax(1).numpy() == y).mean()), 4) for k, v in logits.items()}


def _artifact_error(path: Path, msg: str):
    from ..errors import ArtifactError

    return ArtifactError(f"{path / 'preprocessing.json'}: {msg}")
