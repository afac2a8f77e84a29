"""`Seq2Seq`: sequence-to-sequence learning in the scikit-learn habit.

A source and its target may differ in length and in kind. Each side is either tokens (a list of
strings per sequence: graphemes, words, phonemes) or values (a ``(S_i, F)`` / ``(U_i, O)`` array):

    s2s = Seq2Seq(attention="additive").fit(sources, targets)   # or .fit(pairs) with a PairSet
    s2s.predict(sources, beam_size=5)        # list of token lists | list of (U_i, O) arrays
    s2s.predict_with_attention(sources)      # and the (U_i, S_i) attention weights of each
    s2s.evaluate(sources, targets)           # exact_match, token_error_rate, wer, bleu | mse, mae
    s2s.save("model/"); Seq2Seq.load("model/")

Vocabularies (PAD/BOS/EOS/UNK + the training tokens) and value scalers are fitted on the training
split only and saved in the model directory. Early stopping watches the teacher-forced loss on a
validation split made by *unique source* (no source in both), carved out of the training data.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..artifacts import build_net, config_from_dict, json_field, load_model_dir, save_model_dir
from ..batching import Batch, BucketBatchSampler, lengths_to_mask, pad_sequences
from ..data.pairs import PairSet
from ..data.scaling import StandardScaler
from ..data.vocab import Vocab, pad_batch
from ..errors import ArtifactError, ConfigError, DataError, ShapeError
from ..models.seq2seq import Seq2SeqConfig, Seq2SeqNet, sequence_loss
from ..shapes import check_feature_counts
from ..train import text_metrics
from ..train.checkpoint import data_digest
from ..train.loop import TrainConfig, TrainResult, fit
from .base import Estimator, params_from

KIND = "seq2seq"


# -- one side of the data: tokens or values -----------------------------------------------------
def sequence_kind(seqs: Sequence, name: str) -> str:
    """``"tokens"`` for lists of strings, ``"values"`` for (T, F) arrays; errors name the index."""
    if len(seqs) == 0:
        raise DataError(f"{name}: expected at least one sequence, got none")
    first = seqs[0]
    if isinstance(first, str):
        raise DataError(
            f"{name}[0]: expected a list of tokens or a (T, F) array, got the string "
            f"{first[:20]!r} — split it into tokens first (e.g. list(word) or text.split())"
        )
    if isinstance(first, (list, tuple)) and (len(first) == 0 or isinstance(first[0], str)):
        for i, s in enumerate(seqs):
            if isinstance(s, str) or not isinstance(s, (list, tuple)):
                raise DataError(f"{name}[{i}]: expected a list of tokens, got {type(s).__name__}")
            if len(s) == 0:
                raise DataError(f"{name}[{i}]: expected at least one token, got an empty list")
            for tok in s:
                if not isinstance(tok, str):
                    raise DataError(f"{name}[{i}]: expected string tokens, got {tok!r}")
        return "tokens"
    return "values"


def _as_arrays(seqs: Sequence, name: str, features: int | None = None) -> list[np.ndarray]:
    arrays = []
    for i, a in enumerate(seqs):
        try:
            a = np.asarray(a, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise DataError(f"{name}[{i}]: expected an array of numbers ({e})") from None
        arrays.append(a)
    check_feature_counts(arrays, name=name, features=features)
    for i, a in enumerate(arrays):
        if not np.isfinite(a).all():
            j, k = (int(v) for v in np.argwhere(~np.isfinite(a))[0])
            raise DataError(f"{name}[{i}] row {j}: expected finite numbers, got {a[j, k]}")
    return arrays


class Side:
    """How one side (source or target) turns into tensors and back.

    Tokens: a `Vocab` (ids; targets end with EOS). Values: an optional `StandardScaler`.
    """

    def __init__(
        self,
        kind: str,
        *,
        vocab: Vocab | None = None,
        scaler: StandardScaler | None = None,
        features: int = 0,
        max_length: int = 1,
        fixed_length: int | None = None,
    ) -> None:
        self.kind = kind
        self.vocab = vocab
        self.scaler = scaler
        self.features = features
        self.max_length = max_length  # longest training sequence (targets: EOS included)
        self.fixed_length = fixed_length  # every training sequence had this length (values)

    @classmethod
    def fit(cls, seqs: Sequence, *, name: str, eos: bool, min_freq: int = 1, scale: bool = True):
        kind = sequence_kind(seqs, name)
        if kind == "tokens":
            vocab = Vocab.build(seqs, min_freq=min_freq)
            return cls(kind, vocab=vocab, max_length=max(len(s) for s in seqs) + int(eos))
        arrays = _as_arrays(seqs, name)
        lengths = {len(a) for a in arrays}
        return cls(
            kind,
            scaler=StandardScaler().fit(arrays, name=name) if scale else None,
            features=int(arrays[0].shape[1]),
            max_length=max(lengths),
            fixed_length=lengths.pop() if len(lengths) == 1 else None,
        )

    @property
    def size(self) -> int:
        """V (vocabulary size, specials included) or F / O."""
        return len(self.vocab) if self.vocab is not None else self.features

    def check(self, seqs: Sequence, name: str) -> list:
        kind = sequence_kind(seqs, name)
        if kind != self.kind:
            raise DataError(f"{name}: expected {self.kind} (as in training), got {kind}")
        if kind == "values":
            return _as_arrays(seqs, name, self.features)
        return list(seqs)

    def encode(self, seqs: Sequence, *, eos: bool) -> list[np.ndarray]:
        """Token lists -> id arrays (+ EOS); arrays -> scaled float32 arrays."""
        if self.kind == "tokens":
            return [np.asarray(self.vocab.encode(s, add_eos=eos), dtype=np.int64) for s in seqs]
        arrays = [np.asarray(a, dtype=np.float32) for a in seqs]
        return self.scaler.transform(arrays) if self.scaler is not None else arrays

    def pad(self, encoded: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ids (B, T) long padded with PAD, or values (B, T, F) zero-padded; lengths (B,)."""
        if self.kind == "tokens":
            return pad_batch([e.tolist() for e in encoded])
        lengths = torch.as_tensor([len(e) for e in encoded], dtype=torch.long)
        return pad_sequences(encoded), lengths

    def decode(self, row: torch.Tensor, length: int) -> Any:
        """One decoded row -> tokens (EOS and after dropped) or an unscaled (U, O) array."""
        if self.kind == "tokens":
            return self.vocab.decode(row[:length])
        values = row[:length].detach().cpu().numpy().astype(np.float32)
        if self.scaler is not None:
            values = self.scaler.inverse_transform([values])[0]
        return values

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "vocab": self.vocab.to_dict() if self.vocab is not None else None,
            "scaler": self.scaler.to_dict() if self.scaler is not None else None,
            "features": self.features,
            "max_length": self.max_length,
            "fixed_length": self.fixed_length,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Side:
        if not isinstance(d, dict) or d.get("kind") not in ("tokens", "values"):
            raise ArtifactError(
                f"{where}: expected {{'kind': 'tokens' | 'values', ...}}, got {d!r}"
            )
        try:
            vocab = Vocab.from_dict(d["vocab"]) if d.get("vocab") is not None else None
            scaler = StandardScaler.from_dict(d["scaler"]) if d.get("scaler") is not None else None
        except (ConfigError, ArtifactError) as e:
            raise ArtifactError(f"{where}: {e}") from None
        if d["kind"] == "tokens" and vocab is None:
            raise ArtifactError(f"{where}: a token side needs its vocab")
        max_length = d.get("max_length")
        if not isinstance(max_length, int) or max_length < 1:
            raise ArtifactError(
                f"{where}.max_length: expected a positive integer, got {max_length!r}"
            )
        return cls(
            d["kind"],
            vocab=vocab,
            scaler=scaler,
            features=int(d.get("features") or 0),
            max_length=max_length,
            fixed_length=d.get("fixed_length"),
        )


