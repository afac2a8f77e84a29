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

import dataclasses
import functools
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import torch

from .. import runtime
from ..errors import ConfigError
from ..train.loop import TrainConfig

DEVICES = ("cpu", "cuda", "auto")
# what every fit passes through to the training loop (train.loop.fit)
LOOP_OPTIONS = ("log_path", "checkpoint_dir", "checkpoint_every", "resume")
# the estimator parameters that are TrainConfig's fields of the same name
TRAIN_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "patience", "lr_schedule", "seed")


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
    _kind: ClassVar[str]  # what config.json records (seqshape.kinds)

    # -- parameters ---------------------------------------------------------------------------
    def _store_params(self, values: dict[str, Any]) -> None:
        """Keep the constructor's arguments (its ``locals()``) under their own names, as given,
        and check them."""
        for name in self._param_names():
            setattr(self, name, values[name])
        self._check_params()

    def _options(self, config_cls) -> dict[str, Any]:
        """The parameters that are fields of the network's config dataclass ``config_cls``."""
        fields = {f.name for f in dataclasses.fields(config_cls)}
        return {n: getattr(self, n) for n in self._param_names() if n in fields}

    def _training(self, **extra) -> TrainConfig:
        """A TrainConfig from the parameters of the same names, and ``extra``."""
        names = set(self._param_names())
        own = {n: getattr(self, n) for n in TRAIN_FIELDS if n in names and n not in extra}
        return TrainConfig(**own, **extra)

    @property
    def train_config(self) -> TrainConfig:
        """The training options the parameters make (checked: a bad one is a ConfigError)."""
        return self._training()

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
        for name, closed in (("val_fraction", False), ("label_smoothing", False)):
            if name in self._param_names():
                check_fraction(name, getattr(self, name), closed=closed)
        self.train_config  # noqa: B018 - builds the TrainConfig, which checks its fields

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

    # -- the scaffolding every estimator shares ---------------------------------------------
    def _train(
        self,
        description: str,
        batches,
        n_batches: int,
        loss_fn,
        validate,
        config: TrainConfig,
        *,
        data: tuple,
        resume: bool | None = None,
        **extra,
    ):
        """`train.loop.fit` of ``self.net`` with this fit's loop options (log, checkpoints,
        resume), device, progress and callback; ``data``: what the run trains and validates on
        (its digest guards a resume); ``resume``: overrides the fit's."""
        from ..train.checkpoint import data_digest
        from ..train.loop import fit

        loop = dict(getattr(self, "_loop", None) or {})
        log_path = loop.get("log_path")
        return fit(
            self.net,
            train_batches=batches,
            n_batches=n_batches,
            loss_fn=loss_fn,
            validate=validate,
            config=config,
            progress=self.progress,
            log_path=Path(log_path) if log_path else None,
            description=description,
            checkpoint_dir=loop.get("checkpoint_dir"),
            checkpoint_every=loop.get("checkpoint_every"),
            resume=bool(loop.get("resume")) if resume is None else resume,
            data_digest=data_digest(*data),
            device=self.device_,
            callback=self.callback,
            **extra,
        )

    def _save(
        self, path, preprocessing: dict, extra_metrics: dict | None = None, **metrics
    ) -> Path:
        """Write the model directory: config, weights, ``preprocessing``, and metrics.json with
        the version, the training summary, the training options and ``metrics``."""
        from .. import __version__
        from ..artifacts import save_model_dir

        self._check_fitted()
        return save_model_dir(
            path,
            kind=self._kind,
            config=self.config.to_dict(),
            state_dict=self.net.state_dict(),
            preprocessing=preprocessing,
            metrics={
                "seqshape_version": __version__,
                "train": self.metrics,
                "train_config": self.train_config.to_dict(),
                **metrics,
                **(extra_metrics or {}),
            },
        )


def fitting(fit):
    """Decorate an estimator's ``fit``: it runs inside `Estimator._fitting` (its threads, private
    random streams, the caller's restored after), with the resolved device in ``self.device_``."""

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        # the training loop's own options, as every fit takes them (see `Estimator._train`)
        self._loop = {k: kwargs.get(k) for k in LOOP_OPTIONS}
        with self._fitting() as device:
            self.device_ = device
            return fit(self, *args, **kwargs)

    return wrapper


def check_fraction(name: str, value, *, closed: bool = False) -> None:
    """``value`` in [0, 1) (``closed``: [0, 1]), else a ConfigError naming ``name``."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0):
        span = "[0, 1]" if closed else "[0, 1)"
        raise ConfigError(f"{name}: expected a value in {span}, got {value!r}")


def check_device_name(device) -> None:
    """The device parameter's spelling (whether CUDA is there is checked at fit)."""
    name = str(device)
    if name not in DEVICES and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise ConfigError(f"device: expected one of {', '.join(DEVICES)} (or cuda:N), got {name!r}")


def params_from(cls: type[Estimator], config) -> dict[str, Any]:
    """The estimator parameters a saved network config holds (those of the same name): what
    ``load`` passes to the constructor, without listing them by hand."""
    names = set(cls._param_names())
    fields = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {k: v for k, v in fields.items() if k in names}
