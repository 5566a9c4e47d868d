"""The table of stages: what each is called, which settings it takes, which recipe keys pick
its inputs, where it writes, what it needs before it, and which function runs it. The runner
(`kdeploy run`), the search's trials and the demo all go through this one table.

Torch-free: a stage's code is named as "module:function" and imported only when it runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..distill.config import DistillSettings, FinetuneSettings
from ..export.config import ExportSettings
from ..export.files import FP32, INT8
from ..names import BENCH_REPORT, BUNDLE_MANIFEST, EXPORT_REPORT, MODEL_RECORD
from ..package.config import PackageSettings
from ..prune.config import PruneSettings
from ..registry import named as _named
from ..runtime.config import BenchSettings

# --- the recipe keys that pick each stage's inputs (beside its settings) --------------------

@dataclass
class FinetuneInputs:
    model: str | None = None  # pretrained encoder (folder, hub id, builtin:...) or bilstm/cnn
    tokenizer: str | None = None  # for bilstm/cnn: whose tokenizer and embeddings


@dataclass
class DistillInputs:
    teacher: str | list[str] | None = None  # default: the finetune stage's output; a list is an ensemble
    unlabeled: str | None = None  # transfer text: .txt one per line, or a table


@dataclass
class PruneInputs:
    extra_corpus: str | None = None  # more text whose tokens to keep
    teacher: str | None = None  # for the recovery; default: the unpruned student


@dataclass
class ExportInputs:
    pass


@dataclass
class BenchInputs:
    models: list[str] | None = None  # teacher, student, onnx, int8 or paths; default: teacher, onnx, int8
    include_student_pytorch: bool = False  # with the default models: the student in PyTorch too


@dataclass
class PackageInputs:
    sample_texts: list[str] = field(default_factory=list)  # predicted with the bundle at the end of the run
    sample_pairs: list[list[str]] = field(default_factory=list)  # for a pair model: [first, second] each


@dataclass(frozen=True)
class Stage:
    name: str  # the recipe key
    settings: type
    inputs: type
    folder: str  # its output, inside the run folder
    record: str  # the file that says the output is complete
    api: str  # "module:function", called as api(settings, **wire(...), out=folder)
    wire: Callable[[Any, dict], dict]  # (recipe, upstream output folders) -> the API's input arguments
    load: str  # "module:function": the output folder -> the stage's typed result, read back
    requires: tuple[str, str] | None = None  # (a stage it needs before it in the recipe, why)
    show: str | None = None  # "module:function"(step, result, teacher): what a run prints after it
    rows: str | None = None  # "module:function"(results, its folder, split, cells): its rows in a run's table
    reads_data: bool = True

    def function(self) -> Callable:
        return _named(self.api)

    def load_result(self, folder: Path):
        return _named(self.load)(Path(folder))

    def after(self) -> Callable | None:
        return _named(self.show) if self.show else None

    def table_rows(self) -> Callable:
        return _named(self.rows)


def teachers_of(recipe, outputs: dict) -> list[str]:
    step = recipe.steps["distill"]
    teacher = step.inputs.teacher or (str(outputs["finetune"]) if "finetune" in outputs else None)
    return [teacher] if isinstance(teacher, str) else list(teacher or [])


def _wire_finetune(recipe, outputs):
    i = recipe.steps["finetune"].inputs
    return {"model": i.model, "tokenizer": i.tokenizer, "data": recipe.data, "resume": True}


def _wire_distill(recipe, outputs):
    teachers = teachers_of(recipe, outputs)
    return {"teacher": teachers[0] if len(teachers) == 1 else teachers,
            "unlabeled": recipe.steps["distill"].inputs.unlabeled, "data": recipe.data, "resume": True}


def _wire_prune(recipe, outputs):
    i = recipe.steps["prune"].inputs
    return {"model": str(outputs["distill"]), "data": recipe.data, "extra_corpus": i.extra_corpus,
            "teacher": i.teacher}


def _student(outputs) -> Path:
    return outputs.get("prune") or outputs["distill"]


def _wire_export(recipe, outputs):
    return {"model": str(_student(outputs)), "data": recipe.data}


MODEL_ALIASES = ("teacher", "student", "onnx", "int8")


def _wire_bench(recipe, outputs):
    i = recipe.steps["bench"].inputs
    wanted = i.models or ["teacher", *(["student"] if i.include_student_pytorch else []), "onnx", "int8"]
    onnx_dir = outputs["export"]
    paths = {"teacher": (teachers_of(recipe, outputs) or [None])[0], "student": str(_student(outputs)),
             "onnx": str(onnx_dir / FP32.file), "int8": str(onnx_dir / INT8.file)}
    models = []
    for name in wanted:
        path = paths.get(name, name)
        if name in ("onnx", "int8") and not Path(path).exists() and i.models is None:
            continue  # an export without int8 (quantize: none) has no model.int8.onnx
        models.append(path)
    return {"models": models, "data": recipe.data}


def _wire_package(recipe, outputs):
    report = outputs.get("bench")
    return {"export_dir": str(outputs["export"]), "data": recipe.data,  # data: the e2e format's parity gate
            "report": str(report / BENCH_REPORT) if report and (report / BENCH_REPORT).exists() else None}


STAGES: list[Stage] = [
    Stage("finetune", FinetuneSettings, FinetuneInputs, "teacher", MODEL_RECORD, "kdeploy.distill.api:finetune",
          _wire_finetune, load="kdeploy.distill.result:TrainingResult.of_folder",
          rows="kdeploy.pipeline.show:finetune_rows"),
    Stage("distill", DistillSettings, DistillInputs, "student", MODEL_RECORD, "kdeploy.distill.api:distill",
          _wire_distill, load="kdeploy.distill.result:TrainingResult.of_folder",
          rows="kdeploy.pipeline.show:distill_rows"),
    Stage("prune", PruneSettings, PruneInputs, "pruned", MODEL_RECORD, "kdeploy.prune.api:prune", _wire_prune,
          load="kdeploy.prune.result:PruneResult.of_folder", rows="kdeploy.pipeline.show:prune_rows",
          requires=("distill", "prune needs a distill stage (it prunes the student)")),
    Stage("export", ExportSettings, ExportInputs, "onnx", EXPORT_REPORT, "kdeploy.export.api:export",
          _wire_export, load="kdeploy.export.result:ExportResult.of_folder", rows="kdeploy.pipeline.show:export_rows",
          requires=("distill", "export needs a distill stage (it exports the student)")),
    Stage("bench", BenchSettings, BenchInputs, "report", BENCH_REPORT, "kdeploy.runtime.bench:bench", _wire_bench,
          load="kdeploy.runtime.result:BenchReport.of_folder",
          requires=("export", "bench needs an export stage (it measures the exported student)"),
          show="kdeploy.pipeline.show:bench"),
    Stage("package", PackageSettings, PackageInputs, "bundle", BUNDLE_MANIFEST, "kdeploy.package.bundle:package",
          _wire_package, load="kdeploy.package.bundle:existing_bundle",
          requires=("export", "package needs an export stage (it bundles the exported student)"),
          show="kdeploy.pipeline.show:package"),
]
BY_NAME = {s.name: s for s in STAGES}

# What a stage needs before it in the recipe, and why (checked when the recipe is read).
REQUIRES = {s.name: s.requires for s in STAGES if s.requires}
