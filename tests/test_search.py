"""`kdeploy search` on a tiny model: each trial is a recipe run by the same stage runner as
`kdeploy run`, the front comes with recipes that `kdeploy run` accepts (and finds up to date
in the trial's folder), and a resumed search continues from its storage."""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import cli, data_of, finetune_settings
from kdeploy.distill.api import finetune
from kdeploy.errors import KdeployError
from kdeploy.pipeline import load_recipe
from kdeploy.search.api import search
from kdeploy.search.config import SearchSettings, SearchSpace


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, toy_files, tiny_base_bert):
    out = tmp_path_factory.mktemp("search") / "teacher"
    finetune(finetune_settings(), model=str(tiny_base_bert), data=data_of(toy_files), out=out)
    return out


def _settings(trials, epochs=1.0, families=("layers",)):
    return SearchSettings(trials=trials, epochs=epochs, max_length=32, latency_iterations=5, threads=1,
                          recover_epochs=0.5, space=SearchSpace(families=list(families), layers=[1, 2],
                                                                heads=[0.0, 0.5], learning_rate=[1e-3, 3e-3],
                                                                embedding_dim=[16], hidden_size=[16],
                                                                num_filters=[16], ffn=[0.5]))


def test_search_runs_resumes_and_writes_runnable_recipes(teacher, toy_files, tmp_path, cache_dir):
    out = tmp_path / "search"
    first = search(_settings(2), teacher=str(teacher), data=data_of(toy_files), out=out)
    assert first.trials["complete"] + first.trials["pruned"] == 2
    assert first.baseline is not None and first.baseline.params["layers"] == 2  # the default is trial 0
    resumed = search(_settings(3), teacher=str(teacher), data=data_of(toy_files), out=out)
    assert resumed.resumed_with_trials == 2
    assert resumed.trials["complete"] + resumed.trials["pruned"] == 3
    assert {r.trial for r in resumed.all} >= {0, 1}  # the first two trials are kept, not redone
    for row in resumed.front:
        assert 0 <= row.accuracy <= 1 and row.latency_ms > 0
        recipe = load_recipe(row.recipe)  # `kdeploy run` takes it as it is
        assert recipe["distill"].settings.student.layers == row.params["layers"]
        assert recipe["export"].settings.quantize == "int8"
        assert ("prune" in recipe.steps) == bool(row.params["heads"] or row.params["vocab"])
        assert row.throughput_bs32 > 0
    saved = json.loads((out / "front.json").read_text())
    assert saved["verdict"] == resumed.verdict and "versions" in saved["environment"]
    assert (out / "front.png").stat().st_size > 1000
    assert "| trial |" in (out / "front.md").read_text()
    # trials never see the test split
    trial_record = json.loads((out / "trials/000/student/kdeploy.json").read_text())
    assert "test" not in trial_record and trial_record["config"]["data"].get("test") is None
    with pytest.raises(KdeployError, match="holds a search with other settings \\(epochs\\)"):
        search(_settings(4, epochs=2.0), teacher=str(teacher), data=data_of(toy_files), out=out)


def test_a_trials_recipe_is_up_to_date_in_its_folder(teacher, toy_files, tmp_path, cache_dir):
    """One runner: the recipe a trial wrote, planned with `kdeploy run --dry-run` in the trial's
    folder, finds every stage up to date (nothing is imported from torch to say so)."""
    out = tmp_path / "search"
    search(_settings(1), teacher=str(teacher), data=data_of(toy_files), out=out)
    trial = out / "trials" / "000"
    assert (out / "recipes" / "trial-000.yaml").read_text() == (trial / "recipe.yaml").read_text()
    code = ("import sys, runpy; sys.argv = ['kdeploy', 'run', sys.argv[1], '--out', sys.argv[2], '--dry-run'];"
            "from kdeploy.cli import main\ntry:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\nprint('heavy', heavy)\nsys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code, str(trial / "recipe.yaml"), str(trial)], capture_output=True,
                            text=True, timeout=120, env={**os.environ})
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(("distill", "prune", "export", "bench"))]
    assert len(lines) >= 3 and all(line.endswith("is up to date") for line in lines), result.stdout
    assert "heavy []" in result.stdout


def test_one_front_across_student_families(teacher, toy_files, tmp_path, cache_dir):
    """The ladder: every family's trials in one study, one front, each family's best point."""
    import optuna

    from kdeploy.search.trial import suggest

    space = _settings(1, families=("width", "bilstm", "cnn", "static"))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(0))
    seen = {}
    for _ in range(40):
        trial = study.ask()
        params = suggest(trial, space)
        seen[params["family"]] = params
        study.tell(trial, [0.5, 1.0])
    assert set(seen) == {"width", "bilstm", "cnn", "static"}
    assert "ffn" in seen["width"] and "layers" in seen["width"] and "heads" not in seen["width"]
    assert {"embedding_dim", "hidden_size", "small_learning_rate"} <= set(seen["static"])
    assert "num_filters" in seen["cnn"] and "learning_rate" not in seen["cnn"]
    result = search(_settings(4, families=("layers", "static", "width")), teacher=str(teacher),
                    data=data_of(toy_files), out=tmp_path / "ladder")
    families = {r.family for r in result.all}
    assert families == {"layers", "static", "width"}  # each family's start is queued after the baseline
    best = result.best_per_family()
    assert set(best) == families and "## Each family's best point" in (tmp_path / "ladder/front.md").read_text()
    for row in result.all:
        recipe = load_recipe(tmp_path / "ladder" / "trials" / f"{row.trial:03d}" / "recipe.yaml")
        kind = recipe["distill"].settings.student.kind
        assert kind == ("layers" if row.family in ("layers", "width") else row.family)
        if row.family == "width":
            assert recipe["prune"].settings.ffn == 0.5


