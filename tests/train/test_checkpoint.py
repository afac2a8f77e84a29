"""Checkpoints: lossless no-pickle state files, atomic writes, and resuming to the same weights.

The training runs are small real ones: a bidirectional LSTM classifier with dropout on an excerpt
of JapaneseVowels. A crash is an exception raised inside training at a chosen step (the process
dies there as far as the loop is concerned); the resumed run starts from a freshly built model with
scrambled global RNGs, so everything it ends with must come from the checkpoint.
"""

from __future__ import annotations

import json
import pickle
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from seqshape import datasets
from seqshape.batching import BucketBatchSampler, collate
from seqshape.errors import ArtifactError, ConfigError, TrainingError
from seqshape.models.classifier import ClassifierConfig, ClassifierNet
from seqshape.train import checkpoint as ck
from seqshape.train.loop import TrainConfig, fit

N_TRAIN, N_VAL, BATCH = 80, 30, 16  # 5 batches per epoch
# the learning rate is halved after epochs 4 and 5 (the early-stopping test covers best weights)
CONFIG = TrainConfig(epochs=6, batch_size=BATCH, lr=5e-2, lr_patience=0, seed=5)


class Crash(Exception):
    """Stands for the process dying at this point."""


@pytest.fixture(scope="module")
def jv():
    s = datasets.load_japanese_vowels("train")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(s.X))
    labels = np.array([int(v) - 1 for v in s.y], dtype=np.int64)
    tr, va = order[:N_TRAIN], order[N_TRAIN : N_TRAIN + N_VAL]
    return [s.X[i] for i in tr], labels[tr], [s.X[i] for i in va], labels[va]


def new_model(seed: int) -> ClassifierNet:
    torch.manual_seed(seed)
    cfg = ClassifierConfig(
        input_size=12, num_outputs=9, hidden_size=8, bidirectional=True, dropout=0.3
    )
    return ClassifierNet(cfg)


def train(jv, tmp: Path | None, *, crash_at=None, nan_at=None, config=None, resume=False, **kw):
    """One fit() on the excerpt; ``crash_at``/``nan_at`` = (epoch, step) to fail at.

    A resumed run starts from other initial weights and other global RNG states than a fresh one:
    what it ends with must come from the checkpoint.
    """
    Xtr, ytr, Xva, yva = jv
    config = config or CONFIG
    sampler = BucketBatchSampler([len(a) for a in Xtr], config.batch_size, seed=config.seed)
    ce = torch.nn.CrossEntropyLoss()

    def batches(epoch):
        sampler.set_epoch(epoch)
        for step, idx in enumerate(sampler, start=1):
            if (epoch, step) == crash_at:
                raise Crash
            b = collate([Xtr[i] for i in idx], ytr[idx])
            # augmentation drawn from numpy's global RNG (its state must be checkpointed)
            b.x = b.x + torch.from_numpy(np.random.normal(0, 0.05, b.x.shape).astype(np.float32))
            if (epoch, step) == nan_at:
                b.x[0, 0, 0] = float("nan")  # a damaged value in the data
            yield b

    def loss_fn(net, b):
        # random feature-scale jitter from Python's global RNG
        return ce(net(b.x * (1 + random.uniform(-0.05, 0.05)), b.lengths), b.y)

    def validate(net):
        b = collate(Xva, yva)
        return {"val_loss": float(ce(net(b.x, b.lengths), b.y))}

    # the global RNGs as a fresh process would find them; a resumed run must not depend on them
    fresh = not resume or tmp is None or not ck.checkpoint_path(tmp).exists()
    scramble_rngs(12345 if fresh else 999)
    model = new_model(seed=1 if fresh else 99)
    result = fit(
        model,
        train_batches=batches,
        n_batches=len(sampler),
        loss_fn=loss_fn,
        validate=validate,
        config=config,
        progress=False,
        checkpoint_dir=tmp,
        resume=resume,
        **kw,
    )
    return model, result


def scramble_rngs(seed: int):
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{k} differs"


