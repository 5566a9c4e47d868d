"""An entity tagger (NER, PII, product attributes): one BIO2 tag per word, judged on the entities
the tags spell (seqeval's CoNLL semantics: an entity counts when its type and both ends are
right; strict BIO2, so an `I-X` that starts nothing is not an entity).

The labelling rule, applied everywhere (training, teacher outputs, metrics, bundles): a word's
tag sits on its **first sub-token**; its other sub-tokens carry no label (-100) and are never
scored or distilled. A model's per-token outputs are read back at those positions, so every
runner (PyTorch, ONNX, the bundles) answers one tag per word.

KD formulation: at every word's first sub-token, (1-α)·CE(gold) + α·T²·KL(softmax(t/T) ‖
softmax(s/T)), masked to those positions (TextBrewer's token-level KD). A word of transfer text
has no gold tag (`NO_GOLD`, -1): the teacher is its only label.

The trivial answer a student is measured from: `O` for every word (entity F1 0), which is what a
tagger that learned nothing says.

Spans: a word sequence's tags become entities as transformers' token-classification pipeline
groups them (`B-X` starts one, `I-X` continues one of its type, an `I-X` after `O` or another
type starts one), so a bundle's spans are the ones users of that pipeline expect; the metrics
stay strict (seqeval), as CoNLL scores are reported.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import KdeployError
from .base import IGNORE_INDEX, TaskKind, check_teacher
from .predictions import EntitiesPrediction

OUTSIDE = "O"
#: an entity tagger's onnx-e2e graph (kdeploy.package.e2e_words): `text` [1] in; entities, then its words, out
E2E_OUTPUTS = ("entity", "start", "end", "score", "word_start", "word_end", "probabilities")
NO_GOLD = -1  # a word of transfer text: distilled from the teacher, no gold tag
BOOTSTRAP_ROUNDS = 1000


def tag_type(tag: str) -> tuple[str, str]:
    """('B'|'I'|'E'|'S'|'L'|'U'|'O', entity type) of a tag, its prefix upper-cased; a tag with no
    prefix (the IO scheme: `PER`) is its own type's I."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    if len(tag) > 2 and tag[1] in "-_" and tag[0].upper() in "BIESLU":
        return tag[0].upper(), tag[2:]
    return "I", tag


def to_bio2(tags: list[str]) -> tuple[list[str], int]:
    """(BIO2 tags, how many were changed): an `I-X` that follows `O` or another type becomes
    `B-X` (IOB1's convention, and the repair of an invalid BIO sequence alike); BIOES/BILOU's
    single `S-X`/`U-X` becomes `B-X` and its closing `E-X`/`L-X` becomes `I-X`; `B_X` or `b-X`
    is written `B-X`."""
    out, changed, previous = [], 0, ""
    for tag in tags:
        prefix, kind = tag_type(tag)
        if prefix == OUTSIDE:
            new = OUTSIDE
        else:
            starts = prefix in "BSU" or previous != kind
            new = f"{'B' if starts else 'I'}-{kind}"
        changed += new != tag
        out.append(new)
        previous = kind if prefix not in (OUTSIDE, "E", "S", "L", "U") else ""
    return out, changed


def tag_names(tags_seen) -> list[str]:
    """The tag set in id order: O, then each type's B and I (types sorted), as CoNLL lists them."""
    kinds = sorted({tag_type(t)[1] for t in tags_seen if t != OUTSIDE})
    return [OUTSIDE] + [f"{p}-{k}" for k in kinds for p in "BI"]


def entity_types(label_names: list[str]) -> list[str]:
    return sorted({tag_type(t)[1] for t in label_names if t != OUTSIDE})


def word_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """Entities as (type, first word, one past the last word), grouped as transformers'
    pipeline groups them (an I-X after O or another type starts an entity)."""
    spans: list[list] = []
    for i, tag in enumerate(tags):
        prefix, kind = tag_type(tag)
        if prefix == OUTSIDE:
            continue
        if prefix == "I" and spans and spans[-1][0] == kind and spans[-1][2] == i:
            spans[-1][2] = i + 1
        else:
            spans.append([kind, i, i + 1])
    return [tuple(s) for s in spans]


