"""run, demo, search, list: whole pipelines from a recipe, searches over them, and what is registered."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import KdeployError
from ..search.config import SearchSettings
from .app import app
from .options import Out, Overwrite, data_config, data_options, floats, ints, names, shown


@app.command(epilog="Examples:\n\n  kdeploy run models/rotten_tomatoes_minilm.yaml --out runs/demo\n\n"
             "  kdeploy run models/sst2_minilm.yaml --dry-run   (validate, and show which stages would run)")
def run(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML (see models/).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (default runs/<recipe name>).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate the recipe and print each stage's plan (up to date, or why it would run); runs nothing.")] = False,
    overwrite: Overwrite = False,
) -> None:
    """Run a recipe's stages in order; a stage whose settings and inputs (by content) are unchanged is skipped."""
    from ..pipeline import load_recipe, run_recipe

    run_recipe(load_recipe(recipe), out, dry_run=dry_run, overwrite=overwrite).render()


@app.command()
def demo(out: Annotated[Path, typer.Option("--out", "-o")] = Path("runs/demo"), overwrite: Overwrite = False) -> None:
    """The embedded default, offline: Rotten Tomatoes, all-MiniLM-L6-v2 teacher, 3-layer student."""
    from ..pipeline import default_recipe_path, load_recipe, run_recipe

    run_recipe(load_recipe(default_recipe_path()), out, overwrite=overwrite).render()


@app.command(epilog="Examples:\n\n  kdeploy search --teacher runs/teacher --train train.tsv --validation dev.tsv --test test.tsv "
             "--trials 20 --out runs/search\n\n"
             "  kdeploy search --teacher runs/teacher --train train.tsv --families static,bilstm,width --trials 30 "
             "--out runs/ladder\n\n"
             "  kdeploy search ... --out runs/search   (again: resumes the study in runs/search/study.db)\n\n"
             "  kdeploy search ... --storage postgresql://kd@db/search --out runs/search   (on each machine: one "
             "study, each worker timing its own trials)\n\n"
             "  kdeploy run runs/search/recipes/trial-007.yaml   (a front point, as a full pipeline)")
@data_options()
def search(
    out: Out,
    teacher: Annotated[str, typer.Option("--teacher", help="Task teacher: a model folder or hub id.")],
    trials: Annotated[Optional[int], typer.Option("--trials", help="Trials in the study (a resumed study counts its own).", rich_help_panel="Budget", show_default=shown(SearchSettings, "trials"))] = None,
    minutes: Annotated[Optional[float], typer.Option("--minutes", help="Start no new trial after this long.", rich_help_panel="Budget")] = None,
    epochs: Annotated[Optional[float], typer.Option("--epochs", help="Distillation epochs per trial.", rich_help_panel="Budget", show_default=shown(SearchSettings, "epochs"))] = None,
    families: Annotated[Optional[str], typer.Option("--families", help="Student families in one front: layers, width, bilstm, cnn, static.", rich_help_panel="Space", show_default=shown(SearchSettings, "space.families"))] = None,
    layers: Annotated[Optional[str], typer.Option("--layers", help="Student depths to try.", rich_help_panel="Space", show_default=shown(SearchSettings, "space.layers"))] = None,
    heads: Annotated[Optional[str], typer.Option("--heads", help="Head-pruning fractions to try.", rich_help_panel="Space", show_default=shown(SearchSettings, "space.heads"))] = None,
    vocab: Annotated[Optional[str], typer.Option("--vocab", help="Vocabulary trimming: both, on or off. [default: both]", rich_help_panel="Space")] = None,
    space_file: Annotated[Optional[Path], typer.Option("--space", help="YAML with temperature/alpha/learning_rate ranges etc.", rich_help_panel="Space")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="Threads for the latency measurement.")] = None,
    latency_iterations: Annotated[Optional[int], typer.Option("--latency-iterations", show_default=shown(SearchSettings, "latency_iterations"))] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", show_default=shown(SearchSettings, "seed"))] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", show_default=shown(SearchSettings, "max_length"))] = None,
    storage: Annotated[Optional[str], typer.Option("--storage", help="Share one study between workers on several machines: an Optuna storage URL (postgresql://USER@HOST/DB, mysql://...) or journal:PATH on a shared disk; each worker keeps its own --out and times on its own hardware. [default: OUT/study.db]")] = None,
    overwrite: Overwrite = False, data_flags: dict | None = None,
) -> None:
    """Search distillation and pruning settings for the accuracy/latency front (Optuna, multi-objective)."""
    from ..configtools import load_yaml, settings_from
    from ..console import say
    from ..search.api import search as run

    space = load_yaml(space_file, "search space") if space_file is not None else {}
    if space is None:
        space = {}
    if not isinstance(space, dict):
        raise KdeployError(f"{space_file}: a search space is a mapping (temperature, alpha, learning_rate, ...)")
    choices = {"both": [False, True], "on": [True], "off": [False]}
    if vocab is not None and vocab not in choices:
        raise KdeployError(f"--vocab must be both, on or off, got {vocab!r}")
    flags = {"layers": ints(layers, "--layers"), "heads": floats(heads, "--heads"),
             "vocab": choices[vocab] if vocab else None,
             "families": names(families) or None}
    settings = settings_from(SearchSettings, {
        "space": {**space, **{k: v for k, v in flags.items() if v is not None}}, "trials": trials,
        "minutes": minutes, "epochs": epochs, "threads": threads, "latency_iterations": latency_iterations,
        "seed": seed, "max_length": max_length, "storage": storage})
    data = data_config(**data_flags)
    result = run(settings, teacher=teacher, data=data, out=out, overwrite=overwrite)
    say(f"{result.trials}; {result.verdict}")
    say(f"front: {out / 'front.md'} (plot front.png); a recipe per point in {out / 'recipes'}")


