"""Property-based tests (hypothesis): whatever a user's table or text holds, the data loader and
the edge predictor either work or raise kdeploy's own error, never anything else; the predictor
always gives one result per input."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kdeploy.data import DataConfig, load_task_data
from kdeploy.errors import KdeployError

FORMATS = ["tsv", "csv", "jsonl", "parquet"]
ENCODINGS = ["utf-8", "latin-1", "cp1252", "utf-16"]

texts = st.text(min_size=0, max_size=80)
labels = st.one_of(st.sampled_from(["pos", "neg", "NEU", "", " 1 "]), st.integers(-2, 4), st.none(),
                   st.floats(allow_nan=True, allow_infinity=True))
messy = st.lists(st.tuples(texts, labels), min_size=0, max_size=30)
clean_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=40)
clean = st.lists(st.tuples(clean_text, st.one_of(st.sampled_from(["pos", "neg", "neu"]), st.integers(0, 2))),
                 min_size=12, max_size=40)
rows = st.one_of(clean, messy)


def _write(path, fmt: str, table: list, encoding: str) -> None:
    df = pd.DataFrame({"sentence": [t for t, _ in table], "label": [l for _, l in table]})
    if fmt == "parquet":
        try:
            df.to_parquet(path)
        except Exception:  # mixed label types pyarrow cannot store: not a file a user could have
            path.write_bytes(b"not parquet")
        return
    if fmt == "jsonl":
        text = df.to_json(orient="records", lines=True, force_ascii=False)
    elif fmt == "csv":
        text = df.to_csv(index=False)
    else:
        text = "sentence\tlabel\n" + "".join(f"{t}\t{'' if l is None else l}\n" for t, l in table)
    path.write_bytes(text.encode(encoding, errors="replace"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=rows, fmt=st.sampled_from(FORMATS), written=st.sampled_from(ENCODINGS),
       read=st.sampled_from(ENCODINGS), errors=st.sampled_from(["strict", "replace"]))
def test_the_loader_works_or_says_why(tmp_path_factory, table, fmt, written, read, errors):
    path = tmp_path_factory.mktemp("p") / f"train.{fmt}"
    _write(path, fmt, table, written)
    try:
        data = load_task_data(DataConfig(train=str(path), encoding=read, encoding_errors=errors))
    except KdeployError as exc:
        assert str(exc).strip() and "\n" not in str(exc)
        event("refused with one line")
        return
    event("loaded")
    for split in data.splits.values():
        assert all(isinstance(t, str) for t in split["text"])
        assert all(0 <= label < data.num_labels for label in split["label"])
    assert len(data.label_names) >= 2


@pytest.fixture(scope="module")
def predictor(tmp_path_factory, exported_tiny):
    from kdeploy.edge import Predictor
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    out = tmp_path_factory.mktemp("prop-bundle") / "B"
    package(PackageSettings(archive=None), export_dir=exported_tiny, out=out)
    return Predictor(out)


unicode_texts = st.lists(st.one_of(st.text(max_size=200), st.text(min_size=1000, max_size=100_000),
                                   st.sampled_from(["", " ", "\u2028", "\ufffd", "👍" * 500, "中文" * 50, "\x00"])),
                         min_size=0, max_size=40)


@settings(max_examples=40, deadline=None)
@given(batch=unicode_texts, batch_size=st.one_of(st.none(), st.integers(1, 64)))
def test_the_predictor_gives_one_result_per_input(predictor, batch, batch_size):
    results = predictor.predict(batch, batch_size=batch_size)
    assert len(results) == len(batch)
    for r in results:
        assert r["label"] in predictor.labels
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-5
        json.dumps(r.to_dict())  # serialisable, as `kdeploy predict` writes it


@settings(max_examples=20, deadline=None)
@given(batch_size=st.one_of(st.integers(-5, 0), st.floats(allow_nan=True), st.sampled_from(["8", True])))
def test_the_predictor_refuses_bad_batch_sizes(predictor, batch_size):
    with pytest.raises(KdeployError, match="batch size"):
        predictor.predict(["good film"], batch_size=batch_size)
