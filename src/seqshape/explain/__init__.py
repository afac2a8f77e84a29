"""`explain`: what shape goes in, what shape comes out, and why — read off a real forward pass.

``explain(model_or_net, example_batch=None)`` runs the model's own forward pass (no copy of its
logic) on ``example_batch`` or on a dummy batch built from its config, watches the tensors that
cross its sub-modules (forward hooks; `SequenceEncoder.step` calls are counted), and returns an
`Explanation`: one `Stage` per tensor with its name, its shape in the legend's letters and in
numbers, its parameters and one line on what it means; parameter counts per module and in total;
and the memory of one batch's activations. ``str(explanation)`` is the table `seqshape explain`
prints, ``explanation.to_dict()`` its JSON, ``explanation.plot("f.png")`` the picture.

Every recorded shape is checked against its legend letters when it is recorded (``(B, T, D·H)``
must equal the tensor's shape for the sizes in force), so the table cannot drift from the code.

Modes live in a small registry, ``EXPLAINERS[mode]``, one `Explainer` each: how to build a net
from CLI-style options, a dummy batch, how to read a user's batch, the traced pass and the training
forward whose saved tensors are measured. Adding a mode is adding one entry.

The package: `core` (the result, options, tracing and the registry), `batches` (dummy and user
batches), one module per mode (`classify`, `tag`, `forecast`, `seq2seq`, `generate`; importing
each registers it), `front` (the entry points) and `plot` (the picture).
"""

import importlib

from .core import (
    ACTIVATION_NOTE,
    EXPLAINERS,
    EXTRA_LEGEND,
    MODEL_FIELDS,
    TRAINING_NOTE,
    Explainer,
    ExplainOptions,
    Explanation,
    Stage,
    Trace,
    register,
)
from .front import explain, explain_mode, explain_model_dir, explainer_for, load_net

# Importing a mode's module registers it; this order is the order of `EXPLAINERS` (and of the CLI).
for _mode in ("classify", "tag", "forecast", "seq2seq", "generate"):
    importlib.import_module(f"{__name__}.{_mode}")
del _mode

__all__ = [
    "ACTIVATION_NOTE",
    "EXPLAINERS",
    "EXTRA_LEGEND",
    "MODEL_FIELDS",
    "TRAINING_NOTE",
    "Explainer",
    "Explanation",
    "ExplainOptions",
    "Stage",
    "Trace",
    "explain",
    "explain_mode",
    "explain_model_dir",
    "explainer_for",
    "load_net",
    "register",
]
