"""`seqshape export DIR --format onnx [--out FILE]`: a model directory -> a self-describing ONNX file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError
from . import app
from .common import Threads

FORMATS = ("onnx",)


@app.command("export")
def export(
    model_dir: Annotated[
        Path, typer.Argument(help="A model directory written by `seqshape train`.")
    ],
    fmt: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="File to write (default: DIR/model.onnx)."),
    ] = None,
    threads: Threads = None,
) -> None:
    """Export a trained model for inference without torch (ONNX: dynamic batch and time axes,
    variable lengths as a `lengths` input; checked against torch within 1e-4 before it is kept)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    from .. import runtime
    from ..infer.export import export_onnx, read_metadata

    runtime.configure(threads)
    path = export_onnx(model_dir, out)
    meta = read_metadata(path)
    for part, info in meta["parts"].items():
        shapes = ", ".join(
            f"{s['name']} ({', '.join(str(d) for d in s['shape'])})"
            for s in info["inputs"] + info["outputs"]
        )
        typer.echo(
            f"{part}: {shapes}; max |onnx - torch| {info['max_abs_diff_vs_torch']:.2g}", err=True
        )
    typer.echo(f"wrote {path}", err=True)
