"""Latency records that summarise and print themselves (after optimum-benchmark's tracker)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LatencySummary:
    calls: int
    batch_size: int
    mean_ms: float
    stdev_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    throughput_per_s: float

    def to_markdown_row(self, name: str) -> str:
        return (f"| {name} | {self.p50_ms:.2f} | {self.p90_ms:.2f} | {self.p99_ms:.2f} | {self.mean_ms:.2f} ± "
                f"{self.stdev_ms:.2f} | {self.throughput_per_s:.1f} |")


@dataclass(frozen=True)
class Latency:
    """Per-call wall times in seconds, and how many items each call processed."""

    values: tuple[float, ...]
    batch_size: int = 1

    @classmethod
    def from_values(cls, values, batch_size: int = 1) -> "Latency":
        values = tuple(float(v) for v in values)
        if not values:
            raise ValueError("no latency measurements")
        return cls(values, batch_size)

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.values), q))

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def stdev(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0

    @property
    def throughput(self) -> float:
        """Items per second over the measured calls."""
        return self.batch_size * len(self.values) / float(np.sum(self.values))

    def summary(self) -> LatencySummary:
        ms = 1000.0
        return LatencySummary(
            calls=len(self.values), batch_size=self.batch_size, mean_ms=self.mean * ms, stdev_ms=self.stdev * ms,
            p50_ms=self.percentile(50) * ms, p90_ms=self.percentile(90) * ms, p95_ms=self.percentile(95) * ms,
            p99_ms=self.percentile(99) * ms, min_ms=min(self.values) * ms, max_ms=max(self.values) * ms,
            throughput_per_s=self.throughput)

    def to_markdown_row(self, name: str) -> str:
        return self.summary().to_markdown_row(name)
