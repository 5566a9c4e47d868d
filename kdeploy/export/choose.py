"""Export picks what runs fastest *here*: each candidate file (fusion plan × quantisation) is
timed on real sentences at batch 1 and in length-sorted batches of 32, interleaved so that
machine drift hits all alike, and the fastest that passes the gates is kept. The timings
and the reason travel in export_report.json.

How sure an accuracy gate's verdict is (a paired test) is the task kind's (`kdeploy.tasks`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Timing:
    bs1_p50_ms: float
    bs32_per_s: float

    @property
    def score(self) -> float:
        """Lower is better: the geometric mean of batch-1 latency and batch-32 time per text."""
        return math.sqrt(self.bs1_p50_ms * 1000.0 / self.bs32_per_s)


@dataclass
class Candidate:
    name: str  # e.g. "lean+int8"
    files: dict[str, Path]  # final name -> candidate file
    session: dict = field(default_factory=dict)  # {"disabled_optimizers": [...]}
    timing: Timing | None = None
    info: dict = field(default_factory=dict)


def feeds(tokenizer, texts: list[str], max_length: int, n1: int = 48) -> tuple[list[dict], list[dict]]:
    """Tokenised inputs: single texts, and length-sorted batches of 32."""
    texts = [t for t in texts if t] or ["a short text"]
    from ..modelio.inputs import tokenize

    enc = lambda b: dict(tokenize(tokenizer, b, max_length, return_tensors="np"))  # noqa: E731
    ordered = sorted(texts, key=len)
    return [enc([t]) for t in texts[:n1]], [enc(ordered[i:i + 32]) for i in range(0, len(ordered), 32)]


def _openvino_session(path: Path, threads: int | None, precision: str = "bf16"):
    """OpenVINO on an ONNX file with a precision hint for its float work (bf16: AMX where present;
    a QDQ file's quantised operators run in int8 either way), wrapped like an ORT session."""
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    request = compiled.create_infer_request()
    names = [i.get_any_name() for i in compiled.inputs]

    class Session:
        def run(self, _, feed):
            return [next(iter(request.infer(feed).values()))]

    return Session(), names


def _last_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1] if lines else message


def time_candidates(candidates: list[Candidate], main: str, singles: list[dict], batches: list[dict],
                    rounds: int = 3, threads: int | None = None) -> None:
    """Fill in each candidate's timing of its `main` file (the one a bundle would ship). A
    candidate with `info["runtime"] == "openvino-bf16"` (or `openvino-f32`) runs its file in
    OpenVINO with that precision hint instead."""
    from ..modelio.onnx_session import create_session, feed

    runs = {}
    for c in candidates:
        runtime = c.info.get("runtime") or ""
        if runtime.startswith("openvino-"):
            try:
                session, names = _openvino_session(c.files[main], threads, runtime.split("-", 1)[1])
            except RuntimeError as exc:  # a peer OpenVINO cannot compile is said, not fatal (DeBERTa's If)
                c.info["not_timed"] = "OpenVINO cannot compile it: " + _last_line(str(exc))
                continue
            pick = lambda e, names=names: {k: np.asarray(e[k], dtype=np.int64) for k in names if k in e}  # noqa: E731
            runs[c.name] = (session, [pick(e) for e in singles], [pick(e) for e in batches])
            continue
        session = create_session(c.files[main], threads=threads, disabled_optimizers=c.session.get("disabled_optimizers"))
        runs[c.name] = (session, [feed(session, e) for e in singles], [feed(session, e) for e in batches])
    candidates = [c for c in candidates if c.name in runs]
    one: dict[str, list[float]] = {c.name: [] for c in candidates}
    many: dict[str, float] = {c.name: 0.0 for c in candidates}
    for name, (session, s1, s32) in runs.items():  # warm-up
        for f in s1[:3] + s32[:1]:
            session.run(None, f)
    for _ in range(rounds):
        for name, (session, s1, s32) in runs.items():
            for f in s1:
                t = time.perf_counter()
                session.run(None, f)
                one[name].append(time.perf_counter() - t)
            t = time.perf_counter()
            for f in s32:
                session.run(None, f)
            many[name] += time.perf_counter() - t
    texts = sum(len(f["input_ids"]) for f in batches) * rounds
    for c in candidates:
        c.timing = Timing(bs1_p50_ms=round(1000 * float(np.median(one[c.name])), 4),
                          bs32_per_s=round(texts / many[c.name], 1))
