"""Tiny random teachers of the architectures users arrive with, each with its family's real
tokenizer kind trained on the toy words (seconds each): WordPiece for BERT, DistilBERT, ELECTRA
and MPNet; byte-level BPE for RoBERTa and ModernBERT; Unigram (SentencePiece) for XLM-R,
DeBERTa-v2 and ALBERT."""
from __future__ import annotations

import json
import random
from pathlib import Path

from conftest import FILLER, NEGATIVE, POSITIVE

LABELS = {"id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}
SIZE = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=3)

#: architecture -> (transformers config class, tokenizer kind, extra config)
ARCHITECTURES = {
    "bert": ("BertConfig", "wordpiece", {}),
    "distilbert": ("DistilBertConfig", "wordpiece", {}),
    "electra": ("ElectraConfig", "wordpiece", {"embedding_size": 32}),
    "mpnet": ("MPNetConfig", "wordpiece-roberta", {}),
    "roberta": ("RobertaConfig", "bpe", {"type_vocab_size": 1}),
    "modernbert": ("ModernBertConfig", "bpe", {"global_attn_every_n_layers": 2, "local_attention": 8,
                                                "attn_implementation": "eager"}),
    "xlm-roberta": ("XLMRobertaConfig", "unigram", {"type_vocab_size": 1}),
    "deberta-v2": ("DebertaV2Config", "unigram", {"relative_attention": True, "position_biased_input": False,
                                                  "pos_att_type": ["p2c", "c2p"], "max_relative_positions": 16,
                                                  "type_vocab_size": 0}),
    "albert": ("AlbertConfig", "unigram", {"embedding_size": 16, "num_hidden_groups": 1}),
}


def _corpus() -> list[str]:
    rng = random.Random(0)
    words = POSITIVE + NEGATIVE + FILLER
    extra = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8))) for _ in range(150)]
    return [" ".join(rng.choice(words + extra) for _ in range(10)) for _ in range(400)]


#: the tokenizer class each family's real checkpoints name in tokenizer_config.json (what
#: save_pretrained writes for a fine-tuned model of that family; the e2e op must not depend on it)
TOKENIZER_CLASS = {"bert": "BertTokenizer", "distilbert": "DistilBertTokenizer", "electra": "ElectraTokenizer",
                   "mpnet": "MPNetTokenizer", "roberta": "RobertaTokenizer", "modernbert": "PreTrainedTokenizerFast",
                   "xlm-roberta": "XLMRobertaTokenizer", "deberta-v2": "DebertaV2Tokenizer",
                   "albert": "AlbertTokenizer"}

#: the architectures whose real tokenizers give no token_type_ids (their models take none)
NO_TOKEN_TYPES = {"distilbert", "mpnet", "roberta", "modernbert", "xlm-roberta"}


def build_tokenizer(kind: str, folder: Path, token_types: bool = True):
    """A fast tokenizer of `kind`, saved in `folder`: BERT's [CLS] a [SEP] for WordPiece, <s> a </s>
    (RoBERTa's post-processor) for the others, as the real checkpoints have."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind.startswith("wordpiece"):
        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] if kind == "wordpiece" else \
            ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok = Tokenizer(models.WordPiece(unk_token=special[1] if kind == "wordpiece" else "<unk>"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=600, special_tokens=special)
    elif kind == "bpe":
        special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=special,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=500, special_tokens=special, unk_token="<unk>")
    tok.train_from_iterator(_corpus(), trainer)
    if kind == "wordpiece":
        cls, sep, pad, unk, mask = special
        tok.post_processor = processors.BertProcessing((sep, tok.token_to_id(sep)), (cls, tok.token_to_id(cls)))
    else:
        cls, pad, sep, unk, mask = special
        tok.post_processor = processors.RobertaProcessing((sep, tok.token_to_id(sep)), (cls, tok.token_to_id(cls)))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, cls_token=cls, sep_token=sep, pad_token=pad,
                                   unk_token=unk, mask_token=mask, bos_token=cls, eos_token=sep,
                                   model_max_length=64, model_input_names=(
                                       ["input_ids", "token_type_ids", "attention_mask"] if token_types
                                       else ["input_ids", "attention_mask"]))
    fast.save_pretrained(folder)
    return fast


def build_teacher(arch: str, folder: Path) -> Path:
    """A tiny random classifier of `arch` with its family's tokenizer, saved in `folder`."""
    import pytest
    import torch
    import transformers

    name, kind, extra = ARCHITECTURES[arch]
    if not hasattr(transformers, name):
        pytest.skip(f"transformers {transformers.__version__} has no {name}")
    tok = build_tokenizer(kind, folder, arch not in NO_TOKEN_TYPES)
    config_file = folder / "tokenizer_config.json"  # as the family's real checkpoints are saved
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "tokenizer_class": TOKENIZER_CLASS[arch]}))
    config_class = getattr(transformers, name)
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
    if arch == "modernbert":
        ids |= dict(cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id)
    sizes = dict(SIZE)
    if arch == "distilbert":
        sizes = dict(dim=32, n_heads=2, hidden_dim=64, n_layers=3)
    config = config_class(vocab_size=len(tok), max_position_embeddings=66, num_labels=2, **sizes, **ids, **extra,
                          **LABELS)
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(folder)
    return folder
