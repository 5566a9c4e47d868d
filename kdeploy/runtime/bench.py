"""`benchmark(BenchConfig)`: latency, throughput, memory, size and accuracy of several models,
side by side in one run, on the execution provider asked for."""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import DataConfig, load_task_data
from ..errors import KdeployError
from .accuracy import batched_logits, score
from .latency import Latency


@dataclass
class BenchConfig:
    models: list[str]
    out: str
    data: DataConfig | None = None  # labelled split for accuracy, and real sentences for latency
    split: str = "test"
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32])
    provider: str = "cpu"
    allow_fallback: bool = False
    threads: int | None = None  # default: every core
    warmup: int = 10
    iterations: int = 100  # timed calls per model and batch size
    duration: float | None = None  # seconds per model and batch size, instead of iterations
    seq_length: int | None = None  # fixed token length; default: real sentences
    max_length: int = 128
    teacher: str | None = None  # reference for agreement/drop; default: the first model
    rounds: int = 5  # models take turns this many times, so drift hits all alike
    seed: int = 0

    def __post_init__(self) -> None:
        from .session import PROVIDERS

        if not self.models:
            raise KdeployError("give at least one model folder or ONNX file to benchmark")
        if isinstance(self.batch_sizes, str):
            self.batch_sizes = [int(b) for b in self.batch_sizes.split(",") if b.strip()]
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise KdeployError("batch sizes must be positive integers, e.g. --batch-sizes 1,32")
        if self.provider not in PROVIDERS:
            raise KdeployError(f"unknown provider {self.provider!r}; choose from {', '.join(PROVIDERS)}")
        if self.iterations < 1 or self.warmup < 0 or self.rounds < 1:
            raise KdeployError("iterations and rounds must be positive, warmup non-negative")
        if self.duration is not None and self.duration <= 0:
            raise KdeployError("duration must be positive")
        if self.seq_length is not None and not 2 <= self.seq_length <= self.max_length:
            raise KdeployError(f"seq_length must be in 2..{self.max_length}")


def _texts_for_latency(cfg: BenchConfig, data) -> list[str]:
    if data is not None:
        split = cfg.split if cfg.split in data.splits else "validation"
        return list(data.splits[split]["text"])
    from ..export.api import FALLBACK_TEXTS

    return [t for t in FALLBACK_TEXTS if t] * 8


def _batches(cand, texts: list[str], batch_size: int, cfg: BenchConfig, n: int) -> list[tuple[dict, float]]:
    """n pre-tokenised batches of real sentences (or a fixed length), with the tokenizer's time for each."""
    rng = random.Random(cfg.seed + batch_size)
    out = []
    for _ in range(n):
        sample = [rng.choice(texts) for _ in range(batch_size)]
        t0 = time.perf_counter()
        if cfg.seq_length:
            enc = cand.tokenizer(sample, truncation=True, max_length=cfg.seq_length, padding="max_length",
                                 return_tensors="np")
        else:
            enc = cand.tokenizer(sample, truncation=True, max_length=cfg.max_length, padding=True, return_tensors="np")
        out.append((dict(enc), time.perf_counter() - t0))
    return out


def run_bench(cfg: BenchConfig) -> dict:
    """Benchmark, then write report.json / report.md / report.html into `cfg.out`."""
    from .report import write_reports

    values, report = benchmark(cfg)
    write_reports(report, cfg.out, values)
    return report


