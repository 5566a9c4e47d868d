"""Several teachers as one: average their softened answers (model fusion).

The mixture p = Σ_k w_k·f(t_k/T), f the task kind's activation (softmax for classes, a sigmoid
per label, the score itself), is turned back into logits z = T·f⁻¹(p), so that f(z/T) = p
exactly and the unchanged KD loss distils the ensemble. Each teacher
tokenises the text itself, so teachers with different tokenizers combine freely.
"""
from __future__ import annotations

import numpy as np

from ..errors import KdeployError


def normalise_weights(weights: list[float] | None, count: int) -> np.ndarray:
    if weights is None:
        return np.full(count, 1.0 / count)
    if len(weights) != count:
        raise KdeployError(f"{len(weights)} teacher weights for {count} teachers: give one weight per --teacher")
    w = np.asarray(weights, dtype=np.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise KdeployError(f"teacher weights must be non-negative and not all zero, got {list(weights)}")
    return w / w.sum()


def ensemble_logits(logits: list[np.ndarray], weights: np.ndarray, temperature: float,
                    task: str = "classification") -> np.ndarray:
    """T·f⁻¹(Σ_k w_k f(logits_k / T)) for the task kind's activation f, in float64."""
    from ..tasks import task_kind

    kind = task_kind(task)
    if len(logits) == 1:
        return logits[0]
    shapes = {l.shape for l in logits}
    if len(shapes) != 1:
        raise KdeployError(f"the teachers' outputs differ in shape {sorted(shapes)}: they must share the label set")
    mix = np.zeros(logits[0].shape, dtype=np.float64)
    for w, z in zip(weights, logits):
        mix += w * kind.outputs(z.astype(np.float64) / temperature)
    return (temperature * kind.logits_of(mix)).astype(np.float32)
