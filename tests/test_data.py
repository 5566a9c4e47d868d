"""The data loader: every source to one shape, and one clear line for every bad input."""

import pandas as pd
import pytest

from conftest import make_sentences, write_tsv
from kdeploy.data import DataConfig, load_task_data
from kdeploy.errors import KdeployError


def test_tsv_with_string_labels_keeps_names(toy_files):
    data = load_task_data(DataConfig(**{k: str(v) for k, v in toy_files.items()}))
    assert data.label_names == ["negative", "positive"]
    assert set(data.splits) == {"train", "validation", "test"}
    assert data.splits["train"].features["label"].names == ["negative", "positive"]
    row = data.splits["train"][0]
    assert row["label"] == data.label_names.index(make_sentences(160, 1)[0][1])
    assert len(data.fingerprint) == 16


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_other_formats_and_default_columns(tmp_path, fmt):
    rows = make_sentences(60)
    df = pd.DataFrame({"text": [r[0] for r in rows], "label": [int(r[1] == "positive") for r in rows]})
    path = tmp_path / f"train.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path)
    data = load_task_data(DataConfig(train=str(path), label_names=["neg", "pos"]))
    assert data.label_names == ["neg", "pos"]
    assert len(data.splits["train"]) + len(data.splits["validation"]) == 60


def test_validation_is_carved_seeded_and_stratified(toy_files):
    a = load_task_data(DataConfig(train=str(toy_files["train"]), split_seed=7))
    b = load_task_data(DataConfig(train=str(toy_files["train"]), split_seed=7))
    c = load_task_data(DataConfig(train=str(toy_files["train"]), split_seed=8))
    assert a.splits["validation"]["text"] == b.splits["validation"]["text"]
    assert a.splits["validation"]["text"] != c.splits["validation"]["text"]
    assert len(a.splits["validation"]) == 16
    labels = a.splits["validation"]["label"]
    assert labels.count(0) == labels.count(1) == 8
    assert "of train" in a.sources["validation"]


def test_integer_labels_without_names(tmp_path):
    path = write_tsv(tmp_path / "t.tsv", [(t, str(int(l == "positive"))) for t, l in make_sentences(40)])
    assert load_task_data(DataConfig(train=str(path))).label_names == ["0", "1"]


def test_sparse_integer_labels_are_remapped(tmp_path):
    path = write_tsv(tmp_path / "t.tsv", [(t, "7" if l == "positive" else "3") for t, l in make_sentences(40)])
    data = load_task_data(DataConfig(train=str(path)))
    assert data.label_names == ["3", "7"]


def test_save_to_disk_folder(tmp_path):
    import datasets

    rows = make_sentences(50)
    ds = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"sentence": [r[0] for r in rows[:40]], "label": [int(r[1] == "positive") for r in rows[:40]]},
                                            features=datasets.Features({"sentence": datasets.Value("string"),
                                                                        "label": datasets.ClassLabel(names=["neg", "pos"])})),
        "test": datasets.Dataset.from_dict({"sentence": [r[0] for r in rows[40:]], "label": [-1] * 10}),
    })
    ds.save_to_disk(str(tmp_path / "ds"))
    data = load_task_data(DataConfig(dataset=str(tmp_path / "ds")))
    assert data.label_names == ["neg", "pos"]  # ClassLabel names travel
    assert "test" not in data.splits  # unlabelled (-1) test split is dropped, not scored


@pytest.mark.parametrize("case,message", [
    ("missing_file", "file not found"),
    ("missing_column", "no column 'review'"),
    ("empty_split", "the file is empty"),
    ("header_only", "the train split is empty"),
    ("unseen_label", "label 'neutral' (row 2) never occurs in train"),
    ("bad_utf8", "not valid UTF-8"),
    ("one_label", "only one label"),
    ("no_text_column", "no text column"),
    ("bad_type", "unknown file type"),
])
def test_bad_input_is_one_clear_line(tmp_path, toy_files, case, message):
    train, test, kwargs = str(toy_files["train"]), None, {}
    if case == "missing_file":
        train = str(tmp_path / "nope.tsv")
    elif case == "missing_column":
        kwargs["text_column"] = "review"
    elif case == "empty_split":
        (tmp_path / "e.tsv").write_text("")
        train = str(tmp_path / "e.tsv")
    elif case == "header_only":
        train = str(write_tsv(tmp_path / "h.tsv", []))
    elif case == "unseen_label":
        test = str(write_tsv(tmp_path / "test.tsv", [("a fine film", "positive"), ("meh", "neutral")]))
    elif case == "bad_utf8":
        (tmp_path / "b.tsv").write_bytes(b"sentence\tlabel\ngood film\tpositive\nbad \xff\xfe film\tnegative\n")
        train = str(tmp_path / "b.tsv")
    elif case == "one_label":
        train = str(write_tsv(tmp_path / "o.tsv", [("good", "positive")] * 20))
    elif case == "no_text_column":
        train = str(write_tsv(tmp_path / "n.tsv", [("x", "positive")], header=("words", "label")))
    elif case == "bad_type":
        (tmp_path / "t.xlsx").write_text("x")
        train = str(tmp_path / "t.xlsx")
    with pytest.raises(KdeployError) as err:
        load_task_data(DataConfig(train=train, test=test, **kwargs))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_config_validates_itself():
    with pytest.raises(KdeployError, match="no data"):
        DataConfig()
    with pytest.raises(KdeployError, match="validation_fraction"):
        DataConfig(train="x.tsv", validation_fraction=0.9)


