"""The settings of the finetune and distill stages: the only place they and their defaults
are declared. Torch-free, so recipes validate without loading a model.

Settings are what a user chooses; which teacher, which data and where to write are inputs,
given beside them: `distill(settings, teacher=..., data=..., out=...)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..configtools import check_finite
from ..errors import KdeployError
from .methods import LAYER_LOSSES, LOSSES, STUDENTS

MIXED_PRECISION = ("auto", "no", "fp16", "bf16")


@dataclass
class TrainConfig:
    epochs: float = 3.0
    learning_rate: float = 5e-5
    batch_size: int = 32
    eval_batch_size: int = 64
    gradient_accumulation: int = 1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int | None = None  # None: auto — SHORT_WINDOW, or a longer window when the training texts are long
    seed: int = 42
    mixed_precision: str = "auto"  # auto (fp16 on CUDA), no, fp16, bf16
    group_by_length: bool = True  # bucket batches by length: padding wastes most of a batch on CPU
    early_stopping: int | None = None  # stop after this many epochs without a better validation score (epochs: the budget); 0/None: off

    def __post_init__(self) -> None:
        check_finite(self)
        if self.epochs <= 0:
            raise KdeployError(f"epochs must be positive, got {self.epochs}")
        if not 0 < self.learning_rate < 1:
            raise KdeployError(f"learning rate {self.learning_rate} is out of range (0, 1)")
        for name in ("batch_size", "eval_batch_size", "gradient_accumulation"):
            if int(getattr(self, name)) < 1:
                raise KdeployError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_length is not None and self.max_length < 2:
            raise KdeployError(f"max_length must be at least 2 tokens, got {self.max_length}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise KdeployError(f"mixed_precision must be auto, no, fp16 or bf16, got {self.mixed_precision!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise KdeployError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.early_stopping is not None and self.early_stopping < 0:
            raise KdeployError(f"early_stopping is a patience in epochs (0: off), got {self.early_stopping}")
        if self.weight_decay < 0:
            raise KdeployError(f"weight_decay must be zero or more, got {self.weight_decay}")


@dataclass
class StudentConfig:
    """What the student is. `kind` is a registered builder or a model path / hub id."""

    kind: str = "layers"
    layers: str | int = "auto"  # for `layers`: how many teacher layers to keep, indices "0,3,5", or auto (a depth probe)
    embedding_dim: int | None = None  # bilstm/cnn: None = the teacher's width, initialised from its embeddings
    hidden_size: int = 256  # bilstm
    num_layers: int = 1  # bilstm
    num_filters: int = 128  # cnn
    dropout: float = 0.1
    normalize: bool = False  # static: L2-normalise the pooled token vectors before the head (model2vec's classifier does)
    token_weights: bool = False  # static: a learnt weight per token in the mean, starting at 1 (model2vec's classifier)
    own_layers: int | None = None  # a pretrained student (another tokenizer): keep this many of its layers (None: all)

    def __post_init__(self) -> None:
        check_finite(self)
        if isinstance(self.layers, str) and self.layers.strip().isdigit():
            self.layers = int(self.layers)
        if isinstance(self.layers, str) and self.layers.strip().lower() == "auto":
            self.layers = "auto"
        if isinstance(self.layers, int) and self.layers < 1:
            raise KdeployError(f"student layers must be at least 1, got {self.layers}")
        if isinstance(self.layers, (list, tuple)):
            self.layers = ",".join(str(i) for i in self.layers)
        for name in ("hidden_size", "num_layers", "num_filters"):
            if getattr(self, name) < 1:
                raise KdeployError(f"student {name} must be positive, got {getattr(self, name)}")
        if self.own_layers is not None and (int(self.own_layers) < 1 or self.builder != "pretrained"):
            raise KdeployError(f"student own_layers ({self.own_layers}) keeps layers of a pretrained student (--student "
                               "PATH, another tokenizer), at least 1; for the teacher's own layers give --student-layers")
        if self.embedding_dim is not None and self.embedding_dim < 1:
            raise KdeployError(f"student embedding_dim must be positive, got {self.embedding_dim}")
        if not 0 <= self.dropout < 1:
            raise KdeployError(f"student dropout must be in [0, 1), got {self.dropout}")

    @property
    def builder(self) -> str:
        return self.kind if self.kind in STUDENTS else "pretrained"

    @property
    def probes_depth(self) -> bool:
        """A `layers` student with no depth given: the depth probe chooses it (kdeploy.distill.depth_probe)."""
        return self.builder == "layers" and self.layers == "auto"

    def check_fields(self) -> None:
        """Refuse a knob this student does not read (--embedding-dim on a layers student, --student-layers
        with --student static): it would be ignored without a word. Distill's check, not finetune's
        (finetune's `architecture` names bilstm/cnn sizes under the default kind)."""
        from dataclasses import fields

        from .families import STUDENT_FIELDS, STUDENT_FLAGS

        reads = STUDENT_FIELDS.get(self.builder)
        if reads is None:
            return
        default = StudentConfig()
        ignored = [f.name for f in fields(self) if f.name != "kind" and f.name not in reads
                   and getattr(self, f.name) != getattr(default, f.name)
                   and not (f.name == "layers" and str(self.layers) == str(default.layers))]
        if ignored:
            said = ", ".join(STUDENT_FLAGS.get(n, f"student.{n}") for n in ignored)
            knobs = ", ".join(STUDENT_FLAGS.get(n, f"student.{n}") for n in reads) or "none"
            raise KdeployError(f"{said} {'does' if len(ignored) == 1 else 'do'} not apply to a {self.builder} student "
                               f"(it reads: {knobs}); drop {'it' if len(ignored) == 1 else 'them'}, or choose the "
                               "student family it belongs to with --student")


@dataclass
class FinetuneSettings:
    """Fine-tune a pretrained encoder (or train a bilstm/cnn from scratch) on labelled data."""

    architecture: StudentConfig = field(default_factory=StudentConfig)  # bilstm/cnn sizes
    # until validation stops improving (patience 2) within a 10-epoch budget: a fixed 3 epochs left
    # teachers undertrained (SST-2, SICK: still rising at the last epoch)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, learning_rate=5e-5, early_stopping=2))
    # a short probe of 2e-5, 5e-5 and 1e-4 first (kdeploy.distill.lr_probe): on when the CLI or a recipe
    # gives no learning rate (fill_defaults); a rate given is used as it is, as is a config built in code
    learning_rate_probe: bool = False
    trust_remote_code: bool = False

    @classmethod
    def fill_defaults(cls, given: dict) -> dict:
        """The probe is on when the user gave no learning rate (and did not turn it off)."""
        train = given.get("train")
        rate_given = isinstance(train, TrainConfig) or "learning_rate" in (train or {})
        return given if "learning_rate_probe" in given else {**given, "learning_rate_probe": not rate_given}


@dataclass
class DistillSettings:
    """L = (1-α)·CE + α·T²·KL(teacher_T ‖ student_T) + Σ weight·layer loss, on the labelled
    data plus any transfer text. Several teachers: the student learns their averaged softened
    distribution (`teacher_weights`, default equal); layer losses use the first teacher."""

    student: StudentConfig = field(default_factory=StudentConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3, learning_rate=1e-4))
    alpha: float = 0.5
    temperature: float = 2.0
    loss: str = "kd"  # the logit loss, by registered name (kdeploy list): kd, logit-mse
    teacher_weights: list[float] | None = None
    layer_losses: dict[str, float] | list[str] | str = field(default_factory=dict)  # {"hidden": 1.0, "attention": 1.0}
    layer_map: str | None = None  # "0:2,1:5" (student:teacher, from 0); default uniform
    augment: int | None = None  # augmented copies per training sentence (labelled by the teacher); None: by data size
    augment_seed: int = 0
    teacher_chunks: bool = False  # a text longer than the teacher's window: logits averaged over its windows
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        check_finite(self)
        self.student.check_fields()
        if not 0.0 <= self.alpha <= 1.0:
            raise KdeployError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.temperature <= 0:
            raise KdeployError(f"temperature must be positive, got {self.temperature}")
        LOSSES.check(self.loss)
        if self.augment is not None and int(self.augment) < 0:
            raise KdeployError(f"augment must be zero or more copies per example, got {self.augment}")
        if self.augment and self.alpha == 0:
            raise KdeployError("augmented text is labelled by the teacher alone: it needs alpha > 0")
        self.layer_losses = parse_layer_losses(self.layer_losses)
        if self.teacher_weights is not None:
            if any(w < 0 for w in self.teacher_weights) or sum(self.teacher_weights) <= 0:
                raise KdeployError(f"teacher weights must be non-negative and not all zero, got {self.teacher_weights}")

    @classmethod
    def fill_defaults(cls, given: dict) -> dict:
        """The given settings with the student family's training defaults where the user gave none
        (a static student's learning rate, epochs and early stopping are not a layer student's)."""
        from .families import training_defaults

        student = given.get("student")
        kind = student.kind if isinstance(student, StudentConfig) else (student or {}).get("kind", "layers")
        train = given.get("train")
        family = training_defaults(str(kind)) if isinstance(kind, str) else {}
        if not family or isinstance(train, TrainConfig) or not isinstance(train or {}, dict):
            return given
        return {**given, "train": {**family, **(train or {})}}

    def check_inputs(self, teachers: list[str], unlabeled: str | None) -> None:
        """What the settings require of the inputs given beside them."""
        if not teachers:
            raise KdeployError("no teacher given")
        if self.teacher_weights is not None and len(self.teacher_weights) != len(teachers):
            raise KdeployError(f"{len(self.teacher_weights)} teacher weights for {len(teachers)} teachers: "
                               "give one weight per --teacher")
        if unlabeled and self.alpha == 0:
            raise KdeployError("unlabelled text is labelled by the teacher alone: it needs alpha > 0")


