"""Student builders: layer subsets of the teacher, and padding-invariant BiLSTM/CNN students."""
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from kdeploy.distill.config import StudentConfig
from kdeploy.distill.students import STUDENTS, build_student, parse_layer_indices
from kdeploy.modelio.loading import load_classifier, model_fingerprint
from kdeploy.errors import KdeployError


def test_registry_lists_builders():
    assert {"layers", "bilstm", "cnn"} <= set(STUDENTS)
    assert StudentConfig(kind="some/hub-model").builder == "pretrained"


@pytest.mark.parametrize("spec,depth,expected", [(2, 6, [0, 5]), (3, 6, [0, 2, 5]), (6, 6, [0, 1, 2, 3, 4, 5]),
                                                 (1, 6, [5]), ("1,4", 6, [1, 4]), (6, 12, [0, 2, 4, 7, 9, 11])])
def test_layer_indices(spec, depth, expected):
    assert parse_layer_indices(spec, depth) == expected


@pytest.mark.parametrize("spec,message", [(7, "cannot keep 7"), ("0,6", "layers 0..5"), ("3,1", "increasing"),
                                          ("a,b", "a count")])
def test_layer_indices_errors(spec, message):
    with pytest.raises(KdeployError, match=message):
        parse_layer_indices(spec, 6)


def _inputs(tok, texts):
    return tok(texts, padding=True, return_tensors="pt")


def test_layers_student_copies_the_chosen_layers(tiny_bert):
    teacher = load_classifier(str(tiny_bert)).eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    full, _, info = build_student(StudentConfig(layers=4), teacher, tok, ["negative", "positive"])
    x = _inputs(tok, ["a good film", "the plot was dull and boring"])
    with torch.no_grad():
        assert torch.allclose(full.eval()(**x).logits, teacher(**x).logits, atol=1e-6)
    student, _, info = build_student(StudentConfig(layers="1,3"), teacher, tok, ["negative", "positive"])
    assert info["teacher_layers"] == [1, 3]
    assert student.config.num_hidden_layers == 2 and len(student.bert.encoder.layer) == 2
    assert torch.equal(student.bert.encoder.layer[0].output.dense.weight, teacher.bert.encoder.layer[1].output.dense.weight)
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight)
    assert len(teacher.bert.encoder.layer) == 4  # the teacher is untouched


def test_layers_student_save_and_reload(tiny_bert, tmp_path):
    teacher = load_classifier(str(tiny_bert)).eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    student, _, _ = build_student(StudentConfig(layers=2), teacher, tok, ["negative", "positive"])
    student.save_pretrained(tmp_path)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert model_fingerprint(again) == model_fingerprint(student)


@pytest.mark.parametrize("kind", ["bilstm", "cnn"])
def test_small_students_are_padding_invariant_and_reload(tiny_bert, tmp_path, kind):
    teacher = load_classifier(str(tiny_bert))
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    model, _, info = build_student(StudentConfig(kind=kind, hidden_size=16), teacher, tok, ["negative", "positive"])
    assert info["embedding_init"] == "teacher embeddings"
    model.eval()
    texts = ["good", "the film was very good and the story was fine", "dull plot"]
    batch = _inputs(tok, texts)
    with torch.no_grad():
        batched = model(**batch).logits
        for i, text in enumerate(texts):
            alone = model(**_inputs(tok, [text])).logits[0]
            assert torch.allclose(alone, batched[i], atol=1e-5), text
    model.save_pretrained(tmp_path)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(again(**batch).logits, batched, atol=1e-6)
    assert again.config.id2label == {0: "negative", 1: "positive"}


def test_small_student_trains_on_gradients(tiny_bert):
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    model, _, info = build_student(StudentConfig(kind="bilstm", embedding_dim=8, hidden_size=8), None, tok, ["a", "b"])
    assert info["embedding_init"] == "random"
    out = model(**_inputs(tok, ["good film", "bad"]), labels=torch.tensor([1, 0]))
    out.loss.backward()
    assert model.embed.weight.grad is not None and model.embed.weight.grad[0].abs().sum() == 0  # pad row frozen


def test_a_normalised_static_student_ignores_the_scale_of_its_vectors():
    """normalize (model2vec's classifier): the pooled vector is L2-normalised before the head, so
    scaling every token vector leaves the logits as they were; without it they change."""
    import torch

    from kdeploy.modelio.small_models import StaticConfig, StaticEmbeddingForSequenceClassification

    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    mask = (ids != 0).long()
    for normalize in (True, False):
        torch.manual_seed(0)
        model = StaticEmbeddingForSequenceClassification(StaticConfig(vocab_size=16, embedding_dim=8, hidden_size=4,
                                                                      dropout=0.0, normalize=normalize)).eval()
        before = model(input_ids=ids, attention_mask=mask).logits
        with torch.no_grad():
            model.embed.weight.mul_(3.0)
        after = model(input_ids=ids, attention_mask=mask).logits
        assert torch.allclose(before, after, atol=1e-6) == normalize


