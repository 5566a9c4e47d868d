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
