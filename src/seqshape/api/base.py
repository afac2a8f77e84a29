"""`Estimator`: what the five estimators share, in scikit-learn's protocol without depending on it.

- Every constructor argument is a parameter, stored under its own name and unchanged
  (``get_params``/``set_params``, so that ``sklearn.base.clone``, ``GridSearchCV``,
  ``cross_val_score`` and ``Pipeline`` work); what fitting learns lives elsewhere (``net``,
  ``config``, attributes ending in ``_``). A ``repr`` shows the parameters that differ from the
  defaults.
- ``fit`` leaves process-wide state as it found it: it trains with ``threads`` compute threads and
  its own seeded random streams, then restores the caller's thread count and torch's global RNG
  (`Estimator._fitting`).
- ``device``: "cpu", "cuda" or "auto" (CUDA when there is one). Asking for CUDA on a machine
  without it is a one-line ConfigError, before any work.
- ``callback``: called after every epoch with that epoch's metrics (a dict: epoch, train_loss,
  the validation metrics, lr, seconds); returning "stop" ends training there (a logger, an
  Optuna pruner).
- A method that needs a fitted model raises `NotFittedError`, which scikit-learn's
  ``check_is_fitted`` understands too (``__sklearn_is_fitted__``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch

from .. import runtime
from ..errors import ConfigError, DataError, ShapeError

DEVICES = ("cpu", "cuda", "auto")


class NotFittedError(ConfigError, AttributeError):
    """A method that needs a fitted model was called before ``fit`` or ``load``."""


def resolve_device(device: str | torch.device) -> torch.device:
    """ "cpu" | "cuda" | "cuda:N" | "auto" -> a torch.device; CUDA asked for where there is none
    is a ConfigError."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device: {name!r} asked for, but this machine has no usable CUDA device "
                f"(torch {torch.__version__}, built {'with' if torch.version.cuda else 'without'} "
                "CUDA); use device='cpu' or 'auto'"
            )
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ConfigError(f"device: expected cpu, cuda, cuda:N or auto, got {name!r}") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device: {name!r}, but this machine has {torch.cuda.device_count()} CUDA devices"
            )
        return dev
    raise ConfigError(f"device: expected one of {', '.join(DEVICES)} (or cuda:N), got {name!r}")


class Estimator:
    """The base of SequenceClassifier, SequenceTagger, Forecaster, Seq2Seq and SequenceGenerator."""

    _estimator_type: ClassVar[str | None] = None

    # -- parameters ---------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        sig = inspect.signature(cls.__init__)
        return {name: sig.parameters[name].default for name in cls._param_names()}

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments, as given (scikit-learn's protocol)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> Estimator:
        """Change parameters (checked like the constructor's); takes effect at the next ``fit``."""
        names = self._param_names()
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise ConfigError(
                f"{type(self).__name__}.set_params: unknown parameter(s) {', '.join(unknown)}; "
                f"valid: {', '.join(names)}"
            )
        before = {k: getattr(self, k) for k in params}
        for k, v in params.items():
            setattr(self, k, v)
        try:
            self._check_params()
        except ConfigError:
            for k, v in before.items():
                setattr(self, k, v)
            raise
        return self

    def _check_params(self) -> None:
        """Raise ConfigError for a parameter out of range (the constructor and set_params call it)."""
        check_device_name(self.device)
        if self.callback is not None and not callable(self.callback):
            raise ConfigError(f"callback: expected a callable or None, got {self.callback!r}")

    def __repr__(self) -> str:
        defaults = self._defaults()
        shown = []
        for name in self._param_names():
            value = getattr(self, name)
            default = defaults[name]
            try:
                same = bool(value == default) and type(value) is type(default)
            except (ValueError, TypeError):  # arrays and other things without a plain ==
                same = False
            if not same:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- scikit-learn's hooks (imported only when scikit-learn asks) ---------------------------
    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, "net", None) is not None

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, RegressorTags, Tags, TargetTags

        kind = self._estimator_type
        return Tags(
            estimator_type=kind,
            target_tags=TargetTags(required=kind is not None),
            classifier_tags=ClassifierTags() if kind == "classifier" else None,
            regressor_tags=RegressorTags() if kind == "regressor" else None,
            non_deterministic=False,
            # lists of (T_i, F) sequences, not one 2-D table
            input_tags=InputTags(two_d_array=False, three_d_array=True, allow_nan=False),
        )

    # -- fitted or not -------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if getattr(self, "net", None) is None:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call fit() or load() first"
            )

    # -- process-wide state --------------------------------------------------------------------
    @contextmanager
    def _fitting(self) -> Iterator[torch.device]:
        """Run a fit with ``threads`` threads and private random streams on ``device``; restore
        the caller's thread count and torch's global RNG (CPU, and CUDA's when used) afterwards."""
        device = resolve_device(self.device)
        devices = [device.index or 0] if device.type == "cuda" else []
        with runtime.threads_scope(self.threads), torch.random.fork_rng(devices=devices):
            yield device

    @contextmanager
    def _inferring(self) -> Iterator[None]:
        """Inference with ``threads`` threads, the caller's count restored afterwards."""
        with runtime.threads_scope(self.threads):
            yield

    def _device(self) -> torch.device:
        """Where the fitted network's weights are."""
        p = next(self.net.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def _epoch_callback(self) -> Callable[[dict], Any] | None:
        return self.callback


def check_device_name(device) -> None:
    """The device parameter's spelling (whether CUDA is there is checked at fit)."""
    name = str(device)
    if name not in DEVICES and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise ConfigError(f"device: expected one of {', '.join(DEVICES)} (or cuda:N), got {name!r}")


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


def params_from(cls: type[Estimator], config) -> dict[str, Any]:
    """The estimator parameters a saved network config holds (those of the same name): what
    ``load`` passes to the constructor, without listing them by hand."""
    names = set(cls._param_names())
    fields = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {k: v for k, v in fields.items() if k in names}


def labels_array(values: list) -> np.ndarray:
    """Saved class labels (JSON values) as one array of their own type."""
    return normalize_labels(values)
