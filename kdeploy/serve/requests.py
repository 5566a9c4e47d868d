"""What a request may hold, checked before the model sees it (pure Python: tested without Ray).

The shapes are text-embeddings-inference's, so its clients work unchanged:
    POST /predict {"inputs": "text"}            -> [{"label", "score"}, ...] (best first)
    POST /predict {"inputs": ["t1", "t2"]}      -> one such list per text
    POST /predict {"inputs": [["a", "b"], ...]} -> one list per pair (a pair bundle)
    POST /rerank  {"query": "q", "texts": [...]} -> [{"index", "score"}] best first (a pair bundle)
Every refusal is an `HttpError` with a status (413 too large, 422 malformed) and one line
saying what is wrong; nothing a client sends becomes a 500.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class HttpError(Exception):
    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def parse_json(raw: bytes) -> dict:
    """The body as a JSON object: UTF-8 only, no NaN/Infinity, no duplicate keys."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(422, f"the body is not UTF-8 (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})") from None
    if not text.strip():
        raise HttpError(422, "the body is empty; send a JSON object such as {\"inputs\": \"a text\"}")

    def no_constants(name):
        raise HttpError(422, f"the body holds {name}, which is not JSON")

    def unique(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise HttpError(422, f"the body repeats the key {next(k for k in keys if keys.count(k) > 1)!r}")
        return dict(pairs)

    try:
        body = json.loads(text, parse_constant=no_constants, object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        raise HttpError(422, f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise HttpError(422, "the body nests too deeply") from None
    if not isinstance(body, dict):
        raise HttpError(422, f"the body must be a JSON object, got {_kind(body)}")
    return body


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _text(value, where: str) -> str:
    if not isinstance(value, str):
        raise HttpError(422, f"{where} must be a string, got {_kind(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # "\ud800" is valid JSON but not a text
        raise HttpError(422, f"{where} holds a lone surrogate (U+{ord(value[exc.start]):04X}), not valid Unicode") \
            from None
    return value


def _keys(body: dict, allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise HttpError(422, f"unknown key {unknown[0]!r}; this route takes {', '.join(allowed)}")
    missing = [k for k in required if k not in body]
    if missing:
        raise HttpError(422, f"missing key {missing[0]!r}")


def _count(n: int, max_texts: int, what: str) -> None:
    if n == 0:
        raise HttpError(422, f"{what} is empty; send at least one text")
    if n > max_texts:
        raise HttpError(413, f"{what} holds {n} texts; this server takes at most {max_texts} per request "
                             "(split the request)")


@dataclass
class PredictRequest:
    examples: list  # str, or (first, second) for a pair bundle
    single: bool  # the client sent one example, not a list: answer with one list, not a list of lists
    raw_scores: bool = False  # logits are not exposed; accepted for TEI clients and refused when true


def predict_request(body: dict, pairs: bool, max_texts: int) -> PredictRequest:
    _keys(body, ("inputs", "truncate", "raw_scores"), ("inputs",))
    if body.get("truncate", True) is not True:
        raise HttpError(422, "truncate must be true: a bundle always truncates texts to its max_length")
    if body.get("raw_scores", False) is not False:
        raise HttpError(422, "raw_scores is not offered: the server answers probabilities")
    inputs = body["inputs"]
    if isinstance(inputs, str):
        if pairs:
            raise HttpError(422, "this model reads sentence pairs; send inputs as [\"first\", \"second\"] or a list "
                                 "of such pairs")
        return PredictRequest([_text(inputs, "inputs")], single=True)
    if not isinstance(inputs, list):
        raise HttpError(422, f"inputs must be a string or a list of strings, got {_kind(inputs)}")
    if pairs and len(inputs) == 2 and all(isinstance(t, str) for t in inputs):
        return PredictRequest([(_text(inputs[0], "inputs[0]"), _text(inputs[1], "inputs[1]"))], single=True)
    _count(len(inputs), max_texts, "inputs")
    examples: list = []
    for i, item in enumerate(inputs):
        if pairs:
            if not isinstance(item, list) or len(item) != 2:
                raise HttpError(422, f"inputs[{i}]: this model reads sentence pairs; give [\"first\", \"second\"], "
                                     f"got {_kind(item)}" + (f" of {len(item)}" if isinstance(item, list) else ""))
            examples.append((_text(item[0], f"inputs[{i}][0]"), _text(item[1], f"inputs[{i}][1]")))
        else:
            if isinstance(item, list):
                raise HttpError(422, f"inputs[{i}]: this model reads one text per example, not a pair")
            examples.append(_text(item, f"inputs[{i}]"))
    return PredictRequest(examples, single=False)


@dataclass
class RerankRequest:
    query: str
    texts: list[str]
    return_text: bool = False


def rerank_request(body: dict, pairs: bool, max_texts: int) -> RerankRequest:
    if not pairs:
        raise HttpError(422, "this model reads one text per example; /rerank needs a sentence-pair bundle "
                             "(query, passage)")
    _keys(body, ("query", "texts", "return_text", "truncate", "raw_scores"), ("query", "texts"))
    for flag, allowed in (("truncate", True), ("raw_scores", False)):
        if body.get(flag, allowed) is not allowed:
            raise HttpError(422, f"{flag} must be {str(allowed).lower()} here")
    if not isinstance(body.get("return_text", False), bool):
        raise HttpError(422, f"return_text must be true or false, got {_kind(body['return_text'])}")
    query = _text(body["query"], "query")
    texts = body["texts"]
    if not isinstance(texts, list):
        raise HttpError(422, f"texts must be a list of strings, got {_kind(texts)}")
    _count(len(texts), max_texts, "texts")
    return RerankRequest(query, [_text(t, f"texts[{i}]") for i, t in enumerate(texts)],
                         return_text=body.get("return_text", False))


def label_scores(result) -> list[dict]:
    """A typed prediction in TEI's shape: every label with its score, best first (multi-label:
    sigmoid scores, each marked whether it reaches its threshold; a score model: its score)."""
    return result.label_scores()


def rerank_scores(results: list, labels: list[str]) -> list[float]:
    """A pair bundle's relevance per passage: its score, or the probability of its last label
    (as `Predictor.rank`)."""
    return [r.relevance(labels[-1]) for r in results]


@dataclass
class EmbedRequest:
    texts: list[str]
    normalize: bool = True
    dimensions: int | None = None
    base64: bool = False  # OpenAI's encoding_format "base64": little-endian float32 bytes
    model: str | None = None


def _texts(inputs, key: str, max_texts: int) -> list[str]:
    if isinstance(inputs, str):
        return [_text(inputs, key)]
    if not isinstance(inputs, list):
        raise HttpError(422, f"{key} must be a string or a list of strings, got {_kind(inputs)}")
    _count(len(inputs), max_texts, key)
    if any(isinstance(t, (int, list)) and not isinstance(t, bool) for t in inputs):
        raise HttpError(422, f"{key} must hold texts; token ids are not accepted (send the text)")
    return [_text(t, f"{key}[{i}]") for i, t in enumerate(inputs)]


def _dimensions(value, width: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= width:
        raise HttpError(422, f"dimensions must be a whole number from 1 to {width}, got {value!r}")
    return value


def embed_request(body: dict, width: int, max_texts: int) -> EmbedRequest:
    """TEI's /embed: {"inputs": str | [str], "normalize": true, "truncate": true, "dimensions": int?}."""
    _keys(body, ("inputs", "normalize", "truncate", "dimensions", "prompt_name", "truncation_direction"), ("inputs",))
    if body.get("truncate", True) is not True:
        raise HttpError(422, "truncate must be true: a bundle always truncates texts to its max_length")
    if body.get("truncation_direction", "Right") != "Right" or body.get("prompt_name") is not None:
        raise HttpError(422, "truncation_direction Right and no prompt_name are what this bundle offers")
    if not isinstance(body.get("normalize", True), bool):
        raise HttpError(422, f"normalize must be true or false, got {_kind(body['normalize'])}")
    return EmbedRequest(_texts(body["inputs"], "inputs", max_texts), body.get("normalize", True),
                        _dimensions(body.get("dimensions"), width))


def openai_request(body: dict, width: int, max_texts: int) -> EmbedRequest:
    """OpenAI's /v1/embeddings: {"input": str | [str], "model", "dimensions"?, "encoding_format"?, "user"?}."""
    _keys(body, ("input", "model", "dimensions", "encoding_format", "user"), ("input",))
    form = body.get("encoding_format", "float")
    if form not in ("float", "base64"):
        raise HttpError(422, f"encoding_format must be float or base64, got {form!r}")
    if body.get("model") is not None and not isinstance(body["model"], str):
        raise HttpError(422, f"model must be a string, got {_kind(body['model'])}")
    return EmbedRequest(_texts(body["input"], "input", max_texts), True, _dimensions(body.get("dimensions"), width),
                        base64=form == "base64", model=body.get("model"))


def vectors(results: list, normalize: bool, dimensions: int | None) -> list[list[float]]:
    """Typed embeddings as lists: truncated to `dimensions`, then L2-normalised when asked."""
    out = []
    for r in results:
        v = list(r.embedding[:dimensions] if dimensions else r.embedding)
        if normalize:
            norm = sum(x * x for x in v) ** 0.5 or 1.0
            v = [x / norm for x in v]
        out.append(v)
    return out


def openai_body(rows: list[list[float]], model: str, tokens: int, base64: bool) -> dict:
    """OpenAI's embeddings response (base64: each vector's little-endian float32 bytes)."""
    import base64 as b64
    import struct

    def encode(v):
        return b64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode("ascii") if base64 else v

    return {"object": "list", "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(rows)]}
