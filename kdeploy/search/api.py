"""`search(SearchSettings(...), teacher=..., data=..., out=...)`: an Optuna multi-objective
study (NSGA-II) over distillation and pruning settings, stored in SQLite so an interrupted
search continues where it stopped. Each trial is a recipe run by the stage runner.

Output in `out/`: study.db, search.json, front.md and front.json (the Pareto front),
front.png, trials/NNN/ (each trial's run folder and recipe.yaml), and recipes/trial-NNN.yaml
for each front point, which `kdeploy run` takes as it is.
"""
from __future__ import annotations

import json
import shutil
import socket
import time
import warnings
from pathlib import Path

from ..configtools import to_dict
from ..data import DataConfig
from ..errors import KdeployError
from ..fsutil import check_output, output_lock, write_json, write_text, written_by_kdeploy
from .config import FAMILY_STARTS, SearchSettings, default_start, family_start
from .result import SearchResult, TrialRow
from .trial import RECIPE, first_epoch_peers, run_trial, suggest, trial_recipe

STUDY = "kdeploy-search"
STATE = "search.json"


def search(settings: SearchSettings, teacher: str, data: DataConfig, out: str | Path,
           overwrite: bool = False) -> SearchResult:
    out = Path(out)
    check_output(out, [teacher, *data.files()], overwrite, published=False)
    with output_lock(out, "kdeploy search"):
        out.mkdir(parents=True, exist_ok=True)
        stamp = _check_settings(out, settings, teacher, data)
        return _search(settings, teacher, data, out, stamp)


