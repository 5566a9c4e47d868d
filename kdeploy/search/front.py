"""The search's plot: every trial, the Pareto front and the hand-picked default."""
from __future__ import annotations

from pathlib import Path

from ..distill.families import FAMILIES


def plot_front(result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    colours = {name: f.colour for name, f in FAMILIES.items()}
    for family in sorted({r.family for r in result.all}):
        rows = [r for r in result.all if r.family == family]
        ax.scatter([r.latency_ms for r in rows], [100 * r.accuracy for r in rows], s=22, alpha=0.6,
                   c=colours.get(family, "#9aa5b1"), label=family)
    if max((r.latency_ms for r in result.all), default=1) / max(min((r.latency_ms for r in result.all), default=1),
                                                                 1e-6) > 10:
        ax.set_xscale("log")
    front = sorted(result.front, key=lambda r: r.latency_ms)
    ax.plot([r.latency_ms for r in front], [100 * r.accuracy for r in front], "o-", c="black", mfc="none",
            label="Pareto front")
    if result.baseline:
        b = result.baseline
        ax.scatter([b.latency_ms], [100 * b.accuracy], marker="*", s=160, c="black", zorder=5,
                   label="hand-picked default")
    ax.set_xlabel("int8 ONNX latency, batch 1, p50 (ms)")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
