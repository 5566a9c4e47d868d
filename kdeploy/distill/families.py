"""The student families of the ladder, one entry each, carrying everything any stage or tool
knows about a family: which student kind builds it, whether it reads sentence pairs, its
search knobs and first trial, its recipe, its description and its plot colour. The search,
`kdeploy list`, the plots and distill's pair check all read this table; adding a family is one
entry here (its builder registers in kdeploy.distill.methods.STUDENTS). Torch-free."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # the StudentConfig.kind that builds it (`width` is a layers student, then FFN-pruned)
    description: str
    knobs: tuple[str, ...]  # what the search samples for it, beside alpha and temperature
    colour: str  # in the search's front plot
    reads_pairs: bool  # a sentence-pair task: segment embeddings ([CLS] a [SEP] b [SEP])
    copies_teacher_layers: bool  # initialised from the teacher's layers, else built over its tokenizer
    start: dict = field(default_factory=dict)  # the search's first trial ({}: distill's own defaults)
    recipe: str | None = None  # its recipe in models/ (SST-2)
    train: dict = field(default_factory=dict)  # distill's training defaults for it (a value the user gives wins)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("layers", "layers", "the teacher's own layers, fewest first (kdeploy distill --student-layers; prune --heads)",
           ("layers", "heads", "vocab", "learning_rate"), "#1c7ed6", reads_pairs=True, copies_teacher_layers=True,
           recipe="models/sst2_minilm.yaml"),
    Family("width", "layers", "layers, then feed-forward neurons pruned by importance (kdeploy prune --ffn)",
           ("layers", "ffn", "vocab", "learning_rate"), "#7048e8", reads_pairs=True, copies_teacher_layers=True,
           start={"layers": 2, "ffn": 0.5, "vocab": True, "learning_rate": 1e-4}, recipe="models/sst2_width.yaml"),
    Family("bilstm", "bilstm", "Bidirectional LSTM over the teacher's tokenizer and embeddings (Tang et al., 2019).",
           ("embedding_dim", "hidden_size", "vocab", "small_learning_rate"), "#2b8a3e", reads_pairs=False,
           copies_teacher_layers=False,
           start={"embedding_dim": 128, "hidden_size": 256, "vocab": True, "small_learning_rate": 2e-3},
           recipe="models/sst2_bilstm.yaml", train={"learning_rate": 2e-3}),
    Family("cnn", "cnn", "Kim-style text CNN over the teacher's tokenizer and embeddings, for the tightest devices.",
           ("embedding_dim", "num_filters", "vocab", "small_learning_rate"), "#e67700", reads_pairs=False,
           copies_teacher_layers=False,
           start={"embedding_dim": 128, "num_filters": 128, "vocab": True, "small_learning_rate": 2e-3},
           recipe="models/bbc_cnn.yaml", train={"learning_rate": 2e-3}),
    Family("static", "static", "Static token vectors from the teacher's encoder (model2vec-style), mean-pooled, "
           "a small head.", ("embedding_dim", "hidden_size", "vocab", "small_learning_rate"), "#c92a2a",
           reads_pairs=False, copies_teacher_layers=False,
           start={"embedding_dim": 256, "hidden_size": 256, "vocab": True, "small_learning_rate": 3e-4},
           recipe="models/sst2_static.yaml",
           # an epoch is seconds: train until validation stops improving, as model2vec's classifier does;
           # at 3e-4 rather than model2vec's 1e-3, which peaked after one epoch of the augmented text
           # (validation +0.6 on SST-2, +1.2 on SST-5, +0.4 on Rotten Tomatoes; a third of the spread:
           # bench/results/static_vs_model2vec.md)
           train={"learning_rate": 3e-4, "epochs": 20.0, "early_stopping": 3}),
)}

def training_defaults(kind: str) -> dict:
    """Distill's training defaults for a student kind: a layer student fine-tunes at 1e-4 for a few
    epochs, while token vectors and small heads trained from scratch need ten times the rate."""
    return dict(next((f.train for f in FAMILIES.values() if f.kind == kind), {}))


#: The StudentConfig fields each student kind reads (a "pretrained" student: another model, its own
#: tokenizer); a field set away from its default for a kind that does not read it is refused.
STUDENT_FIELDS: dict[str, tuple[str, ...]] = {
    "layers": ("layers",),
    "bilstm": ("embedding_dim", "hidden_size", "num_layers", "dropout"),
    "cnn": ("embedding_dim", "num_filters", "dropout"),
    "static": ("embedding_dim", "hidden_size", "normalize", "token_weights", "dropout"),
    "pretrained": ("own_layers",),
}
#: How the CLI spells each field (a recipe writes `student: {field: value}`).
STUDENT_FLAGS = {"layers": "--student-layers", "embedding_dim": "--embedding-dim", "hidden_size": "--hidden-size",
                 "num_filters": "--num-filters", "own_layers": "--student-own-layers"}

#: Student kinds (StudentConfig.kind) that read one token sequence: no segment embeddings, no pairs.
ONE_TEXT_KINDS = tuple(dict.fromkeys(f.kind for f in FAMILIES.values() if not f.reads_pairs))
#: Student kinds that copy the teacher's layers (every other registered kind is built over its tokenizer).
TEACHER_LAYER_KINDS = tuple(dict.fromkeys(f.kind for f in FAMILIES.values() if f.copies_teacher_layers))
