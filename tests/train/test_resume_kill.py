"""Kill a real `seqshape train classify` process mid-epoch, resume it, get the same weights.

The victim checkpoints every 3 optimizer steps. The test waits until the checkpoint on disk is a
mid-epoch one, freezes the process (SIGSTOP) so that no further checkpoint can land, checks the
frozen checkpoint is still mid-epoch, then SIGKILLs it: no Python cleanup, no finally blocks. The
resumed run must end with a model.safetensors whose tensors equal, bit for bit, those of a run that
was never interrupted. Nothing here depends on timing: whenever the kill lands, the checks hold.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from seqshape import datasets

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="uses /proc and POSIX signals")

ENV = {**os.environ, "SEQSHAPE_THREADS": "1", "OMP_NUM_THREADS": "1"}


def seqshape(*args) -> list[str]:
    return [sys.executable, "-m", "seqshape", *map(str, args)]


def run(*args) -> subprocess.CompletedProcess:
    p = subprocess.run(seqshape(*args), capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode == 0, f"exit {p.returncode}\nstderr:\n{p.stderr}"
    return p


@pytest.fixture
def train_ts(tmp_path) -> Path:
    src = datasets.path("JapaneseVowels_TRAIN.ts.gz")
    path = tmp_path / "train.ts"
    path.write_bytes(gzip.decompress(src.read_bytes()))
    return path


def training_args(train_ts: Path, out: Path) -> list:
    # 270 training sequences (the default keeps no validation split) in 34 batches of 8 per epoch
    return [
        "train", "classify", "--train", train_ts, "--out", out, "--epochs", 4, "--hidden", 16,
        "--seed", 3, "--checkpoint-every", 3, "--no-progress",
    ]  # fmt: skip


def saved_position(ckpt: Path) -> dict | None:
    """The loop position recorded in the checkpoint (read from its JSON header), if any."""
    try:
        with safe_open(str(ckpt / "checkpoint.safetensors"), framework="pt") as f:
            return json.loads(f.metadata()["state"])["position"]
    except (FileNotFoundError, SafetensorError, RuntimeError):
        # not there yet, or (seen once under load) a mapping that does not match the file's
        # size yet: no position to read this time, the caller asks again
        return None


def wait_until_stopped(pid: int) -> None:
    while True:  # /proc/PID/stat: "pid (comm) STATE ..."; T = stopped by a signal
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        time.sleep(0.001)


def kill_mid_epoch(proc: subprocess.Popen, ckpt: Path) -> dict:
    """SIGKILL ``proc`` while its last checkpoint is a mid-epoch one of epoch 2 or later."""
    while proc.poll() is None:
        pos = saved_position(ckpt)
        if pos and pos["epoch"] >= 2 and not pos["epoch_done"]:
            proc.send_signal(signal.SIGSTOP)
            wait_until_stopped(proc.pid)
            pos = saved_position(ckpt)  # frozen: this is what the killed run leaves
            if not pos["epoch_done"]:
                proc.kill()
                proc.wait()
                return pos
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.002)
    pytest.fail(f"training ended (exit {proc.returncode}) before a mid-epoch checkpoint was seen")


def history(model_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (model_dir / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_sigkill_mid_epoch_then_resume_gives_bit_identical_weights(tmp_path, train_ts):
    ref = tmp_path / "ref"
    run(*training_args(train_ts, ref))
    assert not (tmp_path / "ref.ckpt").exists()  # a finished run removes its checkpoint

    out, ckpt = tmp_path / "run", tmp_path / "run.ckpt"
    victim = subprocess.Popen(
        seqshape(*training_args(train_ts, out)),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        pos = kill_mid_epoch(victim, ckpt)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not out.exists()
    assert 0 < pos["batches_done"] < 34

    p = run(*training_args(train_ts, out), "--resume")
    assert f"resumed after epoch {pos['epoch']} step {pos['batches_done']} from {ckpt}" in p.stderr

    want, got = load_file(ref / "model.safetensors"), load_file(out / "model.safetensors")
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), f"{name} differs from the uninterrupted run"
    assert history(out) == history(ref)
    assert len(history(out)) == 4
    # no checkpoint, temporary file or directory left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref", "run", "train.ts"]


def test_nan_loss_exits_2_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path, train_ts):
    out = tmp_path / "model"
    args = training_args(train_ts, out)
    args[args.index("--checkpoint-every") + 1] = 1
    p = subprocess.run(
        seqshape(*args, "--lr", "1e30"), capture_output=True, text=True, env=ENV, timeout=300
    )
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("error: TrainingError: epoch 1 step ")
    assert "training stopped (the last good checkpoint, after epoch 1 step " in lines[0]
    assert f"is kept in {tmp_path / 'model.ckpt'}" in lines[0]
    assert not out.exists()
    with safe_open(str(tmp_path / "model.ckpt" / "checkpoint.safetensors"), "pt") as f:
        for name in f.keys():  # noqa: SIM118
            if name.startswith("model/"):
                assert torch.isfinite(f.get_tensor(name)).all(), name