def benchmark(cfg: BenchConfig) -> tuple[dict, dict]:
    """Returns (per-call latencies in ms by model and batch size, the report)."""
    from ..environment import library_versions, machine
    from .memory import peak_rss_mib
    from .models import expand, load_candidate, unique_names

    data = load_task_data(cfg.data) if cfg.data is not None else None
    entries = unique_names([e for spec in cfg.models for e in expand(spec)])
    if cfg.teacher:
        names = [n for n, _, _ in entries]
        if cfg.teacher not in names:
            raise KdeployError(f"--teacher {cfg.teacher!r} is not among the models: {', '.join(names)}")
    threads = cfg.threads or os.cpu_count()
    candidates = [load_candidate(n, p, k, cfg.provider, threads, cfg.allow_fallback) for n, p, k in entries]
    texts = _texts_for_latency(cfg, data)

    per_call = max(1, cfg.iterations // cfg.rounds)
    results = {c.name: {"latency": {}, "tokenizer_ms": {}} for c in candidates}
    values: dict[str, dict[str, list[float]]] = {c.name: {} for c in candidates}
    for bs in cfg.batch_sizes:
        pools = {c.name: _batches(c, texts, bs, cfg, min(64, max(8, per_call))) for c in candidates}
        times: dict[str, list[float]] = {c.name: [] for c in candidates}
        for c in candidates:  # warm-up
            for i in range(cfg.warmup):
                c.run_encoded(pools[c.name][i % len(pools[c.name])][0])
        budget = (cfg.duration / cfg.rounds) if cfg.duration else None
        for _ in range(cfg.rounds):
            for c in candidates:
                pool, start, i = pools[c.name], time.perf_counter(), 0
                while (i < per_call) if budget is None else (time.perf_counter() - start < budget):
                    enc = pool[i % len(pool)][0]
                    t0 = time.perf_counter()
                    c.run_encoded(enc)
                    times[c.name].append(time.perf_counter() - t0)
                    i += 1
        for c in candidates:
            results[c.name]["latency"][str(bs)] = Latency.from_values(times[c.name], bs).summary()
            values[c.name][str(bs)] = [1000 * t for t in times[c.name]]
            results[c.name]["tokenizer_ms"][str(bs)] = 1000 * float(np.median([t for _, t in pools[c.name]]))

    reference = cfg.teacher or candidates[0].name
    accuracy = None
    if data is not None:
        split = cfg.split if cfg.split in data.splits else "validation"
        labels = np.asarray(data.splits[split]["label"])
        eval_texts = data.splits[split]["text"]
        logits = {c.name: batched_logits(lambda t, c=c: c.run_texts(t, cfg.max_length), eval_texts) for c in candidates}
        accuracy = {"split": split, "examples": len(labels), "reference": reference}
        for c in candidates:
            s = score(logits[c.name], labels, logits[reference])
            s["drop_points_vs_reference"] = None
            results[c.name]["accuracy"] = s
        ref_acc = results[reference]["accuracy"]["accuracy"]
        for c in candidates:
            a = results[c.name]["accuracy"]
            a["drop_points_vs_reference"] = round(100 * (ref_acc - a["accuracy"]), 3)
            a["retention"] = a["accuracy"] / ref_acc if ref_acc else None

    models = []
    for c in candidates:
        r = results[c.name]
        models.append({"name": c.name, "kind": c.kind, "path": str(c.path), "size_mib": c.size_mib,
                       "provider": c.provider, "provider_requested": cfg.provider, "threads": c.threads,
                       "memory_mib": c.memory_mib, "notes": c.notes, **r})
    ref_model = next(m for m in models if m["name"] == reference)
    for m in models:
        m["vs_reference"] = {
            "size_ratio": m["size_mib"] / ref_model["size_mib"] if ref_model["size_mib"] else None,
            **{f"p50_speedup_bs{bs}": ref_model["latency"][bs]["p50_ms"] / m["latency"][bs]["p50_ms"]
               for bs in m["latency"]},
            **{f"throughput_ratio_bs{bs}": m["latency"][bs]["throughput_per_s"] / ref_model["latency"][bs]["throughput_per_s"]
               for bs in m["latency"]},
        }
    return values, {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.__dict__.items() if k != "data"},
        "data": data.summary() if data is not None else None,
        "latency_inputs": "fixed length" if cfg.seq_length else "real sentences",
        "reference": reference, "accuracy": accuracy, "models": models,
        "process_peak_rss_mib": round(peak_rss_mib(), 1),
        "environment": {"machine": machine(), "versions": library_versions(), "threads": threads,
                        "provider_options": {}},
    }
