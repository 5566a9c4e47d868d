"""Benchmark report files: report.json, report.md and a self-contained report.html (plots
embedded as base64 PNG, so it opens offline), all from one BenchReport."""
from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

from ..fsutil import atomic_dir, write_text
from .result import REPORT, BenchReport


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (lower latency, higher accuracy)."""
    front = []
    for i, (lat, acc) in enumerate(points):
        dominated = any((l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc) for j, (l2, a2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _fig_to_b64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _latency_axis(ax, values, axis: str, label: str) -> None:
    """Log scale only when the values span more than a decade; plain numbers on the ticks."""
    from matplotlib.ticker import ScalarFormatter

    if max(values) / max(min(values), 1e-9) > 10:
        getattr(ax, f"set_{axis}scale")("log")
        label += ", log scale"
        fmt = ScalarFormatter()
        fmt.set_scientific(False)
        getattr(ax, f"{axis}axis").set_major_formatter(fmt)
    getattr(ax, f"set_{axis}label")(label)


def plots(report: BenchReport, values: dict[str, dict[int, list[float]]] | None = None) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = report.models
    bs = min(report.batch_sizes)
    out = {}
    if all(m.accuracy is not None for m in models):
        pts = [(m.latency[bs].p50_ms, 100 * m.accuracy.main) for m in models]
        front = pareto_front(pts)
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for m, (x, y) in zip(models, pts):
            ax.scatter(x, y, s=40)
            ax.annotate(m.name, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "k--", lw=1, marker="o", mfc="none",
                ms=11, label="Pareto front")
        _latency_axis(ax, [p[0] for p in pts], "x", f"p50 latency, batch {bs} (ms)")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=8)
        ax.set_title("accuracy vs latency")
        out["accuracy_vs_latency"] = _fig_to_b64(fig)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.45 * len(models)))
    ax.barh([m.name for m in models], [m.size_mib for m in models], color="tab:blue")
    ax.set_xlabel("size on disk (MiB)")
    ax.invert_yaxis()
    ax.set_title("model size")
    out["size"] = _fig_to_b64(fig)
    plt.close(fig)
    if values:
        fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.45 * len(models)))
        data = [values[m.name][bs] for m in models]
        ax.boxplot(data, vert=False, tick_labels=[m.name for m in models], showfliers=True)
        _latency_axis(ax, [v for d in data for v in d], "x", f"latency per call, batch {bs} (ms)")
        ax.invert_yaxis()
        ax.set_title("latency distribution")
        out["latency_distribution"] = _fig_to_b64(fig)
        plt.close(fig)
    return out


_CELL_BAR = re.compile(r"(?<!\\)\|")  # a cell border: a bar not escaped as \|


def html_page(md: str, images: dict[str, str]) -> str:
    body = []
    for line in md.splitlines():
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("|---"):
            continue
        elif line.startswith("|"):
            cells = [html.escape(c.strip().replace("\\|", "|")) for c in _CELL_BAR.split(line.strip()[1:-1])]
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    joined, out, in_table = body, [], False
    for part in joined:
        if part.startswith("<tr>") and not in_table:
            out.append("<table>")
            in_table = True
        if not part.startswith("<tr>") and in_table:
            out.append("</table>")
            in_table = False
        out.append(part)
    if in_table:
        out.append("</table>")
    figs = "".join(f'<figure><img alt="{k}" src="data:image/png;base64,{v}"><figcaption>{k.replace("_", " ")}</figcaption></figure>'
                   for k, v in images.items())
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;"
             "margin:1em 0;font-size:13px}td{border:1px solid #ccc;padding:3px 7px;text-align:right}"
             "tr:first-child td{font-weight:bold;background:#f3f3f3}td:first-child{text-align:left}"
             "figure{display:inline-block;margin:1em}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>kdeploy benchmark</title><style>{style}</style></head><body>{''.join(out)}{figs}</body></html>"


def write_reports(report: BenchReport, out: str | Path, values: dict | None = None, overwrite: bool = False,
                  extra: dict[str, Path] | None = None) -> Path:
    """Written into a temporary folder and renamed into place, with the `extra` folders (the
    baselines' deployable files) copied in under their names when they hold anything."""
    import shutil

    images = plots(report, values)
    md = report.to_markdown()
    with atomic_dir(out, overwrite=overwrite) as tmp:
        report.save(tmp / REPORT)
        write_text(tmp / "report.md", md)
        write_text(tmp / "report.html", html_page(md, images))
        for name, folder in (extra or {}).items():
            if folder.is_dir() and any(folder.iterdir()):
                shutil.copytree(folder, tmp / name)
    return Path(out)
