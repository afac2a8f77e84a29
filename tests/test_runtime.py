"""Thread counts: never more compute threads than the cores other work leaves idle."""

import os
import subprocess
import sys
import time

from seqshape import runtime


def test_cores_left_subtracts_the_rounded_busy_cores_and_keeps_one():
    assert runtime.cores_left(2, 0.0) == 2
    assert runtime.cores_left(2, 0.4) == 2  # a passing blip is not a busy core
    assert runtime.cores_left(2, 1.0) == 1  # another job holds one of two cores
    assert runtime.cores_left(2, 5.6) == 1  # overloaded: still one thread, never zero
    assert runtime.cores_left(16, 3.5) == 12


def test_busy_cores_sees_a_spinning_process_at_once():
    """/proc/stat, not the lagging load average: a job started a moment ago already counts."""
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = runtime.busy_cores(0.3)
    finally:
        spin.kill()
        spin.wait()
    assert busy >= 0.7  # the spinner holds one core (other work can only add)
    assert busy <= runtime.usable_cores() + 0.05
    if runtime.usable_cores() == 2:
        assert runtime.cores_left(2, busy) == 1


def test_a_bad_threads_variable_is_a_config_error():
    code = (
        "from seqshape import runtime\n"
        "from seqshape.errors import ConfigError\n"
        "try:\n"
        "    runtime.configure()\n"
        "except ConfigError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "SEQSHAPE_THREADS": "0"}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "SEQSHAPE_THREADS: expected a whole number >= 1, got '0'" in p.stdout, p.stderr


def test_a_fresh_process_defaults_to_the_free_cores_and_keeps_that_count():
    code = (
        "from seqshape import runtime\n"
        "import torch\n"
        "first = runtime.configure()\n"
        "assert 1 <= first == runtime.free_cores() == torch.get_num_threads() <= "
        "runtime.usable_cores()\n"
        "assert runtime.configure() == first  # decided once: its own work never lowers it\n"
        "assert runtime.configure(64) == runtime.usable_cores()  # capped at the cores there are\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SEQSHAPE_THREADS"}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
