"""--config files are held to the flags' types and ranges: seeded mutations of a valid TOML file
give a valid merge or a one-line ConfigError naming the file and key (exit 2 through the real
`seqshape train classify|forecast` commands), never a traceback and never a silent coercion."""

from __future__ import annotations

import math
import random

import pytest

from seqshape.cli import main
from seqshape.cli.common import KEY_SPECS, merge_config
from seqshape.errors import ConfigError

CLASSIFY = {"epochs", "batch_size", "lr", "seed", "hidden", "layers", "bidirectional", "pooling"}
CLASSIFY |= {"cell", "dropout", "patience", "val_fraction", "weight_decay", "label_smoothing"}
FORECAST = {"epochs", "batch_size", "lr", "seed", "hidden", "layers", "lookback", "horizon"}
FORECAST |= {"strategy", "loss", "quantiles", "dropout", "cell", "patience", "window_norm"}
FORECAST |= {"highway", "train_highway", "keep_start", "lr_schedule", "lr_patience"}

VALID = {
    "epochs": "3",
    "batch_size": "16",
    "lr": "0.001",
    "seed": "1",
    "hidden": "8",
    "dropout": "0.1",
    "cell": '"gru"',
    "patience": "2",
}
# TOML values of every kind a person mistypes: wrong types, non-finite, out of range, nested
BAD_VALUES = [
    '"1"',
    '"x"',
    "true",
    "false",
    "nan",
    "inf",
    "-inf",
    "-1",
    "0",
    "1e300",
    "99999999999999999",
    "0.5",
    "[0.5]",
    "[]",
    '["a", "b"]',
    "{ a = 1 }",
    "1979-05-27",
    '"direct"',
    '""',
]


def _mutations(n: int, keys: set[str], seed: int = 0):
    rng = random.Random(seed)
    for _ in range(n):
        table = dict(VALID)
        key = rng.choice(sorted(keys))
        table[key] = rng.choice(BAD_VALUES)
        if rng.random() < 0.2:  # a second bad key
            table[rng.choice(sorted(keys))] = rng.choice(BAD_VALUES)
        if rng.random() < 0.1:
            table["no_such_key"] = "1"
        yield "\n".join(f"{k} = {v}" for k, v in table.items()) + "\n"


def _check_types(merged: dict) -> None:
    """A merge that passed holds values of exactly the declared kinds: nothing coerced."""
    for k, v in merged.items():
        kind = KEY_SPECS[k].kind
        if kind is int:
            assert type(v) is int, (k, v)
        elif kind is float:
            assert type(v) is float and math.isfinite(v), (k, v)
        elif kind is bool:
            assert type(v) is bool, (k, v)
        elif kind is str:
            assert type(v) is str and v in KEY_SPECS[k].choices, (k, v)


@pytest.mark.parametrize("allowed", [CLASSIFY, FORECAST], ids=["classify", "forecast"])
def test_200_mutated_configs_merge_or_fail_with_a_config_error(allowed, tmp_path):
    path = tmp_path / "train.toml"
    errors = ok = 0
    for text in _mutations(200, allowed):
        path.write_text(text)
        try:
            merged = merge_config(path, {}, allowed | set(VALID))
        except ConfigError as e:
            msg = str(e)
            assert msg.startswith(f"{path}: "), msg
            assert "expected" in msg and "\n" not in msg
            errors += 1
        else:
            _check_types(merged)
            ok += 1
    assert errors > 150  # almost every mutation is wrong; the rest are valid values


def test_no_silent_coercion(tmp_path):
    path = tmp_path / "c.toml"
    for text, needle in [
        ("lr = true", "key 'lr': expected a number, 0 < x, got True"),
        ('bidirectional = "direct"', "key 'bidirectional': expected true or false, got 'direct'"),
        ('seed = "1"', "key 'seed': expected an integer"),
        ("patience = nan", "key 'patience': expected an integer, 0 <= x, got nan"),
        ("dropout = 1.5", "key 'dropout': expected a number, 0 <= x < 1, got 1.5"),
        ('pooling = "max"', "key 'pooling': expected one of last, mean, attention, got 'max'"),
    ]:
        path.write_text(text + "\n")
        with pytest.raises(ConfigError) as e:
            merge_config(path, {}, CLASSIFY)
        assert needle in str(e.value)


def test_quantiles_from_toml_or_flag(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('loss = "quantile"\nquantiles = [0.1, 0.5, 0.9]\n')
    assert merge_config(path, {}, FORECAST)["quantiles"] == (0.1, 0.5, 0.9)
    path.write_text("quantiles = 0.5\n")
    with pytest.raises(ConfigError, match="expected a list of numbers, 0 < x < 1, got 0.5"):
        merge_config(path, {}, FORECAST)
    with pytest.raises(ConfigError, match="--quantiles: expected a list of numbers"):
        merge_config(None, {"quantiles": (0.5, 1.5)}, FORECAST)


@pytest.mark.parametrize(
    "content,needle",
    [
        (None, "is a directory"),
        (b"epochs = 3\nlr = \xff\xfe\n", "not UTF-8"),
        (b"epochs = [", "not valid TOML"),
        (b"train = 3\n", "key 'train': expected a table"),
    ],
)
def test_unreadable_config_files_through_the_cli(content, needle, tmp_path, capsys):
    path = tmp_path / "c.toml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    argv = ["train", "classify", "--train", str(tmp_path / "t.ts"), "--out", str(tmp_path / "m")]
    rc = main([*argv, "--config", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_mutated_configs_through_the_real_commands(tmp_path, capsys):
    """Through `seqshape train classify|forecast`: one line, exit 2, nothing written."""
    path = tmp_path / "c.toml"
    runs = 0
    for cmd, allowed, data in [
        ("classify", CLASSIFY, ["--train", str(tmp_path / "missing.ts")]),
        ("forecast", FORECAST, ["--data", str(tmp_path / "missing.csv"), "--target", "y"]),
    ]:
        for text in _mutations(25, allowed, seed=1):
            path.write_text(text)
            rc = main(["train", cmd, *data, "--out", str(tmp_path / "m"), "--config", str(path)])
            err = capsys.readouterr().err
            assert rc == 2, err
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
            runs += 1
    assert runs == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]
