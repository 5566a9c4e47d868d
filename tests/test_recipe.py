"""Recipes: validated before anything runs; re-runs skip finished stages."""
import json
import time
from pathlib import Path

import pytest
import yaml

from conftest import assert_one_error_line, cli
from kdeploy.errors import KdeployError
from kdeploy.pipeline import default_recipe_path, load_recipe, run_recipe

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


def _write(tmp_path, recipe: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("recipe,message", [
    ({"name": "x", "data": {"train": "t.tsv"}, "distil": {}}, "unknown key 'distil'; did you mean 'distill'?"),
    ({"name": "x", "data": {"train": "t.tsv", "text_col": "a"}, "distill": {"teacher": "t"}}, "data: unknown key 'text_col'; did you mean 'text_column'"),
    ({"name": "x", "data": {"train": "t.tsv"}, "distill": {"teacher": "t", "train": {"epoch": 2}}}, "distill.train: unknown key 'epoch'; did you mean 'epochs'"),
    ({"name": "x", "data": {"train": "t.tsv"}, "distill": {"teacher": "t", "alpha": 3}}, "alpha must be in [0, 1]"),
    ({"name": "x", "data": {"train": "t.tsv"}, "distill": {}}, "distill has no teacher"),
    ({"name": "x", "distill": {"teacher": "t"}}, "missing 'data'"),
    ({"name": "x", "data": {"train": "t.tsv"}, "distill": {"teacher": "t"}, "export": {"quantize": "int4"}}, "--quantize must be"),
    ({"name": "x", "data": {"train": "t.tsv"}, "distill": {"teacher": "t", "layer_losses": {"hiden": 1}}}, "unknown layer loss 'hiden'"),
    ({"name": "x", "data": {"train": "t.tsv"}, "distill": {"teacher": "t", "augment": 1, "alpha": 0}}, "needs alpha > 0"),
    ({"name": "x", "data": {"train": 5}, "distill": {"teacher": "t"}}, "data.train: expected text, got 5 (int)"),
    ({"name": "x", "data": {"train": "t.tsv"}, "distill": 5}, "distill: expected a mapping of settings, got 5"),
    ({"name": "x", "data": {"train": "t.tsv"}, "distill": {"teacher": "t", "train": {"batch_size": 2.5}}},
     "distill.train.batch_size: expected a whole number, got 2.5"),
    ({"name": "x", "data": {"train": "t.tsv"}, "distill": {"teacher": "t", "alpha": "high"}},
     "distill.alpha: expected a number, got 'high'"),
    ({"name": "x", "data": {"train": "t.tsv"}, "distill": {"teacher": "t", "temperature": float("nan")}}, "finite"),
    ({"name": "x", "data": {"train": "t.tsv"}, "prune": {}}, "the recipe has no stage"),
    ({"name": "x", "data": {"train": "t.tsv"}, "distill": {"teacher": "t", "layer_map": "0:1", "augmnt": 1}}, "did you mean 'augment'"),
])
def test_invalid_recipes_are_refused(tmp_path, recipe, message):
    with pytest.raises(KdeployError) as err:
        load_recipe(_write(tmp_path, recipe))
    assert message in str(err.value)


def test_distill_methods_in_a_recipe(tmp_path):
    recipe = load_recipe(_write(tmp_path, {"name": "x", "data": {"train": "t.tsv"}, "distill": {
        "teacher": ["a", "b"], "teacher_weights": [2, 1], "layer_losses": ["hidden", "attention=0.5"],
        "layer_map": "0:2,1:5", "augment": 2}}))
    assert recipe["distill"].settings.layer_losses == {"hidden": 1.0, "attention": 0.5}
    assert recipe["distill"].inputs.teacher == ["a", "b"] and recipe["distill"].settings.augment == 2
    assert recipe["distill"].settings.train.learning_rate == 1e-4  # the distill stage's default, not TrainConfig's


def test_a_recipe_reads_back_as_the_same_object(tmp_path):
    """to_dict() is a recipe: dumped and loaded again, it is equal (what a search trial relies on)."""
    for path in sorted((ROOT / "models").glob("*.yaml")):
        recipe = load_recipe(path)
        again = load_recipe(recipe.dump(tmp_path / path.name))
        assert again == recipe, path.name


def test_a_nan_or_alias_bomb_recipe_is_refused(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]"
        for i in range(1, 9)]
    bomb.write_text("\n".join(lines) + "\nname: x\ndata: {train: t.tsv, label_names: *a8}\n")
    assert bomb.stat().st_size < 1000
    with pytest.raises(KdeployError, match="expands to more than"):
        load_recipe(bomb)
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * (2 << 20))
    with pytest.raises(KdeployError, match="too large for a recipe"):
        load_recipe(huge)


