"""The typed contracts between stages: export files are named through their roles (declared once
in kdeploy/export/files.py), and the model-side `kdeploy` block of config.json is read and
written through one class (kdeploy/modelio/exported.py). Torch-free."""
import ast
import json
from pathlib import Path

import pytest

from kdeploy.export.files import BY_FILE, FP32, INT8, OPENVINO, OPTIMISED, PREFERENCE, ROLES, role_of
from kdeploy.export.result import ExportFile, ExportResult, GatedScores, Parity
from kdeploy.modelio.exported import ExportedModel

PACKAGE = Path(__file__).resolve().parents[1] / "kdeploy"

#: The places "model.onnx" may stand as a literal: names that belong to another tool's or
#: another layout's contract, not to an export folder.
OTHER_MODEL_ONNX = {
    "kdeploy/export/files.py": "the declaration",
    "kdeploy/runtime/kinds/onnx.py": "a teacher's plain export for the optimum-cli peer: optimum's own file name",
    "kdeploy/runtime/kinds/openvino.py": "the same, for a teacher OpenVINO reads through that export",
    "kdeploy/package/bundle.py": "a python bundle's own model name",
    "kdeploy/package/writers.py": "the e2e writer's scratch copy",
    "kdeploy/package/web.py": "transformers.js's file name for fp32",
    "kdeploy/package/ort_format.py": "onnxruntime's converter names its output (model.ort) after its input",
    "kdeploy/runtime/baselines.py": "model2vec's exporter writes model.onnx into its own folder",
}


def _string_constants(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docstrings]


def test_roles_are_declared_once_and_found_by_file():
    assert len(BY_FILE) == len(ROLES) == 5
    for role in ROLES.values():
        assert role_of(role.file) is role
    assert role_of("tokenizer.json") is None
    assert [r.role for r in PREFERENCE] == ["int8", "optimised", "fp32"]
    assert INT8.quantised and not FP32.quantised
    assert OPENVINO.runtime == "openvino" and OPENVINO.companions == ("model.ov.bin",)
    assert not FP32.derived and not OPTIMISED.derived and INT8.derived


def test_export_file_names_stand_only_in_their_declaration():
    unique = {r.file for r in ROLES.values() if r is not FP32} | set(OPENVINO.companions)
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(PACKAGE.parent))
        for value in _string_constants(path):
            if value in unique and rel != "kdeploy/export/files.py":
                offenders.append((rel, value))
            if value == FP32.file and rel not in OTHER_MODEL_ONNX:
                offenders.append((rel, value))
    assert offenders == []


def test_an_export_result_gives_typed_entries():
    result = ExportResult(model="m", config={}, max_length=8, label_names=["a", "b"])
    result.files[FP32.file] = ExportFile(mib=2.0, dtype="fp32")
    result.files[INT8.file] = ExportFile(mib=0.5, dtype="int8", quantization={"mode": "static"})
    result.files["notes.txt"] = ExportFile(mib=0.0, dtype="-")  # no role: not an entry
    result.parity[FP32.file] = Parity(max_abs_diff=1e-6, passed=True)
    entries = result.entries()
    assert [e.role for e in entries] == [FP32, INT8]
    assert entries[0].parity.passed and entries[1].parity.passed is None
    assert entries[1].quantisation == {"mode": "static"} and entries[1].scores is None
    assert result.entry(OPTIMISED) is None


def test_entries_survive_the_report_round_trip(tmp_path):
    from kdeploy.export.result import ExportAccuracy
    from kdeploy.metrics import Scores

    result = ExportResult(model="m", config={}, max_length=8, label_names=["a", "b"])
    result.files[INT8.file] = ExportFile(mib=0.5, dtype="int8")
    result.accuracy = ExportAccuracy(split="test", examples=4, pytorch=Scores({"accuracy": 0.75, "macro_f1": 0.7}),
                                     files={INT8.file: GatedScores({"accuracy": 0.5, "macro_f1": 0.4}, gate_passed=True)})
    result.save(tmp_path / "r.json")
    back = ExportResult.load(tmp_path / "r.json")
    assert back.entry(INT8).scores.main == 0.5 and back.entry(INT8).scores.gate_passed


