"""`SequenceGenerator`: one-to-many, a static vector (F) -> a sequence of tokens or values.

gen = SequenceGenerator().fit(V, Y)   # V: (n, F) array; Y: token lists or (U_i, O) arrays
gen.predict(V)               # until EOS / the stop head (values: the training length when fixed)
gen.predict(V, length=24)    # values: exactly 24 steps
gen.evaluate(V, Y); gen.save("model/"); SequenceGenerator.load("model/")
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..artifacts import build_net, config_from_dict, json_field, load_model_dir
from ..batching import Batch, BucketBatchSampler
from ..data.scaling import StandardScaler
from ..errors import ArtifactError, ConfigError, DataError, ShapeError
from ..models.generator import GeneratorConfig, GeneratorNet
from ..models.seq2seq import sequence_loss
from ..train.loop import TrainResult
from .base import Estimator, fitting, params_from
from .sides import Side, split_indices, token_metrics, value_metrics

KIND = "generator"


class SequenceGenerator(Estimator):
    """An LSTM decoder started from a static vector; see the module docstring."""

    _kind = KIND

    def __init__(
        self,
        *,
        hidden_size: int = 64,
        embedding_size: int = 32,
        num_layers: int = 1,
        cell: str = "lstm",
        dropout: float = 0.1,
        condition_every_step: bool = True,
        beam_size: int = 1,
        epochs: int = 100,
        batch_size: int = 32,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        patience: int = 15,
        val_fraction: float = 0.1,
        seed: int = 0,
        scale: bool = True,
        threads: int | None = None,
        progress: bool = True,
        device: str = "cpu",
        callback=None,
    ) -> None:
        self._store_params(locals())
        self.config: GeneratorConfig | None = None
        self.net: GeneratorNet | None = None
        self.scaler: StandardScaler | None = None
        self.target: Side | None = None
        self.columns: dict | None = None  # the CLI's column names (saved with the model)
        self.metrics: dict = {}
        self.train_result: TrainResult | None = None

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.beam_size, int) or self.beam_size < 1:
            raise ConfigError(f"beam_size: expected an integer >= 1, got {self.beam_size!r}")

    @property
    def model_options(self) -> dict:
        """The network's options: the parameters that are GeneratorConfig's fields."""
        return self._options(GeneratorConfig)

    def _static(self, V, name: str = "V") -> np.ndarray:
        try:
            V = np.asarray(V, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise DataError(f"{name}: expected an (n, F) array of numbers ({e})") from None
        features = self.config.input_size if self.config is not None else None
        if V.ndim != 2 or (features is not None and V.shape[1] != features):
            want = f"(n, F={features})" if features else "(n, F)"
            hint = " — one vector? pass V[None]" if V.ndim == 1 else ""
            raise ShapeError(f"{name}: expected {want}, got {V.shape}{hint}")
        if not np.isfinite(V).all():
            i, k = (int(v) for v in np.argwhere(~np.isfinite(V))[0])
            raise DataError(f"{name}[{i}]: expected finite numbers, got {V[i, k]} in feature {k}")
        return V

    def _scaled(self, V: np.ndarray) -> np.ndarray:
        return self.scaler.transform([V])[0] if self.scaler is not None else V

    def _batch(self, V: np.ndarray, Y: list[np.ndarray] | None = None) -> Batch:
        x = torch.as_tensor(V, dtype=torch.float32)
        lengths = torch.ones(len(V), dtype=torch.long)
        batch = Batch(x=x, lengths=lengths, mask=torch.ones(len(V), 1, dtype=torch.bool))
        if Y is not None:
            batch.y, batch.extra["target_lengths"] = self.target.pad(Y)
        return batch

    # -- training -----------------------------------------------------------------------------
    @fitting
    def fit(
        self,
        V,
        Y,
        *,
        V_val=None,
        Y_val=None,
        log_path: str | Path | None = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
    ):
        """Train on static vectors ``V`` (n, F) and their target sequences ``Y``.

        ``checkpoint_dir``/``checkpoint_every``/``resume``: as in train.loop.fit (a resumed run
        needs the same data and options, and ends with the same weights).
        """
        device = self.device_
        self.config = None
        V = self._static(V)
        Y = list(Y)
        if len(Y) != len(V):
            raise ShapeError(
                f"Y: expected one target sequence per row of V ({len(V)}), got {len(Y)}"
            )
        if V_val is not None:
            Vtr, Ytr, Vva, Yva = V, Y, self._static(V_val, "V_val"), list(Y_val)
        elif self.val_fraction > 0:
            tr, va = split_indices(list(V), self.val_fraction, self.seed)
            Vtr, Ytr, Vva, Yva = V[tr], [Y[i] for i in tr], V[va], [Y[i] for i in va]
        else:
            Vtr, Ytr, Vva, Yva = V, Y, V[:0], []
        self.target = Side.fit(Ytr, name="Y", eos=True, scale=self.scale)
        Ytr = self.target.encode(self.target.check(Ytr, "Y"), eos=True)
        Yva = self.target.encode(self.target.check(Yva, "Y_val"), eos=True) if len(Yva) else []
        self.scaler = StandardScaler().fit([Vtr], name="V") if self.scale else None
        Vtr, Vva = self._scaled(Vtr), self._scaled(Vva) if len(Vva) else Vva
        torch.manual_seed(self.seed)
        self.n_features_in_ = int(V.shape[1])
        tokens = self.target.kind == "tokens"
        self.config = GeneratorConfig(
            input_size=int(V.shape[1]),
            target_vocab_size=self.target.size if tokens else 0,
            target_features=0 if tokens else self.target.size,
            **self.model_options,
        )
        self.net = GeneratorNet(self.config)
        tc = self.train_config
        if not len(Yva):
            tc = replace(tc, monitor="train_loss", patience=0)
        sampler = BucketBatchSampler([len(y) for y in Ytr], tc.batch_size, seed=tc.seed)

        def batches(epoch: int):
            sampler.set_epoch(epoch)
            for idx in sampler:
                yield self._batch(Vtr[idx], [Ytr[i] for i in idx])

        def loss_fn(net, batch):
            out = net(batch.x, batch.y)
            return sequence_loss(out.outputs, out.stop, batch.y, batch.extra["target_lengths"])

        def validate(net):
            b = self._batch(Vva, Yva).to(device)
            out = net(b.x, b.y)
            return {
                "val_loss": float(
                    sequence_loss(out.outputs, out.stop, b.y, b.extra["target_lengths"])
                )
            }

        self.train_result = self._train(
            "generate",
            batches,
            len(sampler),
            loss_fn,
            validate if len(Yva) else None,
            tc,
            data=(Vtr, Ytr, Vva, Yva),
        )
        self.metrics = self.train_result.summary(tc.monitor, n_train=len(Ytr), n_val=len(Yva))
        return self

    # -- inference ----------------------------------------------------------------------------
    def predict(
        self,
        V,
        *,
        length: int | Sequence[int] | None = None,
        beam_size: int | None = None,
        max_len: int | None = None,
    ) -> list:
        """One sequence per row of ``V``: token lists (until EOS) or (U_i, O) arrays.

        Values: ``length`` steps (one int, or one per row) when given; else the training length
        when every training target had the same length; else until the stop head ends the row.
        """
        self._check_fitted()
        with self._inferring():
            return self._predict(V, length=length, beam_size=beam_size, max_len=max_len)

    def _predict(self, V, *, length, beam_size, max_len) -> list:
        V = self._scaled(self._static(V))
        beam = self.beam_size if beam_size is None else int(beam_size)
        limit = max_len or int(1.5 * self.target.max_length) + 5
        self.net.eval()
        x = torch.as_tensor(V).to(self._device())
        if self.target.kind == "tokens":
            if length is not None:
                raise ConfigError("length: applies to value targets; token targets end at EOS")
            tokens, lengths, _ = self.net.generate_tokens(x, max_len=limit, beam_size=beam)
            tokens = tokens.cpu()
            return [self.target.decode(tokens[i], int(lengths[i])) for i in range(len(V))]
        if beam != 1:
            raise ConfigError("beam_size: beam search applies to token targets only, use 1")
        if length is None:
            if self.target.fixed_length is not None:
                per_row, steps, stop = None, self.target.fixed_length, False
            else:
                per_row, steps, stop = None, limit, True
        elif isinstance(length, int):
            per_row, steps, stop = None, length, False
        else:
            per_row = [int(v) for v in length]
            if len(per_row) != len(V):
                raise ShapeError(
                    f"length: expected one length per row ({len(V)}), got {len(per_row)}"
                )
            steps, stop = max(per_row), False
        if steps < 1:
            raise ConfigError(f"length: expected a positive integer, got {steps}")
        values, lengths = self.net.generate_values(x, steps=steps, stop_at_end=stop)
        values = values.cpu()
        if per_row is not None:
            lengths = torch.as_tensor(per_row)
        return [self.target.decode(values[i], int(lengths[i])) for i in range(len(V))]

    def evaluate(self, V, Y, *, beam_size: int | None = None) -> dict:
        """Tokens: exact_match, wer, token_error_rate, bleu. Values: each row decoded to its true
        length; mse, rmse, mae in the targets' units."""
        self._check_fitted()
        Y = self.target.check(list(Y), "Y")
        t0 = time.perf_counter()
        if self.target.kind == "tokens":
            result = token_metrics([[y] for y in Y], self.predict(V, beam_size=beam_size))
        else:
            result = value_metrics(Y, self.predict(V, length=[len(y) for y in Y]))
        result["decode_seconds"] = round(time.perf_counter() - t0, 3)
        return result

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path, *, extra_metrics: dict | None = None) -> Path:
        return self._save(
            path,
            {
                "scaler": self.scaler.to_dict() if self.scaler is not None else None,
                "target": self.target.to_dict(),
                "beam_size": self.beam_size,
                "columns": self.columns,
            },
            extra_metrics,
        )

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None) -> SequenceGenerator:
        files = load_model_dir(path, kind=KIND)
        config = config_from_dict(GeneratorConfig, files.config, files.path / "config.json")
        pre = files.preprocessing
        where = files.path / "preprocessing.json"
        self = cls(
            **params_from(cls, config),
            beam_size=json_field(pre, "beam_size", int, where, 1),
            threads=threads,
        )
        self.config = config
        self.n_features_in_ = config.input_size
        self.target = Side.from_dict(pre.get("target"), f"{where}: target")
        if self.target.size != config.output_size:
            raise ArtifactError(
                f"{where}: target size {self.target.size} does not match the config "
                f"({config.output_size})"
            )
        try:
            self.scaler = StandardScaler.from_dict(pre["scaler"]) if pre.get("scaler") else None
        except ConfigError as e:
            raise ArtifactError(f"{where}: {e}") from None
        self.net = build_net(GeneratorNet, config, files)
        self.net.eval()
        self.columns = pre.get("columns")
        self.metrics = files.metrics.get("train", {})
        return self
