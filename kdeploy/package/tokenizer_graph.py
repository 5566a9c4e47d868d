"""A bundle's tokenizer as ONNX nodes (onnxruntime-extensions custom ops), configured from the
`tokenizer.json` that the Python predictor uses, so that both give the same token ids.

    text ─ StringRegexReplace (tabs/newlines → space; private-use characters → "")
         ─ StringRegexSplitWithOffsets "(.)" (one string per character)
         ─ StringMapping (each character → what BertNormalizer makes of it: lower case, accents
           stripped by NFD, Hangul to jamo, other whitespace → space; deleted and
           out-of-vocabulary characters → two private-use markers)
         ─ StringJoin ─ StringRegexReplace (deleted marker → ""; the unknown marker to the
           front of its word) ─ BertTokenizer (punctuation and CJK splitting, WordPiece,
           [CLS]/[SEP], truncation; its own lowercasing and accent stripping off)

Why not the op alone, or `gen_processing_models`: the converter reads `strip_accents=None`
(BERT's "follow lowercasing") as "keep accents" ("Überraschend" → [UNK]) and never truncates;
the op's own accent stripping covers Latin only (Greek, Cyrillic, kana, Vietnamese, Hangul
came out as [UNK]) and it keeps U+FFFD, U+FEFF and U+2028 that BERT deletes or splits on. The
character table is computed with the `tokenizers` library's own normaliser, so it is BERT's
behaviour by construction. One difference remains and is documented: the extensions read
strings as C strings, so a NUL character ends the text.

Byte-level BPE tokenizers (RoBERTa, GPT-2, ModernBERT) go through the extensions' own reader
of `tokenizer.json` (the HfJsonTokenizer op, <s> … </s> included), and kdeploy.truncation's cut
after it; Unigram/SentencePiece ones (XLM-R, DeBERTa-v2, ALBERT) through SentencepieceTokenizer
with a model written from the tokenizer.json (kdeploy.package.sentencepiece_graph). Whatever is
built is gated on token parity with `tokenizers` (the validation split and the hostile texts)
before it ships.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import KdeployError
from ..truncation import keep_first
from .sentencepiece_graph import SPM_OP, sentencepiece_attributes, sentencepiece_nodes

DOMAIN = "ai.onnx.contrib"
OUTPUTS = ("input_ids", "token_type_ids", "attention_mask")


JSON_OP = "HfJsonTokenizer"


def in_graph_tokenizer(tokenizer_json: Path, max_length: int, pairs: bool = False) -> tuple[dict, tuple | None]:
    """(the tokenizer op's attributes, BERT's normaliser table or None) for a bundle's tokenizer:
    WordPiece through BertTokenizer, byte-level BPE through the extensions' tokenizer.json
    reader, Unigram through SentencepieceTokenizer; anything else refused in one line that says
    what to package instead."""
    tokenizer_json = Path(tokenizer_json)
    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    if (spec.get("model") or {}).get("type") == "Unigram":
        return sentencepiece_attributes(spec, tokenizer_json, max_length, pairs), None
    if (spec.get("model") or {}).get("type") != "BPE":
        return (bert_tokenizer_attributes(tokenizer_json, max_length, pairs),
                normaliser_table(tokenizer_json))
    if pairs:
        raise KdeployError(f"{tokenizer_json}: a BPE tokenizer's pair template (<s> a </s></s> b </s>) is not built "
                           "in the graph; package a pair model of this tokenizer as python or web")
    if spec.get("truncation") or spec.get("padding"):
        spec = {**spec, "truncation": None, "padding": None}  # kdeploy cuts and pads, after the op
    config_path = tokenizer_json.parent / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    config["model_max_length"] = 1 << 30  # the op would cut by its own rule: the cut is kdeploy.truncation's
    # The op picks its code path by class name and knows few (not RobertaTokenizer, as every fine-tuned
    # RoBERTa's config says, nor transformers 5's TokenizersBackend); the tokenizer.json given beside it
    # is the whole tokenizer, which is what the generic class reads. The token-parity gate checks the result.
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    return {"op": JSON_OP, "tokenizer_config": json.dumps(config), "tokenizer_vocab": json.dumps(spec),
            "max_length": int(max_length)}, None


def bert_tokenizer_attributes(tokenizer_json: Path, max_length: int, pairs: bool = False) -> dict:
    """The op's attributes, or KdeployError naming what the op cannot reproduce."""
    spec = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    model, norm, pre = spec.get("model") or {}, spec.get("normalizer") or {}, spec.get("pre_tokenizer") or {}
    why = ("the in-graph tokenizer (onnxruntime-extensions BertTokenizer) reproduces WordPiece tokenizers with "
           "BERT's normaliser only")
    if model.get("type") != "WordPiece":
        raise KdeployError(f"{tokenizer_json}: a {model.get('type')} tokenizer; the in-graph tokenizer reproduces "
                           "WordPiece (BERT's normaliser), byte-level BPE and Unigram tokenizers only. Package the python or web "
                           "format instead")
    if norm.get("type") != "BertNormalizer" or pre.get("type") != "BertPreTokenizer":
        raise KdeployError(f"{tokenizer_json}: normaliser {norm.get('type')}, pre-tokeniser {pre.get('type')}; {why}")
    if not norm.get("clean_text", True):
        raise KdeployError(f"{tokenizer_json}: clean_text is off; {why} (which always cleans)")
    vocab = model.get("vocab") or {}
    ordered = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in ordered] != list(range(len(ordered))):
        raise KdeployError(f"{tokenizer_json}: the vocabulary's ids are not 0..{len(ordered) - 1}; {why}")
    if any("\n" in token for token, _ in ordered):
        raise KdeployError(f"{tokenizer_json}: a vocabulary entry contains a newline; the op reads one token per line")
    specials = _special_tokens(spec, tokenizer_json, pairs)
    unk = model.get("unk_token", "[UNK]")
    for role in ("pad", "mask"):  # the op looks them up by name; MPNet's are <pad>/<mask>, BERT's [PAD]/[MASK]
        named = [a["content"] for a in spec.get("added_tokens", []) if a.get("special") and role in a["content"].lower()
                 and a["content"] in vocab]
        specials[f"{role}_token"] = named[0] if named else unk  # never produced from text: any token in the vocabulary
    return {"vocab_file": "\n".join(t for t, _ in ordered), "do_lower_case": 0, "strip_accents": 0,
            "tokenize_chinese_chars": int(bool(norm.get("handle_chinese_chars", True))),
            "suffix_indicator": model.get("continuing_subword_prefix", "##"),
            "unk_token": unk, **specials, "max_length": int(max_length),
            "truncation_strategy_name": "longest_first"}


