"""Benchmark reports: a rich terminal table, report.json, report.md and a self-contained
report.html (plots embedded as base64 PNG, so it opens offline)."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from ..fsutil import atomic_dir, write_json


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


def plots(report: dict) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = report["models"]
    bs = str(min(int(b) for b in models[0]["latency"]))
    out = {}
    if report.get("accuracy"):
        pts = [(m["latency"][bs]["p50_ms"], 100 * m["accuracy"]["accuracy"]) for m in models]
        front = pareto_front(pts)
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for m, (x, y) in zip(models, pts):
            ax.scatter(x, y, s=40)
            ax.annotate(m["name"], (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "k--", lw=1, marker="o", mfc="none",
                ms=11, label="Pareto front")
        _latency_axis(ax, [p[0] for p in pts], "x", f"p50 latency, batch {bs} (ms)")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=8)
        ax.set_title("accuracy vs latency")
        out["accuracy_vs_latency"] = _fig_to_b64(fig)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.45 * len(models)))
    ax.barh([m["name"] for m in models], [m["size_mib"] for m in models], color="tab:blue")
    ax.set_xlabel("size on disk (MiB)")
    ax.invert_yaxis()
    ax.set_title("model size")
    out["size"] = _fig_to_b64(fig)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.45 * len(models)))
    data = [[v for v in m["_values"][bs]] for m in models] if all("_values" in m for m in models) else None
    if data:
        ax.boxplot(data, vert=False, tick_labels=[m["name"] for m in models], showfliers=True)
        _latency_axis(ax, [v for d in data for v in d], "x", f"latency per call, batch {bs} (ms)")
        ax.invert_yaxis()
        ax.set_title("latency distribution")
        out["latency_distribution"] = _fig_to_b64(fig)
    plt.close(fig)
    return out


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = ["# kdeploy benchmark", "",
             f"Machine: {env['machine']['cpu']}, {env['machine']['cores']} cores"
             + (f", GPU {env['machine']['gpu']}" if env["machine"].get("gpu") else "")
             + f"; threads {env['threads']}; provider requested: {report['config']['provider']}; "
             f"latency inputs: {report['latency_inputs']}.",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()), ""]
    for bs in report["models"][0]["latency"]:
        lines += [f"## Batch {bs}", "",
                  "| model | provider | p50 ms | p90 ms | p95 ms | p99 ms | mean ± sd ms | sentences/s | tokenizer ms | speed-up vs reference |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for m in report["models"]:
            s = m["latency"][bs]
            lines.append(f"| {m['name']} | {m['provider']} | {s['p50_ms']:.2f} | {s['p90_ms']:.2f} | {s['p95_ms']:.2f} | "
                         f"{s['p99_ms']:.2f} | {s['mean_ms']:.2f} ± {s['stdev_ms']:.2f} | {s['throughput_per_s']:.1f} | "
                         f"{m['tokenizer_ms'][bs]:.2f} | {m['vs_reference'][f'p50_speedup_bs{bs}']:.2f}× |")
        lines.append("")
    lines += ["## Size, memory and accuracy", "",
              "| model | size MiB | size ratio | RSS growth on load MiB | accuracy | macro-F1 | agreement with reference | drop (points) |",
              "|---|---|---|---|---|---|---|---|"]
    for m in report["models"]:
        a = m.get("accuracy") or {}
        pct = lambda v: f"{100 * v:.2f}" if isinstance(v, (int, float)) else "-"
        lines.append(f"| {m['name']} | {m['size_mib']:.1f} | {m['vs_reference']['size_ratio']:.3f} | {m['memory_mib']} | "
                     f"{pct(a.get('accuracy'))} | {pct(a.get('macro_f1'))} | {pct(a.get('agreement'))} | "
                     f"{a.get('drop_points_vs_reference', '-')} |")
    notes = [f"- {m['name']}: {n}" for m in report["models"] for n in m["notes"]]
    if notes:
        lines += ["", "Notes:", *notes]
    lines += ["", f"Reference model: {report['reference']}. Process peak RSS: {report['process_peak_rss_mib']} MiB.", ""]
    return "\n".join(lines)


def html_page(report: dict, md: str, images: dict[str, str]) -> str:
    body = []
    for line in md.splitlines():
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("|---"):
            continue
        elif line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
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


def write_reports(report: dict, out: str | Path, values: dict[str, dict[str, list[float]]] | None = None) -> Path:
    """Written into a temporary folder and renamed into place."""
    enriched = {**report, "models": [{**m, "_values": values[m["name"]]} for m in report["models"]]} if values else report
    images = plots(enriched)
    md = markdown(report)
    with atomic_dir(out) as tmp:
        write_json(tmp / "report.json", report)
        (tmp / "report.md").write_text(md, encoding="utf-8")
        (tmp / "report.html").write_text(html_page(report, md, images), encoding="utf-8")
    return Path(out)


def print_table(report: dict) -> None:
    from rich.table import Table

    from ..console import console

    bss = list(report["models"][0]["latency"])
    table = Table(title=f"benchmark ({report['config']['provider']}, {report['environment']['threads']} threads)",
                  title_justify="left")
    table.add_column("model")
    table.add_column("provider")
    for bs in bss:
        table.add_column(f"p50 ms bs{bs}", justify="right")
        table.add_column(f"sent/s bs{bs}", justify="right")
    for col in ("MiB", "accuracy", "drop pts"):
        table.add_column(col, justify="right")
    for m in report["models"]:
        a = m.get("accuracy") or {}
        row = [m["name"], m["provider"]]
        for bs in bss:
            row += [f"{m['latency'][bs]['p50_ms']:.2f}", f"{m['latency'][bs]['throughput_per_s']:.0f}"]
        row += [f"{m['size_mib']:.1f}", f"{100 * a['accuracy']:.2f}" if a else "-",
                f"{a['drop_points_vs_reference']:+.2f}" if a else "-"]
        table.add_row(*row)
    console.print(table)
    for m in report["models"]:
        for n in m["notes"]:
            console.print(f"[yellow]note[/yellow] {m['name']}: {n}")
