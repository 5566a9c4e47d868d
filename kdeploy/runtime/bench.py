"""`bench(BenchSettings(...), models=[...], out=..., data=...)`: latency, throughput, memory,
size and accuracy of several models, side by side in one run, on the provider asked for;
with `peers`, also the runtimes a user would pick instead of distilling. The report says how
close each model came to the machine's own GEMM peak, how much of its work was padding, and
whether the machine was busy while it was timed."""
from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from ..configtools import to_dict
from ..data import FALLBACK_TEXTS, DataConfig, TaskData, load_task_data
from ..errors import KdeployError
from ..modelio.inputs import tokenize
from ..modelio.record import as_model_task, check_data_kind, task_of_model
from ..tasks import task_kind
from .candidates import Candidate
from .config import BenchSettings
from .latency import Latency
from .result import BenchReport, BenchScores, Efficiency, ModelBench, VsReference
from .verdicts import baseline_verdicts, headline


def bench(settings: BenchSettings, models: list[str], out: str | Path, data: DataConfig | None = None,
          teacher: str | None = None, overwrite: bool = False) -> BenchReport:
    """Benchmark, then write report.json / report.md / report.html into `out`."""
    from ..fsutil import claimed_output
    from .report import write_reports

    if not models:
        raise KdeployError("give at least one model folder or ONNX file to benchmark")
    inputs = [m.rpartition("@")[0] if "@" in m else m for m in models] + (data.files() if data else [])
    with claimed_output(out, inputs, overwrite, "kdeploy bench"), tempfile.TemporaryDirectory() as exports:
        values, report = benchmark(settings, models, data, teacher, exports=Path(exports))
        _kept_baselines(report, Path(exports), Path(out))
        write_reports(report, out, values, overwrite, extra={"baselines": Path(exports)})
    return report


def _kept_baselines(report: BenchReport, exports: Path, out: Path) -> None:
    """Each baseline's path in the report: where its files land (`OUT/baselines/<name>/`), not
    the temporary folder it was trained in (gone when the bench ends)."""
    for m in report.models:
        if m.kind.startswith("baseline-"):
            name = m.kind.removeprefix("baseline-")
            m.path = str(out / "baselines" / name) if (exports / name).is_dir() else ""


def benchmark(settings: BenchSettings, models: list[str], data: DataConfig | None = None,
              teacher: str | None = None, exports: Path | None = None) -> tuple[dict, BenchReport]:
    """Returns (per-call latencies in ms by model and batch size, the report). The baselines'
    deployable files are copied into `exports/<name>/` when it is given. The baselines' inputs
    are checked before anything is loaded."""
    from ..environment import library_versions, machine
    from .baseline_setup import check_before_work, make_baselines
    from .candidates import Context, work_dir
    from .contention import MachineLoad
    from .memory import peak_rss_mib

    entries, reference = _entries(settings, models, teacher)
    _refuse_embedders(entries)
    encoder = check_before_work(settings, data, next(p for n, p, _ in entries if n == reference))
    load = MachineLoad.start()
    task = load_task_data(as_model_task(data, task_of_model(next(p for n, p, _ in entries if n == reference)))) \
        if data is not None else None
    threads = settings.threads or os.cpu_count()
    texts = _latency_texts(settings, task)
    with work_dir() as work:
        context = Context(settings.provider, threads, settings.allow_fallback, settings.max_length, texts, Path(work))
        candidates, skipped = _load_all(entries, reference, context)
        if task is not None:
            for c in candidates:  # before any timing: the wrong kind of data is refused at once
                check_data_kind(c.path, task.pairs, "data",
                                known=c.keep.manifest.pairs if c.kind == "bundle" else None)  # archives too
        if settings.baselines:
            ref = next(c for c in candidates if c.name == reference)
            candidates += make_baselines(settings, task, ref, encoder, threads, Path(work), skipped, exports)
        _text_in_notes(settings, candidates)
        _retention_notes(candidates)
        results = {c.name: ModelBench(name=c.name, kind=c.kind, path=_path_of(c), size_mib=c.size_mib,
                                      provider=c.provider, provider_requested=settings.provider, threads=c.threads,
                                      memory_mib=c.memory_mib, notes=c.notes, precision=c.precision, origin=c.origin,
                                      macs_per_sequence=_macs_record(c), train_seconds=c.train_seconds)
                   for c in candidates}
        values, work_done = _time(settings, candidates, texts, results)
        split = None
        if task is not None:
            ref = next(c for c in candidates if c.name == reference)
            task = task.aligned_to(_label_names(ref), "model")
            split = _score(settings, task, candidates, results, reference)
    peaks = _peaks(settings, threads)
    _efficiency(candidates, results, work_done, peaks)
    _compare(list(results.values()), results[reference])
    report = BenchReport(
        config={"models": list(models), "teacher": teacher, "provider": settings.provider,
                "settings": to_dict(settings)},
        models=list(results.values()), reference=reference,
        latency_inputs=_latency_inputs(settings, candidates),
        environment={"machine": machine(), "versions": library_versions(), "threads": threads},
        data=task.summary() if task is not None else None, accuracy_split=split,
        process_peak_rss_mib=round(peak_rss_mib(), 1), peaks=peaks, skipped=skipped,
        machine_load=load.stop().to_dict())
    report.headline, report.verdicts = headline(report), baseline_verdicts(report)
    return values, report


