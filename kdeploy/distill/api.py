"""The distill stage's Python API: `finetune(FinetuneConfig)` and `distill(DistillConfig)`."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..configtools import to_dict
from ..data import DataConfig, TaskData, load_task_data, load_unlabeled_texts, text_fingerprint
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
    """Distil `teacher` into a student: L = (1-α)·CE + α·T²·KL(teacher_T ‖ student_T)
    + Σ weight·layer loss, on the labelled data plus any transfer text.

    `teacher` may be a list: the student then learns the ensemble's averaged softened
    distribution (`teacher_weights`, default equal); layer losses use the first teacher.
    """

    teacher: str | list[str]
    out: str
    data: DataConfig
    student: StudentConfig = field(default_factory=StudentConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(learning_rate=1e-4))
    alpha: float = 0.5
    temperature: float = 2.0
    teacher_weights: list[float] | None = None
    layer_losses: dict[str, float] = field(default_factory=dict)  # {"hidden": 1.0, "attention": 1.0}
    layer_map: str | None = None  # "0:2,1:5" (student:teacher, from 0); default uniform
    unlabeled: str | None = None  # transfer text without labels (.txt one per line, or a table)
    augment: int = 0  # augmented copies per training sentence (labelled by the teacher)
    augment_seed: int = 0
    cache_dir: str | None = None
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        check_kd_settings(self.alpha, self.temperature)
        self.layer_losses = parse_layer_losses(self.layer_losses)
        check_transfer_settings(self.alpha, self.unlabeled, self.augment)
        if isinstance(self.teacher, (list, tuple)):
            if not self.teacher:
                raise KdeployError("no teacher given")
            self.teacher = list(self.teacher) if len(self.teacher) > 1 else self.teacher[0]
        if self.teacher_weights is not None:
            from .ensemble import normalise_weights

            normalise_weights(self.teacher_weights, len(self.teachers))

    @property
    def teachers(self) -> list[str]:
        return list(self.teacher) if isinstance(self.teacher, list) else [self.teacher]


def check_kd_settings(alpha: float, temperature: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise KdeployError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise KdeployError(f"temperature must be positive, got {temperature}")


def check_transfer_settings(alpha: float, unlabeled: str | None, augment: int) -> None:
    if int(augment) < 0:
        raise KdeployError(f"augment must be zero or more copies per sentence, got {augment}")
    if (unlabeled or augment) and alpha == 0:
        raise KdeployError("unlabelled and augmented text are labelled by the teacher alone: they need alpha > 0")


def parse_layer_losses(spec) -> dict[str, float]:
    """{"hidden": 1} / ["hidden", "attention"] / "hidden=1,attention=0.5" -> {name: weight}."""
    from .layer_losses import get_layer_loss

    if not spec:
        return {}
    if isinstance(spec, str):
        spec = [item for item in spec.split(",") if item.strip()]
    if isinstance(spec, (list, tuple)):
        parsed = {}
        for item in spec:
            name, _, weight = str(item).partition("=")
            try:
                parsed[name.strip()] = float(weight) if weight.strip() else 1.0
            except ValueError:
                raise KdeployError(f"layer loss {item!r}: write NAME or NAME=WEIGHT, e.g. hidden=1.0") from None
        spec = parsed
    out = {}
    for name, weight in dict(spec).items():
        get_layer_loss(name)
        if float(weight) < 0:
            raise KdeployError(f"layer loss {name!r} has a negative weight {weight}")
        out[str(name)] = float(weight)
    return out


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


def distill(cfg: DistillConfig, callbacks: list | None = None) -> dict:
    """Distil one teacher (or an ensemble) into a student. Teacher logits and features are
    computed once per text and cached, so the teacher costs nothing on a second run."""
    from transformers import set_seed

    from .ensemble import ensemble_logits, normalise_weights
    from .logits_cache import cache_key, cached_teacher_logits
    from .teachers import label_names_of, load_classifier, load_tokenizer, model_fingerprint

    out = Path(cfg.out)
    data = load_task_data(cfg.data)
    teachers, tokenizers = [], []
    for name in cfg.teachers:
        teacher = load_classifier(name, trust_remote_code=cfg.trust_remote_code)
        if teacher.config.num_labels != data.num_labels:
            raise KdeployError(f"the teacher {name} has {teacher.config.num_labels} outputs but the data has "
                               f"{data.num_labels} labels ({', '.join(data.label_names)}); fine-tune a teacher on "
                               "this task first (kdeploy finetune)")
        _align_labels(label_names_of(teacher), data, f"teacher {name}")
        teachers.append(teacher)
        tokenizers.append(load_tokenizer(name, cfg.trust_remote_code))
    weights = normalise_weights(cfg.teacher_weights, len(teachers))
    train_set, transfer = _training_set(cfg, data, tokenizers[0])
    settings = {"stage": "distill", "config": to_dict(cfg), "data": data.fingerprint}
    args = _arguments_and_work_dir(out, settings, cfg.train)
    work = _work_dir(out)

    set_seed(cfg.train.seed)  # the student is built (and checked against the teacher) before the teacher runs
    student, tokenizer, described = build_student(cfg.student, teachers[0], tokenizers[0], data.label_names,
                                                  cfg.trust_remote_code)
    student.config.id2label = dict(enumerate(data.label_names))
    student.config.label2id = {n: i for i, n in enumerate(data.label_names)}
    objective = _layer_objective(cfg, teachers[0], tokenizers[0], student, tokenizer) if cfg.layer_losses else None

    fingerprints = [model_fingerprint(t) for t in teachers]
    for teacher in teachers:
        teacher.to(args.device)  # on a GPU the teacher pass is seconds, not minutes
    timings, cache_hits = {}, {}
    per_teacher: list[dict[str, np.ndarray]] = [{} for _ in teachers]
    t0 = time.perf_counter()
    with args.main_process_first(local=False, desc="teacher logits"):
        for k, (teacher, tok, fp) in enumerate(zip(teachers, tokenizers, fingerprints)):
            tag = (lambda split: split) if len(teachers) == 1 else (lambda split, k=k: f"{k}:{split}")
            for split in data.splits:
                texts = data.splits[split]["text"]
                key = cache_key(fp, data.split_fingerprint(split), cfg.train.max_length)
                per_teacher[k][split], cache_hits[tag(split)] = cached_teacher_logits(
                    teacher, tok, texts, key, cfg.train.max_length, _cache(cfg))
            if transfer["texts"]:
                key = cache_key(fp, text_fingerprint(transfer["texts"]), cfg.train.max_length)
                extra, cache_hits[tag("transfer")] = cached_teacher_logits(
                    teacher, tok, transfer["texts"], key, cfg.train.max_length, _cache(cfg))
                per_teacher[k]["train"] = np.concatenate([per_teacher[k]["train"], extra])
    logits_by_split = {split: ensemble_logits([p[split] for p in per_teacher], weights, cfg.temperature)
                       for split in per_teacher[0]}
    timings["teacher_logits_seconds"] = round(time.perf_counter() - t0, 2)
    teacher_scores = _teacher_scores(logits_by_split, data)
    teacher_records = [{"model": name, "fingerprint": fp, "weight": float(w), **_teacher_scores(p, data)}
                       for name, fp, w, p in zip(cfg.teachers, fingerprints, weights, per_teacher)]

    store, layer_record = None, None
    if objective is not None:
        t0 = time.perf_counter()
        with args.main_process_first(local=False, desc="teacher features"):
            store, layer_record = _teacher_features(cfg, objective, teachers[0], tokenizers[0], fingerprints[0],
                                                    student, list(train_set["text"]))
        timings["teacher_features_seconds"] = round(time.perf_counter() - t0, 2)
    del teachers, teacher  # free the teachers before training
    result = fit(student, tokenizer, data.with_train(train_set), cfg.train, args, work,
                 teacher_logits=logits_by_split["train"] if cfg.alpha > 0 else None,
                 alpha=cfg.alpha, temperature=cfg.temperature, layer_objective=objective, feature_store=store,
                 callbacks=callbacks)
    trainer = result.pop("_trainer")
    record = {
        "stage": "distill",
        "teacher": {"model": cfg.teacher, "fingerprint": "+".join(fingerprints), **teacher_scores},
        "student": {**described, "parameters": sum(p.numel() for p in student.parameters())},
        "alpha": cfg.alpha,
        "temperature": cfg.temperature,
        "teacher_logits_cached": cache_hits,
        "data": data.summary(),
        "training_examples": {k: v for k, v in transfer.items() if k != "texts"},
        "config": to_dict(cfg),
        **timings,
        **result,
    }
    if len(teacher_records) > 1:
        record["teachers"] = teacher_records
    if layer_record:
        record["layer_objective"] = layer_record
    save_model(trainer, tokenizer, out, record)
    cleanup_work_dir(trainer, work)
    return record


def _cache(cfg: DistillConfig) -> Path | None:
    return Path(cfg.cache_dir) if cfg.cache_dir else None


def _teacher_scores(logits_by_split: dict[str, np.ndarray], data: TaskData) -> dict:
    return {split: classification_metrics(logits, np.asarray(data.splits[split]["label"]))
            for split, logits in logits_by_split.items() if split != "train"}


def _training_set(cfg: DistillConfig, data: TaskData, tokenizer):
    """The labelled training split, then unlabelled text, then augmented copies of both;
    transfer examples carry label -100 (the teacher's output is their only label)."""
    import datasets

    from .augment import augment_texts
    from .losses import IGNORE_INDEX

    texts = list(data.splits["train"]["text"])
    labels = list(data.splits["train"]["label"])
    unlabeled = load_unlabeled_texts(cfg.unlabeled, cfg.data.text_column) if cfg.unlabeled else []
    mask_token = getattr(tokenizer, "mask_token", None) or getattr(tokenizer, "unk_token", None) or "[MASK]"
    augmented = augment_texts(texts + unlabeled, int(cfg.augment), cfg.augment_seed, mask_token=mask_token) \
        if cfg.augment else []
    transfer = unlabeled + augmented
    counts = {"labelled": len(texts), "unlabeled": len(unlabeled), "augmented": len(augmented), "texts": transfer}
    if not transfer:
        return data.splits["train"], counts
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.Value("int64")})
    train = datasets.Dataset.from_dict({"text": texts + transfer, "label": labels + [IGNORE_INDEX] * len(transfer)},
                                       features=features)
    return train, counts