def _special_tokens(spec: dict, where: Path, pairs: bool = False) -> dict:
    """[CLS] text [SEP] (and [CLS] a [SEP] b [SEP]) is all the op can add around the words.
    RoBERTa's post-processor (MPNet's tokenizer: WordPiece with <s> … </s>) is the same shape
    for one text; its pairs (<s> a </s></s> b </s>) are not."""
    post = spec.get("post_processor") or {}
    if post.get("type") == "BertProcessing" or (post.get("type") == "RobertaProcessing" and not pairs):
        return {"cls_token": post["cls"][0], "sep_token": post["sep"][0]}
    if post.get("type") == "RobertaProcessing":
        raise KdeployError(f"{where}: RoBERTa's pair template (<s> a </s></s> b </s>) is not the in-graph tokenizer's "
                           "[CLS] a [SEP] b [SEP]; package a pair model of this tokenizer as python")
    if post.get("type") == "TemplateProcessing":
        single = [next(iter(piece.values()))["id"] for piece in post.get("single", [])]
        if len(single) == 3 and single[1] == "A":
            return {"cls_token": single[0], "sep_token": single[2]}
    raise KdeployError(f"{where}: its post-processor ({post.get('type')}) is not BERT's [CLS] … [SEP]; the in-graph "
                       "tokenizer cannot add its special tokens")


UNKNOWN, DELETED = "\ue000", "\ue001"  # private-use markers (real private-use text is deleted before)