def split_indices(sources: Sequence, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices with ``fraction`` of the *unique* sources in val; no source in both.

    The order of unique sources comes from a hash of (seed, source), so it is reproducible.
    """
    groups: dict[bytes, list[int]] = {}
    for i, s in enumerate(sources):
        key = "\x1f".join(s).encode() if isinstance(s, (list, tuple)) else np.asarray(s).tobytes()
        groups.setdefault(key, []).append(i)
    keys = sorted(
        groups, key=lambda k: hashlib.blake2b(f"{seed}\x1e".encode() + k, digest_size=16).digest()
    )
    n_val = int(round(fraction * len(keys)))
    if fraction > 0 and len(keys) >= 2:
        n_val = min(max(n_val, 1), len(keys) - 1)
    val = sorted(i for k in keys[:n_val] for i in groups[k])
    train = sorted(i for k in keys[n_val:] for i in groups[k])
    return np.array(train, dtype=np.int64), np.array(val, dtype=np.int64)


def group_by_source(sources: Sequence, targets: Sequence) -> tuple[list, list[list]]:
    """Unique sources (first-seen order) and, for each, all its targets (alternative references)."""
    order: list = []
    refs: dict[Any, list] = {}
    for s, t in zip(sources, targets, strict=True):
        key = tuple(s) if isinstance(s, (list, tuple)) else np.asarray(s).tobytes()
        if key not in refs:
            refs[key] = []
            order.append((key, s))
        refs[key].append(t)
    return [s for _, s in order], [refs[k] for k, _ in order]


def token_metrics(refs: Sequence[list], hyps: Sequence[list[str]], *, joiner: str = " ") -> dict:
    """exact_match, wer (1 - exact match), token_error_rate (edit distance / reference length) and
    sacrebleu's corpus BLEU; each ref is a list of alternative token lists."""
    return {
        "n": len(hyps),
        "exact_match": text_metrics.exact_match(refs, hyps),
        "wer": text_metrics.wer_sentence_level(refs, hyps),
        "token_error_rate": text_metrics.token_error_rate(refs, hyps),
        "bleu": text_metrics.bleu(refs, hyps, joiner=joiner),
    }


def value_metrics(trues: Sequence[np.ndarray], preds: Sequence[np.ndarray]) -> dict:
    """MSE, RMSE, MAE over every step and feature (original units), and per output feature."""
    # sum_i (U_i, O) -> (N_steps, O)
    t = np.concatenate([np.asarray(a, dtype=np.float64) for a in trues])
    p = np.concatenate([np.asarray(a, dtype=np.float64) for a in preds])
    err = p - t
    return {
        "n": len(trues),
        "n_steps": int(t.shape[0]),
        "mse": float(np.mean(err**2)),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "mae_per_output": [float(v) for v in np.mean(np.abs(err), axis=0)],
    }


def _pairs(sources, targets) -> tuple[list, list]:
    if isinstance(sources, PairSet):
        if targets is not None:
            raise ConfigError("fit(pairs): a PairSet carries its targets; do not pass targets")
        return sources.sources, sources.targets
    if targets is None:
        raise ConfigError("fit: expected targets (or a PairSet as the only argument)")
    sources, targets = list(sources), list(targets)
    if len(sources) != len(targets):
        raise DataError(
            f"targets: expected one target per source ({len(sources)}), got {len(targets)}"
        )
    return sources, targets


class Seq2Seq(Estimator):
    """Encoder-decoder LSTM with attention; see the module docstring.

    The defaults are the README's best CMUdict grapheme->phoneme recipe (docs/seq2seq.md: Luong
    "general" attention, H=256, dropout 0.3, label smoothing 0.1, cosine lr over 18 epochs, no
    early stop: 26.8% WER / 6.34% PER with beam 5 on 113k training words). "general" attention
    trains 1.8x faster than "additive" on one CPU thread.
    """

    def __init__(
        self,
        *,
        attention: str = "general",
        hidden_size: int = 256,
        embedding_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = True,
        decoder_hidden_size: int = 0,
        cell: str = "lstm",
        dropout: float = 0.3,
        teacher_forcing: float = 1.0,
        label_smoothing: float = 0.1,
        beam_size: int = 1,
        length_penalty: float = 1.0,
        max_len: int | None = None,
        min_freq: int = 1,
        epochs: int = 18,
        batch_size: int = 128,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        patience: int = 0,
        lr_schedule: str = "cosine",
        val_fraction: float = 0.05,
        seed: int = 0,
        scale: bool = True,
        threads: int | None = None,
        progress: bool = True,
        device: str = "cpu",
        callback=None,
    ) -> None:
        self.attention = attention
        self.hidden_size = hidden_size
        self.embedding_size = embedding_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.decoder_hidden_size = decoder_hidden_size
        self.cell = cell
        self.dropout = dropout
        self.teacher_forcing = teacher_forcing
        self.label_smoothing = label_smoothing
        self.beam_size = beam_size
        self.length_penalty = length_penalty
        self.max_len = max_len
        self.min_freq = min_freq
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.lr_schedule = lr_schedule
        self.val_fraction = val_fraction
        self.seed = seed
        self.scale = scale
        self.threads = threads
        self.progress = progress
        self.device = device
        self.callback = callback
        self._check_params()
        self.config: Seq2SeqConfig | None = None
        self.net: Seq2SeqNet | None = None
        self.source: Side | None = None
        self.target: Side | None = None
        self.text_options: dict = {}  # how the CLI tokenised the data (saved with the model)
        self.metrics: dict = {}
        self.train_result: TrainResult | None = None

    def _check_params(self) -> None:
        super()._check_params()
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(
                f"val_fraction: expected a value in [0, 1), got {self.val_fraction!r}"
            )
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise ConfigError(
                f"teacher_forcing: expected a ratio in [0, 1], got {self.teacher_forcing!r}"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(
                f"label_smoothing: expected a value in [0, 1), got {self.label_smoothing!r}"
            )
        _check_decoding(self.beam_size, self.max_len)
        self.train_config  # noqa: B018 - checks the training options

    @property
    def model_options(self) -> dict:
        return {
            k: getattr(self, k)
            for k in (
                "attention",
                "hidden_size",
                "embedding_size",
                "num_layers",
                "bidirectional",
                "decoder_hidden_size",
                "cell",
                "dropout",
            )
        }

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            patience=self.patience,
            lr_patience=max(1, self.patience // 2) if self.patience else 3,
            lr_schedule=self.lr_schedule,
            seed=self.seed,
        )

    # -- training -----------------------------------------------------------------------------
    def fit(
        self,
        sources,
        targets=None,
        *,
        val_sources=None,
        val_targets=None,
        log_path: str | Path | None = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
    ) -> Seq2Seq:
        """Train on sources -> targets (lists of token lists or of arrays, or one PairSet).

        Without ``val_sources`` a ``val_fraction`` of the unique training sources is held out for
        early stopping. ``checkpoint_dir``/``checkpoint_every``/``resume``: as in train.loop.fit
        (a resumed run needs the same data and options, and ends with the same weights).
        """
        with self._fitting() as device:
            return self._fit(
                sources,
                targets,
                val_sources,
                val_targets,
                device,
                log_path=log_path,
                checkpoint_dir=checkpoint_dir,
                checkpoint_every=checkpoint_every,
                resume=resume,
            )

    def _fit(
        self,
        sources,
        targets,
        val_sources,
        val_targets,
        device,
        *,
        log_path,
        checkpoint_dir,
        checkpoint_every,
        resume,
    ) -> Seq2Seq:
        src, tgt = _pairs(sources, targets)
        if val_sources is not None:
            vsrc, vtgt = _pairs(val_sources, val_targets)
            tr_src, tr_tgt = src, tgt
        elif self.val_fraction > 0:
            tr_idx, va_idx = split_indices(src, self.val_fraction, self.seed)
            tr_src, tr_tgt = [src[i] for i in tr_idx], [tgt[i] for i in tr_idx]
            vsrc, vtgt = [src[i] for i in va_idx], [tgt[i] for i in va_idx]
        else:
            tr_src, tr_tgt, vsrc, vtgt = src, tgt, [], []
        self.source = Side.fit(
            tr_src, name="sources", eos=False, min_freq=self.min_freq, scale=self.scale
        )
        self.target = Side.fit(
            tr_tgt, name="targets", eos=True, min_freq=self.min_freq, scale=self.scale
        )
        tr_src = self.source.encode(self.source.check(tr_src, "sources"), eos=False)
        tr_tgt = self.target.encode(self.target.check(tr_tgt, "targets"), eos=True)
        if len(vsrc):
            vsrc = self.source.encode(self.source.check(vsrc, "val_sources"), eos=False)
            vtgt = self.target.encode(self.target.check(vtgt, "val_targets"), eos=True)
        torch.manual_seed(self.seed)
        tokens_in, tokens_out = self.source.kind == "tokens", self.target.kind == "tokens"
        self.config = Seq2SeqConfig(
            source_vocab_size=self.source.size if tokens_in else 0,
            source_features=0 if tokens_in else self.source.size,
            target_vocab_size=self.target.size if tokens_out else 0,
            target_features=0 if tokens_out else self.target.size,
            **self.model_options,
        )
        self.net = Seq2SeqNet(self.config)
        tc = self.train_config
        if not len(vsrc):
            tc = replace(tc, monitor="train_loss", patience=0)
        sampler = BucketBatchSampler([len(a) for a in tr_src], tc.batch_size, seed=tc.seed)
        sampling = torch.Generator(device=device).manual_seed(tc.seed)

        def batches(epoch: int):
            sampler.set_epoch(epoch)
            for idx in sampler:
                yield self._batch([tr_src[i] for i in idx], [tr_tgt[i] for i in idx])

        def loss_fn(net: Seq2SeqNet, batch: Batch) -> torch.Tensor:
            out = net(
                batch.x,
                batch.lengths,
                batch.y,
                teacher_forcing=self.teacher_forcing,
                generator=sampling,
            )
            return sequence_loss(
                out.outputs,
                out.stop,
                batch.y,
                batch.extra["target_lengths"],
                label_smoothing=self.label_smoothing,
            )

        def validate(net: Seq2SeqNet) -> dict:
            return {"val_loss": self._teacher_forced_loss(vsrc, vtgt)}

        self.train_result = fit(
            self.net,
            train_batches=batches,
            n_batches=len(sampler),
            loss_fn=loss_fn,
            validate=validate if len(vsrc) else None,
            config=tc,
            progress=self.progress,
            log_path=Path(log_path) if log_path else None,
            description="seq2seq",
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            resume=resume,
            data_digest=data_digest(tr_src, tr_tgt, vsrc, vtgt),
            generators={"teacher_forcing": sampling},
            device=device,
            callback=self.callback,
        )
        self.metrics = self.train_result.summary(
            tc.monitor,
            padding_waste=round(sampler.padding_waste(), 4),
            n_train=len(tr_src),
            n_val=len(vsrc),
        )
        return self

    def _batch(self, src: list[np.ndarray], tgt: list[np.ndarray] | None = None) -> Batch:
        x, lengths = self.source.pad(src)
        batch = Batch(x=x, lengths=lengths, mask=lengths_to_mask(lengths, x.shape[1]))
        if tgt is not None:
            batch.y, batch.extra["target_lengths"] = self.target.pad(tgt)
        return batch

    def _teacher_forced_loss(self, src: list[np.ndarray], tgt: list[np.ndarray]) -> float:
        """Mean teacher-forced loss (no label smoothing) over pairs, batched by source length."""
        total, weight = 0.0, 0
        sampler = BucketBatchSampler([len(a) for a in src], 256, shuffle=False)
        with torch.no_grad():
            for idx in sampler:
                b = self._batch([src[i] for i in idx], [tgt[i] for i in idx]).to(self._device())
                out = self.net(b.x, b.lengths, b.y)
                n = int(b.extra["target_lengths"].sum())
                loss = sequence_loss(out.outputs, out.stop, b.y, b.extra["target_lengths"])
                total += float(loss) * n
                weight += n
        return total / max(weight, 1)

    # -- inference ----------------------------------------------------------------------------
    def _run(
        self,
        sources: Sequence,
        *,
        beam_size: int | None,
        max_len: int | None,
        steps: int | Sequence[int] | None,
        batch_size: int = 128,
    ) -> tuple[list, list[np.ndarray | None]]:
        """Decode every source; predictions and attention weights (U_i, S_i), in input order."""
        self._check_fitted()
        beam_size = self.beam_size if beam_size is None else int(beam_size)
        _check_decoding(beam_size, max_len)
        src = self.source.encode(self.source.check(list(sources), "sources"), eos=False)
        n = len(src)
        preds: list = [None] * n
        attns: list = [None] * n
        if isinstance(steps, int) or steps is None:
            per_row = None
        else:
            per_row = [int(s) for s in steps]
            if len(per_row) != n:
                raise ShapeError(f"steps: expected one length per source ({n}), got {len(per_row)}")
        if beam_size > 1 and self.target.kind != "tokens":
            raise ConfigError("beam_size: beam search applies to token targets only, use 1")
        sampler = BucketBatchSampler([len(a) for a in src], batch_size, shuffle=False)
        self.net.eval()
        device = self._device()
        for idx in sampler:
            b = self._batch([src[i] for i in idx]).to(device)
            if self.target.kind == "tokens":
                limit = max_len or self.max_len or int(1.5 * self.target.max_length) + 5
                out, lengths, _, attn = self.net.generate_tokens(
                    b.x,
                    b.lengths,
                    max_len=limit,
                    beam_size=beam_size,
                    length_penalty=self.length_penalty,
                )
            else:
                if per_row is not None:
                    n_steps, stop = max(per_row[i] for i in idx), False
                elif steps is not None:
                    n_steps, stop = int(steps), False
                elif self.target.fixed_length is not None:
                    n_steps, stop = self.target.fixed_length, False
                else:
                    n_steps, stop = max_len or self.target.max_length, True
                out, lengths, attn = self.net.generate_values(
                    b.x, b.lengths, steps=n_steps, stop_at_end=stop
                )
                if per_row is not None:
                    lengths = torch.as_tensor([per_row[i] for i in idx])
            out = out.cpu()
            attn = attn.cpu() if attn is not None else None
            for j, i in enumerate(idx):
                length = int(lengths[j])
                preds[i] = self.target.decode(out[j], length)
                if attn is not None:
                    keep = len(preds[i]) + (1 if self.target.kind == "tokens" else 0)
                    keep = min(keep, length)
                    # (U, S) -> (U_i, S_i): this row's steps over its own source steps
                    attns[i] = attn[j, :keep, : len(src[i])].numpy()
        return preds, attns

    def predict(
        self,
        sources: Sequence,
        *,
        beam_size: int | None = None,
        max_len: int | None = None,
        steps: int | None = None,
    ) -> list:
        """Decode each source: token lists, or (U_i, O) arrays in the targets' units.

        Tokens: greedy (``beam_size`` 1) or beam search, at most ``max_len`` tokens. Values:
        ``steps`` steps when given; else the training length when every training target had the
        same length; else until the stop head says so (at most ``max_len``).
        """
        with self._inferring():
            return self._run(sources, beam_size=beam_size, max_len=max_len, steps=steps)[0]

    def predict_with_attention(
        self, sources: Sequence, *, beam_size: int | None = None, max_len: int | None = None
    ) -> tuple[list, list[np.ndarray]]:
        """Predictions and, for each, its attention weights (U_i, S_i) (rows: output steps, the
        EOS step included for tokens; columns: source steps; each row sums to 1)."""
        if self.config is not None and self.config.attention == "none":
            raise ConfigError(
                "predict_with_attention: this model was trained with attention 'none'"
            )
        return self._run(sources, beam_size=beam_size, max_len=max_len, steps=None)

    def evaluate(self, sources, targets=None, *, beam_size: int | None = None) -> dict:
        """Metrics on labelled pairs.

        Tokens: pairs are grouped by source (a word's several pronunciations, a sentence's several
        translations are alternative references), each unique source decoded once; returns n
        (unique sources), exact_match, wer (= 1 - exact match: G2P's word error rate),
        token_error_rate (summed edit distance / reference length: PER for G2P) and BLEU
        (sacrebleu). Values: each target's own length is decoded; mse, rmse, mae (original units).
        """
        self._check_fitted()
        src, tgt = _pairs(sources, targets)
        tgt = self.target.check(tgt, "targets")
        beam = self.beam_size if beam_size is None else int(beam_size)
        t0 = time.perf_counter()
        if self.target.kind == "tokens":
            unique, refs = group_by_source(src, tgt)
            hyps = self.predict(unique, beam_size=beam)
            joiner = "" if self.text_options.get("target_tokenize") == "char" else " "
            result = token_metrics(refs, hyps, joiner=joiner)
            result["n_pairs"] = len(tgt)
        else:
            preds = self._run(src, beam_size=1, max_len=None, steps=[len(t) for t in tgt])[0]
            result = value_metrics(tgt, preds)
        result["beam_size"] = beam
        result["decode_seconds"] = round(time.perf_counter() - t0, 3)
        return result

    def score(self, sources, targets=None) -> float:
        """scikit-learn's ``score`` (higher is better): exact-match rate for token targets,
        minus the mean squared error for value targets."""
        result = self.evaluate(sources, targets)
        return result["exact_match"] if "exact_match" in result else -result["mse"]

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path, *, extra_metrics: dict | None = None) -> Path:
        self._check_fitted()
        return save_model_dir(
            path,
            kind=KIND,
            config=self.config.to_dict(),
            state_dict=self.net.state_dict(),
            preprocessing={
                "source": self.source.to_dict(),
                "target": self.target.to_dict(),
                "decoding": {
                    "beam_size": self.beam_size,
                    "length_penalty": self.length_penalty,
                    "max_len": self.max_len,
                },
                "text": self.text_options,
            },
            metrics={
                "seqshape_version": __version__,
                "train": self.metrics,
                "train_config": self.train_config.to_dict(),
                "teacher_forcing": self.teacher_forcing,
                "label_smoothing": self.label_smoothing,
                **(extra_metrics or {}),
            },
        )

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None) -> Seq2Seq:
        files = load_model_dir(path, kind=KIND)
        config = config_from_dict(Seq2SeqConfig, files.config, files.path / "config.json")
        pre = files.preprocessing
        where = str(files.path / "preprocessing.json")
        decoding = json_field(pre, "decoding", dict | None, where) or {}
        self = cls(
            **params_from(cls, config),
            beam_size=json_field(decoding, "beam_size", int, where, 1),
            length_penalty=json_field(decoding, "length_penalty", float, where, 1.0),
            max_len=json_field(decoding, "max_len", int | None, where),
            threads=threads,
        )
        self.config = config
        self.source = Side.from_dict(pre.get("source"), f"{where}: source")
        self.target = Side.from_dict(pre.get("target"), f"{where}: target")
        expected_in = config.source_vocab_size or config.source_features
        expected_out = config.output_size
        if self.source.size != expected_in or self.target.size != expected_out:
            raise ArtifactError(
                f"{where}: vocabulary/feature sizes ({self.source.size}, {self.target.size}) do "
                f"not match the config ({expected_in}, {expected_out})"
            )
        self.net = build_net(Seq2SeqNet, config, files)
        self.net.eval()
        self.text_options = json_field(pre, "text", dict | None, where) or {}
        self.metrics = files.metrics.get("train", {})
        return self


def _check_decoding(beam_size: int, max_len: int | None) -> None:
    if not isinstance(beam_size, int) or beam_size < 1:
        raise ConfigError(f"beam_size: expected an integer >= 1, got {beam_size!r}")
    if max_len is not None and (not isinstance(max_len, int) or max_len < 1):
        raise ConfigError(f"max_len: expected None or an integer >= 1, got {max_len!r}")
