"""validate_start with start_margin: a fitted start is replaced only by an epoch that beats it by
the margin; after that, epochs compete as usual."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqshape.batching import Batch
from seqshape.errors import ConfigError
from seqshape.train.loop import TrainConfig, fit


def _run(scores: list[float], margin: float):
    """Train a tiny model whose validation metric follows ``scores``: the start, then each
    epoch. Returns the kept epoch and metric."""
    model = nn.Linear(1, 1)
    it = iter(scores)

    def batches(epoch):
        yield Batch(
            x=torch.ones(4, 1, 1),
            lengths=torch.ones(4, dtype=torch.long),
            mask=torch.ones(4, 1, dtype=torch.bool),
            y=torch.zeros(4, 1),
        )

    cfg = TrainConfig(
        epochs=len(scores) - 1, patience=0, validate_start=True, start_margin=margin,
        monitor="val_mase",
    )  # fmt: skip
    r = fit(
        model,
        train_batches=batches,
        n_batches=1,
        loss_fn=lambda net, b: ((net(b.x[:, 0]) - b.y) ** 2).mean(),
        validate=lambda net: {"val_mase": next(it)},
        config=cfg,
        progress=False,
    )
    return r.best_epoch, r.best_metric


def test_a_gain_within_the_margin_keeps_the_start():
    assert _run([1.0, 0.97, 0.96], 0.05) == (0, 1.0)
    assert _run([1.0, 0.97, 0.96], 0.0) == (2, 0.96)  # no margin: any gain replaces it


def test_a_clear_gain_replaces_the_start_and_then_epochs_compete_as_usual():
    assert _run([1.0, 0.97, 0.90, 0.89, 0.93], 0.05) == (3, 0.89)


def test_the_margin_is_checked():
    with pytest.raises(ConfigError, match="start_margin: expected a fraction in"):
        TrainConfig(start_margin=1.5)
