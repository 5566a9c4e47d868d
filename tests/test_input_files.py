"""The texts and files a user hands kdeploy: another encoding, one stray byte, separators that
are not newlines, label names that differ from the model's, and values that are not text at all.
Each is read as written or refused with one `error:` line that says where."""
from __future__ import annotations

import json
import os
import re

import pytest

from conftest import assert_one_error_line, cli, make_sentences, write_tsv


def test_text_in_another_encoding(tiny_bundle, tmp_path):
    latin1 = "café crème\nnaïve\n".encode("latin-1")
    path = tmp_path / "latin1.txt"
    path.write_bytes(latin1)
    code, _, err = cli("predict", tiny_bundle, "--file", path)
    assert_one_error_line(code, err, "line 1, column 4: byte 0xe9 is not valid UTF-8")
    code, out, err = cli("predict", tiny_bundle, "--file", path, "--encoding", "latin-1")
    assert code == 0, err
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["café crème", "naïve"]
    code, out, err = cli("predict", tiny_bundle, "--file", path, "--encoding-errors", "replace")
    assert code == 0 and "3 undecodable byte(s)" in err and len(out.splitlines()) == 2
    code, _, err = cli("predict", tiny_bundle, stdin=latin1)
    assert_one_error_line(code, err, "standard input: line 1, column 4")
    code, _, err = cli("predict", tiny_bundle, os.fsdecode(b"caf\xe9"))
    assert_one_error_line(code, err, "text argument 1: line 1, column 4: byte 0xe9 is not valid UTF-8")
    code, out, _ = cli("predict", tiny_bundle, os.fsdecode(b"caf\xe9"), "--encoding", "latin-1")
    assert code == 0 and json.loads(out)["text"] == "café"


def test_training_file_with_one_stray_byte_names_its_line(tiny_bert, toy_files, tmp_path):
    rows = make_sentences(80)
    text = "sentence\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows)
    raw = text.encode()
    at = raw.index(b"\n", len(raw) // 2) + 3  # the third byte of a line past the middle
    raw = raw[:at] + b"\xe9" + raw[at:]
    path = tmp_path / "stray.tsv"
    path.write_bytes(raw)
    line = raw.count(b"\n", 0, at) + 1
    code, _, err = cli("distill", "--teacher", tiny_bert, "--train", path, "--out", tmp_path / "o")
    assert_one_error_line(code, err, f"stray.tsv: line {line}, column 3: byte 0xe9 is not valid UTF-8")
    assert "--encoding" in err and not (tmp_path / "o").exists() and not (tmp_path / ".o.work").exists()


def test_lines_split_on_newlines_only(tiny_bundle, tmp_path):
    texts = ["one", "two\u2028still two", "three\x0cstill three", "four\x85still four", "five"]
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    code, out, err = cli("predict", tiny_bundle, "--file", path)
    assert code == 0, err
    assert len(out.splitlines()) == 5  # escaped in the output too: any line reader sees one record per text
    assert [json.loads(line)["text"] for line in out.splitlines()] == texts


def test_different_label_names_suggest_the_flag(tiny_bert, tmp_path):
    path = write_tsv(tmp_path / "t.tsv", [(t, {"positive": "good", "negative": "bad"}[l])
                                          for t, l in make_sentences(40)])
    code, _, err = cli("distill", "--teacher", tiny_bert, "--train", path, "--out", tmp_path / "o")
    assert_one_error_line(code, err, "pass --label-names negative,positive")


def test_label_names_beyond_the_ids_are_noted(hostile_world, capsys):  # issue 22 #21
    from kdeploy.tasks.labels import label_space

    names, mapping, ids_only = label_space(["0", "1", "0"], None, ["a", "b", "c"], "ids.tsv")
    assert names == ["a", "b", "c"] and "'c' will have no examples" in capsys.readouterr().err


def test_predictor_refuses_what_is_not_text(tiny_bundle, hostile_world):  # issue 22 #5 and #17
    from kdeploy.edge import Predictor
    from kdeploy.errors import KdeployError

    one, pairs = Predictor(tiny_bundle), Predictor(hostile_world["BP"])
    refusals = [
        (lambda: one.predict([None, 5]), "input 1: not a text (got NoneType None)"),
        (lambda: one.predict(["fine", 5]), "input 2: not a text (got int 5)"),
        (lambda: one.predict(5), "give a list of texts, got int"),
        (lambda: one.predict(["great \ud800 film"]), "input 1: holds a lone surrogate (U+D800"),
        (lambda: pairs.predict([("a", "b \udfff")]), "lone surrogate (U+DFFF"),
        (lambda: pairs.rank("q", "abc"), "passages must be a list of texts, got str (a single text: wrap it"),
        (lambda: pairs.rank("q", ["a", "b", "c"], top_k=-1), "top_k must be a whole number of at least 1"),
        (lambda: pairs.rank("q", ["a", "b", "c"], top_k=0), "top_k must be a whole number of at least 1"),
        (lambda: pairs.rank("q", ["a", "b", "c"], top_k=1.5), "top_k must be a whole number of at least 1"),
        (lambda: pairs.rank("q", ["a", "b", "c"], top_k=True), "top_k must be a whole number of at least 1"),
        (lambda: pairs.rank(3, ["a"]), "the query must be a text, got int"),
        (lambda: pairs.rank("q", ["a", None]), "input 2: not a text"),
    ]
    for call, message in refusals:
        with pytest.raises(KdeployError, match=re.escape(message)):
            call()
    ranked = pairs.rank("q", ["a", "b", "c"], top_k=2)
    assert len(ranked) == 2 and sorted(r["index"] for r in pairs.rank("q", ["a", "b", "c"])) == [0, 1, 2]
