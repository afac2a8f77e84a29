"""ONNX export of a model directory: one graph per part, self-describing, checked on export.

    export_onnx("runs/jv/model")               # -> runs/jv/model/model.onnx
    export_onnx("runs/jv/model", "clf.onnx")   # anywhere else

Every kind is a function ``ModelFiles -> OnnxExport`` registered in ``seqshape.kinds`` (its ``exporter``); it returns one
`OnnxGraph` per part. The first part is written to ``out_path``; further parts go beside it as
``<stem>.<part>.onnx`` (``model.step.onnx``) and are listed in the metadata. Every file carries the
same JSON under the ONNX metadata key ``"seqshape"`` (``metadata_props``): the kind, each part's
file and input/output names and shapes, the preprocessing (class names, scalers, vocabularies),
the model config, the SHA-256 of the weights it came from and the largest difference from torch
measured on export (each part's graph against its torch module, on a batch of mixed lengths and
on that batch reversed; more than 1e-4 and nothing is written). `seqshape.infer.onnx_runtime`
reads them back without torch. B, T, N, S are dynamic axes; all floats are float32, lengths int64.

Variable lengths travel as a ``lengths`` input, never as a PackedSequence, and padding sits after
each sequence's end. Where only outputs are needed (classifier) the graph runs the encoder's
*padded* path; where final states are needed (forecaster, seq2seq) every recurrent layer and
direction gets its lengths as the ONNX LSTM/GRU ``sequence_lens`` (`packed_encode`), so each
state is the one at each sequence's true last step. Either way a sequence's answer is the same
alone or in a padded batch, as in torch. Shapes: L layers, H hidden, Z = O+Cp values predicted and
fed back, Cf known covariates, P parameters per value (mse 1, gaussian 2, student_t 3, quantile Q).

``classifier`` (one file)::

    classifier    x (B, T, F), lengths (B,)                        -> logits (B, N)  (regression (B, O))

``forecaster``, autoregressive (``model.onnx`` = encode, ``model.step.onnx`` = step); GRU cells
have no ``c``/``c_next``; ``future_cov``/``f_next`` exist only when Cf > 0, ``recent`` /
``recent_next`` only with the linear highway (``highway`` = p > 0)::

    encode        history (B, N, Z)      scaled [targets, past covariates] of rows 0..N-1
                  lengths (B,)           each history's length, in [1, N]
                  future_cov (B, N, Cf)  scaled known covariates of rows 1..N (step t's input
                                         carries row t+1's, as in training)
               -> params (B, Z, P), point (B, Z)   the first forecast step (row N)
                  offset (B, Z)                    the window level (see below)
                  h, c (L, B, H)                   the state after each history's true last step
                  recent (B, p, Z)                 the highway's window: the last p values
                                                   (minus the offset), the first one repeated
                                                   in front of histories shorter than p
    step          z (B, Z)               the value fed back: the previous point (or a draw)
                  f_next (B, Cf)         scaled known covariates of the row being predicted
                  h, c (L, B, H), offset (B, Z), recent (B, p, Z)
               -> params (B, Z, P), point (B, Z), h_next, c_next (L, B, H), recent_next
                                                   (the window moved on by ``z``)

  K steps = encode once, then step K-1 times fed the previous ``point`` with the carried state
  (`ForecasterNet.forecast`'s loop; any K): the caller carries every step output named
  ``<input>_next`` back into that input. ``window_norm`` is handled inside the graphs: encode
  computes the window level from the history (``"last"``: each history's value at its true last
  step; ``"mean"``: its mean over valid steps; ``"none"``: zeros), subtracts it before the LSTM
  and returns it as ``offset``; every step takes it back, subtracts it from ``z`` and adds it to
  the location parameters it returns. So ``z``, ``params`` and ``point`` are all at the window's
  level in scaled units, and the caller only unscales (metadata ``scaling``, rows per series).
  ``point`` is ``params[..., point_index]`` (metadata: the mean, or the median quantile).

``forecaster``, direct (one file, K fixed at the training horizon)::

    direct        history, lengths, future_cov as in encode; horizon_cov (B, K, Cf) the known
                  covariates of the K forecast rows N..N+K-1  -> params (B, K, Z, P), point (B, K, Z)

``seq2seq`` (``model.onnx`` = encoder, ``model.decoder_step.onnx``); ``projected`` only for
attention additive/general, the step's keys/projected/mask/attention only with attention, a value
target gives ``values`` (B, O) and ``stop`` (B,) logits instead of ``logits``::

    encoder       src (B, S) ids, PAD after each end | (B, S, F) scaled values; src_lengths (B,)
               -> keys (B, S, D·H) zero on padding, projected (B, S, A), mask (B, S) bool,
                  h, c (L, B, H_d): the decoder's initial state (through the bridge)
    decoder_step  prev (B,) ids (BOS first) | (B, O) values (metadata ``start`` first),
                  h, c (L, B, H_d), keys, projected, mask
               -> logits (B, V), h_next, c_next (L, B, H_d), attention (B, S)

  Greedy decoding feeds each step's argmax back until every row has produced EOS
  (`onnx_runtime.OnnxSeq2Seq`); the graph is `Seq2SeqNet.step`, so beam search could drive it too.

Layout: the graph contract and the traceable recurrent core live in `onnx_graphs`, the forecaster's
graphs in `export_forecaster` (its step graph is `ForecasterNet.step`), the seq2seq graphs in
`export_seq2seq`; the classifier's graph, the registry and the writing live here.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .. import __version__, kinds
from ..artifacts import ModelFiles, build_net, config_from_dict, load_model_dir, writer_temp
from ..errors import ArtifactError, ConfigError
from ..models.classifier import ClassifierConfig, ClassifierNet
from ..models.encoder import gather_last, reverse_within_length
from ..outfiles import file_mode
from .export_forecaster import (  # noqa: F401 (re-exported: they were defined here)
    ForecastDirectGraph,
    ForecastEncodeGraph,
    ForecastStepGraph,
    _export_forecaster,
)
from .export_seq2seq import Seq2SeqEncoderGraph, Seq2SeqStepGraph, _export_seq2seq  # noqa: F401
from .onnx_graphs import (  # noqa: F401 (re-exported: they were defined here)
    OnnxExport,
    OnnxGraph,
    TensorSpec,
    example_batch,
    packed_encode,
)
from .onnx_runtime import METADATA_KEY, ONNX_FORMAT, ONNX_FORMAT_VERSION, weights_digest

OPSET = 17
TOLERANCE = 1e-4  # largest |onnx - torch| accepted on the export check


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
        x_in, lengths_in = x, lengths  # what the kernel part reads
        conv = None
        if self.net.frontend is not None:
            # (B, T, F) -> (B, T', C) and each sequence's pooled length (all traceable ops)
            x, lengths = self.net.frontend(x, lengths)
            conv = x
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
        # (B, T', D·H) -> (B, D·H [+ C]): the net's own pooling
        pooled = self.net.summary(inp, last, mask, conv)
        # (B, D·H [+ C]) -> (B, N), mixed with the kernel part's probabilities where there is one
        return self.net.mix(self.net.head(pooled), x_in, lengths_in)


def _export_classifier(files: ModelFiles) -> OnnxExport:
    config = config_from_dict(ClassifierConfig, files.config, files.path / "config.json")
    net = build_net(ClassifierNet, config, files)
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
            "series_norm": pre.get("series_norm", False) is True,
            "config": config.to_dict(),
        },
    )


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


@contextlib.contextmanager
def _native_stderr_without(noise: str):
    """Drop the lines containing ``noise`` that C++ code writes to file descriptor 2 meanwhile
    (they bypass Python's warnings); every other line is written to stderr afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode(errors="replace").splitlines():
                if noise not in line:
                    print(line, file=sys.stderr)


def _trace(graph: OnnxGraph, path: Path, opset: int) -> None:
    # The TorchScript-based exporter: the torch.export-based one (dynamo=True) needs onnxscript and
    # adds nothing for these graphs. Its warnings (legacy exporter, LSTM batch size with an initial
    # state we never pass, no shape inference for the packing around an LSTM given its lengths)
    # are not the user's business.
    with _native_stderr_without("shape inference of prim::Pa"), warnings.catch_warnings():
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
            # bool outputs (masks) compare as 0/1
            diff = np.abs(r.numpy().astype(np.float64) - np.asarray(g, dtype=np.float64))
            worst = max(worst, float(diff.max()) if diff.size else 0.0)
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
    build = kinds.resolve(files.kind, "exporter", where=str(files.path), what="ONNX export")
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
        # provenance: where the graphs came from ("source" is a seq2seq side's description)
        "origin": {
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
            # .NAME.tmp-PID-*: a killed export's are removed by the next export of NAME
            tmp = writer_temp(path)
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
            os.chmod(tmp, file_mode())  # the umask's mode, as any file a command writes
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