def test_the_model_block_round_trips_and_keeps_its_defaults_in_one_place():
    block = ExportedModel(max_length=64, label_names=["neg", "pos"], inputs=["input_ids"], opset=17, pairs=False,
                          truncation="head+tail:16", session={INT8.file: {"disabled_optimizers": ["X"]}})
    config = {"model_type": "bert", "kdeploy": json.loads(json.dumps(block.to_json()))}
    assert ExportedModel.from_config(config) == block
    assert ExportedModel.from_config({"model_type": "bert"}) is None
    empty = ExportedModel.from_config({"kdeploy": {}})
    assert (empty.outputs, empty.task, empty.pair_truncation, empty.pairs, empty.truncation) == (
        ["logits"], "classification", "longest_first", None, None)
    assert "truncation" not in ExportedModel(pairs=True).to_json()  # pairs are cut longest-first, not by strategy
    assert block.session_of(INT8.file) == {"disabled_optimizers": ["X"]} and block.session_of(FP32.file) == {}
    assert block.to_json("max_length", "pairs") == {"max_length": 64, "pairs": False}


@pytest.mark.parametrize("bad", [{"max_length": "128"}, {"max_length": True}, {"pairs": "yes"},
                                 {"label_names": "a,b"}, {"session": []}])
def test_a_hand_edited_block_reads_wrong_types_as_absent(bad):
    block = ExportedModel.from_config({"kdeploy": bad})
    assert block == ExportedModel()


def test_the_block_is_read_from_a_folder(tmp_path):
    assert ExportedModel.read(tmp_path) is None
    (tmp_path / "config.json").write_text("{not json")
    assert ExportedModel.read(tmp_path) is None
    (tmp_path / "config.json").write_text(json.dumps({"kdeploy": {"max_length": 32, "pairs": True}}))
    assert ExportedModel.read(tmp_path) == ExportedModel(max_length=32, pairs=True)


def test_the_training_record_is_read_in_one_place(tmp_path):
    """Stages below distill read a trained model's kdeploy.json through `ModelRecord` only:
    records of every version (settings.train or train), wrong types read as absent."""
    from kdeploy.modelio.record import ModelRecord

    assert not ModelRecord.of(tmp_path) and ModelRecord.of(tmp_path / "absent").max_length is None
    record = {"stage": "distill", "model": {"builder": "layers", "model": "/m/teacher"}, "temperature": 2.0,
              "config": {"settings": {"train": {"max_length": 64}}, "data": {"train": "t.csv"}},
              "data": {"label_names": ["a", "b"], "pairs": True, "truncation": "head+tail:16"},
              "reference": {"texts": ["x"], "logits": [[0.0, 1.0]], "max_length": 64}, "pruning": {"seconds": 1}}
    (tmp_path / "kdeploy.json").write_text(json.dumps(record))
    got = ModelRecord.of(tmp_path)
    assert (got.max_length, got.truncation, got.pairs, got.base_model) == (64, "head+tail:16", True, "/m/teacher")
    assert got.data_config == {"train": "t.csv"} and got.pruning == {"seconds": 1} and got.reference["max_length"] == 64
    assert got.provenance == {"stage": "distill", "model": record["model"], "temperature": 2.0,
                              "data": {"train": "t.csv"}}
    (tmp_path / "kdeploy.json").write_text(json.dumps({"config": {"train": {"max_length": True}}, "model": "x",
                                                       "data": {"pairs": True}}))
    old = ModelRecord.of(tmp_path)  # a flat pre-0.2 config, hand-edited types, no label names
    assert (old.max_length, old.base_model, old.pairs, old.reference) == (None, None, None, None)
    (tmp_path / "kdeploy.json").write_text(json.dumps({"config": {"train": {"max_length": 32}}}))
    assert ModelRecord.of(tmp_path).max_length == 32
    readers = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
               if "read_record(" in p.read_text()]
    assert readers == ["kdeploy/modelio/record.py"]


def test_every_student_family_is_complete():
    """One entry per family carries all of its metadata, and what it names exists: its student
    kind is registered, its knobs are search dimensions, its first trial uses only its knobs
    within the default space, and its recipe builds that kind."""
    import re
    from dataclasses import fields

    import yaml

    from kdeploy.distill.families import FAMILIES, ONE_TEXT_KINDS, TEACHER_LAYER_KINDS
    from kdeploy.distill.methods import STUDENTS
    from kdeploy.search.config import SearchSpace

    space = SearchSpace()
    dimensions = {f.name for f in fields(SearchSpace)}
    for name, family in FAMILIES.items():
        assert family.name == name and family.kind in STUDENTS and family.description.strip()
        assert re.fullmatch(r"#[0-9a-f]{6}", family.colour), name
        assert set(family.knobs) <= dimensions, name
        assert set(family.start) <= set(family.knobs), name
        for knob, value in family.start.items():
            allowed = getattr(space, knob)
            assert value in allowed or (knob.endswith("learning_rate") and allowed[0] <= value <= allowed[1]), (name, knob)
        recipe = yaml.safe_load((PACKAGE.parent / family.recipe).read_text())
        assert recipe["distill"]["student"]["kind"] == family.kind, name
        assert bool((recipe.get("prune") or {}).get("ffn")) is ("ffn" in family.knobs), name
    assert set(ONE_TEXT_KINDS) == {"bilstm", "cnn", "static"} and TEACHER_LAYER_KINDS == ("layers",)
    assert len({f.colour for f in FAMILIES.values()}) == len(FAMILIES)  # tellable apart on the plot


