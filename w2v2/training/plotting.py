"""Training curves as one PNG: a grid of panels, one metric each, with reference lines.

Uses matplotlib's object API (``Figure`` + Agg canvas), so it never touches pyplot's global
state or the backend of the caller.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["PRETRAINING_PANELS", "plot_curves", "pretraining_reference_lines"]


def plot_curves(
    history: Sequence[Mapping[str, float]] | Mapping[str, Sequence[Mapping[str, float]]],
    path: str | os.PathLike,
    *,
    panels: Sequence[str | tuple[str, str]],
    x: str = "step",
    references: Mapping[str, Sequence[tuple[float, str]]] | None = None,
    log_scale: Sequence[str] = (),
    title: str = "",
    columns: int = 3,
    dpi: int = 70,
) -> Path:
    """Plot ``history`` (one dict of metrics per logged step) to ``path`` and return it.

    history: one run's records, or ``{run name: records}`` to draw several runs on the same
    panels (with a legend), e.g. a pretrained model against its random-init baseline.

    panels: metric keys, or ``(key, label)`` pairs; a key absent from every record is skipped.
    references: horizontal lines per key, ``{"contrastive_accuracy": [(0.05, "chance")]}``.
    log_scale: keys drawn on a log y axis.
    dpi: resolution; the default keeps a 12-panel figure under 100 kB.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = dict(history) if isinstance(history, Mapping) else {"": history}
    records = [r for run in runs.values() for r in run]
    panels = [(p, p) if isinstance(p, str) else tuple(p) for p in panels]
    panels = [(k, label) for k, label in panels if any(k in r for r in records)]
    if not panels:
        raise ValueError(f"none of the panels is in the history (its keys: {sorted({k for r in records for k in r})}).")
    references = references or {}
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(4.2 * min(columns, len(panels)), 2.8 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    for n, (key, label) in enumerate(panels):
        ax = fig.add_subplot(rows, min(columns, len(panels)), n + 1)
        for color, (name, run) in enumerate(runs.items()):  # a run keeps its colour on every panel
            points = [(r[x], r[key]) for r in run if key in r and x in r]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], f"C{color}", lw=1.2, label=name or None, marker="." if name else None)
        if len(runs) > 1:
            ax.legend(fontsize=7)
        for value, name in references.get(key, ()):
            ax.axhline(value, color="grey", ls="--", lw=0.8)
            ax.annotate(name, (0.01, value), xycoords=("axes fraction", "data"), fontsize=7, color="grey", va="bottom")
        if key in log_scale:
            ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(x, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


# w2v2-pretrain's curves: (metric, panel title), in the grid's order
PRETRAINING_PANELS = [
    ("loss", "loss (nats / masked frame)"), ("contrastive_loss", "L_m (nats / masked frame)"),
    ("contrastive_accuracy", "contrastive accuracy"), ("code_perplexity", "code perplexity"),
    ("prob_perplexity", "prob perplexity"), ("diversity_loss", "L_d"), ("kmeans_loss", "L_k (k-means quantizer)"),
    ("feature_penalty", "feature penalty"), ("temperature", "Gumbel temperature"), ("learning_rate", "learning rate"),
    ("grad_norm", "gradient norm"), ("throughput", "audio s / s"),
]  # fmt: skip


def pretraining_reference_lines(config) -> dict[str, list[tuple[float, str]]]:
    """The chance levels drawn on pretraining curves, for a ``W2V2Config``: L_m at ln(K+1),
    accuracy at 1/(K+1) and 5x it (collapse and health signs), perplexities at G."""
    chance = 1 / (config.num_negatives + 1)
    groups = config.num_codevector_groups
    return {
        "contrastive_loss": [(math.log(config.num_negatives + 1), "ln(K+1)")],
        "contrastive_accuracy": [(chance, "chance"), (5 * chance, "5x chance")],
        "code_perplexity": [(groups, "G")],
        "prob_perplexity": [(groups, "G")],
    }
