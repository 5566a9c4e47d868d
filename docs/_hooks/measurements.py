"""MkDocs hook: the measurements section, generated at build time from `bench/results/`.

One page per results file `bench/results/NAME.json` (`measurements/NAME.md`): the machine (CPU,
cores, CPU flags where the file records them) and the library versions that file records, its
command, date and machine load when recorded, the Markdown report written beside it by the same
run, and the JSON itself. A report with no JSON record gets a page of its own too, marked as such.
`measurements/index.md` lists them all with their machines. Nothing is retyped: a figure on these
pages is read from the files on every build, and a file added to `bench/results/` gets its page.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from mkdocs.structure.files import File

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
SECTION = "measurements"
NAV_TITLE = "Measurements"
NOT_RECORDED = "machine not recorded"
_FLAG_KEYS = ("cpu_flags", "flags", "isa", "machine_class")


# ---- reading the files -----------------------------------------------------------------------
def _find(data, key: str, limit: int = 2000):
    """The first value under `key` in a breadth-first walk of dicts (and lists), with its path."""
    queue, seen = [("", data)], 0
    while queue and seen < limit:
        path, node = queue.pop(0)
        seen += 1
        if isinstance(node, dict):
            if key in node and node[key] not in (None, {}, [], ""):
                return node[key], f"{path}/{key}".lstrip("/")
            queue += [(f"{path}/{k}", v) for k, v in node.items() if isinstance(v, (dict, list))]
        elif isinstance(node, list):
            queue += [(f"{path}[{i}]", v) for i, v in enumerate(node[:20]) if isinstance(v, (dict, list))]
    return None, None


def _companion(stem: str, markdown: dict[str, Path]) -> str | None:
    """The Markdown report a results file belongs to: same name, or the name less `_suffix` parts
    (`sst_fronts_sst2.json` -> `sst_fronts.md`)."""
    parts = stem.split("_")
    for n in range(len(parts), 0, -1):
        candidate = "_".join(parts[:n])
        if candidate in markdown:
            return candidate
    return None


def _records() -> list[dict]:
    """One record per results file (with its report when the report has the same name), and one
    per report that has no results file of its own name (with the results files it covers)."""
    markdown = {p.stem: p for p in sorted(RESULTS.glob("*.md"))}
    records, covers = [], {}
    for path in sorted(RESULTS.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            error = None
        except (OSError, ValueError) as exc:
            data, error = None, str(exc)
        report = _companion(path.stem, markdown)
        if report is not None and report != path.stem:
            covers.setdefault(report, []).append(path.stem)
        records.append({"stem": path.stem, "json": path, "data": data, "error": error,
                        "report": markdown[path.stem] if report == path.stem else None,
                        "report_page": report if report not in (None, path.stem) else None, "covers": []})
    json_stems = {r["stem"] for r in records}
    for stem, path in markdown.items():
        if stem not in json_stems:
            records.append({"stem": stem, "json": None, "data": None, "error": None, "report": path,
                            "report_page": None, "covers": covers.get(stem, [])})
    for r in records:
        r.update(_facts(r))
    return sorted(records, key=lambda r: r["stem"])


def _facts(record: dict) -> dict:
    data = record["data"] if isinstance(record["data"], dict) else {}
    machine, machine_at = _find(data, "machine")
    machine = machine if isinstance(machine, dict) else ({"cpu": machine} if isinstance(machine, str) else None)
    versions, versions_at = _find(data, "versions")
    flags = None
    for key in _FLAG_KEYS:
        value = (machine or {}).get(key) or data.get(key)
        if value:
            flags = ", ".join(value) if isinstance(value, list) else str(value)
            break
    command = data.get("command") or data.get("commands")
    load, _ = _find(data, "machine_load")
    title = record["stem"]
    if record["report"] is not None:
        first = next((line for line in record["report"].read_text(encoding="utf-8").splitlines()
                      if line.startswith("# ")), None)
        if first:
            title = first[2:].strip()
    return {"machine": machine, "machine_at": machine_at, "versions": versions if isinstance(versions, dict) else None,
            "versions_at": versions_at, "flags": flags, "command": command, "date": data.get("date"),
            "load": load if isinstance(load, dict) else None, "title": title,
            "headline": data.get("headline")}


# ---- writing the pages -------------------------------------------------------------------------
def _cell(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _report_markdown(path: Path, pages: dict[str, str], images: set[str]) -> str:
    """A report, set under the page's own title: headings one level down, its first heading
    dropped (the page's title), `|` inside table cells escaped, and links that would point
    outside the site turned into plain text."""
    out, fenced, dropped = [], False, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            out.append(line)
            continue
        if not fenced:
            if line.startswith("# ") and not dropped:
                dropped = True
                continue
            if re.match(r"#{1,5} ", line):
                line = "#" + line
            if line.lstrip().startswith("|"):
                line = re.sub(r"\|(Δ[^|\s]*)\|", r"\\|\1\\|", line)  # |Δp| inside a cell
            line = re.sub(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)", lambda m: _link(m, pages, images), line)
        out.append(line)
    return "\n".join(out).strip() + "\n"


def _link(match, pages: dict[str, str], images: set[str]) -> str:
    bang, text, target = match.groups()
    if re.match(r"[a-z]+://|#|mailto:", target):
        return match.group(0)
    name = target.split("#")[0]
    if name in images:
        return match.group(0)
    if name.endswith(".md") and Path(name).stem in pages:
        return f"{bang}[{text}]({pages[Path(name).stem]}.md)"
    return f"{text} (`{target}`)"


def _machine_line(record: dict | None) -> str:
    machine = (record or {}).get("machine")
    if not machine:
        return NOT_RECORDED
    return ", ".join(str(x) for x in (machine.get("cpu"), record.get("flags")) if x) or "machine recorded"


def _page(record: dict, pages: dict[str, str], images: set[str], records_by_stem: dict[str, dict]) -> str:
    lines = []
    lines += [f"# {_cell(record['title'])}", ""]
    sources = [f"`bench/results/{p.name}`" for p in (record["json"], record["report"]) if p is not None]
    lines += [f"Generated at build time from {' and '.join(sources)}.", ""]
    machine = record["machine"]
    if machine:
        versions = record["versions"] or {}
        said = ", ".join(f"{k} {versions[k]}" for k in ("torch", "transformers", "onnxruntime") if k in versions)
        lines += ["!!! info \"Measured on\"",
                  f"    {_cell(_machine_line(record))}" + (f", {machine['cores']} cores" if "cores" in machine else "")
                  + ("" if record["flags"] else " (CPU flags not recorded)") + (f"; {_cell(said)}" if said else "")
                  + ".", ""]
    if record["json"] is None and record["covers"]:
        lines += ["!!! info \"Machine and versions: see its records\"",
                  "    This report covers several results files; each page names the machine and versions it "
                  "records: " + ", ".join(f"[{c}]({c}.md) ({_machine_line(records_by_stem.get(c))})"
                                           for c in record["covers"]) + ".", ""]
    elif record["json"] is None:
        lines += ["!!! warning \"" + NOT_RECORDED.capitalize() + "\"",
                  "    This report has no JSON record, so no machine or versions are recorded for it here; "
                  "the report's own text names what it ran on, where it says.", ""]
    elif machine is None:
        lines += ["!!! warning \"" + NOT_RECORDED.capitalize() + "\"",
                  f"    `{record['json'].name}` does not record the machine it ran on"
                  + (": read its figures as from an unknown CPU." if record["data"] is not None else
                     f" (it could not be read: {_cell(record['error'])})."), ""]
    else:
        where = f" (recorded at `{record['machine_at']}`)" if record["machine_at"] != "machine" else ""
        lines += [f"## Machine{where}", "", "| field | value |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in machine.items()]
        if record["flags"] and not any(k in machine for k in _FLAG_KEYS):
            lines.append(f"| CPU flags / ISA | {_cell(record['flags'])} |")
        if not record["flags"]:
            lines.append("| CPU flags / ISA | not recorded |")
        lines.append("")
    if record["versions"]:
        lines += ["## Versions", "", "| package | version |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in record["versions"].items()]
        lines.append("")
    elif record["json"] is not None:
        lines += ["Versions: not recorded.", ""]
    run = []
    if record["date"]:
        run.append(f"- date: {_cell(record['date'])}")
    if record["load"]:
        load = record["load"]
        run.append(f"- machine load: other processes {load.get('other_processes_cores', '?')} cores on average, "
                   f"contended: {load.get('contended', '?')}")
    commands = record["command"]
    if commands:
        commands = [commands] if isinstance(commands, str) else [c for c in commands if isinstance(c, str)]
        if commands:
            run += ["- command:", "", "    ```bash", *[f"    {c}" for c in commands], "    ```"]
    if run:
        lines += ["## Run", "", *run, ""]
    headline = record["headline"]
    if headline:
        items = headline if isinstance(headline, list) else [headline]
        lines += ["## Headline", "", *[f"- {_cell(h) if isinstance(h, str) else _cell(h)}" for h in items], ""]
    if record["report_page"]:
        lines += ["## Report", "", f"The run's report covers more than this file: "
                  f"[{record['report_page']}]({record['report_page']}.md).", ""]
    if record["report"] is not None:
        lines += [f"## Report (`{record['report'].name}`)", "", _report_markdown(record["report"], pages, images), ""]
    if record["data"] is not None:
        body = json.dumps(record["data"], indent=2, ensure_ascii=False)
        lines += [f"??? note \"The record: `{record['json'].name}`\"", "", "    ```json",
                  *[f"    {line}" for line in body.splitlines()], "    ```", ""]
    return "\n".join(lines) + "\n"


def _index(records: list[dict]) -> str:
    lines = [
        "# Measurements", "",
        "Every page in this section is generated at build time from `bench/results/` (by "
        "`docs/_hooks/measurements.py`): one page per results file (`NAME.json`), with the machine and the "
        "library versions that file records, the Markdown report its run wrote beside it, and the record "
        "itself. A report that covers several results files has a page of its own that links them; a "
        "report with no results file at all has a page too, marked *machine not recorded*. "
        "Nothing here is retyped; the [findings summary](findings.md) quotes these pages row by row.", "",
        "A figure that depends on the CPU (int8 speed-ups above all) belongs to the machine its page names: "
        "compare figures only between pages that name the same CPU and flags.", "",
    ]
    cpus = Counter(((r["machine"] or {}).get("cpu") or NOT_RECORDED) for r in records if r["json"] or not r["covers"])
    lines += ["## Machines", "", "| CPU (as recorded) | pages |", "|---|---|"]
    lines += [f"| {_cell(cpu)} | {n} |" for cpu, n in sorted(cpus.items())]
    lines += ["", "## Results", "",
              "| page | CPU, cores | CPU flags / ISA | date | torch · transformers · onnxruntime |",
              "|---|---|---|---|---|"]
    for r in records:
        m, v = r["machine"], r["versions"] or {}
        cpu = (f"{_cell(m.get('cpu', '?'))}, {_cell(m.get('cores', '?'))}" if m else
               ("see its records" if r["covers"] else NOT_RECORDED))
        lines.append("| " + " | ".join([
            f"[{r['stem']}]({r['stem']}.md)" + ("" if r["json"] else " (report)"),
            cpu,
            _cell(r["flags"]) if r["flags"] else "not recorded",
            _cell(r["date"]) if r["date"] else "—",
            " · ".join(_cell(v[k]) if k in v else "—" for k in ("torch", "transformers", "onnxruntime")),
        ]) + " |")
    return "\n".join(lines) + "\n"


# ---- the hook ----------------------------------------------------------------------------------
def on_config(config):
    """Put every generated page in the navigation, under the Measurements section."""
    nav = config.get("nav")
    records = _records()
    if not nav:
        return config
    for item in nav:
        if isinstance(item, dict) and NAV_TITLE in item:
            section = [e for e in item[NAV_TITLE]  # idempotent: `mkdocs serve` runs this on every rebuild
                       if not (isinstance(e, dict) and ("Records" in e or "Reports" in e))]
            section.append({"Records": [{r["stem"]: f"{SECTION}/{r['stem']}.md"} for r in records if r["json"]]})
            section.append({"Reports": [{r["stem"]: f"{SECTION}/{r['stem']}.md"} for r in records
                                             if not r["json"]]})
            item[NAV_TITLE] = section
    return config


def on_files(files, config):
    records = _records()
    pages = {r["stem"]: r["stem"] for r in records}  # every report has a page of its own name
    by_stem = {r["stem"]: r for r in records}
    images = {p.name for p in RESULTS.glob("*.png")}
    for image in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"{SECTION}/{image.name}", abs_src_path=str(image)))
    for r in records:
        files.append(File.generated(config, f"{SECTION}/{r['stem']}.md", content=_page(r, pages, images, by_stem)))
    files.append(File.generated(config, f"{SECTION}/index.md", content=_index(records)))
    return files


def on_page_markdown(markdown, page, config, files):
    """On the findings summary, each link to a measurements page gets the machine its file records."""
    if page.file.src_uri != f"{SECTION}/findings.md":
        return markdown
    by_stem = {r["stem"]: r for r in _records()}

    def machine(match):
        record = by_stem.get(match.group(1))
        if record is None:
            return match.group(0)
        if record["json"] is None and record["covers"]:
            where = "; ".join(_machine_line(by_stem.get(c)) for c in record["covers"])
            where = "; ".join(dict.fromkeys(where.split("; ")))  # each machine once
        else:
            where = _machine_line(record)
        return f"{match.group(0)} ({_cell(where)})"

    return re.sub(r"\[[A-Za-z0-9_]+\]\(([A-Za-z0-9_]+)\.md\)", machine, markdown)
