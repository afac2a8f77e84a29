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
Loading trusts nothing it reads and never unpickles anything. Every file must be a regular file
(a FIFO or device is refused before it is read) and JSON files are capped in size and depth. The
config's field types are checked against its dataclass; the safetensors header (names, dtypes,
shapes, byte ranges) is checked against the file size, and the names and shapes the config implies
against the header, on the meta device, before the real network is allocated (`build_net`): a
config.json claiming ``hidden_size: 20000`` beside small weights costs no memory. The weights'
SHA-256 is recorded in config.json (``weights_sha256``) when saving and compared when loading.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import threading
import typing
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save_file

from .errors import ArtifactError
from .outfiles import file_digest as weights_digest
from .untrusted import MAX_JSON_BYTES, is_int, json_field, parse_json, read_regular_file

FORMAT = "seqshape-model"
FORMAT_VERSION = 1
REQUIRED = ("config.json", "model.safetensors", "preprocessing.json")
DIGEST_KEY = "weights_sha256"  # config.json: SHA-256 (hex) of model.safetensors
# bytes per element of the safetensors dtypes seqshape reads
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4}
DTYPE_BYTES |= {"U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


@dataclass
class ModelFiles:
    path: Path
    kind: str
    config: dict
    tensors: dict[str, torch.Tensor]
    preprocessing: dict
    metrics: dict
    extra: dict[str, dict] = field(default_factory=dict)
    weights_sha256: str = ""  # of model.safetensors as read
    recorded_sha256: str | None = None  # as config.json recorded it when saved (None: older dirs)


def _write_json(path: Path, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def _remove_dead_writers(target: Path) -> int:
    """Remove ``.NAME.tmp-PID-*`` siblings (files or directories) whose writer process is gone
    (killed mid-save); return how many. Every temporary thing seqshape writes beside a target is
    named by `writer_temp`, so this one sweep finds what any killed writer left."""
    removed = 0
    for d in target.parent.glob(f".{target.name}.tmp-*-*"):
        pid = d.name[len(f".{target.name}.tmp-") :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            if d.is_dir() and not d.is_symlink():
                shutil.rmtree(d, ignore_errors=True)
            else:
                d.unlink(missing_ok=True)
            removed += 1
        except PermissionError:  # alive, another user's
            pass
    return removed


def writer_temp(target: str | os.PathLike, *, directory: bool = False, suffix: str = "") -> Path:
    """A new temporary file (or directory) beside ``target``: ``.NAME.tmp-PID-XXXX<suffix>``.

    The writer's pid in the name lets the next writer of the same target remove what a killed one
    left (`_remove_dead_writers`, run here first). The caller renames it over ``target`` (os.replace)
    when complete, or removes it on failure."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_writers(target)
    prefix = f".{target.name}.tmp-{os.getpid()}-"
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=target.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(name)


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


def _umask() -> int:
    """The process umask (see `outfiles.umask`; imported here, as outfiles imports this module)."""
    from .outfiles import umask

    return umask()


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
    tmp = writer_temp(target, directory=True)
    try:
        # like any file a command writes: 0777/0666 less the umask (mkdtemp and safetensors
        # would leave 0700/0600)
        umask = _umask()
        os.chmod(tmp, 0o777 & ~umask)
        tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"kind": kind})
        os.chmod(tmp / "model.safetensors", 0o666 & ~umask)
        _fsync_file(tmp / "model.safetensors")
        head = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind}
        head[DIGEST_KEY] = weights_digest(tmp / "model.safetensors")
        _write_json(tmp / "config.json", {**head, "config": config})
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
    obj = parse_json(read_regular_file(path, what, MAX_JSON_BYTES), path)
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
    if not isinstance(found, str):
        raise ArtifactError(
            f"{root / 'config.json'}: field 'kind': expected a string, got {found!r}"
        )
    if kind is not None and found != kind:
        raise ArtifactError(f"{root}: expected a {kind} model, got a {found} model")
    if not isinstance(head.get("config"), dict):
        raise ArtifactError(f"{root / 'config.json'}: field 'config': expected an object")
    recorded = head.get(DIGEST_KEY)
    if recorded is not None and not (
        isinstance(recorded, str)
        and len(recorded) == 64
        and set(recorded) <= set("0123456789abcdef")
    ):
        raise ArtifactError(
            f"{root / 'config.json'}: field {DIGEST_KEY!r}: expected 64 lowercase hex digits, "
            f"got {recorded!r}"
        )
    weights = root / "model.safetensors"
    raw = read_regular_file(weights, "the weights")
    check_safetensors_header(raw, weights)
    try:
        tensors = load_safetensors_bytes(raw)
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as e:
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
        weights_sha256=hashlib.sha256(raw).hexdigest(),
        recorded_sha256=recorded,
    )


def model_kind(path: str | os.PathLike) -> str:
    """The ``kind`` recorded in a model directory's config.json."""
    root = Path(path)
    head = _read_json(root / "config.json", "the model configuration")
    if head.get("format") != FORMAT:
        raise ArtifactError(f"{root / 'config.json'}: not a seqshape model")
    return str(head.get("kind"))


def check_safetensors_header(raw: bytes, where: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The ``{name: (dtype, shape)}`` a safetensors file declares, each entry checked against the
    bytes there are: an 8-byte little-endian header length, the JSON header, then the data, every
    tensor's byte range inside it and as long as its dtype and shape say."""
    bad = f"{where}: unreadable or damaged"
    if len(raw) < 8:
        raise ArtifactError(f"{bad} (expected at least 8 bytes, got {len(raw)})")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ArtifactError(f"{bad} (the header claims {n} bytes, the file holds {len(raw) - 8})")
    header = parse_json(raw[8 : 8 + n], where)
    if not isinstance(header, dict):
        raise ArtifactError(f"{bad} (expected a JSON object as header)")
    size = len(raw) - 8 - n  # bytes of tensor data
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise ArtifactError(f"{bad} (tensor {name}: expected an object, got {entry!r})")
        dtype, shape, span = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
            raise ArtifactError(f"{bad} (tensor {name}: dtype {dtype!r} is not one seqshape reads)")
        if not (isinstance(shape, list) and all(is_int(d) and d >= 0 for d in shape)):
            raise ArtifactError(f"{bad} (tensor {name}: expected a list of sizes, got {shape!r})")
        if not (isinstance(span, list) and len(span) == 2 and all(is_int(o) for o in span)) or not (
            0 <= span[0] <= span[1] <= size
        ):
            raise ArtifactError(
                f"{bad} (tensor {name}: data offsets {span!r} outside the {size} bytes of data)"
            )
        if span[1] - span[0] != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise ArtifactError(
                f"{bad} (tensor {name}: {dtype} {shape} needs "
                f"{math.prod(shape) * DTYPE_BYTES[dtype]} bytes, its range holds {span[1] - span[0]})"
            )
        out[name] = (dtype, tuple(shape))
    return out


class _TooManyTensors(Exception):
    pass


def _build_on_meta(net_cls, config, files: ModelFiles, limit: int) -> torch.nn.Module:
    """``net_cls(config)`` on the meta device (shapes only, no memory), stopped once it has
    registered more than ``limit`` parameters (``num_layers: 100000`` would take minutes)."""
    me, count = threading.get_ident(), 0

    def count_one(module, name, param):
        nonlocal count
        if param is not None and threading.get_ident() == me:
            count += 1
            if count > limit:
                raise _TooManyTensors

    hook = torch.nn.modules.module.register_module_parameter_registration_hook(count_one)
    try:
        with torch.device("meta"):
            return net_cls(config)
    except _TooManyTensors:
        raise ArtifactError(
            f"{files.path / 'config.json'}: describes a network of more than {limit} parameter "
            f"tensors; {files.path / 'model.safetensors'} holds {len(files.tensors)}"
        ) from None
    except (RuntimeError, ValueError, OverflowError) as e:  # sizes beyond int64, negative sizes
        raise ArtifactError(
            f"{files.path / 'config.json'}: describes a network that cannot be built ({e})"
        ) from None
    finally:
        hook.remove()


def build_net(net_cls, config, files: ModelFiles, *, upgrade=None) -> torch.nn.Module:
    """``net_cls(config)`` holding the weights of ``files``, allocated only once the tensor names,
    shapes and dtypes that ``config`` implies match those of the file: they are compared on a copy
    built on the meta device first, so a config.json that lies about sizes costs no memory.
    ``upgrade`` maps the tensors of an older layout to the current one (run on meta copies first)."""
    # the file's tensors as shapes only (meta), in the current layout
    claimed = {
        k: torch.empty(t.shape, dtype=t.dtype, device="meta") for k, t in files.tensors.items()
    }
    if upgrade is not None:
        claimed = upgrade(claimed)
    shell = _build_on_meta(net_cls, config, files, limit=2 * len(claimed) + 8)
    _check_tensors(shell.state_dict(), claimed, files)
    del shell
    net = net_cls(config)
    tensors = upgrade(files.tensors) if upgrade is not None else files.tensors
    _load_tensors(net, tensors, files)
    return net


def _check_tensors(expected: dict, got: dict, files: ModelFiles) -> None:
    where = files.path / "model.safetensors"
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    if missing or unexpected:
        raise ArtifactError(
            f"{where}: tensors do not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for name, t in expected.items():
        if tuple(got[name].shape) != tuple(t.shape):
            raise ArtifactError(
                f"{where}: tensor {name}: expected shape {tuple(t.shape)}, "
                f"got {tuple(got[name].shape)} (config.json does not describe these weights)"
            )
        if got[name].dtype != t.dtype:
            raise ArtifactError(
                f"{where}: tensor {name}: expected dtype {str(t.dtype).removeprefix('torch.')}, "
                f"got {str(got[name].dtype).removeprefix('torch.')}"
            )


def _load_tensors(module: torch.nn.Module, tensors: dict, files: ModelFiles) -> None:
    where = files.path / "model.safetensors"
    _check_tensors(module.state_dict(), tensors, files)
    if files.recorded_sha256 is not None and files.recorded_sha256 != files.weights_sha256:
        raise ArtifactError(
            f"{where}: SHA-256 {files.weights_sha256[:16]}… differs from the one config.json "
            f"recorded when saving ({files.recorded_sha256[:16]}…): the weights were changed or "
            f"damaged since"
        )
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ArtifactError(f"{where}: tensor {name} holds NaN or inf")
    module.load_state_dict(tensors)


def load_weights(module: torch.nn.Module, files: ModelFiles) -> None:
    """Load ``files.tensors`` into ``module`` after checking names, shapes and the recorded digest
    (prefer `build_net`, which checks before ``module`` is allocated)."""
    _load_tensors(module, files.tensors, files)


def config_from_dict(cls, d: dict, where: Path):
    """Build a frozen config dataclass from JSON, turning bad fields into an ArtifactError: each
    value's JSON type is checked against the field's annotation first (``hidden_size: "8"``,
    ``true`` or ``8.0`` for an int field name the key, expected and got); a list becomes a tuple
    where the field is a tuple."""
    hints = typing.get_type_hints(cls)
    # unknown keys stay as they are: cls(**d) names them below
    d = {k: json_field(d, k, hints[k], where) if k in hints else v for k, v in d.items()}
    try:
        return cls(**d)
    except TypeError as e:
        raise ArtifactError(f"{where}: config does not fit {cls.__name__}: {e}") from None
    except ValueError as e:
        raise ArtifactError(f"{where}: invalid config: {e}") from None
