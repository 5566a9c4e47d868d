"""Recipes: one YAML per teacher→student pipeline, a composition of the stages' own settings
(plus the data and the keys that pick each stage's inputs), parsed and validated once, before
anything runs and without importing torch. `to_dict` gives back a recipe that parses to the
same object: a search trial writes exactly what it ran.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..configtools import check_keys, from_dict, load_yaml, to_dict
from ..data import DataConfig
from ..errors import KdeployError
from .stages import BY_NAME, REQUIRES, STAGES

DEFAULT_RECIPE = "rotten_tomatoes_minilm.yaml"
TOP_KEYS = ["name", "description", "data", *[s.name for s in STAGES]]


@dataclass
class Step:
    """One stage in a recipe: its settings, and the values of the keys that pick its inputs."""

    settings: Any
    inputs: Any

    def to_dict(self) -> dict:
        return {**_without_none(to_dict(self.inputs)), **to_dict(self.settings)}


@dataclass
class Recipe:
    name: str
    data: DataConfig
    description: str = ""
    steps: dict[str, Step] = field(default_factory=dict)  # in the order of the stage table
    source: str = field(default="", compare=False)  # the recipe file it was read from, for messages (never written back)

    def __post_init__(self) -> None:
        self.steps = {s.name: self.steps[s.name] for s in STAGES if s.name in self.steps}
        if "finetune" not in self.steps and "distill" not in self.steps:
            raise KdeployError("the recipe has no stage: add finetune and/or distill")
        if "finetune" in self.steps and not self.steps["finetune"].inputs.model:
            raise KdeployError("finetune: missing 'model' (the pretrained encoder to fine-tune)")
        if "distill" in self.steps and not self.steps["distill"].inputs.teacher and "finetune" not in self.steps:
            raise KdeployError("distill has no teacher: set distill.teacher or add a finetune stage")
        for stage, (needed, message) in REQUIRES.items():
            if stage in self.steps and needed not in self.steps:
                raise KdeployError(message)
        if "distill" in self.steps:
            step = self.steps["distill"]
            teachers = step.inputs.teacher or ["finetune"]
            step.settings.check_inputs([teachers] if isinstance(teachers, str) else list(teachers),
                                       step.inputs.unlabeled)

    def __getitem__(self, stage: str) -> Step:
        return self.steps[stage]

    def to_dict(self) -> dict:
        out: dict = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["data"] = _without_none(to_dict(self.data))
        for name, step in self.steps.items():
            out[name] = step.to_dict()
        return out

    def dump(self, path: str | Path) -> Path:
        import yaml

        from ..fsutil import write_text

        write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))
        return Path(path)


def _without_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def parse_step(name: str, section: Any, where: str) -> Step:
    stage = BY_NAME[name]
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise KdeployError(f"{where}: expected a mapping of settings, got {section!r} ({type(section).__name__})")
    input_keys = [f.name for f in dataclasses.fields(stage.inputs)]
    setting_keys = [f.name for f in dataclasses.fields(stage.settings) if f.init]
    check_keys(section, input_keys + setting_keys, where)
    inputs = from_dict(stage.inputs, {k: v for k, v in section.items() if k in input_keys}, where)
    settings = from_dict(stage.settings, {k: v for k, v in section.items() if k in setting_keys}, where)
    return Step(settings=settings, inputs=inputs)


def recipe_from_dict(raw: Any, where: str, default_name: str = "recipe") -> Recipe:
    if not isinstance(raw, dict):
        raise KdeployError(f"{where}: a recipe is a mapping with name, data and stages")
    check_keys(raw, TOP_KEYS, where)
    if "data" not in raw:
        raise KdeployError(f"{where}: missing 'data'")
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name.strip() or "/" in name or name.startswith("."):
        raise KdeployError(f"{where}: name must be a plain folder name, got {name!r}")
    description = raw.get("description") or ""
    if not isinstance(description, str):
        raise KdeployError(f"{where}: description must be text")
    data = from_dict(DataConfig, raw["data"], f"{where}: data")
    steps = {s.name: parse_step(s.name, raw[s.name], f"{where}: {s.name}") for s in STAGES if s.name in raw}
    try:
        return Recipe(name=name, data=data, description=description, steps=steps)
    except KdeployError as exc:
        raise KdeployError(f"{where}: {exc}") from None


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    recipe = recipe_from_dict(load_yaml(path, "recipe"), str(path), default_name=path.stem)
    recipe.source = str(path)
    return recipe


def check_data_files(recipe: Recipe) -> None:
    """A missing data file, said with where a relative path was looked for (the current folder,
    not the recipe's: `models/*.yaml` name `../shared/data/...` from the repository root)."""
    for name in recipe.data.files():
        path = Path(name)
        if path.exists():
            continue
        where = recipe.source or f"recipe {recipe.name}"
        if path.is_absolute():
            raise KdeployError(f"{where}: data file {name} not found")
        hint = f"relative paths in a recipe are read from the current folder, {Path.cwd()}"
        if recipe.source and (Path(recipe.source).parent / path).exists():
            hint += (f"; it is there beside the recipe: run from {Path(recipe.source).parent.resolve()}, "
                     "or write the path from here or absolute")
        else:
            hint += "; run from the folder the recipe expects, or write the path absolute"
        raise KdeployError(f"{where}: data file {name} not found ({hint})")


def default_recipe_path() -> Path:
    """The embedded default (shipped inside the package; models/ in a source checkout links to it)."""
    return Path(__file__).resolve().parent.parent / "recipes" / DEFAULT_RECIPE


def variant(recipe: Recipe, *, name: str | None = None, data: DataConfig | None = None, teacher: str | None = None,
            seed: int | None = None, stages: tuple[str, ...] | None = None) -> Recipe:
    """The same recipe on other data, from another teacher, with another seed, or with fewer
    stages: how a bench script reuses a family's one recipe instead of copying its settings.
    A given teacher replaces the finetune stage (the student learns from that teacher)."""
    raw = recipe.to_dict()
    keep = set(stages or [s.name for s in STAGES]) - ({"finetune"} if teacher else set())
    raw = {k: v for k, v in raw.items() if k not in BY_NAME or k in keep}
    if name is not None:
        raw["name"] = name
    if data is not None:
        raw["data"] = _without_none(to_dict(data))
    if teacher is not None and "distill" in raw:
        raw["distill"]["teacher"] = teacher
    if seed is not None:
        for stage in ("finetune", "distill"):
            if stage in raw:
                raw[stage]["train"] = {**raw[stage].get("train", {}), "seed": seed}
        if "prune" in raw:
            raw["prune"]["seed"] = seed
    return recipe_from_dict(raw, f"{recipe.name} (variant)", default_name=recipe.name)
