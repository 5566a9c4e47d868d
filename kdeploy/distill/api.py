"""The distill stage's Python API:

    finetune(FinetuneSettings(...), model=..., data=DataConfig(...), out=...)
    distill(DistillSettings(...), teacher=..., data=DataConfig(...), out=...)

Both return a `TrainingResult`, also saved as the output folder's kdeploy.json.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from ..configtools import to_dict
from ..console import main_process
from ..data import DataConfig, TaskData, load_task_data
from ..errors import KdeployError
from ..fsutil import check_output, claimed_output
from ..modelio.record import check_max_length
from .config import DistillSettings, FinetuneSettings, StudentConfig, TrainConfig
from .methods import STUDENTS
from .result import TrainingResult
from .workdir import kept_until_done, prepare, work_dir_of


@contextlib.contextmanager
def claimed(out: Path, inputs: list, overwrite: bool, what: str) -> Iterator[None]:
    """Check the output path and hold its lock; under torchrun only rank 0 holds it."""
    if main_process():
        with claimed_output(out, inputs, overwrite, what):
            yield
    else:
        check_output(out, inputs, overwrite)
        yield


def _record_config(settings, inputs: dict, data: DataConfig) -> dict:
    return {"settings": to_dict(settings), "inputs": {k: v for k, v in inputs.items() if v is not None},
            "data": to_dict(data)}


def _arguments(out: Path, config: dict, train: TrainConfig, resume: bool):
    """TrainingArguments (which joins the process group under torchrun), then the work dir,
    prepared by the main process alone before any other rank touches it."""
    from .trainer import training_arguments

    work = work_dir_of(out)
    args = training_arguments(train, work)
    with args.main_process_first(local=False, desc="work dir"):
        if args.process_index == 0:
            prepare(work, config, resume)
    return args, work


def finetune(settings: FinetuneSettings, model: str, data: DataConfig, out: str | Path, tokenizer: str | None = None,
             resume: bool = False, overwrite: bool = False, callbacks: list | None = None) -> TrainingResult:
    """Fine-tune a teacher; the output folder is a ready `AutoModelForSequenceClassification`.
    `model` is a pretrained encoder (folder, hub id, builtin:...) or bilstm/cnn with `tokenizer`."""
    from_scratch = model in STUDENTS and model != "layers"
    if from_scratch and not tokenizer:
        raise KdeployError(f"--model {model} needs --tokenizer (a model folder or hub id whose tokenizer it uses)")
    out = Path(out)
    with claimed(out, [model, tokenizer, *data.files()], overwrite, "kdeploy finetune"):
        task = load_task_data(data)
        task.require_train("finetune")
        check_student_reads(model, task)
        built, tok, described = _base_model(settings, model, tokenizer, task)
        check_max_length(settings.train.max_length, built.config.to_dict(), f"model {model}")
        if task.task == "regression":
            built.config.problem_type = "regression"
        config = _record_config(settings, {"model": model, "tokenizer": tokenizer}, data)
        args, work = _arguments(out, config, settings.train, resume)
        with kept_until_done(work, args.process_index == 0):
            from .trainer import fit, save_model

            trainer, fitted = fit(built, tok, task, settings.train, args, work, resume, callbacks=callbacks)
            record = TrainingResult(stage="finetune", model=described, parameters=_parameters(built),
                                    config=config, data=task.summary(), **fitted)
            save_model(trainer, tok, out, record, overwrite)
    return record


def _base_model(settings: FinetuneSettings, model: str, tokenizer: str | None, task: TaskData):
    from transformers import set_seed

    from ..modelio.loading import label_names_of, load_classifier, load_tokenizer
    from .students import build_student

    set_seed(settings.train.seed)
    if model in STUDENTS and model != "layers":
        tok = load_tokenizer(tokenizer, settings.trust_remote_code)
        base = _embeddings_source(tokenizer, task.label_names, settings.trust_remote_code)
        arch = StudentConfig(**{**to_dict(settings.architecture), "kind": model})
        return build_student(arch, base, tok, task.label_names)
    built = load_classifier(model, label_names=task.label_names, trust_remote_code=settings.trust_remote_code)
    task.aligned_to(label_names_of(built), "model")
    return built, load_tokenizer(model, settings.trust_remote_code), {"builder": "pretrained", "model": model}


def _embeddings_source(name: str, label_names, trust_remote_code):
    """A bilstm/cnn trained from scratch starts from the tokenizer's model's word embeddings when it has one."""
    from ..modelio.loading import load_classifier

    try:
        return load_classifier(name, label_names=label_names, trust_remote_code=trust_remote_code)
    except KdeployError:
        return None


ONE_TEXT_KINDS = ("bilstm", "cnn", "static")  # read one token sequence; no segment embeddings


def check_student_reads(kind: str, task: TaskData) -> None:
    """Which student kinds can read a sentence pair: transformers (token_type_ids tell the two
    texts apart); the recurrent, convolutional and static students read one text."""
    if task.pairs and kind in ONE_TEXT_KINDS:
        raise KdeployError(f"a {kind} student reads one text, but this is a sentence-pair task; use a transformer "
                           "student (--student layers, or a pretrained model)")


def _inputs_of(train_set) -> list:
    texts = list(train_set["text"])
    return list(zip(texts, train_set["text_pair"])) if "text_pair" in train_set.column_names else texts


def _parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def distill(settings: DistillSettings, teacher: str | list[str], data: DataConfig, out: str | Path,
            unlabeled: str | None = None, cache_dir: str | Path | None = None, resume: bool = False,
            overwrite: bool = False, callbacks: list | None = None) -> TrainingResult:
    """Distil one teacher (or an ensemble) into a student. Teacher logits and features are
    computed once per text and cached, so the teacher costs nothing on a second run."""
    names = [teacher] if isinstance(teacher, str) else list(teacher)
    settings.check_inputs(names, unlabeled)
    from .logits_cache import cache_root

    cache = Path(cache_dir) if cache_dir else cache_root()
    existing = next((p for p in (cache, *cache.parents) if p.exists()), None)  # the part that is there already
    if existing is not None and not existing.is_dir():
        raise KdeployError(f"{'--cache-dir' if cache_dir else '$KDEPLOY_CACHE'} {cache}: {existing} is a file, not a "
                           "folder; give a folder for the teacher-logit cache")
    out = Path(out)
    with claimed(out, [*names, *data.files(), unlabeled], overwrite, "kdeploy distill"):
        return _distill(settings, names, data, out, unlabeled, Path(cache_dir) if cache_dir else None, resume,
                        overwrite, callbacks)


def _distill(settings: DistillSettings, names: list[str], data: DataConfig, out: Path, unlabeled, cache_dir,
             resume: bool, overwrite: bool, callbacks) -> TrainingResult:
    from ..modelio.record import label_names_in

    task = load_task_data(data)  # data problems surface before torch is even imported
    task.require_train("distill")
    for name in names:  # so do label mismatches with a local teacher
        if Path(name).is_dir():
            task = task.aligned_to(label_names_in(name), f"teacher {name}")

    from transformers import set_seed

    from .ensemble import normalise_weights
    from .students import build_student
    from .teachers import load_teachers, summaries, teacher_outputs
    from .trainer import fit, save_model
    from .transfer import training_set

    check_student_reads(settings.student.kind, task)
    teachers, task = load_teachers(names, task, settings.trust_remote_code)
    for name, model in zip(names, teachers.models):
        check_max_length(settings.train.max_length, model.config.to_dict(), f"teacher {name}")
        if model.config.num_labels != task.num_labels:
            raise KdeployError(f"teacher {name} has {model.config.num_labels} outputs, but the data "
                               + ("is a score task (one output)" if task.task == "regression"
                                  else f"has {task.num_labels} classes")
                               + "; distil from a teacher fine-tuned on this task")
    weights = normalise_weights(settings.teacher_weights, len(names))
    copies = settings.augment
    if copies is None:
        from ..console import say
        from .config import auto_augment

        copies, why = auto_augment(len(task.splits["train"]), settings.alpha)
        say(f"augment: {copies} copies per example ({why})")
    train_set, counts, transfer = training_set(task, unlabeled, copies, settings.augment_seed,
                                               teachers.tokenizers[0], data.text_column, data.encoding,
                                               data.encoding_errors)
    config = _record_config(settings, {"teacher": names if len(names) > 1 else names[0], "unlabeled": unlabeled}, data)
    args, work = _arguments(out, config, settings.train, resume)
    with kept_until_done(work, args.process_index == 0):
        set_seed(settings.train.seed)  # the student is built (and checked against the teacher) before the teacher runs
        student, tokenizer, described = build_student(settings.student, teachers.models[0], teachers.tokenizers[0],
                                                      task.label_names, settings.trust_remote_code)
        check_max_length(settings.train.max_length, student.config.to_dict(), "the student")
        student.config.id2label = dict(enumerate(task.label_names))
        student.config.label2id = {n: i for i, n in enumerate(task.label_names)}
        if task.task == "regression":
            student.config.problem_type = "regression"
        objective = None
        if settings.layer_losses:
            from .layers import layer_objective

            objective = layer_objective(settings.layer_losses, settings.layer_map, teachers.models[0],
                                        teachers.tokenizers[0], student, tokenizer)
        max_length = settings.train.max_length
        logits, hits, seconds = teacher_outputs(teachers, task, transfer, weights, settings.temperature,
                                                max_length, cache_dir, args.device)  # sharded across ranks
        timings = {"teacher_logits_seconds": seconds}
        mixed, members = summaries(teachers, logits, task, weights)
        store, layer_record = None, None
        if objective is not None:
            import time

            from .layers import teacher_features

            t0 = time.perf_counter()
            with args.main_process_first(local=False, desc="teacher features"):
                store, layer_record = teacher_features(objective, teachers.models[0], teachers.tokenizers[0],
                                                       teachers.fingerprints[0], names[0], student,
                                                       _inputs_of(train_set), max_length, cache_dir)
            timings["teacher_features_seconds"] = round(time.perf_counter() - t0, 2)
        teachers.models.clear()  # free the teachers before training
        trainer, fitted = fit(student, tokenizer, task.with_train(train_set), settings.train, args, work, resume,
                              teacher_logits=logits["train"] if settings.alpha > 0 else None, alpha=settings.alpha,
                              temperature=settings.temperature, layer_objective=objective, feature_store=store,
                              callbacks=callbacks)
        record = TrainingResult(
            stage="distill", model={**described, "parameters": _parameters(student)}, parameters=_parameters(student),
            config=config, data=task.summary(), teacher=mixed, teachers=members, alpha=settings.alpha,
            temperature=settings.temperature, teacher_logits_cached=hits, training_examples=counts, timings=timings,
            layer_objective=layer_record, **fitted)
        save_model(trainer, tokenizer, out, record, overwrite)
    return record
