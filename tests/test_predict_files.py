"""`kdeploy predict --file`: a table (.tsv/.csv/.jsonl/.parquet) is read through the data layer, its
text column(s) classified and its label ignored (said once); a .txt file is one text per line.
Read as lines, a labelled TSV was classified header and all, CSV quotes kept, and its gold label
inside each text (on SST-2 test with the demo bundle 56 of 1,821 labels moved, accuracy 89.0% →
92.0%, silently)."""
import json
import shutil
from pathlib import Path

import pytest

from conftest import make_sentences, write_tsv
from kdeploy.edge import Predictor


def cli(*args, stdin: bytes | None = None):
    import conftest

    return conftest.cli(*map(str, args), stdin=stdin)


def rows_of(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, exported_tiny) -> Path:
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    out = tmp_path_factory.mktemp("predict_files") / "bundle"
    package(PackageSettings(archive=None), export_dir=exported_tiny, out=out)
    return out


@pytest.fixture(scope="module")
def pair_bundle(tmp_path_factory, tiny_bert) -> Path:
    """The tiny BERT recorded as a sentence-pair model, exported (fp32) and packaged."""
    from kdeploy.data import DataConfig
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    d = tmp_path_factory.mktemp("predict_pairs")
    model = Path(shutil.copytree(tiny_bert, d / "model"))
    (model / "kdeploy.json").write_text(json.dumps({"stage": "finetune", "data": {
        "label_names": ["negative", "positive"], "pairs": True}}))
    rows = make_sentences(40, 7)
    pairs = d / "pairs.tsv"
    pairs.write_text("sentence1\tsentence2\tlabel\n" + "".join(f"{a}\t{b}\t{la}\n" for (a, la), (b, _) in
                                                                zip(rows[:20], rows[20:])))
    export(ExportSettings(optimize=None, quantize="none"), model=model, out=d / "onnx",
           data=DataConfig(test=str(pairs)))
    package(PackageSettings(archive=None), export_dir=d / "onnx", out=d / "bundle")
    return d / "bundle"


def test_a_labelled_tsv_classifies_its_texts_not_its_answer_key(bundle, tmp_path):
    rows = make_sentences(12, 5)
    path = write_tsv(tmp_path / "test.tsv", rows)
    code, out, err = cli("predict", bundle, "--file", path)
    assert code == 0, err
    got = rows_of(out)
    assert [r["text"] for r in got] == [t for t, _ in rows]  # no header row, no label inside a text
    assert err.strip().splitlines() == [f"note: {path}: classifying column 'sentence'; ignoring 'label'"]
    expected = Predictor(bundle).predict([t for t, _ in rows])
    assert [r["probabilities"] for r in got] == [e["probabilities"] for e in expected]


def test_csv_quoting_json_lines_and_parquet_are_parsed(bundle, tmp_path):
    import pandas as pd

    texts = ['a "great", moving film', "dull", "it's fine,\tI guess"]
    csv = tmp_path / "t.csv"
    pd.DataFrame({"label": ["positive", "negative", "positive"], "review": texts}).to_csv(csv, index=False)
    assert '"a ""great"", moving film"' in csv.read_text()
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "label": i % 2}) + "\n" for i, t in enumerate(texts)))
    parquet = tmp_path / "t.parquet"
    pd.DataFrame({"text": texts, "label": [1, 0, 1]}).to_parquet(parquet)
    for path in (csv, jsonl, parquet):
        code, out, err = cli("predict", bundle, "--file", path)
        assert code == 0, err
        assert [r["text"] for r in rows_of(out)] == texts, path
        assert "ignoring 'label'" in err


def test_text_column_flags_name_a_tables_columns(bundle, tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("id\tbody\tlabel\n1\tgood film\tpositive\n2\tdull\tnegative\n")
    code, _, err = cli("predict", bundle, "--file", path)
    assert code == 2 and err.strip().splitlines() == [
        f"error: {path}: no text column among id, body, label; name it with --text-column"]
    code, out, err = cli("predict", bundle, "--file", path, "--text-column", "body")
    assert code == 0 and [r["text"] for r in rows_of(out)] == ["good film", "dull"], err
    assert "ignoring 'id', 'label'" in err
    lines = tmp_path / "t.txt"
    lines.write_text("good film\n")
    code, _, err = cli("predict", bundle, "--file", lines, "--text-column", "body")
    assert code == 2 and "name a table's columns" in err and len(err.strip().splitlines()) == 1


def test_a_text_file_stays_one_text_per_line_and_a_tab_is_refused(bundle, tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_text("sentence\nthe film was good\n")
    code, out, err = cli("predict", bundle, "--file", path)
    assert code == 0 and [r["text"] for r in rows_of(out)] == ["sentence", "the film was good"], err
    path.write_text("the film was good\ngood film\tpositive\n")
    code, out, err = cli("predict", bundle, "--file", path)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.strip().splitlines()[0].startswith(f"error: {path}: line 2 holds a tab; this bundle reads one text")
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli("predict", bundle, stdin=b"fine\ngood film\tpositive\n")
    assert code == 2 and err.startswith("error: standard input: line 2 holds a tab")


def test_a_pair_bundle_reads_a_tables_two_text_columns(pair_bundle, bundle, tmp_path):
    path = tmp_path / "sick.tsv"
    path.write_text("pair_ID\tsentence1\tsentence2\tlabel\tscore\n"
                    "1\tA man plays a guitar\tA person plays music\tentailment\t4.5\n"
                    "2\tgood film\tdull film\tcontradiction\t1.2\n")
    code, out, err = cli("predict", pair_bundle, "--file", path)
    assert code == 0, err
    assert [(r["text"], r["text_pair"]) for r in rows_of(out)] == [("A man plays a guitar", "A person plays music"),
                                                                   ("good film", "dull film")]
    assert err.strip().splitlines() == [f"note: {path}: classifying column 'sentence1' and 'sentence2'; "
                                        "ignoring 'pair_ID', 'label', 'score'"]
    code, _, err = cli("predict", bundle, "--file", path)  # pairs to a one-text bundle: refused, not half-read
    assert code == 2 and "holds sentence pairs ('sentence1', 'sentence2') but this bundle reads one text" in err
    one = write_tsv(tmp_path / "one.tsv", make_sentences(3))
    code, _, err = cli("predict", pair_bundle, "--file", one)
    assert code == 2 and "this bundle reads sentence pairs, and the table has one text column ('sentence')" in err
