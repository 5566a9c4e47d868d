"""Transfer data and teacher ensembles: augmentation is seeded, the ensemble is the
exact mixture of softened distributions, unlabelled text loads from plain files."""
import numpy as np
import pytest
import torch

from kdeploy.data import load_unlabeled_texts
from kdeploy.distill.augment import AUGMENTERS, augment_texts
from kdeploy.distill.ensemble import ensemble_logits, normalise_weights
from kdeploy.distill.losses import kd_loss
from kdeploy.errors import KdeployError

TEXTS = ["the film was a quiet triumph of acting", "dull", "an awful , messy and tedious story", ""]


def test_augmentation_is_seeded_and_reproducible():
    a = augment_texts(TEXTS, copies=3, seed=7)
    assert a == augment_texts(TEXTS, copies=3, seed=7)
    assert a != augment_texts(TEXTS, copies=3, seed=8)
    assert len(a) == 3 * len(TEXTS)
    assert all(t.strip() for t in a[:9])  # deletion never empties a sentence
    assert a[9:] == ["", "", ""]  # empty text stays empty
    assert any(t != TEXTS[0] for t in a[:3])
    # a copy depends on its sentence and copy number only, not on what else is in the list
    assert augment_texts(TEXTS[:1], copies=3, seed=7) == a[:3]


def test_each_augmenter():
    rng = lambda: np.random.default_rng(0)  # noqa: E731
    words = "a b c d e f g h".split()
    masked = AUGMENTERS["mask"](words, rng(), 0.5, "[MASK]")
    assert "[MASK]" in masked and len(masked) == len(words)
    deleted = AUGMENTERS["delete"](words, rng(), 0.5, "[MASK]")
    assert 0 < len(deleted) < len(words) and all(w in words for w in deleted)
    swapped = AUGMENTERS["swap"](words, rng(), 0.5, "[MASK]")
    assert sorted(swapped) == sorted(words) and swapped != words
    assert AUGMENTERS["delete"](["one"], rng(), 0.99, "[MASK]") == ["one"]


def test_augmentation_errors():
    with pytest.raises(KdeployError, match="registered: delete, mask, swap"):
        augment_texts(TEXTS, 1, ops=("shuffle",))
    with pytest.raises(KdeployError, match="zero or more"):
        augment_texts(TEXTS, -1)


def test_ensemble_is_the_mixture_of_softened_distributions():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    w = normalise_weights([3, 1], 2)
    for temp in (1.0, 2.0, 4.0):
        z = ensemble_logits([a, b], w, temp)
        soft = lambda x: torch.softmax(torch.tensor(x, dtype=torch.float64) / temp, -1).numpy()  # noqa: E731
        np.testing.assert_allclose(soft(z), 0.75 * soft(a) + 0.25 * soft(b), rtol=1e-5, atol=1e-7)
    assert ensemble_logits([a], normalise_weights(None, 1), 2.0) is a  # one teacher: unchanged
    np.testing.assert_allclose(normalise_weights(None, 4), [0.25] * 4)


def test_ensemble_errors():
    with pytest.raises(KdeployError, match="one weight per --teacher"):
        normalise_weights([1.0], 2)
    with pytest.raises(KdeployError, match="non-negative"):
        normalise_weights([1.0, -1.0], 2)
    with pytest.raises(KdeployError, match="share the label set"):
        ensemble_logits([np.zeros((2, 2)), np.zeros((2, 3))], np.array([0.5, 0.5]), 1.0)


def test_transfer_examples_contribute_kd_only():
    s = torch.tensor([[1.0, -1.0], [0.2, 0.4], [0.0, 1.0]])
    t = torch.tensor([[2.0, 0.0], [-1.0, 1.0], [0.5, 0.5]])
    y = torch.tensor([0, -100, 1])
    mixed = kd_loss(s, t, y, 0.5, 2.0)
    ce = torch.nn.functional.cross_entropy(s[[0, 2]], y[[0, 2]])
    kd = kd_loss(s, t, None, 1.0, 2.0)
    assert mixed.item() == pytest.approx((0.5 * ce + 0.5 * kd).item(), rel=1e-6)
    only_transfer = kd_loss(s, t, torch.full((3,), -100), 0.5, 2.0)
    assert only_transfer.item() == pytest.approx(0.5 * kd.item(), rel=1e-6)  # no NaN from an empty CE


def test_unlabeled_files(tmp_path):
    txt = tmp_path / "more.txt"
    txt.write_text("first line\n\n  second line  \nþriðja\n", encoding="utf-8")
    assert load_unlabeled_texts(txt) == ["first line", "second line", "þriðja"]
    tsv = tmp_path / "more.tsv"
    tsv.write_text("sentence\tlabel\na\t1\nb\t0\n", encoding="utf-8")
    assert load_unlabeled_texts(tsv) == ["a", "b"]
    with pytest.raises(KdeployError, match="file not found"):
        load_unlabeled_texts(tmp_path / "absent.txt")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(KdeployError, match="no text"):
        load_unlabeled_texts(tmp_path / "empty.txt")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe oops")
    with pytest.raises(KdeployError, match="not valid UTF-8"):
        load_unlabeled_texts(tmp_path / "bad.txt")