def test_every_shipped_recipe_is_valid():
    recipes = sorted((ROOT / "models").glob("*.yaml"))
    assert default_recipe_path().resolve() in [p.resolve() for p in recipes]  # shipped in the package, too
    for path in recipes:
        load_recipe(path)


def test_run_then_rerun_skips_finished_stages(tmp_path, tiny_base_bert, toy_files, monkeypatch, capsys):
    monkeypatch.setenv("KDEPLOY_CACHE", str(tmp_path / "cache"))
    fast = {"epochs": 2, "learning_rate": 3e-3, "warmup_ratio": 0.0, "batch_size": 16, "max_length": 32}
    recipe = {"name": "tiny", "data": {k: str(v) for k, v in toy_files.items()},
              "finetune": {"model": str(tiny_base_bert), "train": fast},
              "distill": {"student": {"layers": 2}, "train": fast},
              "prune": {"vocab": True},
              "export": {"optimize": "O2", "quantize": "int8", "max_accuracy_drop": 100},
              "bench": {"batch_sizes": [1, 4], "iterations": 5, "warmup": 1, "threads": 1},
              "package": {"sample_texts": ["a good film", "dull"]}}
    path = _write(tmp_path, recipe)
    results = run_recipe(load_recipe(path), tmp_path / "run").results
    assert set(results) == {"finetune", "distill", "prune", "export", "bench", "package"}
    assert results["prune"].vocab["vocab_after"] <= results["prune"].vocab["vocab_before"]  # toy text uses every word
    assert json.loads((tmp_path / "run/onnx/export_report.json").read_text())["model"] == str(tmp_path / "run/pruned")
    assert (tmp_path / "run/bundle.tar.gz").exists() and (tmp_path / "run/bundle/bundle.json").exists()
    assert (tmp_path / "run/report/report.html").exists()
    assert [m.name for m in results["bench"].models] == ["teacher (pytorch)", "onnx/model.onnx", "onnx/model.int8.onnx"]
    assert (tmp_path / "run/onnx/model.int8.onnx").exists()
    first = (tmp_path / "run/student/kdeploy.json").stat().st_mtime_ns
    capsys.readouterr()
    run_recipe(load_recipe(path), tmp_path / "run")
    out = capsys.readouterr().out
    assert "a good film" in out and "dull" in out  # the bundle's sample predictions
    assert out.count("up to date, skipped") == 6  # every stage
    assert (tmp_path / "run/student/kdeploy.json").stat().st_mtime_ns == first
    recipe["distill"]["alpha"] = 0.9  # a changed distill setting reruns distill and what follows it
    run_recipe(load_recipe(_write(tmp_path, recipe)), tmp_path / "run")
    out = capsys.readouterr().out
    assert "finetune: " in out and out.count("up to date") == 1  # the teacher is kept
    for stage in ("distill", "prune", "export", "bench", "package"):
        assert f"{stage} → " in out  # the rest runs again
    assert json.loads((tmp_path / "run/student/kdeploy.json").read_text())["alpha"] == 0.9
    # staleness is judged by content: flip every training label (same path), and everything is stale
    train = Path(recipe["data"]["train"])
    flipped = tmp_path / "flipped.tsv"
    lines = train.read_text().splitlines()
    swap = {"positive": "negative", "negative": "positive"}
    flipped.write_text("\n".join([lines[0]] + [f"{t}\t{swap[l]}" for t, l in (x.split("\t") for x in lines[1:])]) + "\n")
    recipe["data"]["train"] = str(flipped)
    plan = run_recipe(load_recipe(_write(tmp_path, recipe)), tmp_path / "run", dry_run=True).plan
    assert [p.up_to_date for p in plan] == [False] * 6 and "changed" in plan[0].reason


