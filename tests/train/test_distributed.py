"""Data-parallel training: a real `torchrun --nproc_per_node=2 -m seqshape train classify` on CPU.

The 2-process run trains on the bundled JapaneseVowels (270 training sequences) with 8 sequences
per rank and batch, against one process with 16 per batch: the same effective batch (16) and the
same number of optimizer steps per epoch (17), so the two runs differ only in how the batches are
made and dealt out, and their validation accuracy (on the 370 test sequences) must agree within
noise. Tolerance: over seeds 1-3 one process reached 0.968-0.976 after 6 epochs and the
1-vs-2-process gap was at most 0.006; the test asks both for >= 0.90 and a gap <= 0.03 (11 of 370
sequences), five times the largest gap seen. Every process runs one thread (SEQSHAPE_THREADS=1).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqshape import datasets
from seqshape.api.classifier import SequenceClassifier
from seqshape.batching import BucketBatchSampler
from seqshape.data.sequences import read_sequences
from seqshape.train.distributed import shard

ENV = {**os.environ, "SEQSHAPE_THREADS": "1", "OMP_NUM_THREADS": "1"}
for _name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
    ENV.pop(_name, None)

SEQSHAPE = ["-m", "seqshape"]
TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def run(prefix: list[str], *args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *prefix, *SEQSHAPE, *map(str, args)],
        capture_output=True,
        text=True,
        env=env or ENV,
        timeout=240,
    )


def ok(p: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert p.returncode == 0, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def jv(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("jv")
    for split in ("TRAIN", "TEST"):
        src = datasets.path(f"JapaneseVowels_{split}.ts.gz")
        (d / f"{split.lower()}.ts").write_bytes(gzip.decompress(src.read_bytes()))
    return d


def classify(jv: Path, out: Path, batch_size: int) -> list:
    return [
        "train", "classify", "--train", jv / "train.ts", "--val", jv / "test.ts", "--out", out,
        "--epochs", 6, "--hidden", 24, "--seed", 1, "--batch-size", batch_size, "--no-progress",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def one(jv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "model"
    ok(run([], *classify(jv, out, 16)))
    return out


@pytest.fixture(scope="module")
def two(jv, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("two") / "model"
    return out, ok(run(TORCHRUN, *classify(jv, out, 8)))


def metrics(model_dir: Path) -> dict:
    return json.loads((model_dir / "metrics.json").read_text())


def log(model_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (model_dir / "train_log.jsonl").read_text().splitlines()]


def test_rank_zero_alone_writes_one_model_directory_that_loads(two, jv):
    out, p = two
    # nothing else beside it: no second directory, no leftover checkpoint or temporary log
    assert sorted(x.name for x in out.parent.iterdir()) == ["model"]
    assert p.stderr.count("model written to") == 1
    assert metrics(out)["world_size"] == 2
    # the directory holds the best epoch's weights: they score what the log says they scored
    clf = SequenceClassifier.load(out)
    best = metrics(out)["train"]
    assert clf.score(read_sequences(jv / "test.ts")) == pytest.approx(best["val_accuracy"])


def test_both_ranks_trained_every_epoch_on_different_batches(two):
    out, _ = two
    rows = log(out)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for r in rows:
        # 270 sequences in 34 batches of 8 (the last of 6), 17 per rank: the rank holding the
        # short batch saw 134 sequences, the other 136. Ranks training on the same batches would
        # report equal counts; together they saw every training sequence once.
        assert sorted(r["rank_sequences"]) == [134, 136], r


def test_two_processes_reach_the_accuracy_of_one(one, two):
    a = metrics(one)["train"]["val_accuracy"]
    b = metrics(two[0])["train"]["val_accuracy"]
    assert a >= 0.90 and b >= 0.90, (a, b)
    assert abs(a - b) <= 0.03, (a, b)
    assert "rank_sequences" not in log(one)[0]  # one process logs what it always logged


@pytest.mark.parametrize(("n", "world"), [(34, 2), (31, 2), (10, 4), (3, 5), (1, 2)])
def test_shard_splits_like_the_distributed_bucket_sampler(n, world):
    # stand-in batches: the epoch's order is the sampler's own one-process order
    lengths = np.arange(n * 3) % 11 + 1
    alone = list(BucketBatchSampler(lengths, 3, seed=5))
    assert len(alone) == n
    for rank in range(world):
        split = BucketBatchSampler(lengths, 3, seed=5, num_replicas=world, rank=rank)
        assert list(shard(iter(alone), n, rank=rank, world=world)) == list(split)


def test_an_unreachable_process_group_is_a_config_error(jv, tmp_path):
    # WORLD_SIZE=2 without torchrun's rendezvous variables: one line, exit code 2, no traceback
    env = {**ENV, "WORLD_SIZE": "2", "RANK": "0"}
    out = tmp_path / "model"
    p = run(
        [], "train", "classify", "--train", jv / "train.ts", "--out", out, "--epochs", 1, env=env
    )
    assert p.returncode == 2, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ConfigError: torch.distributed (gloo): rank 0 of 2"), p.stderr
    assert "MASTER_ADDR" in last and "Traceback" not in p.stderr
    assert not out.exists()


def test_commands_without_multi_process_support_are_refused(tmp_path):
    env = {**ENV, "WORLD_SIZE": "2", "RANK": "1"}
    p = run([], "serve", "--help", env=env)
    assert p.returncode == 2
    assert "`seqshape serve` does not run in several processes" in p.stderr
    assert "train classify, train forecast, train seq2seq, train tag, train generate" in p.stderr


def test_a_rank_that_never_comes_is_waited_for_a_bounded_time(jv, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **ENV,
        "WORLD_SIZE": "2",
        "RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "SEQSHAPE_DIST_TIMEOUT": "3",
    }
    out = tmp_path / "model"
    p = run(
        [], "train", "classify", "--train", jv / "train.ts", "--out", out, "--epochs", 1, env=env
    )
    assert p.returncode == 2, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert "waited up to 3 s" in last and "Traceback" not in p.stderr, p.stderr
    assert not out.exists()


def test_forecast_trains_in_two_processes_and_rank_zero_writes(shared_data, tmp_path):
    lines = (shared_data / "forecasting" / "ETTh1.csv").read_text().splitlines()[:1201]
    data = tmp_path / "ett.csv"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "runs" / "fc"
    args = [
        "train", "forecast", "--data", data, "--target", "OT", "--lookback", 24, "--horizon", 6,
        "--out", out, "--epochs", 2, "--hidden", 8, "--layers", 1, "--no-progress",
    ]  # fmt: skip
    p = ok(run(TORCHRUN, *args))
    assert p.stderr.count("model written to") == 1
    assert sorted(x.name for x in out.parent.iterdir()) == ["fc"]
    rows = log(out)
    assert [r["epoch"] for r in rows] == [1, 2]
    # every epoch's batches were split between the two ranks
    assert all(len(r["rank_sequences"]) == 2 and min(r["rank_sequences"]) > 0 for r in rows)
    test = metrics(out)["test"]
    assert test["mse"] > 0 and "seasonal_naive" in test["baselines"]


def _two_ranks_wrote_one_model(p: subprocess.CompletedProcess, out: Path, epochs: int) -> None:
    assert p.stderr.count("model written to") == 1
    assert sorted(x.name for x in out.parent.iterdir()) == [out.name]
    rows = log(out)
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))
    # every epoch's batches were split between the two ranks
    assert all(len(r["rank_sequences"]) == 2 and min(r["rank_sequences"]) > 0 for r in rows)


def test_seq2seq_with_scheduled_sampling_trains_in_two_processes(shared_data, tmp_path):
    # teacher forcing < 1 decodes step by step: it too must go through DDP's forward
    lines = (shared_data / "seq2seq/cmudict/cmudict.dict").read_text().splitlines()
    (tmp_path / "train.dict").write_text("\n".join(lines[::60][:300]) + "\n")
    out = tmp_path / "runs" / "g2p"
    args = [
        "train", "seq2seq", "--train", tmp_path / "train.dict", "--strip-stress", "--holdout",
        "0.1", "--out", out, "--epochs", 2, "--hidden", 16, "--embedding", 8,
        "--teacher-forcing", 0.7, "--no-progress",
    ]  # fmt: skip
    p = ok(run(TORCHRUN, *args))
    _two_ranks_wrote_one_model(p, out, 2)
    test = metrics(out)["test"]
    assert 0.0 <= test["wer"] <= 1.0 and test["n"] > 0


def test_tag_and_generate_train_in_two_processes(shared_data, tmp_path):
    import pandas as pd

    ett = pd.read_csv(shared_data / "forecasting/ETTh1.csv")[["HUFL", "OT"]].to_numpy(np.float32)
    rows = ["sequence_id,step,hufl,prev_ot,OT"]
    for d in range(1, 61):  # 60 days of 24 hours: per-step HUFL -> OT, and a day-level static
        for t in range(24):
            h, ot = ett[d * 24 + t]
            rows.append(f"day{d},{t},{h},{ett[d * 24 - 1, 1]},{ot}")
    (tmp_path / "days.csv").write_text("\n".join(rows) + "\n")
    common = ["--train", tmp_path / "days.csv", "--epochs", 2, "--hidden", 8, "--no-progress"]
    tag = tmp_path / "tag" / "m"
    p = ok(run(TORCHRUN, "train", "tag", *common, "--target", "OT", "--out", tag))
    _two_ranks_wrote_one_model(p, tag, 2)
    gen = tmp_path / "gen" / "m"
    p = ok(run(TORCHRUN, "train", "generate", *common, "--static", "prev_ot", "--target", "OT",
               "--out", gen))  # fmt: skip
    _two_ranks_wrote_one_model(p, gen, 2)