def _layer_objective(cfg: DistillConfig, teacher, teacher_tokenizer, student, student_tokenizer):
    """Check that the two models can be aligned layer by layer; the weighted layer losses."""
    from .layer_losses import LayerObjective
    from .layer_map import model_depth, parse_layer_map

    names = ", ".join(cfg.layer_losses)
    student_depth, teacher_depth = model_depth(student), model_depth(teacher)
    if not student_depth or not hasattr(student.config, "num_attention_heads"):
        raise KdeployError(f"layer losses ({names}) need a transformer student; a {student.config.model_type} "
                           "student has no layers to align: use logits-only distillation for it")
    if not teacher_depth or not hasattr(teacher.config, "num_attention_heads"):
        raise KdeployError(f"layer losses ({names}) need a transformer teacher; {type(teacher).__name__} has none")
    if type(student_tokenizer).__name__ != type(teacher_tokenizer).__name__ or \
            student_tokenizer.get_vocab() != teacher_tokenizer.get_vocab():
        raise KdeployError(f"layer losses ({names}) align hidden states token by token, but the teacher and the "
                           "student tokenise differently; use a student that shares the teacher's tokenizer, or "
                           "drop the layer losses (logit distillation works across tokenizers)")
    if "attention" in cfg.layer_losses and student.config.num_attention_heads != teacher.config.num_attention_heads:
        raise KdeployError(f"the attention loss compares heads one to one, but the student has "
                           f"{student.config.num_attention_heads} heads and the teacher "
                           f"{teacher.config.num_attention_heads}; drop it or use the hidden-state loss")
    pairs = parse_layer_map(cfg.layer_map, student_depth, teacher_depth)
    return LayerObjective(cfg.layer_losses, pairs, student.config.hidden_size, teacher.config.hidden_size)


def _teacher_features(cfg: DistillConfig, objective, teacher, teacher_tokenizer, teacher_fp: str, student,
                      texts: list[str]):
    """The teacher's features for the mapped layers, computed once per text and cached."""
    from .feature_cache import cached_teacher_features, feature_key

    pairs = objective.pairs
    layers = [t for _, t in pairs]
    key = feature_key(teacher_fp, text_fingerprint(texts), cfg.train.max_length, layers, objective.needs)
    store, hit = cached_teacher_features(teacher, teacher_tokenizer, texts, key, cfg.train.max_length, layers,
                                         objective.needs, _cache(cfg))
    record = {"losses": cfg.layer_losses, "layer_map": [list(p) for p in pairs],
              "projection": student.config.hidden_size != teacher.config.hidden_size,
              "features_cached": hit, "teacher": cfg.teachers[0]}
    return store, record
