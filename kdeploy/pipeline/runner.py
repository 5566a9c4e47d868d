"""The one stage runner: `kdeploy run`, `kdeploy demo` and every search trial go through it.

For each stage of the recipe, in the table's order: wire its inputs (the recipe's keys and
the upstream stages' output folders), compute its digest from content, and run it unless its
last finished run had the same digest and its output is unchanged since. Interrupted stages
resume (training continues from its checkpoints); `dry_run` prints the plan and touches
nothing, without importing torch.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..console import say
from ..fsutil import check_output, output_lock, write_json
from ..names import RUN_RECORD
from ..results import Result, metric_cells, metric_names
from .digest import Contents, stage_digest
from .recipe import Recipe, check_data_files
from .stages import BY_NAME, STAGES, Stage, teachers_of

RUN_STATE = RUN_RECORD


@dataclass
class PlannedStage:
    stage: str
    folder: str
    up_to_date: bool
    reason: str


@dataclass
class RunResult(Result):
    recipe: str
    folder: str
    plan: list[PlannedStage] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)  # stage -> its typed result
    seconds: float = 0.0
    dry_run: bool = False
    title = "run"

    def split_and_task(self) -> tuple[str, str]:
        """The split the run's scores come from (test where the recipe has one, else validation)
        and the task kind whose metrics they are."""
        scored = [x for x in (self.results.get("finetune"), self.results.get("distill")) if x is not None]
        has_test = any(x.test is not None for x in scored) or (
            "export" in self.results and self.results["export"].accuracy is not None
            and self.results["export"].accuracy.split == "test")
        split = "test" if has_test else "validation"
        return split, next((x.task for x in scored), "classification")

    def table(self):
        """One block of rows per stage that has some, each from the stage table's own row function."""
        split, task = self.split_and_task()
        cells = metric_cells
        rows = []
        for stage in STAGES:
            if stage.name in self.results and stage.rows:
                rows += stage.table_rows()(self.results, Path(self.folder) / stage.folder, split, cells)
        if "bench" in self.results:  # the baselines it trained, beside the student they may beat
            from .show import bench_rows

            rows += bench_rows(self.results, split, cells)
        main, second = metric_names(task)
        return ["model", f"{split} {main}", second, "params", "size MiB", "train s"], rows

    def render(self, title: str | None = None) -> None:
        if self.dry_run:
            return  # the plan was printed as it was made
        super().render(title or f"{self.recipe}: {self.split_and_task()[0]} split")
        say(f"run folder: {self.folder}  ({self.seconds:.0f} s)")
        if "bench" in self.results:
            from .show import bench_summary

            for line in bench_summary(self.results["bench"]):
                say(line)
            say(f"report: {Path(self.folder) / 'report' / 'report.html'} (and report.md, report.json)")
        if "package" in self.results:
            p = self.results["package"]
            say(f"bundle: {p.archive or p.bundle}  (try: kdeploy predict {p.bundle} \"some text\")")


