"""A Unigram (SentencePiece-style: XLM-R, DeBERTa-v2, ALBERT) `tokenizer.json` as ONNX nodes:
the extensions' SentencepieceTokenizer op, given a SentencePiece model written from that file.

Why not the extensions' tokenizer.json reader (HfJsonTokenizer): it follows SentencePiece's own
whitespace rules, not `tokenizers`': it drops leading, trailing and repeated spaces and gives an
empty text no <s> </s> (7 of 42 sample and hostile texts differed, 2026-12-06). Here the model is
written with SentencePiece's whitespace clean-up off and no dummy prefix; `tokenizers`'
Metaspace rule (a "▁" before a text that does not start with a space) is one regex node in front,
and the normaliser's own `Replace` rules are regex nodes too, so the op sees the text `tokenizers`
splits. A tokenizer that splits on whitespace before Metaspace (transformers 5 rebuilds XLM-R's and
ALBERT's so: every such model it saves has it) gets SentencePiece's own rule instead: clean-up on,
a dummy prefix, and one regex node that makes every Unicode whitespace run one space. What it
cannot carry (another normaliser or pre-tokenizer, byte fallback, a pair template) is refused in
one line before anything is built, and what is built is gated on token parity with `tokenizers`
like every in-graph tokenizer.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import KdeployError

SPM_OP = "SentencepieceTokenizer"
METASPACE = "\u2581"
WHITE_SPACE = "[\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}]+"


def sentencepiece_attributes(spec: dict, where: Path, max_length: int, pairs: bool = False) -> dict:
    """The op's attributes and kdeploy's pre-processing for a Unigram tokenizer.json, or one clear
    refusal naming what the graph cannot reproduce."""
    if pairs:
        raise KdeployError(f"{where}: a SentencePiece tokenizer's pair template is not built in the graph; package a "
                           "pair model of this tokenizer as python or web")
    model = spec.get("model") or {}
    if model.get("byte_fallback"):
        raise KdeployError(f"{where}: a Unigram tokenizer with byte fallback is not built in the graph; package it as "
                           "python or web")
    replaces, charsmap = _normaliser(spec.get("normalizer"), where)
    words = _pre_tokenizer(spec.get("pre_tokenizer") or {}, where)
    bos, eos = _specials(spec, where)
    return {"op": SPM_OP, "model": _model_proto(model, spec, bos, eos, charsmap, words), "replaces": replaces,
            "words": words, "max_length": int(max_length)}


def _pre_tokenizer(pre: dict, where: Path) -> bool:
    """Whether the text is split into words first: Metaspace alone (False), or WhitespaceSplit then
    Metaspace, as transformers 5 rebuilds every XLM-R and ALBERT tokenizer (True): SentencePiece's
    own rule, which drops leading, trailing and repeated whitespace and puts "▁" before each word."""
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    words = kinds == ["WhitespaceSplit", "Metaspace"]
    meta = steps[-1] if steps else {}
    if kinds not in (["Metaspace"], ["WhitespaceSplit", "Metaspace"]) or not meta.get("split", True) \
            or meta.get("replacement", METASPACE) != METASPACE \
            or meta.get("prepend_scheme", "always") not in (("always",) if words else ("always", "first")):
        raise KdeployError(f"{where}: its pre-tokenizer ({' + '.join(map(str, kinds)) or pre.get('type')}) is not "
                           "SentencePiece's Metaspace; the in-graph tokenizer cannot split as it does; package it as "
                           "python or web")
    return words


def _normaliser(normalizer: dict | None, where: Path) -> tuple[list[tuple[str, str]], bytes]:
    """(regex replacements, SentencePiece's precompiled character map) from the normaliser: none,
    `Precompiled`, `Replace` with a regex or a string, or a sequence of those (XLM-R's)."""
    import base64
    import re

    steps = [] if normalizer is None else normalizer.get("normalizers", [normalizer]) \
        if normalizer.get("type") == "Sequence" else [normalizer]
    replaces, charsmap, seen_map = [], b"", False
    for step in steps:
        kind = step.get("type")
        if kind == "Precompiled" and not replaces and not seen_map:  # the op applies it first, as tokenizers does
            charsmap, seen_map = base64.b64decode(step.get("precompiled_charsmap") or ""), True
        elif kind == "Replace":
            pattern = step.get("pattern") or {}
            regex = pattern.get("Regex") if "Regex" in pattern else re.escape(pattern.get("String", ""))
            replaces.append((regex, str(step.get("content", "")).replace("\\", "\\\\")))
        else:
            raise KdeployError(f"{where}: its normaliser step {kind} is not built in the graph (a precompiled map "
                               "first, then Replace rules, are); package it as python or web")
    # XLM-R's Replace(" {2,}", " ") follows its character map in tokenizers but runs before the op's map
    # here: they differ only where the map makes a space run (a no-break space beside a space); the
    # token-parity gate decides on the real texts
    return replaces, charsmap


def _specials(spec: dict, where: Path) -> tuple[int, int]:
    """The ids put before and after a text by the post-processor (<s> … </s>, [CLS] … [SEP])."""
    post = spec.get("post_processor") or {}
    kind = post.get("type")
    if kind in ("RobertaProcessing", "BertProcessing"):
        return int(post["cls"][1]), int(post["sep"][1])
    if kind == "TemplateProcessing":
        single = post.get("single", [])
        names = [next(iter(piece.values()))["id"] for piece in single]
        if len(names) == 3 and names[1] == "A":
            ids = {name: special["ids"][0] for name, special in (post.get("special_tokens") or {}).items()}
            return int(ids[names[0]]), int(ids[names[2]])
    raise KdeployError(f"{where}: its post-processor ({kind}) is not one special token before and one after the "
                       "text; the in-graph tokenizer cannot add its special tokens")


def _model_proto(model: dict, spec: dict, bos: int, eos: int, charsmap: bytes, words: bool = False) -> bytes:
    """A SentencePiece ModelProto with the same pieces, scores and ids; whitespace left alone, or
    (`words`: WhitespaceSplit before Metaspace) SentencePiece's own clean-up and "▁" prefix."""
    from transformers.utils import sentencepiece_model_pb2_new as pb

    proto = pb.ModelProto()
    unk = model.get("unk_id")
    specials = {t["content"] for t in spec.get("added_tokens", []) if t.get("special")}
    piece_type = pb.ModelProto.SentencePiece
    for i, (piece, score) in enumerate(model["vocab"]):
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, float(score)
        entry.type = piece_type.UNKNOWN if i == unk else piece_type.CONTROL if piece in specials else piece_type.NORMAL
    trainer = proto.trainer_spec
    trainer.model_type = pb.TrainerSpec.UNIGRAM
    trainer.unk_id = unk if unk is not None else 0
    trainer.bos_id, trainer.eos_id, trainer.pad_id = bos, eos, -1
    norm = proto.normalizer_spec
    norm.name = "kdeploy" if charsmap else "identity"
    norm.precompiled_charsmap = charsmap
    norm.add_dummy_prefix = words  # else tokenizers' Metaspace prefix is a regex node in front
    norm.remove_extra_whitespaces = words
    norm.escape_whitespaces = True
    return proto.SerializeToString()


def sentencepiece_nodes(attributes: dict, text: str, p: str) -> tuple[list, str]:
    """Nodes from `text` (string [1]) to its ids ([L] int64, specials included): the normaliser's
    Replace rules, the Metaspace prefix (or the whitespace runs made one space), then the op."""
    from onnx import TensorProto, helper

    def const(name, value, dtype=TensorProto.STRING):
        raw = [value.encode("utf-8")] if dtype == TensorProto.STRING else [value]
        return helper.make_node("Constant", [], [p + name], value=helper.make_tensor(p + name + "_v", dtype, [1], raw))

    nodes, source = [], text
    # WhitespaceSplit splits on every Unicode White_Space character; the op cleans up spaces only
    last = (WHITE_SPACE, " ") if attributes.get("words") else (f"^([^ {METASPACE}])", " \\1")
    rules = list(attributes.get("replaces", [])) + [last]
    for k, (pattern, by) in enumerate(rules):
        every = k < len(rules) - 1 or bool(attributes.get("words"))  # the prefix rule: once, at the start
        nodes += [const(f"re{k}", pattern), const(f"by{k}", by),
                  helper.make_node("StringRegexReplace", [source, p + f"re{k}", p + f"by{k}"], [p + f"text{k}"],
                                   domain="ai.onnx.contrib", global_replace=int(every))]
        source = p + f"text{k}"
    flags = [("nbest", 0, TensorProto.INT64), ("alpha", 0.0, TensorProto.FLOAT), ("bos", True, TensorProto.BOOL),
             ("eos", True, TensorProto.BOOL), ("reverse", False, TensorProto.BOOL), ("fairseq", False, TensorProto.BOOL)]
    nodes += [const(name, value, dtype) for name, value, dtype in flags]
    nodes += [helper.make_node(SPM_OP, [source] + [p + name for name, _, _ in flags], [p + "ids32", p + "rows"],
                               name=p + "sentencepiece", domain="ai.onnx.contrib", model=attributes["model"]),
              helper.make_node("Cast", [p + "ids32"], [p + "ids64"], to=TensorProto.INT64)]
    return nodes, p + "ids64"

