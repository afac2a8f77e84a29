"""The bounds on work one request or one command may ask for: one place for the CLI and the server.

A forecast horizon K, a beam size, a number of sample paths and a thread count each turn into
time and memory in proportion (``seqshape forecast --horizon 10000000`` grew by 25 MB/s until
killed; ``translate --beam 1000000`` reached 7.7 GB). The server refuses what is above its limits
(`ServeConfig`, whose ``max_horizon`` default is `MAX_HORIZON` below); the CLI refuses the same
before any work, with one line that names the flag, the limit and how to raise it: the command's
``--max-horizon`` / ``--max-beam`` / ``--max-samples`` flag, or the env var of the same name
(``SEQSHAPE_MAX_HORIZON`` ...). Threads are bounded by the machine: 1 to the usable cores.
"""

from __future__ import annotations

import os

from .errors import ConfigError

MAX_HORIZON = 10_000  # K of one forecast: K cell steps, (K, O) numbers per series and path
MAX_BEAM = 100  # hypotheses kept per beam-search step (4-10 is usual; each adds a decoder row)
MAX_SAMPLES = 1_000  # sample paths per forecast: (S, K, O) numbers, S decoder rows per step

DEFAULTS = {"horizon": MAX_HORIZON, "beam": MAX_BEAM, "samples": MAX_SAMPLES}


def env_name(what: str) -> str:
    """The env var that raises the limit on ``what``: SEQSHAPE_MAX_HORIZON for "horizon"."""
    return f"SEQSHAPE_MAX_{what.upper()}"


def limit(what: str, override: int | None = None) -> int:
    """The limit on ``what`` ("horizon", "beam", "samples"): ``override`` (a --max-* flag) if
    given, else the env var `env_name(what)`, else the default above."""
    flag = f"--max-{what}"
    if override is not None:
        if isinstance(override, bool) or not isinstance(override, int) or override < 1:
            raise ConfigError(f"{flag}: expected a positive integer, got {override!r}")
        return override
    name = env_name(what)
    text = os.environ.get(name)
    if text is None or not text.strip():
        return DEFAULTS[what]
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{name}: expected a positive integer, got {text!r}")
    return value


def check(
    flag: str, value: int | None, what: str, override: int | None = None, *, low: int = 1
) -> int | None:
    """Refuse ``value`` of option ``flag`` outside ``low``..limit(what) with a ConfigError that
    names the flag, the limit and how to raise it; return it unchanged otherwise (None passes)."""
    if value is None:
        return None
    top = limit(what, override)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{flag}: expected an integer from {low} to {top}, got {value!r}")
    if value > top:
        raise ConfigError(
            f"{flag} {value}: above the limit of {top}; raise it with --max-{what} N "
            f"or {env_name(what)}=N if you mean it"
        )
    return value


def check_threads(value: int | None, flag: str = "--threads") -> int | None:
    """Refuse a thread count outside 1..the cores this process may run on (None passes: the
    runtime then picks the free cores)."""
    if value is None:
        return None
    from .runtime import usable_cores

    cores = usable_cores()
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= cores:
        raise ConfigError(
            f"{flag}: expected 1 to {cores} (the cores this process may use), got {value!r}"
        )
    return value
