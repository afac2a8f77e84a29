"""`Explanation.plot`: the stages as a flow, the batch's mask and the parameters per module."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from .core import Explanation, _human


# -- the picture ---------------------------------------------------------------------------------
def _plot(e: Explanation, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    n = len(e.stages)
    height = max(4.0, 0.62 * n + 1.2)
    fig = plt.figure(figsize=(13, height), dpi=100)
    grid = fig.add_gridspec(2, 2, width_ratios=[2.3, 1], wspace=0.15, hspace=0.45)
    ax = fig.add_subplot(grid[:, 0])
    ax.set_xlim(0, 1)
    ax.set_ylim(-n + 0.3, 1.0)
    ax.axis("off")
    ax.set_title(f"seqshape explain: {e.mode} — {e.summary}", fontsize=10, loc="left")
    for i, s in enumerate(e.stages):
        y = -i
        face = "#e8f0fb" if s.params else "#f4f4f4"
        ax.add_patch(
            FancyBboxPatch(
                (0.01, y - 0.36),
                0.98,
                0.72,
                boxstyle="round,pad=0.01,rounding_size=0.02",
                facecolor=face,
                edgecolor="#7a8ca8",
                linewidth=0.8,
            )
        )
        params = f"   [{s.params:,} params]" if s.params else ""
        ax.text(
            0.025,
            y + 0.12,
            f"{s.name}  {s.shape_text}{params}",
            fontsize=8.5,
            fontweight="bold",
            va="center",
            family="monospace",
        )
        meaning = textwrap.shorten(s.meaning, width=120, placeholder=" …")
        ax.text(0.025, y - 0.17, meaning, fontsize=7.5, va="center", color="#333333")
        if i + 1 < n:
            ax.annotate(
                "",
                xy=(0.5, y - 0.62),
                xytext=(0.5, y - 0.38),
                arrowprops={"arrowstyle": "->", "color": "#7a8ca8", "lw": 0.8},
            )
    top = fig.add_subplot(grid[0, 1])
    if e.lengths is not None and e.steps:
        T = e.steps
        # (B, T): 1 on valid steps
        mask = (np.arange(T)[None, :] < np.asarray(e.lengths)[:, None]).astype(float)
        top.imshow(mask, cmap="Greens", vmin=0, vmax=1.3, aspect="auto", interpolation="nearest")
        letter = "S" if "S" in e.sizes else "T"
        top.set_title(f"mask (B, {letter}): valid steps green, padding white", fontsize=9)
        top.set_xlabel("step")
        top.set_yticks(range(len(e.lengths)), labels=[f"len {v}" for v in e.lengths])
    else:
        top.axis("off")
        sizes = "\n".join(f"{k} = {v}" for k, v in e.sizes.items())
        top.text(0.05, 0.95, "sizes\n" + sizes, va="top", family="monospace", fontsize=9)
    bottom = fig.add_subplot(grid[1, 1])
    names = [k for k, v in e.parameters.items() if v]
    values = [e.parameters[k] for k in names]
    bottom.barh(range(len(names)), values, color="#7a8ca8")
    bottom.set_yticks(range(len(names)), labels=names, fontsize=8)
    bottom.invert_yaxis()
    bottom.set_title(f"parameters: {e.total_parameters:,} in total", fontsize=9)
    bottom.tick_params(axis="x", labelsize=7)
    fig.text(0.67, 0.01, f"activations of one batch: {_human(e.activation_bytes)}", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
