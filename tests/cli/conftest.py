"""Shared by the CLI tests of progress, limits and output files: the real CLI in a subprocess, and a
tiny forecaster trained through it on the real AirPassengers file (a few seconds)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "SEQSHAPE_THREADS": "1", "OMP_NUM_THREADS": "1"}


def seqshape(*args, env=None, check=True, timeout=300, **kw) -> subprocess.CompletedProcess:
    """``python -m seqshape ARGS`` with stdout and stderr captured (so stderr is not a TTY)."""
    p = subprocess.run(
        [sys.executable, "-m", "seqshape", *map(str, args)],
        capture_output=True,
        text=True,
        env={**ENV, **(env or {})},
        timeout=timeout,
        **kw,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


@pytest.fixture(scope="session")
def air_csv(shared_data) -> Path:
    return shared_data / "forecasting" / "AirPassengers.csv"


@pytest.fixture(scope="session")
def forecaster(air_csv, tmp_path_factory) -> Path:
    """A forecaster on AirPassengers (lookback 12, K=6, H=8, 3 epochs), trained by the CLI."""
    out = tmp_path_factory.mktemp("fc") / "model"
    seqshape(
        "train", "forecast", "--data", air_csv, "--target", "#Passengers",
        "--future-covariates", "auto", "--out", out, "--epochs", 3, "--hidden", 8,
        "--lookback", 12, "--horizon", 6, "--seed", 0, "--strategy", "autoregressive",
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def history(air_csv, tmp_path_factory) -> Path:
    """The first 40 rows of AirPassengers: a history to forecast from."""
    path = tmp_path_factory.mktemp("hist") / "history.csv"
    path.write_text("\n".join(air_csv.read_text().splitlines()[:41]) + "\n")
    return path
