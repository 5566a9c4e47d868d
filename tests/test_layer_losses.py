"""Intermediate-layer losses: golden values, masking of padding, the layer map's checks."""
import math

import pytest
import torch

from kdeploy.distill.layer_losses import (LAYER_LOSSES, LayerBatch, LayerObjective, attention_kl, get_layer_loss,
                                          masked_mse)
from kdeploy.distill.layer_map import parse_layer_map, uniform_map
from kdeploy.errors import KdeployError

g = torch.Generator().manual_seed(0)
S_H = torch.randn(2, 3, 4, generator=g)  # [batch, tokens, width]
T_H = torch.randn(2, 3, 4, generator=g)
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])  # the second example has one padding token
S_A = torch.softmax(torch.randn(2, 2, 3, 3, generator=g), -1)  # [batch, heads, query, key]
T_A = torch.softmax(torch.randn(2, 2, 3, 3, generator=g), -1)

# Pinned from the formulas below (regressions in masking, reduction or direction of the KL).
GOLDEN_MSE = 1.9502522
GOLDEN_ATTENTION_KL = 0.5266528


def _mse_by_hand():
    total, count = 0.0, 0
    for b in range(2):
        for i in range(3):
            if MASK[b, i]:
                total += sum((S_H[b, i, d].item() - T_H[b, i, d].item()) ** 2 for d in range(4))
                count += 4
    return total / count


def _kl_by_hand():
    total, rows = 0.0, 0
    for b in range(2):
        for h in range(2):
            for i in range(3):
                if MASK[b, i]:
                    t, s = T_A[b, h, i].tolist(), S_A[b, h, i].tolist()
                    total += sum(p * math.log(p / q) for p, q in zip(t, s))
                    rows += 1
    return total / rows


def test_hidden_mse_golden_and_by_hand():
    value = masked_mse(S_H, T_H, MASK).item()
    assert value == pytest.approx(_mse_by_hand(), rel=1e-6)
    assert value == pytest.approx(GOLDEN_MSE, rel=1e-6)


def test_attention_kl_golden_and_by_hand():
    value = attention_kl(S_A, T_A, MASK).item()
    assert value == pytest.approx(_kl_by_hand(), rel=1e-5)
    assert value == pytest.approx(GOLDEN_ATTENTION_KL, rel=1e-6)
    assert attention_kl(T_A, T_A, MASK).item() == pytest.approx(0.0, abs=1e-7)  # identical distributions


def test_padding_teaches_nothing():
    noisy = S_H.clone()
    noisy[1, 2] += 100.0  # the padded position
    assert masked_mse(noisy, T_H, MASK).item() == pytest.approx(masked_mse(S_H, T_H, MASK).item(), rel=1e-6)


def test_registered_losses_and_their_wiring():
    assert {"hidden", "attention", "embedding"} <= set(LAYER_LOSSES)
    assert get_layer_loss("attention").needs == "attention"
    with pytest.raises(KdeployError, match="registered: attention, embedding, hidden"):
        get_layer_loss("hiden")
    batch = LayerBatch(mask=MASK, student_hidden=[S_H, S_H], teacher_hidden=[T_H, S_H],
                       student_embedding=S_H, teacher_embedding=T_H)
    assert get_layer_loss("hidden").fn(batch).item() == pytest.approx(GOLDEN_MSE / 2, rel=1e-6)  # mean over pairs
    assert get_layer_loss("embedding").fn(batch).item() == pytest.approx(GOLDEN_MSE, rel=1e-6)


def test_objective_weights_terms_and_projects_when_widths_differ():
    class Out:
        hidden_states = (torch.zeros(2, 3, 8), S_H.repeat(1, 1, 2), S_H.repeat(1, 1, 2))
        attentions = (S_A, S_A)

    teacher = {"hidden": torch.stack([T_H, T_H], 1), "attention": torch.stack([T_A, T_A], 1)}
    obj = LayerObjective({"hidden": 2.0, "attention": 0.5}, [(0, 1), (1, 3)], student_width=8, teacher_width=4)
    assert all(isinstance(p, torch.nn.Linear) for p in obj.project_hidden)  # 8 → 4 learned
    total, parts = obj(Out, teacher, MASK)
    assert total.item() == pytest.approx(2.0 * parts["hidden"] + 0.5 * parts["attention"], rel=1e-6)
    assert parts["attention"] == pytest.approx(GOLDEN_ATTENTION_KL, rel=1e-6)
    total.backward()
    assert obj.project_hidden[0].weight.grad is not None  # the projection learns
    same = LayerObjective({"hidden": 1.0}, [(0, 1)], student_width=4, teacher_width=4)
    assert not list(same.parameters())  # no projection when widths match


def test_uniform_layer_map():
    assert uniform_map(2, 6) == [(0, 2), (1, 5)]
    assert uniform_map(3, 12) == [(0, 3), (1, 7), (2, 11)]
    assert parse_layer_map(None, 2, 6) == parse_layer_map("uniform", 2, 6) == [(0, 2), (1, 5)]
    assert parse_layer_map("1:5, 0:1", 2, 6) == [(0, 1), (1, 5)]


@pytest.mark.parametrize("spec,message", [
    ("0:2,2:5", "the student has layers 0..1, not 2"),
    ("0:6", "the teacher has layers 0..5, not 6"),
    ("0:1,0:2", "each student layer may appear once"),
    ("0-2", "write student:teacher pairs"),
    ("a:b", "write student:teacher pairs"),
])
def test_layer_map_errors(spec, message):
    with pytest.raises(KdeployError, match=message):
        parse_layer_map(spec, 2, 6)


def test_deeper_student_needs_an_explicit_map():
    with pytest.raises(KdeployError, match="give --layer-map"):
        uniform_map(4, 2)