def test_shared_sst2_loads(sst2_dir):
    data = load_task_data(DataConfig(train=str(sst2_dir / "train.tsv"), validation=str(sst2_dir / "dev.tsv"),
                                     test=str(sst2_dir / "test.tsv"), label_names=["negative", "positive"]))
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 6920, "validation": 872, "test": 1821}
    assert data.label_names == ["negative", "positive"]


@pytest.mark.real
def test_builtin_rotten_tomatoes():
    pytest.importorskip("pandas")
    from kdeploy.assets import rotten_tomatoes_file

    try:
        rotten_tomatoes_file()
    except KdeployError as exc:
        pytest.skip(str(exc))
    data = load_task_data(DataConfig(dataset="builtin:rotten_tomatoes"))
    assert data.label_names == ["fresh", "rotten"]
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sizes["test"] > 500 and sizes["validation"] > 500 and sizes["train"] > 5000
    again = load_task_data(DataConfig(dataset="builtin:rotten_tomatoes"))
    assert again.fingerprint == data.fingerprint


# --- TSV quoting: GLUE's none, or standard CSV quoting (../shared/data/bbc is written that way) ---

def _read_texts(path):
    from kdeploy.data.files import read_table

    return read_table(path)[0]["text"]


def test_tsv_written_with_csv_quoting_reads_back_exactly(tmp_path):
    import csv

    texts = ['He said "no" twice', '"Quoted" at the start', "plain", 'a lone " quote', '""', "it's fine"]
    path = tmp_path / "quoted.tsv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows([t, "a" if i % 2 else "b"] for i, t in enumerate(texts))
    assert '"He said ""no"" twice"' in path.read_text()  # the file really is quoted
    assert _read_texts(path) == texts


def test_glue_style_tsv_keeps_its_quotes(tmp_path):
    texts = ['"hi" she said', '"great"', 'a "b', 'ends with a quote"', '" spaced "']
    path = tmp_path / "glue.tsv"
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(texts)), encoding="utf-8")
    assert _read_texts(path) == texts


def test_quoting_round_trips_any_text(tmp_path_factory):
    """Property: whatever the texts (quotes anywhere), a TSV written by Python's csv module reads
    back as written."""
    import csv

    from hypothesis import given, settings, strategies as st

    folder = tmp_path_factory.mktemp("quoting")

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.text(alphabet='ab "\'', min_size=0, max_size=12), min_size=1, max_size=6))
    def check(texts):
        path = folder / "q.tsv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
            writer.writerow(["text", "label"])
            writer.writerows([t, "x"] for t in texts)
        assert _read_texts(path) == texts

    check()


@pytest.mark.real
def test_bbc_documents_are_read_as_written():
    """../shared/data/bbc: 1,333 of the 1,557 training articles hold a quote and are CSV-quoted;
    read with GLUE's no-quoting they kept the wrapping quotes and doubled inner ones."""
    from pathlib import Path

    from conftest import SHARED_DATA

    path = Path(SHARED_DATA) / "bbc" / "train.tsv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    expected = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    texts = _read_texts(path)
    assert len(texts) == 1557 and texts == list(expected["text"])
    assert not any(t.startswith('"') and t.endswith('"') for t in texts)


def test_a_score_task_finds_a_score_column_by_default(tmp_path):
    """Issue 42 (minor): `--task regression` did not find a `score` column (STS-B's and SICK's name)."""
    from kdeploy.data import DataConfig
    from kdeploy.data.task import load_task_data

    rows = "".join(f"a man plays {i}\ta woman sings {i}\t{i % 5}.5\n" for i in range(30))
    (tmp_path / "train.tsv").write_text("sentence1\tsentence2\tscore\n" + rows)
    task = load_task_data(DataConfig(train=str(tmp_path / "train.tsv"), task="regression"))
    assert task.pairs and sorted(set(task.splits["train"]["label"]))[:2] == [0.5, 1.5]


# --- odd training files: a class seen once, replacement characters already in the text -----

def test_class_seen_once_still_carves_a_validation_split(tmp_path, capsys):
    from kdeploy.data import DataConfig, load_task_data

    rows = make_sentences(60) + [("a neutral film", "neutral")]
    path = write_tsv(tmp_path / "t.tsv", rows)
    data = load_task_data(DataConfig(train=str(path)))
    assert sum(len(s) for s in data.splits.values()) == 61 and "neutral" in data.label_names
    assert "without stratification" in capsys.readouterr().err


def test_replacement_characters_already_in_the_text_are_kept_unless_refused(tmp_path):
    from kdeploy.data import DataConfig, load_task_data
    from kdeploy.errors import KdeployError

    path = write_tsv(tmp_path / "t.tsv", [(t + " \ufffd", l) for t, l in make_sentences(40)])
    assert load_task_data(DataConfig(train=str(path))).splits["train"][0]["text"].endswith("\ufffd")
    with pytest.raises(KdeployError, match="holds U\\+FFFD"):
        load_task_data(DataConfig(train=str(path), reject_replacement_characters=True))
