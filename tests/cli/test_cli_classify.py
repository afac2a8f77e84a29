"""The CLI end to end on the real JapaneseVowels files, in a real subprocess, and its error cases."""

import gzip
import json
import os
import subprocess
import sys

import pytest

from seqshape import datasets

ENV = {**os.environ, "SEQSHAPE_THREADS": "1"}


def run(*args, check=True, cwd=None, stdin=None):
    p = subprocess.run(
        [sys.executable, "-m", "seqshape", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        input=stdin,
        timeout=300,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def jv_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("jv")
    for split in ("TRAIN", "TEST"):
        src = datasets.path(f"JapaneseVowels_{split}.ts.gz")
        (d / f"{split.lower()}.ts").write_bytes(gzip.decompress(src.read_bytes()))
    return d


@pytest.fixture(scope="module")
def trained(jv_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "model"
    run(
        "train",
        "classify",
        "--train",
        jv_files / "train.ts",
        "--out",
        out,
        "--epochs",
        "6",
        "--hidden",
        "24",
        "--seed",
        "1",
        "--no-progress",
    )
    return out


def test_train_writes_a_complete_model_directory(trained):
    names = sorted(p.name for p in trained.iterdir())
    for required in (
        "config.json",
        "model.safetensors",
        "preprocessing.json",
        "metrics.json",
        "train_log.jsonl",
    ):
        assert required in names
    log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, len(log) + 1))
    # the default trains on all of --train (no validation split) and logs the training loss
    assert all("train_loss" in r and "val_loss" not in r for r in log)
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["train"]["n_train"] == 270 and metrics["train"]["n_val"] == 0


def test_evaluate_json_and_table(trained, jv_files):
    p = run("evaluate", trained, "--data", jv_files / "test.ts", "--json")
    result = json.loads(p.stdout)
    assert result["n"] == 370
    assert 0.0 <= result["macro_f1"] <= 1.0
    assert result["accuracy"] > 1 / 9 * 2  # far above chance after 6 epochs
    table = run("evaluate", trained, "--data", jv_files / "test.ts").stdout
    assert "accuracy" in table and "macro F1" in table


def test_predict_writes_one_row_per_sequence(trained, jv_files, tmp_path):
    out = tmp_path / "pred.csv"
    run("predict", trained, "--data", jv_files / "test.ts", "--output", out)
    lines = out.read_text().splitlines()
    assert lines[0].split(",")[:2] == ["id", "predicted"]
    assert len(lines[0].split(",")) == 2 + 9
    assert len(lines) == 371


def test_config_file_supplies_the_shared_flags(jv_files, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("epochs = 2\nhidden = 8\nseed = 4\nbatch_size = 64\n")
    run(
        "train",
        "classify",
        "--train",
        jv_files / "train.ts",
        "--out",
        tmp_path / "m",
        "--config",
        cfg,
        "--layers",
        "2",
        "--no-progress",
    )
    conf = json.loads((tmp_path / "m" / "config.json").read_text())["config"]
    assert conf["hidden_size"] == 8 and conf["num_layers"] == 2
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["train_config"]["epochs"] == 2 and metrics["train_config"]["batch_size"] == 64


def _error(p):
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]


def test_user_errors_are_one_line_exit_2_and_write_nothing(jv_files, trained, tmp_path):
    out = tmp_path / "never"
    msg = _error(
        run("train", "classify", "--train", tmp_path / "nope.ts", "--out", out, check=False)
    )
    assert "nope.ts" in msg
    # a malformed line: drop one value from one dimension of line 20 of the file
    lines = (jv_files / "train.ts").read_text().splitlines()
    data_start = lines.index("@data") + 1
    bad = lines[:]
    dims = bad[data_start + 2].split(":")
    dims[3] = ",".join(dims[3].split(",")[:-1])
    bad[data_start + 2] = ":".join(dims)
    (tmp_path / "bad.ts").write_text("\n".join(bad) + "\n")
    msg = _error(
        run("train", "classify", "--train", tmp_path / "bad.ts", "--out", out, check=False)
    )
    assert f"line {data_start + 3}" in msg and "bad.ts" in msg
    # NaN in the data
    nan = lines[:]
    nan[data_start] = nan[data_start].replace(",", ",NaN,", 1)
    (tmp_path / "nan.ts").write_text("\n".join(nan) + "\n")
    msg = _error(
        run("train", "classify", "--train", tmp_path / "nan.ts", "--out", out, check=False)
    )
    assert "nan.ts" in msg and f"line {data_start + 1}" in msg
    assert not out.exists()
    # wrong feature count against the trained model: keep 11 of the 12 dimensions
    few = [
        ln if i < data_start else ":".join(ln.split(":")[:11] + ln.split(":")[12:])
        for i, ln in enumerate(lines)
    ]
    few = [ln.replace("@dimensions 12", "@dimensions 11") for ln in few]
    (tmp_path / "few.ts").write_text("\n".join(few) + "\n")
    msg = _error(run("evaluate", trained, "--data", tmp_path / "few.ts", "--json", check=False))
    assert "expected 12 features" in msg and "got 11" in msg
    # an empty sequence in a long CSV
    csv = tmp_path / "empty.csv"
    csv.write_text("sequence_id,step,f1,label\na,0,1.0,x\nb,0,,y\n")
    msg = _error(run("train", "classify", "--train", csv, "--out", out, check=False))
    assert "empty.csv" in msg and "line 3" in msg
    # not a model directory
    msg = _error(run("evaluate", tmp_path, "--data", jv_files / "test.ts", check=False))
    assert "config.json" in msg


def test_help_on_every_command():
    for args in ([], ["train"], ["train", "classify"], ["evaluate"], ["predict"], ["demo"]):
        p = run(*args, "--help")
        assert "Usage" in p.stdout, args


def test_frontend_stride_and_lr_schedule_flags_reach_the_model(jv_files, tmp_path):
    run(
        "train",
        "classify",
        "--train",
        jv_files / "train.ts",
        "--out",
        tmp_path / "m",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--stride",
        "3",
        "--lr-schedule",
        "plateau",
        "--no-progress",
    )
    conf = json.loads((tmp_path / "m" / "config.json").read_text())["config"]
    assert conf["frontend"] == "conv" and conf["stride"] == 3  # conv is the default front-end
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["train_config"]["lr_schedule"] == "plateau"
    run(
        "train",
        "classify",
        "--train",
        jv_files / "train.ts",
        "--out",
        tmp_path / "n",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--frontend",
        "none",
        "--no-progress",
    )
    conf = json.loads((tmp_path / "n" / "config.json").read_text())["config"]
    assert conf["frontend"] == "none" and conf["stride"] == 1
    p = run("train", "classify", "--train", jv_files / "train.ts", "--out", tmp_path / "x",
            "--frontend", "fft", check=False)  # fmt: skip
    assert p.returncode == 2 and "fft" in p.stderr and "Traceback" not in p.stderr
