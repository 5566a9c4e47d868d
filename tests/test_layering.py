"""The house's layering, pinned: imports point down only, stages do not reach into each other,
nothing imports in a circle, and the predictor and recipe handling stay torch-free."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kdeploy"

# component -> level; an import must go to a lower level, or stay inside its own component
LEVELS = {"base": 0, "data": 1, "modelio": 1, "edge": 2, "distill": 3, "prune": 3, "export": 3, "runtime": 3,
          "package": 3, "serve": 3, "pipeline": 4, "search": 5, "cli": 6}
BASE = {"kdeploy", "kdeploy.errors", "kdeploy.truncation", "kdeploy.registry", "kdeploy.configtools", "kdeploy.fsutil", "kdeploy.safety",
        "kdeploy.environment", "kdeploy.metrics", "kdeploy.console", "kdeploy.progress", "kdeploy.results",
        "kdeploy.assets", "kdeploy.manifest", "kdeploy.formats", "kdeploy.retention", "kdeploy.names"}
# the only places one stage uses another: its public API or its torch-free record types
ALLOWED_ACROSS = {
    ("prune", "kdeploy.distill.api"): "head-pruning recovery is a distillation",
    ("prune", "kdeploy.distill.config"): "the recovery's settings",
    ("package", "kdeploy.export.result"): "a bundle is made from an export folder's record",
    ("package", "kdeploy.export.files"): "a bundle takes an export file by its role",
    ("runtime", "kdeploy.export.files"): "an export file's fp32 sibling, by its role",
    ("runtime", "kdeploy.export.result"): "a student's retention verdict, from its export report",
    ("package", "kdeploy.runtime.result"): "a bench report's figures go into the manifest",
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def component(module: str) -> str:
    if module in BASE or module.startswith("kdeploy.tasks"):  # the task registry: ground floor, torch-free
        return "base"
    if module == "kdeploy.__main__":
        return "cli"
    return module.split(".")[1]


def imports_of(path: Path) -> set[str]:
    """Every kdeploy module this file imports, at module level or inside functions."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kdeploy")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("kdeploy"):
                continue
            for alias in node.names:  # `from . import stages` imports a module
                sub = f"{target}.{alias.name}"
                found.add(sub if _exists(sub) else target)
    return found


def _exists(module: str) -> bool:
    rel = Path(*module.split("."))
    return (PACKAGE.parent / rel.with_suffix(".py")).exists() or (PACKAGE.parent / rel / "__init__.py").exists()


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_has_a_known_place(graph):
    assert {component(m) for m in graph} <= set(LEVELS)


def test_imports_point_down_and_stages_keep_to_themselves(graph):
    wrong = []
    for module, targets in graph.items():
        here = component(module)
        for target in targets:
            there = component(target)
            if there == here or LEVELS[there] < LEVELS[here]:
                continue
            if (here, target) in ALLOWED_ACROSS:
                continue
            wrong.append(f"{module} -> {target}")
    assert not wrong, "imports that point up or across:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles(graph):
    """Tarjan's strongly connected components over the module graph (function-level imports too)."""
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                cycles.append(sorted(scc))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


TORCH_FREE = r"""
import json, sys
from pathlib import Path
import kdeploy.edge
from kdeploy.pipeline import load_recipe, run_recipe
from kdeploy.pipeline.stages import STAGES
for stage in STAGES:
    stage.settings()  # every stage's config builds and validates
import kdeploy.search.config, kdeploy.data, kdeploy.cli
for path in sorted(Path(sys.argv[1]).glob("*.yaml")):
    recipe = load_recipe(path)
    run_recipe(recipe, Path(sys.argv[2]) / recipe.name, dry_run=True)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "datasets", "optimum"))))
"""


def test_recipes_validate_and_plan_without_torch(tmp_path):
    models = PACKAGE.parent / "models"
    out = subprocess.run([sys.executable, "-c", TORCH_FREE, str(models), str(tmp_path)], capture_output=True,
                         text=True, timeout=120, cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_predictor_imports_only_what_a_device_installs():
    code = ("import sys, json; import kdeploy.edge; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout))
    for heavy in ("torch", "transformers", "datasets", "pandas", "optimum", "onnx", "yaml", "rich", "typer"):
        assert heavy not in loaded, f"kdeploy.edge imports {heavy}"
    code = ("import sys, json; import kdeploy.edge; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('kdeploy'))))")
    own = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                        timeout=60).stdout))
    assert own <= {"kdeploy", "kdeploy.edge", "kdeploy.errors", "kdeploy.manifest", "kdeploy.formats", "kdeploy.registry",
                   "kdeploy.safety",
                   "kdeploy.modelio",
                   "kdeploy.modelio.onnx_session", "kdeploy.modelio.inputs", "kdeploy.modelio.batching",
                   "kdeploy.truncation", "kdeploy.names", "kdeploy.tasks", "kdeploy.tasks.base", "kdeploy.tasks.predictions",
                   "kdeploy.tasks.classification", "kdeploy.tasks.regression", "kdeploy.tasks.multi_label",
                   "kdeploy.tasks.embedding", "kdeploy.tasks.tokens", "kdeploy.modelio.words"}, own


def test_no_function_is_longer_than_60_lines():
    """Orchestrators are named steps: a function past 60 lines is split (issue 21)."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} "
                            f"({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long


def test_every_import_names_a_module_that_exists(graph):
    """Imports inside functions run only when called: a relative import that a move left one
    level short is caught here, not on a user's machine."""
    missing = sorted(f"{m} imports {t}" for m, targets in graph.items() for t in targets if not _exists(t))
    assert not missing, missing
