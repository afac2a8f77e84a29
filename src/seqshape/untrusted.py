"""Reading what a user hands over: regular files only, JSON capped in size and depth, and JSON
values checked against type annotations before anything is built from them.

Every message names the file (and key), what was expected and what came. Nothing here executes or
unpickles anything; a FIFO, device or socket is refused before it is read, so a read never blocks.
"""

from __future__ import annotations

import json
import math
import os
import stat
import types
import typing
from pathlib import Path

from .errors import ArtifactError

MAX_JSON_BYTES = 16 * 2**20  # a JSON file larger than this is refused
MAX_JSON_DEPTH = 64  # deeper nesting is refused (the files seqshape writes nest 5 levels at most)
INT64 = 2**63  # integers outside [-INT64, INT64) fit no tensor size or count


def read_regular_file(path: Path, what: str, limit: int | None = None) -> bytes:
    """The bytes of a regular file, refusing anything else (a FIFO would block a read forever, a
    device never ends) before reading, and files over ``limit`` bytes."""
    try:
        # O_NONBLOCK: opening a FIFO without a writer returns at once (regular files ignore it)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing ({what})") from None
    except OSError as e:
        raise ArtifactError(f"{path}: cannot be opened ({what}): {e.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "directory" if stat.S_ISDIR(st.st_mode) else "FIFO, device or socket"
        raise ArtifactError(f"{path}: expected a regular file ({what}), got a {kind}")
    with os.fdopen(fd, "rb") as f:
        if limit is not None and st.st_size > limit:
            raise ArtifactError(
                f"{path}: expected at most {limit} bytes ({what}), got {st.st_size}"
            )
        raw = f.read() if limit is None else f.read(limit + 1)
    if limit is not None and len(raw) > limit:  # grew while read
        raise ArtifactError(f"{path}: expected at most {limit} bytes ({what}), got more")
    return raw


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _bounded_int(text: str) -> int:
    """JSON integers beyond 64 bits never come from seqshape (and overflow a float later)."""
    if len(text.lstrip("-")) > 20 or abs(int(text)) >= 2**64:
        raise ValueError(f"integer {text[:24]}{'...' if len(text) > 24 else ''} is out of range")
    return int(text)


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise ValueError(f"{text} overflows a float")
    return x


def _json_depth(obj) -> int:
    """How deep containers nest in ``obj`` (iterative: no recursion to exhaust)."""
    deepest, todo = 0, [(obj, 1)]
    while todo:
        o, d = todo.pop()
        if isinstance(o, dict | list):
            deepest = max(deepest, d)
            if d <= MAX_JSON_DEPTH:
                todo.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return deepest


def parse_json(raw: bytes, where: Path):
    """JSON text -> object; anything but strict JSON of sane depth is an ArtifactError."""
    try:
        obj = json.loads(
            raw.decode("utf-8"),
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except RecursionError:
        raise ArtifactError(f"{where}: not valid JSON (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, NaN, 5000-digit ints
        raise ArtifactError(f"{where}: not valid JSON ({e})") from None
    if _json_depth(obj) > MAX_JSON_DEPTH:
        raise ArtifactError(f"{where}: expected JSON nested at most {MAX_JSON_DEPTH} levels deep")
    return obj


def is_int(v) -> bool:
    """An integer (not a boolean) that fits int64."""
    return isinstance(v, int) and not isinstance(v, bool) and -INT64 <= v < INT64


def fits(value, hint) -> tuple[bool, object]:
    """(whether a JSON value fits a field annotation, the value as the field takes it)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return True, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return is_int(value), value
    if hint is float:  # an integer is a number too (JSON writes 0.0 as 0 at times)
        ok = (isinstance(value, float) and math.isfinite(value)) or (
            is_int(value) and abs(value) <= 2**53
        )
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if hint is type(None):
        return value is None, value
    if hint in (list, dict):
        return isinstance(value, hint), value
    if origin is dict:
        return isinstance(value, dict), value
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            ok, v = fits(value, arm)
            if ok:
                return True, v
        return False, value
    if origin is typing.Literal:
        return value in args and not isinstance(value, bool), value
    if origin in (tuple, list) and isinstance(value, list | tuple):
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            arms = [args[0]] * len(value)
        elif origin is tuple:
            if len(args) != len(value):
                return False, value
            arms = list(args)
        else:
            arms = [args[0] if args else typing.Any] * len(value)
        out = []
        for v, arm in zip(value, arms):
            ok, v = fits(v, arm)
            if not ok:
                return False, value
            out.append(v)
        return True, tuple(out) if origin is tuple else out
    if origin in (tuple, list):
        return False, value
    return True, value  # an annotation this check does not know: the dataclass decides


def describe(hint) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    if hint is type(None):
        return "null"
    if hint is list or hint is dict:
        return {list: "a list", dict: "an object"}[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is dict:
        return "an object"
    if origin in (tuple, list):
        return f"a list of {describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    return str(hint)


def shown(value) -> str:
    """A JSON value for a message: its JSON type and (shortened) text, ``null``, ``true``."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    kinds = ((int, "integer"), (float, "number"), (str, "string"), (list, "list"), (dict, "object"))
    name = next((n for t, n in kinds if isinstance(value, t)), type(value).__name__)
    text = repr(value)
    return f"{name} {text if len(text) <= 60 else text[:57] + '...'}"


def json_field(obj: dict, key: str, hint, where: Path, default=None):
    """``obj[key]`` (``default`` when absent) checked against the annotation ``hint``
    (``int``, ``list[str]``, ``dict | None``, ...): an ArtifactError names ``where``, the key, what
    was expected and what came."""
    if key not in obj:
        return default
    ok, value = fits(obj[key], hint)
    if not ok:
        raise ArtifactError(
            f"{where}: field {key!r}: expected {describe(hint)}, got {shown(value)}"
        )
    return value