def normaliser_table(tokenizer_json: Path) -> tuple[str, str, str]:
    """("char<TAB>replacement" lines, the unknown-word pattern, its rewrite), computed with the
    `tokenizers` library's own normaliser, one character at a time, over every assigned code
    point: what BertNormalizer makes of the character, with characters that BERT deletes
    written as DELETED and characters no vocabulary entry contains written as UNKNOWN.

    UNKNOWN exists because BERT's WordPiece turns a word with such a character into a single
    [UNK], while the op keeps the pieces it matched before failing ("great😀" → great [UNK]);
    moving UNKNOWN to the front of its word makes the op fail at once, giving [UNK] alone.
    Chinese characters are left to the op (it spaces them the same way)."""
    import sys
    import unicodedata

    from tokenizers import normalizers

    spec = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    norm, model = spec["normalizer"], spec["model"]
    suffix = model.get("continuing_subword_prefix", "##")
    bert = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False,
                                      strip_accents=norm.get("strip_accents"), lowercase=norm.get("lowercase", True))
    known = {ch for token in model["vocab"] for ch in (token[len(suffix):] if token.startswith(suffix) else token)}

    def spelled(ch: str) -> str:  # one character of normalised text as the op should see it
        if ch in known or ch == " " or _is_punctuation(ch) or _is_cjk(ord(ch)):
            return ch
        return UNKNOWN

    lines: list[str] = []
    for cp in range(sys.maxunicode + 1):
        c = chr(cp)
        category = unicodedata.category(c)
        if category in ("Cs", "Co") or c in "\t\n\r" or _is_cjk(cp):
            continue  # surrogates; private use (deleted by a regex first); tabs (a regex); CJK (the op)
        out = bert.normalize_str(c)
        if category == "Cn" and out == c:
            continue  # unassigned and left alone: too many to list (the op sees it as it is)
        out = "".join(spelled(ch) for ch in out) if out else DELETED
        if out != c:
            lines.append(f"{c}\t{out}")
    word = f"[^ {alone_class()}]"
    marker = f"\\x{{{ord(UNKNOWN):X}}}"
    return "\n".join(lines), f"({word}*?){marker}", UNKNOWN + "\\1"  # a rewrite is literal text


def _is_punctuation(ch: str) -> bool:
    import unicodedata

    return ch in ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return any(a <= cp <= b for a, b in CJK)


CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
       (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]
ASCII_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def alone_class() -> str:
    """The body of a regex class of the characters BERT's pre-tokenizer makes words of their own:
    punctuation (Unicode's and ASCII's symbols) and CJK ideographs."""
    cjk = "".join(f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in CJK)
    return f"\\p{{P}}{char_class(ord(ch) for ch in ASCII_PUNCT)}{cjk}"


def char_class(codepoints) -> str:
    points, parts, start = sorted(set(codepoints)), [], None
    for i, cp in enumerate(points):
        start = cp if start is None else start
        if i + 1 == len(points) or points[i + 1] != cp + 1:
            parts.append(f"\\x{{{start:X}}}" + (f"-\\x{{{cp:X}}}" if cp != start else ""))
            start = None
    return "".join(parts)


