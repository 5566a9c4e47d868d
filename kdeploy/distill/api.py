"""The distill stage's Python API: `finetune(FinetuneConfig)` and `distill(DistillConfig)`."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..configtools import to_dict
from ..data import DataConfig, TaskData, load_task_data
from ..errors import KdeployError
from ..metrics import classification_metrics
from .students import STUDENTS, StudentConfig, build_student
from .trainer import TrainConfig, cleanup_work_dir, fit, save_model, training_arguments


@dataclass
class FinetuneConfig:
    """Fine-tune a pretrained encoder (or train a bilstm/cnn from scratch) on labelled data."""

    model: str
    out: str
    data: DataConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    tokenizer: str | None = None  # bilstm/cnn: whose tokenizer (and embeddings) to use
    architecture: StudentConfig = field(default_factory=StudentConfig)  # bilstm/cnn sizes
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.model in ("bilstm", "cnn") and not self.tokenizer:
            raise KdeployError(f"--model {self.model} needs --tokenizer (a model folder or hub id)")


@dataclass
class DistillConfig:
    """Distil `teacher` into a student: L = (1-α)·CE + α·T²·KL(teacher_T ‖ student_T)."""

    teacher: str
    out: str
    data: DataConfig
    student: StudentConfig = field(default_factory=StudentConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(learning_rate=1e-4))
    alpha: float = 0.5
    temperature: float = 2.0
    cache_dir: str | None = None
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        check_kd_settings(self.alpha, self.temperature)


def check_kd_settings(alpha: float, temperature: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise KdeployError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise KdeployError(f"temperature must be positive, got {temperature}")


def _work_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.work"


def _prepare_work_dir(out: Path, settings: dict, resume: bool) -> Path:
    """Checkpoints live beside the output until it is complete; --resume continues from them."""
    work = _work_dir(out)
    stamp = work / "settings.json"
    settings = json.loads(json.dumps(settings, default=str))
    settings["config"]["train"].pop("resume", None)  # resuming is not a different run
    if work.exists():
        if resume and stamp.exists():
            previous = json.loads(stamp.read_text())
            if previous == settings:
                return work
            print(f"note: {work} holds an interrupted run with other settings; starting over")
        if not resume and (work / "checkpoints").exists() and any((work / "checkpoints").iterdir()):
            print(f"note: {work} holds an interrupted run; starting over (pass --resume to continue it)")
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(settings, default=str, indent=1))
    return work


def _arguments_and_work_dir(out: Path, settings: dict, train: TrainConfig):
    """TrainingArguments (which joins the process group under torchrun), then the work dir,
    prepared by the main process alone before any other rank touches it."""
    args = training_arguments(train, _work_dir(out))
    with args.main_process_first(local=False, desc="work dir"):
        if args.process_index == 0:
            _prepare_work_dir(out, settings, train.resume)
    return args


def _align_labels(model_names: list[str] | None, data: TaskData, what: str) -> None:
    if model_names is None:
        return
    if model_names == data.label_names:
        return
    if sorted(model_names) == sorted(data.label_names):
        raise KdeployError(f"the {what} orders its labels {model_names} but the data gives {data.label_names}; "
                           f"pass --label-names {','.join(model_names)}")
    raise KdeployError(f"the {what} predicts {model_names} but the data has labels {data.label_names}")


def finetune(cfg: FinetuneConfig) -> dict:
    """Fine-tune a teacher; the output folder is a ready `AutoModelForSequenceClassification`."""
    from transformers import set_seed

    from .teachers import label_names_of, load_classifier, load_tokenizer

    out = Path(cfg.out)
    data = load_task_data(cfg.data)
    set_seed(cfg.train.seed)
    if cfg.model in STUDENTS and cfg.model != "layers":
        tokenizer = load_tokenizer(cfg.tokenizer, cfg.trust_remote_code)
        base = _try_embeddings_source(cfg.tokenizer, data.label_names, cfg.trust_remote_code)
        arch = StudentConfig(**{**to_dict(cfg.architecture), "kind": cfg.model})
        model, tokenizer, described = build_student(arch, base, tokenizer, data.label_names)
    else:
        model = load_classifier(cfg.model, label_names=data.label_names, trust_remote_code=cfg.trust_remote_code)
        _align_labels(label_names_of(model), data, "model")
        tokenizer = load_tokenizer(cfg.model, cfg.trust_remote_code)
        described = {"builder": "pretrained", "model": cfg.model}
    settings = {"stage": "finetune", "config": to_dict(cfg), "data": data.fingerprint}
    args = _arguments_and_work_dir(out, settings, cfg.train)
    result = fit(model, tokenizer, data, cfg.train, args, _work_dir(out))
    trainer = result.pop("_trainer")
    record = {
        "stage": "finetune",
        "model": described,
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": data.summary(),
        "config": to_dict(cfg),
        **result,
    }
    save_model(trainer, tokenizer, out, record)
    cleanup_work_dir(trainer, _work_dir(out))
    return record


def _try_embeddings_source(name: str, label_names, trust_remote_code):
    """A bilstm/cnn trained from scratch starts from the tokenizer's model's word embeddings when it has one."""
    from .teachers import load_classifier

    try:
        return load_classifier(name, label_names=label_names, trust_remote_code=trust_remote_code)
    except KdeployError:
        return None


def distill(cfg: DistillConfig) -> dict:
    """Distil a teacher into a student with cached teacher logits (the teacher runs once per data)."""
    from transformers import set_seed

    from .logits_cache import cache_key, cached_teacher_logits
    from .teachers import label_names_of, load_classifier, load_tokenizer, model_fingerprint

    out = Path(cfg.out)
    data = load_task_data(cfg.data)
    teacher = load_classifier(cfg.teacher, trust_remote_code=cfg.trust_remote_code)
    if teacher.config.num_labels != data.num_labels:
        raise KdeployError(f"the teacher has {teacher.config.num_labels} outputs but the data has {data.num_labels} "
                           f"labels ({', '.join(data.label_names)}); fine-tune a teacher on this task first "
                           "(kdeploy finetune)")
    _align_labels(label_names_of(teacher), data, "teacher")
    teacher_tokenizer = load_tokenizer(cfg.teacher, cfg.trust_remote_code)
    settings = {"stage": "distill", "config": to_dict(cfg), "data": data.fingerprint}
    args = _arguments_and_work_dir(out, settings, cfg.train)
    work = _work_dir(out)

    teacher_fp = model_fingerprint(teacher)
    timings, teacher_scores, logits_by_split, cache_hits = {}, {}, {}, {}
    t0 = time.perf_counter()
    with args.main_process_first(local=False, desc="teacher logits"):
        for split in data.splits:
            key = cache_key(teacher_fp, data.split_fingerprint(split), cfg.train.max_length)
            logits, hit = cached_teacher_logits(teacher, teacher_tokenizer, data.splits[split]["text"], key,
                                                cfg.train.max_length, Path(cfg.cache_dir) if cfg.cache_dir else None)
            logits_by_split[split], cache_hits[split] = logits, hit
            if split != "train":
                teacher_scores[split] = classification_metrics(logits, np.asarray(data.splits[split]["label"]))
    timings["teacher_logits_seconds"] = round(time.perf_counter() - t0, 2)

    set_seed(cfg.train.seed)
    student, tokenizer, described = build_student(cfg.student, teacher, teacher_tokenizer, data.label_names,
                                                  cfg.trust_remote_code)
    student.config.id2label = dict(enumerate(data.label_names))
    student.config.label2id = {n: i for i, n in enumerate(data.label_names)}
    del teacher
    result = fit(student, tokenizer, data, cfg.train, args, work,
                 teacher_logits=logits_by_split["train"] if cfg.alpha > 0 else None,
                 alpha=cfg.alpha, temperature=cfg.temperature)
    trainer = result.pop("_trainer")
    record = {
        "stage": "distill",
        "teacher": {"model": cfg.teacher, "fingerprint": teacher_fp, **teacher_scores},
        "student": {**described, "parameters": sum(p.numel() for p in student.parameters())},
        "alpha": cfg.alpha,
        "temperature": cfg.temperature,
        "teacher_logits_cached": cache_hits,
        "data": data.summary(),
        "config": to_dict(cfg),
        **timings,
        **result,
    }
    save_model(trainer, tokenizer, out, record)
    cleanup_work_dir(trainer, work)
    return record
