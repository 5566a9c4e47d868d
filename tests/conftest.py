"""Fixtures: tiny BERT models built from config, and small datasets written to tmp files.

Everything here runs offline in seconds; real-model tests are marked `real`.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

POSITIVE = ["good", "great", "fine", "lovely", "superb", "moving", "funny", "smart"]
NEGATIVE = ["bad", "awful", "dull", "boring", "weak", "messy", "tedious", "flat"]
FILLER = ["the", "film", "movie", "plot", "was", "a", "very", "and", "it", "story", "acting", "quite"]


def make_sentences(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """A learnable toy sentiment task: the label is which word list dominates."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        words = rng.sample(FILLER, rng.randint(2, 8))
        cue = POSITIVE if label == "positive" else NEGATIVE
        for _ in range(rng.randint(1, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(cue))
        rows.append((" ".join(words), label))
    return rows


def write_tsv(path: Path, rows, header=("sentence", "label")) -> Path:
    path.write_text("\t".join(header) + "\n" + "".join(f"{t}\t{l}\n" for t, l in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def toy_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("toy")
    return {
        "train": write_tsv(d / "train.tsv", make_sentences(160, 1)),
        "validation": write_tsv(d / "dev.tsv", make_sentences(40, 2)),
        "test": write_tsv(d / "test.tsv", make_sentences(40, 3)),
    }


def build_tokenizer(folder: Path, continuation: bool = False):
    """`continuation`: also "##a".."##z", as real BERT vocabularies have (every word spells out)."""
    from transformers import BertTokenizerFast

    words = sorted(set(POSITIVE + NEGATIVE + FILLER) | set("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    if continuation:
        vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(folder)
    return tok


def build_tiny_bert(folder: Path, num_labels: int = 2, layers: int = 4, label_names=("negative", "positive"), seed=0,
                    continuation: bool = False):
    """A 4-layer, 32-wide BERT classifier saved as a model folder (weights are random)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tok = build_tokenizer(folder, continuation)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=num_labels,
                        id2label=dict(enumerate(label_names)) if label_names else None,
                        label2id={n: i for i, n in enumerate(label_names)} if label_names else None)
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_base_bert(tmp_path_factory) -> Path:
    """A 'pretrained encoder' without task labels, for finetune."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_base"), label_names=None)


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("KDEPLOY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def sst2_dir() -> Path:
    if not (SHARED_DATA / "sst2" / "train.tsv").exists():
        pytest.skip(f"{SHARED_DATA / 'sst2'} is absent")
    return SHARED_DATA / "sst2"


@pytest.fixture(scope="session")
def exported_tiny(tmp_path_factory, tiny_bert, toy_files) -> Path:
    """The tiny BERT exported with int8 (accuracy gate opened wide: its weights are random)."""
    from kdeploy.data import DataConfig
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings

    out = tmp_path_factory.mktemp("exported") / "onnx"
    export(ExportSettings(optimize=None, quantize="int8", max_accuracy_drop=100), model=tiny_bert, out=out,
           data=DataConfig(train=str(toy_files["train"]), test=str(toy_files["test"])))
    return out


def data_of(files, **kwargs):
    """The toy task's three files as a DataConfig."""
    from kdeploy.data import DataConfig

    return DataConfig(train=str(files["train"]), validation=str(files["validation"]), test=str(files["test"]), **kwargs)


#: a training setup that learns the toy task in seconds
FAST = dict(epochs=3, learning_rate=3e-3, warmup_ratio=0.0, batch_size=16, max_length=32)


def distill_settings(**kwargs):
    """DistillSettings with FAST training and no augmentation unless asked; `train=` overrides
    single training settings."""
    from kdeploy.configtools import settings_from
    from kdeploy.distill.config import DistillSettings

    train = {**FAST, **kwargs.pop("train", {})}
    return settings_from(DistillSettings, {"train": train, "augment": 0, **kwargs})


def finetune_settings(**kwargs):
    from kdeploy.configtools import settings_from
    from kdeploy.distill.config import FinetuneSettings

    train = {**FAST, **kwargs.pop("train", {})}
    return settings_from(FinetuneSettings, {"train": train, **kwargs})
