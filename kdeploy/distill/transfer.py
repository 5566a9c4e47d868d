"""The training set of a distillation: the labelled split, then unlabelled text, then
augmented copies of both. Transfer examples carry the task kind's `no_label` (-100 for a
class, NaN for float labels): the teacher's output is their only label. A pair's copies edit each of its two texts."""
from __future__ import annotations

from ..data import TaskData, load_unlabeled_texts


def training_set(data: TaskData, unlabeled: str | None, augment: int, augment_seed: int, tokenizer,
                 text_column: str | None = None, encoding: str = "utf-8", encoding_errors: str = "strict"):
    """(train split with transfer text appended, counts and the transfer texts)."""
    import datasets

    from ..errors import KdeployError
    from .augment import augment_texts

    texts = data.texts("train")
    labels = list(data.splits["train"]["label"])
    if unlabeled and data.pairs:
        raise KdeployError("--unlabeled gives single texts, but this is a sentence-pair task; use --augment "
                           "for transfer pairs")
    extra = load_unlabeled_texts(unlabeled, text_column, encoding, encoding_errors) if unlabeled else []
    mask_token = getattr(tokenizer, "mask_token", None) or getattr(tokenizer, "unk_token", None) or "[MASK]"
    if not augment:
        augmented = []
    elif data.pairs:  # each side edited with its own draws
        firsts = augment_texts([a for a, _ in texts], int(augment), augment_seed, mask_token=mask_token)
        seconds = augment_texts([b for _, b in texts], int(augment), augment_seed + 1, mask_token=mask_token)
        augmented = list(zip(firsts, seconds))
    else:
        augmented = augment_texts(texts + extra, int(augment), augment_seed, mask_token=mask_token)
    transfer = extra + augmented
    counts = {"labelled": len(texts), "unlabeled": len(extra), "augmented": len(augmented), "copies": int(augment)}
    if not transfer:
        return data.splits["train"], counts, transfer
    no_label = data.kind.no_label(data.label_names)
    columns = {"text": [t[0] for t in texts + transfer] if data.pairs else texts + transfer}
    if data.pairs:
        columns["text_pair"] = [t[1] for t in texts + transfer]
    columns["label"] = labels + [no_label] * len(transfer)
    features = datasets.Features({**{k: datasets.Value("string") for k in columns if k != "label"},
                                  "label": _transfer_label(data)})
    return datasets.Dataset.from_dict(columns, features=features), counts, transfer


def _transfer_label(data: TaskData):
    """The label column once transfer rows join: the task's own float feature, or plain ids (a
    ClassLabel cannot hold -100)."""
    import datasets

    feature = data.kind.label_feature(data.label_names)
    return datasets.Value("int64") if isinstance(feature, datasets.ClassLabel) else feature