def test_a_static_students_token_weights_start_at_one_and_scale_a_tokens_say():
    """token_weights (model2vec's classifier): a scalar per token, 1 at the start (the same logits
    as without), that scales the token's vector inside the mean; the count of tokens is unchanged,
    so a weight of 0 silences a token without making the others count more."""
    import torch

    from kdeploy.modelio.small_models import StaticConfig, StaticEmbeddingForSequenceClassification

    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    mask = (ids != 0).long()
    models = []
    for weights in (False, True):
        torch.manual_seed(0)
        models.append(StaticEmbeddingForSequenceClassification(StaticConfig(
            vocab_size=16, embedding_dim=8, hidden_size=4, dropout=0.0, token_weights=weights)).eval())
    plain, weighted = models
    missing, unexpected = weighted.load_state_dict(plain.state_dict(), strict=False)  # the same vectors and head
    assert missing == ["token_weight.weight"] and not unexpected
    assert weighted.token_weight.weight.shape == (16, 1) and bool((weighted.token_weight.weight == 1).all())
    torch.testing.assert_close(weighted(input_ids=ids, attention_mask=mask).logits,
                               plain(input_ids=ids, attention_mask=mask).logits)
    with torch.no_grad():
        weighted.token_weight.weight[6] = 0.0
        plain.embed.weight[6] = 0.0  # the same function: token 6 adds nothing, the mean still divides by 3
    torch.testing.assert_close(weighted(input_ids=ids, attention_mask=mask).logits,
                               plain(input_ids=ids, attention_mask=mask).logits)
    assert weighted.token_weight.weight.requires_grad


@pytest.mark.parametrize("kind", ["static", "static-normalized", "static-weighted", "cnn", "bilstm"])
def test_small_student_end_to_end(kind, tiny_bert, toy_files, tmp_path, cache_dir):
    """distil -> export (parity at every shape) -> int8 -> bundle -> predict, for each small student kind."""
    import numpy as np

    from conftest import data_of, distill_settings
    from kdeploy.distill.api import distill
    from kdeploy.edge import Predictor
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    student = {"kind": kind, "embedding_dim": 16, **({"num_filters": 8} if kind == "cnn" else {"hidden_size": 16})}
    if kind == "static-normalized":
        student.update(kind="static", normalize=True)
    if kind == "static-weighted":
        student.update(kind="static", token_weights=True)
    record = distill(distill_settings(student=student, train={"epochs": 2, "learning_rate": 5e-3}),
                     teacher=str(tiny_bert), data=data_of(toy_files), out=tmp_path / "s")
    assert record.model["builder"] == f"kdeploy-{student['kind']}"
    assert record.model["embedding_init"].startswith("teacher static vectors")  # 16 != the teacher's 32
    report = export(ExportSettings(max_accuracy_drop=100), model=tmp_path / "s", out=tmp_path / "onnx",
                    data=data_of(toy_files))
    assert report.parity["model.onnx"].passed and report.exporter == "torch.onnx"
    bundle = package(PackageSettings(archive=None), export_dir=tmp_path / "onnx", out=tmp_path / "b")
    texts = ["the film was good", "", "dull " * 200]
    predictor = Predictor(bundle.bundle)
    got = predictor.logits(texts)
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "onnx")
    session = ort.InferenceSession(str(tmp_path / "onnx/model.int8.onnx"), providers=["CPUExecutionProvider"])
    enc = tok(texts, padding=True, truncation=True, max_length=32, return_tensors="np")
    want = session.run(None, {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert len(predictor.predict(texts)) == 3


def test_static_vectors_follow_the_model2vec_recipe(tiny_bert):
    """PCA to the asked width, deterministic, frequent (low-id) tokens weighted down by SIF."""
    import numpy as np

    from kdeploy.distill.static_vectors import pca, sif_weights, static_vectors

    teacher = load_classifier(str(tiny_bert)).eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    a, b = static_vectors(teacher, tok, 8), static_vectors(teacher, tok, 8)
    assert a.shape == (len(tok), 8) and np.array_equal(a, b)
    w = sif_weights(100)
    assert np.all(np.diff(w) > 0) and w[-1] < 1
    x = np.random.default_rng(0).standard_normal((50, 6))
    reduced = pca(x, 3)
    assert reduced.shape == (50, 3)
    variances = reduced.var(0)
    assert variances[0] >= variances[1] >= variances[2]


def _tiny_modernbert(folder, layers=6, every=3):
    """A 6-layer ModernBERT (global attention every 3rd layer, as the real one) over the toy vocabulary."""
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "ModernBertConfig"):
        pytest.skip("this transformers has no ModernBERT")
    import torch
    from conftest import build_tokenizer

    tok = build_tokenizer(folder)
    torch.manual_seed(0)
    config = transformers.ModernBertConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=48, num_hidden_layers=layers, num_attention_heads=2,
        global_attn_every_n_layers=every, local_attention=4, max_position_embeddings=64, pad_token_id=0,
        bos_token_id=2, eos_token_id=3, cls_token_id=2, sep_token_id=3, num_labels=2, global_rope_theta=160000.0,
        local_rope_theta=10000.0, attn_implementation="eager")
    model = transformers.ModernBertForSequenceClassification(config).eval()
    for p in model.parameters():  # random norms too, so a dropped or invented norm shows in the logits
        torch.nn.init.normal_(p, std=0.3)
    return model, tok


