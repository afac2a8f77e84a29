"""Bounded work in the CLI: --horizon, --beam, --samples, --horizons and --threads are refused before
any work, with one line naming the flag, the limit and how to raise it (exit 2); the limits are the
server's (seqshape.limits), raised by a --max-* flag or SEQSHAPE_MAX_* env var."""

import csv
import time

import pytest

from seqshape import limits
from seqshape.cli import main
from seqshape.errors import ConfigError
from seqshape.runtime import usable_cores
from seqshape.serve.app import ServeConfig

from .conftest import seqshape


def one_error_line(p) -> str:
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


def test_forecast_horizon_ten_million_is_refused_at_once(forecaster, history, tmp_path):
    t0 = time.perf_counter()
    p = seqshape(
        "forecast", forecaster, "--history", history, "--horizon", 10_000_000,
        "--output", tmp_path / "f.csv", check=False, timeout=120,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    line = one_error_line(p)
    assert line == (
        f"error: ConfigError: --horizon 10000000: above the limit of {limits.MAX_HORIZON}; "
        "raise it with --max-horizon N or SEQSHAPE_MAX_HORIZON=N if you mean it"
    )
    assert not (tmp_path / "f.csv").exists()
    print(f"refused K=10^7 in {seconds:.2f} s (process start included)")


def test_horizon_limit_is_the_servers():
    assert ServeConfig().max_horizon == limits.MAX_HORIZON


@pytest.fixture
def cli(capsys):
    """The CLI in process (`seqshape.cli.main`, the `seqshape` script's entry point): the error
    line on stderr, '' when the command succeeded."""

    def run(*args) -> str:
        rc = main([str(a) for a in args])
        err = capsys.readouterr().err.strip()
        if rc == 0:
            return ""
        assert rc == 2 and len(err.splitlines()) == 1, (rc, err)
        return err

    return run


def test_horizon_limit_raised_by_flag_or_env(forecaster, history, tmp_path, cli, monkeypatch):
    out = tmp_path / "f.csv"
    args = ("forecast", forecaster, "--history", history, "--output", out)
    monkeypatch.setenv("SEQSHAPE_MAX_HORIZON", "20")
    assert "--horizon 21: above the limit of 20; raise it with --max-horizon" in cli(
        *args, "--horizon", 21
    )
    assert cli(*args, "--horizon", 21, "--max-horizon", 21) == ""
    with open(out) as f:
        assert len(list(csv.DictReader(f))) == 21
    monkeypatch.setenv("SEQSHAPE_MAX_HORIZON", "lots")
    assert cli(*args, "--horizon", 5) == (
        "error: ConfigError: SEQSHAPE_MAX_HORIZON: expected a positive integer, got 'lots'"
    )
    monkeypatch.delenv("SEQSHAPE_MAX_HORIZON")
    assert cli(*args, "--horizon", 5, "--max-horizon", 0) == (
        "error: ConfigError: --max-horizon: expected a positive integer, got 0"
    )


@pytest.mark.parametrize(
    "extra, expected",
    [
        (("--samples", 5000), f"--samples 5000: above the limit of {limits.MAX_SAMPLES}; "
         "raise it with --max-samples N or SEQSHAPE_MAX_SAMPLES=N"),
        (("--samples", -1), f"--samples: expected an integer from 0 to {limits.MAX_SAMPLES}, got -1"),
        (("--horizon", 0), f"--horizon: expected an integer from 1 to {limits.MAX_HORIZON}, got 0"),
    ],
)  # fmt: skip
def test_forecast_samples_and_horizon_bounds(forecaster, history, tmp_path, cli, extra, expected):
    args = ["forecast", forecaster, "--history", history, "--output", tmp_path / "f.csv"]
    if extra[0] != "--horizon":
        args += ["--horizon", 3]
    assert expected in cli(*args, *extra)
    assert not (tmp_path / "f.csv").exists()


@pytest.mark.parametrize(
    "extra, expected",
    [
        (("--beam", 1_000_000), f"--beam 1000000: above the limit of {limits.MAX_BEAM}; raise it "
         "with --max-beam N or SEQSHAPE_MAX_BEAM=N"),
        (("--samples", 100_000), "--samples 100000: above the limit of"),
        (("--horizons", "6,10000000"), "--horizons 10000000: above the limit of"),
        (("--horizons", "6,x"), "--horizons: expected comma-separated positive integers"),
    ],
)  # fmt: skip
def test_evaluate_bounds(forecaster, air_csv, cli, extra, expected):
    assert expected in cli("evaluate", forecaster, "--data", air_csv, *extra)


def test_translate_beam_is_refused_before_the_model_is_read(forecaster, cli):
    # the forecaster is no translation model: the bound is checked before it is even loaded
    line = cli("translate", forecaster, "hello", "--beam", 10**6)
    assert f"--beam 1000000: above the limit of {limits.MAX_BEAM}; raise it with --max-beam" in line
    line = cli("translate", forecaster, "hello", "--beam", 200, "--max-beam", 200)
    assert "expected a seq2seq model, got a forecaster model" in line  # past the bound


@pytest.mark.parametrize("threads", [0, -1, 100_000])
def test_threads_outside_the_usable_cores_are_refused(
    forecaster, history, air_csv, tmp_path, capsys, threads
):
    # in process (the same entry point as the `seqshape` script), so that 15 refusals stay fast
    expected = (
        f"error: ConfigError: --threads: expected 1 to {usable_cores()} (the cores this process "
        f"may use), got {threads}"
    )
    commands = [
        ("forecast", forecaster, "--history", history, "--horizon", 3, "--output", tmp_path / "f"),
        ("evaluate", forecaster, "--data", air_csv),
        ("predict", forecaster, "--data", air_csv, "--output", tmp_path / "p"),
        ("translate", forecaster, "hello"),
        ("export", forecaster),
        ("explain", "classify"),
        (
            "train",
            "forecast",
            "--data",
            air_csv,
            "--target",
            "#Passengers",
            "--out",
            tmp_path / "m",
        ),
    ]
    for args in commands:
        assert main([*map(str, args), "--threads", str(threads)]) == 2
        assert capsys.readouterr().err.strip() == expected
    assert list(tmp_path.iterdir()) == []


def test_refusing_a_huge_horizon_does_no_work(forecaster, history, tmp_path, capsys):
    t0 = time.perf_counter()
    args = ["forecast", str(forecaster), "--history", str(history), "--output", str(tmp_path / "f")]
    assert main([*args, "--horizon", "10000000"]) == 2
    seconds = time.perf_counter() - t0
    assert "--horizon 10000000: above the limit" in capsys.readouterr().err
    print(f"refused K=10^7 in process in {seconds * 1000:.1f} ms")


def test_limit_checks_in_process(monkeypatch):
    monkeypatch.delenv("SEQSHAPE_MAX_BEAM", raising=False)
    assert limits.check("--beam", 5, "beam") == 5
    assert limits.check("--beam", None, "beam") is None
    assert limits.check("--beam", 500, "beam", 500) == 500
    with pytest.raises(ConfigError, match="--beam 101: above the limit of 100"):
        limits.check("--beam", 101, "beam")
    monkeypatch.setenv("SEQSHAPE_MAX_BEAM", "200")
    assert limits.check("--beam", 200, "beam") == 200
    t0 = time.perf_counter()
    with pytest.raises(ConfigError):
        limits.check("--horizon", 10_000_000, "horizon")
    assert time.perf_counter() - t0 < 1.0  # a comparison, no work
    assert limits.check_threads(1) == 1
    for bad in (0, -1, 100_000, True):
        with pytest.raises(ConfigError, match="--threads: expected 1 to"):
            limits.check_threads(bad)