def _label_names(c) -> list[str] | None:
    """The reference's labels in output order: a bundle's manifest (it has no config.json: the
    SST-2 test file was scored against the demo bundle with its labels swapped), else the model's
    config."""
    from ..modelio.record import label_names_in

    if c.kind == "bundle":
        return list(c.keep.labels)
    return label_names_in(c.path if c.path.is_dir() else c.path.parent)


def _path_of(c: Candidate) -> str:
    """A baseline lives in a temporary folder while it is timed: `bench` records where its files
    are kept (the report's baselines/<name>/), `benchmark` alone keeps none."""
    return "" if c.kind.startswith("baseline-") else str(c.path)


def _retention_notes(candidates: list[Candidate]) -> None:
    """A student's verdict (against its teacher and the trivial answer) beside its figures: from
    its record (a model folder), its export report, or its bundle's manifest."""
    from ..errors import KdeployError
    from ..export.result import REPORT, ExportResult
    from ..modelio.record import ModelRecord
    from ..retention import Retention

    for c in candidates:
        if c.kind.startswith("baseline-") or (c.kind != "bundle" and not Path(c.path).exists()):
            continue  # a baseline, or a hub id: no record of kdeploy's beside it
        if c.kind == "bundle":
            verdict = Retention.from_record(getattr(c.keep.manifest, "retention", None))
        else:
            folder = c.path if c.path.is_dir() else c.path.parent
            verdict = ModelRecord.of(folder).retention
            if verdict is None and (folder / REPORT).is_file():
                try:
                    verdict = ExportResult.of_folder(folder).retention
                except KdeployError:  # a report kdeploy cannot read: no verdict rather than a wrong one
                    verdict = None
        if verdict is not None:
            c.notes.append(verdict.line())


def _text_in_notes(settings: BenchSettings, candidates: list[Candidate]) -> None:
    """--seq-length pads the models' inputs to a fixed length; a baseline or a bundle takes text
    and tokenises inside its timed call, so it is timed on the real sentences: said beside it."""
    if settings.seq_length:
        for c in candidates:
            if c.end_to_end:
                c.notes.append(f"timed on real sentences (it takes text), not at --seq-length {settings.seq_length} "
                               "as the models: its latency is not comparable with theirs")


def _latency_inputs(settings: BenchSettings, candidates: list[Candidate]) -> str:
    if not settings.seq_length:
        return f"real sentences, {settings.batching} batches"
    text_in = [c.name for c in candidates if c.end_to_end]
    return (f"fixed length, {settings.seq_length} tokens" + (f" (real sentences, {settings.batching} batches, for "
                                                             f"{', '.join(text_in)}: they take text)" if text_in else ""))


def _refuse_embedders(entries: list) -> None:
    """A sentence embedder or an entity tagger is not scored here: said before any model loads."""
    for _, path, _ in entries:
        model_task = task_of_model(path) if Path(path).exists() else None
        if model_task is not None and task_kind(model_task).sentence_vectors:
            raise KdeployError(f"{path}: kdeploy bench times classifiers and scorers; for a sentence embedder, "
                               "bench/embedding_report.py scores (STS-B, SICK, retrieval) and times it beside its "
                               "teacher and a model2vec baseline")
        if model_task is not None and task_kind(model_task).word_labels:
            raise KdeployError(f"{path}: kdeploy bench times classifiers and scorers; for an entity tagger, "
                               "bench/ner_conll.py scores its spans (entity F1) and times it beside its teacher and "
                               "a CRF baseline")


def _entries(settings: BenchSettings, models: list[str], teacher: str | None) -> tuple[list, str]:
    """(name, path, kind) per model to time, the peers added with --peers; and the reference's name."""
    from .candidates import expand, peers_of, unique_names

    entries = unique_names([e for spec in models for e in expand(spec)])
    names = [n for n, _, _ in entries]
    if teacher and teacher not in names:
        teacher = _named(teacher, entries)
    reference = teacher or names[0]
    if settings.peers:
        known = {(p.resolve(), k) for _, p, k in entries}
        extra = [e for spec in peers_of(entries, reference) for e in expand(spec) if (e[1].resolve(), e[2]) not in known]
        entries = unique_names(entries + extra)
    return entries, reference


