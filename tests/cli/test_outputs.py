"""Output files follow the umask (0666 & ~umask, as any file a command writes), are written
atomically, and a path that cannot be used is one line naming it (exit 2), never a traceback."""

import csv
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from seqshape.errors import ConfigError, DataError
from seqshape.outfiles import atomic_output, check_input, check_output, file_mode, umask

from .conftest import seqshape


def one_error_line(p) -> str:
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_forecast_csv_follows_the_umask(forecaster, history, tmp_path, mask, mode):
    out = tmp_path / "sub" / "f.csv"
    seqshape(
        "forecast", forecaster, "--history", history, "--horizon", 4, "--output", out,
        preexec_fn=lambda: os.umask(mask),
    )  # fmt: skip
    assert out.stat().st_mode & 0o777 == mode
    with open(out) as f:
        assert len(list(csv.DictReader(f))) == 4
    assert sorted(p.name for p in out.parent.iterdir()) == ["f.csv"]  # no temp file left


def test_atomic_output_mode_and_cleanup(tmp_path):
    old = os.umask(0o027)
    try:
        assert umask() == 0o027 and file_mode() == 0o640
        target = tmp_path / "out.csv"
        with atomic_output(target) as f:
            f.write("a,b\n1,2\n")
        assert target.read_text() == "a,b\n1,2\n"
        assert target.stat().st_mode & 0o777 == 0o640
        # an error inside the block: the target keeps its old text, no temp file is left
        with pytest.raises(RuntimeError, match="boom"), atomic_output(target) as f:
            f.write("half")
            raise RuntimeError("boom")
        assert target.read_text() == "a,b\n1,2\n"
        assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    finally:
        os.umask(old)


def test_output_that_is_a_directory_is_one_line(forecaster, history, tmp_path):
    line = one_error_line(
        seqshape(
            "forecast", forecaster, "--history", history, "--horizon", 4, "--output", tmp_path,
            check=False,
        )
    )  # fmt: skip
    assert line == (
        f"error: ConfigError: --output {tmp_path}: is a directory; expected a file name "
        f"(e.g. {tmp_path}/out.csv)"
    )


def test_output_under_a_file_is_one_line(forecaster, history, tmp_path):
    (tmp_path / "somefile").write_text("x")
    out = tmp_path / "somefile" / "out.csv"
    line = one_error_line(
        seqshape(
            "forecast", forecaster, "--history", history, "--horizon", 4, "--output", out,
            check=False,
        )
    )  # fmt: skip
    assert line == (
        f"error: ConfigError: --output {out}: cannot write it "
        f"({tmp_path / 'somefile'} is a file, not a directory)"
    )
    assert (tmp_path / "somefile").read_text() == "x"


def test_input_that_is_a_directory_is_one_line(forecaster, tmp_path):
    line = one_error_line(
        seqshape(
            "forecast", forecaster, "--history", tmp_path, "--horizon", 4,
            "--output", tmp_path / "f.csv", check=False,
        )
    )  # fmt: skip
    assert str(tmp_path) in line and "directory" in line
    line = one_error_line(seqshape("evaluate", forecaster, "--data", tmp_path, check=False))
    assert str(tmp_path) in line and "directory" in line


def test_checks_in_process(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"--plot .*: is a directory"):
        check_output(tmp_path, "--plot")
    with pytest.raises(ConfigError, match=r"is a file, not a directory"):
        check_output(tmp_path / "f" / "a" / "b.csv")
    assert check_output(tmp_path / "new" / "deeper" / "b.csv") == tmp_path / "new/deeper/b.csv"
    with pytest.raises(DataError, match=r"--data .*missing.csv: no such file"):
        check_input(tmp_path / "missing.csv")
    with pytest.raises(DataError, match=r"is a directory; expected a file"):
        check_input(tmp_path)
    with pytest.raises(ConfigError, match=r"cannot write it"):
        with atomic_output(tmp_path / "f" / "x.csv"):
            pass


def _main_as_nobody(argv: list[str], cwd: Path) -> tuple[int, str]:
    """``seqshape argv`` through `main` in a forked child that has dropped to user nobody (65534):
    permissions then apply as they would to a service account. Forked rather than started anew,
    so the child needs no read access to the checkout or the virtual environment (a fresh clone
    under a 0700 temporary directory is unreadable to nobody). Returns (exit code, stderr)."""
    import contextlib
    import io
    import json

    from seqshape.cli import main

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.chdir(cwd)
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                rc = main(argv)
            os.write(w, json.dumps([rc, err.getvalue()]).encode())
        except BaseException as e:  # noqa: BLE001 - anything the child met goes to the parent
            os.write(w, json.dumps([99, f"{type(e).__name__}: {e}"]).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    rc, err = json.loads(data)
    return rc, err


def _one_line(rc: int, err: str) -> str:
    assert rc == 2, (rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def shared_tmp():
    """A directory another user can reach (pytest's own base directory is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="seqshape-outputs-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")
def test_read_only_directory_and_unreadable_input_as_another_user(forecaster, history, shared_tmp):
    from seqshape.cli import main

    work = shared_tmp / "w"
    work.mkdir()
    shutil.copytree(forecaster, work / "model")
    shutil.copy(history, work / "history.csv")
    (work / "ro").mkdir()
    for p in [work, work / "model", *(work / "model").iterdir(), work / "history.csv"]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    (work / "ro").chmod(0o555)
    cmd = ["forecast", str(work / "model"), "--horizon", "3", "--history"]
    # the same command once as root, so every module it needs is loaded before the fork
    assert main([*cmd, str(work / "history.csv"), "--output", str(shared_tmp / "warm.csv")]) == 0
    cmd.append("history.csv")  # the child runs in `work`
    line = _one_line(*_main_as_nobody([*cmd, "--output", "ro/f.csv"], work))
    assert (
        line == "error: ConfigError: --output ro/f.csv: cannot write it (permission denied in ro)"
    )
    assert list((work / "ro").iterdir()) == []
    (work / "history.csv").chmod(0o600)
    line = _one_line(*_main_as_nobody([*cmd, "--output", "f.csv"], work))
    assert "history.csv" in line and ("not readable" in line or "permission denied" in line)
