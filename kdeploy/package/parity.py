"""The e2e model's gate: the same token ids as the `tokenizers` library and the same
probabilities as the Python predictor, on the validation split plus the hostile-text list.

One difference is known and allowed, because no graph can avoid it: onnxruntime-extensions
reads strings as C strings, so a NUL character ends the text; such texts are compared with the
part before the NUL (and counted).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import KdeployError

PROBABILITY_TOLERANCE = 1e-5
MAX_PROBABILITY_TEXTS = 5000


@dataclass
class E2EParity:
    texts: int  # compared token by token (an entity tagger's: span by span)
    identical: int
    source: str  # which texts: the validation split (N) + the hostile list (M)
    probability_texts: int
    max_abs_diff: float
    nul_truncated: int = 0
    differences: list[dict] = field(default_factory=list)
    compared: str = "tokens"  # or "spans": an entity tagger's (entity, start, end) per text

    @property
    def passed(self) -> bool:
        return self.identical == self.texts and self.max_abs_diff <= PROBABILITY_TOLERANCE


def reference_tokenizer(tokenizer_json: Path, max_length: int, pair_truncation: str = "longest_first",
                        truncation: str = "head"):
    """What the Python predictor tokenises with (special-token strings in user text are text),
    cutting long texts as the bundle's model reads them."""
    from tokenizers import Tokenizer

    from ..truncation import Reader

    tok = Tokenizer.from_file(str(tokenizer_json))
    reader = Reader(tok, max_length, truncation, pair_truncation)
    tok.no_padding()
    tok.encode_special_tokens = True
    return reader


def _as_input(text, pairs: bool) -> np.ndarray:
    return np.array(list(text) if pairs else [text], dtype=object)


def _before_nul(text, pairs: bool):
    return tuple(t.split("\x00")[0] for t in text) if pairs else text.split("\x00")[0]