def _named(teacher: str, entries: list) -> str:
    """--teacher given as one of the model specs (a folder, a file, PATH@kind) -> its entry's name."""
    from .candidates import expand

    names = [n for n, _, _ in entries]
    try:
        wanted = {(p.resolve(), k) for _, p, k in expand(teacher)}
    except KdeployError:
        wanted = set()
    hits = [n for n, p, k in entries if (p.resolve(), k) in wanted]
    if len(hits) != 1:
        raise KdeployError(f"--teacher {teacher!r} is not among the models: {', '.join(names)}; give one of "
                           "these names or the path as given among the models")
    return hits[0]


def _load_all(entries: list, reference: str, context) -> tuple[list, list[str]]:
    """(loaded candidates, a line per one skipped); the reference failing to load is an error."""
    from .candidates import load_candidate

    candidates, skipped = [], []
    for n, p, k in entries:
        loaded = load_candidate(n, p, k, context)
        (skipped if isinstance(loaded, str) else candidates).append(loaded)
        if isinstance(loaded, str) and n == reference:  # nothing to compare the others with
            raise KdeployError(loaded + ("; it is the reference (--teacher, or the first model), so nothing can be "
                                         "compared" if len(entries) > 1 else ""))
    return candidates, skipped


def _latency_texts(settings: BenchSettings, task: TaskData | None) -> list[str]:
    if task is not None:
        split = settings.split if settings.split in task.splits else task.eval_split
        return task.texts(split)
    return [t for t in FALLBACK_TEXTS if t] * 8


def _pool(texts: list[str], batch_size: int, settings: BenchSettings, n: int, tokens) -> list[list[str]]:
    """n batches of real sentences, the same for every model. `sorted`: a sample of n x batch
    sentences sorted by token count (the first model's tokenizer) and cut into batches (what a
    length-bucketing server runs); `random`: each batch drawn at random (more padding)."""
    rng = random.Random(settings.seed + batch_size)
    sample = [rng.choice(texts) for _ in range(n * batch_size)]
    if settings.batching == "sorted" and batch_size > 1:
        unique = sorted(set(sample))
        lengths = dict(zip(unique, map(len, tokens(unique)["input_ids"]))) if tokens else {t: len(t) for t in unique}
        sample.sort(key=lambda t: (lengths[t], t))
        batches = [sample[i * batch_size:(i + 1) * batch_size] for i in range(n)]
        rng.shuffle(batches)  # timed in mixed order: no warm cache from the previous, similar batch
        return batches
    return [sample[i * batch_size:(i + 1) * batch_size] for i in range(n)]


def _encode(cand: Candidate, batch: list[str], settings: BenchSettings) -> tuple[dict, float]:
    t0 = time.perf_counter()
    if settings.seq_length:
        enc = tokenize(cand.tokenizer, batch, settings.seq_length, padding="max_length",
                             return_tensors="np")
    else:
        enc = tokenize(cand.tokenizer, batch, cand.max_length, return_tensors="np")
    enc = dict(enc)
    if cand.end_to_end:  # a bundle tokenises inside its timed call
        enc["texts"] = list(batch)
    return enc, time.perf_counter() - t0