def test_interrupted_run_resumes_without_redoing_finished_stages(tmp_path, tiny_base_bert, toy_files, monkeypatch, capsys):
    from kdeploy.distill import trainer as trainer_module

    monkeypatch.setenv("KDEPLOY_CACHE", str(tmp_path / "cache"))
    fast = {"epochs": 3, "learning_rate": 3e-3, "warmup_ratio": 0.0, "batch_size": 16, "max_length": 32}
    recipe = load_recipe(_write(tmp_path, {"name": "tiny", "data": {k: str(v) for k, v in toy_files.items()},
                                           "finetune": {"model": str(tiny_base_bert), "train": fast},
                                           "distill": {"train": fast, "augment": 0}}))
    original = trainer_module._EpochTimer.on_epoch_begin
    calls = {"n": 0}

    def interrupt_distill_in_third_epoch(self, args, state, control, **kwargs):
        if "student" in args.output_dir and state.epoch >= 2:
            calls["n"] += 1
            raise KeyboardInterrupt
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(trainer_module._EpochTimer, "on_epoch_begin", interrupt_distill_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, tmp_path / "run")
    monkeypatch.setattr(trainer_module._EpochTimer, "on_epoch_begin", original)
    assert calls["n"] == 1 and (tmp_path / "run/teacher/kdeploy.json").exists()
    assert not (tmp_path / "run/student").exists()
    teacher_mtime = (tmp_path / "run/teacher/kdeploy.json").stat().st_mtime_ns
    capsys.readouterr()
    results = run_recipe(recipe, tmp_path / "run")
    out = capsys.readouterr().out
    assert "finetune: " in out and "up to date, skipped" in out
    assert (tmp_path / "run/teacher/kdeploy.json").stat().st_mtime_ns == teacher_mtime
    assert results.results["distill"].resumed_from == "checkpoint-20"
    assert len(results.results["distill"].epoch_seconds) == 1  # only the unfinished epoch was trained


def test_a_variant_keeps_the_recipes_settings_and_changes_only_what_it_is_told(tmp_path):
    """Bench scripts reuse a family's one recipe through `variant`: other data, teacher, seed,
    fewer stages; every other setting stays as the recipe declares it."""
    from kdeploy.data import DataConfig
    from kdeploy.pipeline.recipe import load_recipe, variant

    base = load_recipe(MODELS / "sst2_width.yaml")
    data = DataConfig(train=str(tmp_path / "t.tsv"), validation=str(tmp_path / "v.tsv"), label_names=["a", "b"])
    v = variant(base, name="width-s2", data=data, teacher="runs/other/teacher", seed=2, stages=("distill", "prune", "export"))
    assert v.name == "width-s2" and list(v.steps) == ["distill", "prune", "export"]
    assert v.data == data and v["distill"].inputs.teacher == "runs/other/teacher"
    assert v["distill"].settings.train.seed == 2 and v["prune"].settings.seed == 2
    assert v["distill"].settings.augment == base["distill"].settings.augment
    assert v["prune"].settings.ffn == base["prune"].settings.ffn == 0.5
    assert v["distill"].settings.train.epochs == base["distill"].settings.train.epochs
    same = variant(base)
    assert same.to_dict() == base.to_dict()
    demo = load_recipe(MODELS / "rotten_tomatoes_minilm.yaml")
    assert "finetune" not in variant(demo, teacher="runs/t").steps  # a given teacher replaces fine-tuning