def tokenizer_nodes(attributes: dict, table: tuple[str, str, str], text: str, outputs: tuple[str, str, str],
                    pairs: bool = False, prefix: str = "kdeploy_tok_", pair_truncation: str = "longest_first",
                    truncation: str = "head") -> list:
    """Nodes taking `text` (string [1], or [2] for a pair) to the three [L] id tensors; a long
    single text cut by `truncation` (kdeploy.truncation), a pair by `pair_truncation`."""
    from onnx import TensorProto, helper

    if attributes.get("op") in (JSON_OP, SPM_OP):
        return _whole_text_op_nodes(attributes, text, outputs, truncation, prefix)
    mapping, unknown, rewrite = table
    p = prefix

    def const(name, value, dtype=TensorProto.STRING, dims=(1,)):
        raw = [value.encode("utf-8")] if dtype == TensorProto.STRING else [value]
        return helper.make_node("Constant", [], [p + name], value=helper.make_tensor(p + name + "_v", dtype, dims, raw))

    nodes = [const("ws", "[\\t\\n\\r]"), const("space", " "), const("private", "\\p{Co}"), const("nothing", ""),
             const("char", "(.)"), const("sep", "", dims=()), const("axis", 0, TensorProto.INT64, ()),
             const("one", 1, TensorProto.INT64, (1,)), const("deleted", f"\\x{{{ord(DELETED):X}}}"),
             const("unknown", unknown), const("rewrite", rewrite)]

    def normalise(src: str, tag: str) -> str:
        """Every regex here is small: the ops compile their pattern on each call."""
        t = p + tag

        def replace(inp, pattern, by, out):
            return helper.make_node("StringRegexReplace", [inp, p + pattern, p + by], [t + out], domain=DOMAIN)

        nodes.extend([
            replace(src, "ws", "space", "spaced"), replace(t + "spaced", "private", "nothing", "public"),
            helper.make_node("StringRegexSplitWithOffsets", [t + "public", p + "char", p + "char"],
                             [t + "chars", t + "b", t + "e", t + "rows"], domain=DOMAIN),
            helper.make_node("StringMapping", [t + "chars"], [t + "mapped"], domain=DOMAIN, map=mapping),
            helper.make_node("StringJoin", [t + "mapped", p + "sep", p + "axis"], [t + "joined"], domain=DOMAIN),
            helper.make_node("Reshape", [t + "joined", p + "one"], [t + "flat"]),
            replace(t + "flat", "deleted", "nothing", "kept"), replace(t + "kept", "unknown", "rewrite", "normalised")])
        return t + "normalised"

    if pairs:  # [first, second]: each normalised, then [CLS] a [SEP] b [SEP] by the op
        halves = []
        for k in (0, 1):
            nodes.append(const(f"i{k}", k, TensorProto.INT64, (1,)))
            nodes.append(helper.make_node("Gather", [text, p + f"i{k}"], [p + f"half{k}"], axis=0))
            halves.append(normalise(p + f"half{k}", f"h{k}_"))
        nodes.append(helper.make_node("Concat", halves, [p + "normalised_pair"], axis=0))
        whole = tuple(p + "whole_" + o for o in ("ids", "types", "mask"))
        nodes.append(helper.make_node("BertTokenizer", [p + "normalised_pair"], list(whole), name=p + "wordpiece",
                                      domain=DOMAIN, **{**attributes, "max_length": -1}))
        nodes.extend(pair_truncation_nodes(whole, outputs, attributes["max_length"], pair_truncation, p + "cut_"))
        return nodes
    source = normalise(text, "")
    nodes.extend(_single_text_nodes(attributes, source, outputs, truncation, p))
    return nodes


def _whole_text_op_nodes(attributes: dict, text: str, outputs: tuple[str, str, str], truncation: str,
                         p: str) -> list:
    """An op that reads one whole text to its ids, specials included (the extensions' tokenizer.json
    reader for BPE, SentencepieceTokenizer for Unigram), a mask of ones and zero types, then
    kdeploy.truncation's cut (one special before, one after)."""
    from onnx import TensorProto, helper

    whole = tuple(p + "whole_" + o for o in ("ids", "types", "mask"))
    if attributes["op"] == SPM_OP:
        nodes, ids = sentencepiece_nodes(attributes, text, p)
    else:
        op = {k: v for k, v in attributes.items() if k in ("tokenizer_config", "tokenizer_vocab")}
        nodes = [helper.make_node(JSON_OP, [text], [p + "ids2d"], name=p + "hf_json", domain=DOMAIN, **op)]
        ids = p + "ids2d"
    nodes += [helper.make_node("Constant", [], [p + "flat"], value=helper.make_tensor(p + "flat_v", TensorProto.INT64,
                                                                                      [1], [-1])),
              helper.make_node("Reshape", [ids, p + "flat"], [whole[0]]),
              helper.make_node("Shape", [whole[0]], [p + "cut_length"]),
             helper.make_node("ConstantOfShape", [p + "cut_length"], [whole[1]],
                              value=helper.make_tensor(p + "zero_v", TensorProto.INT64, [1], [0])),
             helper.make_node("ConstantOfShape", [p + "cut_length"], [whole[2]],
                              value=helper.make_tensor(p + "one_v", TensorProto.INT64, [1], [1]))]
    max_length = attributes["max_length"]
    index_nodes, index = cut_index_nodes(p + "cut_length", p + "cut_length", max_length,
                                         keep_first(truncation, max_length), p + "cut_", rows=False)
    return nodes + index_nodes + [helper.make_node("Gather", [src, index], [dst], axis=0)
                                  for src, dst in zip(whole, outputs)]


