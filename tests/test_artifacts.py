"""Model directories are data, not code: damaged, tampered or foreign files give ArtifactError,
nothing is ever unpickled, and a write that fails half-way leaves the previous directory intact.

The model directory under test is a real one: a small SequenceClassifier fitted on an excerpt of
JapaneseVowels and saved by its own save().
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from seqshape import ArtifactError, SequenceClassifier, datasets
from seqshape import artifacts as art
from seqshape.models.classifier import ClassifierConfig, ClassifierNet


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    jv = datasets.load_japanese_vowels("train")
    clf = SequenceClassifier(hidden_size=8, epochs=1, val_fraction=0.0, seed=0)
    clf.fit(jv.X[::5], jv.y[::5])
    return clf.save(tmp_path_factory.mktemp("saved") / "model")


@pytest.fixture
def model_dir(saved, tmp_path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "model"))


def load(d: Path) -> SequenceClassifier:
    return SequenceClassifier.load(d)


def edit_json(path: Path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def split_safetensors(path: Path) -> tuple[dict, bytes]:
    """(header, data) of a safetensors file: 8-byte little-endian header length, JSON, bytes."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def write_safetensors(path: Path, header: dict, data: bytes) -> None:
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def test_a_saved_directory_loads_back_exactly(saved, model_dir):
    clf = load(model_dir)
    want = load_file(str(saved / "model.safetensors"))
    for name, t in clf.net.state_dict().items():
        assert torch.equal(t, want[name]), name
    assert clf.classes_.tolist() == [str(c) for c in range(1, 10)]


def test_the_header_rewrite_helper_is_faithful(model_dir):
    header, data = split_safetensors(model_dir / "model.safetensors")
    write_safetensors(model_dir / "model.safetensors", header, data)
    load(model_dir)  # the tampering tests below change one thing, not the encoding


# -- the weights file -----------------------------------------------------------------------------


