"""The distill stage's Python API:

    finetune(FinetuneSettings(...), model=..., data=DataConfig(...), out=...)
    distill(DistillSettings(...), teacher=..., data=DataConfig(...), out=...)

Both return a `TrainingResult`, also saved as the output folder's kdeploy.json.
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from ..configtools import to_dict
from ..console import main_process, say
from ..data import DataConfig, TaskData, load_task_data
from ..errors import KdeployError
from ..tasks import task_kind
from ..fsutil import check_output, claimed_output
from ..modelio.record import check_max_length, check_room, position_limit
from .config import DistillSettings, FinetuneSettings, StudentConfig, TrainConfig
from .families import ONE_TEXT_KINDS, TEACHER_LAYER_KINDS
from .methods import STUDENTS
from .result import TrainingResult, parameter_count, record_config
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
    from_scratch = model in STUDENTS and model not in TEACHER_LAYER_KINDS
    if from_scratch and not tokenizer:
        raise KdeployError(f"--model {model} needs --tokenizer (a model folder or hub id whose tokenizer it uses)")
    out = Path(out)
    with claimed(out, [model, tokenizer, *data.files()], overwrite, "kdeploy finetune"):
        task = load_task_data(data)
        task.require_train("finetune")
        check_student_reads(model, task)
        built, tok, described = _base_model(settings, model, tokenizer, task)
        settings, task = _window(settings, task, tok, None if from_scratch else built.config.to_dict())
        check_max_length(settings.train.max_length, built.config.to_dict(), f"model {model}")
        check_room(settings.train.max_length, tok, task.pairs)
        built.config.problem_type = task.kind.problem_type
        task = read_as(task, tok, model, settings.train.max_length)
        settings, probe = _probed(settings, built, tok, task, from_scratch)
        config = record_config(settings, {"model": model, "tokenizer": tokenizer}, data)
        args, work = _arguments(out, config, settings.train, resume)
        with kept_until_done(work, args.process_index == 0):
            from .trainer import fit, save_model

            trainer, fitted = fit(built, tok, task, settings.train, args, work, resume, callbacks=callbacks)
            record = TrainingResult.trained(fitted, stage="finetune", model=described, parameters=parameter_count(built),
                                            config=config, data=task.summary(), learning_rate_probe=probe)
            save_model(trainer, tok, out, record, overwrite)
    return record


def _probed(settings: FinetuneSettings, built, tokenizer, task: TaskData, from_scratch: bool):
    """The settings with the probe's learning rate when no rate was given (said in one line), and
    what the probe measured; a model trained from scratch keeps its rate."""
    from ..console import note, say
    from .lr_probe import PROBE_MIN_EXAMPLES, probe_learning_rate

    if not settings.learning_rate_probe or from_scratch:
        return settings, None
    if len(task.splits["train"]) < PROBE_MIN_EXAMPLES:
        note(f"the learning-rate probe cannot tell rates apart on {len(task.splits['train'])} training examples "
             f"(it needs {PROBE_MIN_EXAMPLES}); training at {settings.train.learning_rate:g}; --lr to choose one")
        return settings, None
    rate, measured = probe_learning_rate(built, tokenizer, task, settings.train)
    losses = ", ".join(f"{k} → {v}" for k, v in measured.items() if k not in ("examples", "seconds"))
    say(f"learning rate: {rate:g}, the lowest validation loss after one pass over {measured['examples']:,} training "
        f"examples ({losses}; {measured['seconds']:.0f} s); --lr to choose one")
    return replace(settings, train=replace(settings.train, learning_rate=rate)), measured


def _base_model(settings: FinetuneSettings, model: str, tokenizer: str | None, task: TaskData):
    from transformers import set_seed

    from ..modelio.loading import label_names_of, load_classifier, load_tokenizer
    from .students import build_student

    set_seed(settings.train.seed)
    if model in STUDENTS and model not in TEACHER_LAYER_KINDS:
        tok = load_tokenizer(tokenizer, settings.trust_remote_code)
        base = _embeddings_source(tokenizer, task.label_names, settings.trust_remote_code)
        arch = StudentConfig(**{**to_dict(settings.architecture), "kind": model})
        return build_student(arch, base, tok, task.label_names)
    built = load_classifier(model, label_names=task.label_names, trust_remote_code=settings.trust_remote_code,
                            model_class=task.kind.model_class)
    task.aligned_to(label_names_of(built), "model")
    return built, load_tokenizer(model, settings.trust_remote_code), {"builder": "pretrained", "model": model}


def _embeddings_source(name: str, label_names, trust_remote_code):
    """A bilstm/cnn trained from scratch starts from the tokenizer's model's word embeddings when it has one."""
    from ..modelio.loading import load_classifier

    try:
        return load_classifier(name, label_names=label_names, trust_remote_code=trust_remote_code)
    except KdeployError:
        return None


def check_student_reads(kind: str, task: TaskData) -> None:
    """Which student kinds can read a sentence pair: transformers (token_type_ids tell the two
    texts apart); the recurrent, convolutional and static students read one text."""
    if task.pairs and kind in ONE_TEXT_KINDS:
        raise KdeployError(f"a {kind} student reads one text, but this is a sentence-pair task; use a transformer "
                           "student (--student layers, or a pretrained model)")


def _window(settings, task: TaskData, tokenizer, model_config: dict | None):
    """The settings with `max_length: auto` resolved from the training texts' token lengths
    (said in one line), and the data with head+tail when a long text meets a transformer."""
    from ..console import say
    from .config import auto_max_length

    if settings.train.max_length is not None:
        return settings, task
    texts = task.texts("train")
    sample = texts[::max(1, len(texts) // 2000)]
    if task.kind.word_labels:  # every sentence's words as given, each split by the tokenizer (cheap: sentences)
        enc = tokenizer(list(task.splits["train"]["words"]), is_split_into_words=True, truncation=False, verbose=False)
    elif task.pairs:
        enc = tokenizer([a for a, _ in sample], [b for _, b in sample], truncation=False, verbose=False)
    else:
        enc = tokenizer(sample, truncation=False, verbose=False)
    limit = position_limit(model_config) if model_config is not None else None
    if task.kind.word_labels:  # every word is scored: a window that reads the longest sentence whole
        longest = max((len(ids) for ids in enc["input_ids"]), default=32)
        window = min(limit or 512, max(32, -(-longest // 32) * 32))
        say(f"max_length: {window} tokens: the longest of {len(enc['input_ids']):,} training sentences is "
            f"{longest} tokens{' (the model limit cuts it)' if limit and longest > limit else ''}")
        return replace(settings, train=replace(settings.train, max_length=window)), task
    window, cut, why = auto_max_length([len(ids) for ids in enc["input_ids"]], limit,
                                       task.truncation is not None or task.pairs)
    if cut:
        task = replace(task, truncation=cut)
    say(f"max_length: {window} tokens{', ' + cut if cut else ''}: {why}")
    return replace(settings, train=replace(settings.train, max_length=window)), task


def read_as(task: TaskData, tokenizer, source: str, max_length: int) -> TaskData:
    """The data with the single-text truncation the trained model will record, set on its
    tokenizer: the data's (--truncation), else the one `source` (a teacher, a base model)
    was trained with (its head count re-chosen when it does not fit this window), else head."""
    from ..modelio.inputs import set_truncation
    from ..modelio.record import truncation_of
    from ..truncation import refit, resolve

    if task.pairs or task.kind.word_labels:  # a pair, or words: no head/tail choice to make
        return task
    inherited = truncation_of(source) if Path(source).is_dir() else None
    spec = resolve(task.truncation, max_length) if task.truncation else refit(inherited or "head", max_length)
    set_truncation(tokenizer, spec)
    return replace(task, truncation=spec)


def _inputs_of(train_set) -> list:
    texts = list(train_set["text"])
    return list(zip(texts, train_set["text_pair"])) if "text_pair" in train_set.column_names else texts


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
        if task_kind(data.task).sentence_vectors:  # no labels, no logits: the student learns the teacher's vectors
            from .embedding import distill_embedding

            return distill_embedding(settings, names, data, out, unlabeled, Path(cache_dir) if cache_dir else None,
                                     resume, overwrite, callbacks)
        return _distill(settings, names, data, out, unlabeled, Path(cache_dir) if cache_dir else None, resume,
                        overwrite, callbacks)


def _distill(settings: DistillSettings, names: list[str], data: DataConfig, out: Path, unlabeled, cache_dir,
             resume: bool, overwrite: bool, callbacks) -> TrainingResult:
    """The steps in their order: data and teachers, the window, the transfer set, the student,
    the teacher's outputs (cached), training, the record."""
    from transformers import set_seed

    from .ensemble import normalise_weights
    from .teachers import summaries, teacher_outputs
    from .trainer import fit, save_model

    task, teachers = _task_and_teachers(settings, names, data)
    # the window every teacher can read (an ensemble's shortest position table)
    shortest = min((m.config.to_dict() for m in teachers.models),
                   key=lambda c: position_limit(c) or float("inf"))
    settings, task = _window(settings, task, teachers.tokenizers[0],
                             None if settings.student.kind in ONE_TEXT_KINDS else shortest)
    check_room(settings.train.max_length, teachers.tokenizers[0], task.pairs)
    weights = normalise_weights(settings.teacher_weights, len(names))
    train_set, counts, transfer = _transfer_set(settings, task, teachers, unlabeled, data)
    config = record_config(settings, {"teacher": names if len(names) > 1 else names[0], "unlabeled": unlabeled}, data)
    args, work = _arguments(out, config, settings.train, resume)
    with kept_until_done(work, args.process_index == 0):
        set_seed(settings.train.seed)  # the student is built (and checked against the teacher) before the teacher runs
        student, tokenizer, described, task = _student(_provisional(settings), teachers, task, names[0])
        passed = task.with_train(train_set) if task.kind.word_labels else task  # a tagger's copies carry their tags
        logits, hits, seconds = teacher_outputs(teachers, passed, transfer, weights, settings.temperature,
                                                settings.train.max_length, cache_dir, args.device,
                                                settings.teacher_chunks)  # sharded
        timings = {"teacher_logits_seconds": seconds}
        settings, depth = _depth(settings, teachers, task, train_set, logits["train"], args)
        if depth is not None:  # the student at the depth the probe chose
            set_seed(settings.train.seed)
            student, tokenizer, described, task = _student(settings, teachers, task, names[0])
        objective = None
        if settings.layer_losses:
            from .layers import layer_objective

            objective = layer_objective(settings.layer_losses, settings.layer_map, teachers.models[0],
                                        teachers.tokenizers[0], student, tokenizer)
        mixed, members = summaries(teachers, logits, task, weights)
        store, layer_record = _teacher_features(objective, teachers, names[0], student, train_set, settings, cache_dir,
                                                args, timings)
        teachers.models.clear()  # free the teachers before training
        record_task = task  # the labelled data as given (the transfer set adds the teacher's copies)
        trainer, fitted = fit(student, tokenizer, task.with_train(train_set), settings.train, args, work, resume,
                              teacher_logits=logits["train"] if settings.alpha > 0 else None, alpha=settings.alpha,
                              temperature=settings.temperature, layer_objective=objective, feature_store=store,
                              callbacks=callbacks, loss=settings.loss)
        record = TrainingResult.trained(
            fitted, stage="distill", model={**described, "parameters": parameter_count(student)},
            parameters=parameter_count(student), config=config, data=task.summary(), teacher=mixed, teachers=members,
            alpha=settings.alpha, temperature=settings.temperature, teacher_logits_cached=hits,
            training_examples=counts, timings=timings, layer_objective=layer_record, depth_probe=depth,
            retention=_retention(record_task, fitted, mixed))
        if record.retention is not None:
            say(record.retention.line())
        save_model(trainer, tokenizer, out, record, overwrite)
    return record


