"""Terminal summaries of what a stage produced (rich tables, quiet otherwise)."""
from __future__ import annotations

import os
from pathlib import Path

from rich.table import Table

from .console import console


def folder_mib(path: Path) -> float:
    path = Path(path)
    if not path.exists():
        return float("nan")
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def weights_mib(path: Path) -> float:
    path = Path(path)
    return sum(p.stat().st_size for p in path.glob("*.safetensors")) / 2**20


def _pct(x) -> str:
    return f"{100 * x:.2f}" if isinstance(x, (int, float)) else "-"


def _main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def print_training_record(record: dict, out: Path) -> None:
    if not _main_process():
        return
    table = Table(title=f"{record['stage']} → {out}", title_justify="left")
    for col in ("model", "val acc", "test acc", "test F1", "params", "train s"):
        table.add_column(col, justify="right" if col != "model" else "left")
    teacher = record.get("teacher")
    if teacher and "test" in teacher:
        table.add_row("teacher", _pct(teacher.get("validation", {}).get("accuracy")), _pct(teacher["test"]["accuracy"]),
                      _pct(teacher["test"]["macro_f1"]), "", "")
    name = "student" if record["stage"] == "distill" else "model"
    params = record.get("student", {}).get("parameters") or record.get("parameters")
    table.add_row(name, _pct(record.get("validation", {}).get("accuracy")), _pct(record.get("test", {}).get("accuracy")),
                  _pct(record.get("test", {}).get("macro_f1")), f"{params / 1e6:.1f}M" if params else "-",
                  f"{record.get('train_seconds', 0):.0f}")
    console.print(table)


def print_pipeline_summary(rows: list[dict], title: str) -> None:
    """rows: name, accuracy (test), size_mib, params, seconds."""
    table = Table(title=title, title_justify="left")
    for col in ("model", "test acc", "macro F1", "params", "size MiB", "train s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(r["name"], _pct(r.get("accuracy")), _pct(r.get("macro_f1")),
                      f"{r['params'] / 1e6:.1f}M" if r.get("params") else "-",
                      f"{r['size_mib']:.1f}" if r.get("size_mib") is not None else "-",
                      f"{r['seconds']:.0f}" if r.get("seconds") is not None else "-")
    console.print(table)


def print_export_report(report: dict, out: Path) -> None:
    table = Table(title=f"export → {out}", title_justify="left")
    for col in ("file", "MiB", "max |Δlogit|", "argmax agree", "accuracy", "drop (pts)", "gate"):
        table.add_column(col, justify="left" if col == "file" else "right")
    acc = report.get("accuracy", {})
    for name, info in report["files"].items():
        parity = report["parity"].get(name, {})
        a = acc.get(name, {})
        gate = parity.get("passed")
        if "gate_passed" in a:
            gate = a["gate_passed"]
        table.add_row(name, f"{info['mib']:.1f}",
                      f"{parity['max_abs_diff']:.1e}" if "max_abs_diff" in parity else "-",
                      _pct(parity.get("argmax_agreement")), _pct(a.get("accuracy")),
                      f"{a['drop_points']:+.2f}" if "drop_points" in a else "-",
                      {True: "pass", False: "FAIL", None: "-"}[gate])
    console.print(table)
