"""Every data source becomes one shape: splits of `text` and `label` (ClassLabel) with the
label names in id order, and a content fingerprint.

Sources: local CSV/TSV/JSON Lines/Parquet files (any text encoding), a Hugging Face hub
dataset (`imdb`, `glue/sst2`), a `save_to_disk` folder, or the embedded Rotten Tomatoes data.
Importing this package is cheap: pandas and datasets load only when data does.
"""
from .config import DataConfig
from .files import read_text_lines
from .samples import FALLBACK_TEXTS
from .load import load_task_data
from .task import TaskData, data_still_there, load_unlabeled_texts, text_fingerprint

__all__ = ["DataConfig", "TaskData", "load_task_data", "load_unlabeled_texts", "data_still_there", "text_fingerprint",
           "read_text_lines", "FALLBACK_TEXTS"]
