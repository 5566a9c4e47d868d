"""`search(SearchConfig)`: an Optuna multi-objective study (NSGA-II) over distillation and
pruning settings, stored in SQLite so an interrupted search continues where it stopped.

Output in `out/`: study.db, front.md and front.json (the Pareto front), front.png, and
recipes/trial-NNN.yaml for each front point, which `kdeploy run` takes as it is.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

from ..configtools import to_dict
from ..errors import KdeployError
from .config import DEFAULT_POINT, SearchConfig
from .trial import first_epoch_peers, run_trial, suggest

STUDY = "kdeploy-search"


def search(cfg: SearchConfig) -> dict:
    import optuna
    from optuna.trial import TrialState

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, cfg)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    sampler = optuna.samplers.NSGAIISampler(seed=cfg.seed, population_size=max(4, min(10, cfg.trials // 2)))
    study = optuna.create_study(study_name=STUDY, storage=storage, directions=["maximize", "minimize"],
                                sampler=sampler, load_if_exists=True)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)  # interrupted: its settings are tried afresh
    if not study.trials:
        study.enqueue_trial(DEFAULT_POINT, user_attrs={"baseline": True})
    finished = lambda: [t for t in study.get_trials(deepcopy=False)  # noqa: E731
                        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    resumed_with = len(finished())
    started = time.perf_counter()

    def objective(trial):
        params = suggest(trial, cfg)
        return run_trial(trial, cfg, params, first_epoch_peers(finished(), params["layers"]))

    # the default point is measured even where it lies outside the searched ranges
    warnings.filterwarnings("ignore", message="Fixed parameter .* is out of range", category=UserWarning)
    while len(finished()) < cfg.trials:
        if cfg.minutes is not None and time.perf_counter() - started > 60 * cfg.minutes:
            break
        study.optimize(objective, n_trials=1, catch=(KdeployError,))
        failed = [t for t in study.trials if t.state == TrialState.FAIL]
        if len(failed) > max(3, cfg.trials // 2):
            raise KdeployError(f"{len(failed)} trials failed; see {out / 'trials'} (last: "
                               f"{failed[-1].system_attrs.get('fail_reason', '?').splitlines()[-1]})")
    result = summarise(study, cfg)
    result.update({"resumed_with_trials": resumed_with, "seconds": round(time.perf_counter() - started, 1)})
    write_outputs(result, study, cfg)
    return result


def _check_settings(out: Path, cfg: SearchConfig) -> None:
    """A resumed study must be the same search: other settings would mix incomparable trials."""
    stamp = out / "search.json"
    settings = {k: v for k, v in to_dict(cfg).items() if k not in ("trials", "minutes", "out")}
    if stamp.exists():
        previous = json.loads(stamp.read_text())
        if previous != json.loads(json.dumps(settings)):
            changed = sorted(k for k in settings if previous.get(k) != json.loads(json.dumps(settings))[k])
            raise KdeployError(f"{out} holds a search with other settings ({', '.join(changed)}); "
                               "use another --out, or the same settings to resume it")
    else:
        stamp.write_text(json.dumps(settings, indent=1))


def _row(t) -> dict:
    return {"trial": t.number, **t.params, "accuracy": t.values[0], "latency_ms": t.values[1],
            "size_mib": t.user_attrs.get("size_mib"), "baseline": bool(t.user_attrs.get("baseline"))}


def summarise(study, cfg: SearchConfig) -> dict:
    from optuna.trial import TrialState

    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    front = sorted((_row(t) for t in study.best_trials), key=lambda r: r["latency_ms"])
    baseline = next((_row(t) for t in complete if t.user_attrs.get("baseline")), None)
    better = [r for r in front if baseline and not r["baseline"] and r["latency_ms"] < baseline["latency_ms"]
              and r["accuracy"] >= baseline["accuracy"]]
    if baseline is None:
        verdict = "the hand-picked default was not measured (its trial failed or is pending)"
    elif better:
        best = min(better, key=lambda r: r["latency_ms"])
        verdict = (f"trial {best['trial']} is {baseline['latency_ms'] / best['latency_ms']:.2f}x faster than the "
                   f"hand-picked default ({best['latency_ms']:.2f} vs {baseline['latency_ms']:.2f} ms p50) at "
                   f"{100 * best['accuracy']:.2f}% vs {100 * baseline['accuracy']:.2f}% validation accuracy")
    else:
        verdict = "no point on the front is faster than the hand-picked default at no lower accuracy"
    counts = {s.name.lower(): sum(t.state == s for t in study.trials)
              for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    return {"front": front, "baseline": baseline, "faster_at_no_lower_accuracy": better, "verdict": verdict,
            "trials": counts, "all": [_row(t) for t in complete]}


def write_outputs(result: dict, study, cfg: SearchConfig) -> None:
    from ..environment import library_versions, machine
    from ..fsutil import write_json
    from .front import plot_front, write_recipe

    out = Path(cfg.out)
    recipes = out / "recipes"
    recipes.mkdir(exist_ok=True)
    for row in result["front"]:
        row["recipe"] = str(write_recipe(recipes / f"trial-{row['trial']:03d}.yaml", row, cfg))
    plot_front(result, out / "front.png")
    result["environment"] = {"machine": machine(), "versions": library_versions()}
    write_json(out / "front.json", result)
    cols = ["trial", "layers", "alpha", "temperature", "learning_rate", "heads", "vocab", "accuracy", "latency_ms",
            "size_mib"]
    lines = ["# kdeploy search: accuracy/latency front", "",
             f"Objectives: int8 ONNX validation accuracy (max), batch-1 p50 latency on this machine (min). "
             f"Trials: {result['trials']}. {result['verdict']}.", "",
             "| " + " | ".join(cols) + " | recipe |", "|" + "---|" * (len(cols) + 1)]
    for row in result["front"] + ([result["baseline"]] if result["baseline"] and not result["baseline"] in
                                  result["front"] else []):
        cells = [_fmt(k, row.get(k)) for k in cols]
        tag = " (default)" if row.get("baseline") else ""
        lines.append("| " + " | ".join(cells) + f" | {Path(row['recipe']).name if row.get('recipe') else ''}{tag} |")
    lines += ["", "![front](front.png)", ""]
    (out / "front.md").write_text("\n".join(lines))


def _fmt(key, value) -> str:
    if value is None:
        return ""
    if key == "accuracy":
        return f"{100 * value:.2f}"
    if key in ("latency_ms", "size_mib"):
        return f"{value:.2f}"
    if key in ("alpha", "temperature", "heads"):
        return f"{value:.2f}"
    if key == "learning_rate":
        return f"{value:.1e}"
    return str(value)
