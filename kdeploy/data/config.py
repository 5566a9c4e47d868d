"""Where the labelled data comes from: files or a dataset, and how to read them."""
from __future__ import annotations

import codecs
from dataclasses import dataclass

from ..errors import KdeployError

ENCODING_ERRORS = ("strict", "replace")
PAIR_TRUNCATION = ("longest_first", "only_first", "only_second")


@dataclass
class DataConfig:
    """Files (`train`, `validation`, `test`) or a `dataset`. Evaluation-only data (a test or
    validation file without train) is never split: it is scored, as given."""

    train: str | None = None
    validation: str | None = None
    test: str | None = None
    dataset: str | None = None  # hub name ("imdb", "glue/sst2"), save_to_disk folder, or builtin:rotten_tomatoes
    dataset_config: str | None = None
    text_column: str | None = None
    text_pair_column: str | None = None  # the second text of a pair (default: found, e.g. sentence1/sentence2)
    label_column: str | None = None
    task: str = "classification"  # a task kind's name (kdeploy.tasks): classification, regression, multi-label
    label_separator: str = ","  # multi-label: the names of a row's labels joined by this
    pair_truncation: str = "longest_first"  # which text of a pair gives up tokens past max_length
    truncation: str | None = None  # which tokens of a long single text are read: head, tail, head+tail[:N] (None: the model's own, else head)
    label_names: list[str] | None = None  # names for integer labels, in id order
    encoding: str = "utf-8"  # of text files; any Python codec (latin-1, cp1252, utf-16, ...)
    encoding_errors: str = "strict"  # strict: stop at the first bad byte; replace: use U+FFFD and count them
    reject_replacement_characters: bool = False  # refuse text that already holds U+FFFD (a sign of a bad decode)
    validation_fraction: float = 0.1  # carved from train (seeded, stratified) when no validation split exists
    split_seed: int = 42
    max_train_samples: int | None = None
    max_eval_samples: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.label_names, str):
            self.label_names = [s.strip() for s in self.label_names.split(",") if s.strip()]
        if self.label_names is not None and len(set(self.label_names)) != len(self.label_names):
            raise KdeployError(f"label names must be distinct, got {self.label_names}")
        if not (self.train or self.dataset or self.test or self.validation):
            raise KdeployError("no data: give --train FILE (and --validation/--test) or --dataset NAME")
        if (self.train or self.validation or self.test) and self.dataset:
            raise KdeployError("give either files (--train/--validation/--test) or --dataset, not both")
        if not 0.0 < self.validation_fraction < 0.5:
            raise KdeployError(f"validation_fraction must be in (0, 0.5), got {self.validation_fraction}")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise KdeployError(f"{name} must be positive, got {value}")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise KdeployError(f"unknown text encoding {self.encoding!r}; give a Python codec name such as "
                               "utf-8, latin-1 or cp1252") from None
        from ..tasks import task_kind

        kind = task_kind(self.task)
        if self.pair_truncation not in PAIR_TRUNCATION:
            raise KdeployError(f"pair_truncation must be one of {', '.join(PAIR_TRUNCATION)}, got {self.pair_truncation!r}")
        if self.truncation is not None:
            from ..truncation import check

            self.truncation = check(self.truncation)
        if not kind.named_labels and self.label_names:
            raise KdeployError(f"--label-names names classes; a {kind.name} task has one score (drop --label-names)")
        if not self.label_separator or self.label_separator.strip() != self.label_separator:
            raise KdeployError(f"--label-separator must be a non-blank character (or characters), got {self.label_separator!r}")
        if self.encoding_errors not in ENCODING_ERRORS:
            raise KdeployError(f"encoding_errors must be strict or replace, got {self.encoding_errors!r}")

    @property
    def has_train(self) -> bool:
        return bool(self.train or self.dataset)

    def files(self) -> list[str]:
        return [p for p in (self.train, self.validation, self.test) if p]
