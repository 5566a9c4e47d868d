"""Every export is compared with PyTorch on real inputs at several shapes.

Batch 1 and many, short and long, padded and not: exporting with one shape silently
freezes it, and this is where that is caught rather than on the device.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import KdeployError
from .result import Parity
from .files import FP32
from ..modelio.batching import _length
from ..modelio.inputs import is_pair, tokenize
from ..modelio.onnx_session import feed
from ..modelio.torch_infer import torch_logits


class ParityError(KdeployError):
    pass


@dataclass
class ParityCase:
    name: str
    texts: list  # strings, or (first, second) pairs


def parity_cases(texts: list[str], max_length: int) -> list[ParityCase]:
    """Shapes that catch frozen axes: batch 1 short/long, small padded batches, a full batch."""
    if not texts:
        raise KdeployError("parity check needs at least one text")
    by_len = sorted(texts, key=_length)
    if is_pair(texts[0]):  # each text of a pair truncated in turn, and a pair read both ways round
        long_second = " ".join(t[1] for t in by_len[-3:]) * 4
        long_first = " ".join(t[0] for t in by_len[-3:]) * 4
        truncated = [ParityCase("batch1-second-truncated", [(by_len[0][0], long_second)]),
                     ParityCase("batch1-first-truncated", [(long_first, by_len[0][1])]),
                     ParityCase("batch2-swapped", [tuple(by_len[-1]), tuple(by_len[-1])[::-1]])]
    else:
        long_text = " ".join(by_len[-3:])  # longer than max_length in most data: exercises truncation
        truncated = [ParityCase("batch1-truncated", [long_text * 4])]
    cases = [
        ParityCase("batch1-short", by_len[:1]),
        ParityCase("batch1-long", by_len[-1:]),
        *truncated,
        ParityCase("batch4-padded", [by_len[0], by_len[len(by_len) // 3], by_len[2 * len(by_len) // 3], by_len[-1]]),
        ParityCase("batch8-equal-length", [by_len[len(by_len) // 2]] * 8),
        ParityCase("batch32-mixed", texts[:32]),
    ]
    return cases


def check_parity(session, model, tokenizer, texts: list[str], max_length: int, atol: float | None,
                 label: str = FP32.file, reference: dict[str, np.ndarray] | None = None) -> Parity:
    """Max |Δlogit| and argmax agreement per shape; raises ParityError above `atol`."""
    model.eval()
    cases, results, worst = parity_cases(texts, max_length), [], (0.0, None, None)
    for case in cases:
        ref = reference[case.name] if reference else torch_logits(model, tokenizer, case.texts, max_length)
        enc = tokenize(tokenizer, case.texts, max_length, return_tensors="np")
        try:
            got = session.run(None, feed(session, enc))[0]
        except Exception as exc:  # onnxruntime's own error types: a frozen axis shows up here
            raise ParityError(f"{label} fails on {case.name} (input shape {tuple(enc['input_ids'].shape)}): "
                              f"{str(exc).splitlines()[0]}; was it exported with fixed shapes?") from None
        diff = np.abs(got.astype(np.float32) - ref)
        row_max = diff.max(-1)
        results.append({"case": case.name, "shape": list(enc["input_ids"].shape), "max_abs_diff": float(diff.max()),
                        "argmax_agreement": float((got.argmax(-1) == ref.argmax(-1)).mean())})
        if row_max.max() > worst[0]:
            i = int(row_max.argmax())
            worst = (float(row_max.max()), case.name, case.texts[i])
    summary = Parity(max_abs_diff=max(r["max_abs_diff"] for r in results),
                     argmax_agreement=float(np.mean([r["argmax_agreement"] for r in results])),
                     tolerance=atol, cases=results)
    if atol is not None:
        summary.passed = summary.max_abs_diff <= atol
        if not summary.passed:
            text = str(worst[2]) if len(str(worst[2])) <= 80 else str(worst[2])[:77] + "..."
            raise ParityError(f"{label} differs from PyTorch by {worst[0]:.2e} (tolerance {atol:.0e}) on "
                              f"{worst[1]}, input {text!r}; the export is not trustworthy")
    return summary


def reference_logits(model, tokenizer, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
    return {c.name: torch_logits(model, tokenizer, c.texts, max_length) for c in parity_cases(texts, max_length)}
