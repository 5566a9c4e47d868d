"""The bench's headline in words: each model's speed against the reference, and each baseline
against each student. Worded from the direction of every figure (a ratio under 1 is "Nx
slower", never "0.1x faster"; a baseline ahead is "N points more accurate", never "as
accurate"), so a reader who skims the sentence gets the same answer as one who reads the table."""
from __future__ import annotations

from .result import BenchReport, ModelBench

LEVEL = 1.05  # ratios within 5% either way read as "as fast": timing noise on a shared machine
POINTS = 0.005  # accuracies equal to two decimals (as printed) read as "as accurate"


def speed(ratio: float, other: str) -> str:
    """`ratio`: how many times faster (its latency divides into the other's)."""
    if ratio >= LEVEL:
        return f"{ratio:.1f}x faster than {other}"
    if ratio <= 1 / LEVEL:
        return f"{1 / ratio:.1f}x slower than {other}"
    return f"as fast as {other}"


def throughput(ratio: float, other: str) -> str:
    """`ratio`: this model's sentences per second over the other's."""
    if ratio >= LEVEL:
        return f"{ratio:.1f}x the throughput of {other}"
    if ratio <= 1 / LEVEL:
        return f"{1 / ratio:.1f}x less throughput than {other}"
    return f"the same throughput as {other}"


def headline(report: BenchReport) -> list[str]:
    """For each model that is not a variant of the reference: its speed against the reference
    and against the fastest variant of it (the figure a user actually gains); then the
    baselines' verdicts."""
    ref = report.model(report.reference)
    variants = [m for m in report.models if m.origin == ref.origin]
    lines = []
    for m in report.models:
        if m.origin == ref.origin:
            continue
        parts = []
        vs = m.vs_reference
        for bs in m.latency:
            if bs == 1:
                fastest = min(variants, key=lambda x: x.latency[1].p50_ms)
                parts.append(f"batch 1 p50 {speed(vs.p50_speedup[1], ref.name)}"
                             + (f", {speed(vs.p50_speedup_vs_fastest_reference[1], 'its fastest variant')}"
                                f" ({fastest.name})" if len(variants) > 1 else ""))
            else:
                best = max(variants, key=lambda x: x.latency[bs].throughput_per_s)
                parts.append(f"batch {bs} {throughput(vs.throughput_ratio[bs], ref.name)}"
                             + (f", {throughput(vs.throughput_ratio_vs_fastest_reference[bs], 'its fastest variant')}"
                                f" ({best.name})" if len(variants) > 1 else ""))
        lines.append(f"{m.name}: " + "; ".join(parts))
    return lines + baseline_verdicts(report)


def baseline_verdicts(report: BenchReport) -> list[str]:
    """One sentence per (baseline, student): which is more accurate and by how much, which is
    faster and by how much, and, when the baseline is at least as accurate and as fast, that the
    student does not earn its keep on this task."""
    ref = report.model(report.reference)
    baselines = [m for m in report.models if m.kind.startswith("baseline-") and m.accuracy is not None]
    students = [m for m in report.models if m.origin != ref.origin and not m.kind.startswith("baseline-")
                and m.accuracy is not None]
    return [_verdict(b, s) for b in baselines for s in students]


def _verdict(b: ModelBench, s: ModelBench) -> str:
    ba, sa = 100 * b.accuracy.main, 100 * s.accuracy.main
    gap = ba - sa
    shared = sorted(set(b.latency) & set(s.latency))
    bs = shared[0] if shared else None
    ratio = s.latency[bs].p50_ms / b.latency[bs].p50_ms if bs is not None else None  # > 1: the baseline is faster
    timing = (f" (batch-{bs} p50 {b.latency[bs].p50_ms:.3g} ms for the baseline, {s.latency[bs].p50_ms:.3g} ms for "
              "the student)" if bs is not None else "")
    if gap > -POINTS:  # the baseline is level or ahead
        figures = f"({ba:.2f}% vs {sa:.2f}%)"
        accuracy = (f"is as accurate as {s.name}" if gap < POINTS else f"is {gap:.2f} points more accurate than {s.name}")
        if ratio is None:
            return f"{b.name} {accuracy} {figures} (not timed at a common batch size)"
        pace = speed(ratio, "it")
        if "slower" not in pace:
            return f"{b.name} {accuracy} {figures} and {pace}{timing}: the student does not earn its keep here"
        return (f"{b.name} {accuracy} {figures} but {pace}{timing}"
                + (f": the student buys its speed with {gap:.2f} points" if gap >= POINTS else ""))
    line = f"{s.name} beats {b.name} by {-gap:.2f} points ({sa:.2f}% vs {ba:.2f}%)"
    if ratio is None:
        return line
    pace = speed(1 / ratio, "it")
    if pace.startswith("as fast"):
        return f"{line} at the same speed{timing}"
    return f"{line} {'and' if 'faster' in pace else 'but'} is {pace}{timing}"
