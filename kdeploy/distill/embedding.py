"""Distil a sentence embedder: the student (a subset of the teacher's own layers, its pooling
and normalisation kept) learns the teacher's sentence vectors on any text — sentence-transformers'
model distillation, trained with its own Trainer. The teacher's vectors are computed once per
text and cached by content (memory-mapped), so a second run costs the teacher nothing.

    distill(DistillSettings(...), teacher="builtin:all-MiniLM-L6-v2",
            data=DataConfig(train="texts.txt", validation="dev.tsv", task="embedding"), out=...)

The epoch kept is the one with the best validation Spearman ρ (cosine vs gold scores) when
scored pairs are given; the record holds the student's and the teacher's scores, the retention
verdict and how many texts the teacher embedded (and how long it took).
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np

from ..console import note, say
from ..data import DataConfig
from ..errors import KdeployError
from ..tasks import task_kind
from .config import DistillSettings
from .result import TeacherSummary, TrainingResult, parameter_count, record_config

VECTORS_DIR = "embeddings"
FLOOR = "the teacher's word vectors averaged, no layer"
CHUNK = 8192  # texts the teacher embeds per step (the vectors go straight to a memory-mapped file)  # the trivial answer a student is measured from


def student_depth(settings: DistillSettings, teacher_layers: int) -> tuple[int | str, str | None]:
    """(layers to keep, why) — with no depth given, half the teacher's: the depth probe scores
    classifiers; for an embedder, sentence-transformers' own distillation keeps every second
    layer (its example: 12 → 6)."""
    layers = settings.student.layers
    if layers != "auto":
        return layers, None
    depth = max(1, teacher_layers // 2)
    return depth, (f"student depth: {depth} of the teacher's {teacher_layers} layers (every second one, as "
                   "sentence-transformers' distillation keeps); --student-layers N to choose")


def build_layer_student(teacher, layers):
    """A copy of the teacher keeping a subset of its transformer layers (evenly spaced, first and
    last kept), with its tokenizer, pooling and normalisation."""
    from torch import nn

    from ..modelio.embedder import encoder_of
    from .students import _find_layer_stack, parse_layer_indices

    student = copy.deepcopy(teacher)
    encoder = encoder_of(student)
    name, stack = _find_layer_stack(encoder)
    keep = parse_layer_indices(layers, len(stack))
    parent_name, _, attr = name.rpartition(".")
    parent = encoder.get_submodule(parent_name) if parent_name else encoder
    setattr(parent, attr, nn.ModuleList(stack[i] for i in keep))
    key = "num_hidden_layers" if hasattr(encoder.config, "num_hidden_layers") else "n_layers"
    setattr(encoder.config, key, len(keep))
    for i, layer in enumerate(getattr(parent, attr)):
        for m in layer.modules():
            if hasattr(m, "layer_idx"):
                m.layer_idx = i
    return student, {"builder": "layers", "teacher_layers": keep}


def own_student(settings: DistillSettings, teacher_max_length: int):
    """A pretrained sentence embedder as the student (another tokenizer and width: MiniLM for an
    MPNet teacher), keeping `own_layers` of its layers when given."""
    from ..modelio.embedder import encoder_of, load_embedder
    from .students import teacher_depth

    student = load_embedder(settings.student.kind, settings.trust_remote_code)
    described = {"builder": "pretrained", "model": settings.student.kind}
    if settings.student.own_layers:
        student, kept = build_layer_student(student, int(settings.student.own_layers))
        described["own_layers"] = kept["teacher_layers"]
    limit = getattr(encoder_of(student).config, "max_position_embeddings", None) or teacher_max_length
    student.max_seq_length = min(teacher_max_length, int(student.max_seq_length or limit), int(limit))
    described["layers"] = teacher_depth(encoder_of(student))
    return student, described


def projected(student, texts: list[str], targets: np.ndarray, normalize: bool, sample: int = 4096):
    """The student with a linear map into the teacher's space when their widths differ: a Dense
    module after its pooling, initialised by least squares from the student's pooled vectors to
    the teacher's on a sample of the training texts (then trained with the rest), and the
    teacher's normalisation after it. (None, None) when the widths already agree."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    from ..modelio.embedder import dimension_of, embed

    width, target = dimension_of(student), int(targets.shape[1])
    if width == target:
        return student, None
    body = [m for m in student if type(m).__name__ != "Normalize"]
    pooled = SentenceTransformer(modules=body, device="cpu")
    pooled.max_seq_length = student.max_seq_length
    pick = np.random.default_rng(0).permutation(len(texts))[:sample]
    x = embed(pooled, [texts[i] for i in pick]).astype(np.float64)
    x = np.hstack([x, np.ones((len(x), 1))])
    y = np.asarray(targets[pick], dtype=np.float64)
    ridge = 1e-3 * np.eye(x.shape[1])
    w = np.linalg.solve(x.T @ x + ridge, x.T @ y)
    dense = Dense(width, target, bias=True, activation_function=torch.nn.Identity(),
                  init_weight=torch.tensor(w[:-1].T, dtype=torch.float32),
                  init_bias=torch.tensor(w[-1], dtype=torch.float32))
    out = SentenceTransformer(modules=body + [dense] + ([Normalize()] if normalize else []), device="cpu")
    out.max_seq_length = student.max_seq_length
    return out, {"from": width, "to": target, "init": f"least squares on {len(pick):,} training texts"}