def words_of(logits, labels) -> tuple[list[np.ndarray], list[list[int]]]:
    """(per-word logits, gold tag ids) per sentence, from either per-token arrays padded with
    -100 (what the Trainer gathers: the labelled positions are the words' first sub-tokens) or
    per-sentence word-level arrays already."""
    if isinstance(logits, np.ndarray) and logits.ndim == 3:
        labels = np.asarray(labels)
        rows, gold = [], []
        for x, y in zip(logits, labels):
            keep = y != IGNORE_INDEX
            rows.append(np.asarray(x[keep], dtype=np.float64))
            gold.append([int(v) for v in y[keep]])
        return rows, gold
    return [np.asarray(x, dtype=np.float64) for x in logits], [list(map(int, y)) for y in labels]


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _seqeval(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    return classification_report(gold, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)


@dataclass(frozen=True)
class TokenClassification(TaskKind):
    def outputs(self, logits):
        return softmax(np.asarray(logits, dtype=np.float64))

    def logits_of(self, outputs):
        return np.log(np.clip(np.asarray(outputs, dtype=np.float64), 1e-12, None))

    def decisions(self, outputs, thresholds=None):
        """Each word's tag id (flat over the words of every sentence): a flip is one word."""
        rows = outputs if isinstance(outputs, list) else [outputs]
        return np.concatenate([np.asarray(r).argmax(-1).ravel() for r in rows]) if rows else np.zeros(0, int)

    def score(self, logits, labels, reference=None, thresholds=None, label_names=None):
        """Entity F1, precision and recall (seqeval, strict BIO2) over every sentence; F1 per entity
        type (types in sorted order) as `per_label`; with a reference, the share of words whose tag
        agrees."""
        from ..metrics import Scores

        rows, gold = words_of(logits, labels)
        names = label_names or _names_of_width(rows)
        predicted = [[names[i] for i in np.asarray(r).argmax(-1)] if len(r) else [] for r in rows]
        truth = [[names[i] if i >= 0 else OUTSIDE for i in g] for g in gold]
        report = _seqeval(truth, predicted)
        total = report.get("micro avg", {"f1-score": 0.0, "precision": 0.0, "recall": 0.0})
        agreement = None
        if reference is not None:
            ref, _ = words_of(reference, labels)
            agreement = float(np.mean(self.decisions(rows) == self.decisions(ref))) if rows else None
        types = entity_types(names)
        return Scores({"entity_f1": float(total["f1-score"]), "entity_precision": float(total["precision"]),
                       "entity_recall": float(total["recall"])}, examples=len(rows), agreement=agreement,
                      per_label=[float(report.get(t, {}).get("f1-score", 0.0)) for t in types])

    def trivial_score(self, train_labels, eval_labels, label_names):
        return 0.0, "O for every word"

    def prediction(self, row, label_names, thresholds=None):
        """`row`: the entities found in one text (dicts or EntitySpan)."""
        return EntitiesPrediction.of(row)

    def hard_loss(self, logits, labels):
        """Cross-entropy at the words' first sub-tokens that have a gold tag."""
        import torch.nn.functional as F

        flat, gold = logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1)
        keep = gold >= 0
        if not keep.any():
            return flat.sum() * 0.0
        return F.cross_entropy(flat[keep], gold[keep])

    def kd_loss(self, student, teacher, labels, alpha, temperature):
        """(1-α)·CE + α·T²·KL(t/T ‖ s/T) at every word's first sub-token (labels ≠ -100)."""
        import torch.nn.functional as F

        check_teacher(student, teacher) if alpha > 0 else None
        loss = student.new_zeros(())
        if labels is None:
            raise ValueError("a token task needs labels: they mark the words' first sub-tokens")
        at = labels != IGNORE_INDEX
        if alpha < 1.0:
            loss = loss + (1.0 - alpha) * self.hard_loss(student, labels)
        if alpha > 0.0 and at.any():
            t = temperature
            s, tt = student[at].float() / t, teacher.detach()[at].float() / t
            loss = loss + alpha * t * t * F.kl_div(F.log_softmax(s, -1), F.log_softmax(tt, -1), log_target=True,
                                                   reduction="batchmean")
        return loss

    def logit_mse_loss(self, student, teacher, labels, alpha, temperature):
        import torch.nn.functional as F

        check_teacher(student, teacher) if alpha > 0 else None
        at = labels != IGNORE_INDEX
        loss = (1.0 - alpha) * self.hard_loss(student, labels) if alpha < 1.0 else student.new_zeros(())
        if alpha > 0.0 and at.any():
            loss = loss + alpha * F.mse_loss(student[at].float(), teacher.detach()[at].float())
        return loss

    def label_feature(self, label_names):
        import datasets

        return datasets.Sequence(datasets.Value("int64"))

    def no_label(self, label_names):
        return None  # a transfer sentence's words: NO_GOLD each, set when its words are known

    def encode_labels(self, parsed, label_names_given, class_names, cfg):
        raise KdeployError("a token-classification task reads its data with kdeploy.data.tokens (words and a tag per "
                           "word)")

    def describe_outputs(self, label_names):
        return f"{len(label_names)} tags ({', '.join(entity_types(label_names)) or 'no entity types'})"

    def paired_test(self, reference, candidate, labels, thresholds=None, label_names=None):
        """A paired bootstrap over sentences: how sure the drop in entity F1 is."""
        ref, gold = words_of(reference, labels)
        cand, _ = words_of(candidate, labels)
        names = label_names or _names_of_width(ref)
        as_tags = lambda rows: [[names[i] for i in np.asarray(r).argmax(-1)] if len(r) else [] for r in rows]  # noqa: E731
        a, b = as_tags(ref), as_tags(cand)
        truth = [[names[i] if i >= 0 else OUTSIDE for i in g] for g in gold]
        counts = np.asarray([_counts(t, x) + _counts(t, y) for t, x, y in zip(truth, a, b)], dtype=np.float64)
        if not len(counts):
            return None
        rng = np.random.default_rng(0)
        drops = []
        for _ in range(BOOTSTRAP_ROUNDS):
            c = counts[rng.integers(0, len(counts), len(counts))].sum(0)
            drops.append(_f1(*c[:3]) - _f1(*c[3:]))
        drops = np.asarray(drops)
        return {"test": "paired bootstrap over sentences", "rounds": BOOTSTRAP_ROUNDS,
                "p_value": round(float((drops <= 0).mean()), 4),
                "drop_ci95_points": [round(100 * float(np.percentile(drops, 2.5)), 3),
                                     round(100 * float(np.percentile(drops, 97.5)), 3)]}


