"""Output files a command writes (CSV, JSON, ONNX parts), and the paths it reads, checked up front.

One writer, `atomic_output`: the text goes to a temp file named with the process id in the same
directory (`artifacts.writer_temp`: ``.NAME.tmp-PID-XXXX``, which the next writer of NAME removes if
this process is killed), is fsynced, given the mode the umask gives any new file (`file_mode`:
0644 under umask 022, where `tempfile.mkstemp` alone leaves 0600), and replaces the target in one
`os.replace`; on any error the temp file is removed and the target is left as it was. Writers that
make their temp files by other means (ONNX export) call `file_mode` before their `os.replace`.

A path that cannot be used (a directory named as the output file, a file where a directory
should be, no permission) is a `SeqshapeError` naming the option and the path, one line in the
CLI (exit 2), raised before any work where the check can be made up front (`check_output`,
`check_input`), else when the file is opened.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import ConfigError, DataError


def umask() -> int:
    """This process's umask, read without changing it where Linux shows it (/proc/self/status);
    elsewhere set and restored at once."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # pragma: no cover - not Linux
    os.umask(old)  # pragma: no cover
    return old  # pragma: no cover


def file_mode() -> int:
    """The mode a new file gets under the current umask: 0o666 & ~umask."""
    return 0o666 & ~umask()


def _reason(e: OSError) -> str:
    return {
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EROFS: "read-only file system",
        errno.EISDIR: "is a directory",
        errno.ENOTDIR: "a part of the path is a file, not a directory",
        errno.ENOSPC: "no space left on the device",
        errno.EEXIST: "a part of the path is a file, not a directory",
    }.get(e.errno, e.strerror or str(e))


def output_error(path: Path, flag: str, e: OSError) -> ConfigError:
    """``e`` raised while writing ``path`` (given by ``flag``) as a one-line ConfigError."""
    where = f"{flag} {path}" if flag else str(path)
    return ConfigError(f"{where}: cannot write it ({_reason(e)})")


def check_output(path: str | os.PathLike, flag: str = "--output") -> Path:
    """Refuse an output path that cannot be written, before any work is done: a directory, a
    path under a file, a missing directory that cannot be made, a directory without write
    permission. Returns the path."""
    path = Path(path)
    where = f"{flag} {path}" if flag else str(path)
    if path.is_dir():
        raise ConfigError(f"{where}: is a directory; expected a file name (e.g. {path}/out.csv)")
    parent = path.parent
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{where}: cannot write it ({parent} is a file, not a directory)")
    if parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: cannot write it (permission denied in {parent})")
    return path


def check_input(path: str | os.PathLike, flag: str = "--data") -> Path:
    """Refuse an input path that cannot be read, before any work: missing, a directory, no read
    permission. Returns the path."""
    path = Path(path)
    where = f"{flag} {path}" if flag else str(path)
    try:
        path.stat()
    except FileNotFoundError:
        raise DataError(f"{where}: no such file") from None
    except OSError as e:
        raise DataError(f"{where}: cannot read it ({_reason(e)})") from None
    if path.is_dir():
        raise DataError(f"{where}: is a directory; expected a file")
    if not os.access(path, os.R_OK):
        raise DataError(f"{where}: cannot read it (permission denied)")
    return path


@contextmanager
def atomic_output(
    path: str | os.PathLike,
    *,
    flag: str = "--output",
    binary: bool = False,
    newline: str | None = "",
) -> Iterator[IO]:
    """Open ``path`` for writing through a temp file that replaces it only if the block ends
    without an error (text, UTF-8, ``newline=""`` for the csv module, unless ``binary``).

    The file gets 0o666 & ~umask, like any file a command writes. OS errors on the file itself
    are ConfigErrors naming ``flag`` and the path; errors raised by the block pass unchanged.
    """
    path = Path(path)
    check_output(path, flag)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(path, flag, e) from None
    from .artifacts import writer_temp

    try:
        # .NAME.tmp-PID-XXXX beside the target (a killed writer's is removed by the next one),
        # created 0600 by mkstemp: given the umask's mode before it takes the target's place
        tmp = writer_temp(path)
        fd = os.open(tmp, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise output_error(path, flag, e) from None
    done = False
    try:
        if binary:
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding="utf-8", newline=newline)
        with f:
            yield f
            try:
                f.flush()
                os.fsync(f.fileno())
            except OSError as e:
                raise output_error(path, flag, e) from None
        try:
            os.chmod(tmp, file_mode())
            os.replace(tmp, path)
        except OSError as e:
            raise output_error(path, flag, e) from None
        done = True
    finally:
        if not done:
            tmp.unlink(missing_ok=True)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB blocks: ties a model directory's config and an
    exported graph to the weights they came from."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