def _single_text_nodes(attributes: dict, source: str, outputs: tuple[str, str, str], truncation: str, p: str) -> list:
    """WordPiece over one normalised text, cut by `truncation`: the op's own cut for head
    (first max_length-1 tokens, then [SEP]); the whole text then kdeploy.truncation's rule
    for tail and head+tail."""
    from onnx import helper

    if truncation == "head":
        return [helper.make_node("BertTokenizer", [source], list(outputs), name=p + "wordpiece", domain=DOMAIN,
                                 **attributes)]
    whole = tuple(p + "whole_" + o for o in ("ids", "types", "mask"))
    max_length = attributes["max_length"]
    first = keep_first(truncation, max_length)  # the op adds [CLS] before and [SEP] after: 1 and 1
    nodes = [helper.make_node("BertTokenizer", [source], list(whole), name=p + "wordpiece", domain=DOMAIN,
                              **{**attributes, "max_length": -1}),
             helper.make_node("Shape", [whole[0]], [p + "cut_length"])]
    index_nodes, index = cut_index_nodes(p + "cut_length", p + "cut_length", max_length, first, p + "cut_", rows=False)
    nodes += index_nodes
    return nodes + [helper.make_node("Gather", [src, index], [dst], axis=0) for src, dst in zip(whole, outputs)]


def cut_index_nodes(lengths: str, padded: str, max_length: int, first: int, p: str, rows: bool) -> tuple[list, str]:
    """Nodes computing which positions each text keeps (kdeploy.truncation's rule as a graph):
    position j of the output reads j, or j + length - max_length from `first` on when the
    text is longer than max_length. `lengths`: each text's real length ([1], or [B, 1] with
    `rows`); `padded`: the input's length ([1]). Returns (nodes, the index tensor's name):
    [m] or [B, m] with m = min(padded, max_length), for Gather / GatherElements."""
    from onnx import TensorProto, helper

    i64 = TensorProto.INT64

    def const(name, value):
        return helper.make_node("Constant", [], [p + name], value=helper.make_tensor(p + name + "_v", i64, [1], [value]))

    nodes = [const("max", max_length), const("first", first), const("zero", 0), const("step", 1),
             helper.make_node("Min", [padded, p + "max"], [p + "m"]),
             helper.make_node("Squeeze", [p + "m"], [p + "m0"]), helper.make_node("Squeeze", [p + "zero"], [p + "z0"]),
             helper.make_node("Squeeze", [p + "step"], [p + "s0"]),
             helper.make_node("Range", [p + "z0", p + "m0", p + "s0"], [p + "j1"]),
             helper.make_node("Unsqueeze", [p + "j1", p + "zero"], [p + "j"]) if rows else
             helper.make_node("Identity", [p + "j1"], [p + "j"]),
             helper.make_node("Greater", [lengths, p + "max"], [p + "over"]),
             helper.make_node("Cast", [p + "over"], [p + "over64"], to=i64),
             helper.make_node("Sub", [lengths, p + "max"], [p + "excess"]),
             helper.make_node("Mul", [p + "over64", p + "excess"], [p + "shift"]),
             helper.make_node("GreaterOrEqual", [p + "j", p + "first"], [p + "late"]),
             helper.make_node("Cast", [p + "late"], [p + "late64"], to=i64),
             helper.make_node("Mul", [p + "late64", p + "shift"], [p + "moved"]),
             helper.make_node("Add", [p + "j", p + "moved"], [p + "index"])]
    return nodes, p + "index"