def teacher_vectors(teacher, fingerprint: str, texts: list[str], max_length: int, cache_dir: Path | None,
                    batch_size: int) -> tuple[np.ndarray, bool, float]:
    """(the teacher's vectors for `texts`, whether they came from the cache, seconds spent):
    cached under the teacher's and the texts' content, memory-mapped on reuse. Computed a chunk
    at a time into a memory-mapped file, so a corpus of millions of texts never holds its
    vectors in memory, with progress as it goes."""
    import os
    import tempfile

    from ..data import text_fingerprint
    from ..fsutil import normal_permissions
    from ..modelio.embedder import dimension_of, embed
    from ..progress import progress_bar
    from .logits_cache import _load, cache_root

    root = (Path(cache_dir) if cache_dir else cache_root()) / VECTORS_DIR
    path = root / f"{fingerprint}-{text_fingerprint(texts)}-{max_length}.npy"
    found = _load(path, len(texts))
    if found is not None:
        return found, True, 0.0
    t0 = time.perf_counter()
    say(f"the teacher embeds {len(texts):,} texts (once: cached for later runs)")
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npy", dir=root)
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(texts), dimension_of(teacher)))
        with progress_bar("teacher vectors", len(texts)) as advance:
            for start in range(0, len(texts), CHUNK):
                chunk = texts[start:start + CHUNK]
                out[start:start + len(chunk)] = embed(teacher, chunk, batch_size)
                advance(len(chunk))
        out.flush()
        del out
        normal_permissions(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return np.load(path, mmap_mode="r"), False, time.perf_counter() - t0


def bag_of_embeddings(model, texts: list[str], max_length: int) -> np.ndarray:
    """Each text as the mean of the model's own input word vectors (no layer, no position): the
    floor a student's layers must rise above. A constant similarity (ρ 0) is a floor nothing
    sits near; averaged word vectors already rank STS pairs well, so a student that only kept
    its embedding table would look fine against ρ 0 and learned nothing from the layers."""
    import torch

    from ..modelio.embedder import encoder_of

    table = encoder_of(model).get_input_embeddings()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 256):
            enc = model.tokenizer(texts[i:i + 256], padding=True, truncation=True, max_length=max_length,
                                  return_tensors="pt")
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out.append(((table(enc["input_ids"]) * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)


def scores_of(model, kind, data, split: str, batch_size: int):
    """A model's named metrics on one scored split (the task's `score`)."""
    from ..modelio.embedder import embed

    rows, scores = data.scored[split]
    t0 = time.perf_counter()
    result = kind.score(embed(model, rows, batch_size), scores)
    result.seconds = round(time.perf_counter() - t0, 2)
    return result


def vector_loss(model, kind):
    """The task's distillation loss on the student's sentence vectors against the teacher's
    (the dataset's `label` column), in sentence-transformers' loss interface (a module holding
    the model, called with the batch's features and labels)."""
    from torch import nn

    class VectorLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, sentence_features, labels):
            student = self.model(list(sentence_features)[0])["sentence_embedding"]
            return kind.kd_loss(student, labels, None, 1.0, 1.0)

    return VectorLoss()


def distill_embedding(settings: DistillSettings, names: list[str], data: DataConfig, out: Path, unlabeled,
                      cache_dir, resume: bool, overwrite: bool, callbacks) -> TrainingResult:
    """The steps: data, teacher, student, the teacher's vectors (cached), training, the record."""
    from ..data.embedding import load_embedding_data
    from ..modelio.embedder import fingerprint_of, load_embedder, pooling_of

    kind = task_kind(data.task)
    _check(settings, names, kind)
    emb = load_embedding_data(data, unlabeled)
    if not emb.train:
        raise KdeployError("an embedding student needs texts to learn from: give --train FILE (one text per line, "
                           "or a table) or --unlabeled FILE")
    teacher = load_embedder(names[0], settings.trust_remote_code)
    max_length = settings.train.max_length or int(teacher.max_seq_length or 128)
    teacher.max_seq_length = max_length
    student, described = _student(settings, teacher, max_length)
    pooling, fingerprint, batch = pooling_of(teacher), fingerprint_of(teacher), settings.train.eval_batch_size
    vectors, cached, seconds = teacher_vectors(teacher, fingerprint, emb.train, max_length, cache_dir, batch)
    student, projection = projected(student, emb.train, vectors, pooling["normalize"])
    if projection is not None:
        described["projection"] = projection
        say(f"the student's {projection['from']}-wide vectors are mapped into the teacher's {projection['to']} by a "
            f"linear layer ({projection['init']}, then trained)")
    mixed = TeacherSummary(model=names[0], fingerprint=fingerprint, **{
        split: scores_of(teacher, kind, emb, split, batch) for split in ("validation", "test") if split in emb.scored})
    floor = _floor(teacher, kind, emb, max_length)
    del teacher
    config = record_config(settings, {"teacher": names[0], "unlabeled": unlabeled}, data)
    fitted = _train(student, kind, emb, vectors, settings, out, config, resume, callbacks)
    scores = {split: scores_of(student, kind, emb, split, batch) for split in ("validation", "test")
              if split in emb.scored}
    record = TrainingResult(
        stage="distill", model={**described, "parameters": parameter_count(student), "pooling": pooling},
        parameters=parameter_count(student), config=config, data=emb.summary(), teacher=mixed, **scores,
        teacher_logits_cached={"train": cached}, training_examples={"texts": len(emb.train)},
        timings={"teacher_vectors_seconds": round(seconds, 2)},
        retention=_retention(scores.get("validation"), mixed.validation, floor), **fitted)
    if record.retention is not None:
        say(record.retention.line())
    _save(student, out, record, overwrite)
    return record


def _check(settings: DistillSettings, names: list[str], kind) -> None:
    """What an embedding student does not take, refused before any work."""
    if len(names) > 1:
        raise KdeployError("an embedding student learns one teacher's vector space; give one --teacher")
    kind.refuse("student", settings.student.builder, kind.students)
    if settings.layer_losses or settings.augment:
        raise KdeployError("layer losses and augmented copies are not used for an embedding student; drop "
                           "--layer-loss/--augment (more text to learn from: --unlabeled FILE)")


def _student(settings: DistillSettings, teacher, max_length: int):
    """(student, its description): another embedder (--student PATH) or the teacher's own layers."""
    from transformers import set_seed

    from ..modelio.embedder import encoder_of
    from .students import teacher_depth

    set_seed(settings.train.seed)
    if settings.student.builder == "pretrained":
        return own_student(settings, max_length)
    layers, why = student_depth(settings, teacher_depth(encoder_of(teacher)))
    if why:
        say(why)
    student, described = build_layer_student(teacher, layers)
    student.max_seq_length = max_length
    return student, described


def _floor(teacher, kind, emb, max_length: int) -> float | None:
    """The retention verdict's trivial answer on validation: the teacher's word vectors averaged."""
    if "validation" not in emb.scored:
        return None
    rows, gold = emb.scored["validation"]
    return float(kind.score(bag_of_embeddings(teacher, rows, max_length), gold).main)


def _retention(student, teacher, floor):
    from ..retention import Retention

    if student is None or teacher is None or floor is None:
        return None
    return Retention(metric=student.metric, split="validation", student=float(student.main),
                     teacher=float(teacher.main), trivial=floor, trivial_answer=FLOOR)


def _train(student, kind, emb, vectors, settings: DistillSettings, out: Path, config: dict, resume: bool,
           callbacks) -> dict:
    """sentence-transformers' Trainer on (text, teacher vector) rows; the best validation epoch kept."""
    import datasets
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    from .trainer import _readable_progress, last_checkpoint
    from .workdir import kept_until_done, prepare, work_dir_of

    datasets.disable_progress_bars()
    evaluator = None
    if "validation" in emb.scored:
        rows, scores = emb.scored["validation"]
        n = len(scores) // 2
        evaluator = EmbeddingSimilarityEvaluator(rows[:n], rows[n:], scores[:n], name="validation", write_csv=False,
                                                 main_similarity="cosine", batch_size=settings.train.eval_batch_size)
    else:
        note("no scored validation pairs (--validation FILE): every epoch is trained and the last one kept")
    t = settings.train
    work = work_dir_of(out)
    prepare(work, config, resume)
    train = _rows(emb.train, vectors, work)
    metric = "eval_validation_spearman_cosine"
    options = dict(
        output_dir=str(work), num_train_epochs=t.epochs, per_device_train_batch_size=t.batch_size,
        learning_rate=t.learning_rate, warmup_steps=t.warmup_ratio,  # a float: a ratio (transformers 5)
        weight_decay=t.weight_decay, seed=t.seed,
        eval_strategy="epoch" if evaluator else "no", save_strategy="epoch", save_total_limit=2,
        load_best_model_at_end=evaluator is not None, metric_for_best_model=metric if evaluator else None,
        greater_is_better=True, logging_strategy="epoch", report_to=[], use_cpu=not _cuda(), dataloader_num_workers=0)
    args = SentenceTransformerTrainingArguments(**options)
    with kept_until_done(work, True):
        trainer = SentenceTransformerTrainer(model=student, args=args, train_dataset=train,
                                             loss=vector_loss(student, kind), evaluator=evaluator,
                                             callbacks=list(callbacks or []))
        _readable_progress(trainer)
        started = time.perf_counter()
        trainer.train(resume_from_checkpoint=last_checkpoint(work) if resume else None)
        seconds = time.perf_counter() - started
        epochs = []
        for entry in trainer.state.log_history:
            if metric in entry:
                epochs.append({"epoch": round(entry["epoch"], 2), "validation_spearman": entry[metric]})
        for row, entry in zip(epochs, [e for e in trainer.state.log_history if "loss" in e]):
            row["train_loss"] = entry["loss"]
    scores = [e["validation_spearman"] for e in epochs]
    rising = len(scores) >= 2 and scores[-1] > max(scores[:-1])
    if rising:
        note("validation Spearman ρ was still rising at the last epoch ("
             + " → ".join(f"{v:.3f}" for v in scores) + "): give more --epochs, or more text to learn from")
    best = trainer.state.best_model_checkpoint
    return {"epochs": epochs, "train_seconds": round(seconds, 2), "still_improving": rising,
            "best_checkpoint": Path(best).name if best else None, "precision": "fp32"}


def _rows(texts: list[str], vectors, work: Path):
    """(text, teacher vector) rows as a `datasets` table written a chunk at a time into the work
    folder (Arrow on disk): the vectors are read from their memory-mapped file, never as lists."""
    import datasets

    width = int(vectors.shape[1])

    def generate():
        for start in range(0, len(texts), CHUNK):
            block = np.asarray(vectors[start:start + CHUNK], dtype=np.float32)
            for text, vector in zip(texts[start:start + CHUNK], block):
                yield {"text": text, "label": vector}
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.Sequence(datasets.Value("float32"), length=width)})
    return datasets.Dataset.from_generator(generate, features=features, cache_dir=str(work / "rows"))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _save(student, out: Path, record: TrainingResult, overwrite: bool) -> None:
    """The student as a sentence-transformers folder (what TEI, Infinity and sentence-transformers
    load), with its record; written to a temp folder and renamed into place."""

    from ..environment import library_versions, machine
    from ..fsutil import atomic_dir
    from ..modelio.record import MODEL_RECORD
    from .trainer import refuse_diverged

    refuse_diverged(student)
    record.versions, record.machine = library_versions(), machine()
    with atomic_dir(out, overwrite=overwrite) as tmp:
        student.save(str(tmp), safe_serialization=True)
        record.save(tmp / MODEL_RECORD)