def _names_of_width(rows) -> list[str]:
    """Tag names where none were given: kdeploy's own layout (`tag_names`: O, then B and I per
    type), with placeholder types; entity F1 does not depend on the types' names."""
    width = next((np.asarray(r).shape[-1] for r in rows if len(r)), 1)
    if width % 2 != 1:
        raise KdeployError(f"scoring {width} tags needs their names (label_names): they are not O plus a B and "
                           "an I per type")
    return [OUTSIDE] + [f"{p}-T{k}" for k in range((width - 1) // 2) for p in "BI"]


def strict_entities(tags: list[str]) -> set[tuple[str, int, int]]:
    """Entities under strict BIO2 (seqeval's strict mode): B-X then I-X of the same type."""
    out, current = set(), None
    for i, tag in enumerate(list(tags) + [OUTSIDE]):
        prefix, kind = tag_type(tag)
        if current is not None and not (prefix == "I" and kind == current[0]):
            out.add((current[0], current[1], i))
            current = None
        if prefix == "B":
            current = (kind, i)
    return out


def _counts(truth: list[str], predicted: list[str]) -> list[int]:
    """(correct, predicted, gold) entity counts of one sentence."""
    g, p = strict_entities(truth), strict_entities(predicted)
    return [len(g & p), len(p), len(g)]


def _f1(correct: float, predicted: float, gold: float) -> float:
    return 0.0 if correct == 0 else 2 * correct / (predicted + gold)


TOKEN_CLASSIFICATION = TokenClassification(
    name="token-classification",
    doc="a BIO tag per word (named entities, PII): CoNLL columns or JSON Lines of tokens/tags, judged on entity F1",
    labels="one BIO2 tag per word (B-PER, I-PER, O); IOB1 is converted and said",
    problem_type="token_classification",  # kdeploy's own name: transformers sets none for it
    activation="softmax",
    metrics=("entity_f1", "entity_precision", "entity_recall"),
    trivial="O for every word (entity F1 0)",
    serve_type="token-classifier",
    title="Entity tagger",
    model_class="AutoModelForTokenClassification",
    export_task="token-classification",
    routes=("/predict",),
    students=frozenset({"layers", "bilstm"}),
    formats=frozenset({"python", "onnx-e2e"}),
    baselines=frozenset(),
    word_labels=True,
    e2e_output="logits",
)