@pytest.mark.parametrize("keep", ["nothing", "4 bytes", "half the header", "all but 1 byte"])
def test_a_truncated_weights_file_is_an_artifact_error(model_dir, keep):
    path = model_dir / "model.safetensors"
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    cut = {"nothing": 0, "4 bytes": 4, "half the header": 8 + n // 2, "all but 1 byte": -1}[keep]
    path.write_bytes(raw[:cut])
    with pytest.raises(ArtifactError, match=r"model\.safetensors: unreadable or damaged"):
        load(model_dir)


def test_a_missing_weights_file_is_an_artifact_error(model_dir):
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(ArtifactError, match=r"model\.safetensors: missing"):
        load(model_dir)


def test_a_header_claiming_other_shapes_of_the_same_size(model_dir):
    path = model_dir / "model.safetensors"
    header, data = split_safetensors(path)
    rows, cols = header["head.weight"]["shape"]
    header["head.weight"]["shape"] = [cols, rows]  # same bytes, transposed claim
    write_safetensors(path, header, data)
    with pytest.raises(
        ArtifactError, match=rf"tensor head\.weight: expected shape \({rows}, {cols}\), got"
    ):
        load(model_dir)


def test_a_header_claiming_more_data_than_the_file_holds(model_dir):
    path = model_dir / "model.safetensors"
    header, data = split_safetensors(path)
    rows, cols = header["head.weight"]["shape"]
    header["head.weight"]["shape"] = [rows, cols + 1]  # the byte range no longer fits the shape
    write_safetensors(path, header, data)
    with pytest.raises(ArtifactError, match=r"model\.safetensors: unreadable or damaged"):
        load(model_dir)


def test_renamed_or_missing_tensors_are_named(model_dir):
    path = model_dir / "model.safetensors"
    header, data = split_safetensors(path)
    header["head.weights"] = header.pop("head.weight")
    write_safetensors(path, header, data)
    with pytest.raises(
        ArtifactError, match=r"missing \['head\.weight'\], unexpected \['head\.weights'\]"
    ):
        load(model_dir)


def test_a_header_claiming_another_dtype_of_the_same_size(model_dir):
    path = model_dir / "model.safetensors"
    header, data = split_safetensors(path)
    header["head.weight"]["dtype"] = "I32"
    write_safetensors(path, header, data)
    with pytest.raises(ArtifactError, match="head.weight"):
        load(model_dir)


def test_nan_weights_are_refused(model_dir):
    clf = load(model_dir)
    state = clf.net.state_dict()
    state["head.bias"][0] = float("nan")
    art.save_model_dir(
        model_dir,
        kind="classifier",
        config=clf.config.to_dict(),
        state_dict=state,
        preprocessing=json.loads((model_dir / "preprocessing.json").read_text()),
    )
    with pytest.raises(ArtifactError, match=r"tensor head\.bias holds NaN or inf"):
        load(model_dir)


# -- config.json and the other JSON files ---------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.update(kind="tagger"), "expected a classifier model, got a tagger model"),
        (lambda c: c.update(format_version=2), "format_version 2 is not supported"),
        (lambda c: c.pop("format_version"), "format_version None is not supported"),
        (lambda c: c.update(format="pytorch"), "not a seqshape model"),
        (lambda c: c.update(config=[1, 2]), "field 'config': expected an object"),
        (lambda c: c["config"].update(pooling="max"), "invalid config: pooling: expected one of"),
        (lambda c: c["config"].update(heads=4), "config does not fit ClassifierConfig"),
        (lambda c: c["config"].pop("input_size"), "config does not fit ClassifierConfig"),
        (lambda c: c["config"].update(hidden_size=9), "expected shape"),
    ],
)
def test_a_wrong_config_json_is_an_artifact_error(model_dir, change, message):
    edit_json(model_dir / "config.json", change)
    with pytest.raises(ArtifactError, match=message):
        load(model_dir)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("config.json", b"\x00\xffgarbage", "config.json: not valid JSON"),
        ("config.json", b'{"format": "seqshape-model", ', "config.json: not valid JSON"),
        ("config.json", b"[1, 2, 3]", "config.json: expected a JSON object, got list"),
        ("preprocessing.json", b"not json", "preprocessing.json: not valid JSON"),
        ("preprocessing.json", b'{"classes": ["a"]}', r"classes: expected 9 names"),
        ("metrics.json", b"\x80\x04garbage", "metrics.json: not valid JSON"),
    ],
)
def test_garbage_json_files_are_artifact_errors(model_dir, name, content, message):
    (model_dir / name).write_bytes(content)
    with pytest.raises(ArtifactError, match=message):
        load(model_dir)


@pytest.mark.parametrize("name", ["config.json", "preprocessing.json"])
def test_a_missing_json_file_is_named(model_dir, name):
    (model_dir / name).unlink()
    with pytest.raises(ArtifactError, match=rf"{name}: missing"):
        load(model_dir)


def test_not_a_directory(tmp_path):
    with pytest.raises(ArtifactError, match="not a model directory"):
        load(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError, match="not a model directory"):
        load(tmp_path / "file")


# -- pickle never runs ----------------------------------------------------------------------------


