"""MkDocs hook: the CLI reference, generated at build time from the Typer app.

Walks `typer.main.get_command(kdeploy.cli.app)` and writes `reference/cli.md`: every command's
help, usage, options (grouped as `--help` groups them, with the defaults `--help` shows) and
examples. Nothing here is typed by hand: a flag added to a command appears on the next build.

It also fills two placeholders from the code that writes each bundle's README (the model card),
so the how-to guides show the same usage code a bundle ships with:
`<!-- kdeploy:card e2e -->` and `<!-- kdeploy:card web -->`; and `<!-- kdeploy:tasks -->` with a
table of the task kinds, read from their registry entries (`kdeploy.tasks.TASKS`).
"""
from __future__ import annotations

import re
import warnings
from types import SimpleNamespace

from mkdocs.structure.files import File

CLI_PAGE = "reference/cli.md"


def _escape(text: str) -> str:
    """Plain help text as Markdown: no HTML tags, emphasis or link syntax by accident; code spans kept."""
    out = []
    for i, part in enumerate(re.split(r"(`[^`]*`)", text)):
        if i % 2:  # a code span
            out.append(part)
            continue
        part = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        part = re.sub(r"([\\*_\[\]|])", r"\\\1", part)
        out.append(part)
    return " ".join("".join(out).split())


def _examples(epilog: str) -> list[str]:
    """A command's epilog ("Examples:" then one command per paragraph) as a shell block."""
    lines = []
    for raw in epilog.split("\n"):
        line = raw.strip()
        if not line or line.rstrip(":").lower() == "examples":
            continue
        noted = re.match(r"^(.*?)\s{3,}\((.*)\)\s*$", line)  # "kdeploy …   (a note)"
        lines.append(f"{noted.group(1)}   # {noted.group(2)}" if noted else line)
    return ["```bash", *lines, "```"] if lines else []


def _command_section(name: str, command, ctx) -> list[str]:
    help_text = (command.help or "").strip()
    lines = [f"## kdeploy {name} {{#{name}}}", ""]
    if help_text:
        lines += [_escape(paragraph) + "\n" for paragraph in re.split(r"\n\s*\n", help_text)]
    usage = command.get_usage(ctx).strip()
    lines += ["```text", usage, "```", ""]
    groups: dict[str, list[tuple[str, str]]] = {}
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False) or param.name == "help":
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, help_ = record
        kind = "Arguments" if param.param_type_name == "argument" else "Options"
        group = getattr(param, "rich_help_panel", None) or kind
        required = " (required)" if param.required and "[required]" not in help_ else ""
        groups.setdefault(group, []).append((names, _escape(help_) + required))
    order = sorted(groups, key=lambda g: (g != "Arguments", g != "Options", g))
    for group in order:
        lines += [f"**{group}**", "", "| option | what it does |" if group != "Arguments" else "| argument | what it is |",
                  "|---|---|"]
        lines += [f"| `{names}` | {help_ or ''} |" for names, help_ in groups[group]]
        lines.append("")
    if command.epilog:
        lines += ["Examples:", "", *_examples(command.epilog), ""]
    return lines


def cli_markdown() -> str:
    import typer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import kdeploy.cli  # noqa: F401  (registers every command on the app)
        from kdeploy.cli.app import app

    group = typer.main.get_command(app)
    root = group.context_class(group, info_name="kdeploy")
    commands = list(group.commands.items())
    lines = [
        "# CLI reference", "",
        "!!! note \"Generated\"",
        "    This page is written at build time from the Typer application (`kdeploy/cli/app.py` and the",
        "    command modules beside it) by `docs/_hooks/cli_reference.py`: the same text as",
        "    `kdeploy COMMAND --help`. Do not edit it by hand.", "",
        _escape((group.help or "").strip()), "",
        "Global option: `--debug` (before the command) shows tracebacks instead of one `error:` line. "
        "Input errors exit with 2, Ctrl-C with 130.", "",
        "| command | what it does |", "|---|---|",
    ]
    for name, command in commands:
        first = re.split(r"\n\s*\n", (command.short_help or command.help or "").strip())[0]
        lines.append(f"| [`{name}`](#{name}) | {_escape(first)} |")
    lines.append("")
    for name, command in commands:
        ctx = command.context_class(command, info_name=name, parent=root)
        lines += _command_section(name, command, ctx)
    return "\n".join(lines) + "\n"


def _card(kind: str) -> str:
    """The "Use" section a bundle's README gets, for an example manifest (binary sentiment)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from kdeploy.package import card

    if kind == "e2e":
        try:
            from kdeploy.package.e2e import E2E_MODEL
        except ImportError:  # the train extra is absent: the file name the writer uses
            E2E_MODEL = "model.e2e.onnx"
        manifest = SimpleNamespace(model=E2E_MODEL, pairs=False, label_names=["rotten", "fresh"], task="classification",
                                   pooling=None)
        lines = card.use_e2e(manifest)
    else:
        lines = card.use_web(SimpleNamespace(model="model/onnx/model_quantized.onnx", pairs=False,
                                             label_names=["rotten", "fresh"], task="classification"))
    return "\n".join(lines)


def tasks_table() -> str:
    """The task kinds side by side, each cell read from its registry entry."""
    from kdeploy.tasks import TASKS

    kinds = list(TASKS.values())
    rows = [
        ("what", lambda t: t.doc),
        ("labels, as written in a file", lambda t: t.labels),
        ("output", lambda t: t.activation),
        ("metrics (the first gates)", lambda t: ", ".join(t.metrics)),
        ("trivial answer", lambda t: t.trivial),
        ("thresholds tuned per label", lambda t: "yes" if t.thresholds else "no"),
        ("students", lambda t: ", ".join(sorted(t.students))),
        ("bundle formats", lambda t: ", ".join(sorted(t.formats))),
        ("baselines", lambda t: ", ".join(sorted(t.baselines)) or "none"),
        ("serve routes (/rerank: pair bundles)", lambda t: ", ".join(t.routes)),
    ]
    lines = ["| | " + " | ".join(f"`{t.name}`" for t in kinds) + " |", "|---|" + "---|" * len(kinds)]
    for title, cell in rows:
        lines.append(f"| {title} | " + " | ".join(_escape(str(cell(t))) for t in kinds) + " |")
    return "\n".join(lines)


def on_files(files, config):
    files.append(File.generated(config, CLI_PAGE, content=cli_markdown()))
    return files


def on_page_markdown(markdown, page, config, files):
    for kind in ("e2e", "web"):
        marker = f"<!-- kdeploy:card {kind} -->"
        if marker in markdown:
            markdown = markdown.replace(marker, _card(kind))
    if "<!-- kdeploy:tasks -->" in markdown:
        markdown = markdown.replace("<!-- kdeploy:tasks -->", tasks_table())
    return markdown
