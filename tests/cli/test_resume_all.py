"""--resume on every `seqshape train` command: kill a real process mid-training, resume it, and get
the weights of a run that was never interrupted, bit for bit.

Each command trains on a small real excerpt (ETTh1 rows, CMUdict words, JapaneseVowels frames,
ETTh1 days) and checkpoints every 2 optimizer steps. The test freezes the victim (SIGSTOP) as soon
as its checkpoint on disk is past the first epoch and, for forecast and seq2seq, in the middle of
an epoch; then SIGKILLs it: no Python cleanup runs. The resumed run must end with the uninterrupted
run's model.safetensors and training log, and leave nothing beside the two model directories.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from seqshape import datasets

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="uses /proc and POSIX signals")

ENV = {**os.environ, "SEQSHAPE_THREADS": "1", "OMP_NUM_THREADS": "1"}
COMMON = ["--checkpoint-every", 2, "--no-progress", "--seed", 4]


def seqshape(*args) -> list[str]:
    return [sys.executable, "-m", "seqshape", *map(str, args)]


def run(*args, code: int = 0) -> subprocess.CompletedProcess:
    p = subprocess.run(seqshape(*args), capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode == code, f"exit {p.returncode}\nstderr:\n{p.stderr}"
    return p


# -- small real data sets, one per command --------------------------------------------------------
def forecast_args(data: Path, out: Path) -> list:
    ett = pd.read_csv(data / "forecasting/ETTh1.csv").iloc[:700]
    ett.to_csv(out.parent / "ett.csv", index=False)
    # 490 training rows, lookback 24, horizon 6: 461 windows, 15 batches of 32 per epoch
    return [
        "train", "forecast", "--data", out.parent / "ett.csv", "--target", "OT", "--out", out,
        "--lookback", 24, "--horizon", 6, "--hidden", 8, "--epochs", 3, "--dropout", 0.2,
    ]  # fmt: skip


def seq2seq_args(data: Path, out: Path) -> list:
    lines = (data / "seq2seq/cmudict/cmudict.dict").read_text().splitlines()
    (out.parent / "words.dict").write_text("\n".join(lines[::97][:260]) + "\n")
    # teacher forcing 0.5 draws from the model's own generator: it must be checkpointed too
    return [
        "train", "seq2seq", "--train", out.parent / "words.dict", "--out", out, "--hidden", 16,
        "--embedding", 8, "--epochs", 3, "--batch-size", 16, "--teacher-forcing", 0.5,
        "--lr", 0.01,
    ]  # fmt: skip


def tag_args(data: Path, out: Path) -> list:
    vowels = datasets.load_japanese_vowels("train")
    with (out.parent / "frames.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sequence_id", "step", *[f"c{k}" for k in range(12)], "speaker"])
        for i, (x, y) in enumerate(zip(vowels.X[:150], vowels.y[:150], strict=True)):
            for t, row in enumerate(x):
                w.writerow([f"s{i}", t, *[f"{v:.5f}" for v in row], y])
    return [
        "train", "tag", "--train", out.parent / "frames.csv", "--label", "speaker", "--out", out,
        "--hidden", 8, "--epochs", 3, "--batch-size", 16,
    ]  # fmt: skip


def generate_args(data: Path, out: Path) -> list:
    ett = pd.read_csv(data / "forecasting/ETTh1.csv")[["HUFL", "OT"]].to_numpy(np.float32)
    with (out.parent / "days.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sequence_id", "step", "prev_ot", "prev_hufl", "OT"])
        for d in range(1, 140):
            prev = ett[(d - 1) * 24 : d * 24]
            for t in range(24):
                w.writerow([f"day{d}", t, prev[:, 1].mean(), prev[:, 0].mean(), ett[d * 24 + t, 1]])
    return [
        "train", "generate", "--train", out.parent / "days.csv", "--out", out,
        "--static", "prev_ot", "--static", "prev_hufl", "--target", "OT", "--hidden", 8,
        "--epochs", 3, "--batch-size", 16,
    ]  # fmt: skip


# -- the kill --------------------------------------------------------------------------------------
def saved_position(ckpt: Path) -> dict | None:
    try:
        with safe_open(str(ckpt / "checkpoint.safetensors"), framework="pt") as f:
            return json.loads(f.metadata()["state"])["position"]
    except (FileNotFoundError, SafetensorError, RuntimeError):  # replaced while being read
        return None


def wait_until_stopped(pid: int) -> None:
    while True:  # /proc/PID/stat: "pid (comm) STATE ..."; T = stopped by a signal
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        time.sleep(0.001)


def kill_when(proc: subprocess.Popen, ckpt: Path, wanted) -> dict:
    """SIGKILL ``proc`` while its checkpoint on disk satisfies ``wanted(position)``."""
    while proc.poll() is None:
        pos = saved_position(ckpt)
        if pos and wanted(pos):
            proc.send_signal(signal.SIGSTOP)
            wait_until_stopped(proc.pid)
            pos = saved_position(ckpt)  # frozen: this is what the killed run leaves
            if wanted(pos):
                proc.kill()
                proc.wait()
                return pos
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.001)
    pytest.fail(f"training ended (exit {proc.returncode}) before the checkpoint looked for")


def history(model_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (model_dir / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def mid_epoch(pos: dict) -> bool:
    return pos["epoch"] >= 2 and not pos["epoch_done"]


def epoch_end(pos: dict) -> bool:
    return pos["epoch"] >= 1 and pos["epoch_done"]


@pytest.mark.parametrize(
    "make_args, wanted",
    [
        (forecast_args, mid_epoch),
        (seq2seq_args, mid_epoch),
        (tag_args, epoch_end),
        (generate_args, epoch_end),
    ],
    ids=["forecast", "seq2seq", "tag", "generate"],
)
def test_sigkill_then_resume_gives_the_uninterrupted_weights(
    shared_data, tmp_path, make_args, wanted
):
    ref, out = tmp_path / "ref", tmp_path / "run"
    run(*make_args(shared_data, ref), *COMMON)
    inputs = sorted(p.name for p in tmp_path.iterdir() if p.name != "ref")
    assert not (tmp_path / "ref.ckpt").exists()

    args = make_args(shared_data, out)
    victim = subprocess.Popen(
        seqshape(*args, *COMMON), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        pos = kill_when(victim, tmp_path / "run.ckpt", wanted)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not out.exists()
    # the killed run left its checkpoint (and the log in it), nothing else
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*inputs, "ref", "run.ckpt"])

    p = run(*args, *COMMON, "--resume")
    assert f"resumed after epoch {pos['epoch']} step {pos['batches_done']}" in p.stderr

    want, got = load_file(ref / "model.safetensors"), load_file(out / "model.safetensors")
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), f"{name} differs from the uninterrupted run"
    assert history(out) == history(ref)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*inputs, "ref", "run"])


def test_resume_with_other_training_data_is_a_config_error(shared_data, tmp_path):
    """Same number of rows and batches, one value changed: the data digest tells them apart."""
    out = tmp_path / "model"
    args = forecast_args(shared_data, out)
    victim = subprocess.Popen(
        seqshape(*args, *COMMON), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        kill_when(victim, tmp_path / "model.ckpt", lambda pos: True)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    ett = pd.read_csv(tmp_path / "ett.csv")
    ett.loc[100, "OT"] += 1.0
    ett.to_csv(tmp_path / "ett.csv", index=False)
    p = run(*args, *COMMON, "--resume", code=2)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    ckpt_file = tmp_path / "model.ckpt" / "checkpoint.safetensors"
    assert lines[0].startswith(f"error: ConfigError: {ckpt_file}: the training data differ")
    assert (tmp_path / "model.ckpt").is_dir()  # the interrupted run's checkpoint is kept
    assert not out.exists()
