"""The search's outputs: a plot of every trial with the Pareto front, and a recipe per front point."""
from __future__ import annotations

from pathlib import Path

from ..configtools import to_dict


def plot_front(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    rows = result["all"]
    ax.scatter([r["latency_ms"] for r in rows], [100 * r["accuracy"] for r in rows], c="#9aa5b1", s=22,
               label="trials")
    front = sorted(result["front"], key=lambda r: r["latency_ms"])
    ax.plot([r["latency_ms"] for r in front], [100 * r["accuracy"] for r in front], "o-", c="#d9480f",
            label="Pareto front")
    if result["baseline"]:
        b = result["baseline"]
        ax.scatter([b["latency_ms"]], [100 * b["accuracy"]], marker="*", s=160, c="#1c7ed6", zorder=5,
                   label="hand-picked default")
    ax.set_xlabel("int8 ONNX latency, batch 1, p50 (ms)")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_recipe(path: Path, row: dict, cfg) -> Path:
    """A complete recipe (distill → prune → export → bench → package) for one front point."""
    import yaml

    train = {"epochs": cfg.epochs, "learning_rate": float(row["learning_rate"]), "max_length": cfg.max_length,
             "seed": cfg.seed}
    recipe = {
        "name": f"search-trial-{row['trial']:03d}",
        "description": (f"kdeploy search front point: validation accuracy {100 * row['accuracy']:.2f}% (int8), "
                        f"p50 {row['latency_ms']:.2f} ms at batch 1"),
        "data": {k: v for k, v in to_dict(cfg.data).items() if v is not None},
        "distill": {"teacher": cfg.teacher, "student": {"kind": "layers", "layers": int(row["layers"])},
                    "alpha": float(row["alpha"]), "temperature": float(row["temperature"]), "train": train},
        "export": {"optimize": "O2", "quantize": "int8"},
        "bench": {"batch_sizes": [1, 32]},
        "package": {"archive": "tar.gz"},
    }
    if row["heads"] or row["vocab"]:
        recipe["prune"] = {"vocab": bool(row["vocab"]), "heads": float(row["heads"]),
                           "recover_epochs": cfg.recover_epochs}
    path.write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True))
    return path
