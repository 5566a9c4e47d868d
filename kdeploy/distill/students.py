"""Student builders: `layers` (from the teacher), `bilstm`, `cnn` (declared in methods.py),
or any other string, taken as a pretrained model (local folder or hub id)."""
from __future__ import annotations

import copy

from torch import nn

from ..errors import KdeployError
from .config import StudentConfig
from .methods import STUDENTS

SEQUENCE = "AutoModelForSequenceClassification"  # the head every student builder makes by default

register_student = STUDENTS.register


def build_student(cfg: StudentConfig, teacher, teacher_tokenizer, label_names: list[str], trust_remote_code=False,
                  model_class: str | None = None):
    """Return (student model, its tokenizer, a JSON-ready description). `model_class`: the task
    kind's head where it is not a sequence classifier's (an entity tagger's); a builder is
    given it only then, and the task's entry lists the students that take it."""
    fn = STUDENTS.get(cfg.kind)
    if fn is None:
        return _pretrained(cfg, label_names, trust_remote_code)
    head = {"model_class": model_class} if model_class and model_class != SEQUENCE and cfg.kind != "layers" else {}
    return fn(cfg, teacher, teacher_tokenizer, label_names, **head)


def parse_layer_indices(spec: str | int, depth: int) -> list[int]:
    """`2` -> two evenly spaced layers including the first and last; `"0,3"` -> exactly those."""
    if isinstance(spec, int):
        if spec > depth:
            raise KdeployError(f"the teacher has {depth} layers; cannot keep {spec}")
        if spec == 1:
            return [depth - 1]
        return sorted({round(i * (depth - 1) / (spec - 1)) for i in range(spec)})
    try:
        idx = [int(s) for s in str(spec).split(",") if s.strip()]
    except ValueError:
        raise KdeployError(f"student layers {spec!r}: give a count (2) or indices (0,3,5)") from None
    if not idx or len(set(idx)) != len(idx) or idx != sorted(idx):
        raise KdeployError(f"student layers {spec!r}: indices must be distinct and increasing")
    if idx[0] < 0 or idx[-1] >= depth:
        raise KdeployError(f"student layers {spec!r}: the teacher has layers 0..{depth - 1}")
    return idx