def test_a_cli_flag_left_out_takes_its_default_from_the_one_place_that_declares_it():
    """Every flag of every command defaults to None (the stage's config then supplies its
    default, shown in --help from the config itself); the few flags no config owns repeat the
    default of the function they feed, checked here so the two cannot drift."""
    import inspect

    import typer

    import kdeploy.cli  # noqa: F401 - registers the commands
    from kdeploy.cli.app import app
    from kdeploy.configtools import default_of
    from kdeploy.data.config import DataConfig
    from kdeploy.edge import Predictor

    owned = {("predict", "provider"): inspect.signature(Predictor).parameters["provider"].default,
             ("predict", "encoding"): default_of(DataConfig, "encoding"),
             ("predict", "encoding_errors"): default_of(DataConfig, "encoding_errors"),
             ("demo", "out"): None}  # the demo's run folder: a path, checked below
    seen = set()
    for name, command in typer.main.get_command(app).commands.items():
        for p in command.params:
            if p.param_type_name != "option" or p.default is None or p.default is False or p.default == ():
                continue
            assert (name, p.name) in owned, f"kdeploy {name} {p.opts[0]} declares its own default {p.default!r}"
            seen.add((name, p.name))
            if name != "demo":
                assert p.default == owned[(name, p.name)], (name, p.name)
    assert seen == set(owned)


def test_every_bundle_format_has_a_writer_and_a_reader():
    """One entry per format, both sides together: the writer package runs, the reader the
    predictor opens it with (device side: in the torch-free predictor module), its model-card
    section; the manifest and the package settings accept exactly these formats."""
    import inspect

    from kdeploy.formats import FORMATS
    from kdeploy.manifest import KINDS
    from kdeploy.package.config import FORMATS as PACKAGE_FORMATS

    assert tuple(FORMATS) == KINDS == PACKAGE_FORMATS == ("python", "onnx-e2e", "web")
    for name, fmt in FORMATS.items():
        writer, reader, card = fmt.write(), fmt.read(), fmt.use()
        assert fmt.name == name and fmt.doc.strip()
        assert list(inspect.signature(writer).parameters) == ["tmp", "export_dir", "source", "manifest", "settings",
                                                              "export", "data"], name
        assert len(inspect.signature(reader).parameters) == 7 and reader.__module__ == "kdeploy.edge", name
        assert card.__module__ == "kdeploy.package.card", name
        assert writer.__module__ == "kdeploy.package.writers", name


def test_every_stage_names_its_api_loader_and_display():
    """The stage table drives the runner: each stage's API, the loader that reads its output back
    as a typed result, and what a run shows after it all resolve; REQUIRES is derived from it."""
    from kdeploy.pipeline.stages import REQUIRES, STAGES
    from kdeploy.registry import named

    for stage in STAGES:
        assert callable(stage.function()) and callable(named(stage.load)), stage.name
        assert stage.after() is None or callable(stage.after()), stage.name
    assert REQUIRES == {s.name: s.requires for s in STAGES if s.requires}
    assert {s.name for s in STAGES if s.show} == {"bench", "package"}
    assert {s.name for s in STAGES if s.rows} == {"finetune", "distill", "prune", "export"}
    assert all(callable(s.table_rows()) for s in STAGES if s.rows)


def test_record_and_file_names_are_declared_once():
    """kdeploy.json, bundle.json, report.json, export_report.json, config.json, tokenizer.json:
    spelled in kdeploy/names.py only (assets.py lists a hub snapshot's files with their checksums)."""
    names = ("kdeploy.json", "bundle.json", "report.json", "export_report.json", "config.json", "tokenizer.json",
             "kdeploy-run.json")
    found = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ("names.py", "assets.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{rel}:{node.lineno} {node.value}")
    assert not found, found