class _Payload:
    """Unpickling this creates the file at ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_the_payload_would_run_if_unpickled(tmp_path):
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()  # the guard below is meaningful: unpickling it does create the file


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
@pytest.mark.parametrize("where", ["model.safetensors", "preprocessing.json", "config.json"])
def test_a_pickle_in_a_model_directory_never_executes(model_dir, tmp_path, how, where):
    marker = tmp_path / "ran"
    payload = {"head.weight": _Payload(marker), "w": torch.zeros(3)}
    if how == "pickle":
        (model_dir / where).write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, model_dir / where)
    with pytest.raises(ArtifactError, match=where.replace(".", r"\.")):
        load(model_dir)
    with pytest.raises(ArtifactError):
        art.load_model_dir(model_dir)
    assert not marker.exists()


# -- atomic writes --------------------------------------------------------------------------------


def listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_a_crash_while_writing_the_weights_keeps_the_previous_directory(model_dir, monkeypatch):
    before = {p.name: p.read_bytes() for p in model_dir.iterdir()}
    clf = load(model_dir)
    calls = []

    def crash_half_way(tensors, filename, metadata=None):
        calls.append(filename)
        Path(filename).write_bytes(b"half a file")
        raise OSError("No space left on device")

    monkeypatch.setattr(art, "save_file", crash_half_way)
    with pytest.raises(OSError, match="No space left"):
        clf.save(model_dir)
    assert calls, "the crash was never reached"
    assert {p.name: p.read_bytes() for p in model_dir.iterdir()} == before
    assert listing(model_dir.parent) == ["model"]
    load(model_dir)


def test_a_failure_after_the_weights_keeps_the_previous_directory(model_dir):
    before = {p.name: p.read_bytes() for p in model_dir.iterdir()}
    clf = load(model_dir)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        clf.save(model_dir, extra_metrics={"val_loss": float("nan")})  # metrics.json refuses NaN
    assert {p.name: p.read_bytes() for p in model_dir.iterdir()} == before
    assert listing(model_dir.parent) == ["model"]


def test_a_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    net = ClassifierNet(ClassifierConfig(input_size=12, num_outputs=9, hidden_size=8))

    def crash(tensors, filename, metadata=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(art, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        art.save_model_dir(
            tmp_path / "new", kind="classifier", config={}, state_dict=net.state_dict(),
            preprocessing={},
        )  # fmt: skip
    assert listing(tmp_path) == []


def test_a_foreign_directory_is_never_replaced(tmp_path):
    target = tmp_path / "photos"
    target.mkdir()
    (target / "holiday.jpg").write_bytes(b"\xff\xd8 not a model")
    net = ClassifierNet(ClassifierConfig(input_size=12, num_outputs=9, hidden_size=8))
    with pytest.raises(ArtifactError, match="not a seqshape model directory; refusing"):
        art.save_model_dir(
            target, kind="classifier", config={}, state_dict=net.state_dict(), preprocessing={}
        )
    assert listing(target) == ["holiday.jpg"]
    assert listing(tmp_path) == ["photos"]


def test_replacing_a_directory_leaves_no_temporary_siblings(model_dir):
    clf = load(model_dir)
    clf.net.state_dict()["head.bias"].add_(1.0)
    clf.save(model_dir)
    assert listing(model_dir.parent) == ["model"]
    np.testing.assert_array_equal(
        load(model_dir).net.head.bias.detach().numpy(), clf.net.head.bias.detach().numpy()
    )


# -- replacing a model under SIGKILL --------------------------------------------------------------


def test_the_exchange_swaps_two_directories_in_one_step(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_text("from a")
    (b / "y").write_text("from b")
    assert art._exchange(a, b), "renameat2(RENAME_EXCHANGE) is unavailable on this file system"
    assert listing(a) == ["y"] and listing(b) == ["x"]


SAVER = """
import sys, torch
from seqshape import artifacts as art
from seqshape.models.classifier import ClassifierConfig, ClassifierNet
net = ClassifierNet(ClassifierConfig(input_size=12, num_outputs=9, hidden_size=64))
i = 0
while True:
    with torch.no_grad():
        net.head.bias.fill_(float(i))
    art.save_model_dir(sys.argv[1], kind="classifier", config={"i": i},
                       state_dict=net.state_dict(), preprocessing={})
    i += 1
    if i == 3:
        print("saving", flush=True)
