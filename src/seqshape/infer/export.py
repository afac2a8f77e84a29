"""ONNX export of a model directory: one graph per model kind, self-describing, checked on export.

    export_onnx("runs/jv/model")               # -> runs/jv/model/model.onnx
    export_onnx("runs/jv/model", "clf.onnx")   # anywhere else

Graph contract for kind ``classifier`` (the only kind so far; see ``EXPORTERS``):

    inputs   x        (B, T, F) float32, already scaled, zero-padded after each sequence's end
             lengths  (B,) int64, each in [1, T]
    outputs  logits   (B, N) float32 (regression: (B, O))

B and T are dynamic axes. Variable lengths travel as the ``lengths`` input, never as a
PackedSequence: the graph runs the encoder's *padded* path (padding at the end of every sequence,
the backward direction reversed within each sequence's own length, each true last step gathered),
so a sequence's logits are the same alone or in a padded batch, as in torch.

The file carries everything needed to use it without torch, as JSON under the ONNX metadata key
``"seqshape"`` (``metadata_props``): the kind, input/output names and shapes, the class names, the
fitted scaler, the model config, the SHA-256 of the weights it came from and the largest difference
from torch measured on export. `seqshape.infer.onnx_runtime.OnnxClassifier` reads it back.

Adding a kind (forecaster: encoder + one decoder step, so that any horizon K is driven from
outside; seq2seq: encoder and decoder step) means writing a function ``ModelFiles -> OnnxExport``
that returns one `OnnxGraph` per part and registering it in ``EXPORTERS``. The first part is written
to ``out_path``; further parts go beside it as ``<stem>.<part>.onnx`` and are listed in the metadata.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .. import __version__
from ..artifacts import ModelFiles, config_from_dict, load_model_dir, load_weights
from ..errors import ArtifactError, ConfigError
from ..models.classifier import ClassifierConfig, ClassifierNet
from ..models.encoder import gather_last, reverse_within_length
from .onnx_runtime import METADATA_KEY, ONNX_FORMAT, ONNX_FORMAT_VERSION, weights_digest

OPSET = 17
TOLERANCE = 1e-4  # largest |onnx - torch| accepted on the export check


@dataclass(frozen=True, kw_only=True)
class TensorSpec:
    """One graph input or output: its name, shape (legend letters for dynamic axes) and dtype."""

    name: str
    shape: tuple[str | int, ...]
    dtype: str
    doc: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "doc": self.doc}


@dataclass(frozen=True, kw_only=True)
class OnnxGraph:
    """One traceable module with example inputs (mixed lengths) and its input/output contract."""

    part: str
    module: nn.Module
    example: tuple[Tensor, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes: dict[str, dict[int, str]] = {}
        for spec in self.inputs + self.outputs:
            dyn = {i: s for i, s in enumerate(spec.shape) if isinstance(s, str)}
            if dyn:
                axes[spec.name] = dyn
        return axes


@dataclass(frozen=True, kw_only=True)
class OnnxExport:
    """Every graph of one model plus the metadata the runtime needs (classes, scaler, ...)."""

    graphs: tuple[OnnxGraph, ...]
    metadata: dict = field(default_factory=dict)


# -- classifier -------------------------------------------------------------------------------
class ClassifierGraph(nn.Module):
    """`ClassifierNet` for tracing: (x (B, T, F), lengths (B,)) -> logits (B, N).

    It runs the encoder's padded path on the net's own layers. The encoder's ``forward`` cannot be
    traced as it is: it picks a path and checks lengths with Python ``bool``/``int`` on tensors,
    and builds its mask from a Python int T, all of which the tracer would freeze into constants.
    """

    def __init__(self, net: ClassifierNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        enc = self.net.encoder
        directions = enc.config.directions
        # (T,) vs (B, 1) -> (B, T) bool, True on valid steps; T read from x, so it stays dynamic
        steps = torch.arange(x.shape[1], device=x.device)
        mask = steps[None, :] < lengths[:, None]
        inp = x
        last = x.new_zeros(0)
        for layer in enc.layers:
            outs, lasts = [], []
            for name in ("fwd", "bwd")[:directions]:
                # (B, T, F_in): the backward direction reads each sequence reversed within its length
                seq = inp if name == "fwd" else reverse_within_length(inp, lengths)
                # (B, T, F_in) -> (B, T, H); the final state (after the padding) is never read
                out, _ = layer[name](seq)
                if name == "bwd":
                    # (B, T, H): back in time order; its summary is the output at step 0
                    out = reverse_within_length(out, lengths)
                    lasts.append(out[:, 0])
                else:
                    # (B, T, H) -> (B, H): output at each true last step
                    lasts.append(gather_last(out, lengths))
                outs.append(out)
            # D x (B, T, H) -> (B, T, D·H), zero on padding
            inp = torch.cat(outs, dim=-1) * mask.unsqueeze(-1).to(x.dtype)
            # D x (B, H) -> (B, D·H)
            last = torch.cat(lasts, dim=-1)
        pooling = self.net.config.pooling
        if pooling == "last":
            pooled = last
        elif pooling == "mean":
            # (B, T, D·H) summed over valid steps / lengths -> (B, D·H)
            n = mask.sum(1, keepdim=True).clamp(min=1).to(x.dtype)
            pooled = inp.sum(1) / n
        else:
            pooled, _ = self.net.attention(inp, mask)
        # (B, D·H) -> (B, N)
        return self.net.head(pooled)


def example_batch(features: int, lengths: list[int], seed: int = 0) -> tuple[Tensor, Tensor]:
    """A zero-padded random batch (B, max(lengths), F) and its lengths (B,) int64."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    lens = torch.tensor(lengths, dtype=torch.long)
    # (B, T, F), zero after each sequence's end
    x = torch.randn(len(lengths), T, features, generator=g)
    x = x * (torch.arange(T)[None, :, None] < lens[:, None, None]).to(x.dtype)
    return x, lens


