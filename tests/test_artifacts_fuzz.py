"""Tampered model directories: every one loads or raises a SeqshapeError, never another exception
and never a hang.

From one real model directory per kind (trained here in about a second), a few hundred tampered
copies are made with a fixed seed: keys deleted, values swapped for booleans, strings, nulls, huge
or negative numbers, lists and objects; JSON nested 70 to 100000 levels deep, NaN, non-UTF-8
bytes, empty and oversized files; weights truncated, bytes flipped in the header or the data;
directories, FIFOs and missing files in place of files. Each is loaded through the public load
path (the estimator's ``load``, which the CLI and server call) under a per-case alarm; a directory
that loads is also asked for one prediction.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import signal
import struct
import time
import traceback
from pathlib import Path

import numpy as np
import pytest

from seqshape import SequenceClassifier, datasets
from seqshape.anomaly.detector import AnomalyDetector, DetectorConfig
from seqshape.anomaly.nab import load_corpus
from seqshape.api.forecaster import Forecaster, SeriesData
from seqshape.data.series import read_series_csv
from seqshape.errors import SeqshapeError

CASES = int(os.environ.get("SEQSHAPE_FUZZ_CASES", "300"))  # per kind
SECONDS = 5.0  # per case: loading these tiny directories takes milliseconds

BAD_VALUES = [True, False, None, "", "8", "lstm", 8.5, -1, 0, 1, 8000, 100000, 2**63, -(2**63)]
BAD_VALUES += [10**30, 10**400, [], {}, [1, "a"], [None], {"a": 1}, [[1.0]], 1e308, -0.0]


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang


# -- the tampering -------------------------------------------------------------------------------


def _paths(obj, prefix=()):
    """Every path into a JSON value (keys and list indices), the root first."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:4]):
            yield from _paths(v, prefix + (i,))


def _edit_json(path: Path, rng: random.Random) -> str:
    obj = json.loads(path.read_text())
    paths = [p for p in _paths(obj) if p]
    if not paths:
        return "nothing to edit"
    where = rng.choice(paths)
    parent = obj
    for k in where[:-1]:
        parent = parent[k]
    if isinstance(parent, dict) and rng.random() < 0.3:
        del parent[where[-1]]
        what = "deleted"
    else:
        value = copy.deepcopy(rng.choice(BAD_VALUES))
        parent[where[-1]] = value
        what = f"= {value!r}"
    path.write_text(json.dumps(obj))
    return f"{'/'.join(map(str, where))} {what}"


def _edit_config_field(d: Path, rng: random.Random) -> str:
    path = d / "config.json"
    obj = json.loads(path.read_text())
    key = rng.choice(sorted(obj["config"]))
    value = copy.deepcopy(rng.choice(BAD_VALUES))
    obj["config"][key] = value
    path.write_text(json.dumps(obj))
    return f"config/{key} = {value!r}"


def _deep(depth: int) -> bytes:
    return (
        ("[" * depth + "]" * depth).encode()
        if depth % 2
        else ('{"a":' * depth + "1" + "}" * depth).encode()
    )


def tamper(d: Path, rng: random.Random) -> str:
    """Change one thing in the model directory ``d``; say what."""
    names = sorted(p.name for p in d.iterdir())
    jsons = [n for n in names if n.endswith(".json")]
    op = rng.choice(
        ["json"] * 6
        + ["config"] * 6
        + ["flip", "flip-data", "truncate", "header"] * 2
        + ["deep", "nan", "bytes", "empty", "huge", "dir", "fifo", "missing"]
    )
    if op == "json":
        name = rng.choice(jsons)
        return f"{name}: {_edit_json(d / name, rng)}"
    if op == "config":
        return _edit_config_field(d, rng)
    weights = d / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    if op in ("flip", "flip-data"):
        i = rng.randrange(8 + n if op == "flip-data" else 0, len(raw))
        raw[i] ^= 1 << rng.randrange(8)
        weights.write_bytes(bytes(raw))
        return f"weights: bit flipped in byte {i}"
    if op == "truncate":
        cut = rng.randrange(len(raw))
        weights.write_bytes(bytes(raw[:cut]))
        return f"weights: cut to {cut} bytes"
    if op == "header":
        header = json.loads(raw[8 : 8 + n])
        name = rng.choice(sorted(k for k in header if k != "__metadata__"))
        field = rng.choice(["dtype", "shape", "data_offsets"])
        value = rng.choice(BAD_VALUES + [[10**6, 10**6], [2**62, 4], [0, 2**40], "F64", "I64"])
        header[name][field] = value
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        weights.write_bytes(struct.pack("<Q", len(text)) + text + bytes(raw[8 + n :]))
        return f"weights header: {name}.{field} = {value!r}"
    name = rng.choice(names)
    path = d / name
    if op == "deep":
        depth = rng.choice([65, 70, 999, 1001, 100_000])
        path.write_bytes(_deep(depth))
        return f"{name}: nested {depth} deep"
    if op == "nan":
        path.write_bytes(b'{"config": NaN, "classes": [Infinity], "x": -Infinity}')
        return f"{name}: NaN and Infinity"
    if op == "bytes":
        path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))))
        return f"{name}: random bytes"
    if op == "empty":
        path.write_bytes(b"")
        return f"{name}: empty"
    if op == "huge":  # sparse: costs no disk
        with open(path, "r+b") as f:
            f.truncate(17 * 2**20)
        return f"{name}: 17 MiB"
    path.unlink()
    if op == "dir":
        path.mkdir()
        return f"{name}: a directory"
    if op == "fifo":
        os.mkfifo(path)
        return f"{name}: a FIFO"
    return f"{name}: missing"