"""


def test_sigkill_while_replacing_never_leaves_the_path_without_a_complete_model(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    target = tmp_path / "m"
    rng = np.random.default_rng(0)
    env = {**os.environ, "SEQSHAPE_THREADS": "1"}
    for _ in range(4):
        p = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(target)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert p.stdout.readline().strip() == "saving"
        time.sleep(float(rng.uniform(0.0, 0.05)))
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        files = art.load_model_dir(target, kind="classifier")  # complete, whichever it is
        i = files.config["i"]
        assert torch.all(files.tensors["head.bias"] == float(i))
    # a killed writer's temporary directory is removed by the next save
    art.save_model_dir(
        target, kind="classifier", config={}, state_dict=files.tensors, preprocessing={}
    )
    assert listing(tmp_path) == ["m"]


def test_a_load_after_an_interrupted_fallback_save_names_the_previous_model(tmp_path, saved):
    # what the two-rename fallback leaves when killed between its renames
    aside = Path(shutil.copytree(saved, tmp_path / ".model.old-abc123"))
    with pytest.raises(ArtifactError, match=f"the previous model is in {aside}"):
        art.load_model_dir(tmp_path / "model")


# -- nothing is allocated or read before it is checked (issue 13) ----------------------------------


def test_a_config_claiming_a_huge_network_costs_no_memory(model_dir):
    """hidden_size 8000 beside 7 KB of weights: refused before the network exists. Measured in a
    fresh process (peak RSS is process-wide); the old loader reached 1.28 GB before its error."""
    edit_json(model_dir / "config.json", lambda c: c["config"].update(hidden_size=8000))
    code = (
        "import resource, sys, time\n"
        "from seqshape import ArtifactError, SequenceClassifier\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "start = time.perf_counter()\n"
        "try:\n"
        "    SequenceClassifier.load(sys.argv[1])\n"
        "except ArtifactError as e:\n"
        "    print(e)\n"
        "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(grown // 1024, time.perf_counter() - start)\n"
    )
    env = {**os.environ, "SEQSHAPE_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(model_dir)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    message, figures = out.stdout.strip().splitlines()
    # 4·H = 32000 rows; the LSTM reads the default conv front-end's 128 channels
    assert "model.safetensors: tensor" in message and "expected shape (32000, 128)" in message
    grown_mb, seconds = float(figures.split()[0]), float(figures.split()[1])
    assert grown_mb < 200, f"peak RSS grew {grown_mb} MB"
    assert seconds < 5, seconds


def test_a_config_claiming_100000_layers_is_refused_at_once(model_dir):
    edit_json(model_dir / "config.json", lambda c: c["config"].update(num_layers=100000))
    start = time.perf_counter()
    with pytest.raises(ArtifactError, match=r"config\.json: describes a network of more than"):
        load(model_dir)
    assert time.perf_counter() - start < 5  # the meta build alone would take minutes


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("hidden_size", True, "an integer, got true"),
        ("hidden_size", "8", "an integer, got string '8'"),
        ("hidden_size", 8.0, "an integer, got number 8.0"),
        ("hidden_size", None, "an integer, got null"),
        ("hidden_size", 2**63, "an integer, got integer"),
        ("num_layers", [1], "an integer, got list"),
        ("dropout", "0.1", "a number, got string"),
        ("bidirectional", 1, "true or false, got integer 1"),
        ("cell", 5, "a string, got integer 5"),
    ],
)
def test_config_field_types_are_checked_before_anything_is_built(model_dir, key, value, expected):
    edit_json(model_dir / "config.json", lambda c: c["config"].update({key: value}))
    with pytest.raises(ArtifactError, match=rf"config\.json: field '{key}': expected "):
        load(model_dir)
    with pytest.raises(ArtifactError) as e:
        load(model_dir)
    assert expected in str(e.value)


@pytest.fixture
def alarm():
    """Fail instead of hanging: SIGALRM after 5 s raises in the test."""

    def ring(signum, frame):
        raise TimeoutError("still blocked after 5 s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(5)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize(
    "name", ["config.json", "model.safetensors", "preprocessing.json", "metrics.json"]
)
def test_a_fifo_in_place_of_a_file_is_refused_without_blocking(model_dir, alarm, name):
    (model_dir / name).unlink()
    os.mkfifo(model_dir / name)
    with pytest.raises(ArtifactError, match=rf"{name}: expected a regular file .*got a FIFO"):
        load(model_dir)


@pytest.mark.parametrize("name", ["model.safetensors", "preprocessing.json", "extra.json"])
def test_a_directory_in_place_of_a_file_is_refused(model_dir, name):
    (model_dir / name).unlink(missing_ok=True)
    (model_dir / name).mkdir()
    with pytest.raises(ArtifactError, match=rf"{name}: expected a regular file .*got a directory"):
        load(model_dir)


@pytest.mark.parametrize("name", ["config.json", "preprocessing.json"])
def test_an_absurdly_large_json_file_is_refused_unread(model_dir, name):
    with open(model_dir / name, "r+b") as f:
        f.truncate(art.MAX_JSON_BYTES + 1)  # sparse: no disk, and it would cost no time to read
    with pytest.raises(
        ArtifactError, match=rf"{name}: expected at most {art.MAX_JSON_BYTES} bytes"
    ):
        load(model_dir)


@pytest.mark.parametrize("depth", [65, 100_000])
@pytest.mark.parametrize("name", ["config.json", "preprocessing.json", "metrics.json"])
def test_deeply_nested_json_is_an_artifact_error(model_dir, name, depth):
    (model_dir / name).write_text('{"a":' * depth + "1" + "}" * depth)
    with pytest.raises(ArtifactError, match=rf"{name}: .*nested"):
        load(model_dir)


@pytest.mark.parametrize("text", ["NaN", "-Infinity", "1e400", "1" * 30])
def test_json_numbers_that_no_writer_produces_are_refused(model_dir, text):
    edit_json(model_dir / "preprocessing.json", lambda p: p.update(x="HERE"))
    path = model_dir / "preprocessing.json"
    path.write_text(path.read_text().replace('"HERE"', text))
    with pytest.raises(ArtifactError, match=r"preprocessing\.json: not valid JSON"):
        load(model_dir)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p.update(classes="abcdefghi"), "classes: expected 9 names"),
        (lambda p: p.update(classes=[[1]] * 9), "classes: expected 9 names"),
        (lambda p: p["scaler"].update(mean="x"), "scaler.mean: expected a non-empty list"),
        (lambda p: p["scaler"].update(std=[1.0]), "expected as many std values"),
        (lambda p: p.update(scaler=[1]), "scaler: expected a dict, got list"),
    ],
)
def test_wrong_types_in_preprocessing_name_the_file_and_key(model_dir, change, message):
    edit_json(model_dir / "preprocessing.json", change)
    with pytest.raises(ArtifactError, match=rf"preprocessing\.json: .*{message}"):
        load(model_dir)


# -- the weights' digest --------------------------------------------------------------------------


def test_saving_records_the_weights_digest(model_dir):
    head = json.loads((model_dir / "config.json").read_text())
    want = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    assert head["weights_sha256"] == want


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_one_flipped_bit_in_the_weights_data_is_an_artifact_error(model_dir, where):
    path = model_dir / "model.safetensors"
    raw = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    i = {"first": 8 + n, "middle": (8 + n + len(raw)) // 2, "last": len(raw) - 1}[where]
    raw[i] ^= 0x01  # the lowest mantissa bit of one float: still finite, still the same shapes
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=r"model\.safetensors: SHA-256 .* differs from the one"):
        load(model_dir)


def test_a_directory_saved_before_the_digest_still_loads(saved, model_dir):
    edit_json(model_dir / "config.json", lambda c: c.pop("weights_sha256"))
    clf = load(model_dir)
    want = load_file(str(saved / "model.safetensors"))
    assert all(torch.equal(t, want[k]) for k, t in clf.net.state_dict().items())


@pytest.mark.parametrize("value", [None, 5, "abc", "A" * 64])
def test_a_malformed_digest_field_is_named(model_dir, value):
    edit_json(model_dir / "config.json", lambda c: c.update(weights_sha256=value))
    if value is None:  # null is "not recorded", as in older directories
        load(model_dir)
        return
    with pytest.raises(ArtifactError, match=r"config\.json: field 'weights_sha256': expected 64"):
        load(model_dir)


# -- file modes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "umask, dir_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)]
)
def test_a_model_directory_follows_the_umask(saved, tmp_path, umask, dir_mode, file_mode):
    clf = load(saved)
    old = os.umask(umask)
    try:
        out = clf.save(tmp_path / "m")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == dir_mode
    for p in out.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == file_mode, p.name
