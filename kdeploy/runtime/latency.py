"""A latency record that summarises and prints itself (after optimum-benchmark's tracker)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

    def summary(self) -> dict:
        ms = 1000.0
        return {
            "calls": len(self.values), "batch_size": self.batch_size,
            "mean_ms": self.mean * ms, "stdev_ms": self.stdev * ms,
            "p50_ms": self.percentile(50) * ms, "p90_ms": self.percentile(90) * ms,
            "p95_ms": self.percentile(95) * ms, "p99_ms": self.percentile(99) * ms,
            "min_ms": min(self.values) * ms, "max_ms": max(self.values) * ms,
            "throughput_per_s": self.throughput,
        }

    def to_markdown_row(self, name: str) -> str:
        s = self.summary()
        return (f"| {name} | {s['p50_ms']:.2f} | {s['p90_ms']:.2f} | {s['p99_ms']:.2f} | {s['mean_ms']:.2f} ± "
                f"{s['stdev_ms']:.2f} | {s['throughput_per_s']:.1f} |")
