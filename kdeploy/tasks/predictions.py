"""Typed predictions: one class per task kind, which the predictor returns, `kdeploy predict`
prints and the server serialises. Each says itself three ways (`to_dict` for JSON, `label_scores`
for TEI's `/predict` shape, `line` for a terminal) and knows its relevance for ranking, so that
logic lives here once. Torch- and numpy-free.

They also read like the dicts earlier versions returned (`p["label"]`), so code written against
those keeps working.
"""
from __future__ import annotations

from dataclasses import dataclass


class _Mapping:
    """Read access by key, as the dicts the predictor returned before it returned types."""

    def to_dict(self) -> dict:  # pragma: no cover - each prediction says itself
        raise NotImplementedError

    def __getitem__(self, key: str):
        return self.to_dict()[key]

    def __contains__(self, key: str) -> bool:
        return key in self.to_dict()

    def keys(self):
        return self.to_dict().keys()

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def get(self, key: str, default=None):
        return self.to_dict().get(key, default)


@dataclass(frozen=True)
class ClassPrediction(_Mapping):
    """One class per text: the most probable label, its probability and every label's."""

    label: str
    score: float
    probabilities: dict[str, float]

    def to_dict(self) -> dict:
        return {"label": self.label, "score": self.score, "probabilities": dict(self.probabilities)}

    def label_scores(self) -> list[dict]:
        """TEI's shape: every label with its probability, best first."""
        return [{"label": k, "score": v} for k, v in sorted(self.probabilities.items(), key=lambda kv: -kv[1])]

    def relevance(self, label: str) -> float:
        return self.probabilities[label]

    def by_label(self) -> dict[str, float]:
        """Every label's score as a user reads it (here: its probability)."""
        return dict(self.probabilities)

    def line(self) -> str:
        return f"{self.label}\t{self.score:.4f}"


@dataclass(frozen=True)
class ScorePrediction(_Mapping):
    """One score per text (relatedness, relevance): the model's output as it is."""

    score: float

    def to_dict(self) -> dict:
        return {"score": self.score}

    def label_scores(self) -> list[dict]:
        return [{"score": self.score}]

    def relevance(self, label: str | None = None) -> float:
        return self.score

    def by_label(self) -> dict[str, float]:
        return {"score": self.score}

    def line(self) -> str:
        return f"{self.score:.4f}"


@dataclass(frozen=True)
class LabelsPrediction(_Mapping):
    """Any number of labels per text: every label whose sigmoid score reaches its threshold
    (tuned on validation), best first, and every label's score."""

    labels: list[str]
    scores: dict[str, float]
    thresholds: dict[str, float]

    def to_dict(self) -> dict:
        return {"labels": list(self.labels), "scores": dict(self.scores)}

    def label_scores(self) -> list[dict]:
        """TEI's shape (sigmoid scores, best first), each label marked whether it is chosen."""
        return [{"label": k, "score": v, "selected": v >= self.thresholds[k]}
                for k, v in sorted(self.scores.items(), key=lambda kv: -kv[1])]

    def relevance(self, label: str) -> float:
        return self.scores[label]

    def by_label(self) -> dict[str, float]:
        """Every label's sigmoid score."""
        return dict(self.scores)

    def line(self) -> str:
        chosen = ", ".join(f"{k} {self.scores[k]:.4f}" for k in self.labels)
        return chosen or "(no label)"


@dataclass(frozen=True)
class EmbeddingPrediction(_Mapping):
    """One vector per text (a sentence embedder's), as the model's pooling and normalisation give it."""

    embedding: list[float]

    def to_dict(self) -> dict:
        return {"embedding": list(self.embedding)}

    def label_scores(self) -> list[dict]:
        return [{"embedding": list(self.embedding)}]

    def relevance(self, label: str | None = None) -> float:
        raise TypeError("an embedding has no relevance of its own: compare two by cosine")

    def by_label(self) -> dict[str, float]:
        return {}

    def line(self) -> str:
        head = ", ".join(f"{x:.4f}" for x in self.embedding[:4])
        return f"[{head}, … {len(self.embedding)} dims]"


@dataclass(frozen=True)
class EntitySpan(_Mapping):
    """One entity in a text: its type, the mean probability of its words' tags, and where it is
    (character offsets into the text as given, `text[start:end] == text` of the span)."""

    entity: str
    score: float
    start: int
    end: int
    text: str

    def to_dict(self) -> dict:
        return {"entity": self.entity, "score": self.score, "start": self.start, "end": self.end, "text": self.text}


@dataclass(frozen=True)
class EntitiesPrediction(_Mapping):
    """The entities found in one text, in order (transformers' pipeline shape with
    `aggregation_strategy="first"`: a word's tag is its first sub-token's)."""

    entities: list[EntitySpan]

    @classmethod
    def of(cls, spans) -> "EntitiesPrediction":
        return cls([s if isinstance(s, EntitySpan) else EntitySpan(**s) for s in spans])

    def to_dict(self) -> dict:
        return {"entities": [e.to_dict() for e in self.entities]}

    def label_scores(self) -> list[dict]:
        """The served shape: one object per entity (`entity_group` as transformers names it)."""
        return [{"entity_group": e.entity, "score": e.score, "word": e.text, "start": e.start, "end": e.end}
                for e in self.entities]

    def relevance(self, label: str | None = None) -> float:
        raise TypeError("an entity tagger gives spans, not a relevance to rank by")

    def by_label(self) -> dict[str, float]:
        best: dict[str, float] = {}
        for e in self.entities:
            best[e.entity] = max(best.get(e.entity, 0.0), e.score)
        return best

    def redact(self, text: str) -> str:
        """The text with each entity replaced by its type in brackets (`[PER]`): PII removed."""
        out, at = [], 0
        for e in sorted(self.entities, key=lambda e: e.start):
            if e.start < at:
                continue
            out += [text[at:e.start], f"[{e.entity}]"]
            at = e.end
        return "".join(out + [text[at:]])

    def line(self) -> str:
        return "; ".join(f"{e.text} ({e.entity} {e.score:.2f}, {e.start}-{e.end})" for e in self.entities) \
            or "(no entity)"


Prediction = ClassPrediction | ScorePrediction | LabelsPrediction | EmbeddingPrediction | EntitiesPrediction
