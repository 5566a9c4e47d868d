"""The search's plot: every trial, the Pareto front and the hand-picked default."""
from __future__ import annotations

from pathlib import Path


def plot_front(result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    rows = result.all
    ax.scatter([r.latency_ms for r in rows], [100 * r.accuracy for r in rows], c="#9aa5b1", s=22, label="trials")
    front = sorted(result.front, key=lambda r: r.latency_ms)
    ax.plot([r.latency_ms for r in front], [100 * r.accuracy for r in front], "o-", c="#d9480f", label="Pareto front")
    if result.baseline:
        b = result.baseline
        ax.scatter([b.latency_ms], [100 * b.accuracy], marker="*", s=160, c="#1c7ed6", zorder=5,
                   label="hand-picked default")
    ax.set_xlabel("int8 ONNX latency, batch 1, p50 (ms)")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