def test_search_space_is_validated():
    with pytest.raises(KdeployError, match="alpha"):
        SearchSpace(alpha=[0.5, 2.0])
    with pytest.raises(KdeployError, match="heads"):
        SearchSpace(heads=[1.5])
    with pytest.raises(KdeployError, match="families"):
        SearchSpace(families=["transformer"])


def test_early_stop_compares_a_trial_with_peers_of_its_own_depth():
    from types import SimpleNamespace

    from optuna.trial import TrialState

    from kdeploy.search.trial import EarlyStop, first_epoch_peers

    def done(layers, acc, state=TrialState.COMPLETE):
        return SimpleNamespace(state=state, params={"family": "layers", "layers": layers},
                               user_attrs={"first_epoch_accuracy": acc})

    trials = [done(3, 0.86), done(3, 0.85), done(3, 0.87), done(1, 0.79), done(1, 0.80),
              done(1, 0.60, TrialState.PRUNED)]
    assert sorted(first_epoch_peers(trials, 3)) == [0.85, 0.86, 0.87]
    assert first_epoch_peers(trials, 1) == [0.79, 0.80]  # pruned trials are no reference

    def first_epoch(reference, accuracy):
        stop, control = EarlyStop(reference, points=3.0), SimpleNamespace(should_training_stop=False)
        stop.on_evaluate(None, None, control, metrics={"eval_main": accuracy})
        stop.on_evaluate(None, None, control, metrics={"eval_main": 0.0})  # only the first epoch counts
        return stop.stopped, control.should_training_stop

    assert first_epoch(first_epoch_peers(trials, 3), 0.82) == (True, True)  # 4 points below its peers' median
    assert first_epoch(first_epoch_peers(trials, 3), 0.84) == (False, False)
    assert first_epoch(first_epoch_peers(trials, 1), 0.70) == (False, False)  # fewer than 3 peers: never


def test_family_starts_fit_the_users_space():
    """Each family's first trial is moved into the space the user gave (Optuna refuses fixed values outside it)."""
    from kdeploy.search.config import family_start

    space = SearchSpace(families=["static"], embedding_dim=[16, 64], hidden_size=[32],
                        small_learning_rate=[5e-4, 2e-3])
    point = family_start("static", space)
    assert point == {"family": "static", "temperature": 2.0, "alpha": 0.5, "embedding_dim": 64, "hidden_size": 32,
                     "vocab": True, "small_learning_rate": 5e-4}


def test_default_point_is_distills_own_defaults():
    """The baseline every front is compared with is `kdeploy distill` as shipped (issue 21: it was
    retyped by hand and could drift)."""
    from kdeploy.distill.config import DistillSettings
    from kdeploy.search.config import DEFAULT_POINT

    d = DistillSettings()
    assert (d.temperature, d.alpha, d.train.learning_rate, d.student.layers) == (2.0, 0.5, 1e-4, "auto")  # golden
    assert DEFAULT_POINT == {"family": "layers", "temperature": 2.0, "alpha": 0.5, "learning_rate": 1e-4,
                             "layers": 2, "heads": 0.0, "vocab": False}


WORKER = """
import sys
from conftest import data_of
from kdeploy.data import DataConfig
from kdeploy.search.api import search
from test_search import _settings
import json, pathlib
files = {k: pathlib.Path(v) for k, v in json.loads(sys.argv[1]).items()}
settings = _settings(4)
settings.storage = sys.argv[3]
result = search(settings, teacher=sys.argv[2], data=data_of(files), out=sys.argv[4])
print("RESULT", json.dumps({"trials": result.trials, "all": [r.trial for r in result.all], "machine": result.machine}))
"""