@app.command(name="list")
def list_registered() -> None:
    """What is registered: task kinds, builtin models and data, students, losses, layer losses, augmentations, int8 presets."""
    from ..assets import BUILTIN_DATASETS, BUILTIN_MODELS
    from ..console import say
    from ..distill.augment import AUGMENTERS
    from ..distill.methods import LAYER_LOSSES, LOSSES, STUDENTS
    from ..export.config import PRESETS
    from ..runtime.baselines import BASELINES
    from ..runtime.baselines import missing as baseline_missing
    from ..runtime.candidates import KINDS, missing_package

    from ..distill.families import FAMILIES
    from ..tasks import TASKS

    sections = {
        "task kinds (--task)": {n: f"{t.doc} [students: {', '.join(sorted(t.students))}; formats: "
                                   f"{', '.join(sorted(t.formats))}; baselines: {', '.join(sorted(t.baselines)) or 'none'}]"
                                for n, t in TASKS.items()},
        "builtin models (--model, --teacher; offline, verified by sha256)": BUILTIN_MODELS,
        "builtin datasets (--dataset)": BUILTIN_DATASETS,
        "student families, largest to smallest (kdeploy search --families; recipes in models/)": {
            name: f"{f.description} [knobs: {', '.join(k for k in f.knobs if 'learning' not in k)}]"
            + (f" [distill defaults: {', '.join(f'{k} {v:g}' for k, v in f.train.items())}]" if f.train else "")
            for name, f in FAMILIES.items()},
        "students (--student)": {n: STUDENTS.doc(n) for n in STUDENTS} | {"PATH or hub id": "any pretrained model"},
        "logit losses (--loss)": {n: LOSSES.doc(n) for n in LOSSES},
        "layer losses (--layer-loss)": {n: LAYER_LOSSES.doc(n) for n in LAYER_LOSSES},
        "augmentations (--augment)": {n: AUGMENTERS.doc(n) for n in AUGMENTERS},
        "int8 presets (--isa)": {n: f"{p['weight_type']} weights" for n, p in PRESETS.items()},
        "runtime kinds (kdeploy bench MODEL@KIND)": {n: KINDS.doc(n) + ("" if not missing_package(n) else
                                                                          f" [not installed: {missing_package(n)}]")
                                                     for n in KINDS},
        "baselines (kdeploy bench --baselines)": {n: BASELINES[n].doc + ("" if not baseline_missing(n) else
                                                                          f" [not installed: {baseline_missing(n)}]")
                                                  for n in BASELINES},
    }
    for title, items in sections.items():
        say(title)
        for name, text in items.items():
            say(f"  {name:<16} {text}")
