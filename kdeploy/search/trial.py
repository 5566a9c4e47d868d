"""One search trial: the distill, prune, export and bench stages' own code, end to end,
scored on the validation split (the test split never steers the search)."""
from __future__ import annotations

import statistics
from pathlib import Path

from transformers import TrainerCallback

from ..data import DataConfig
from .config import SearchConfig


def suggest(trial, cfg: SearchConfig) -> dict:
    space = cfg.space
    return {
        "temperature": trial.suggest_float("temperature", *space.temperature, log=True),
        "alpha": trial.suggest_float("alpha", *space.alpha),
        "learning_rate": trial.suggest_float("learning_rate", *space.learning_rate, log=True),
        "layers": trial.suggest_categorical("layers", list(space.layers)),
        "heads": trial.suggest_categorical("heads", list(space.heads)),
        "vocab": trial.suggest_categorical("vocab", list(space.vocab)),
    }


class _EarlyStop(TrainerCallback):
    """Median stopping rule on first-epoch validation accuracy (Optuna cannot prune
    multi-objective trials itself): a trial far below the median of its finished peers
    (three or more) stops."""

    def __init__(self, reference: list[float], points: float):
        self.reference, self.points = reference, points
        self.first_epoch: float | None = None
        self.stopped = False

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.first_epoch is not None or not metrics or "eval_accuracy" not in metrics:
            return
        self.first_epoch = metrics["eval_accuracy"]
        if len(self.reference) >= 3 and self.first_epoch < statistics.median(self.reference) - self.points / 100:
            self.stopped = True
            control.should_training_stop = True


def first_epoch_peers(trials, layers: int) -> list[float]:
    """First-epoch accuracies of completed trials of the same depth. Depth sets most of the
    latency, so a student far below its peers is dominated; a shallower one that trails deeper
    students may still be the fastest point on the front, and is not compared with them."""
    from optuna.trial import TrialState

    return [t.user_attrs["first_epoch_accuracy"] for t in trials
            if t.state == TrialState.COMPLETE and t.params.get("layers") == layers
            and t.user_attrs.get("first_epoch_accuracy") is not None]


def search_data(data: DataConfig) -> DataConfig:
    """The user's data without its test split: trials are chosen on validation only."""
    from ..configtools import to_dict

    return DataConfig(**{**to_dict(data), "test": None})


def run_trial(trial, cfg: SearchConfig, params: dict, reference: list[float]) -> tuple[float, float]:
    import optuna

    from ..distill.api import DistillConfig, distill
    from ..distill.students import StudentConfig
    from ..distill.trainer import TrainConfig
    from ..export.api import export
    from ..export.config import ExportConfig
    from ..prune.api import PruneConfig, prune
    from ..runtime.bench import BenchConfig, run_bench

    folder = Path(cfg.out) / "trials" / f"{trial.number:03d}"
    data = search_data(cfg.data)
    stop = _EarlyStop(reference, cfg.early_stop_points)
    record = distill(DistillConfig(
        teacher=cfg.teacher, out=str(folder / "student"), data=data, student=StudentConfig(layers=params["layers"]),
        alpha=params["alpha"], temperature=params["temperature"],
        train=TrainConfig(epochs=cfg.epochs, learning_rate=params["learning_rate"], seed=cfg.seed,
                          max_length=cfg.max_length)), callbacks=[stop])
    trial.set_user_attr("first_epoch_accuracy", stop.first_epoch)
    if stop.stopped:
        raise optuna.TrialPruned(f"first-epoch accuracy {stop.first_epoch:.4f} far below the median")
    model = folder / "student"
    if params["heads"] or params["vocab"]:
        prune(PruneConfig(model=str(model), out=str(folder / "pruned"), data=data, vocab=params["vocab"],
                          heads=params["heads"], recover_epochs=cfg.recover_epochs, seed=cfg.seed,
                          max_length=cfg.max_length))
        model = folder / "pruned"
    report = export(ExportConfig(model=str(model), out=str(folder / "onnx"), data=data, optimize="O2",
                                 quantize="int8", max_accuracy_drop=100.0))
    int8 = folder / "onnx" / "model.int8.onnx"
    bench = run_bench(BenchConfig(models=[str(int8)], out=str(folder / "bench"), data=data, split="validation",
                                  batch_sizes=[1], iterations=cfg.latency_iterations, warmup=5, rounds=3,
                                  threads=cfg.threads, max_length=cfg.max_length))
    accuracy = report["accuracy"]["model.int8.onnx"]["accuracy"]
    by_batch = bench["models"][0]["latency"]
    latency = (by_batch.get(1) or by_batch.get("1"))["p50_ms"]
    trial.set_user_attr("student_validation_accuracy", record["validation"]["accuracy"])
    trial.set_user_attr("size_mib", report["files"]["model.int8.onnx"]["mib"])
    trial.set_user_attr("folder", str(folder))
    return accuracy, latency
