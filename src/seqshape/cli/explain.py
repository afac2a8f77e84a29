"""`seqshape explain MODE | DIR`: what shape goes in, what comes out, and why, stage by stage.

A thin adapter over `seqshape.explain`: parse the options, build a fresh model of MODE (or load
the trained one in DIR), run a real forward pass on a dummy batch (or on the first sequences of
``--data``), print the table or JSON, optionally draw it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError
from . import app
from .common import Threads

MODES = ("classify", "tag", "forecast", "seq2seq", "generate")


def parse_lengths(text: str | None) -> tuple[int, ...] | None:
    """``"20,7,13"`` -> (20, 7, 13); anything else is a ConfigError naming the option."""
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise ConfigError(
            f"--lengths: expected comma-separated positive integers like 20,7,13, got {text!r}"
        )
    return values


@app.command("explain")
def explain_command(
    target: Annotated[
        str,
        typer.Argument(
            help="A shape mode (classify, tag, forecast, seq2seq, generate) or a model directory."
        ),
    ],
    input_size: Annotated[
        int | None,
        typer.Option("--input-size", help="F: input features per step (forecast: O + C)."),
    ] = None,
    hidden: Annotated[int | None, typer.Option("--hidden", help="H: LSTM hidden size.")] = None,
    layers: Annotated[int | None, typer.Option("--layers", help="L: stacked layers.")] = None,
    bidirectional: Annotated[
        bool | None, typer.Option("--bidirectional/--unidirectional", help="D = 2 or 1.")
    ] = None,
    output_size: Annotated[
        int | None, typer.Option("--output-size", help="O: output features per step.")
    ] = None,
    classes: Annotated[int | None, typer.Option("--classes", help="N: classes.")] = None,
    horizon: Annotated[int | None, typer.Option("--horizon", help="K: forecast horizon.")] = None,
    vocab: Annotated[
        int | None,
        typer.Option(
            "--vocab", help="V: token sequences with this vocabulary (seq2seq, generate)."
        ),
    ] = None,
    pooling: Annotated[
        str | None, typer.Option("--pooling", help="classify: last | mean | attention.")
    ] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="B: sequences in the batch.")] = None,
    lengths: Annotated[
        str | None,
        typer.Option("--lengths", help="A mixed-length batch, e.g. 20,7,13 (shows the masking)."),
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", help="T (or S): padded input steps.")
    ] = None,
    target_steps: Annotated[
        int | None, typer.Option("--target-steps", help="U: target steps (seq2seq, generate).")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="With a classifier directory: explain its first sequences."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json.")] = "table",
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also draw the stages to this PNG file.")
    ] = None,
    threads: Threads = None,
) -> None:
    """Run a real forward pass and show each stage: tensor, shape in legend letters, meaning."""
    from .. import runtime
    from ..explain import EXPLAINERS, MODEL_FIELDS, ExplainOptions, explain_mode, explain_model_dir
    from ..outfiles import check_input, check_output

    if fmt not in ("table", "json"):
        raise ConfigError(f"--format: expected table or json, got {fmt!r}")
    if plot is not None and plot.suffix.lower() != ".png":
        raise ConfigError(f"--plot: expected a file name ending in .png, got {str(plot)!r}")
    if plot is not None:
        check_output(plot, "--plot")
    if data is not None:
        check_input(data, "--data")
    runtime.configure(threads)
    model = {
        "input_size": input_size,
        "hidden": hidden,
        "layers": layers,
        "bidirectional": bidirectional,
        "output_size": output_size,
        "classes": classes,
        "vocab": vocab,
        "pooling": pooling,
    }
    model = {k: v for k, v in model.items() if v is not None}
    sizes = {
        "batch": batch,
        "lengths": parse_lengths(lengths),
        "steps": steps,
        "target_steps": target_steps,
        "horizon": horizon,
    }
    sizes = {k: v for k, v in sizes.items() if v is not None}
    path = Path(target)
    if path.is_dir():
        if model:
            flags = ", ".join("--" + k.replace("_", "-") for k in model)
            raise ConfigError(
                f"{flags}: {path} is a trained model whose config fixes these sizes; leave them out"
            )
        arrays = None
        if data is not None:
            from ..artifacts import model_kind
            from ..data.sequences import read_sequences

            if model_kind(path) not in ("classifier",):
                raise ConfigError("--data: only a classifier directory reads a data file here")
            arrays = read_sequences(data).X
        result = explain_model_dir(path, ExplainOptions(**sizes), data=arrays)
    elif target in EXPLAINERS:
        if data is not None:
            raise ConfigError("--data: needs a trained model directory, not a mode")
        fields = EXPLAINERS[target].fields
        unused = [k for k in model if k in MODEL_FIELDS and k not in fields]
        if unused:
            flags = ", ".join("--" + k.replace("_", "-") for k in unused)
            raise ConfigError(f"{flags}: not used by mode {target}")
        for flag, value, modes in (
            ("--horizon", horizon, ("forecast",)),
            ("--target-steps", target_steps, ("seq2seq", "generate")),
        ):
            if value is not None and target not in modes:
                raise ConfigError(f"{flag}: not used by mode {target}")
        result = explain_mode(target, ExplainOptions(**model, **sizes))
    else:
        raise ConfigError(
            f"explain: expected a mode ({', '.join(EXPLAINERS)}) or a model directory, got "
            f"{target!r} (no such directory)"
        )
    if fmt == "json":
        typer.echo(json.dumps(result.to_dict(), indent=2, allow_nan=False))
    else:
        typer.echo(result.table())
    if plot is not None:
        result.plot(plot)
        typer.echo(f"wrote {plot}", err=True)
