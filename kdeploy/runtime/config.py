"""The bench stage's settings (torch-free): the only place they and their defaults are declared."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..configtools import check_finite
from ..errors import KdeployError
from ..modelio.onnx_session import PROVIDERS


@dataclass
class BenchSettings:
    split: str = "test"  # labelled split scored for accuracy (falls back to validation)
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32])
    provider: str = "cpu"
    allow_fallback: bool = False
    threads: int | None = None  # intra-op threads; default: every core
    warmup: int = 10
    iterations: int = 100  # timed calls per model and batch size
    duration: float | None = None  # seconds per model and batch size, instead of iterations
    seq_length: int | None = None  # fixed token length; default: real sentences
    max_length: int | None = None  # default: each model's own (its training max length)
    rounds: int = 5  # models take turns this many times, so drift hits all alike
    seed: int = 0
    batching: str = "sorted"  # sorted: each batch's texts have similar lengths (as a bucketing server runs); random
    peers: bool = False  # also the teacher in bf16/compile/optimum int8/OpenVINO and OpenVINO on the students
    peaks: bool = True  # measure the machine's int8/fp32 GEMM peaks and each model's share of them
    baselines: list[str] = field(default_factory=list)  # tfidf-lr, fasttext, model2vec: trained on the train split
    baseline_encoder: str | None = None  # model2vec distils this encoder (default: the reference's base model)

    def __post_init__(self) -> None:
        check_finite(self)
        if isinstance(self.batch_sizes, str):
            try:
                self.batch_sizes = [int(b) for b in self.batch_sizes.split(",") if b.strip()]
            except ValueError:
                raise KdeployError(f"--batch-sizes {self.batch_sizes!r}: give whole numbers, e.g. 1,32") from None
        if not self.batch_sizes or min(self.batch_sizes) < 1 or any(not isinstance(b, int) for b in self.batch_sizes):
            raise KdeployError(f"batch sizes must be positive whole numbers, e.g. --batch-sizes 1,32; got {self.batch_sizes}")
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise KdeployError(f"batch sizes must be distinct, got {self.batch_sizes}")
        if self.provider not in PROVIDERS:
            raise KdeployError(f"unknown provider {self.provider!r}; choose from {', '.join(PROVIDERS)}")
        if self.threads is not None and self.threads < 1:
            raise KdeployError(f"--threads must be at least 1, got {self.threads}")
        if self.iterations < 1 or self.warmup < 0 or self.rounds < 1:
            raise KdeployError("iterations and rounds must be positive, warmup zero or more")
        if self.duration is not None and self.duration <= 0:
            raise KdeployError("duration must be positive")
        if self.max_length is not None and self.max_length < 2:
            raise KdeployError(f"--max-length must be at least 2 tokens, got {self.max_length}")
        if self.seq_length is not None and not 2 <= self.seq_length <= (self.max_length or 512):
            raise KdeployError(f"--seq-length must be in 2..{self.max_length or 512}, got {self.seq_length}")
        if self.batching not in ("sorted", "random"):
            raise KdeployError(f"batching must be sorted or random, got {self.batching!r}")
        from .baselines import BASELINES

        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown or len(set(self.baselines)) != len(self.baselines):
            raise KdeployError(f"--baselines takes distinct names from {', '.join(BASELINES)}, got "
                               f"{','.join(self.baselines)}")
        if self.split not in ("test", "validation"):
            raise KdeployError(f"split must be test or validation, got {self.split!r}")