def _provisional(settings: DistillSettings) -> DistillSettings:
    """Settings a student can be built from before the depth probe runs (it needs the teacher's
    outputs): the shallowest candidate depth stands in for "auto"."""
    if not settings.student.probes_depth:
        return settings
    from .depth_probe import DEPTHS

    return replace(settings, student=replace(settings.student, layers=min(DEPTHS)))


def _depth(settings: DistillSettings, teachers, task: TaskData, train_set, teacher_logits, args):
    """(settings with the student's depth, what the probe measured) when no depth was given;
    (settings, None) otherwise. Under a data-parallel launch the probe does not run (its short
    trainings would each be sharded): the middle candidate is used, and said."""
    if not settings.student.probes_depth:
        return settings, None
    from .depth_probe import candidate_depths, probe_depth, say_choice
    from .students import build_student, teacher_depth

    depths = candidate_depths(teacher_depth(teachers.models[0]))
    if args.world_size > 1:
        depth = depths[len(depths) // 2]
        say(f"student depth: {depth} layers (the depth probe does not run under a data-parallel launch; "
            "--student-layers N to choose)")
        return replace(settings, student=replace(settings.student, layers=depth)), None

    def build(depth: int):
        config = replace(settings.student, layers=depth)
        student, tokenizer, _ = build_student(config, teachers.models[0], teachers.tokenizers[0], task.label_names,
                                              settings.trust_remote_code)
        student.config.problem_type = task.kind.problem_type
        return student, tokenizer
    depth, measured = probe_depth(settings, task, train_set, teacher_logits if settings.alpha > 0 else None, build,
                                  depths)
    say_choice(measured)
    return replace(settings, student=replace(settings.student, layers=depth)), measured


def _retention(task: TaskData, fitted, teacher):
    """The student's verdict on validation: against its teacher and the trivial answer."""
    from ..retention import verdict

    if "validation" not in task.splits or teacher is None:
        return None
    return verdict(fitted.validation, teacher.validation, task.splits["train"]["label"],
                   task.splits["validation"]["label"], task.label_names, "validation", task.task)


def _task_and_teachers(settings: DistillSettings, names: list[str], data: DataConfig):
    """The data (problems surface before torch is imported), then the teachers, checked against it."""
    from ..modelio.record import label_names_in
    from .teachers import load_teachers

    task = load_task_data(data)
    task.require_train("distill")
    for name in names:  # so do label mismatches with a local teacher
        if Path(name).is_dir():
            task = task.aligned_to(label_names_in(name), f"teacher {name}")
    check_student_reads(settings.student.kind, task)
    task.kind.refuse("student", settings.student.builder, task.kind.students)
    if task.kind.word_labels and len(names) > 1:
        raise KdeployError("an entity tagger is distilled from one teacher here (an ensemble of taggers is not "
                           "supported yet): give one --teacher")
    if settings.teacher_chunks and task.pairs:
        raise KdeployError("--teacher-chunks reads one long text window by window; a sentence pair has no windows "
                           "to average (drop --teacher-chunks)")
    teachers, task = load_teachers(names, task, settings.trust_remote_code)
    for name, model in zip(names, teachers.models):
        check_max_length(settings.train.max_length, model.config.to_dict(), f"teacher {name}")
        if model.config.num_labels != task.num_labels:
            raise KdeployError(f"teacher {name} has {model.config.num_labels} outputs, but the data "
                               + f"has {task.kind.describe_outputs(task.label_names)}"
                               + "; distil from a teacher fine-tuned on this task")
    return task, teachers


def _transfer_set(settings: DistillSettings, task: TaskData, teachers, unlabeled, data: DataConfig):
    """The training texts plus transfer text: augmented copies (chosen by data size unless
    given, and said) and unlabelled text."""
    from .transfer import training_set

    if task.kind.word_labels:  # tags per word: the labelled sentences (and entity-aware copies), no raw text
        if unlabeled:
            raise KdeployError("an entity tagger learns from tagged sentences: --unlabeled text is not supported "
                               "for it yet (drop --unlabeled; --augment N adds entity-aware copies)")
        return _tagged_copies(settings, task, teachers.tokenizers[0])
    copies = settings.augment
    if copies is None:
        from ..console import say
        from .config import auto_augment

        copies, why = auto_augment(len(task.splits["train"]), settings.alpha)
        say(f"augment: {copies} copies per example ({why})")
    return training_set(task, unlabeled, copies, settings.augment_seed, teachers.tokenizers[0], data.text_column,
                        data.encoding, data.encoding_errors)


def _tagged_copies(settings: DistillSettings, task: TaskData, tokenizer):
    """An entity tagger's training sentences plus `--augment N` entity-aware copies of each (a mention
    swapped for another of its type, words outside entities dropped or masked; gold tags kept).
    None by default: not yet measured to pay on a tagging task (said)."""
    import datasets

    from ..console import say
    from .entity_augment import entity_copies

    train = task.splits["train"]
    copies = settings.augment or 0
    if settings.augment is None:
        say("augment: none for an entity tagger by default (--augment N adds N entity-aware copies per sentence)")
    counts = {"labelled": len(train), "unlabeled": 0, "augmented": 0, "copies": int(copies)}
    if not copies:
        return train, counts, []
    names = task.label_names
    words = [list(w) for w in train["words"]]
    tags = [[names[i] for i in row] for row in train["label"]]
    mask = getattr(tokenizer, "mask_token", None) or getattr(tokenizer, "unk_token", None) or "[MASK]"
    extra_w, extra_t = entity_copies(words, tags, copies, settings.augment_seed, mask)
    index = {n: i for i, n in enumerate(names)}
    extra = datasets.Dataset.from_dict({"text": [" ".join(w) for w in extra_w], "words": extra_w,
                                        "label": [[index[t] for t in row] for row in extra_t]}, features=train.features)
    counts["augmented"] = len(extra)
    say(f"augment: {copies} entity-aware copies per sentence ({len(extra):,} more, gold tags kept)")
    return datasets.concatenate_datasets([train, extra]), counts, []


def _student(settings: DistillSettings, teachers, task: TaskData, first_teacher: str):
    """The student, labelled like the data, reading texts as the data (or its teacher) says."""
    from .students import build_student

    student, tokenizer, described = build_student(settings.student, teachers.models[0], teachers.tokenizers[0],
                                                  task.label_names, settings.trust_remote_code, task.kind.model_class)
    check_max_length(settings.train.max_length, student.config.to_dict(), "the student")
    task = read_as(task, tokenizer, first_teacher, settings.train.max_length)
    student.config.id2label = dict(enumerate(task.label_names))
    student.config.label2id = {n: i for i, n in enumerate(task.label_names)}
    student.config.problem_type = task.kind.problem_type
    return student, tokenizer, described, task


def _teacher_features(objective, teachers, name: str, student, train_set, settings: DistillSettings, cache_dir, args,
                      timings: dict):
    """The first teacher's layer features for the layer losses (cached), or (None, None)."""
    if objective is None:
        return None, None
    import time

    from .layers import teacher_features

    t0 = time.perf_counter()
    with args.main_process_first(local=False, desc="teacher features"):
        found = teacher_features(objective, teachers.models[0], teachers.tokenizers[0], teachers.fingerprints[0], name,
                                 student, _inputs_of(train_set), settings.train.max_length, cache_dir)
    timings["teacher_features_seconds"] = round(time.perf_counter() - t0, 2)
    return found
