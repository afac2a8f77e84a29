"""`seqshape train seq2seq`, `seqshape translate`, and evaluate/predict for the kind "seq2seq".

Data files: TSV pairs (``source<TAB>target[<TAB>...]``) or CMUdict (``word PH1 PH2 ...``); the
tokenisation chosen at training is saved with the model and reused by evaluate/predict/translate.
`train tag` lives in cli/tag.py, `train generate` in cli/generate.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

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
)
from .seqcommon import Beam, Test, Val, _fit_and_save, _options, _write_csv, print_report

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


# -- evaluate / predict ---------------------------------------------------------------------------
def evaluate(
    model_dir: Path, data: Path, *, missing: str = "error", threads=None, beam: int | None = None
) -> dict:
    """The `evaluate` command for kind "seq2seq": metrics of MODEL_DIR on DATA."""
    from ..api.seq2seq import Seq2Seq

    model = Seq2Seq.load(model_dir, threads=threads)
    if not model.text_options:
        raise ConfigError(f"{model_dir}: trained from Python on arrays; evaluate it there")
    result = model.evaluate(_read_pairs(data, model.text_options), beam_size=beam)
    return {**result, "kind": "seq2seq", "model": str(model_dir), "data": str(data)}


def predict(
    model_dir: Path, data: Path, output: Path, *, missing: str = "error", threads=None
) -> int:
    """Write predictions as CSV; returns the number of sequences predicted."""
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
