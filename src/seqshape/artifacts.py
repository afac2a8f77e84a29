"""Model directories: data, not code.

A model directory holds
    config.json          {"format": "seqshape-model", "format_version": 1, "kind": ..., "config": {...}}
    model.safetensors    the weights (safetensors: no pickle, no code)
    preprocessing.json   scalers, class names, vocabularies
    metrics.json         what training measured
and optionally further JSON files a mode needs. Writing is atomic: everything goes into a temporary
sibling directory which is renamed into place, so a crash never leaves a half-written model. An
existing model is swapped with the new one in one step (Linux ``renameat2(RENAME_EXCHANGE)``), so
even a SIGKILL leaves one of the two complete at the path; where the swap is not available, the old
directory is moved aside first and a load that finds nothing names where it went.
Loading verifies the files, the tensor names and shapes against the config (the caller builds the
module from the config and hands its state_dict here), and never unpickles anything.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import ArtifactError

FORMAT = "seqshape-model"
FORMAT_VERSION = 1
REQUIRED = ("config.json", "model.safetensors", "preprocessing.json")


@dataclass
class ModelFiles:
    path: Path
    kind: str
    config: dict
    tensors: dict[str, torch.Tensor]
    preprocessing: dict
    metrics: dict
    extra: dict[str, dict] = field(default_factory=dict)


def _write_json(path: Path, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def _remove_dead_writers(target: Path) -> None:
    """Remove ``.NAME.tmp-PID-*`` siblings whose writer process is gone (killed mid-save)."""
    for d in target.parent.glob(f".{target.name}.tmp-*-*"):
        pid = d.name[len(f".{target.name}.tmp-") :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing directories atomically (Linux renameat2 RENAME_EXCHANGE); False where the
    platform or file system cannot, in which case nothing has changed."""
    global _renameat2
    if _renameat2 is None:
        _renameat2 = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fn = libc.renameat2
                fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
                fn.argtypes += [ctypes.c_uint]
                fn.restype = ctypes.c_int
                _renameat2 = fn
            except (OSError, AttributeError):  # no libc symbol (musl before 1.2.5, old glibc)
                pass
    if not _renameat2:
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = _renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False  # the file system (or kernel) does not support the exchange
    raise OSError(err, f"renameat2({a}, {b}, RENAME_EXCHANGE): {os.strerror(err)}")


_renameat2 = None  # the libc function, False where unavailable, None until first asked


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_model_dir(
    path: str | os.PathLike,
    *,
    kind: str,
    config: dict,
    state_dict: dict[str, torch.Tensor],
    preprocessing: dict,
    metrics: dict | None = None,
    extra: dict[str, dict] | None = None,
) -> Path:
    """Write a model directory atomically; an existing directory at ``path`` is replaced."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_writers(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        _write_json(
            tmp / "config.json",
            {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "config": config},
        )
        tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"kind": kind})
        _fsync_file(tmp / "model.safetensors")
        _write_json(tmp / "preprocessing.json", preprocessing)
        _write_json(tmp / "metrics.json", metrics or {})
        for name, obj in (extra or {}).items():
            _write_json(tmp / name, obj)
        old = None
        if target.exists():
            if not (target / "config.json").exists() and any(target.iterdir()):
                raise ArtifactError(
                    f"{target}: exists and is not a seqshape model directory; refusing to replace it"
                )
            if _exchange(tmp, target):
                # one step: the new model is at target, the old one at tmp (removed below)
                shutil.rmtree(tmp, ignore_errors=True)
                return target
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            old.rmdir()
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _read_json(path: Path, what: str) -> dict:
    try:
        with open(path) as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing ({what})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def load_model_dir(path: str | os.PathLike, *, kind: str | None = None) -> ModelFiles:
    """Read and check a model directory; ``kind`` (if given) must match."""
    root = Path(path)
    if not root.is_dir():
        hint = ""
        if not root.exists() and root.parent.is_dir():
            # a save without the atomic swap, killed between its two renames, leaves the
            # previous model here (and the new one, complete, in a .tmp- sibling)
            aside = sorted(root.parent.glob(f".{root.name}.old-*"))
            if aside:
                hint = f"; a save was interrupted: the previous model is in {aside[-1]}"
        raise ArtifactError(f"{root}: not a model directory (expected {', '.join(REQUIRED)}){hint}")
    head = _read_json(root / "config.json", "the model configuration")
    if head.get("format") != FORMAT:
        raise ArtifactError(
            f"{root / 'config.json'}: not a seqshape model (format {head.get('format')!r})"
        )
    if head.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{root / 'config.json'}: format_version {head.get('format_version')!r} is not supported "
            f"(this seqshape reads {FORMAT_VERSION})"
        )
    found = head.get("kind")
    if kind is not None and found != kind:
        raise ArtifactError(f"{root}: expected a {kind} model, got a {found} model")
    if not isinstance(head.get("config"), dict):
        raise ArtifactError(f"{root / 'config.json'}: field 'config': expected an object")
    weights = root / "model.safetensors"
    if not weights.exists():
        raise ArtifactError(f"{weights}: missing (the weights)")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise ArtifactError(f"{weights}: unreadable or damaged ({e})") from None
    extra = {}
    for p in sorted(root.glob("*.json")):
        if p.name not in ("config.json", "preprocessing.json", "metrics.json"):
            extra[p.name] = _read_json(p, "extra model data")
    metrics_path = root / "metrics.json"
    return ModelFiles(
        path=root,
        kind=found,
        config=head["config"],
        tensors=tensors,
        preprocessing=_read_json(root / "preprocessing.json", "the preprocessing"),
        metrics=_read_json(metrics_path, "metrics") if metrics_path.exists() else {},
        extra=extra,
    )


def model_kind(path: str | os.PathLike) -> str:
    """The ``kind`` recorded in a model directory's config.json."""
    root = Path(path)
    head = _read_json(root / "config.json", "the model configuration")
    if head.get("format") != FORMAT:
        raise ArtifactError(f"{root / 'config.json'}: not a seqshape model")
    return str(head.get("kind"))


def load_weights(module: torch.nn.Module, files: ModelFiles) -> None:
    """Load ``files.tensors`` into ``module`` after checking names and shapes against it."""
    expected = module.state_dict()
    got = files.tensors
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    where = files.path / "model.safetensors"
    if missing or unexpected:
        raise ArtifactError(
            f"{where}: tensors do not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for name, t in expected.items():
        if tuple(got[name].shape) != tuple(t.shape):
            raise ArtifactError(
                f"{where}: tensor {name}: expected shape {tuple(t.shape)}, got {tuple(got[name].shape)}"
            )
        if got[name].dtype != t.dtype:
            raise ArtifactError(
                f"{where}: tensor {name}: expected dtype {str(t.dtype).removeprefix('torch.')}, "
                f"got {str(got[name].dtype).removeprefix('torch.')}"
            )
        if got[name].is_floating_point() and not torch.isfinite(got[name]).all():
            raise ArtifactError(f"{where}: tensor {name} holds NaN or inf")
    module.load_state_dict(got)


def config_from_dict(cls, d: dict, where: Path):
    """Build a frozen config dataclass from JSON, turning bad fields into an ArtifactError."""
    try:
        return cls(**d)
    except TypeError as e:
        raise ArtifactError(f"{where}: config does not fit {cls.__name__}: {e}") from None
    except ValueError as e:
        raise ArtifactError(f"{where}: invalid config: {e}") from None