def pair_truncation_nodes(whole: tuple[str, str, str], outputs: tuple[str, str, str], max_length: int,
                          strategy: str, p: str) -> list:
    """[CLS] a [SEP] b [SEP] cut to max_length as the `tokenizers` library does (the op's own
    pair truncation does not): longest_first keeps the shorter text whole when it fits in half
    the budget and cuts the longer to the rest, else gives each half (the longer one the odd
    token); only_first / only_second cut that text alone."""
    from onnx import TensorProto, helper

    ids, types, mask = whole
    i64 = TensorProto.INT64

    def const(name, value):
        return helper.make_node("Constant", [], [p + name], value=helper.make_tensor(p + name + "_v", i64, [], [value]))

    def op(kind, inputs, out, **kw):
        return helper.make_node(kind, [x if x in whole else p + x for x in inputs], [p + out], **kw)

    budget = max(max_length - 3, 0)
    nodes = [const("zero", 0), const("one", 1), const("two", 2), const("budget", budget), const("half", budget // 2),
             const("half_up", budget // 2 + budget % 2), const("axes0", 0),
             op("Shape", [ids], "shape"), op("Gather", ["shape", "zero"], "length", axis=0),
             op("Equal", [types, "zero"], "is_a"), op("Cast", ["is_a"], "is_a64", to=i64),
             op("ReduceSum", ["is_a64"], "a_all", keepdims=0), op("Sub", ["a_all", "two"], "na"),
             op("Sub", ["length", "a_all"], "b_all"), op("Sub", ["b_all", "one"], "nb")]
    if strategy == "longest_first":
        nodes += [op("Min", ["na", "nb"], "short"), op("Max", ["na", "nb"], "long"),
                  op("Sub", ["budget", "short"], "rest"), op("Max", ["short", "rest"], "long_fit"),
                  op("Greater", ["short", "budget"], "short_over"),
                  op("Where", ["short_over", "short", "long_fit"], "long_t"),
                  op("Add", ["short", "long_t"], "sum_t"), op("Greater", ["sum_t", "budget"], "halve"),
                  op("Where", ["halve", "half", "short"], "short_k"),
                  op("Where", ["halve", "half_up", "long_t"], "long_k"),
                  op("Greater", ["na", "nb"], "a_longer"),
                  op("Where", ["a_longer", "long_k", "short_k"], "ka_raw"),
                  op("Where", ["a_longer", "short_k", "long_k"], "kb_raw")]
    elif strategy == "only_first":
        nodes += [op("Sub", ["budget", "nb"], "ka_free"), op("Max", ["ka_free", "zero"], "ka_raw"),
                  op("Identity", ["nb"], "kb_raw")]
    else:
        nodes += [op("Sub", ["budget", "na"], "kb_free"), op("Max", ["kb_free", "zero"], "kb_raw"),
                  op("Identity", ["na"], "ka_raw")]
    nodes += [op("Min", ["ka_raw", "na"], "ka"), op("Min", ["kb_raw", "nb"], "kb"),
              op("Add", ["ka", "one"], "a_end"), op("Range", ["zero", "a_end", "one"], "keep_a"),
              op("Add", ["na", "one"], "sep_a"), op("Unsqueeze", ["sep_a", "axes0"], "sep_a1"),
              op("Add", ["na", "two"], "b_start"), op("Add", ["b_start", "kb"], "b_end"),
              op("Range", ["b_start", "b_end", "one"], "keep_b"),
              op("Sub", ["length", "one"], "last"), op("Unsqueeze", ["last", "axes0"], "last1"),
              op("Concat", ["keep_a", "sep_a1", "keep_b", "last1"], "keep", axis=0)]
    for src, dst in zip(whole, outputs):
        nodes.append(helper.make_node("Gather", [src, p + "keep"], [dst], axis=0))
    return nodes


def tokenizer_model(attributes: dict, table: tuple[str, str, str], pairs: bool = False, opset: int = 17,
                    pair_truncation: str = "longest_first", truncation: str = "head"):
    """The tokenizer alone (one text, or one pair, in; ids out): what the parity gate compares."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(tokenizer_nodes(attributes, table, "text", OUTPUTS, pairs, pair_truncation=pair_truncation,
                                              truncation=truncation),
                              "kdeploy_tokenizer",
                              [helper.make_tensor_value_info("text", TensorProto.STRING, [None])],
                              [helper.make_tensor_value_info(n, TensorProto.INT64, [None]) for n in OUTPUTS])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(DOMAIN, 1)])
