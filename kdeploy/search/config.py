"""What `kdeploy search` explores, and its budget (torch-free; the only place these settings
and their defaults are declared)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..configtools import check_finite
from ..distill.families import FAMILIES as STUDENT_FAMILIES
from ..errors import KdeployError


def _default_point() -> dict:
    """The hand-picked default the search must beat (trial 0 of a new study): `kdeploy distill`'s
    own defaults, read from its config so the two cannot drift apart; no pruning."""
    from ..distill.config import DistillSettings

    d = DistillSettings()
    # a trial names its depth: distill's own default probes for one, so the point keeps the fixed
    # depth kdeploy used before the probe (2), the hand-picked setting a search must beat
    layers = 2 if d.student.probes_depth else int(d.student.layers)
    return {"family": "layers", "temperature": d.temperature, "alpha": d.alpha,
            "learning_rate": d.train.learning_rate, "layers": layers, "heads": 0.0, "vocab": False}


DEFAULT_POINT = _default_point()

#: Each other family's first trial (its recipe in models/, in search terms), so that even a short
#: search puts every family on the front before the sampler takes over (declared with the family).
FAMILY_STARTS = {name: dict(f.start) for name, f in STUDENT_FAMILIES.items() if f.start}

#: The ladder of students, from a pruned copy of the teacher down to a table of token vectors,
#: and the knobs each one has (beside alpha and temperature), declared with the family.
FAMILIES = {name: f.knobs for name, f in STUDENT_FAMILIES.items()}


@dataclass
class SearchSpace:
    families: list[str] = field(default_factory=lambda: list(FAMILIES))  # the student families in the front
    temperature: list[float] = field(default_factory=lambda: [1.0, 8.0])  # log-uniform range
    alpha: list[float] = field(default_factory=lambda: [0.1, 1.0])  # uniform range
    learning_rate: list[float] = field(default_factory=lambda: [3e-5, 5e-4])  # transformer students, log-uniform
    small_learning_rate: list[float] = field(default_factory=lambda: [3e-4, 5e-3])  # bilstm/cnn/static, log-uniform
    layers: list[int] = field(default_factory=lambda: [1, 2, 3])  # student depth (layers kept from the teacher)
    heads: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5])  # head-pruning fractions
    ffn: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])  # feed-forward pruning fractions (width)
    embedding_dim: list[int] = field(default_factory=lambda: [64, 128, 256])  # bilstm/cnn/static token vectors
    hidden_size: list[int] = field(default_factory=lambda: [64, 128, 256])  # bilstm state / static head
    num_filters: list[int] = field(default_factory=lambda: [64, 128])  # cnn
    vocab: list[bool] = field(default_factory=lambda: [False, True])  # vocabulary trimming

    def __post_init__(self) -> None:
        check_finite(self)
        unknown = [f for f in self.families if f not in FAMILIES]
        if not self.families or unknown:
            raise KdeployError(f"search space families: choose from {', '.join(FAMILIES)}; got {self.families}")
        if not self.ffn or not all(0 < f < 1 for f in self.ffn):
            raise KdeployError("search space ffn: fractions in (0, 1)")
        for name in ("embedding_dim", "hidden_size", "num_filters"):
            if not getattr(self, name) or min(getattr(self, name)) < 1:
                raise KdeployError(f"search space {name}: give one or more sizes >= 1")
        for name in ("temperature", "alpha", "learning_rate", "small_learning_rate"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
                raise KdeployError(f"search space {name}: give [low, high] with 0 < low <= high, got {lo_hi}")
        if self.alpha[1] > 1:
            raise KdeployError("search space alpha: the range must lie within (0, 1]")
        if not self.layers or min(self.layers) < 1:
            raise KdeployError("search space layers: give one or more depths >= 1")
        if not self.heads or not all(0 <= h < 1 for h in self.heads):
            raise KdeployError("search space heads: fractions in [0, 1)")
        if not self.vocab:
            raise KdeployError("search space vocab: give [false], [true] or [false, true]")


STORAGES = ("postgresql://", "postgresql+", "mysql://", "mysql+", "sqlite:///", "journal:")


@dataclass
class SearchSettings:
    """Multi-objective search: maximise validation accuracy of the int8 ONNX student,
    minimise its measured batch-1 latency on this machine."""

    space: SearchSpace = field(default_factory=SearchSpace)
    trials: int = 20  # total trials in the study (a resumed study counts the ones it has)
    minutes: float | None = None  # stop starting new trials after this long
    epochs: float = 2.0  # distillation epochs per trial
    recover_epochs: float = 0.5  # distillation after head pruning
    max_length: int = 128
    latency_iterations: int = 50
    threads: int | None = None
    augment: int | None = 0  # augmented copies per example in every trial (None: by data size, slower)
    early_stop_points: float = 3.0  # stop a trial whose first-epoch accuracy trails the median by this much
    seed: int = 0
    # where the study lives: OUT/study.db by default; an Optuna RDB URL (postgresql://, mysql://,
    # sqlite:///) or journal:PATH shares one study between workers on several machines
    storage: str | None = None

    def __post_init__(self) -> None:
        check_finite(self)
        if self.trials < 1:
            raise KdeployError("trials must be at least 1")
        if self.minutes is not None and self.minutes <= 0:
            raise KdeployError("minutes must be positive")
        if self.epochs <= 0:
            raise KdeployError("epochs must be positive")
        if self.storage is not None and not self.storage.startswith(STORAGES):
            raise KdeployError(f"--storage takes an Optuna storage URL ({', '.join(STORAGES[:3])}...) or journal:PATH, "
                               f"got {self.storage!r}")


def family_start(family: str, space: "SearchSpace") -> dict:
    """FAMILY_STARTS[family] moved into the user's space (Optuna refuses a fixed categorical value
    outside its choices): the nearest allowed choice, a rate clipped to its range."""
    return _within(family, FAMILY_STARTS[family], space)


def default_start(space: "SearchSpace") -> dict | None:
    """The hand-picked default (the baseline every front is compared with), moved into the
    user's space like a family start; None when the space has no layer students at all."""
    if "layers" not in space.families:
        return None
    return _within("layers", {k: v for k, v in DEFAULT_POINT.items() if k not in ("family", "temperature", "alpha")},
                   space)


def _within(family: str, start: dict, space: "SearchSpace") -> dict:
    point = {"family": family, "temperature": min(max(DEFAULT_POINT["temperature"], space.temperature[0]),
                                                  space.temperature[1]),
             "alpha": min(max(DEFAULT_POINT["alpha"], space.alpha[0]), space.alpha[1])}
    for knob, value in start.items():
        allowed = getattr(space, knob)
        if knob.endswith("learning_rate"):
            point[knob] = min(max(value, allowed[0]), allowed[1])
        elif value in allowed:
            point[knob] = value
        else:
            point[knob] = min(allowed, key=lambda choice: abs(float(choice) - float(value)))
    return point
