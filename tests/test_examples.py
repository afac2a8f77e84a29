"""Every examples/*.py runs, on its small setting, so the docs that quote them cannot rot.

The convention for an example script: it accepts ``--small`` (a run of a few seconds at one
thread), finds its data through `seqshape.datasets` or relative to its own file, writes nothing
outside a temporary directory or one it is given, and exits with 0. Each runs here in its own
process, in an empty working directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))
ENV = {**os.environ, "SEQSHAPE_THREADS": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def test_there_are_examples():
    assert {p.name for p in EXAMPLES} >= {"classify_jv.py", "padded_hn_mistake.py"}


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_small(script: Path, tmp_path: Path):
    p = subprocess.run(
        [sys.executable, str(script), "--small"],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
        timeout=300,
    )
    assert p.returncode == 0, f"{script.name} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert p.stdout.strip(), f"{script.name} printed nothing"
    CHECKS.get(script.name, lambda out: None)(p.stdout)


def check_padded_hn_mistake(stdout: str) -> None:
    """The measured numbers quoted in docs/classify.md come in this format."""
    lines = [line for line in stdout.splitlines() if "logit drift on padded sequences" in line]
    assert len(lines) == 2, stdout
    for line in lines:
        # the sequences without padding do not drift at all; the padded ones do
        mean = float(line.split("mean ")[1].split(",")[0])
        assert mean > 0.0 and "(unpadded: 0.0e+00)" in line, line


CHECKS = {"padded_hn_mistake.py": check_padded_hn_mistake}
