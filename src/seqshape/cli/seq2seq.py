"""`seqshape train seq2seq | tag | generate`, `seqshape translate`, and evaluate/predict for the
kinds "seq2seq", "tagger" and "generator".

Data files:
- seq2seq: TSV pairs (``source<TAB>target[<TAB>...]``) or CMUdict (``word PH1 PH2 ...``); the
  tokenisation chosen at training is saved with the model and reused by evaluate/predict/translate.
- tag: a per-step long CSV ``sequence_id, step, <features...>, <label | target columns>``.
- generate: a per-step long CSV ``sequence_id, step, <static columns...>, <target columns>``; the
  static columns hold the same value on every row of a sequence.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..errors import ConfigError, DataError
from . import app, train_app
from .common import (
    SHARED_KEYS,
    BatchSize,
    Cell,
    CheckpointEvery,
    ConfigFile,
    Dropout,
    Epochs,
    Hidden,
    Layers,
    Lr,
    LrSchedule,
    MaxBeam,
    Out,
    Progress,
    Resume,
    Seed,
    Threads,
    merge_config,
)

RENAMES = {"hidden": "hidden_size", "layers": "num_layers", "embedding": "embedding_size"}
SEQ2SEQ_KEYS = set(SHARED_KEYS) | {
    "attention",
    "beam",
    "length_penalty",
    "embedding",
    "bidirectional",
    "cell",
    "dropout",
    "teacher_forcing",
    "label_smoothing",
    "lr_schedule",
    "patience",
    "val_fraction",
    "weight_decay",
}
TAG_KEYS = set(SHARED_KEYS) | {
    "bidirectional",
    "cell",
    "dropout",
    "patience",
    "val_fraction",
    "weight_decay",
}
GENERATE_KEYS = set(SHARED_KEYS) | {
    "embedding",
    "cell",
    "dropout",
    "beam",
    "patience",
    "val_fraction",
    "weight_decay",
}

Val = Annotated[
    Path | None,
    typer.Option("--val", help="Validation data for early stopping (default: 10% of --train)."),
]
Test = Annotated[
    Path | None, typer.Option("--test", help="Test data, evaluated once after training.")
]
Beam = Annotated[
    int | None, typer.Option("--beam", help="Beam size for decoding (1 = greedy; tokens only).")
]


def _options(config: Path | None, cli: dict, allowed: set[str]) -> dict:
    merged = merge_config(config, cli, allowed)
    if "beam" in merged:
        merged["beam_size"] = merged.pop("beam")
    return {RENAMES.get(k, k): v for k, v in merged.items()}


def _check_missing(missing: str) -> None:
    if missing != "error":
        raise ConfigError(
            f"--missing: seq2seq, tag and generate data must be complete; expected 'error', "
            f"got {missing!r}"
        )


def _finish(model, result: dict, out: Path, log: Path) -> None:
    """Save the model with its results, move the training log in, draw the training curve."""
    from ..plots import training_curve_png

    model.save(out, extra_metrics={k: v for k, v in result.items() if k != "train"})
    os.replace(log, out / "train_log.jsonl")
    if model.train_result and model.train_result.history:
        training_curve_png(
            model.train_result.history,
            out / "training_curve.png",
            best_epoch=model.train_result.best_epoch,
        )


def _fit_and_save(
    model, fit_args: tuple, fit_kwargs: dict, out: Path, evaluate, resume: bool, every: int | None
) -> dict | None:
    """Fit (checkpointing to OUT.ckpt/, resuming with ``resume``; see cli/training.py), evaluate,
    save; None on a torchrun rank other than 0 (rank 0 alone evaluates and writes)."""
    from ..train import distributed
    from .training import say_resumed, train_run

    with train_run(out, resume=resume, checkpoint_every=every) as run:
        log = run.log
        t0 = time.perf_counter()
        model.fit(*fit_args, **fit_kwargs, **run.fit_kwargs(), log_path=log)
        if not distributed.is_main():
            return None
        result = {"train": model.metrics, "train_seconds": round(time.perf_counter() - t0, 2)}
        if evaluate is not None:
            result["test"] = evaluate(model)
        _finish(model, result, out, log)
    say_resumed(run, model)
    return result


# -- seq2seq ------------------------------------------------------------------------------------
def _read_pairs(path: Path, text: dict):
    from ..data.pairs import read_pairs

    if text["format"] == "cmudict":
        return read_pairs(
            path,
            "cmudict",
            strip_stress=text["strip_stress"],
            alternates=text["alternates"],
        )
    return read_pairs(path, "tsv", tokenize=text["tokenize"], lowercase=text["lowercase"])


def _text_options(path: Path, fmt: str, char: bool, tokenize, lowercase, strip_stress, alternates):
    from ..data.pairs import FORMAT_CHOICES, TOKENIZE_CHOICES

    if fmt not in FORMAT_CHOICES:
        raise ConfigError(f"--format: expected one of {', '.join(FORMAT_CHOICES)}, got {fmt!r}")
    if fmt == "auto":
        fmt = "cmudict" if path.suffix.lower() == ".dict" else "tsv"
    if char and tokenize not in (None, "char"):
        raise ConfigError(f"--char means --tokenize char, but --tokenize {tokenize} was given")
    tokenize = "char" if char else (tokenize or "space")
    if tokenize not in TOKENIZE_CHOICES:
        raise ConfigError(
            f"--tokenize: expected one of {', '.join(TOKENIZE_CHOICES)}, got {tokenize!r}"
        )
    if fmt == "cmudict":
        if char or tokenize != "space" or lowercase:
            raise ConfigError(
                "--char/--tokenize/--lowercase: apply to --format tsv; CMUdict sources are always "
                "the word's lowercased characters"
            )
        return {
            "format": "cmudict",
            "tokenize": "cmudict",
            "target_tokenize": "space",
            "lowercase": True,
            "strip_stress": strip_stress,
            "alternates": alternates,
        }
    if strip_stress or alternates != "all":
        raise ConfigError("--strip-stress/--alternates: apply to --format cmudict only")
    return {
        "format": "tsv",
        "tokenize": tokenize,
        "target_tokenize": tokenize,
        "lowercase": lowercase,
        "strip_stress": False,
        "alternates": "all",
    }


@train_app.command("seq2seq")
def train_seq2seq(
    train: Annotated[Path, typer.Option("--train", help="Training pairs: TSV or CMUdict.")],
    out: Out,
    fmt: Annotated[
        str, typer.Option("--format", help="tsv | cmudict | auto (.dict -> cmudict).")
    ] = "auto",
    char: Annotated[bool, typer.Option("--char", help="TSV: one token per character.")] = False,
    tokenize: Annotated[
        str | None, typer.Option("--tokenize", help="TSV tokens: space | char | words.")
    ] = None,
    lowercase: Annotated[
        bool, typer.Option("--lowercase", help="TSV: lowercase both sides.")
    ] = False,
    strip_stress: Annotated[
        bool, typer.Option("--strip-stress", help="CMUdict: drop stress digits (AH0 -> AH).")
    ] = False,
    alternates: Annotated[
        str, typer.Option("--alternates", help="CMUdict: all | first pronunciation(s).")
    ] = "all",
    val: Val = None,
    test: Test = None,
    holdout: Annotated[
        float,
        typer.Option(
            "--holdout",
            help="Hold out this share of the unique sources of --train as a test split "
            "(no source in both), evaluated after training.",
        ),
    ] = 0.0,
    max_sources: Annotated[
        int | None,
        typer.Option("--max-sources", help="Train on at most this many unique sources."),
    ] = None,
    attention: Annotated[
        str | None,
        typer.Option("--attention", help="none | additive | general | dot."),
    ] = None,
    beam: Beam = None,
    length_penalty: Annotated[
        float | None, typer.Option("--length-penalty", help="Beam: score / length ** this.")
    ] = None,
    embedding: Annotated[
        int | None, typer.Option("--embedding", help="Token embedding size E.")
    ] = None,
    bidirectional: Annotated[
        bool | None,
        typer.Option("--bidirectional/--unidirectional", help="Bidirectional encoder (D=2)."),
    ] = None,
    teacher_forcing: Annotated[
        float | None,
        typer.Option("--teacher-forcing", help="Share of steps fed the true previous token."),
    ] = None,
    label_smoothing: Annotated[
        float | None, typer.Option("--label-smoothing", help="Label smoothing of the loss.")
    ] = None,
    lr_schedule: LrSchedule = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    seed: Seed = None,
    hidden: Hidden = None,
    layers: Layers = None,
    cell: Cell = None,
    dropout: Dropout = None,
    config: ConfigFile = None,
    threads: Threads = None,
    progress: Progress = True,
    resume: Resume = False,
    checkpoint_every: CheckpointEvery = None,
) -> None:
    """Train an encoder-decoder with attention: token sequences -> token sequences (S != U)."""
    from ..api.seq2seq import Seq2Seq
    from ..data.pairs import split_by_source

    opts = _options(
        config,
        dict(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            hidden=hidden,
            layers=layers,
            attention=attention,
            beam=beam,
            length_penalty=length_penalty,
            embedding=embedding,
            bidirectional=bidirectional,
            cell=cell,
            dropout=dropout,
            teacher_forcing=teacher_forcing,
            label_smoothing=label_smoothing,
            lr_schedule=lr_schedule,
        ),
        SEQ2SEQ_KEYS,
    )
    if not 0.0 <= holdout < 1.0:
        raise ConfigError(f"--holdout: expected a share in [0, 1), got {holdout}")
    if holdout and test is not None:
        raise ConfigError("--holdout and --test: give one of them")
    text = _text_options(train, fmt, char, tokenize, lowercase, strip_stress, alternates)
    pairs = _read_pairs(train, text)
    split_seed = int(opts.get("seed", 0))
    test_pairs = _read_pairs(test, text) if test is not None else None
    if holdout:
        pairs, test_pairs = split_by_source(pairs, (1 - holdout, holdout), seed=split_seed)
    if max_sources is not None:
        n = pairs.unique_sources()
        if max_sources < 1:
            raise ConfigError(f"--max-sources: expected a positive integer, got {max_sources}")
        if max_sources < n:
            share = max_sources / n
            pairs = split_by_source(pairs, (share, 1 - share), seed=split_seed + 1)[0]
    val_pairs = _read_pairs(val, text) if val is not None else None
    model = Seq2Seq(progress=progress, threads=threads, **opts)
    model.text_options = text
    result = _fit_and_save(
        model,
        (pairs,),
        {"val_sources": val_pairs},
        out,
        (lambda m: m.evaluate(test_pairs)) if test_pairs is not None else None,
        resume,
        checkpoint_every,
    )
    if result is None:  # torchrun, rank > 0
        return
    if "test" in result:
        print_report({**result["test"], "kind": "seq2seq", "data": "held-out test split"})
    typer.echo(f"model written to {out}", err=True)


def _source_tokens(line: str, text: dict) -> list[str]:
    from ..data.pairs import tokenize_text

    if text.get("format") == "cmudict":
        word = line.split()[0] if line.split() else ""
        if word.endswith(")") and "(" in word:
            word = word[: word.index("(")]
        return list(word.lower())
    source = line.split("\t")[0]
    if text.get("lowercase"):
        source = source.lower()
    return tokenize_text(source, text.get("tokenize", "space"))


def _detokenize(tokens: list[str], text: dict) -> str:
    from ..data.pairs import detokenize

    mode = text.get("target_tokenize", "space")
    return detokenize(tokens, "space" if mode == "cmudict" else mode)


def _show_source(tokens: list[str], text: dict) -> str:
    from ..data.pairs import detokenize

    mode = text.get("tokenize", "space")
    return "".join(tokens) if mode == "cmudict" else detokenize(tokens, mode)


TRANSLATE_CHUNK = 64  # lines decoded at a time by `translate`


@app.command()
def translate(
    model_dir: Annotated[Path, typer.Argument(help="A model directory from `train seq2seq`.")],
    text: Annotated[
        str | None, typer.Argument(help="Text to translate; reads stdin lines when omitted.")
    ] = None,
    beam: Beam = None,
    max_len: Annotated[int | None, typer.Option("--max-len", help="Most output tokens.")] = None,
    threads: Threads = None,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="torch (default) or onnx: greedy decoding through DIR/model.onnx and its "
            "decoder_step part (write them with `seqshape export DIR`).",
        ),
    ] = "torch",
    max_beam: MaxBeam = None,
) -> None:
    """Decode one text (or each line of stdin) and print the output sequence, one per line."""
    from .. import limits
    from ..api.seq2seq import Seq2Seq
    from ..progress import Reporter

    limits.check("--beam", beam, "beam", max_beam)  # before any work: beams cost memory
    if backend not in ("torch", "onnx"):
        raise ConfigError(f"--backend: expected torch or onnx, got {backend!r}")
    if backend == "onnx" and beam not in (None, 1):
        raise ConfigError(f"--beam {beam}: the onnx backend decodes greedily; use --backend torch")
    model = Seq2Seq.load(model_dir, threads=threads)
    if model.source.kind != "tokens" or model.target.kind != "tokens":
        raise ConfigError(f"{model_dir}: translate needs a tokens -> tokens model")
    lines = [text] if text is not None else [ln.rstrip("\n") for ln in sys.stdin]
    sources = []
    for number, line in enumerate(lines, start=1):
        tokens = _source_tokens(line, model.text_options)
        if not tokens:
            where = "TEXT" if text is not None else f"stdin line {number}"
            raise DataError(f"{where}: expected some text to translate, got {line!r}")
        sources.append(tokens)
    if not sources:
        return
    if backend == "onnx":
        from .export import onnx_runner

        decode = onnx_runner(model_dir, "seq2seq", threads).predict
        opts = {"max_len": max_len}
    else:
        decode = model.predict
        opts = {"beam_size": beam, "max_len": max_len}
    # in chunks, each printed when done: progress on stderr, outputs as they come (padding never
    # changes an answer, so the chunks decode as the whole would)
    with Reporter("translate", total=len(sources), unit="lines") as reporter:
        for start in range(0, len(sources), TRANSLATE_CHUNK):
            chunk = sources[start : start + TRANSLATE_CHUNK]
            for tokens in decode(chunk, **opts):
                typer.echo(_detokenize(tokens, model.text_options))
            reporter.advance(len(chunk))


# -- tag ------------------------------------------------------------------------------------------
def _tag_columns(label: str | None, target: list[str] | None) -> dict:
    if target and label:
        raise ConfigError("--label and --target: give --label (classes) or --target (values)")
    if target:
        return {"task": "regression", "targets": list(target)}
    return {"task": "classification", "targets": [label or "label"]}


def _read_tag(path: Path, columns: dict, *, require_targets: bool = True):
    from ..api.tagger import read_step_csv

    return read_step_csv(
        path,
        targets=columns["targets"],
        numeric_targets=columns["task"] == "regression",
        features=columns.get("features"),
        require_targets=require_targets,
    )


@train_app.command("tag")
def train_tag(
    train: Annotated[Path, typer.Option("--train", help="Per-step long CSV.")],
    out: Out,
    label: Annotated[
        str | None, typer.Option("--label", help="Per-step class column (default: label).")
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", help="Per-step value column(s) for regression; repeatable."),
    ] = None,
    val: Val = None,
    test: Test = None,
    bidirectional: Annotated[
        bool | None,
        typer.Option("--bidirectional/--unidirectional", help="Bidirectional encoder (D=2)."),
    ] = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    seed: Seed = None,
    hidden: Hidden = None,
    layers: Layers = None,
    cell: Cell = None,
    dropout: Dropout = None,
    missing: Annotated[str, typer.Option("--missing", help="Only 'error' here.")] = "error",
    config: ConfigFile = None,
    threads: Threads = None,
    progress: Progress = True,
    resume: Resume = False,
    checkpoint_every: CheckpointEvery = None,
) -> None:
    """Train an aligned tagger: (T, F) sequences -> one label or value vector per step."""
    from ..api.tagger import SequenceTagger

    _check_missing(missing)
    opts = _options(
        config,
        dict(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            hidden=hidden,
            layers=layers,
            bidirectional=bidirectional,
            cell=cell,
            dropout=dropout,
        ),
        TAG_KEYS,
    )
    columns = _tag_columns(label, target)
    data = _read_tag(train, columns)
    if not data.feature_names:
        raise DataError(f"{train} line 1: expected at least one feature column besides the targets")
    columns["features"] = data.feature_names
    val_data = _read_tag(val, columns) if val else None
    test_data = _read_tag(test, columns) if test else None
    model = SequenceTagger(task=columns["task"], progress=progress, threads=threads, **opts)
    model.columns = columns
    result = _fit_and_save(
        model,
        (data.features, data.targets),
        {
            "X_val": val_data.features if val_data else None,
            "Y_val": val_data.targets if val_data else None,
        },
        out,
        (lambda m: m.evaluate(test_data.features, test_data.targets)) if test_data else None,
        resume,
        checkpoint_every,
    )
    if result is None:  # torchrun, rank > 0
        return
    if "test" in result:
        print_report(
            {**result["test"], "kind": "tagger", "task": columns["task"], "data": str(test)}
        )
    typer.echo(f"model written to {out}", err=True)


# -- generate -----------------------------------------------------------------------------------
def _read_generate(path: Path, columns: dict, *, require_targets: bool = True):
    from ..api.tagger import read_step_csv

    table = read_step_csv(
        path,
        targets=columns["targets"],
        numeric_targets=not columns["tokens"],
        static=columns["static"],
        features=[],
        require_targets=require_targets,
    )
    targets = table.targets
    if targets is not None and columns["tokens"]:
        targets = [list(t) for t in targets]
    return table, targets


@train_app.command("generate")
def train_generate(
    train: Annotated[Path, typer.Option("--train", help="Per-step long CSV.")],
    out: Out,
    static: Annotated[
        list[str], typer.Option("--static", help="Static input column(s) F; repeatable.")
    ],
    target: Annotated[
        list[str], typer.Option("--target", help="Per-step output column(s) O; repeatable.")
    ],
    tokens: Annotated[
        bool, typer.Option("--tokens", help="The (single) target column holds tokens.")
    ] = False,
    val: Val = None,
    test: Test = None,
    embedding: Annotated[
        int | None, typer.Option("--embedding", help="Token embedding size E.")
    ] = None,
    beam: Beam = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    seed: Seed = None,
    hidden: Hidden = None,
    layers: Layers = None,
    cell: Cell = None,
    dropout: Dropout = None,
    missing: Annotated[str, typer.Option("--missing", help="Only 'error' here.")] = "error",
    config: ConfigFile = None,
    threads: Threads = None,
    progress: Progress = True,
    resume: Resume = False,
    checkpoint_every: CheckpointEvery = None,
) -> None:
    """Train a one-to-many generator: a static vector (F) -> a sequence (U, O) or tokens."""
    from ..api.generator import SequenceGenerator

    _check_missing(missing)
    if tokens and len(target) != 1:
        raise ConfigError(f"--tokens: expected one --target column, got {len(target)}")
    opts = _options(
        config,
        dict(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            hidden=hidden,
            layers=layers,
            embedding=embedding,
            cell=cell,
            dropout=dropout,
            beam=beam,
        ),
        GENERATE_KEYS,
    )
    columns = {"static": list(static), "targets": list(target), "tokens": tokens}
    table, targets = _read_generate(train, columns)
    val_table, val_targets = _read_generate(val, columns) if val else (None, None)
    test_table, test_targets = _read_generate(test, columns) if test else (None, None)
    model = SequenceGenerator(progress=progress, threads=threads, **opts)
    model.columns = columns
    result = _fit_and_save(
        model,
        (table.static, targets),
        {"V_val": val_table.static if val_table else None, "Y_val": val_targets},
        out,
        (lambda m: m.evaluate(test_table.static, test_targets)) if test_table else None,
        resume,
        checkpoint_every,
    )
    if result is None:  # torchrun, rank > 0
        return
    if "test" in result:
        print_report({**result["test"], "kind": "generator", "data": str(test)})
    typer.echo(f"model written to {out}", err=True)


# -- evaluate / predict for the three kinds ------------------------------------------------------
def evaluate(
    model_dir: Path, data: Path, *, missing: str = "error", threads=None, beam: int | None = None
) -> dict:
    from ..artifacts import model_kind

    kind = model_kind(model_dir)
    if kind == "seq2seq":
        from ..api.seq2seq import Seq2Seq

        model = Seq2Seq.load(model_dir, threads=threads)
        if not model.text_options:
            raise ConfigError(f"{model_dir}: trained from Python on arrays; evaluate it there")
        result = model.evaluate(_read_pairs(data, model.text_options), beam_size=beam)
    elif kind == "tagger":
        from ..api.tagger import SequenceTagger

        _check_missing(missing)
        model = SequenceTagger.load(model_dir, threads=threads)
        _need_columns(model, model_dir)
        table = _read_tag(data, model.columns)
        result = model.evaluate(table.features, table.targets)
        result["task"] = model.task
    elif kind == "generator":
        from ..api.generator import SequenceGenerator

        _check_missing(missing)
        model = SequenceGenerator.load(model_dir, threads=threads)
        _need_columns(model, model_dir)
        table, targets = _read_generate(data, model.columns)
        result = model.evaluate(table.static, targets, beam_size=beam)
    else:
        raise ConfigError(f"{model_dir}: kind {kind!r} is not handled by seqshape.cli.seq2seq")
    return {**result, "kind": kind, "model": str(model_dir), "data": str(data)}


def _need_columns(model, model_dir: Path) -> None:
    if not model.columns:
        raise ConfigError(f"{model_dir}: trained from Python without column names; use the API")


def print_report(result: dict) -> None:
    console = Console()
    kind = result.get("kind", "seq2seq")
    table = Table(title=f"{kind}: {result.get('data', '')}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("exact_match", "exact match"),
        ("wer", "WER (1 - exact match)"),
        ("token_error_rate", "token error rate (PER for G2P)"),
        ("bleu", "BLEU (sacrebleu)"),
        ("accuracy", "accuracy (valid steps)"),
        ("macro_f1", "macro F1"),
        ("mae", "MAE"),
        ("rmse", "RMSE"),
        ("n", "sequences"),
        ("n_pairs", "pairs"),
        ("n_steps", "steps"),
        ("beam_size", "beam size"),
    ]
    for key, name in rows:
        if key in result:
            v = result[key]
            table.add_row(name, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)


def _write_csv(output: Path, header: list[str], rows) -> int:
    from ..outfiles import atomic_output

    n = 0
    with atomic_output(output, flag="--output") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow(row)
            n += 1
    return n


def predict(
    model_dir: Path, data: Path, output: Path, *, missing: str = "error", threads=None
) -> int:
    """Write predictions as CSV; returns the number of sequences predicted."""
    from ..artifacts import model_kind

    kind = model_kind(model_dir)
    if kind == "seq2seq":
        from ..api.seq2seq import Seq2Seq

        model = Seq2Seq.load(model_dir, threads=threads)
        if not model.text_options:
            raise ConfigError(f"{model_dir}: trained from Python on arrays; predict there")
        try:
            lines = [ln for ln in Path(data).read_text(encoding="utf-8").splitlines() if ln.strip()]
        except FileNotFoundError:
            raise DataError(f"{data}: no such file") from None
        except UnicodeDecodeError as e:
            raise DataError(f"{data}: not UTF-8 text ({e.reason})") from None
        sources = [_source_tokens(ln, model.text_options) for ln in lines]
        if not sources:
            raise DataError(f"{data}: expected at least one line to predict, got none")
        preds = model.predict(sources)
        text = model.text_options
        rows = (
            [i, _show_source(s, text), _detokenize(p, text)]
            for i, (s, p) in enumerate(zip(sources, preds, strict=True), start=1)
        )
        _write_csv(output, ["id", "source", "prediction"], rows)
        return len(sources)
    _check_missing(missing)
    if kind == "tagger":
        from ..api.tagger import SequenceTagger

        model = SequenceTagger.load(model_dir, threads=threads)
        _need_columns(model, model_dir)
        table = _read_tag(data, model.columns, require_targets=False)
        if model.task == "classification":
            proba = model.predict_proba(table.features)
            header = ["sequence_id", "step", "predicted"] + [f"p_{c}" for c in model.classes_]
            rows = (
                [sid, t, model.classes_[int(p[t].argmax())]] + [f"{v:.6f}" for v in p[t]]
                for sid, p in zip(table.ids, proba, strict=True)
                for t in range(len(p))
            )
        else:
            values = model.predict(table.features)
            header = ["sequence_id", "step"] + model.columns["targets"]
            rows = (
                [sid, t] + [f"{v:.6g}" for v in y[t]]
                for sid, y in zip(table.ids, values, strict=True)
                for t in range(len(y))
            )
        _write_csv(output, header, rows)
        return len(table.ids)
    if kind == "generator":
        from ..api.generator import SequenceGenerator

        model = SequenceGenerator.load(model_dir, threads=threads)
        _need_columns(model, model_dir)
        table, _ = _read_generate(data, model.columns, require_targets=False)
        preds = model.predict(table.static)
        targets = model.columns["targets"]
        if model.columns["tokens"]:
            rows = (
                [sid, t, tok]
                for sid, p in zip(table.ids, preds, strict=True)
                for t, tok in enumerate(p)
            )
        else:
            rows = (
                [sid, t] + [f"{v:.6g}" for v in p[t]]
                for sid, p in zip(table.ids, preds, strict=True)
                for t in range(len(p))
            )
        _write_csv(output, ["sequence_id", "step", *targets], rows)
        return len(table.ids)
    raise ConfigError(f"{model_dir}: kind {kind!r} is not handled by seqshape.cli.seq2seq")
