"""Recipes: one YAML per teacher→student pipeline, validated before anything runs.

Each stage writes into the run folder; a stage whose settings (and upstream) did not
change since it last finished is skipped, and an interrupted one resumes.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .configtools import check_keys, from_dict, to_dict
from .data import DataConfig
from .distill.students import StudentConfig
from .distill.trainer import TrainConfig
from .errors import KdeployError

DEFAULT_RECIPE = "rotten_tomatoes_minilm.yaml"


@dataclass
class FinetuneStage:
    model: str
    tokenizer: str | None = None
    architecture: StudentConfig = field(default_factory=StudentConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2, learning_rate=5e-5))
    trust_remote_code: bool = False


@dataclass
class DistillStage:
    teacher: str | list[str] | None = None  # default: the finetune stage's output; a list is an ensemble
    student: StudentConfig = field(default_factory=StudentConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3, learning_rate=1e-4))
    alpha: float = 0.5
    temperature: float = 2.0
    teacher_weights: list[float] | None = None
    layer_losses: dict[str, float] = field(default_factory=dict)
    layer_map: str | None = None
    unlabeled: str | None = None
    augment: int = 0
    augment_seed: int = 0
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        from .distill.api import check_kd_settings, check_transfer_settings, parse_layer_losses

        check_kd_settings(self.alpha, self.temperature)
        self.layer_losses = parse_layer_losses(self.layer_losses)
        check_transfer_settings(self.alpha, self.unlabeled, self.augment)


@dataclass
class ExportStage:
    optimize: str | None = "O2"
    quantize: str | None = "int8"
    fp16: bool = False
    isa: str = "auto"
    per_channel: bool = False
    calibration_samples: int = 256
    calibration_method: str = "minmax"
    opset: int = 18
    atol: float = 1e-4
    max_accuracy_drop: float = 1.0

    def __post_init__(self) -> None:
        from .export.config import ExportConfig

        ExportConfig(model="-", out="-", **to_dict(self))  # the stage's own validation


@dataclass
class BenchStage:
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32])
    threads: int | None = None
    iterations: int = 100
    warmup: int = 10
    provider: str = "cpu"
    include_student_pytorch: bool = False

    def __post_init__(self) -> None:
        from .runtime.bench import BenchConfig

        BenchConfig(models=["-"], out="-", batch_sizes=self.batch_sizes, threads=self.threads,
                    iterations=self.iterations, warmup=self.warmup, provider=self.provider)


@dataclass
class PackageStage:
    model_file: str | None = None
    archive: str | None = "tar.gz"
    ort_format: bool = False  # also model.ort for ONNX Runtime Mobile
    sample_texts: list[str] = field(default_factory=list)  # predicted with the bundle at the end of the run

    def __post_init__(self) -> None:
        from .package.bundle import PackageConfig

        PackageConfig(export_dir="-", out="-", model_file=self.model_file, archive=self.archive)


@dataclass
class PruneStage:
    vocab: bool = True  # keep only the tokens the training data (and extra_corpus) uses
    extra_corpus: str | None = None
    heads: float = 0.0  # fraction of attention heads to prune by importance, then recover by distillation
    recover_epochs: float = 1.0

    def __post_init__(self) -> None:
        if not self.vocab and not self.heads:
            raise KdeployError("prune: nothing to do (vocab: false, heads: 0); remove the prune stage")


@dataclass
class Recipe:
    name: str
    data: DataConfig
    description: str = ""
    finetune: FinetuneStage | None = None
    distill: DistillStage | None = None
    prune: PruneStage | None = None
    export: ExportStage | None = None
    bench: BenchStage | None = None
    package: PackageStage | None = None

    def __post_init__(self) -> None:
        if self.distill is not None and self.distill.teacher is None and self.finetune is None:
            raise KdeployError("distill has no teacher: set distill.teacher or add a finetune stage")
        if self.finetune is None and self.distill is None:
            raise KdeployError("the recipe has no stage: add finetune and/or distill")
        if self.prune is not None and self.distill is None:
            raise KdeployError("prune needs a distill stage (it prunes the student)")
        if self.export is not None and self.distill is None:
            raise KdeployError("export needs a distill stage (it exports the student)")
        if self.bench is not None and self.export is None:
            raise KdeployError("bench needs an export stage (it measures the exported student)")
        if self.package is not None and self.export is None:
            raise KdeployError("package needs an export stage (it bundles the exported student)")


def default_recipe_path() -> Path:
    """models/ in a source checkout; the copy shipped inside the package otherwise."""
    repo = Path(__file__).resolve().parent.parent / "models" / DEFAULT_RECIPE
    return repo if repo.exists() else Path(__file__).resolve().parent / "recipes" / DEFAULT_RECIPE


def load_recipe(path: str | Path) -> Recipe:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise KdeployError(f"{path}: recipe not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise KdeployError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise KdeployError(f"{path}: a recipe is a mapping with name, data and stages")
    check_keys(raw, ["name", "description", "data", "finetune", "distill", "prune", "export", "bench", "package"],
               str(path))
    raw.setdefault("name", path.stem)
    for key in ("data",):
        if key not in raw:
            raise KdeployError(f"{path}: missing {key!r}")
    return from_dict(Recipe, raw, str(path))


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stage(name: str, record: Path, digest: str, describe: str, run) -> dict:
    """Run a stage unless its record shows it finished with these settings and inputs.

    The digest is stamped into the stage's own record after it finishes, so a stage
    interrupted before that simply runs again (and its training resumes from checkpoints).
    """
    from .console import console
    from .fsutil import write_json

    if record.exists() and json.loads(record.read_text()).get("recipe_digest") == digest:
        console.print(f"[dim]{name}: {record.parent} is up to date, skipped[/dim]")
    else:
        console.print(f"[bold]{name}[/bold] {describe}")
        run()
        write_json(record, {**json.loads(record.read_text()), "recipe_digest": digest})
    return json.loads(record.read_text())


def run_recipe(recipe: Recipe, out: Path | None = None) -> dict:
    from .console import console
    from .distill.api import DistillConfig, FinetuneConfig, distill, finetune
    from .report_table import print_pipeline_summary, weights_mib

    run_dir = Path(out) if out else Path("runs") / recipe.name
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    upstream = _digest(to_dict(recipe.data))
    teacher_dir = None
    started = time.perf_counter()

    if recipe.finetune is not None:
        stage = recipe.finetune
        teacher_dir = run_dir / "teacher"
        cfg = FinetuneConfig(model=stage.model, out=str(teacher_dir), data=recipe.data,
                             train=TrainConfig(**{**to_dict(stage.train), "resume": True}),
                             tokenizer=stage.tokenizer, architecture=stage.architecture,
                             trust_remote_code=stage.trust_remote_code)
        upstream = _digest([upstream, to_dict(stage)])
        results["teacher"] = _stage("finetune", teacher_dir / "kdeploy.json", upstream,
                                    f"{stage.model} → {teacher_dir}", lambda: finetune(cfg))

    if recipe.distill is not None:
        stage = recipe.distill
        teacher = stage.teacher or str(teacher_dir)
        student_dir = run_dir / "student"
        cfg = DistillConfig(teacher=teacher, out=str(student_dir), data=recipe.data, student=stage.student,
                            train=TrainConfig(**{**to_dict(stage.train), "resume": True}),
                            alpha=stage.alpha, temperature=stage.temperature, teacher_weights=stage.teacher_weights,
                            layer_losses=stage.layer_losses, layer_map=stage.layer_map, unlabeled=stage.unlabeled,
                            augment=stage.augment, augment_seed=stage.augment_seed,
                            trust_remote_code=stage.trust_remote_code)
        upstream = _digest([upstream, to_dict(stage)])
        results["student"] = _stage("distill", student_dir / "kdeploy.json", upstream,
                                    f"{teacher} → {student_dir}", lambda: distill(cfg))

    final_student = run_dir / "student"
    if recipe.prune is not None:
        from .prune.api import PruneConfig, prune

        pruned_dir = run_dir / "pruned"
        upstream = _digest([upstream, to_dict(recipe.prune)])
        prune_cfg = PruneConfig(model=str(final_student), out=str(pruned_dir), data=recipe.data,
                                **to_dict(recipe.prune))
        results["prune"] = _stage("prune", pruned_dir / "kdeploy.json", upstream,
                                  f"{final_student} → {pruned_dir}", lambda: prune(prune_cfg))["pruning"]
        final_student = pruned_dir

    if recipe.export is not None:
        from .export.api import export
        from .export.config import ExportConfig

        onnx_dir = run_dir / "onnx"
        upstream = _digest([upstream, to_dict(recipe.export)])
        export_cfg = ExportConfig(model=str(final_student), out=str(onnx_dir), data=recipe.data,
                                  **to_dict(recipe.export))
        results["export"] = _stage("export", onnx_dir / "export_report.json", upstream,
                                   f"{final_student} → {onnx_dir}", lambda: export(export_cfg))

    if recipe.bench is not None:
        from .runtime.bench import BenchConfig, run_bench
        from .runtime.report import print_table

        report_dir = run_dir / "report"
        stage = recipe.bench
        upstream = _digest([upstream, to_dict(stage)])
        first = recipe.distill.teacher if isinstance(recipe.distill.teacher, str) else (recipe.distill.teacher or [None])[0]
        models = [str(teacher_dir) if teacher_dir else first]
        if stage.include_student_pytorch:
            models.append(str(final_student))
        models += [str(run_dir / "onnx" / name) for name in ("model.onnx", "model.int8.onnx")
                   if (run_dir / "onnx" / name).exists()]
        bench_cfg = BenchConfig(models=models, out=str(report_dir), data=recipe.data, provider=stage.provider,
                                batch_sizes=stage.batch_sizes, threads=stage.threads, iterations=stage.iterations,
                                warmup=stage.warmup, max_length=recipe.distill.train.max_length)
        results["bench"] = _stage("bench", report_dir / "report.json", upstream,
                                  f"{len(models)} models → {report_dir}", lambda: run_bench(bench_cfg))
        print_table(results["bench"])

    if recipe.package is not None:
        from .edge import Predictor
        from .package.bundle import PackageConfig, package

        stage = recipe.package
        bundle_dir = run_dir / "bundle"
        report_json = run_dir / "report" / "report.json"
        # cheap and always consistent with its inputs, so it is simply rebuilt
        result = package(PackageConfig(export_dir=str(run_dir / "onnx"), out=str(bundle_dir),
                                       model_file=stage.model_file, archive=stage.archive, ort_format=stage.ort_format,
                                       report=str(report_json) if report_json.exists() else None))
        results["package"] = result
        console.print(f"bundle: {result['bundle']} ({result['bundle_mib']:.1f} MiB)"
                      + (f", archive {result['archive']} ({result['archive_mib']:.1f} MiB)" if result["archive"] else ""))
        if stage.sample_texts:
            predictor = Predictor(result["archive"] or result["bundle"])
            for text, pred in zip(stage.sample_texts, predictor.predict(stage.sample_texts)):
                console.print(f"  {pred['label']:>10} {pred['score']:.3f}  {text}", markup=False, highlight=False)

    rows = []
    if "teacher" in results:
        r = results["teacher"]
        rows.append({"name": "teacher (fine-tuned)", **r.get("test", {}), "params": r.get("parameters"),
                     "size_mib": weights_mib(teacher_dir), "seconds": r.get("train_seconds")})
    elif "student" in results:
        t = results["student"]["teacher"]
        rows.append({"name": f"teacher {t['model']}", **t.get("test", {})})
    if "student" in results:
        r = results["student"]
        rows.append({"name": f"student ({_describe(r['student'])})", **r.get("test", {}),
                     "params": r["student"].get("parameters"), "size_mib": weights_mib(run_dir / "student"),
                     "seconds": r.get("train_seconds")})
    if "prune" in results:
        r = results["prune"]
        rows.append({"name": f"student, vocabulary {r['vocab']['vocab_before']} → {r['vocab']['vocab_after']}",
                     **r["after"], "params": r["parameters"], "size_mib": weights_mib(run_dir / "pruned")})
    if "export" in results:
        rep = results["export"]
        acc = rep.get("accuracy", {})
        for name in ("model.onnx", "model.int8.onnx"):
            if name in rep["files"]:
                rows.append({"name": f"student ONNX {name.split('.')[1] if name != 'model.onnx' else 'fp32'}",
                             **{k: acc.get(name, {}).get(k) for k in ("accuracy", "macro_f1")},
                             "size_mib": rep["files"][name]["mib"]})
    print_pipeline_summary(rows, f"{recipe.name}: test split")
    console.print(f"run folder: {run_dir}  ({time.perf_counter() - started:.0f} s)")
    if "bench" in results:
        console.print(f"report: {run_dir / 'report' / 'report.html'} (and report.md, report.json)")
    if "package" in results:
        console.print(f"bundle: {results['package']['archive'] or results['package']['bundle']}"
                      f"  (try: kdeploy predict {results['package']['bundle']} \"some text\")", markup=False)
    return results


def _describe(student: dict) -> str:
    if student.get("builder") == "layers":
        return f"{len(student['teacher_layers'])} layers {student['teacher_layers']}"
    return student.get("builder", "?")
