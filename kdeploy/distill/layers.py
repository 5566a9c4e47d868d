"""Layer-by-layer distillation: check that student and teacher can be aligned, and fetch
the teacher's features for the mapped layers (computed once per text, cached)."""
from __future__ import annotations

from ..data import text_fingerprint
from ..errors import KdeployError


def layer_objective(layer_losses: dict, layer_map: str | None, teacher, teacher_tokenizer, student,
                    student_tokenizer):
    """The weighted layer losses with their projections; refuses pairs that cannot align."""
    from .layer_losses import LayerObjective
    from .layer_map import model_depth, parse_layer_map

    names = ", ".join(layer_losses)
    student_depth, teacher_depth = model_depth(student), model_depth(teacher)
    if not student_depth or not hasattr(student.config, "num_attention_heads"):
        raise KdeployError(f"layer losses ({names}) need a transformer student; a {student.config.model_type} "
                           "student has no layers to align: use logits-only distillation for it")
    if not teacher_depth or not hasattr(teacher.config, "num_attention_heads"):
        raise KdeployError(f"layer losses ({names}) need a transformer teacher; {type(teacher).__name__} has none")
    if type(student_tokenizer).__name__ != type(teacher_tokenizer).__name__ or \
            student_tokenizer.get_vocab() != teacher_tokenizer.get_vocab():
        raise KdeployError(f"layer losses ({names}) align hidden states token by token, but the teacher and the "
                           "student tokenise differently; use a student that shares the teacher's tokenizer, or "
                           "drop the layer losses (logit distillation works across tokenizers)")
    if "attention" in layer_losses and student.config.num_attention_heads != teacher.config.num_attention_heads:
        raise KdeployError(f"the attention loss compares heads one to one, but the student has "
                           f"{student.config.num_attention_heads} heads and the teacher "
                           f"{teacher.config.num_attention_heads}; drop it or use the hidden-state loss")
    pairs = parse_layer_map(layer_map, student_depth, teacher_depth)
    return LayerObjective(layer_losses, pairs, student.config.hidden_size, teacher.config.hidden_size)


def teacher_features(objective, teacher, teacher_tokenizer, teacher_fp: str, teacher_name: str, student,
                     texts: list[str], max_length: int, cache_dir):
    """(feature store, what the record says about it)."""
    from .feature_cache import cached_teacher_features, feature_key

    layers = [t for _, t in objective.pairs]
    key = feature_key(teacher_fp, text_fingerprint(texts), max_length, layers, objective.needs)
    store, hit = cached_teacher_features(teacher, teacher_tokenizer, texts, key, max_length, layers,
                                         objective.needs, cache_dir)
    record = {"losses": objective.weights, "layer_map": [list(p) for p in objective.pairs],
              "projection": student.config.hidden_size != teacher.config.hidden_size,
              "features_cached": hit, "teacher": teacher_name}
    return store, record