def _tokenizer_session(tokenizer_only, tokenizer_json: Path):
    """The in-graph tokenizer alone; an op that will not load it (a tokenizer class or setting the
    extensions do not know) is one line naming the file, not the extensions' raw traceback."""
    import onnxruntime as ort

    from ..edge import quiet_extensions

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.register_custom_ops_library(quiet_extensions())
    try:
        return ort.InferenceSession(tokenizer_only.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise KdeployError(f"{tokenizer_json}: the in-graph tokenizer (onnxruntime-extensions) cannot load it "
                           f"({str(exc).splitlines()[0]}); package the python or web format instead") from None


def check_e2e(e2e_model: Path, tokenizer_only, model_file: Path, tokenizer_json: Path, texts: list, source: str,
              max_length: int, pairs: bool = False, disabled_optimizers: list[str] | None = None,
              pair_truncation: str = "longest_first", threads: int | None = 2,
              truncation: str = "head", task: str = "classification") -> E2EParity:
    """Compare token ids (tokenizer-only graph vs `tokenizers`) and probabilities (e2e graph vs
    the plain ONNX model fed by `tokenizers`, one text at a time)."""
    from ..modelio.onnx_session import create_session
    from ..progress import progress_bar
    from .e2e import e2e_session

    tok_session = _tokenizer_session(tokenizer_only, tokenizer_json)
    reference = reference_tokenizer(tokenizer_json, max_length, pair_truncation, truncation)
    e2e = e2e_session(e2e_model, threads, disabled_optimizers)
    plain = create_session(model_file, "cpu", threads, disabled_optimizers=disabled_optimizers)
    feeds = [i.name for i in plain.get_inputs()]
    from ..tasks import task_kind

    kind = task_kind(task)
    result = E2EParity(texts=len(texts), identical=0, source=source, probability_texts=0, max_abs_diff=0.0)
    with progress_bar("e2e parity", len(texts)) as advance:
        for k, text in enumerate(texts):
            _compare(k, text, pairs, reference, tok_session, e2e, plain, feeds, result, kind)
            advance()
    return result


def _compare(k: int, text, pairs: bool, reference, tok_session, e2e, plain, feeds: list[str],
             result: E2EParity, kind) -> None:
    from .e2e import INPUT

    compared = text
    if any("\x00" in t for t in (text if pairs else [text])):
        compared = _before_nul(text, pairs)
        result.nul_truncated += 1
    enc = reference.encode(*compared) if pairs else reference.encode(compared)
    got = tok_session.run(None, {"text": _as_input(text, pairs)})[0].tolist()
    if got == enc.ids:
        result.identical += 1
    elif len(result.differences) < 5:
        at = next((i for i, (a, b) in enumerate(zip(got, enc.ids)) if a != b), min(len(got), len(enc.ids)))
        start = max(0, at - 4)  # where they part, not a prefix that may be the same
        result.differences.append({"text": repr(text)[:120], "position": at, "graph": got[start:start + 12],
                                   "tokenizers": enc.ids[start:start + 12]})
    if k >= MAX_PROBABILITY_TEXTS or got != enc.ids:  # a token difference already fails the gate
        return
    columns = {"input_ids": enc.ids, "attention_mask": enc.attention_mask, "token_type_ids": enc.type_ids}
    logits = plain.run(None, {n: np.asarray([columns[n]], dtype=np.int64) for n in feeds})[0].astype(np.float64)
    expected = kind.outputs(logits)[0]  # what the python predictor answers
    batch = np.array([list(text)], dtype=object) if pairs else np.array([text], dtype=object)
    probs = e2e.run([kind.e2e_output], {INPUT: batch})[0][0]
    result.max_abs_diff = max(result.max_abs_diff, float(np.abs(probs - expected).max()))
    result.probability_texts += 1


def check_tagger_e2e(e2e_model: Path, model_file: Path, tokenizer_json: Path, texts: list, source: str,
                     max_length: int, label_names: list[str], threads: int | None = 2,
                     disabled_optimizers: list[str] | None = None) -> E2EParity:
    """An entity tagger's e2e graph against the plain model fed by `tokenizers`, text by text and
    window by window as the python bundle reads them: the same entities at the same character
    offsets, and word probabilities within tolerance."""
    from ..modelio.onnx_session import create_session
    from ..progress import progress_bar
    from .e2e import e2e_session

    e2e = e2e_session(e2e_model, threads, disabled_optimizers)
    plain = create_session(model_file, "cpu", threads, disabled_optimizers=disabled_optimizers)
    feeds = [i.name for i in plain.get_inputs()]
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation(), tok.no_padding()
    tok.encode_special_tokens = True
    result = E2EParity(texts=len(texts), identical=0, source=source, probability_texts=0, max_abs_diff=0.0,
                       compared="spans")
    with progress_bar("e2e parity", len(texts)) as advance:
        for text in texts:
            _compare_spans(text, tok, plain, feeds, e2e, max_length, label_names, result)
            advance()
    return result


def _compare_spans(text: str, tok, plain, feeds: list[str], e2e, max_length: int, label_names: list[str],
                   result: E2EParity) -> None:
    from ..modelio.words import first_positions, read_in_windows, text_spans
    from ..tasks.tokens import TOKEN_CLASSIFICATION
    from .e2e_words import INPUT, OUTPUTS

    if "\x00" in text:
        text = text.split("\x00")[0]
        result.nul_truncated += 1
    enc = tok.encode(text)

    def run(pieces):  # a window at a time, as the graph runs them
        for k, piece in enumerate(pieces):
            columns = {"input_ids": piece.ids, "attention_mask": piece.attention_mask, "token_type_ids": piece.type_ids}
            logits = plain.run(None, {n: np.asarray([columns[n]], dtype=np.int64) for n in feeds})[0]
            yield [k], TOKEN_CLASSIFICATION.outputs(logits.astype(np.float64))
    probabilities = read_in_windows([enc], max_length, len(label_names), run)[0]
    want = text_spans(text, enc.offsets, enc.word_ids, probabilities, label_names)
    out = dict(zip(OUTPUTS, e2e.run(None, {INPUT: np.array([text], dtype=object)})))
    got = [(e.decode() if isinstance(e, bytes) else str(e), int(a), int(b))
           for e, a, b in zip(out["entity"], out["start"], out["end"])]
    if got != [(w["entity"], w["start"], w["end"]) for w in want]:
        if len(result.differences) < 5:
            result.differences.append({"text": repr(text)[:120], "graph": got[:6],
                                       "tokenizers": [(w["entity"], w["start"], w["end"]) for w in want][:6]})
        return
    result.identical += 1
    firsts = [p for _, p in sorted(first_positions(enc.word_ids).items())]
    if len(firsts) != len(out["probabilities"]):
        result.max_abs_diff = float("inf")  # the graph read other words than the tokenizer made
        return
    diff = np.abs(out["probabilities"] - probabilities[firsts]).max(initial=0.0)
    diff = max(diff, np.abs(np.asarray(out["score"], dtype=np.float64) - [w["score"] for w in want]).max(initial=0.0))
    result.max_abs_diff = max(result.max_abs_diff, float(diff))
    result.probability_texts += 1


def gate(parity: E2EParity) -> None:
    if parity.passed:
        return
    if parity.identical != parity.texts and parity.compared == "spans":
        first = parity.differences[0]
        raise KdeployError(f"the e2e model's entities differ from the python bundle's on "
                           f"{parity.texts - parity.identical} of {parity.texts} texts (first: {first['text']}: graph "
                           f"{first['graph']} vs {first['tokenizers']}); not writing a bundle that answers differently "
                           "— package the python format")
    if parity.identical != parity.texts:
        first = parity.differences[0]
        raise KdeployError(f"the e2e model's tokens differ from the tokenizers library's on "
                           f"{parity.texts - parity.identical} of {parity.texts} texts (first: {first['text']}, from "
                           f"token {first.get('position', 0)}: graph {first['graph']} vs {first['tokenizers']}); not writing a bundle that answers "
                           "differently — package the python or web format")
    raise KdeployError(f"the e2e model's probabilities differ from the Python predictor's by up to "
                       f"{parity.max_abs_diff:.2e} (tolerance {PROBABILITY_TOLERANCE:.0e}); not writing it")
