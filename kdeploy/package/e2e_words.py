"""An entity tagger in one ONNX file: a text in, its entities with character offsets out, so an
app in C, Java, C# or on a phone gets spans with onnxruntime and its extensions alone.

    text: string [1]
      ├─ each character → what BertNormalizer makes of it (the classifier graph's StringMapping table)
      ├─ words: runs of characters between spaces, with punctuation and CJK characters words of
      │  their own (BertPreTokenizer's rule), each with the index of its first and last character
      ├─ WordpieceTokenizer per word (a word with a character no vocabulary entry has: [UNK] alone),
      │  LabelEncoder → ids
      ├─ the model on each window of max_length - 2 tokens between [CLS] and [SEP] (a Loop; a
      │  quarter of each shared with the next, each token from the window that gives it the most
      │  context: the python bundle's rule) → softmax; each word read at its first sub-token
      └─ entities grouped as transformers' pipeline groups words (B-X starts one, I-X continues its
         type, I-X after O or another type starts one); a score is the mean of its words'
    entity: string [E], start: int64 [E], end: int64 [E], score: float [E]
    word_start, word_end: int64 [W], probabilities: float [W, C] (every word of the text)

Offsets count Unicode code points (Python's `str` indices), as the python bundle's do; a text of
any length is read whole. Built for WordPiece (BERT-normalised) tokenizers; the package gate
compares its spans with the python bundle's on the validation split and the hostile texts (a
1 MB one among them) before it ships.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import KdeployError
from ..tasks.tokens import E2E_OUTPUTS as OUTPUTS
from .tokenizer_graph import DELETED, DOMAIN, UNKNOWN, alone_class

INPUT = "text"
ML_DOMAIN = "ai.onnx.ml"


class _Nodes:
    """A node list with names under one prefix (the model's own names are never taken)."""

    def __init__(self, prefix: str):
        self.p, self.nodes = prefix, []

    def op(self, kind: str, inputs: list[str], n_out: int = 1, domain: str = "", **attrs):
        outs = [f"{self.p}{kind.lower()}{len(self.nodes)}_{k}" for k in range(n_out)]
        self.nodes.append(_make(kind, inputs, outs, domain, attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, value, dtype: str = "int64", dims: tuple = (1,)) -> str:
        from onnx import TensorProto, helper

        kinds = {"int64": TensorProto.INT64, "string": TensorProto.STRING, "bool": TensorProto.BOOL,
                 "float": TensorProto.FLOAT}
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if dtype == "string":
            values = [v.encode("utf-8") for v in values]
        name = f"{self.p}const{len(self.nodes)}"
        self.nodes.append(helper.make_node("Constant", [], [name], value=helper.make_tensor(
            name + "_v", kinds[dtype], list(dims) if dims else [], values)))
        return name

    def shifted(self, x: str, fill: str, later: bool) -> str:
        """x moved one place (x[i-1] at i when `later`, else x[i+1]), `fill` where nothing was;
        as long as x (an empty x stays empty)."""
        n = self.op("Shape", [x])
        if later:
            return self.op("Slice", [self.op("Concat", [fill, x], axis=0), self.const(0), n])
        return self.op("Slice", [self.op("Concat", [x, fill], axis=0), self.const(1),
                                 self.op("Add", [n, self.const(1)])])

    def positions(self, x: str) -> str:
        """0, 1, …, len(x) - 1."""
        return self.op("Range", [self.op("Squeeze", [self.const(0)]), self.op("Squeeze", [self.op("Shape", [x])]),
                                 self.op("Squeeze", [self.const(1)])])

    def length_zero(self, strings: str) -> str:
        return self.op("Equal", [self.op("StringLength", [strings], domain=DOMAIN), self.const(0)])


def _make(kind, inputs, outputs, domain, attrs):
    from onnx import helper

    return helper.make_node(kind, inputs, outputs, domain=domain or None, **attrs)


def wordpiece_vocab(tokenizer_json: Path) -> tuple[dict, dict]:
    """(the vocabulary, WordPiece's settings) of a BERT-style tokenizer.json, or one line saying
    why this graph cannot reproduce it."""
    spec = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    model = spec.get("model") or {}
    if model.get("type") != "WordPiece":
        raise KdeployError(f"{tokenizer_json}: a {model.get('type')} tokenizer; an entity tagger's e2e graph is built "
                           "for WordPiece (BERT-normalised) tokenizers only; package it as python")
    return model["vocab"], {"unk": model.get("unk_token", "[UNK]"), "prefix": model.get("continuing_subword_prefix", "##"),
                            "max_chars": int(model.get("max_input_chars_per_word", 100))}


def build_tagger_e2e(model_path: Path, tokenizer_json: Path, table: tuple[str, str, str], label_names: list[str],
                     max_length: int, cls_id: int, sep_id: int):
    """The ModelProto around the per-token ONNX model at `model_path` (inputs input_ids,
    attention_mask[, token_type_ids]; output per-token logits)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(model_path))
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    feeds = [i.name for i in graph.input if i.name not in initializers]
    if "input_ids" not in feeds or set(feeds) - {"input_ids", "attention_mask", "token_type_ids"}:
        raise KdeployError(f"{model_path.name}: inputs {feeds}; the e2e graph feeds input_ids, attention_mask and "
                           "token_type_ids only")
    taken = {v for node in graph.node for v in (*node.input, *node.output)} | initializers | set(feeds)
    prefix = "kdeploy_words_"
    while any(name.startswith(prefix) for name in taken):
        prefix = "_" + prefix
    g = _Nodes(prefix)
    word_start, word_end, words = _words(g, table[0])
    ids, first = _wordpiece(g, words, tokenizer_json)
    word_probs = g.op("Gather", [_windows(g, ids, graph, feeds, max_length, len(label_names), cls_id, sep_id), first],
                      axis=0)
    outputs = {**_entities(g, word_probs, word_start, word_end, label_names),
               "word_start": word_start, "word_end": word_end, "probabilities": word_probs}
    g.nodes += [helper.make_node("Identity", [value], [name]) for name, value in outputs.items()]
    kinds = {"entity": TensorProto.STRING, "score": TensorProto.FLOAT, "probabilities": TensorProto.FLOAT}
    shapes = {"probabilities": [None, len(label_names)]}
    e2e = helper.make_graph(
        g.nodes, "kdeploy_tagger_e2e", [helper.make_tensor_value_info(INPUT, TensorProto.STRING, [1])],
        [helper.make_tensor_value_info(n, kinds.get(n, TensorProto.INT64), shapes.get(n, [None])) for n in OUTPUTS])
    imports = [o for o in model.opset_import if o.domain not in (DOMAIN, ML_DOMAIN)]
    imports += [helper.make_opsetid(DOMAIN, 1), helper.make_opsetid(ML_DOMAIN, 2)]
    out = helper.make_model(e2e, opset_imports=imports, ir_version=model.ir_version, producer_name="kdeploy",
                            doc_string="text in, entities out: tokenizer + tagger + grouping")
    out.metadata_props.extend(model.metadata_props)
    return out


def _words(g: _Nodes, mapping: str) -> tuple[str, str, str]:
    """(first character, one past the last, the normalised word) of each word of `text`: each
    character as BertNormalizer writes it (a deleted one is no character at all), then runs of
    characters between spaces, punctuation and CJK characters words of their own."""
    spaced = g.op("StringRegexReplace", [INPUT, g.const("[\\t\\n\\r]", "string"), g.const(" ", "string")],
                  domain=DOMAIN)
    chars = g.op("StringRegexSplitWithOffsets", [spaced, g.const("(.)", "string"), g.const("(.)", "string")],
                 n_out=4, domain=DOMAIN)[0]
    public = g.op("StringRegexReplace", [chars, g.const("\\p{Co}", "string"), g.const("", "string")], domain=DOMAIN)
    mapped = g.op("StringMapping", [public], domain=DOMAIN, map=mapping)
    mapped = g.op("StringRegexReplace", [mapped, g.const(f"\\x{{{ord(DELETED):X}}}", "string"),
                                         g.const("", "string")], domain=DOMAIN)
    kept = g.op("Not", [g.length_zero(mapped)])
    index = g.op("Compress", [g.positions(chars), kept], axis=0)
    mapped = g.op("Compress", [mapped, kept], axis=0)
    blank = g.length_zero(g.op("StringRegexReplace", [mapped, g.const("^\\s+$", "string"), g.const("", "string")],
                               domain=DOMAIN))
    alone = g.length_zero(g.op("StringRegexReplace", [mapped, g.const(f"^[{alone_class()}]$", "string"),
                                                      g.const("", "string")], domain=DOMAIN))
    word = g.op("Not", [blank])
    alone = g.op("And", [alone, word])
    false = g.const(False, "bool")
    edges = [g.op("And", [word, g.op("Or", [g.op("Or", [g.op("Not", [g.shifted(word, false, later)]), alone]),
                                            g.shifted(alone, false, later)])]) for later in (True, False)]
    word_start = g.op("Compress", [index, edges[0]], axis=0)
    word_end = g.op("Add", [g.op("Compress", [index, edges[1]], axis=0), g.const(1)])
    # The words' strings: a space before each word's first character, blanks dropped, split on spaces.
    lead = g.op("Where", [edges[0], g.const(" ", "string"), g.const("", "string")])
    pieces = g.op("StringConcat", [lead, g.op("Where", [word, mapped, g.const("", "string")])], domain=DOMAIN)
    joined = g.op("StringJoin", [pieces, g.const("", "string", ()), g.const(0, "int64", ())], domain=DOMAIN)
    words = g.op("StringSplit", [g.op("Reshape", [joined, g.const(1)]), g.const(" ", "string"),
                                 g.const(True, "bool", ())], n_out=3, domain=DOMAIN)[1]
    return word_start, word_end, words


def _wordpiece(g: _Nodes, words: str, tokenizer_json: Path) -> tuple[str, str]:
    """(token ids, each word's first token's index). BERT's WordPiece makes a word with an unknown
    character one [UNK]; the op would keep the pieces it matched before failing, so such a word
    is given to it as the marker alone."""
    vocab, wp = wordpiece_vocab(tokenizer_json)
    words = g.op("StringRegexReplace", [words, g.const(f"^.*\\x{{{ord(UNKNOWN):X}}}.*$", "string"),
                                        g.const(UNKNOWN, "string")], domain=DOMAIN)
    tokens, _, first, _ = g.op("WordpieceTokenizer", [words, g.const([], "int64", (0,))], n_out=4, domain=DOMAIN,
                               vocab=json.dumps(vocab, ensure_ascii=False), suffix_indicator=wp["prefix"],
                               unknown_token=wp["unk"], max_input_chars_per_word=wp["max_chars"])
    names = sorted(vocab, key=vocab.get)
    ids = g.op("LabelEncoder", [tokens], domain=ML_DOMAIN, keys_strings=names,
               values_int64s=[int(vocab[n]) for n in names], default_int64=int(vocab[wp["unk"]]))
    return ids, first


def _entities(g: _Nodes, word_probs: str, word_start: str, word_end: str, label_names: list[str]) -> dict:
    """The words' tags grouped as the pipeline groups them (`kdeploy.tasks.tokens.word_spans`):
    entity, start, end and score (the mean of its words' tag probabilities)."""
    from onnx import TensorProto

    from ..tasks.tokens import OUTSIDE, tag_type

    types = sorted({tag_type(t)[1] for t in label_names if t != OUTSIDE})
    type_of = [0 if t == OUTSIDE else 1 + types.index(tag_type(t)[1]) for t in label_names]
    inside_of = [t != OUTSIDE and tag_type(t)[0] == "I" for t in label_names]
    best = g.op("ArgMax", [word_probs], axis=1, keepdims=0)
    score = g.op("Squeeze", [g.op("GatherElements", [word_probs, g.op("Unsqueeze", [best, g.const(1)])], axis=1),
                             g.const(1)])
    kind = g.op("Gather", [g.const(type_of, "int64", (len(type_of),)), best], axis=0)
    inside = g.op("Gather", [g.const(inside_of, "bool", (len(inside_of),)), best], axis=0)
    tagged = g.op("Greater", [kind, g.const(0)])
    same_before = g.op("Equal", [kind, g.shifted(kind, g.const(0), True)])
    starts = g.op("And", [tagged, g.op("Not", [g.op("And", [inside, same_before])])])
    continues = g.op("And", [g.op("Equal", [kind, g.shifted(kind, g.const(0), False)]),
                             g.shifted(inside, g.const(False, "bool"), False)])
    position = g.positions(kind)
    a = g.op("Compress", [position, starts], axis=0)
    b = g.op("Compress", [position, g.op("And", [tagged, g.op("Not", [continues])])], axis=0)
    score64 = g.op("Cast", [score], to=TensorProto.DOUBLE)  # a running sum in float32 lost 1e-5 over long texts
    total = g.op("CumSum", [score64, g.const(0, "int64", ())])
    sums = g.op("Add", [g.op("Sub", [g.op("Gather", [total, b], axis=0), g.op("Gather", [total, a], axis=0)]),
                        g.op("Gather", [score64, a], axis=0)])
    sizes = g.op("Cast", [g.op("Add", [g.op("Sub", [b, a]), g.const(1)])], to=TensorProto.DOUBLE)
    return {"entity": g.op("Gather", [g.const(["O", *types], "string", (len(types) + 1,)),
                                      g.op("Gather", [kind, a], axis=0)], axis=0),
            "start": g.op("Gather", [word_start, a], axis=0),
            "end": g.op("Gather", [word_end, b], axis=0),
            "score": g.op("Cast", [g.op("Div", [sums, sizes])], to=TensorProto.FLOAT)}


def _windows(g: _Nodes, ids: str, graph, feeds: list[str], max_length: int, width: int, cls_id: int,
             sep_id: int) -> str:
    """Softmax rows [T, width] for all T tokens: the model run on each window of max_length - 2
    tokens between [CLS] and [SEP] (a quarter shared with the next, in a Loop whose body holds
    the weights, so onnxruntime pre-packs them), each token's row taken from the window where it
    sits furthest from an edge, the earlier on a tie: `kdeploy.truncation.windows` and `owners`,
    the python bundle's rule, in closed form (a token lies in at most two windows)."""
    from onnx import TensorProto, helper

    body, i64 = max_length - 2, TensorProto.INT64
    step = body - body // 4
    n = g.op("Shape", [ids])
    extra = g.op("Max", [g.op("Sub", [n, g.const(body)]), g.const(0)])
    count = g.op("Add", [g.op("Div", [g.op("Add", [extra, g.const(step - 1)]), g.const(step)]), g.const(1)])

    w = _Nodes(g.p + "win_")
    a = w.op("Mul", [w.op("Unsqueeze", [g.p + "w", w.const(0)]), w.const(step)])
    b = w.op("Min", [w.op("Add", [a, w.const(body)]), n])
    row = w.op("Concat", [w.const(cls_id), w.op("Slice", [ids, a, b]), w.const(sep_id)], axis=0)
    fed = {"input_ids": w.op("Unsqueeze", [row, w.const(0)])}
    shape = w.op("Shape", [fed["input_ids"]])
    fed["attention_mask"] = w.op("ConstantOfShape", [shape], value=helper.make_tensor("one", i64, [1], [1]))
    fed["token_type_ids"] = w.op("ConstantOfShape", [shape], value=helper.make_tensor("zero", i64, [1], [0]))
    w.nodes += [helper.make_node("Identity", [fed[name]], [name]) for name in feeds]
    w.nodes.extend(graph.node)
    logits = w.op("Cast", [graph.output[0].name], to=TensorProto.FLOAT)
    probs = w.op("Squeeze", [w.op("Softmax", [logits], axis=-1), w.const(0)])
    short = w.op("Sub", [w.const(max_length), w.op("Gather", [w.op("Shape", [probs]), w.const(0)], axis=0)])
    pads = w.op("Concat", [w.const([0, 0], "int64", (2,)), short, w.const(0)], axis=0)
    padded = w.op("Pad", [probs, pads])
    w.nodes.append(helper.make_node("Identity", [g.p + "cond"], [g.p + "cond_out"]))
    w.nodes.append(helper.make_node("Identity", [padded], [g.p + "window"]))
    loop_body = helper.make_graph(
        w.nodes, "kdeploy_window",
        [helper.make_tensor_value_info(g.p + "w", i64, []), helper.make_tensor_value_info(g.p + "cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info(g.p + "cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info(g.p + "window", TensorProto.FLOAT, [max_length, width])],
        initializer=list(graph.initializer))
    scanned = g.op("Loop", [g.op("Squeeze", [count, g.const(0)]), g.const(True, "bool", ())], body=loop_body)

    # Each token's window: j // step or the one before it, whichever leaves it more context.
    j = g.positions(ids)
    last = g.op("Sub", [count, g.const(1)])

    def margin(win):
        start = g.op("Mul", [win, g.const(step)])
        end = g.op("Min", [g.op("Add", [start, g.const(body)]), n])
        return g.op("Min", [g.op("Sub", [j, start]), g.op("Sub", [g.op("Sub", [end, g.const(1)]), j])]), end

    later = g.op("Min", [g.op("Div", [j, g.const(step)]), last])
    earlier = g.op("Sub", [later, g.const(1)])
    m_later, _ = margin(later)
    m_earlier, end_earlier = margin(earlier)
    inside = g.op("And", [g.op("GreaterOrEqual", [earlier, g.const(0)]), g.op("Less", [j, end_earlier])])
    m_earlier = g.op("Where", [inside, m_earlier, g.const(-1)])
    owner = g.op("Where", [g.op("GreaterOrEqual", [m_earlier, m_later]), earlier, later])
    position = g.op("Add", [g.op("Sub", [j, g.op("Mul", [owner, g.const(step)])]), g.const(1)])
    at = g.op("Concat", [g.op("Unsqueeze", [owner, g.const(1)]), g.op("Unsqueeze", [position, g.const(1)])], axis=1)
    return g.op("GatherND", [scanned, at])
