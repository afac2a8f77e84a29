"""Nothing half-written after any error or kill: real CLI processes on small real data.

- a train command that fails (bad data found inside fit) leaves no OUT.ckpt/ and no temporary;
- Ctrl-C (SIGINT) keeps OUT.ckpt/ and says --resume continues; --resume then finishes cleanly;
- temporaries beside --out are named with the writer's pid, and a killed writer's are removed by
  the next run (a live writer's are not);
- a SIGKILLed `seqshape export` leaves its `.model.onnx.tmp-PID-*`, and the next export removes it;
- `detect` checks --labels before any work and writes --output only at the end, atomically.
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from seqshape import datasets

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="uses POSIX signals")

ENV = {**os.environ, "SEQSHAPE_THREADS": "1", "OMP_NUM_THREADS": "1"}


def seqshape(*args) -> list[str]:
    return [sys.executable, "-m", "seqshape", *map(str, args)]


def run(*args, code: int = 0) -> subprocess.CompletedProcess:
    p = subprocess.run(seqshape(*args), capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode == code, f"exit {p.returncode}\nstderr:\n{p.stderr}"
    return p


def names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


@pytest.fixture
def vowels(tmp_path) -> tuple[Path, Path]:
    """JapaneseVowels train split as .ts: speakers 1-8 (train.ts) and speaker 9 (val9.ts)."""
    text = gzip.decompress(datasets.path("JapaneseVowels_TRAIN.ts.gz").read_bytes()).decode()
    head = [ln for ln in text.splitlines() if ln.startswith(("@", "#"))]
    rows = [ln for ln in text.splitlines() if ln and not ln.startswith(("@", "#"))]
    train, val = tmp_path / "train.ts", tmp_path / "val9.ts"
    train.write_text("\n".join(head + [r for r in rows if not r.endswith(":9")]) + "\n")
    val.write_text("\n".join(head + [r for r in rows if r.endswith(":9")]) + "\n")
    return train, val


def classify_args(train: Path, out: Path, epochs: int = 2) -> list:
    return [
        "train", "classify", "--train", train, "--out", out, "--epochs", epochs, "--hidden", 8,
        "--no-progress", "--checkpoint-every", 2,
    ]  # fmt: skip


# -- errors inside fit ------------------------------------------------------------------------------
def test_classify_error_in_fit_leaves_nothing(tmp_path, vowels):
    train, val = vowels
    before = names(tmp_path)
    # the validation file's speaker 9 never occurs in training: a DataError raised inside fit
    p = run(*classify_args(train, tmp_path / "model"), "--val", val, code=2)
    assert p.stderr == (
        f"error: DataError: {val}: labels ['9'] were not seen in training "
        "(classes ['1', '2', '3', '4', '5', '6', '7', '8'])\n"
    )
    assert names(tmp_path) == before  # no model.ckpt/, no .model.* temporary


def test_forecast_error_in_fit_leaves_nothing(shared_data, tmp_path):
    pd.read_csv(shared_data / "forecasting/ETTh1.csv").iloc[:300].to_csv(
        tmp_path / "ett.csv", index=False
    )
    before = names(tmp_path)
    # 210 training rows cannot hold one window of lookback 200 + horizon 24: DataError in fit
    p = run(
        "train", "forecast", "--data", tmp_path / "ett.csv", "--target", "OT",
        "--out", tmp_path / "model", "--lookback", 200, "--horizon", 24, "--no-progress", code=2,
    )  # fmt: skip
    assert "lookback 200 + horizon 24" in p.stderr, p.stderr
    assert names(tmp_path) == before


def test_a_failed_resume_keeps_the_interrupted_runs_checkpoint(tmp_path, vowels):
    train, val = vowels
    out = tmp_path / "model"
    victim = subprocess.Popen(
        seqshape(*classify_args(train, out, epochs=30)),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while (
            victim.poll() is None and not (tmp_path / "model.ckpt/checkpoint.safetensors").exists()
        ):
            time.sleep(0.002)
    finally:
        victim.kill()
        victim.wait()
    assert (tmp_path / "model.ckpt/checkpoint.safetensors").exists()
    run(*classify_args(train, out, epochs=30), "--val", val, "--resume", code=2)
    assert (tmp_path / "model.ckpt/checkpoint.safetensors").exists()  # still resumable


# -- Ctrl-C -----------------------------------------------------------------------------------------
def test_sigint_keeps_the_checkpoint_and_resume_finishes_cleanly(tmp_path, vowels):
    train, _ = vowels
    out, ckpt = tmp_path / "model", tmp_path / "model.ckpt"
    before = names(tmp_path)
    victim = subprocess.Popen(
        seqshape(*classify_args(train, out, epochs=30)),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while victim.poll() is None and not (ckpt / "checkpoint.safetensors").exists():
            time.sleep(0.002)
        victim.send_signal(signal.SIGINT)
        _, err = victim.communicate(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert victim.returncode == 130, err
    assert f"the checkpoint in {ckpt} is kept; the same command with --resume continues" in err
    assert names(tmp_path) == sorted([*before, "model.ckpt"])
    p = run(*classify_args(train, out, epochs=3), "--resume")
    assert "resumed after epoch" in p.stderr
    assert names(tmp_path) == sorted([*before, "model"])


# -- a killed writer's temporaries ------------------------------------------------------------------
def test_a_killed_writers_temporaries_are_removed_by_the_next_run(tmp_path, vowels):
    from seqshape.artifacts import writer_temp

    train, _ = vowels
    out = tmp_path / "model"
    before = names(tmp_path)
    # a real process makes a temporary directory and file beside --out, then is killed
    code = (
        "import sys; from seqshape.artifacts import writer_temp; "
        f"writer_temp({str(out)!r}, directory=True); writer_temp({str(out)!r}); "
        "print('ready', flush=True); sys.stdin.read()"
    )
    victim = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert victim.stdout.readline().strip() == "ready"
    victim.kill()
    victim.wait()
    dead = [n for n in names(tmp_path) if n.startswith(f".model.tmp-{victim.pid}-")]
    assert len(dead) == 2
    live = writer_temp(out)  # this test process's: alive, so never swept
    run(*classify_args(train, out, epochs=1))
    assert names(tmp_path) == sorted([*before, "model", live.name])
    live.unlink()


def test_a_killed_export_leaves_a_temporary_that_the_next_export_removes(tmp_path, vowels):
    from seqshape.api.classifier import SequenceClassifier
    from seqshape.data.sequences import read_sequences

    train, _ = vowels
    model = tmp_path / "model"
    data = read_sequences(train)
    SequenceClassifier(hidden_size=8, epochs=1, seed=0).fit(data).save(model)
    before = names(model)

    def temps() -> list[str]:
        return [n for n in names(model) if n.startswith(".model.onnx.tmp-")]

    victim = subprocess.Popen(
        seqshape("export", model), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while victim.poll() is None and not temps():
            time.sleep(0.001)
        victim.kill()
        victim.wait()
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert victim.returncode == -signal.SIGKILL, "export ended before its temporary was seen"
    left = temps()
    assert len(left) == 1 and left[0].startswith(f".model.onnx.tmp-{victim.pid}-")
    run("export", model)
    assert temps() == []
    assert names(model) == sorted([*before, "model.onnx"])


# -- detect -----------------------------------------------------------------------------------------
@pytest.fixture
def series(shared_data, tmp_path) -> Path:
    src = shared_data / "anomaly/nab/data/artificialWithAnomaly/art_daily_jumpsup.csv"
    path = tmp_path / "jumps.csv"
    path.write_text("\n".join(src.read_text().splitlines()[:401]) + "\n")
    return path


@pytest.mark.parametrize(
    "labels, message",
    [
        ("[[1, 2", "bad.json line 1: not valid JSON"),
        ('[["2014-04-01 00:00:00"]]', "window 0: expected [start, end] timestamps"),
        ('{"other/file.csv": []}', "expected one entry whose file name is 'jumps.csv'"),
    ],
    ids=["not-json", "bad-window", "other-file"],
)
def test_detect_bad_labels_fail_before_any_output(tmp_path, series, labels, message):
    (tmp_path / "bad.json").write_text(labels)
    before = names(tmp_path)
    t0 = time.perf_counter()
    p = run(
        "detect", "--data", series, "--train-size", 200, "--output", tmp_path / "scores.csv",
        "--plot", tmp_path / "scores.png", "--save", tmp_path / "det", "--labels",
        tmp_path / "bad.json", "--epochs", 50, "--hidden", 32, code=2,
    )  # fmt: skip
    assert p.stderr.startswith("error: DataError:") and message in p.stderr, p.stderr
    assert names(tmp_path) == before  # no scores.csv, no plot, no detector, no temporary
    assert time.perf_counter() - t0 < 20  # refused before 50 epochs of training


def test_detect_writes_its_outputs_and_no_temporary(tmp_path, series):
    (tmp_path / "labels.json").write_text('[["2014-04-01 10:00:00", "2014-04-01 12:00:00"]]')
    before = names(tmp_path)
    p = run(
        "detect", "--data", series, "--train-size", 200, "--output", tmp_path / "scores.csv",
        "--plot", tmp_path / "scores.png", "--labels", tmp_path / "labels.json",
        "--epochs", 1, "--hidden", 8, "--chunk", 32,
    )  # fmt: skip
    assert "label windows hit" in p.stderr
    assert names(tmp_path) == sorted([*before, "scores.csv", "scores.png"])
    assert len((tmp_path / "scores.csv").read_text().splitlines()) == 401
