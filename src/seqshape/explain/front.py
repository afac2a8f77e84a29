"""The entry points of `explain`: a model or net (`explain`), a fresh model of a mode
(`explain_mode`) and a trained model directory (`explain_model_dir`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ArtifactError, ConfigError
from .core import EXPLAINERS, Explainer, ExplainOptions, Explanation, Trace, _count, _saved_bytes


# -- the front -----------------------------------------------------------------------------------
def _run(ex: Explainer, net: nn.Module, batch: tuple, source: str) -> Explanation:
    device = next(net.parameters()).device
    batch = tuple(b.to(device) if isinstance(b, Tensor) else b for b in batch)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            t = Trace(net, ex.sizes(net, batch))
            ex.trace(net, batch, t)
        saved = _saved_bytes(net, lambda: ex.train_forward(net, batch))
    finally:
        net.train(was_training)
    total = _count(net)
    counted = sum(t.parameters.values())
    if counted != total:
        t.parameters["other"] = total - counted
        t.notes.append(f"{total - counted:,} parameters belong to modules not shown as a stage")
    lengths = ex.lengths(batch)
    return Explanation(
        mode=ex.mode,
        summary=ex.summary,
        source=source,
        sizes={k: v for k, v in t.sizes.items()},
        stages=tuple(t.stages),
        parameters=dict(t.parameters),
        total_parameters=total,
        activation_bytes=t.activation_bytes,
        training_saved_bytes=saved,
        notes=tuple(t.notes),
        lengths=tuple(int(v) for v in lengths) if lengths is not None else None,
        steps=t.sizes.get("T", t.sizes.get("S")),
    )


def explainer_for(net: nn.Module) -> Explainer:
    for ex in EXPLAINERS.values():
        if isinstance(net, ex.net_class()):
            return ex
    known = ", ".join(ex.net_class().__name__ for ex in EXPLAINERS.values())
    raise ConfigError(
        f"explain: expected a seqshape model or one of {known}, got {type(net).__name__}"
    )


def _options(**sizes) -> ExplainOptions:
    given = {k: v for k, v in sizes.items() if v is not None}
    if "lengths" in given:
        given["lengths"] = tuple(int(v) for v in given["lengths"])
    return ExplainOptions(**given)


def explain(
    model_or_net: Any,
    example_batch: Any = None,
    *,
    batch: int | None = None,
    lengths: Sequence[int] | None = None,
    steps: int | None = None,
    target_steps: int | None = None,
    horizon: int | None = None,
) -> Explanation:
    """Run a real forward pass of a model and explain it stage by stage.

    ``model_or_net``: a fitted `SequenceClassifier` / `SequenceTagger` / `Forecaster` / `Seq2Seq`
    / `SequenceGenerator` (anything with a ``.net``) or one of their nets. ``example_batch``: the
    mode's input — classify/tag: a list of (T_i, F) arrays (scaled like `predict` when the model
    has a scaler), a `Batch`, ``(x, lengths)`` or a (B, T, F) array; forecast: history (B, T, O+C)
    or ``(history, future_cov)``; seq2seq: ``(src, src_lengths[, target])``; generate: static
    (B, F) or ``(static, target)``. Without it a dummy batch is made from the config and the sizes
    given here (``lengths=[20, 7, 13]`` makes a mixed-length batch).
    """
    net = model_or_net if isinstance(model_or_net, nn.Module) else getattr(model_or_net, "net", 0)
    if net is None:
        raise ConfigError(f"explain: this {type(model_or_net).__name__} is not fitted yet")
    if not isinstance(net, nn.Module):
        raise ConfigError(
            f"explain: expected a seqshape model or its net, got {type(model_or_net).__name__}"
        )
    ex = explainer_for(net)
    if example_batch is None:
        opts = _options(
            batch=batch, lengths=lengths, steps=steps, target_steps=target_steps, horizon=horizon
        )
        return _run(ex, net, ex.example(net, opts), "a dummy batch (random values)")
    scaler = getattr(model_or_net, "scaler", None)
    return _run(ex, net, ex.read(net, example_batch, scaler), "the example batch given")


def explain_mode(mode: str, options: ExplainOptions | None = None) -> Explanation:
    """Explain a fresh (untrained, seeded) model of ``mode`` built from ``options``."""
    if mode not in EXPLAINERS:
        raise ConfigError(f"mode: expected one of {', '.join(EXPLAINERS)}, got {mode!r}")
    ex = EXPLAINERS[mode]
    options = options or ExplainOptions()
    if options.pooling != "last" and mode != "classify":
        raise ConfigError(f"--pooling: only mode classify pools, got mode {mode}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = ex.build(options)
    return _run(ex, net, ex.example(net, options), "a dummy batch (random values), untrained model")


def load_net(path: str | Path) -> tuple[Explainer, nn.Module, Any]:
    """A model directory -> (its explainer, its net with the trained weights, its files)."""
    from ..artifacts import build_net, config_from_dict, load_model_dir

    files = load_model_dir(path)
    ex = next((e for e in EXPLAINERS.values() if e.kind == files.kind), None)
    if ex is None:
        kinds = ", ".join(e.kind for e in EXPLAINERS.values())
        raise ArtifactError(
            f"{files.path}: model kind {files.kind!r} cannot be explained (known: {kinds})"
        )
    cfg = dict(files.config)
    if isinstance(cfg.get("quantiles"), list):
        cfg["quantiles"] = tuple(cfg["quantiles"])
    config = config_from_dict(ex.config_class(), cfg, files.path / "config.json")
    net = build_net(ex.net_class(), config, files)
    return ex, net.eval(), files


def explain_model_dir(
    path: str | Path, options: ExplainOptions | None = None, data: Any = None
) -> Explanation:
    """Explain the trained model in ``path`` on a dummy batch, or on ``data`` (a list of arrays,
    classify/tag: the first ``options.batch`` sequences, scaled as the model was trained)."""
    ex, net, files = load_net(path)
    options = options or ExplainOptions()
    if data is None:
        return _run(ex, net, ex.example(net, options), f"a dummy batch for {files.path}")
    scaler = None
    pre = files.preprocessing.get("scaler")
    if pre:
        from ..data.scaling import StandardScaler

        scaler = StandardScaler.from_dict(pre)
    if options.lengths is not None or options.steps is not None:
        raise ConfigError("--lengths/--steps: with data, the data's own lengths are used")
    data = list(data)[: options.batch or 3]
    batch = ex.read(net, data, scaler)
    return _run(ex, net, batch, f"the first {len(data)} sequences of the data given")
