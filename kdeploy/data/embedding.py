"""An embedding task's data: texts to learn from (no labels: the teacher's vectors are the
target) and scored pairs to judge by. Training text is a text file (one per line), a table's
text column, or both texts of a pair file (each distinct text once); validation and test are
scored pairs (sentence1/sentence2/score, as STS-B and SICK give them), laid out as the task
entry says (`kdeploy.tasks.embedding.pair_rows`)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ..console import note
from ..errors import KdeployError
from ..tasks.embedding import pair_rows
from ..tasks.labels import is_missing
from .config import DataConfig
from .files import file_kind, read_table, read_text_lines
from .task import SCORE_COLUMNS, text_columns


@dataclass
class EmbeddingData:
    """Texts to learn from, scored pairs per split (two rows per pair) and a content fingerprint."""

    train: list[str]
    scored: dict[str, tuple[list[str], list[float]]] = field(default_factory=dict)  # split -> (texts, scores)
    sources: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ""
    task: str = "embedding"

    @property
    def eval_split(self) -> str | None:
        return "test" if "test" in self.scored else "validation" if "validation" in self.scored else None

    def pairs(self, split: str) -> int:
        return len(self.scored[split][1]) // 2

    def summary(self) -> dict:
        return {"sources": self.sources, "fingerprint": self.fingerprint, "task": self.task,
                "sizes": {"train": len(self.train), **{s: self.pairs(s) for s in self.scored}},
                "label_names": ["similarity"]}


def _texts_of(path: Path, cfg: DataConfig) -> list[str]:
    """Every text of a training file: its lines, its text column, or both texts of its pairs."""
    if file_kind(path) == ".txt":
        return [line.strip() for line in read_text_lines(path, cfg.encoding, cfg.encoding_errors) if line.strip()]
    columns, where = read_table(path, cfg.encoding, cfg.encoding_errors)
    first, second = text_columns(columns, cfg, where)
    if second:
        note(f"{where}: text pairs; each text of each pair is a training text (an embedding student learns the "
             "teacher's vector of each; the labels or scores are not used)")
    out = []
    for column in (first, second) if second else (first,):
        out += [str(t) for t in columns[column] if not is_missing(t) and str(t).strip()]
    return out


def _scored(path: Path, cfg: DataConfig) -> tuple[list[str], list[float]]:
    columns, where = read_table(path, cfg.encoding, cfg.encoding_errors)
    first, second = text_columns(columns, cfg, where)
    if second is None:
        raise KdeployError(f"{where}: an embedding task is judged on scored text pairs (sentence1, sentence2, score); "
                           "this file has one text per row (name the second text with --text-pair-column)")
    label = cfg.label_column or next((c for c in SCORE_COLUMNS if c in columns), None)
    if label is None or label not in columns:
        raise KdeployError(f"{where}: no score column among {', '.join(map(str, columns))}; name it with --label-column")
    firsts, seconds, scores = [], [], []
    for i, (a, b, s) in enumerate(zip(columns[first], columns[second], columns[label])):
        try:
            value = float(s)
        except (TypeError, ValueError):
            raise KdeployError(f"{where}: row {i + 1} has score {s!r}, not a number") from None
        if not isinstance(a, str) or not isinstance(b, str) or value != value:
            raise KdeployError(f"{where}: row {i + 1} lacks a text or its score")
        firsts.append(a), seconds.append(b), scores.append(value)
    if not scores:
        raise KdeployError(f"{where}: no scored pairs")
    return pair_rows(firsts, seconds, scores)


def load_embedding_data(cfg: DataConfig, unlabeled: str | None = None) -> EmbeddingData:
    """The texts to learn from (train file and `unlabeled`, each distinct text once, in order)
    and the scored splits; every problem one KdeployError naming the file."""
    if cfg.dataset:
        raise KdeployError("an embedding task reads files (--train texts, --validation/--test scored pairs); "
                           "--dataset is not supported for it yet")
    texts, sources = [], {}
    for name, path in (("train", cfg.train), ("unlabeled", unlabeled)):
        if path:
            texts += _texts_of(Path(path), cfg)
            sources[name] = str(path)
    train = list(dict.fromkeys(t for t in texts))
    if cfg.max_train_samples and len(train) > cfg.max_train_samples:
        import random

        train = random.Random(cfg.split_seed).sample(train, cfg.max_train_samples)
    scored = {}
    for split in ("validation", "test"):
        path = getattr(cfg, split)
        if path:
            rows, scores = _scored(Path(path), cfg)
            if cfg.max_eval_samples and len(scores) // 2 > cfg.max_eval_samples:
                n = len(scores) // 2
                keep = sorted(__import__("random").Random(cfg.split_seed).sample(range(n), cfg.max_eval_samples))
                rows = [rows[i] for i in keep] + [rows[n + i] for i in keep]
                scores = [scores[i] for i in keep] * 2
            scored[split], sources[split] = (rows, scores), str(path)
    h = hashlib.sha256()
    for t in train:
        h.update(f"{t}\x1d".encode())
    for split, (rows, scores) in scored.items():
        h.update(split.encode())
        for t, s in zip(rows, scores):
            h.update(f"{s}\x1e{t}\x1d".encode())
    return EmbeddingData(train=train, scored=scored, sources=sources, fingerprint=h.hexdigest()[:16])