def _export_classifier(files: ModelFiles) -> OnnxExport:
    config = config_from_dict(ClassifierConfig, files.config, files.path / "config.json")
    net = ClassifierNet(config)
    load_weights(net, files)
    net.eval()
    pre = files.preprocessing
    classes = pre.get("classes")
    if config.task == "classification" and (
        not isinstance(classes, list) or len(classes) != config.num_outputs
    ):
        raise ArtifactError(
            f"{files.path / 'preprocessing.json'}: classes: expected {config.num_outputs} names, "
            f"got {classes!r}"
        )
    F, N = config.input_size, config.num_outputs
    out_doc = "logits, columns in the order of 'classes'" if classes else "regression outputs"
    graph = OnnxGraph(
        part="classifier",
        module=ClassifierGraph(net).eval(),
        # mixed lengths, the longest first and a length-1 sequence among them
        example=example_batch(F, [11, 3, 7, 1]),
        inputs=(
            TensorSpec(
                name="x",
                shape=("B", "T", F),
                dtype="float32",
                doc="scaled sequences, zero-padded after each sequence's end",
            ),
            TensorSpec(name="lengths", shape=("B",), dtype="int64", doc="true lengths, in [1, T]"),
        ),
        outputs=(TensorSpec(name="logits", shape=("B", N), dtype="float32", doc=out_doc),),
    )
    return OnnxExport(
        graphs=(graph,),
        metadata={
            "task": config.task,
            "classes": classes if config.task == "classification" else None,
            "scaler": pre.get("scaler"),
            "config": config.to_dict(),
        },
    )


# kind recorded in config.json -> function building its graphs
EXPORTERS: dict[str, Callable[[ModelFiles], OnnxExport]] = {
    "classifier": _export_classifier,
}


# -- writing ----------------------------------------------------------------------------------
def _require_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ConfigError(
            f"ONNX export needs the packages onnx and onnxruntime ({e}); "
            "install them with: pip install 'seqshape[onnx]'"
        ) from None
    return onnx, onnxruntime


def _trace(graph: OnnxGraph, path: Path, opset: int) -> None:
    # The TorchScript-based exporter: the torch.export-based one (dynamo=True) needs onnxscript and
    # adds nothing for these graphs. Its warnings (legacy exporter, LSTM batch size with an initial
    # state we never pass) are not the user's business.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(
                graph.module,
                graph.example,
                str(path),
                dynamo=False,
                input_names=[s.name for s in graph.inputs],
                output_names=[s.name for s in graph.outputs],
                dynamic_axes=graph.dynamic_axes(),
                opset_version=opset,
                do_constant_folding=True,
            )


