"""`bench(BenchSettings(...), models=[...], out=..., data=...)`: latency, throughput, memory,
size and accuracy of several models, side by side in one run, on the provider asked for."""
from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np

from ..configtools import to_dict
from ..data import FALLBACK_TEXTS, DataConfig, TaskData, load_task_data
from ..errors import KdeployError
from .candidates import Candidate
from .config import BenchSettings
from .latency import Latency
from .result import BenchReport, BenchScores, ModelBench, VsReference


def bench(settings: BenchSettings, models: list[str], out: str | Path, data: DataConfig | None = None,
          teacher: str | None = None, overwrite: bool = False) -> BenchReport:
    """Benchmark, then write report.json / report.md / report.html into `out`."""
    from ..fsutil import claimed_output
    from .report import write_reports

    if not models:
        raise KdeployError("give at least one model folder or ONNX file to benchmark")
    inputs = [m[:-5] if m.endswith("@int8") else m for m in models] + (data.files() if data else [])
    with claimed_output(out, inputs, overwrite, "kdeploy bench"):
        values, report = benchmark(settings, models, data, teacher)
        write_reports(report, out, values, overwrite)
    return report


def benchmark(settings: BenchSettings, models: list[str], data: DataConfig | None = None,
              teacher: str | None = None) -> tuple[dict, BenchReport]:
    """Returns (per-call latencies in ms by model and batch size, the report)."""
    from ..environment import library_versions, machine
    from .candidates import expand, load_candidate, unique_names
    from .memory import peak_rss_mib

    entries = unique_names([e for spec in models for e in expand(spec)])
    if teacher and teacher not in [n for n, _, _ in entries]:
        raise KdeployError(f"--teacher {teacher!r} is not among the models: {', '.join(n for n, _, _ in entries)}")
    task = load_task_data(data) if data is not None else None
    threads = settings.threads or os.cpu_count()
    candidates = [load_candidate(n, p, k, settings.provider, threads, settings.allow_fallback, settings.max_length)
                  for n, p, k in entries]
    results = {c.name: ModelBench(name=c.name, kind=c.kind, path=str(c.path), size_mib=c.size_mib,
                                  provider=c.provider, provider_requested=settings.provider, threads=c.threads,
                                  memory_mib=c.memory_mib, notes=c.notes) for c in candidates}
    values = _time(settings, candidates, _latency_texts(settings, task), results)
    reference = teacher or candidates[0].name
    split = None
    if task is not None:
        from ..modelio.record import label_names_in

        ref = next(c for c in candidates if c.name == reference)
        task = task.aligned_to(label_names_in(ref.path if ref.path.is_dir() else ref.path.parent), "model")
        split = _score(settings, task, candidates, results, reference)
    _compare(list(results.values()), results[reference])
    report = BenchReport(
        config={"models": list(models), "teacher": teacher, "settings": to_dict(settings)},
        models=list(results.values()), reference=reference,
        latency_inputs="fixed length" if settings.seq_length else "real sentences",
        environment={"machine": machine(), "versions": library_versions(), "threads": threads},
        data=task.summary() if task is not None else None, accuracy_split=split,
        process_peak_rss_mib=round(peak_rss_mib(), 1))
    report.config["provider"] = settings.provider
    return values, report


def _latency_texts(settings: BenchSettings, task: TaskData | None) -> list[str]:
    if task is not None:
        split = settings.split if settings.split in task.splits else task.eval_split
        return list(task.splits[split]["text"])
    return [t for t in FALLBACK_TEXTS if t] * 8


def _batches(cand: Candidate, texts: list[str], batch_size: int, settings: BenchSettings, n: int):
    """n pre-tokenised batches of real sentences (or a fixed length), with the tokenizer's time for each."""
    rng = random.Random(settings.seed + batch_size)
    out = []
    for _ in range(n):
        sample = [rng.choice(texts) for _ in range(batch_size)]
        t0 = time.perf_counter()
        if settings.seq_length:
            enc = cand.tokenizer(sample, truncation=True, max_length=settings.seq_length, padding="max_length",
                                 return_tensors="np")
        else:
            enc = cand.tokenizer(sample, truncation=True, max_length=cand.max_length, padding=True,
                                 return_tensors="np")
        out.append((dict(enc), time.perf_counter() - t0))
    return out


def _time(settings: BenchSettings, candidates: list[Candidate], texts: list[str], results: dict) -> dict:
    """Models take turns (`rounds`) at every batch size, so machine drift hits all alike."""
    per_call = max(1, settings.iterations // settings.rounds)
    values: dict[str, dict[int, list[float]]] = {c.name: {} for c in candidates}
    for bs in settings.batch_sizes:
        pools = {c.name: _batches(c, texts, bs, settings, min(64, max(8, per_call))) for c in candidates}
        times: dict[str, list[float]] = {c.name: [] for c in candidates}
        for c in candidates:  # warm-up
            for i in range(settings.warmup):
                c.run_encoded(pools[c.name][i % len(pools[c.name])][0])
        budget = (settings.duration / settings.rounds) if settings.duration else None
        for _ in range(settings.rounds):
            for c in candidates:
                pool, start, i = pools[c.name], time.perf_counter(), 0
                while (i < per_call) if budget is None else (time.perf_counter() - start < budget):
                    enc = pool[i % len(pool)][0]
                    t0 = time.perf_counter()
                    c.run_encoded(enc)
                    times[c.name].append(time.perf_counter() - t0)
                    i += 1
        for c in candidates:
            results[c.name].latency[bs] = Latency.from_values(times[c.name], bs).summary()
            results[c.name].tokenizer_ms[bs] = 1000 * float(np.median([t for _, t in pools[c.name]]))
            values[c.name][bs] = [1000 * t for t in times[c.name]]
    return values


def _score(settings: BenchSettings, task: TaskData, candidates: list[Candidate], results: dict, reference: str) -> str:
    from ..metrics import score
    from ..modelio.batching import batched_logits

    split = settings.split if settings.split in task.splits else task.eval_split
    labels = np.asarray(task.splits[split]["label"])
    texts = task.splits[split]["text"]
    logits = {c.name: batched_logits(c.run_texts, texts) for c in candidates}
    for c in candidates:
        results[c.name].accuracy = BenchScores(**to_dict(score(logits[c.name], labels, logits[reference])))
    ref_acc = results[reference].accuracy.accuracy
    for c in candidates:
        a = results[c.name].accuracy
        a.drop_points_vs_reference = round(100 * (ref_acc - a.accuracy), 3)
        a.retention = a.accuracy / ref_acc if ref_acc else None
    return split


def _compare(models: list[ModelBench], ref: ModelBench) -> None:
    for m in models:
        m.vs_reference = VsReference(
            size_ratio=m.size_mib / ref.size_mib if ref.size_mib else None,
            p50_speedup={bs: ref.latency[bs].p50_ms / m.latency[bs].p50_ms for bs in m.latency},
            throughput_ratio={bs: m.latency[bs].throughput_per_s / ref.latency[bs].throughput_per_s
                              for bs in m.latency})