def _search(settings: SearchSettings, teacher: str, data: DataConfig, out: Path,
            stamp: dict | None = None) -> SearchResult:
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(seed=settings.seed, population_size=max(4, min(10, settings.trials // 2)))
    study = _open_study(settings, out, sampler)
    if stamp is not None:  # written only once every check has passed: a refused search leaves nothing to block a retry
        write_json(out / STATE, stamp)
    worker, here = f"{socket.gethostname()}:{out.resolve()}", machine_key()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # a shared study: only this worker's own trials (another worker may be running its own now)
        if t.user_attrs.get(WORKER, worker if settings.storage is None else None) == worker:
            _retry_interrupted(study, t, out)
    if not study.trials:
        default = default_start(settings.space)
        if default is not None:
            study.enqueue_trial(default, user_attrs={"baseline": True})
        for family in settings.space.families:
            if family in FAMILY_STARTS:
                study.enqueue_trial(family_start(family, settings.space))
    finished = lambda: [t for t in study.get_trials(deepcopy=False)  # noqa: E731
                        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    resumed_with = len(finished())
    started = time.perf_counter()

    def objective(trial):
        trial.set_user_attr(WORKER, worker)
        trial.set_user_attr(MACHINE, here)
        params = suggest(trial, settings)
        return run_trial(trial, settings, teacher, data, out, params,
                         first_epoch_peers(finished(), params.get("layers"), params["family"]))

    # the default point is measured even where it lies outside the searched ranges
    warnings.filterwarnings("ignore", message="Fixed parameter .* is out of range", category=UserWarning)
    while len(finished()) < settings.trials:
        if settings.minutes is not None and time.perf_counter() - started > 60 * settings.minutes:
            break
        # a trial that fails (a student that cannot be built, a run out of memory) fails alone
        study.optimize(objective, n_trials=1, catch=(KdeployError, RuntimeError, MemoryError))
        failed = [t for t in study.trials if t.state == TrialState.FAIL and not t.user_attrs.get(INTERRUPTED)]
        if len(failed) > max(3, settings.trials // 2):
            raise KdeployError(f"{len(failed)} trials failed; see {out / 'trials'} (last: "
                               f"{failed[-1].system_attrs.get('fail_reason', '?').splitlines()[-1]})")
    result = summarise(study, here)
    result.resumed_with_trials, result.seconds = resumed_with, round(time.perf_counter() - started, 1)
    write_outputs(result, out, settings, teacher, data)
    return result


INTERRUPTED = "interrupted"
LOW_RETENTION = "low_retention"
WORKER, MACHINE = "worker", "machine"  # who ran a trial (host:out) and where it was timed


def machine_key() -> str:
    """Latencies compare only on like hardware: the CPU model and its core count."""
    from ..environment import machine

    m = machine()
    return f"{m['cpu']} x{m['cores']}"


def _open_study(settings: SearchSettings, out: Path, sampler):
    """The study in OUT/study.db, or in the shared storage every worker names with --storage;
    a shared study must be the same search on every worker."""
    import optuna

    url = settings.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    try:
        if url.startswith("journal:"):
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            storage = JournalStorage(JournalFileBackend(url[len("journal:"):]))
        else:
            storage = optuna.storages.RDBStorage(url, heartbeat_interval=None)
        study = optuna.create_study(study_name=STUDY, storage=storage, directions=["maximize", "minimize"],
                                    sampler=sampler, load_if_exists=True)
    except (ImportError, OSError) as exc:
        raise KdeployError(f"--storage {url}: cannot open the study ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # sqlalchemy's errors: a server that is down, a wrong password, a missing driver
        if type(exc).__module__.split(".")[0] != "sqlalchemy":
            raise
        raise KdeployError(f"--storage {url}: cannot open the study ({str(exc).splitlines()[0]})") from None
    if settings.storage is not None:
        mine = json.loads(json.dumps({k: v for k, v in to_dict(settings).items()
                                      if k not in ("trials", "minutes", "threads", "storage")}))
        theirs = study.user_attrs.get("settings")
        if theirs is None:
            study.set_user_attr("settings", mine)
        elif theirs != mine:
            changed = sorted(k for k in mine if theirs.get(k) != mine[k])
            raise KdeployError(f"--storage {url} holds a search with other settings ({', '.join(changed)}); "
                               "every worker of a shared study must search the same space")
    return study


def _retry_interrupted(study, trial, out: Path) -> None:
    """A trial left RUNNING by a killed search: closed (Optuna has no way back), marked as
    interrupted so it is not counted as a failure, its settings queued to run again, and its
    half-written folder (temporary folders, locks, a partial run) removed. The search's own
    lock is held, so no process is still writing it."""
    from optuna.trial import TrialState

    study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
    study.tell(trial.number, state=TrialState.FAIL)
    if trial.params:
        study.enqueue_trial(dict(trial.params), user_attrs={k: v for k, v in trial.user_attrs.items()
                                                           if k == "baseline"})
    folder = out / "trials" / f"{trial.number:03d}"
    if folder.is_dir() and not folder.is_symlink() and written_by_kdeploy(folder):  # proven by content, never a link
        shutil.rmtree(folder)
    for debris in (out / "trials").glob(f".{folder.name}.*"):  # the run's lock and temporary siblings
        if debris.is_symlink() or not debris.is_dir():
            debris.unlink()  # a link itself, never what it points to
        else:
            shutil.rmtree(debris)


def _check_settings(out: Path, settings: SearchSettings, teacher: str, data: DataConfig) -> dict | None:
    """A resumed study must be the same search: other settings would mix incomparable trials.
    Returns the settings to stamp in a new search (None: resuming)."""
    stamp = out / STATE
    current = {k: v for k, v in to_dict(settings).items() if k not in ("trials", "minutes")}
    current = json.loads(json.dumps({**current, "teacher": teacher, "data": to_dict(data)}))
    if stamp.exists():
        previous = json.loads(stamp.read_text())
        if previous != current:
            changed = sorted(k for k in current if previous.get(k) != current[k])
            raise KdeployError(f"{out} holds a search with other settings ({', '.join(changed)}); "
                               "use another --out, or the same settings to resume it")
        return None
    return current


def _row(t) -> TrialRow:
    p = dict(t.params)
    return TrialRow(trial=t.number, family=p.pop("family", "layers"), accuracy=t.values[0], latency_ms=t.values[1],
                    throughput_bs32=t.user_attrs.get("throughput_bs32"), size_mib=t.user_attrs.get("size_mib"),
                    baseline=bool(t.user_attrs.get("baseline")), params=p, machine=t.user_attrs.get(MACHINE),
                    low_retention=bool(t.user_attrs.get(LOW_RETENTION)))


def pareto(rows: list[TrialRow]) -> list[TrialRow]:
    """The rows no other row beats on both accuracy (higher) and latency (lower), fastest first."""
    from ..runtime.report import pareto_front

    return [rows[i] for i in pareto_front([(r.latency_ms, r.accuracy) for r in rows])]


def summarise(study, here: str | None = None) -> SearchResult:
    """The front of the trials timed on `here` (all of them when trials carry no machine): a
    shared study's other machines have their own fronts, never mixed into this one."""
    from collections import Counter

    from optuna.trial import TrialState

    complete = [_row(t) for t in study.trials if t.state == TrialState.COMPLETE]
    local = [r for r in complete if here is None or r.machine in (None, here)]
    elsewhere = dict(Counter(r.machine for r in complete if here is not None and r.machine not in (None, here)))
    front = pareto([r for r in local if not r.low_retention])  # a fast student that learned nothing is no choice
    baseline = next((r for r in local if r.baseline), None)
    better = [r for r in front if baseline and not r.baseline and r.latency_ms < baseline.latency_ms
              and r.accuracy >= baseline.accuracy]
    if baseline is None and any(r.baseline for r in complete):
        verdict = "the hand-picked default was timed on another machine of this shared study, not on this one"
    elif baseline is None:
        verdict = ("the hand-picked default was not measured (its family, layers, is not searched; or its trial failed "
                   "or is pending)")
    elif better:
        best = min(better, key=lambda r: r.latency_ms)
        verdict = (f"trial {best.trial} is {baseline.latency_ms / best.latency_ms:.2f}x faster than the "
                   f"hand-picked default ({best.latency_ms:.2f} vs {baseline.latency_ms:.2f} ms p50) at "
                   f"{100 * best.accuracy:.2f}% vs {100 * baseline.accuracy:.2f}% validation accuracy")
    else:
        verdict = "no point on the front is faster than the hand-picked default at no lower accuracy"
    counts = {s.name.lower(): sum(t.state == s and not t.user_attrs.get(INTERRUPTED) for t in study.trials)
              for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    counts["interrupted"] = sum(bool(t.user_attrs.get(INTERRUPTED)) for t in study.trials)
    counts["low_retention"] = sum(r.low_retention for r in local)  # complete, but off the front
    return SearchResult(front=front, baseline=baseline, faster_at_no_lower_accuracy=better, verdict=verdict,
                        trials=counts, all=local, machine=here, other_machines=elsewhere)


def write_outputs(result: SearchResult, out: Path, settings: SearchSettings, teacher: str, data: DataConfig) -> None:
    from ..environment import library_versions, machine
    from .front import plot_front

    recipes = out / "recipes"
    recipes.mkdir(exist_ok=True)
    for row in result.front + ([result.baseline] if result.baseline else []):
        path = recipes / f"trial-{row.trial:03d}.yaml"
        ran = out / "trials" / f"{row.trial:03d}" / RECIPE
        if ran.is_file():  # exactly what the trial ran
            shutil.copyfile(ran, path)
        else:
            trial_recipe(row.trial, {"family": row.family, **row.params}, settings, teacher, data).dump(path)
        row.recipe = str(path)
    plot_front(result, out / "front.png")
    result.environment = {"machine": machine(), "versions": library_versions()}
    result.save(out / "front.json")
    write_text(out / "front.md", result.to_markdown())
