"""Prometheus metrics for every replica of a server, in one place.

Each replica counts locally (no call per request) and hands its counts to one `MetricsHub`
actor about twice a second; `/metrics` renders the hub's registry, so a scrape through the
load balancer sees the whole server, not the replica it happened to reach. Ray's own
`ray_serve_*` metrics (proxy-level 503s and 404s among them) stay on Ray's metrics port.
"""
from __future__ import annotations

import time
from collections import Counter as Tally
from dataclasses import dataclass, field

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Counts:
    """What one replica saw since its last flush."""
    requests: Tally = field(default_factory=Tally)  # (route, status) -> n
    latencies: list = field(default_factory=list)  # (route, seconds)
    batches: list = field(default_factory=list)  # texts per engine batch
    texts: int = 0
    pending: int = 0  # texts waiting in this replica now (a gauge, not a delta)
    inflight: int = 0  # requests being answered by this replica now (a gauge: what a drain waits for)

    def take(self) -> "Counts":
        out = Counts(self.requests, self.latencies, self.batches, self.texts, self.pending, self.inflight)
        self.requests, self.latencies, self.batches, self.texts = Tally(), [], [], 0
        return out

    def __bool__(self) -> bool:
        return bool(self.requests or self.batches)


class MetricsHub:
    """One registry for all replicas of all bundles served together (run as a Ray actor)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # this actor's process only: no *_created series beside each counter
        self.registry = CollectorRegistry()
        self.requests = Counter("kdeploy_requests", "Requests answered, by route and HTTP status.",
                                ["model", "route", "code"], registry=self.registry)
        self.latency = Histogram("kdeploy_request_seconds", "Time in the replica, from the request's arrival to "
                                 "its answer.", ["model", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch = Histogram("kdeploy_batch_texts", "Texts per engine batch (one model pass over requests "
                               "batched together).", ["model"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.texts = Counter("kdeploy_texts", "Texts classified.", ["model"], registry=self.registry)
        self.pending = Gauge("kdeploy_pending_texts", "Texts waiting for a batch, per replica.",
                             ["model", "replica"], registry=self.registry)
        self.seen: dict[tuple[str, str], float] = {}
        self.inflight: dict[tuple[str, str], int] = {}
        self.draining = False

    def drain(self) -> None:
        """The server is stopping: replicas answer new requests 503 + Retry-After from their next
        report on (never a 404 from a route already gone), and finish the ones they hold."""
        self.draining = True

    def busy(self) -> int:
        """Requests in flight in all replicas, as last reported."""
        return sum(self.inflight.values())

    def record(self, model: str, replica: str, counts: Counts) -> bool:
        """A replica's counts since its last report; answers whether the server is draining."""
        for (route, code), n in counts.requests.items():
            self.requests.labels(model, route, str(code)).inc(n)
        for route, seconds in counts.latencies:
            self.latency.labels(model, route).observe(seconds)
        for n in counts.batches:
            self.batch.labels(model).observe(n)
        if counts.texts:
            self.texts.labels(model).inc(counts.texts)
        self.pending.labels(model, replica).set(counts.pending)
        self.seen[(model, replica)] = time.monotonic()
        self.inflight[(model, replica)] = counts.inflight
        return self.draining

    def forget(self, model: str, replica: str) -> None:
        """A replica that stopped: its queue gauge goes (its counts stay in the totals)."""
        self.inflight.pop((model, replica), None)
        try:
            self.pending.remove(model, replica)
        except KeyError:
            pass

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
