"""The training set of a distillation: the labelled split, then unlabelled text, then
augmented copies of both. Transfer examples carry label -100: the teacher's output is
their only label."""
from __future__ import annotations

from ..data import TaskData, load_unlabeled_texts


def training_set(data: TaskData, unlabeled: str | None, augment: int, augment_seed: int, tokenizer,
                 text_column: str | None = None, encoding: str = "utf-8", encoding_errors: str = "strict"):
    """(train split with transfer text appended, counts and the transfer texts)."""
    import datasets

    from .augment import augment_texts
    from .losses import IGNORE_INDEX

    texts = list(data.splits["train"]["text"])
    labels = list(data.splits["train"]["label"])
    extra = load_unlabeled_texts(unlabeled, text_column, encoding, encoding_errors) if unlabeled else []
    mask_token = getattr(tokenizer, "mask_token", None) or getattr(tokenizer, "unk_token", None) or "[MASK]"
    augmented = augment_texts(texts + extra, int(augment), augment_seed, mask_token=mask_token) if augment else []
    transfer = extra + augmented
    counts = {"labelled": len(texts), "unlabeled": len(extra), "augmented": len(augmented), "copies": int(augment)}
    if not transfer:
        return data.splits["train"], counts, transfer
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.Value("int64")})
    train = datasets.Dataset.from_dict({"text": texts + transfer, "label": labels + [IGNORE_INDEX] * len(transfer)},
                                       features=features)
    return train, counts, transfer
