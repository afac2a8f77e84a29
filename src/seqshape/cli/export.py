"""`seqshape export DIR --format onnx [--out FILE]`: a model directory -> a self-describing ONNX file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import kinds
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
    variable lengths as a `lengths` input; checked against torch within 1e-4 before it is kept).

    Classifiers give one file; forecasters an `encode` and a `step` graph (any horizon K is driven
    from outside; direct models one graph), seq2seq models an `encoder` and a `decoder_step` graph:
    further parts are written beside the first as <stem>.<part>.onnx."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    from .. import runtime
    from ..infer.export import export_onnx, read_metadata
    from ..outfiles import check_output
    from ..progress import Reporter

    if out is not None:
        check_output(out, "--out")
    runtime.configure(threads)
    with Reporter(f"export {model_dir}"):
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


def onnx_runner(model_dir: Path, kind: str, threads=None):
    """DIR/model.onnx (and its parts) as the runner for ``kind``, refused when it is missing or
    was exported from other weights than DIR's."""
    from ..artifacts import load_model_dir
    from ..errors import ArtifactError
    from ..infer import onnx_runtime

    files = load_model_dir(model_dir, kind=kind)
    path = files.path / "model.onnx"
    if not path.is_file():
        raise ArtifactError(
            f"{path}: missing; write it first with `seqshape export {model_dir} --format onnx`"
        )
    runner = kinds.resolve(kind, "onnx_runner", where=str(model_dir), what="the ONNX backend")(
        path, threads=threads
    )
    source = runner.metadata.get("origin", {}).get("weights_sha256")
    if source != onnx_runtime.weights_digest(files.path / "model.safetensors"):
        raise ArtifactError(
            f"{path}: exported from other weights than {files.path / 'model.safetensors'}; "
            f"export it again with `seqshape export {model_dir} --format onnx`"
        )
    return runner
