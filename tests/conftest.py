"""Shared test settings: one compute thread (tests run beside other processes on 2 cores)."""

import os
from pathlib import Path

os.environ.setdefault("SEQSHAPE_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from seqshape import runtime  # noqa: E402

runtime.configure(1)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data sets beside the checkout (../shared/data)."""
    if not SHARED.exists():
        pytest.fail(f"{SHARED} is missing: the tests need the shared data sets beside the checkout")
    return SHARED


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