#: Transfer texts a distillation should see (labelled + augmented): on small training sets, the
#: augmented copies are what lift a small student to within a few points of its teacher
#: (SST-2: 1 copy 85.59, 8 copies 86.62 over 5 seeds; a 6-class TREC trial: 95.5% of the teacher
#: without copies, 97.9% with 8). Below this many training sentences, copies are added.
AUTO_AUGMENT_TARGET = 60_000
AUTO_AUGMENT_MAX = 8


SHORT_WINDOW = 128  # tokens per text when nine in ten training texts fit (sentences, reviews' summaries)
LONG_WINDOW = 512  # a transformer's usual position limit: what long documents get
SEQUENCE_CAP = 2048  # a BiLSTM/CNN/static student reads long texts at linear cost, up to this


def auto_max_length(lengths: list[int], limit: int | None, truncation_given: bool) -> tuple[int, str | None, str]:
    """(max_length, truncation (None: leave it), why) for `max_length: auto`, from the token
    lengths of a sample of the training texts and the model's position limit (None: the
    student has no position table and reads the whole text at linear cost)."""
    short = SHORT_WINDOW if limit is None else min(SHORT_WINDOW, limit)  # never past the position table
    capped = " (the model's limit)" if short < SHORT_WINDOW else ""
    if not lengths:
        return short, None, "no training texts to measure" + capped
    ordered = sorted(lengths)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    if p90 <= short:
        return short, None, f"9 in 10 training texts fit {short} tokens{capped}"
    if limit is None:
        window = min(SEQUENCE_CAP, -(-p90 // 64) * 64)
        return window, None, (f"9 in 10 training texts are under {p90} tokens, and this student reads them whole at "
                              f"linear cost" + (f"; --max-length {SHORT_WINDOW} for speed" if window > SHORT_WINDOW else ""))
    window = min(limit, LONG_WINDOW)
    cut = "head+tail" if p90 > window and not truncation_given else None
    return window, cut, (f"9 in 10 training texts are under {p90} tokens"
                         + (f", more than the model's {limit}-token limit" if p90 > window and window == limit else "")
                         + ("; the start and the end of each are read, as Sun et al. 2019 found best" if cut else "")
                         + (f"; --max-length {SHORT_WINDOW} for speed" if window > SHORT_WINDOW else ""))


def auto_augment(train_size: int, alpha: float) -> tuple[int, str]:
    """(copies per example, why) for `augment: auto`."""
    if alpha == 0:
        return 0, "alpha is 0, so the teacher labels nothing"
    copies = min(AUTO_AUGMENT_MAX, max(0, -(-AUTO_AUGMENT_TARGET // max(train_size, 1)) - 1))
    if copies == 0:
        return 0, f"{train_size:,} training examples are plenty for transfer"
    return copies, (f"{train_size:,} training examples is small: {copies} augmented copies each bring the transfer "
                    f"set to about {train_size * (copies + 1):,} examples; --augment 0 turns this off")


def parse_layer_losses(spec) -> dict[str, float]:
    """{"hidden": 1} / ["hidden", "attention"] / "hidden=1,attention=0.5" -> {name: weight}."""
    if not spec:
        return {}
    if isinstance(spec, str):
        spec = [item for item in spec.split(",") if item.strip()]
    if isinstance(spec, (list, tuple)):
        parsed = {}
        for item in spec:
            name, _, weight = str(item).partition("=")
            try:
                parsed[name.strip()] = float(weight) if weight.strip() else 1.0
            except ValueError:
                raise KdeployError(f"layer loss {item!r}: write NAME or NAME=WEIGHT, e.g. hidden=1.0") from None
        spec = parsed
    out = {}
    for name, weight in dict(spec).items():
        LAYER_LOSSES.check(name)
        weight = float(weight)
        if not weight >= 0 or weight == float("inf"):
            raise KdeployError(f"layer loss {name!r} needs a finite, non-negative weight, got {weight}")
        out[str(name)] = weight
    return out
