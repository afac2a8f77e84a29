"""Thread counts: never more compute threads than the cores other work leaves idle."""

import os
import subprocess
import sys

from seqshape import runtime


def test_cores_left_subtracts_the_rounded_load_and_keeps_one():
    assert runtime.cores_left(2, 0.0) == 2
    assert runtime.cores_left(2, 0.4) == 2  # a passing blip is not a busy core
    assert runtime.cores_left(2, 1.0) == 1  # another job holds one of two cores
    assert runtime.cores_left(2, 5.6) == 1  # overloaded: still one thread, never zero
    assert runtime.cores_left(16, 3.5) == 12


def test_a_fresh_process_defaults_to_the_cores_left_and_keeps_that_count():
    code = (
        "import os\n"
        "from seqshape import runtime\n"
        "import torch\n"
        "want = runtime.cores_left(runtime.usable_cores(), os.getloadavg()[0])\n"
        "first = runtime.configure()\n"
        "assert first == runtime.free_cores() == torch.get_num_threads(), (first, want)\n"
        "assert abs(first - want) <= 1, (first, want)  # the load may move between the reads\n"
        "assert runtime.configure() == first  # decided once: its own work never lowers it\n"
        "assert runtime.configure(64) == runtime.usable_cores()  # capped at the cores there are\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SEQSHAPE_THREADS"}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
