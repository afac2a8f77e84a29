"""`seqshape detect` and `seqshape nab score` end to end, in real subprocesses, on real NAB files."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "SEQSHAPE_THREADS": "1", "OMP_NUM_THREADS": "1"}
FAST = ("--epochs", "3", "--hidden", "16", "--chunk", "32")


def run(*args, check=True):
    p = subprocess.run(
        [sys.executable, "-m", "seqshape", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def nab(shared_data: Path) -> Path:
    return shared_data / "anomaly" / "nab"


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_detect_on_a_nab_series_writes_scores_plot_and_a_reusable_model(nab, tmp_path):
    data = nab / "data" / "realTraffic" / "speed_7578.csv"  # 1127 rows, 4 label windows
    labels = nab / "labels" / "combined_windows.json"
    out, png, model = tmp_path / "out.csv", tmp_path / "out.png", tmp_path / "det"
    p = run(
        "detect", "--data", data, "--train-size", "0.15", "--output", out, "--plot", png,
        "--labels", labels, "--save", model, *FAST,
    )  # fmt: skip
    assert "label windows hit" in p.stderr
    rows = read_rows(out)
    assert list(rows[0]) == ["timestamp", "value", "prediction", "score", "is_anomaly"]
    assert len(rows) == 1127
    train = int(0.15 * 1127)
    assert all(float(r["score"]) == 0 and r["is_anomaly"] == "0" for r in rows[:train])
    scores = [float(r["score"]) for r in rows]
    assert all(0 <= s <= 1 for s in scores) and max(scores[train:]) > 0.5
    assert rows[0]["prediction"] == "" and float(rows[1]["prediction"]) > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the saved detector scores the same file to the same numbers, without training
    again = tmp_path / "again.csv"
    run("detect", "--data", data, "--model", model, "--train-size", "0.15", "--output", again)
    assert [r["score"] for r in read_rows(again)] == [r["score"] for r in rows]


def test_nab_score_reproduces_the_published_numenta_row(nab):
    p = run("nab", "score", nab / "results", "--detector", "numenta", "--nab-dir", nab, "--json")
    got = json.loads(p.stdout)
    published = {"standard": 70.10, "reward_low_FP_rate": 63.12, "reward_low_FN_rate": 74.32}
    for profile, value in published.items():
        assert abs(got[profile] - value) <= 0.5, (profile, got[profile])


@pytest.fixture(scope="module")
def excerpt(nab: Path) -> list[str]:
    """The first 300 lines of a real NAB file (header + 299 rows)."""
    lines = (nab / "data" / "realTraffic" / "speed_7578.csv").read_text().splitlines()
    return lines[:300]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ls: ls[:41] + [ls[42], ls[41]] + ls[43:], "line 43: timestamp"),
        (lambda ls: ls[:50] + [ls[50].split(",")[0] + ",nan"] + ls[51:], "line 51"),
        (lambda ls: ls[:60] + ["," + ls[60].split(",")[1]] + ls[61:], "line 61"),
        (lambda ls: ls[:31], "the lookback (chunk) is 32"),
    ],
    ids=["non-monotonic", "nan", "missing-timestamp", "shorter-than-lookback"],
)
def test_detect_errors_name_the_line(excerpt, tmp_path, edit, message):
    data = tmp_path / "bad.csv"
    data.write_text("\n".join(edit(list(excerpt))) + "\n")
    p = run(
        "detect", "--data", data, "--train-size", "0.9", "--output", tmp_path / "o.csv", *FAST,
        check=False,
    )  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: DataError:") and message in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