def teacher_depth(model) -> int:
    """How many transformer layers a model has (ALBERT: applications of its shared layer)."""
    return int(getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layers", None) or 0)


def _find_layer_stack(model) -> tuple[str, nn.ModuleList]:
    depth = teacher_depth(model)
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and depth and len(module) == depth and name:
            return name, module
    raise KdeployError(
        f"cannot find the transformer layer stack of {type(model).__name__}; "
        "use a BERT-family teacher for --student layers, or give a pretrained student with --student PATH"
    )


def layer_kinds(config, depth: int) -> list | None:
    """What an architecture derives from a layer's *index* when it builds the model (None:
    nothing; the layers are interchangeable). A student reloaded from disk is rebuilt from its
    config, so its layer i must be a teacher layer of kind i. ModernBERT: every n-th layer
    attends globally (with the global RoPE base), the others locally; layer 0 has no
    attention norm."""
    if getattr(config, "model_type", None) == "modernbert":
        n = int(getattr(config, "global_attn_every_n_layers", 1) or 1)
        return [(i == 0, i % n == 0) for i in range(depth)]
    return None


def matched_layers(spec, depth: int, teacher_kinds: list, student_kinds_of) -> list[int]:
    """Teacher layers for a student whose layer kinds are fixed by position: a count picks,
    for each position, the unused teacher layer of its kind nearest the evenly spaced one; given
    indices must already match, or the error names a set that does."""
    count = spec if isinstance(spec, int) else len(parse_layer_indices(spec, depth))
    wanted = student_kinds_of(count)
    targets = [round(i * (depth - 1) / (count - 1)) if count > 1 else depth - 1 for i in range(count)]
    best: dict[int, tuple[int, list[int]]] = {-1: (0, [])}  # last layer used -> (distance so far, layers)
    for kind, target in zip(wanted, targets):  # increasing layers, each of its position's kind, nearest the even spread
        step: dict[int, tuple[int, list[int]]] = {}
        for last, (cost, layers) in best.items():
            for layer in range(last + 1, depth):
                if teacher_kinds[layer] == kind and (layer not in step or cost + abs(layer - target) < step[layer][0]):
                    step[layer] = (cost + abs(layer - target), layers + [layer])
        best = step
    if not best:
        raise KdeployError(f"this teacher's layers cannot make a {count}-layer student of its architecture: each "
                           "student layer must be a teacher layer of the same kind (global/local attention, the "
                           "first layer's missing norm); keep fewer layers")
    chosen = min(best.values())[1]
    if isinstance(spec, int):
        return chosen
    given = parse_layer_indices(spec, depth)
    if any(teacher_kinds[layer] != kind for layer, kind in zip(given, wanted)):
        raise KdeployError(f"student layers {spec!r}: this architecture builds each layer from its position "
                           "(global/local attention, the first layer's norm), so a student reloaded from disk would "
                           f"not be the one trained; layers {','.join(map(str, chosen))} match")
    return given


def check_rebuilds(student) -> None:
    """The student as built in memory must be the model its config and weights rebuild (what
    every later stage loads): same keys, same outputs. Refused here, before any training."""
    import torch

    rebuilt = type(student)(student.config)
    missing, unexpected = rebuilt.load_state_dict(student.state_dict(), strict=False)
    if missing or unexpected:
        raise KdeployError(f"the student would not reload as built: {len(missing)} weights missing "
                           f"({', '.join(missing[:3])}) and {len(unexpected)} unexpected ({', '.join(unexpected[:3])}); "
                           "choose other --student-layers")
    ids = torch.arange(1, 9).remainder(max(int(getattr(student.config, "vocab_size", 2)) - 1, 1)).add(1)[None]
    was = student.training
    with torch.no_grad():
        a, b = student.eval()(input_ids=ids).logits, rebuilt.eval()(input_ids=ids).logits
    student.train(was)
    if not torch.allclose(a, b, atol=1e-5):
        raise KdeployError(f"the student would not reload as built (its logits move by {(a - b).abs().max():.2e} "
                           "when rebuilt from its config): its architecture derives layer settings from their "
                           "position; choose other --student-layers")


def layers_from_teacher(cfg, teacher, teacher_tokenizer, label_names):
    """DistilBERT-style initialisation: the teacher's embeddings, head and a subset of its layers."""
    if teacher is None:
        raise KdeployError("--student layers needs a transformer teacher")
    if getattr(teacher.config, "num_hidden_groups", None) is not None:
        return _fewer_repeats(cfg, teacher, teacher_tokenizer)
    name, stack = _find_layer_stack(teacher)
    kinds = layer_kinds(teacher.config, len(stack))
    keep = parse_layer_indices(cfg.layers, len(stack)) if kinds is None else \
        matched_layers(cfg.layers, len(stack), kinds, lambda k: layer_kinds(teacher.config, k))
    student = copy.deepcopy(teacher)
    parent_name, _, attr = name.rpartition(".")
    parent = student.get_submodule(parent_name) if parent_name else student
    setattr(parent, attr, nn.ModuleList(copy.deepcopy(stack[i]) for i in keep))
    key = "num_hidden_layers" if hasattr(student.config, "num_hidden_layers") else "n_layers"
    setattr(student.config, key, len(keep))
    kinds_by_layer = getattr(teacher.config, "layer_types", None)
    if isinstance(kinds_by_layer, (list, tuple)) and len(kinds_by_layer) == len(stack):
        # transformers 5 lists each layer's kind (ModernBERT: full/sliding attention) in the config,
        # validated against the depth when saved: the kept layers keep theirs
        student.config.layer_types = [kinds_by_layer[i] for i in keep]
    for i, layer in enumerate(getattr(parent, attr)):  # keep per-layer indices (KV-cache bookkeeping) consistent
        for m in layer.modules():
            if isinstance(getattr(m, "config", None), type(student.config)):
                m.config = student.config  # each deep-copied layer brought its own copy: one config, as built
            if hasattr(m, "layer_idx"):
                m.layer_idx = i
            if hasattr(m, "layer_id"):  # ModernBERT's name for it
                m.layer_id = i
    check_rebuilds(student)
    return student, teacher_tokenizer, {"builder": "layers", "teacher_layers": keep}


def _fewer_repeats(cfg, teacher, teacher_tokenizer):
    """ALBERT shares one group of layer weights, applied num_hidden_layers times: its student is
    the same weights applied fewer times (a count; indices name no distinct layer)."""
    depth, groups = int(teacher.config.num_hidden_layers), int(teacher.config.num_hidden_groups)
    if groups != 1:
        raise KdeployError(f"this teacher shares {groups} groups of layers over {depth} layers; a student of fewer "
                           "layers would regroup them, so only one shared group (ALBERT's own) is supported")
    if not isinstance(cfg.layers, int):
        raise KdeployError(f"student layers {cfg.layers!r}: this teacher's layers share one set of weights, so a "
                           "student keeps a number of them (--student-layers 2), not indices")
    keep = parse_layer_indices(cfg.layers, depth)  # which teacher application each student one stands for
    student = copy.deepcopy(teacher)
    student.config.num_hidden_layers = len(keep)
    check_rebuilds(student)
    return student, teacher_tokenizer, {"builder": "layers", "teacher_layers": keep, "shared_weights": True}


def _small(model_cls, config_cls, cfg, teacher, tokenizer, label_names, default_dim=None, **extra):
    """A kdeploy small student over the teacher's tokenizer. Its embeddings start from the
    teacher's input embeddings when the widths match; at another width, from the teacher's
    static token vectors (model2vec-style, PCA to the width); with no teacher, at random."""
    if tokenizer is None:
        raise KdeployError("a bilstm/cnn/static student needs a tokenizer: a teacher, or --tokenizer PATH")
    teacher_emb = teacher.get_input_embeddings() if teacher is not None else None
    dim = cfg.embedding_dim or default_dim or (teacher_emb.weight.shape[1] if teacher_emb is not None else 128)
    from_pca = (teacher is not None and hasattr(teacher.config, "num_attention_heads")
                and len(tokenizer) == teacher_emb.weight.shape[0])
    if from_pca and not (teacher_emb.weight.shape[1] == dim and default_dim is None):
        limit = min(teacher_emb.weight.shape)  # PCA gives at most the teacher's width (and vocabulary) of components
        if dim > limit:
            from ..console import note

            note(f"embedding width {dim} is wider than the teacher's static vectors can fill ({limit}, the teacher's "
                 f"width); using {limit}")
            dim = limit
    config = config_cls(
        vocab_size=len(tokenizer), embedding_dim=dim, dropout=cfg.dropout,
        pad_token_id=tokenizer.pad_token_id or 0, num_labels=len(label_names),
        id2label=dict(enumerate(label_names)), label2id={n: i for i, n in enumerate(label_names)}, **extra,
    )
    model = model_cls(config)
    init = "random"
    if teacher_emb is not None and teacher_emb.weight.shape == model.embed.weight.shape and default_dim is None:
        model.embed.weight.data.copy_(teacher_emb.weight.data)
        init = "teacher embeddings"
    elif from_pca:
        import torch

        from .static_vectors import static_vectors

        model.embed.weight.data.copy_(torch.from_numpy(static_vectors(teacher, tokenizer, dim)))
        init = f"teacher static vectors (PCA to {dim})"
    if init != "random":
        model.embed.weight.data[config.pad_token_id].zero_()
    return model, tokenizer, {"builder": config.model_type, "embedding_init": init}


def bilstm(cfg, teacher, tokenizer, label_names, model_class: str = SEQUENCE):
    """Bidirectional LSTM over the teacher's tokenizer and embeddings (Tang et al., 2019); with a
    token classifier's `model_class`, a tag per token (an entity tagger)."""
    from ..modelio.small_models import HEADS, BiLSTMConfig

    return _small(HEADS[BiLSTMConfig.model_type][model_class], BiLSTMConfig, cfg, teacher, tokenizer, label_names,
                  hidden_size=cfg.hidden_size, num_layers=cfg.num_layers)


def cnn(cfg, teacher, tokenizer, label_names):
    """Kim-style text CNN over the teacher's tokenizer and embeddings, for the tightest devices."""
    from ..modelio.small_models import TextCNNConfig, TextCNNForSequenceClassification

    return _small(TextCNNForSequenceClassification, TextCNNConfig, cfg, teacher, tokenizer, label_names,
                  num_filters=cfg.num_filters)


def _pretrained(cfg, label_names, trust_remote_code):
    """Any smaller HF model, with its own tokenizer: teacher and student tokenise the raw text separately."""
    from ..modelio.loading import load_classifier, load_tokenizer

    model = load_classifier(cfg.kind, label_names=label_names, trust_remote_code=trust_remote_code)
    tokenizer = load_tokenizer(cfg.kind, trust_remote_code)
    info = {"builder": "pretrained", "model": cfg.kind}
    if cfg.own_layers:  # a smaller student of another family: its own layers, evenly spaced, as --student-layers
        from dataclasses import replace

        model, tokenizer, kept = layers_from_teacher(replace(cfg, layers=int(cfg.own_layers)), model, tokenizer,
                                                     label_names)
        info["own_layers"] = kept["teacher_layers"]
    return model, tokenizer, info


def static(cfg, teacher, tokenizer, label_names):
    """Static token vectors from the teacher's encoder (model2vec), mean-pooled, a small head."""
    from ..modelio.small_models import StaticConfig, StaticEmbeddingForSequenceClassification

    return _small(StaticEmbeddingForSequenceClassification, StaticConfig, cfg, teacher, tokenizer, label_names,
                  default_dim=256, hidden_size=cfg.hidden_size, normalize=cfg.normalize,
                  token_weights=cfg.token_weights)