def test_modernbert_student_reloads_as_trained(tmp_path):
    """ModernBERT builds each layer's attention (global/local, RoPE base) and norm from its
    index: a student must keep layers of each position's kind, or it reloads as another model
    (issue 25: up to 0.057 away, every gate passing). Golden choice and exact reload."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from kdeploy.distill.students import build_student

    teacher, tok = _tiny_modernbert(tmp_path / "t")
    for spec, expected in ((2, [0, 5]), (3, [0, 2, 5]), (4, [0, 1, 2, 3]), ("0,4", [0, 4])):
        student, _, info = build_student(StudentConfig(layers=spec), teacher, tok, ["a", "b"])
        assert info["teacher_layers"] == expected, spec
        student.save_pretrained(tmp_path / f"s{spec}")
        reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / f"s{spec}").eval()
        x = tok(["good film " * 10, "dull"], padding=True, return_tensors="pt")
        with torch.no_grad():
            assert torch.allclose(student.eval()(**x).logits, reloaded(**x).logits, atol=1e-6), spec


@pytest.mark.parametrize("spec, message", [("0,3", "layers 0,5 match"), ("1,4", "layers 0,5 match")])
def test_modernbert_layers_of_the_wrong_kind_are_refused(tmp_path, spec, message):
    from kdeploy.distill.students import build_student

    teacher, tok = _tiny_modernbert(tmp_path / "t")
    with pytest.raises(KdeployError, match=message):
        build_student(StudentConfig(layers=spec), teacher, tok, ["a", "b"])


def test_a_student_that_would_not_reload_is_refused(tiny_bert):
    """The generic guard, for any architecture that derives settings from position: here a
    copied layer that a rebuild would not keep."""
    from kdeploy.distill.students import check_rebuilds
    from kdeploy.modelio.loading import load_classifier

    student = load_classifier(str(tiny_bert))
    student.bert.encoder.layer[0].attention.output.extra = torch.nn.Linear(2, 2)  # not in any rebuilt model
    with pytest.raises(KdeployError, match="would not reload as built"):
        check_rebuilds(student)


def test_a_pretrained_student_keeps_some_of_its_own_layers(tmp_path, tiny_bert):
    """Another tokenizer's model as the student, cut to N of its own layers (evenly spaced, as
    --student-layers cuts a teacher): a MiniLM-L3 student for an MPNet teacher."""
    from tiny_families import build_teacher

    other = build_teacher("roberta", tmp_path / "other")  # 3 layers, byte-level BPE: not the teacher's tokenizer
    teacher = load_classifier(str(tiny_bert))
    student, tok, info = build_student(StudentConfig(kind=str(other), own_layers=2), teacher,
                                       AutoTokenizer.from_pretrained(tiny_bert), ["negative", "positive"])
    assert info == {"builder": "pretrained", "model": str(other), "own_layers": [0, 2]}
    assert student.config.num_hidden_layers == 2 and len(student.roberta.encoder.layer) == 2
    assert tok.backend_tokenizer.model.__class__.__name__ == "BPE"
    whole = load_classifier(str(other))
    assert torch.equal(student.roberta.encoder.layer[1].output.dense.weight, whole.roberta.encoder.layer[2].output.dense.weight)
    with pytest.raises(KdeployError, match="own_layers .* keeps layers of a pretrained student"):
        StudentConfig(kind="layers", own_layers=2)


@pytest.mark.parametrize("student, flag", [({"kind": "layers", "embedding_dim": 64}, "--embedding-dim"),
                                           ({"kind": "layers", "num_filters": 64}, "--num-filters"),
                                           ({"kind": "static", "layers": 3}, "--student-layers"),
                                           ({"kind": "cnn", "hidden_size": 64}, "--hidden-size")])
def test_a_knob_of_another_student_family_is_refused(student, flag):
    """Issue 42 #22: a flag the chosen student does not read was ignored without a word (exit 0)."""
    from kdeploy.configtools import settings_from
    from kdeploy.distill.config import DistillSettings
    from kdeploy.errors import KdeployError

    with pytest.raises(KdeployError, match=f"{flag} does not apply to a {student['kind']} student"):
        settings_from(DistillSettings, {"student": student})
    settings_from(DistillSettings, {"student": {"kind": "bilstm", "embedding_dim": 64, "hidden_size": 64}})  # its own: fine