def _time(settings: BenchSettings, candidates: list[Candidate], texts: list[str], results: dict):
    """Models take turns (`rounds`) at every batch size, so machine drift hits all alike.
    Returns per-call times and, per model and batch size, the work done (tokens, MACs)."""
    per_call = max(1, settings.iterations // settings.rounds)
    values: dict[str, dict[int, list[float]]] = {c.name: {} for c in candidates}
    work: dict[str, dict[int, dict]] = {c.name: {} for c in candidates}
    for bs in settings.batch_sizes:
        batches = _pool(texts, bs, settings, min(64, max(8, per_call)), candidates[0].tokenizer if candidates else None)
        pools = {c.name: [_encode(c, b, settings) for b in batches] for c in candidates}
        times: dict[str, list[float]] = {c.name: [] for c in candidates}
        done = {c.name: {"calls": [], "real_tokens": 0, "tokens": 0} for c in candidates}
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
                    done[c.name]["calls"].append(enc["input_ids"].shape)
                    done[c.name]["real_tokens"] += int(np.asarray(enc["attention_mask"]).sum())
                    done[c.name]["tokens"] += int(np.asarray(enc["input_ids"]).size)
                    i += 1
        for c in candidates:
            results[c.name].latency[bs] = Latency.from_values(times[c.name], bs).summary()
            results[c.name].tokenizer_ms[bs] = 1000 * float(np.median([t for _, t in pools[c.name]]))
            values[c.name][bs] = [1000 * t for t in times[c.name]]
            work[c.name][bs] = {**done[c.name], "seconds": float(sum(times[c.name]))}
    return values, work


def _peaks(settings: BenchSettings, threads: int) -> dict | None:
    if not settings.peaks or settings.provider != "cpu":
        return None
    from .peaks import machine_peaks

    return machine_peaks(threads)


def _macs_record(c: Candidate) -> dict | None:
    if c.macs is None:
        return None
    return {"a": c.macs.a, "b": c.macs.b, "c": c.macs.c, "counted_by": c.macs.source}


def _efficiency(candidates: list[Candidate], results: dict, work: dict, peaks: dict | None) -> None:
    for c in candidates:
        for bs, w in work[c.name].items():
            e = Efficiency(padding_share=round(1 - w["real_tokens"] / w["tokens"], 4) if w["tokens"] else None)
            if c.macs is not None and w["seconds"] > 0:
                macs = sum(c.macs.batch(shape[0], shape[1]) for shape in w["calls"])
                e.achieved_gmacs = round(macs / w["seconds"] / 1e9, 2)
                peak = (peaks or {}).get(f"{c.precision}_gmacs") or (peaks or {}).get("fp32_gmacs")
                if peak:
                    e.peak_share = round(e.achieved_gmacs / peak, 4)
            results[c.name].efficiency[bs] = e


def _score(settings: BenchSettings, task: TaskData, candidates: list[Candidate], results: dict, reference: str) -> str:
    from ..modelio.batching import batched_logits

    split = settings.split if settings.split in task.splits else task.eval_split
    labels = np.asarray(task.splits[split]["label"])
    texts = task.texts(split)
    logits = {c.name: batched_logits(c.run_texts, texts) for c in candidates}
    kind = task.kind
    for c in candidates:
        if kind.thresholds and c.thresholds is None:
            c.thresholds = _shipped_thresholds(c.path, task.label_names)
        results[c.name].accuracy = BenchScores(**to_dict(kind.score(logits[c.name], labels, logits[reference],
                                                                     c.thresholds)))
    _invariances(candidates, results, texts, kind.name)
    ref = results[reference].accuracy
    for c in candidates:
        a = results[c.name].accuracy
        a.drop_points_vs_reference = ref.points(a)
        a.retention = a.main / ref.main if ref.main else None
    return split


INVARIANCE_TEXTS = 1000


def _shipped_thresholds(path, label_names: list[str]):
    """The decision thresholds a model ships with: its record's (a trained folder), or its export
    folder's config block (an ONNX file); None (the defaults) for a model from elsewhere."""
    from ..modelio.exported import ExportedModel
    from ..modelio.record import ModelRecord
    from ..tasks.base import thresholds_of

    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    found = ModelRecord.of(folder).thresholds or (ExportedModel.read(folder) or ExportedModel()).thresholds
    return thresholds_of(found, label_names)


def _invariances(candidates: list[Candidate], results: dict, texts: list, task: str) -> None:
    """Whether each model gives a text one answer alone and among others (dynamic int8 does not)."""
    from ..modelio.invariance import check_invariance, longest_first
    from ..tasks import task_kind

    kind = task_kind(task)
    sample = longest_first(texts, INVARIANCE_TEXTS)
    for c in candidates:
        results[c.name].invariance = check_invariance(lambda b, c=c: kind.outputs(c.run_texts(list(b))), sample,
                                                      task, thresholds=c.thresholds)


def _compare(models: list[ModelBench], ref: ModelBench) -> None:
    variants = [m for m in models if m.origin == ref.origin] or [ref]
    for m in models:
        v = VsReference(size_ratio=m.size_mib / ref.size_mib if ref.size_mib else None)
        for bs in m.latency:
            v.p50_speedup[bs] = ref.latency[bs].p50_ms / m.latency[bs].p50_ms
            v.throughput_ratio[bs] = m.latency[bs].throughput_per_s / ref.latency[bs].throughput_per_s
            fastest = min(variants, key=lambda x: x.latency[bs].p50_ms)
            best = max(variants, key=lambda x: x.latency[bs].throughput_per_s)
            v.p50_speedup_vs_fastest_reference[bs] = fastest.latency[bs].p50_ms / m.latency[bs].p50_ms
            v.throughput_ratio_vs_fastest_reference[bs] = (m.latency[bs].throughput_per_s
                                                           / best.latency[bs].throughput_per_s)
        m.vs_reference = v