def _check(graph: OnnxGraph, path: Path, ort) -> float:
    """Run the graph in onnxruntime on its example and on a re-ordered batch; max |onnx - torch|."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    flipped = tuple(t.flip(0) for t in graph.example)
    for example in (graph.example, flipped):
        with torch.no_grad():
            ref = graph.module(*example)
        refs = ref if isinstance(ref, tuple) else (ref,)
        feeds = {s.name: t.numpy() for s, t in zip(graph.inputs, example)}
        got = session.run([s.name for s in graph.outputs], feeds)
        for r, g in zip(refs, got):
            worst = max(worst, float(np.abs(r.numpy() - g).max()))
    return worst


def export_onnx(
    model_dir: str | os.PathLike, out_path: str | os.PathLike | None = None, *, opset: int = OPSET
) -> Path:
    """Export the model directory ``model_dir`` to ONNX; return the path written.

    ``out_path`` defaults to ``model_dir/model.onnx``. The export is checked before it is kept:
    onnxruntime must reproduce torch within 1e-4 on a batch of mixed lengths, else ArtifactError.
    The file is written atomically (a temporary sibling renamed into place).
    """
    onnx, ort = _require_onnx()
    files = load_model_dir(model_dir)
    build = EXPORTERS.get(files.kind)
    if build is None:
        raise ConfigError(
            f"{files.path}: ONNX export supports the kinds {', '.join(sorted(EXPORTERS))}; "
            f"got a {files.kind!r} model"
        )
    spec = build(files)
    out = Path(out_path) if out_path is not None else files.path / "model.onnx"
    if out.suffix != ".onnx":
        raise ConfigError(f"--out: expected a file name ending in .onnx, got {str(out)!r}")
    if out.is_dir():
        raise ConfigError(f"--out: {out} is a directory; expected a file name ending in .onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out] + [out.with_name(f"{out.stem}.{g.part}.onnx") for g in spec.graphs[1:]]
    metadata = {
        "format": ONNX_FORMAT,
        "format_version": ONNX_FORMAT_VERSION,
        "kind": files.kind,
        "seqshape_version": __version__,
        "opset": opset,
        "source": {
            "model_dir": str(files.path),
            "weights_sha256": weights_digest(files.path / "model.safetensors"),
        },
        **spec.metadata,
        "parts": {
            g.part: {
                "file": p.name,
                "inputs": [s.to_dict() for s in g.inputs],
                "outputs": [s.to_dict() for s in g.outputs],
            }
            for g, p in zip(spec.graphs, paths)
        },
    }
    written: list[tuple[Path, Path]] = []
    try:
        for graph, path in zip(spec.graphs, paths):
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.close(fd)
            tmp = Path(name)
            written.append((tmp, path))
            _trace(graph, tmp, opset)
            diff = _check(graph, tmp, ort)
            if not diff <= TOLERANCE:
                raise ArtifactError(
                    f"{path}: the exported {graph.part} graph differs from torch by {diff:.3g} "
                    f"(expected <= {TOLERANCE:g}); not written"
                )
            metadata["parts"][graph.part]["max_abs_diff_vs_torch"] = diff
        for graph, (tmp, _) in zip(spec.graphs, written):
            model = onnx.load(str(tmp))
            onnx.checker.check_model(model)
            model.doc_string = f"seqshape {files.kind} ({graph.part}), exported from {files.path}"
            del model.metadata_props[:]
            entry = model.metadata_props.add()
            entry.key, entry.value = METADATA_KEY, json.dumps(metadata, allow_nan=False)
            onnx.save(model, str(tmp))
        for tmp, path in written:
            os.replace(tmp, path)
    finally:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
    return out


def read_metadata(path: str | os.PathLike) -> dict:
    """The ``seqshape`` metadata of an exported file (needs onnx, not onnxruntime)."""
    onnx, _ = _require_onnx()
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise ArtifactError(f"{path}: no {METADATA_KEY!r} metadata; not written by seqshape export")
