"""The one entry to a task's labelled data: an entity tagger's words and tags
(`kdeploy.data.tokens`), every other task's texts and labels (`kdeploy.data.task`)."""
from __future__ import annotations

from ..tasks import task_kind
from .config import DataConfig
from .task import TaskData, load_task_data as _texts_and_labels


def load_task_data(cfg: DataConfig) -> TaskData:
    """Load, validate and normalise; every problem is one KdeployError naming what and where."""
    if task_kind(cfg.task).word_labels:  # a tag per word: words and tags, not texts and labels
        from .tokens import load_token_data

        return load_token_data(cfg)
    return _texts_and_labels(cfg)