def strip_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@pytest.fixture(scope="module")
def reference(jv):
    return train(jv, None)


# -- the state encoding ---------------------------------------------------------------------------


def test_optimizer_scheduler_and_rng_state_round_trip_exactly(tmp_path):
    net = new_model(0)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    x = torch.randn(3, 5, 12)
    for _ in range(2):
        opt.zero_grad()
        net(x, torch.tensor([5, 4, 2])).sum().backward()
        opt.step()
        sched.step(1.0)
    np.random.rand()
    random.random()
    state = {
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": ck.rng_states(),
        "nothing": None,
        "floats": [float("inf"), float("-inf"), 0.1],
    }
    ck.save_checkpoint(tmp_path, state)
    back = ck.load_checkpoint(tmp_path)

    assert back["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
    assert isinstance(back["optimizer"]["param_groups"][0]["betas"], tuple)
    assert back["optimizer"]["state"].keys() == state["optimizer"]["state"].keys()  # int keys
    for i, per_param in state["optimizer"]["state"].items():
        for name, t in per_param.items():
            got = back["optimizer"]["state"][i][name]
            assert got.dtype == t.dtype and torch.equal(got, t), (i, name)
    assert back["scheduler"] == state["scheduler"]
    assert back["scheduler"]["mode_worse"] == float("inf")
    assert back["floats"][:2] == [float("inf"), float("-inf")] and back["nothing"] is None
    assert torch.equal(back["rng"]["torch"], torch.get_rng_state())
    assert back["rng"]["torch"].dtype == torch.uint8
    assert back["rng"]["python"] == random.getstate()
    np.testing.assert_array_equal(
        back["rng"]["numpy"]["state"]["key"], np.random.get_state(legacy=False)["state"]["key"]
    )
    # restoring replays the same numbers
    expected = (torch.rand(3), np.random.rand(3), random.random())
    ck.set_rng_states(back["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_the_file_is_safetensors_with_a_json_state_and_no_pickle(tmp_path):
    net = new_model(0)
    path = ck.save_checkpoint(tmp_path, {"model": net.state_dict(), "epoch": 3})
    assert path == tmp_path / "checkpoint.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        names = set(f.keys())
    assert meta["format"] == "seqshape-checkpoint" and meta["format_version"] == "1"
    doc = json.loads(meta["state"])
    assert doc["epoch"] == 3
    assert names == {f"model/{k}" for k in net.state_dict()}
    assert doc["model"]["head.weight"] == {"$tensor": "model/head.weight"}
    assert b"\x80\x04" not in path.read_bytes()[:16]  # no pickle protocol header
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors"]


def test_unsupported_values_are_refused_when_saving(tmp_path):
    with pytest.raises(TypeError, match="optimizer/x: cannot checkpoint a value of type object"):
        ck.save_checkpoint(tmp_path, {"optimizer": {"x": object()}})
    assert not (tmp_path / "checkpoint.safetensors").exists()


# -- damaged and foreign files --------------------------------------------------------------------


def test_missing_checkpoint_is_none(tmp_path):
    assert ck.load_checkpoint(tmp_path) is None


def test_truncated_checkpoint_is_an_artifact_error(tmp_path):
    path = ck.save_checkpoint(tmp_path, {"model": new_model(0).state_dict()})
    raw = path.read_bytes()
    for cut in (0, 5, 100, len(raw) - 10):
        path.write_bytes(raw[:cut])
        with pytest.raises(ArtifactError, match="checkpoint.safetensors: unreadable or damaged"):
            ck.load_checkpoint(tmp_path)


def test_a_model_file_is_not_a_checkpoint(tmp_path):
    from seqshape.artifacts import save_model_dir

    net = new_model(0)
    d = save_model_dir(
        tmp_path / "m", kind="classifier", config={}, state_dict=net.state_dict(), preprocessing={}
    )
    (tmp_path / "c").mkdir()
    (d / "model.safetensors").rename(tmp_path / "c" / "checkpoint.safetensors")
    with pytest.raises(ArtifactError, match="not a seqshape checkpoint"):
        ck.load_checkpoint(tmp_path / "c")


def test_a_pickle_renamed_checkpoint_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "checkpoint.safetensors").write_bytes(pickle.dumps({"model": Evil()}))
    with pytest.raises(ArtifactError, match="unreadable or damaged"):
        ck.load_checkpoint(tmp_path)
    assert not marker.exists()


def test_a_failed_write_keeps_the_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    ck.save_checkpoint(tmp_path, {"epoch": 1, "w": torch.ones(3)})
    before = (tmp_path / "checkpoint.safetensors").read_bytes()

    def half_then_crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(tmp_path, {"epoch": 2, "w": torch.zeros(3)})
    assert (tmp_path / "checkpoint.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors"]
    assert ck.load_checkpoint(tmp_path)["epoch"] == 1


def test_a_temp_file_left_by_a_killed_writer_is_removed_by_the_next_save(tmp_path):
    (tmp_path / ".checkpoint.safetensors.tmp-abc123").write_bytes(b"half a checkpoint")
    ck.save_checkpoint(tmp_path, {"epoch": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors"]


# -- resuming -------------------------------------------------------------------------------------


def test_the_reference_run_exercises_lr_decay(reference):
    _, result = reference
    lrs = [row["lr"] for row in result.history]
    assert len(result.history) == 6
    assert lrs[0] > lrs[4] > lrs[5], "ReduceLROnPlateau did not act twice: resume tests miss it"


@pytest.mark.parametrize(
    "crash_at, every, resumed_from",
    [
        ((2, 4), 2, {"epoch": 2, "step": 3}),  # mid-epoch step checkpoint (global step 8)
        ((3, 1), 2, {"epoch": 2, "step": 5}),  # end-of-epoch checkpoint
        ((2, 3), 3, {"epoch": 2, "step": 1}),  # global step 6 = 5 + 1: steps count across epochs
        ((3, 3), None, {"epoch": 2, "step": 5}),  # epoch checkpoints only
        ((5, 2), 1, {"epoch": 5, "step": 1}),  # after the lr decay and the best epoch
    ],
)
def test_resume_after_a_crash_ends_with_the_same_weights(
    jv, reference, tmp_path, crash_at, every, resumed_from
):
    ref_model, ref = reference
    with pytest.raises(Crash):
        train(jv, tmp_path, crash_at=crash_at, checkpoint_every=every)
    model, result = train(jv, tmp_path, checkpoint_every=every, resume=True)
    assert result.resumed_from == resumed_from
    assert_same_weights(model, ref_model)
    assert strip_seconds(result.history) == strip_seconds(ref.history)
    assert (result.best_epoch, result.best_metric) == (ref.best_epoch, ref.best_metric)


def test_resume_twice_and_the_log_holds_every_epoch_once(jv, reference, tmp_path):
    ref_model, ref = reference
    log = tmp_path / "log.jsonl"
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Crash):
        train(jv, ckpt, crash_at=(1, 4), checkpoint_every=1, log_path=log)
    with pytest.raises(Crash):
        train(jv, ckpt, crash_at=(3, 2), checkpoint_every=1, log_path=log, resume=True)
    model, _ = train(jv, ckpt, checkpoint_every=1, log_path=log, resume=True)
    assert_same_weights(model, ref_model)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert strip_seconds(rows) == strip_seconds(ref.history)


def test_resuming_a_finished_run_trains_no_more(jv, reference, tmp_path):
    ref_model, _ = reference
    train(jv, tmp_path)
    model, result = train(jv, tmp_path, resume=True)
    assert result.resumed_from == {"epoch": 6, "step": 5}
    assert_same_weights(model, ref_model)


def test_early_stopping_state_survives_a_resume(jv, tmp_path):
    cfg = TrainConfig(epochs=30, batch_size=BATCH, lr=3e-2, patience=2, lr_patience=0, seed=5)
    ref_model, ref = train(jv, None, config=cfg)
    assert ref.stopped_early and len(ref.history) < 30 and ref.best_epoch < len(ref.history)
    crash_epoch = len(ref.history)  # crash in the epoch at whose end patience runs out
    with pytest.raises(Crash):
        train(jv, tmp_path, config=cfg, crash_at=(crash_epoch, 3), checkpoint_every=1)
    model, result = train(jv, tmp_path, config=cfg, resume=True)
    assert result.stopped_early and len(result.history) == len(ref.history)
    assert_same_weights(model, ref_model)


def test_resume_without_a_checkpoint_starts_afresh(jv, reference, tmp_path):
    ref_model, _ = reference
    model, result = train(jv, tmp_path / "empty", resume=True)
    assert result.resumed_from is None
    assert_same_weights(model, ref_model)


def test_resume_with_other_options_is_refused(jv, tmp_path):
    train(jv, tmp_path)
    with pytest.raises(ConfigError, match=r"trained with lr=0\.05, this run asks lr=0\.02"):
        train(jv, tmp_path, config=replace(CONFIG, lr=2e-2), resume=True)
    with pytest.raises(ConfigError, match="batch_size=16, this run asks batch_size=8"):
        train(jv, tmp_path, config=replace(CONFIG, batch_size=8), resume=True)
    # more epochs are fine: training goes on from the last one
    _, result = train(jv, tmp_path, config=replace(CONFIG, epochs=7), resume=True)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4, 5, 6, 7]


def test_resume_into_another_model_shape_is_refused(jv, tmp_path):
    Xtr, ytr, _, _ = jv
    train(jv, tmp_path)
    torch.manual_seed(0)
    other = ClassifierNet(ClassifierConfig(input_size=12, num_outputs=9, hidden_size=9))
    with pytest.raises(ConfigError, match="model tensor .*: the checkpoint has shape"):
        fit(
            other,
            train_batches=lambda e: iter([collate(Xtr[:16], ytr[:16])]),
            n_batches=5,
            loss_fn=lambda net, b: net(b.x, b.lengths).sum(),
            validate=None,
            config=CONFIG,
            progress=False,
            checkpoint_dir=tmp_path,
            resume=True,
        )


def test_a_nan_loss_names_epoch_and_step_and_keeps_the_last_good_checkpoint(jv, tmp_path):
    with pytest.raises(Crash):  # the state the NaN run will have checkpointed last
        train(jv, tmp_path / "good", crash_at=(2, 4), checkpoint_every=2)
    good = ck.load_checkpoint(tmp_path / "good")
    with pytest.raises(
        TrainingError,
        match=r"epoch 2 step 4: the loss is nan; training stopped \(the last good checkpoint, "
        r"after epoch 2 step 3, is kept in .*nan",
    ):
        train(jv, tmp_path / "nan", nan_at=(2, 4), checkpoint_every=2)
    kept = ck.load_checkpoint(tmp_path / "nan")
    assert kept["position"] == good["position"]
    for k, t in good["model"].items():
        assert torch.equal(kept["model"][k], t)


def test_a_nan_loss_without_checkpoints_says_so(jv):
    with pytest.raises(TrainingError, match=r"epoch 1 step 2: the loss is nan; .*before this step"):
        train(jv, None, nan_at=(1, 2))


def test_checkpoint_options_are_checked(jv, tmp_path):
    with pytest.raises(ConfigError, match="resume: needs a checkpoint_dir"):
        train(jv, None, resume=True)
    with pytest.raises(ConfigError, match="checkpoint_every: expected a positive number"):
        train(jv, tmp_path, checkpoint_every=-3)
    assert not any(tmp_path.iterdir())


def test_without_a_checkpoint_dir_nothing_is_written(jv, reference, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, _ = train(jv, None)
    assert_same_weights(model, reference[0])
    assert not any(tmp_path.iterdir())


def test_cosine_schedule_anneals_per_epoch_and_resumes_exactly(jv, tmp_path):
    import math

    config = replace(CONFIG, lr_schedule="cosine")
    ref_model, ref = train(jv, None, config=config)
    lrs = [row["lr"] for row in ref.history]
    lr0 = config.lr
    # the lr logged for epoch e is the one it trained with: lr/100 + (lr - lr/100)(1 + cos(pi e/E))/2
    want = [
        lr0 / 100 + (lr0 - lr0 / 100) * (1 + math.cos(math.pi * e / config.epochs)) / 2
        for e in range(config.epochs)
    ]
    assert lrs == pytest.approx(want, rel=1e-6)
    with pytest.raises(Crash):
        train(jv, tmp_path, crash_at=(4, 2), config=config)
    model, result = train(jv, tmp_path, config=config, resume=True)
    assert_same_weights(model, ref_model)
    assert [r["lr"] for r in result.history] == lrs
    with pytest.raises(ConfigError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")


# -- validate_start: the starting weights as epoch 0 --------------------------------------------


def _regression_run(validate_start: bool):
    """A linear model started at the least-squares solution of the *validation* rows: no epoch
    of training on the (differently drawn) training rows can lower the validation MSE."""
    from seqshape.batching import Batch

    g = torch.Generator().manual_seed(0)
    w_true = torch.randn(6, 1, generator=g)
    x_tr, x_va = torch.randn(256, 6, generator=g), torch.randn(128, 6, generator=g)
    y_tr = x_tr @ w_true + 0.5 * torch.randn(256, 1, generator=g)
    y_va = x_va @ w_true + 0.5 * torch.randn(128, 1, generator=g)
    model = torch.nn.Linear(6, 1)
    ones = torch.ones(128, 1)
    sol = torch.linalg.lstsq(torch.cat([x_va, ones], 1), y_va).solution  # (7, 1)
    with torch.no_grad():
        model.weight.copy_(sol[:6].T)
        model.bias.copy_(sol[6])
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def batches(epoch):
        for b in range(8):
            sl = slice(32 * b, 32 * (b + 1))
            yield Batch(x=x_tr[sl], lengths=torch.full((32,), 1), mask=None, y=y_tr[sl])

    def validate(net):
        return {"val_loss": float(((net(x_va) - y_va) ** 2).mean())}

    cfg = TrainConfig(epochs=3, batch_size=32, lr=1e-2, patience=0, validate_start=validate_start)
    result = fit(
        model,
        train_batches=batches,
        n_batches=8,
        loss_fn=lambda net, b: ((net(b.x) - b.y) ** 2).mean(),
        validate=validate,
        config=cfg,
        progress=False,
    )
    with torch.no_grad():
        return model, start, result, validate(model)


def test_validate_start_keeps_a_start_no_epoch_beats():
    model, start, result, val = _regression_run(validate_start=True)
    assert result.best_epoch == 0 and len(result.history) == 3
    assert all(row["val_loss"] > result.start["val_loss"] for row in result.history)
    for k, v in model.state_dict().items():
        assert torch.equal(v, start[k]), k
    assert val["val_loss"] == result.start["val_loss"] == result.best_metric
    s = result.summary("val_loss")
    assert s["best_epoch"] == 0 and s["val_loss"] == s["start_val_loss"] == val["val_loss"]


def test_without_validate_start_the_best_epoch_is_returned_even_if_worse_than_the_start():
    model, start, result, val = _regression_run(validate_start=False)
    assert result.start is None and result.best_epoch >= 1
    assert not torch.equal(model.weight, start["weight"])
    assert val["val_loss"] > _regression_run(validate_start=True)[3]["val_loss"]


def test_validate_start_from_random_weights_is_beaten_and_survives_a_resume(jv, tmp_path):
    cfg = replace(CONFIG, validate_start=True)
    ref_model, ref = train(jv, None, config=cfg)
    assert ref.start is not None and ref.best_epoch >= 1
    assert ref.best_metric < ref.start["val_loss"]
    with pytest.raises(Crash):
        train(jv, tmp_path, config=cfg, crash_at=(3, 2), checkpoint_every=1)
    model, result = train(jv, tmp_path, config=cfg, resume=True)
    assert result.start == ref.start and result.best_epoch == ref.best_epoch
    assert_same_weights(model, ref_model)