def run_cases(base: Path, work: Path, load, use, n: int, seed: int) -> tuple[list[str], dict]:
    """Tamper ``n`` copies of ``base``; return the failures (not a SeqshapeError, or a hang) and
    counts of what happened."""
    rng = random.Random(seed)
    failures, counts = [], {"loaded": 0, "refused": 0}
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for i in range(n):
            d = work / f"case{i}"
            shutil.copytree(base, d)
            what = tamper(d, rng)
            start = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, SECONDS)
            try:
                use(load(d))
                counts["loaded"] += 1
            except SeqshapeError:
                counts["refused"] += 1
            except Hang:
                failures.append(f"case {i} ({what}): still running after {SECONDS} s")
            except BaseException as e:  # noqa: BLE001 - what we are looking for
                tb = traceback.extract_tb(e.__traceback__)[-1]
                failures.append(
                    f"case {i} ({what}): {type(e).__name__}: {str(e)[:150]} "
                    f"at {Path(tb.filename).name}:{tb.lineno}"
                )
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            took = time.perf_counter() - start
            if took > SECONDS:
                failures.append(f"case {i} ({what}): took {took:.1f} s")
            shutil.rmtree(d)
    finally:
        signal.signal(signal.SIGALRM, old)
    return failures, counts


# -- one real model directory per kind -----------------------------------------------------------


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory) -> Path:
    jv = datasets.load_japanese_vowels("train")
    clf = SequenceClassifier(hidden_size=8, epochs=1, val_fraction=0.0, seed=0)
    clf.fit(jv.X[::10], jv.y[::10])
    return clf.save(tmp_path_factory.mktemp("fuzz") / "classifier")


@pytest.fixture(scope="module")
def air() -> SeriesData:
    f = read_series_csv(
        datasets.path("AirPassengers.csv"), target="#Passengers", future_covariates="auto"
    )
    return SeriesData(target=f.target[0], future_cov=f.future_cov[0], name="air")


@pytest.fixture(scope="module")
def forecaster_dir(tmp_path_factory, air) -> Path:
    fc = Forecaster(
        lookback=12, horizon=3, hidden_size=8, num_layers=1, epochs=1, highway=2, seed=0
    ).fit(air, train_end=108, val_end=126)
    return fc.save(tmp_path_factory.mktemp("fuzz") / "forecaster")


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory, shared_data) -> Path:
    corpus = load_corpus(shared_data / "anomaly" / "nab")
    s = next(s for s in corpus if s.name == "speed_7578.csv")
    det = AnomalyDetector(DetectorConfig(hidden_size=8, epochs=1, chunk=16))
    det.fit(s.values[:169], s.timestamps[:169])
    return det.save(tmp_path_factory.mktemp("fuzz") / "detector")


def _check(base: Path, tmp_path: Path, load, use, seed: int) -> None:
    use(load(base))  # the untampered directory loads and predicts
    failures, counts = run_cases(base, tmp_path, load, use, CASES, seed)
    assert not failures, f"{len(failures)} of {CASES} tampered directories:\n" + "\n".join(
        failures[:20]
    )
    # the tampering reaches both outcomes (a fuzz that only ever refuses tests nothing)
    assert counts["refused"] > CASES // 2 and counts["loaded"] > 0, counts


def test_tampered_classifier_directories(classifier_dir, tmp_path):
    X = datasets.load_japanese_vowels("test").X[:3]
    _check(classifier_dir, tmp_path, SequenceClassifier.load, lambda m: m.predict(X), seed=1)


def test_tampered_forecaster_directories(forecaster_dir, tmp_path, air):
    hist = SeriesData(target=air.target[:100], future_cov=air.future_cov[:100])
    cov = air.future_cov[100:104]
    _check(
        forecaster_dir, tmp_path, Forecaster.load, lambda m: m.forecast(hist, 4, future_cov=cov), 2
    )


def test_tampered_detector_directories(detector_dir, tmp_path):
    values = np.sin(np.arange(40.0))
    stamps = np.arange(40) * np.timedelta64(5, "m") + np.datetime64("2030-01-01")

    def use(det):
        det.score_series(values, stamps, warmup=0)
        det.update(values[0], stamps[0])  # the stream saved in stream.json goes on

    _check(detector_dir, tmp_path, AnomalyDetector.load, use, seed=3)
