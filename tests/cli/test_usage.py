"""Usage errors: every command answers a typo, a missing option, a bad value and an unreadable
path with one line on stderr and exit code 2 (never a traceback), and `seqshape --version` and a
bare `seqshape` work. The command tree is walked, so a new command is covered when it is added."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from typer.main import get_command

from seqshape.cli import app, main


def _leaves(cmd, path=()):
    subs = getattr(cmd, "commands", None)
    if subs:
        for name, sub in sorted(subs.items()):
            yield from _leaves(sub, (*path, name))
    else:
        yield path, cmd


LEAVES = list(_leaves(get_command(app)))
IDS = [" ".join(p) for p, _ in LEAVES]


def _type(param):
    """The Python type a parameter is declared with, ``X | None`` read as ``X``."""
    t = param.type_descriptor.annotation
    args = [a for a in typing.get_args(t) if a is not type(None)]
    return args[0] if len(args) == 1 else t


def _required_args(cmd, missing_path: str, skip: str | None = None) -> list[str]:
    """Plausible values for every required parameter: paths point at ``missing_path``."""
    args: list[str] = []
    for p in cmd.params:
        if not p.required or p.name == skip:
            continue
        t = _type(p)
        value = "1" if t in (int, float) else missing_path if t is Path else "x"
        if p.param_type_name == "argument":
            args.append(value)
        else:
            args += [p.opts[0], value]
    return args


def _run(argv, capsys):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert "Traceback" not in err
    return lines[0]


def test_the_tree_has_every_command():
    names = set(IDS)
    for expected in ("train classify", "train forecast", "evaluate", "predict", "forecast"):
        assert expected in names
    assert len(LEAVES) >= 15


@pytest.mark.parametrize("path,cmd", LEAVES, ids=IDS)
def test_unknown_option(path, cmd, capsys, tmp_path):
    argv = [*path, *_required_args(cmd, str(tmp_path / "nope")), "--no-such-flag"]
    rc, _, err = _run(argv, capsys)
    assert rc == 2
    line = _one_line(err)
    assert "No such option: --no-such-flag" in line
    assert " ".join(path) in line  # names the command


def _where(pred):
    """The leaves a check applies to (e.g. `demo` has no required option to leave out)."""
    chosen = [(p, c) for p, c in LEAVES if pred(c)]
    return pytest.mark.parametrize("path,cmd", chosen, ids=[" ".join(p) for p, _ in chosen])


@_where(lambda c: any(p.required for p in c.params))
def test_missing_required_option(path, cmd, capsys, tmp_path):
    options = [p for p in cmd.params if p.required and p.param_type_name == "option"]
    arguments = [p for p in cmd.params if p.required and p.param_type_name == "argument"]
    victim = (options or arguments)[0]
    argv = [*path, *_required_args(cmd, str(tmp_path / "nope"), skip=victim.name)]
    rc, _, err = _run(argv, capsys)
    assert rc == 2
    line = _one_line(err)
    assert "Missing" in line
    if options:
        assert victim.opts[0] in line


def _numeric(cmd):
    return [p for p in cmd.params if p.param_type_name == "option" and _type(p) in (int, float)]


@_where(lambda c: bool(_numeric(c)))
def test_bad_value(path, cmd, capsys, tmp_path):
    numeric = _numeric(cmd)
    opt = numeric[0].opts[0]
    argv = [*path, *_required_args(cmd, str(tmp_path / "nope")), opt, "abc"]
    rc, _, err = _run(argv, capsys)
    assert rc == 2
    line = _one_line(err)
    assert opt in line and "abc" in line or "Invalid value" in line


@_where(lambda c: any(_type(p) is Path for p in c.params if p.required))
def test_unreadable_path(path, cmd, capsys, tmp_path):
    """Every required path names a file that does not exist: exit 2, one line naming it."""
    missing = tmp_path / "no-such-file"
    before = sorted(os.listdir(tmp_path))
    rc, _, err = _run([*path, *_required_args(cmd, str(missing))], capsys)
    assert rc == 2
    line = _one_line(err)
    assert "no-such-file" in line
    assert sorted(os.listdir(tmp_path)) == before  # nothing written beside it


def test_version_and_bare_command(capsys):
    from importlib.metadata import version

    rc, out, _ = _run(["--version"], capsys)
    assert rc == 0 and out.strip() == f"seqshape {version('seqshape')}"
    rc, out, _ = _run([], capsys)
    assert rc == 0 and "Usage" in out and "train" in out


def test_misspelt_command_suggests(capsys):
    rc, _, err = _run(["trian"], capsys)
    assert rc == 2
    assert "train" in _one_line(err)


def test_typo_suggests_the_closest_option(capsys, tmp_path):
    rc, _, err = _run(["train", "classify", "--epoch", "1"], capsys)
    assert rc == 2
    assert "did you mean --epochs?" in _one_line(err)


def _console_script() -> str:
    exe = Path(sys.executable).with_name("seqshape")
    return str(exe) if exe.exists() else shutil.which("seqshape") or "seqshape"


@pytest.mark.parametrize(
    "argv,rc,needle",
    [
        (["--version"], 0, "seqshape "),
        (["train", "classify", "--epoch", "1"], 2, "did you mean --epochs?"),
        (["train", "forecast", "--data", "x.csv"], 2, "Missing option"),
        (["evaluate", "no-such-model", "--data", "x"], 2, "--data x: no such file"),
    ],
)
def test_installed_console_script(argv, rc, needle, tmp_path):
    """The entry point pip installed, in a fresh process, exactly as a user types it."""
    p = subprocess.run(
        [_console_script(), *argv], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert p.returncode == rc, p.stderr
    text = p.stdout if rc == 0 else p.stderr
    assert needle in text
    if rc:
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_help_keeps_brackets_shows_choices_and_the_estimators_defaults(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["detect", "--help"]) == 0
    assert "[[start, end], ...]" in capsys.readouterr().out
    from seqshape.api.forecaster import Forecaster

    assert main(["train", "forecast", "--help"]) == 0
    out = capsys.readouterr().out
    assert "<mse|mae|gaussian|student_t|quantile|poisson|negbin>" in out and "<lstm|gru>" in out
    # the flag's default is the estimator's, read from its signature
    epochs = inspect.signature(Forecaster).parameters["epochs"].default
    line = next(ln for ln in out.splitlines() if "--epochs" in ln)
    assert f"[default: ({epochs})]" in line


def test_a_bad_choice_is_one_line(capsys):
    rc, _, err = _run(["train", "forecast", "--data", "x.csv", "--loss", "msee"], capsys)
    assert rc == 2 and "'msee' is not one of 'mse'" in _one_line(err)
