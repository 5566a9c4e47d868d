"""A sentence embedder (semantic search, retrieval, deduplication, clustering): one vector per
text, compared by cosine. No labels to train on: a student learns its teacher's vectors on any
text (sentence-transformers' model distillation, Reimers & Gurevych 2020), and is judged on
scored pairs (STS-B, SICK relatedness) by Spearman ρ of the cosine similarity with the gold
score, as MTEB's STS tasks are.

KD formulation: MSE between the student's and the teacher's sentence vectors (the
sentence-transformers recipe) plus the mean cosine distance (1 − cos), which weighs every text
equally whatever its vector's norm; no temperature (there is no distribution to soften) and no
gold part (`alpha` does not apply).

Layout of a scored split: each pair is two rows, all first texts then all second texts, each
row carrying its pair's score (`pair_rows`); so every model runner embeds one text per row, as a
served embedder does, and `score` pairs the halves again. The trivial answer a distilled student
is measured from is its teacher's word vectors averaged with no layer (distill computes it:
`kdeploy.distill.embedding.bag_of_embeddings`; averaged word vectors already rank STS pairs well,
so a constant similarity, ρ 0, would flatter any student); without a model, a constant
similarity.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import KdeployError
from .base import TaskKind, check_teacher
from .predictions import EmbeddingPrediction

BOOTSTRAP_ROUNDS = 1000


def normalised(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def pair_rows(firsts: list[str], seconds: list[str], scores: list[float]) -> tuple[list[str], list[float]]:
    """Scored pairs as a split's rows: the first texts, then the second texts, each with its pair's score."""
    return list(firsts) + list(seconds), list(scores) + list(scores)


def cosines(vectors: np.ndarray) -> np.ndarray:
    """The cosine similarity of each pair in a scored split's embeddings (first half vs second half)."""
    v = normalised(vectors)
    n = len(v) // 2
    if len(v) != 2 * n or n == 0:
        raise ValueError(f"a scored split holds each pair as two rows; got {len(v)} rows")
    return (v[:n] * v[n:]).sum(-1)


@dataclass(frozen=True)
class Embedding(TaskKind):
    def num_labels(self, label_names):
        return 0  # a vector of the model's width, not an output per label

    def outputs(self, logits):
        return np.asarray(logits, dtype=np.float64)

    def logits_of(self, outputs):
        return np.asarray(outputs, dtype=np.float64)

    def decisions(self, outputs, thresholds=None):
        return None  # a vector has no answer to flip: invariance compares the vectors themselves

    def score(self, logits, labels, reference=None, thresholds=None, label_names=None):
        from ..metrics import Scores, pearson, spearman

        sims = cosines(logits)
        gold = np.asarray(labels, dtype=np.float64)[: len(sims)]
        agreement = None
        if reference is not None:  # how close the vectors are to the reference model's: the mean cosine
            agreement = float((normalised(logits) * normalised(reference)).sum(-1).mean())
        return Scores({"spearman": spearman(sims, gold), "pearson": pearson(sims, gold)}, examples=int(len(gold)),
                      agreement=agreement)

    def trivial_score(self, train_labels, eval_labels, label_names):
        return 0.0, "a constant similarity"

    def prediction(self, row, label_names, thresholds=None):
        return EmbeddingPrediction([float(x) for x in np.asarray(row).ravel()])

    def hard_loss(self, logits, labels):
        raise KdeployError("an embedding student has no gold labels to learn: it learns its teacher's vectors "
                           "(alpha does not apply)")

    def kd_loss(self, student, teacher, labels, alpha, temperature):
        """MSE(s, t) + mean(1 − cos(s, t)); `alpha`, `temperature` and `labels` do not apply."""
        import torch.nn.functional as F

        check_teacher(student, teacher)
        s, t = student.float(), teacher.detach().float()
        return F.mse_loss(s, t) + (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()

    def logit_mse_loss(self, student, teacher, labels, alpha, temperature):
        import torch.nn.functional as F

        check_teacher(student, teacher)
        return F.mse_loss(student.float(), teacher.detach().float())

    def label_feature(self, label_names):
        import datasets

        return datasets.Value("float32")

    def no_label(self, label_names):
        return float("nan")

    def encode_labels(self, parsed, label_names_given, class_names, cfg):
        raise KdeployError("an embedding task reads its data with kdeploy.data.embedding (texts to learn from, "
                           "scored pairs to judge by)")

    def describe_outputs(self, label_names):
        return "one vector per text"

    def paired_test(self, reference, candidate, labels, thresholds=None, label_names=None):
        """A paired bootstrap over the pairs: how sure the drop in Spearman ρ is."""
        from ..metrics import spearman

        a, b = cosines(reference), cosines(candidate)
        gold = np.asarray(labels, dtype=np.float64)[: len(a)]
        rng = np.random.default_rng(0)
        drops = []
        for _ in range(BOOTSTRAP_ROUNDS):
            i = rng.integers(0, len(a), len(a))
            drops.append(spearman(a[i], gold[i]) - spearman(b[i], gold[i]))
        drops = np.asarray(drops)
        return {"test": "paired bootstrap over pairs", "rounds": BOOTSTRAP_ROUNDS,
                "p_value": round(float((drops <= 0).mean()), 4),
                "drop_ci95_points": [round(100 * float(np.percentile(drops, 2.5)), 3),
                                     round(100 * float(np.percentile(drops, 97.5)), 3)]}


EMBEDDING = Embedding(
    name="embedding",
    doc="one vector per text (semantic search, retrieval): a sentence-transformers teacher, any text to learn "
        "from, scored pairs (STS-B) to judge by Spearman ρ of cosine",
    labels="none to train; a score per text pair to evaluate",
    problem_type="sentence_embedding",  # kdeploy's own name: transformers has no problem_type for it
    activation="identity",
    metrics=("spearman", "pearson"),
    trivial="the teacher's word vectors averaged, no layer (without a model: a constant similarity)",
    serve_type="embedding",
    title="Sentence embedder",
    model_class="SentenceTransformer",
    export_task="feature-extraction",
    routes=("/embed", "/v1/embeddings"),
    students=frozenset({"layers", "pretrained"}),  # pretrained: another sentence embedder (its tokenizer, its width)
    formats=frozenset({"python", "onnx-e2e", "web"}),
    e2e_output="sentence_embedding",
    baselines=frozenset(),
    named_labels=False,
    sentence_vectors=True,
)