def _state(run_dir: Path) -> dict:
    path = run_dir / RUN_STATE
    if not path.is_file():
        return {"stages": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        return state if isinstance(state.get("stages"), dict) else {"stages": {}}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return {"stages": {}}  # a damaged state only means every stage runs again


def _earlier_run_folder(run_dir: Path) -> bool:
    """A run folder from before run state was kept: nothing in it but stage outputs."""
    from .stages import STAGES

    if not run_dir.is_dir():
        return False
    known = {s.folder: s.record for s in STAGES} | {"bundle.tar.gz": None, "bundle.zip": None}
    entries = [p for p in run_dir.iterdir() if not p.name.startswith(".")]
    return bool(entries) and all(p.name in known for p in entries) and any(
        (p / known[p.name]).is_file() for p in entries if known.get(p.name))


def _status(stage: Stage, folder: Path, digest: str, state: dict, contents: Contents, changed: set) -> tuple[bool, str]:
    done = state["stages"].get(stage.name)
    if changed:
        return False, f"its input {', '.join(sorted(changed))} will change"
    if not done:
        return False, "never finished here"
    if not (folder / stage.record).is_file():
        return False, f"{folder} is missing"
    if done.get("digest") != digest:
        return False, "its settings, inputs or library versions changed"
    if done.get("output") != contents.of(folder):
        return False, f"{folder} was modified since"
    return True, "up to date"


def run_recipe(recipe: Recipe, out: str | Path | None = None, dry_run: bool = False, overwrite: bool = False,
               hooks: dict[str, dict] | None = None) -> RunResult:
    """Run (or, with `dry_run`, plan) a recipe's stages into `out` (default runs/<name>).

    `hooks[stage]` may hold extra keyword arguments for the stage's API (e.g. training
    callbacks) and `after`, a function called with the stage's result (it may raise to stop).
    """
    run_dir = Path(out) if out else Path("runs") / recipe.name
    check_data_files(recipe)
    check_output(run_dir, recipe.data.files(), overwrite or _earlier_run_folder(run_dir), published=False)
    started = time.perf_counter()
    if dry_run:
        from ..data.files import regular_file

        for path in recipe.data.files():  # a plan that cannot start is not a plan: say so now
            regular_file(Path(path))
        return _plan(recipe, run_dir, started)
    with output_lock(run_dir, f"kdeploy run {recipe.name}"):
        run_dir.mkdir(parents=True, exist_ok=True)
        return _run(recipe, run_dir, overwrite, hooks or {}, started)


def _plan(recipe: Recipe, run_dir: Path, started: float) -> RunResult:
    state, contents, outputs, changed = _state(run_dir), Contents(), {}, set()
    result = RunResult(recipe=recipe.name, folder=str(run_dir), dry_run=True)
    for name, step in recipe.steps.items():
        stage = BY_NAME[name]
        folder = run_dir / stage.folder
        kwargs = stage.wire(recipe, outputs)
        digest = stage_digest(name, step.settings, kwargs, contents, recipe.data if stage.reads_data else None)
        stale_inputs = {k for k, v in kwargs.items() if any(_inside(v, c) for c in changed)}
        fresh, reason = _status(stage, folder, digest, state, contents, stale_inputs)
        result.plan.append(PlannedStage(name, str(folder), fresh, reason))
        say(f"{name}: {folder} " + ("is up to date" if fresh else f"would run ({reason})"))
        if not fresh:
            changed.add(str(folder))
        outputs[name] = folder
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def _ours(state: dict, name: str, folder: Path, contents: Contents) -> bool:
    """The run state proves this run wrote `folder` exactly as it is now (its content digest was
    recorded when the stage finished): a stale stage may replace it, ledger or not (folders
    written before kdeploy kept ledgers)."""
    done = state["stages"].get(name) or {}
    return folder.is_dir() and done.get("output") is not None and done["output"] == contents.of(folder)


def _inside(value, folder: str) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(v, (str, Path)) and str(v) and (Path(v) == Path(folder) or Path(folder) in Path(v).parents)
               for v in values)


def _run(recipe: Recipe, run_dir: Path, overwrite: bool, hooks: dict, started: float) -> RunResult:
    state, contents, outputs = _state(run_dir), Contents(), {}
    result = RunResult(recipe=recipe.name, folder=str(run_dir))
    for name, step in recipe.steps.items():
        stage = BY_NAME[name]
        folder = run_dir / stage.folder
        kwargs = stage.wire(recipe, outputs)
        digest = stage_digest(name, step.settings, kwargs, contents, recipe.data if stage.reads_data else None)
        fresh, reason = _status(stage, folder, digest, state, contents, set())
        extra = {k: v for k, v in hooks.get(name, {}).items() if k != "after"}
        if fresh:
            say(f"{name}: {folder} is up to date, skipped")
            outcome = load_result(name, folder)
        else:
            say(f"{name} → {folder} ({reason})")
            outcome = stage.function()(step.settings, out=folder, overwrite=overwrite or _ours(state, name, folder, contents),
                                       **kwargs, **extra)
            contents.forget(folder)
            state["stages"][name] = {"digest": digest, "output": contents.of(folder),
                                     "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
            write_json(run_dir / RUN_STATE, {"recipe": recipe.name, **state})
        outputs[name] = folder
        result.results[name] = outcome
        result.plan.append(PlannedStage(name, str(folder), fresh, reason))
        after = stage.after()
        if after is not None:
            after(step, outcome, (teachers_of(recipe, outputs) if "distill" in recipe.steps else [None])[0])
        if "after" in hooks.get(name, {}):
            hooks[name]["after"](outcome)
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def load_result(name: str, folder: Path):
    """A finished stage's typed result, read back from the record in its folder."""
    return BY_NAME[name].load_result(folder)
