"""The KD loss: golden values, its limits, and the convention that α weighs the KD term."""
import math

import pytest
import torch
import torch.nn.functional as F

from kdeploy.distill.losses import LOSSES, get_loss, kd_loss

S = torch.tensor([[1.0, -0.5, 0.2], [0.3, 0.8, -1.2]])
TCH = torch.tensor([[2.0, 0.0, -1.0], [-0.4, 1.5, 0.1]])
Y = torch.tensor([0, 1])


def _by_hand(s, t, y, alpha, temp):
    """The formula written out with plain math, one example at a time."""
    total = 0.0
    for si, ti, yi in zip(s.tolist(), t.tolist(), y.tolist()):
        lse = math.log(sum(math.exp(v) for v in si))
        ce = lse - si[yi]
        ps = [math.exp(v / temp) for v in si]
        pt = [math.exp(v / temp) for v in ti]
        ps = [v / sum(ps) for v in ps]
        pt = [v / sum(pt) for v in pt]
        kl = sum(p * math.log(p / q) for p, q in zip(pt, ps))
        total += (1 - alpha) * ce + alpha * temp**2 * kl
    return total / len(y)


# Golden values computed once from the formula and pinned (regressions in sign, T², reduction).
GOLDEN = [
    (0.5, 2.0, 0.4191703),
    (0.0, 2.0, 0.5346260),
    (1.0, 1.0, 0.1860760),
    (0.9, 4.0, 0.3759705),
]


@pytest.mark.parametrize("alpha,temp,expected", GOLDEN)
def test_golden_values(alpha, temp, expected):
    got = kd_loss(S, TCH, Y, alpha, temp).item()
    assert got == pytest.approx(expected, abs=1e-6)
    assert got == pytest.approx(_by_hand(S, TCH, Y, alpha, temp), abs=1e-6)


def test_alpha_zero_is_plain_cross_entropy():
    assert kd_loss(S, TCH, Y, 0.0, 3.0).item() == pytest.approx(F.cross_entropy(S, Y).item(), abs=1e-7)
    # the teacher is not even needed
    assert kd_loss(S, None, Y, 0.0, 3.0).item() == pytest.approx(F.cross_entropy(S, Y).item(), abs=1e-7)


def test_temperature_squared_scaling():
    temp = 3.0
    kl = F.kl_div(F.log_softmax(S / temp, -1), F.softmax(TCH / temp, -1), reduction="batchmean").item()
    assert kd_loss(S, TCH, None, 1.0, temp).item() == pytest.approx(temp**2 * kl, rel=1e-5)


def test_identical_logits_give_zero_kd():
    assert kd_loss(S, S.clone(), None, 1.0, 2.0).item() == pytest.approx(0.0, abs=1e-6)


def test_gradients_flow_to_student_only():
    s = S.clone().requires_grad_(True)
    t = TCH.clone().requires_grad_(True)
    kd_loss(s, t, Y, 0.5, 2.0).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_a_score_task_has_a_score_loss():
    """A score task (the registry's entry, not the output's shape, says so): (1-α)·MSE(y, s) on
    labelled rows (NaN marks transfer text) + α·MSE(t, s); golden value."""
    s, t = torch.tensor([[1.0], [2.0]]), torch.tensor([[1.5], [2.5]])
    y = torch.tensor([0.0, float("nan")])
    assert torch.isclose(kd_loss(s, t, y, 0.5, 2.0, task="regression"), torch.tensor(0.5 * 1.0 + 0.5 * 0.25))
    assert torch.isclose(kd_loss(s, t, y, 1.0, 2.0, task="regression"), torch.tensor(0.25))  # T plays no part
    with pytest.raises(ValueError, match="a score student needs a score teacher"):
        kd_loss(s, torch.zeros(2, 3), y, 0.5, 2.0, task="regression")


def test_missing_inputs_are_refused():
    with pytest.raises(ValueError, match="needs labels"):
        kd_loss(S, TCH, None, 0.5, 2.0)
    with pytest.raises(ValueError, match="needs teacher logits"):
        kd_loss(S, None, Y, 0.5, 2.0)
    with pytest.raises(ValueError, match="share the label set"):
        kd_loss(S, TCH[:, :2], Y, 0.5, 2.0)


def test_registry():
    assert get_loss("kd") is kd_loss and "kd" in LOSSES
    from kdeploy.errors import KdeployError

    with pytest.raises(KdeployError, match="registered: kd"):
        get_loss("nope")


def test_logit_mse_is_registered_and_selectable():
    """The second logit loss (Tang et al.'s MSE on raw logits), reached by name from the config."""
    from kdeploy.distill.config import DistillSettings
    from kdeploy.distill.losses import logit_mse_loss
    from kdeploy.errors import KdeployError

    assert get_loss("logit-mse") is logit_mse_loss
    ce = F.cross_entropy(S, Y)
    mse = ((S - TCH) ** 2).mean()
    assert math.isclose(float(logit_mse_loss(S, TCH, Y, 0.5, 7.0)), 0.5 * float(ce) + 0.5 * float(mse), rel_tol=1e-6)
    assert math.isclose(float(logit_mse_loss(S, TCH, Y, 0.5, 2.0)), 0.7139797, rel_tol=1e-5)  # golden
    assert float(logit_mse_loss(TCH, TCH, Y, 1.0, 2.0)) == 0.0
    assert DistillSettings(loss="logit-mse").loss == "logit-mse"
    with pytest.raises(KdeployError, match="unknown loss 'l2'; registered: kd, logit-mse"):
        DistillSettings(loss="l2")