def test_a_relative_data_path_that_is_missing_says_where_it_was_looked_for(tmp_path, monkeypatch):
    """Issue 42 (minor): a recipe's relative data path resolves against the current folder; the
    error said only "file not found"."""
    from kdeploy.errors import KdeployError
    from kdeploy.pipeline import load_recipe
    from kdeploy.pipeline.runner import run_recipe

    (tmp_path / "recipes" / "data").mkdir(parents=True)
    (tmp_path / "recipes" / "data" / "train.tsv").write_text("sentence\tlabel\na\t0\n")
    recipe = tmp_path / "recipes" / "r.yaml"
    recipe.write_text("name: r\ndata: {train: data/train.tsv}\nfinetune: {model: builtin:all-MiniLM-L6-v2}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KdeployError) as exc:
        run_recipe(load_recipe(recipe), out=tmp_path / "runs" / "r")
    said = str(exc.value)
    assert "data/train.tsv not found" in said and f"current folder, {tmp_path}" in said
    assert f"run from {tmp_path / 'recipes'}" in said
    assert not (tmp_path / "runs").exists()


# --- recipes through `kdeploy run`: type errors, alias bombs, lists of texts, the summary ---

@pytest.mark.parametrize("section,message", [
    ({"data": {"train": 5}, "distill": {"teacher": "t"}}, "data.train: expected text, got 5 (int)"),
    ({"data": {"train": "t.tsv"}, "distill": 5}, "distill: expected a mapping of settings, got 5 (int)"),
    ({"data": {"train": "t.tsv"}, "distill": {"teacher": "t", "train": {"batch_size": 2.5}}},
     "distill.train.batch_size: expected a whole number, got 2.5"),
    ({"data": {"train": "t.tsv"}, "distill": {"teacher": "t", "alpha": "high"}},
     "distill.alpha: expected a number, got 'high'"),
])
def test_recipe_type_errors_refuse_the_run_in_one_line(section, message, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "r", **section}))
    code, _, err = cli("run", recipe, "--out", tmp_path / "run")
    assert_one_error_line(code, err, message)
    assert not (tmp_path / "run").exists()


def test_recipe_alias_bomb_is_refused_at_once(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text("\n".join(lines) + "\nname: x\ndata: {train: t.tsv, label_names: *a8}\n")
    started = time.perf_counter()
    code, _, err = cli("run", recipe, "--out", tmp_path / "run")
    assert_one_error_line(code, err, "expands to more than")
    assert time.perf_counter() - started < 30


def test_a_recipe_list_of_texts_is_never_split_on_commas(tmp_path):  # issue 22 #6
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "r", "data": {"train": "t.tsv"}, "distill": {"teacher": "t"},
                                      "package": {"sample_texts": "A gripping, beautiful film"}}))
    code, _, err = cli("run", recipe, "--out", tmp_path / "run")
    assert_one_error_line(code, err, "package.sample_texts: expected a list of text, got the single text")
    from kdeploy.configtools import coerce

    assert coerce("1,3", list[int], "layers") == [1, 3]  # numbers hold no commas: a CLI-style list is fine
    assert coerce(["A gripping, beautiful film"], list[str], "s") == ["A gripping, beautiful film"]


def test_dry_run_refuses_a_recipe_whose_data_is_missing(tmp_path):  # issue 22 #22
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "r", "data": {"train": str(tmp_path / "missing.tsv")},
                                      "distill": {"teacher": "t"}}))
    code, out, err = cli("run", recipe, "--dry-run")
    assert_one_error_line(code, err, "missing.tsv not found")
    assert "would run" not in out


def test_run_summary_names_its_split_and_metric(tiny_bert, toy_files, tmp_path, cache_dir):  # issue 22 #20, #26
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "r", "data": {"train": str(toy_files["train"]), "validation": str(toy_files["validation"])},
        "distill": {"teacher": str(tiny_bert), "student": {"kind": "layers", "layers": 1}, "train": {"epochs": 1}},
        "export": {"quantize": "int8", "max_accuracy_drop": 100},
        "package": {"sample_texts": ["a lovely film", "dull and boring"]}}))
    code, out, err = cli("run", recipe, "--out", tmp_path / "run")
    assert code == 0, err
    assert "r: validation split" in out and "validation acc" in out and "test acc" not in out
    samples = out[out.index("student (bundle)"):].splitlines()[:3]
    assert "teacher" in samples[0] and "lovely film" in samples[1] and samples[1].count("0.") >= 2  # both answers