@pytest.mark.slow
def test_two_workers_share_one_study_through_a_journal_file(teacher, toy_files, tmp_path):
    """`--storage journal:PATH`: two worker processes (as on two machines, each with its own
    --out) run the trials of one study; each trial records its worker and machine; the budget is
    the study's; a worker with another search space is refused."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "study.journal"
    tests = os.path.dirname(__file__)
    env = {**os.environ, "PYTHONPATH": tests + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "KDEPLOY_CACHE": str(tmp_path / "cache")}
    files = json.dumps({k: str(v) for k, v in toy_files.items()})
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, files, str(teacher), f"journal:{journal}",
                                 str(tmp_path / f"worker{i}")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, cwd=tests) for i in (1, 2)]
    outs = [w.communicate(timeout=600) for w in workers]
    for w, (out, err) in zip(workers, outs):
        assert w.returncode == 0, err[-3000:]
    study = optuna.load_study(study_name="kdeploy-search", storage=JournalStorage(JournalFileBackend(str(journal))))
    finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert len(finished) >= 4  # the study's budget, shared (a worker stops when the study has its trials)
    by_worker = {t.user_attrs["worker"] for t in finished}
    assert by_worker == {f"{os.uname().nodename}:{tmp_path / 'worker1'}", f"{os.uname().nodename}:{tmp_path / 'worker2'}"}
    assert all(t.user_attrs["machine"] for t in finished)
    for out, _ in outs:  # each worker's front holds the trials timed on its machine (here: the same one)
        result = json.loads(out.split("RESULT", 1)[1])
        assert len(result["all"]) >= 1 and result["machine"]
    other = _settings(4, epochs=2.0)
    other.storage = f"journal:{journal}"
    with pytest.raises(KdeployError, match="holds a search with other settings \\(epochs\\)"):
        search(other, teacher=str(teacher), data=data_of(toy_files), out=tmp_path / "worker3")
    assert not (tmp_path / "worker3" / "search.json").exists()  # issue 42 #19: nothing that blocks a retry


def test_a_refused_search_leaves_nothing_that_blocks_the_corrected_command(teacher, toy_files, tmp_path):
    """Issue 42 #19: a storage that cannot be opened is refused, and the same --out then takes
    the corrected command (no search.json stamped with the refused settings)."""
    bad = _settings(4)
    bad.storage = f"sqlite:///{tmp_path / 'no-such-dir' / 'study.db'}"
    with pytest.raises(KdeployError, match="cannot open the study"):
        search(bad, teacher=str(teacher), data=data_of(toy_files), out=tmp_path / "s")
    assert not (tmp_path / "s" / "search.json").exists()
    from kdeploy.search.api import _check_settings

    assert _check_settings(tmp_path / "s", _settings(4), str(teacher), data_of(toy_files)) is not None


# --- search from the CLI: spaces without the default point, a killed trial -----------------

@pytest.mark.parametrize("flags", [["--families", "static"], ["--layers", "1,3"], ["--heads", "0.25,0.5"]],
                         ids=["families-static", "layers-1-3", "heads"])
def test_search_spaces_without_the_default_point(flags, tiny_bert, toy_files, tmp_path, cache_dir):  # issue 22 #11
    code, out, err = cli("search", "--teacher", tiny_bert, "--train", toy_files["train"], "--trials", "1",
                         "--epochs", "1", *flags, "--out", tmp_path / "s")
    assert code == 0, err
    front = json.loads((tmp_path / "s" / "front.json").read_text())
    assert front["trials"]["complete"] == 1 and front["trials"]["fail"] == 0


def test_a_killed_search_retries_the_trial_and_sweeps_it(tiny_bert, toy_files, tmp_path, cache_dir):  # issue 22 #23
    out = tmp_path / "s"
    args = [sys.executable, "-m", "kdeploy", "search", "--teacher", str(tiny_bert), "--train",
            str(toy_files["train"]), "--trials", "2", "--epochs", "3", "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "trials" / "001" / ".student.work").exists():
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert (out / "trials" / "001").exists(), "the search ended before its second trial could be killed"
    code, _, err = cli("search", "--teacher", tiny_bert, "--train", toy_files["train"], "--trials", "2",
                       "--epochs", "3", "--out", out)
    assert code == 0, err
    front = json.loads((out / "front.json").read_text())
    assert front["trials"] == {"complete": 2, "pruned": 0, "fail": 0, "interrupted": 1, "low_retention": 0}
    debris = [str(p.relative_to(out)) for p in out.rglob("*")
              if p.name.startswith(".") and p.name != ".kdeploy-output.json"]
    assert not debris and not (out / "trials" / "001").exists()


def test_a_fast_student_that_learned_nothing_is_kept_off_the_front():
    """Issue 44: a trial whose student kept less than half of its teacher's gain over the trivial
    answer is marked and never placed on the front as a fast model."""
    from types import SimpleNamespace

    from optuna.trial import TrialState

    from kdeploy.search.api import summarise

    def trial(number, accuracy, latency, low=False, baseline=False):
        return SimpleNamespace(number=number, state=TrialState.COMPLETE, values=[accuracy, latency],
                               params={"family": "layers", "layers": 2},
                               user_attrs={"low_retention": low, "baseline": baseline})

    study = SimpleNamespace(trials=[trial(0, 0.86, 2.0, baseline=True), trial(1, 0.85, 1.5),
                                    trial(2, 0.67, 0.3, low=True)])
    result = summarise(study)
    assert [r.trial for r in result.front] == [1, 0]
    assert any(r.trial == 2 and r.low_retention for r in result.all) and result.trials["low_retention"] == 1
