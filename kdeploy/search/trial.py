"""One search trial is a recipe (distill → prune → export → bench), run by the same stage
runner as `kdeploy run` and written beside its outputs as recipe.yaml; it is scored on the
validation split (the test split never steers the search)."""
from __future__ import annotations

import statistics
from pathlib import Path

from ..configtools import to_dict
from ..data import DataConfig
from ..distill.config import DistillSettings, StudentConfig, TrainConfig
from ..distill.families import FAMILIES
from ..export.config import ExportSettings
from ..export.files import INT8
from ..pipeline.recipe import Recipe, Step
from ..pipeline.stages import BenchInputs, DistillInputs, ExportInputs, PruneInputs
from ..prune.config import PruneSettings
from ..runtime.config import BenchSettings
from .config import SearchSettings

RECIPE = "recipe.yaml"


def suggest(trial, settings: SearchSettings) -> dict:
    """The family first, then that family's own knobs (define-by-run: Optuna samples only what is asked)."""
    space = settings.space
    family = trial.suggest_categorical("family", list(space.families))
    params = {"family": family, "temperature": trial.suggest_float("temperature", *space.temperature, log=True),
              "alpha": trial.suggest_float("alpha", *space.alpha)}
    for knob in FAMILIES[family].knobs:
        if knob in ("learning_rate", "small_learning_rate"):
            params[knob] = trial.suggest_float(knob, *getattr(space, knob), log=True)
        else:
            params[knob] = trial.suggest_categorical(knob, list(getattr(space, knob)))
    return params


def student_of(params: dict) -> StudentConfig:
    family = FAMILIES[params.get("family", "layers")]
    if family.copies_teacher_layers:
        return StudentConfig(kind=family.kind, layers=int(params["layers"]))
    extra = {k: int(params[k]) for k in ("embedding_dim", "hidden_size", "num_filters") if k in params}
    return StudentConfig(kind=family.kind, **extra)


def search_data(data: DataConfig) -> DataConfig:
    """The user's data without its test split: trials are chosen on validation only."""
    return DataConfig(**{**to_dict(data), "test": None})


def trial_recipe(number: int, params: dict, settings: SearchSettings, teacher: str, data: DataConfig) -> Recipe:
    lr = params.get("learning_rate") or params.get("small_learning_rate")
    train = TrainConfig(epochs=settings.epochs, learning_rate=float(lr), max_length=settings.max_length,
                        seed=settings.seed)
    steps = {"distill": Step(DistillSettings(student=student_of(params), alpha=float(params["alpha"]),
                                             temperature=float(params["temperature"]), augment=settings.augment,
                                             train=train),
                             DistillInputs(teacher=teacher))}
    heads, ffn, vocab = float(params.get("heads") or 0), float(params.get("ffn") or 0), bool(params.get("vocab"))
    if heads or ffn or vocab:
        steps["prune"] = Step(PruneSettings(vocab=vocab, heads=heads, ffn=ffn, recover_epochs=settings.recover_epochs,
                                            seed=settings.seed, max_length=settings.max_length), PruneInputs())
    # a trial's student that learned little is exported all the same and marked (kept off the front)
    steps["export"] = Step(ExportSettings(optimize="O2", quantize="int8", max_accuracy_drop=100.0,
                                          allow_low_retention=True), ExportInputs())
    steps["bench"] = Step(BenchSettings(split="validation", batch_sizes=[1, 32], iterations=settings.latency_iterations,
                                        warmup=5, rounds=3, threads=settings.threads, peaks=False),
                          BenchInputs(models=["int8"]))
    return Recipe(name=f"search-trial-{number:03d}", data=search_data(data),
                  description=f"kdeploy search trial {number}: {params}", steps=steps)


class EarlyStop:
    """Median stopping rule on first-epoch validation accuracy (Optuna cannot prune
    multi-objective trials itself): a trial far below the median of its finished peers
    (three or more) stops. A transformers TrainerCallback (built lazily: no torch at import)."""

    def __init__(self, reference: list[float], points: float):
        self.reference, self.points = reference, points
        self.first_epoch: float | None = None
        self.stopped = False

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.first_epoch is not None or not metrics or "eval_main" not in metrics:
            return
        self.first_epoch = metrics["eval_main"]  # the task's main metric
        if len(self.reference) >= 3 and self.first_epoch < statistics.median(self.reference) - self.points / 100:
            self.stopped = True
            control.should_training_stop = True

    def callback(self):
        from transformers import TrainerCallback

        stop = self

        class _Callback(TrainerCallback):
            def on_evaluate(self, args, state, control, metrics=None, **kwargs):
                stop.on_evaluate(args, state, control, metrics=metrics, **kwargs)

        return _Callback()


def first_epoch_peers(trials, layers: int | None, family: str = "layers") -> list[float]:
    """First-epoch accuracies of completed trials of the same family and depth. Those set most of
    the latency, so a student far below its peers is dominated; a cheaper one that trails
    costlier students may still be the fastest point on the front, and is not compared with them."""
    from optuna.trial import TrialState

    return [t.user_attrs["first_epoch_accuracy"] for t in trials
            if t.state == TrialState.COMPLETE and t.params.get("family", "layers") == family
            and t.params.get("layers") == layers and t.user_attrs.get("first_epoch_accuracy") is not None]


def run_trial(trial, settings: SearchSettings, teacher: str, data: DataConfig, out: Path, params: dict,
              reference: list[float]) -> tuple[float, float]:
    import optuna

    from ..pipeline.runner import run_recipe

    folder = out / "trials" / f"{trial.number:03d}"
    recipe = trial_recipe(trial.number, params, settings, teacher, data)
    stop = EarlyStop(reference, settings.early_stop_points)

    def after_distill(result):
        trial.set_user_attr("first_epoch_accuracy", stop.first_epoch)
        trial.set_user_attr("student_validation_accuracy", result.validation.main if result.validation else None)
        if result.retention is not None:
            trial.set_user_attr("retention_learned", result.retention.learned)
            trial.set_user_attr("low_retention", not result.retention.passed)
        if stop.stopped:
            raise optuna.TrialPruned(f"first-epoch accuracy {stop.first_epoch:.4f} far below the median")

    run = run_recipe(recipe, folder, hooks={"distill": {"callbacks": [stop.callback()], "after": after_distill}})
    recipe.dump(folder / RECIPE)
    export, bench = run.results["export"], run.results["bench"]
    int8 = export.entry(INT8)
    accuracy = int8.scores.main  # the task's main metric (accuracy, Pearson r, macro-F1)
    latency = bench.models[0].latency[1].p50_ms
    trial.set_user_attr("throughput_bs32", bench.models[0].latency[32].throughput_per_s)
    trial.set_user_attr("size_mib", int8.info.mib)
    trial.set_user_attr("folder", str(folder))
    return accuracy, latency
