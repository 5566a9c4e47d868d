"""Vocabulary trimming: keep only the tokens a domain uses.

In a 2-layer MiniLM student most weights are the 30,522-row token embedding, and most of
those rows never occur in a given task. Trimming keeps the tokens the training text (plus
an optional extra corpus) produces, every special token and every single character,
rewrites the embedding matrix and the tokenizer consistently, and verifies the result:
every kept text encodes to the same tokens, renumbered, so its logits are unchanged; an
unseen word is spelled with the pieces that remain.

Each tokenizer kind keeps what provably leaves a kept text's segmentation unchanged:
- WordPiece (BERT family): greedy longest match, unchanged on text whose pieces were all kept.
- BPE (RoBERTa, GPT-2, ModernBERT): the merges that build every kept token, with the tokens
  they pass through. BPE applies, at each step, the lowest-ranked merge present; a merge that
  never won a step on the kept text can go without changing any step, and every merge that
  did win built a piece of some kept token, so it is kept.
- Unigram (SentencePiece: XLM-R, DeBERTa-v2, ALBERT, T5): the pieces kept text uses. Its
  segmentation is the best-scoring path; removing pieces off that path leaves it the best.
Every kind also keeps its single characters (all 256 bytes for byte-level BPE), so unseen
text is still spelled out, and the result is checked on the kept text either way.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import KdeployError
from ..modelio.inputs import tokenize
from ..names import TOKENIZER_FILE


def used_token_ids(tokenizer, texts: list[str], max_length: int | None = None) -> set[int]:
    ids: set[int] = set(tokenizer.all_special_ids)
    for start in range(0, len(texts), 1024):
        enc = tokenize(tokenizer, texts[start:start + 1024], max_length, padding=False, truncation=max_length is not None)
        for row in enc["input_ids"]:
            ids.update(row)
    return ids


def character_ids(spec: dict) -> set[int]:
    """Every single-character token and its continuation form ("a", "##a"), kept whatever the
    corpus: an unseen word is then spelled out in pieces instead of failing half-way into
    [UNK], and WordPiece never fails inside a word made of known characters, which the e2e
    bundle's in-graph tokenizer needs to give the same ids as `tokenizers`. A few thousand rows.
    (Unigram: single-character pieces, "▁a" and byte-fallback pieces "<0x41>".)"""
    model = spec["model"]
    prefix = model.get("continuing_subword_prefix") or ("##" if model.get("type") == "WordPiece" else "")
    if model.get("type") == "Unigram":
        return {i for i, (piece, _) in enumerate(model["vocab"])
                if len(piece) == 1 or (piece.startswith("\u2581") and len(piece) == 2)
                or (piece.startswith("<0x") and len(piece) == 6 and piece.endswith(">"))}
    return {i for token, i in model.get("vocab", {}).items()
            if len(token) == 1 or (prefix and token.startswith(prefix) and len(token) == len(prefix) + 1)}


def _pair(merge) -> tuple[str, str]:
    """A merge as tokenizer.json writes it: "a b" (tokenizers < 0.20) or ["a", "b"]."""
    return tuple(merge.split(" ", 1)) if isinstance(merge, str) else tuple(merge)


def merge_closure(spec: dict, ids: set[int]) -> set[int]:
    """BPE: the tokens that build the kept ones, merge by merge, down to single characters."""
    model = spec["model"]
    vocab, prefix = model["vocab"], model.get("continuing_subword_prefix") or ""
    built_by: dict[str, list[tuple[str, str]]] = {}
    for merge in model.get("merges", []):
        a, b = _pair(merge)
        built_by.setdefault(a + (b[len(prefix):] if prefix and b.startswith(prefix) else b), []).append((a, b))
    token_of = {i: t for t, i in vocab.items()}
    todo, needed = [token_of[i] for i in ids if i in token_of], set()
    while todo:
        token = todo.pop()
        if token in needed:
            continue
        needed.add(token)
        todo.extend(part for merge in built_by.get(token, ()) for part in merge)
    return {vocab[t] for t in needed if t in vocab}


TRIMMABLE = ("WordPiece", "BPE", "Unigram")  # tokenizer.json model types whose trimming keeps every kept text's ids


def tokenizer_kind(model_dir: str | Path) -> str | None:
    """The model type in a folder's tokenizer.json (WordPiece, BPE, Unigram, ...), torch-free;
    None without a fast tokenizer."""
    try:
        spec = json.loads((Path(model_dir) / TOKENIZER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model = spec.get("model") if isinstance(spec, dict) else None
    return model.get("type") if isinstance(model, dict) else None


def trim_vocabulary(model, tokenizer, texts: list[str], max_length: int | None = None):
    """Return (trimmed model, trimmed tokenizer, record). The model is changed in place."""
    from transformers import AutoTokenizer

    if not getattr(tokenizer, "is_fast", False):
        raise KdeployError("vocabulary trimming needs a fast tokenizer (tokenizer.json)")
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        spec = json.loads((Path(tmp) / TOKENIZER_FILE).read_text(encoding="utf-8"))
        kind = spec["model"].get("type")
        if kind not in TRIMMABLE:
            raise KdeployError(f"vocabulary trimming supports {', '.join(TRIMMABLE)} tokenizers; this one is {kind}")
        if spec["model"].get("dropout"):
            raise KdeployError("vocabulary trimming needs a deterministic tokenizer; this BPE has dropout set")
        embeddings = model.get_input_embeddings()
        old_size = embeddings.weight.shape[0]
        used = used_token_ids(tokenizer, texts, max_length) | character_ids(spec)
        used |= {i for a in spec.get("added_tokens", []) for i in [a["id"]]}
        if kind == "BPE":
            used |= merge_closure(spec, used)
        keep = sorted(i for i in used if i < old_size)
        old_to_new = {old: new for new, old in enumerate(keep)}
        _rewrite_tokenizer_files(Path(tmp), spec, old_to_new)
        trimmed_tokenizer = AutoTokenizer.from_pretrained(tmp)
    _rewrite_embeddings(model, embeddings, keep)
    _remap_config_ids(model, old_to_new)
    check_same_tokens(tokenizer, trimmed_tokenizer, texts[:2000], old_to_new, max_length)
    record = {"vocab_before": old_size, "vocab_after": len(keep), "texts": len(texts),
              "embedding_parameters_removed": (old_size - len(keep)) * embeddings.weight.shape[1]}
    return model, trimmed_tokenizer, record


def _rewrite_tokenizer_files(folder: Path, spec: dict, old_to_new: dict[int, int]) -> None:
    model = spec["model"]
    if model["type"] == "Unigram":
        model["vocab"] = [piece for i, piece in enumerate(model["vocab"]) if i in old_to_new]
        if model.get("unk_id") is not None:
            if model["unk_id"] not in old_to_new:
                raise KdeployError("the unknown piece is not in the vocabulary; cannot trim safely")
            model["unk_id"] = old_to_new[model["unk_id"]]
    else:
        new_vocab = {tok: old_to_new[i] for tok, i in model["vocab"].items() if i in old_to_new}
        model["vocab"] = dict(sorted(new_vocab.items(), key=lambda kv: kv[1]))
        unk = model.get("unk_token")
        if unk is not None and unk not in new_vocab:
            raise KdeployError(f"the unknown token {unk!r} is not in the vocabulary; cannot trim safely")
        if model["type"] == "BPE":  # a merge stays when its parts and its result all stay, in rank order
            prefix = model.get("continuing_subword_prefix") or ""
            model["merges"] = [m for m in model.get("merges", []) for a, b in [_pair(m)]
                               if a in new_vocab and b in new_vocab
                               and a + (b[len(prefix):] if prefix and b.startswith(prefix) else b) in new_vocab]
    for added in spec.get("added_tokens", []):
        if added["id"] not in old_to_new:
            raise KdeployError(f"added token {added['content']!r} was dropped; this is a bug")
        added["id"] = old_to_new[added["id"]]
    post = spec.get("post_processor") or {}
    for special in (post.get("special_tokens") or {}).values():
        special["ids"] = [old_to_new[i] for i in special["ids"]]
    for key in ("cls", "sep"):  # BertProcessing form
        if isinstance(post.get(key), list):
            post[key][1] = old_to_new[post[key][1]]
    (folder / TOKENIZER_FILE).write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    _rewrite_slow_files(folder, spec)
    config_path = folder / "tokenizer_config.json"
    if config_path.exists():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        decoder = config.get("added_tokens_decoder") or {}
        config["added_tokens_decoder"] = {str(old_to_new[int(k)]): v for k, v in decoder.items()
                                          if int(k) in old_to_new}
        config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")


def _rewrite_slow_files(folder: Path, spec: dict) -> None:
    """The slow tokenizer's files, rewritten to match (vocab.txt; vocab.json + merges.txt), or
    removed where they cannot be (a SentencePiece .model): a stale one would load with the old
    numbering."""
    model = spec["model"]
    if (folder / "vocab.txt").exists():
        (folder / "vocab.txt").write_text("".join(f"{t}\n" for t in model["vocab"]), encoding="utf-8")
    if (folder / "vocab.json").exists() and isinstance(model["vocab"], dict):
        (folder / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False), encoding="utf-8")
    if (folder / "merges.txt").exists() and "merges" in model:
        lines = ["#version: 0.2"] + [" ".join(_pair(m)) for m in model["merges"]]
        (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for stale in folder.glob("*.model"):
        stale.unlink()


def _rewrite_embeddings(model, embeddings: nn.Embedding, keep: list[int]) -> None:
    index = torch.tensor(keep, dtype=torch.long)
    weight = embeddings.weight.data.index_select(0, index).clone()
    padding_idx = embeddings.padding_idx
    new = nn.Embedding(len(keep), weight.shape[1], padding_idx=keep.index(padding_idx)
                       if padding_idx is not None and padding_idx in keep else None)
    new.weight.data.copy_(weight)
    model.set_input_embeddings(new)
    scale = getattr(model, "token_weight", None)  # the static student's per-token weights: one row per token too
    if isinstance(scale, nn.Embedding):
        trimmed = nn.Embedding(len(keep), scale.weight.shape[1])
        trimmed.weight.data.copy_(scale.weight.data.index_select(0, index))
        model.token_weight = trimmed
    model.config.vocab_size = len(keep)


def _remap_config_ids(model, old_to_new: dict[int, int]) -> None:
    """The special ids in the config, and the padding id a module keeps from it (RoBERTa counts
    positions from the tokens that are not padding: a stale id would shift every position)."""
    config = model.config
    pad = getattr(config, "pad_token_id", None)
    for module in model.modules():
        if not isinstance(module, nn.Embedding) and getattr(module, "padding_idx", None) == pad and pad in old_to_new:
            module.padding_idx = old_to_new[pad]
    for key in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id", "mask_token_id"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value in old_to_new:
            setattr(config, key, old_to_new[value])


def check_same_tokens(old, new, texts: list[str], old_to_new: dict[int, int], max_length: int | None) -> None:
    """Kept text must encode to the same tokens, renumbered; otherwise the trim is wrong."""
    kwargs = dict(truncation=max_length is not None, max_length=max_length)
    before = old(texts, **kwargs)["input_ids"]
    after = new(texts, **kwargs)["input_ids"]
    for text, a, b in zip(texts, before, after):
        if [old_to_new[i] for i in a] != b:
            raise KdeployError(f"the trimmed tokenizer encodes {text[:60]!r} differently; not saving it")


def vocabulary_coverage(tokenizer, texts: list[str]) -> float:
    """Share of tokens in `texts` that are not [UNK] (for reporting on held-out text)."""
    ids = np.concatenate([np.asarray(r) for r in tokenize(tokenizer, texts, None, padding=False, truncation=False)["input_ids"]])
    return float((ids != tokenizer.unk_token_id).mean())
