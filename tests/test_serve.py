"""`kdeploy serve`: request checking (pure, fast) and one real server on Ray Serve per session.

The server runs two tiny bundles side by side (one text model, one pair model) in a
subprocess on loopback, with an API key, and is stopped with Ctrl-C at the end; every route,
batching across requests, answers equal to single `Predictor.predict` calls and a table of
bad requests are checked against it.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdeploy.errors import KdeployError
from kdeploy.serve.api import parse_bundles
from kdeploy.serve.config import ServeSettings
from kdeploy.serve.requests import HttpError, label_scores, parse_json, predict_request, rerank_request

from conftest import build_tiny_bert
from test_pairs import write_pairs

KEY = "test-key-0123456789"


# ---- requests, checked without a server -------------------------------------------------------

def test_predict_shapes_follow_text_embeddings_inference():
    one = predict_request({"inputs": "a text"}, pairs=False, max_texts=8)
    assert one.examples == ["a text"] and one.single
    many = predict_request({"inputs": ["a", "b"]}, pairs=False, max_texts=8)
    assert many.examples == ["a", "b"] and not many.single
    pair = predict_request({"inputs": ["a", "b"]}, pairs=True, max_texts=8)  # one pair, as TEI reads it
    assert pair.examples == [("a", "b")] and pair.single
    pairs = predict_request({"inputs": [["a", "b"], ["c", "d"]]}, pairs=True, max_texts=8)
    assert pairs.examples == [("a", "b"), ("c", "d")] and not pairs.single
    assert label_scores({"label": "b", "score": 0.7, "probabilities": {"a": 0.3, "b": 0.7}}) == \
        [{"label": "b", "score": 0.7}, {"label": "a", "score": 0.3}]
    assert rerank_request({"query": "q", "texts": ["x"]}, pairs=True, max_texts=8).texts == ["x"]


@pytest.mark.parametrize("body, pairs, status, says", [
    (b"\xff\xfe{}", False, 422, "not UTF-8"),
    (b"", False, 422, "empty"),
    (b"{\"inputs\": ", False, 422, "not valid JSON"),
    (b"[1, 2]", False, 422, "must be a JSON object"),
    (b"{\"inputs\": NaN}", False, 422, "not JSON"),
    (b"{\"inputs\": \"a\", \"inputs\": \"b\"}", False, 422, "repeats the key 'inputs'"),
    (b"{\"text\": \"a\"}", False, 422, "unknown key 'text'"),
    (b"{}", False, 422, "missing key 'inputs'"),
    (b"{\"inputs\": []}", False, 422, "inputs is empty"),
    (b"{\"inputs\": 5}", False, 422, "must be a string or a list"),
    (b"{\"inputs\": [\"a\", 5]}", False, 422, "inputs[1] must be a string, got a number"),
    (b"{\"inputs\": [[\"a\", \"b\"]]}", False, 422, "not a pair"),
    (b"{\"inputs\": \"a\"}", True, 422, "reads sentence pairs"),
    (b"{\"inputs\": [[\"a\"]]}", True, 422, "give [\"first\", \"second\"]"),
    (b"{\"inputs\": \"\\ud800\"}", False, 422, "lone surrogate"),
    (b"{\"inputs\": [" + b"\"a\"," * 20 + b"\"a\"]}", False, 413, "at most 8 per request"),
    (b"{\"inputs\": \"a\", \"raw_scores\": true}", False, 422, "raw_scores"),
    (b"{\"inputs\": \"a\", \"truncate\": false}", False, 422, "truncate must be true"),
    (b"[" * 100_000 + b"]" * 100_000, False, 422, "nests too deeply"),
])
def test_bad_bodies_get_one_line_and_a_4xx(body, pairs, status, says):
    with pytest.raises(HttpError) as exc:
        predict_request(parse_json(body), pairs=pairs, max_texts=8)
    assert exc.value.status == status and says in exc.value.message, exc.value.message
    assert "\n" not in exc.value.message


def test_rerank_needs_a_pair_model_and_a_list():
    with pytest.raises(HttpError, match="needs a sentence-pair bundle"):
        rerank_request({"query": "q", "texts": ["a"]}, pairs=False, max_texts=8)
    with pytest.raises(HttpError, match="texts must be a list"):
        rerank_request({"query": "q", "texts": "a"}, pairs=True, max_texts=8)
    with pytest.raises(HttpError, match="return_text must be true or false"):
        rerank_request({"query": "q", "texts": ["a"], "return_text": "yes"}, pairs=True, max_texts=8)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(JSON, st.fixed_dictionaries({"inputs": JSON})), pairs=st.booleans())
def test_any_json_is_answered_or_refused_with_a_4xx(body, pairs):
    """Whatever a client sends, checking it ends in a request or a 4xx: never another exception."""
    raw = json.dumps(body).encode()
    try:
        req = predict_request(parse_json(raw), pairs=pairs, max_texts=3)
    except HttpError as exc:
        assert 400 <= exc.status < 500 and exc.message
    else:
        assert 1 <= len(req.examples) <= 3
        assert all(isinstance(e, str) for e in req.examples) if not pairs else \
            all(isinstance(e, tuple) and len(e) == 2 and all(isinstance(t, str) for t in e) for e in req.examples)


def test_batch_size_counts_texts_or_token_budget():
    from kdeploy.serve.replica import batch_size

    slots = 32 / 1024  # 32 texts or 1024 padded tokens per batch
    assert batch_size([("a", 10, slots)] * 4) == 4  # 40 padded tokens: the count binds
    assert batch_size([("a", 128, slots), ("b", 3, slots)]) == 8  # 2 x 128 = 256 tokens = 8 of 32 slots
    assert batch_size([("a", 1024, slots)]) == 32  # one text that fills the budget fills the batch


def test_serve_settings_refuse_what_cannot_work(monkeypatch):
    monkeypatch.delenv("KDEPLOY_API_KEY", raising=False)
    assert ServeSettings().host == "127.0.0.1" and not ServeSettings().exposed
    monkeypatch.setenv("KDEPLOY_API_KEY", "from-the-environment")
    assert ServeSettings().api_key == "from-the-environment"
    for bad, says in [({"port": 0}, "--port"), ({"replicas": 0}, "--replicas"), ({"autoscale": [3, 1]}, "--autoscale"),
                      ({"api_key": "short"}, "--api-key"), ({"max_texts": 10, "max_pending_texts": 5}, "at least"),
                      ({"batch_wait_ms": -1}, "--batch-wait-ms"), ({"host": "a b"}, "--host")]:
        with pytest.raises(KdeployError, match=says):
            ServeSettings(**bad)


def test_bundle_names_route_apart(tmp_path):
    assert parse_bundles(["runs/b.tar.gz", "x=runs/b"]) == [("b", Path("runs/b.tar.gz")), ("x", Path("runs/b"))]
    with pytest.raises(KdeployError, match="both named 'b'"):
        parse_bundles(["one/b", "two/b"])
    with pytest.raises(KdeployError, match="cannot name a route"):
        parse_bundles(["bad name=runs/b"])


# ---- one real server ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, exported_tiny) -> dict[str, Path]:
    """The tiny text bundle, and a tiny pair bundle (a random BERT named for entailment)."""
    from kdeploy.data import DataConfig
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    root = tmp_path_factory.mktemp("serve")
    pair_files = {k: write_pairs(root / f"{k}.tsv", n, s) for k, n, s in (("train", 60, 1), ("test", 30, 2))}
    pair_export = root / "pair-onnx"
    pair_model = build_tiny_bert(root / "pair-model", label_names=("contradiction", "entailment"))
    export(ExportSettings(optimize=None, quantize="int8", max_accuracy_drop=100), model=pair_model, out=pair_export,
           data=DataConfig(train=str(pair_files["train"]), test=str(pair_files["test"])))
    out = {}
    for name, folder in (("text", exported_tiny), ("pair", pair_export)):
        out[name] = root / f"{name}-bundle"
        package(PackageSettings(archive=None), export_dir=folder, out=out[name])
    return out


@pytest.fixture(scope="session")
def server(bundles):
    pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'kdeploy[serve]')")
    port = _free_port()
    env = {**os.environ, "KDEPLOY_API_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "kdeploy", "serve", f"text={bundles['text']}",
                             f"pair={bundles['pair']}", "--port", str(port), "--batch-wait-ms", "400",
                             "--max-texts", "50", "--max-request-bytes", "20000", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"kdeploy serve exited {proc.returncode}:\n{proc.stdout.read()}")
            try:
                if call(f"{url}/text/health")[0] == 200 and call(f"{url}/pair/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("kdeploy serve did not become healthy in 180 s")
        yield {"url": url, "proc": proc}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def call(url: str, body=None, key: str | None = KEY, raw: bytes | None = None, headers: dict | None = None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"content-type": "application/json", **({"authorization": f"Bearer {key}"} if key else {}), **(headers or {})}
    req = urllib.request.Request(url, data=data, headers=h, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def metric(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and line.split("}")[0].endswith(want) or line.startswith(f"{name}{{{want}}}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.slow
def test_routes_answer_as_a_single_predict_call(server, bundles):
    from kdeploy.edge import Predictor

    url = server["url"]
    texts = ["the film was very good", "dull boring plot", "", "Überraschend gut 👍", "good " * 300]
    code, body, _ = call(f"{url}/text/predict", {"inputs": texts})
    assert code == 200
    p = Predictor(bundles["text"])
    expected = [sorted(p.predict([t])[0]["probabilities"].items(), key=lambda kv: -kv[1]) for t in texts]
    assert [[(d["label"], d["score"]) for d in row] for row in json.loads(body)] == expected  # exactly, not close
    code, body, _ = call(f"{url}/text/predict", {"inputs": texts[0]})
    assert code == 200 and [(d["label"], d["score"]) for d in json.loads(body)] == expected[0]

    info = json.loads(call(f"{url}/text/info")[1])
    assert info["bundle_digest"] == p.digest and info["labels"] == p.labels and info["micro_batching"]

    pair = Predictor(bundles["pair"])
    passages = ["good fine film", "awful dull mess", "a lovely smart story"]
    code, body, _ = call(f"{url}/pair/rerank", {"query": "a great movie", "texts": passages})
    assert code == 200
    assert [(r["index"], r["score"]) for r in json.loads(body)] == \
        [(r["index"], r["score"]) for r in pair.rank("a great movie", passages)]
    code, body, _ = call(f"{url}/text/rerank", {"query": "q", "texts": ["a"]})
    assert code == 422 and b"sentence-pair bundle" in body
    assert call(f"{url}/text/openapi.json")[0] == 200


@pytest.mark.slow
def test_two_concurrent_requests_share_one_model_call(server):
    url = server["url"]
    before = metric(call(f"{url}/text/metrics")[1].decode(), "kdeploy_batch_texts_count", model="text")
    answers = []
    threads = [threading.Thread(target=lambda t=t: answers.append(call(f"{url}/text/predict", {"inputs": t})[0]))
               for t in ("a good film", "a dull film")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers == [200, 200]
    text = call(f"{url}/text/metrics")[1].decode()
    assert metric(text, "kdeploy_batch_texts_count", model="text") == before + 1  # one batch...
    assert metric(text, "kdeploy_batch_texts_bucket", le="2.0", model="text") >= 1  # ...of two texts
    assert metric(text, "kdeploy_requests_total", code="200", model="text", route="predict") >= 2


BAD = [  # (what, route, body bytes, headers, key, status, words in the answer)
    ("no API key", "text/predict", b'{"inputs": "a"}', {}, None, 401, "API key"),
    ("wrong API key", "text/predict", b'{"inputs": "a"}', {}, "wrong-key-123", 401, "API key"),
    ("body over the cap", "text/predict", b'{"inputs": "' + b"a" * 30000 + b'"}', {}, KEY, 413, "at most 20000"),
    ("too many texts", "text/predict", json.dumps({"inputs": ["a"] * 51}).encode(), {}, KEY, 413, "at most 50"),
    ("not UTF-8", "text/predict", b'{"inputs": "\xff"}', {}, KEY, 422, "not UTF-8"),
    ("not JSON", "text/predict", b"inputs=a", {}, KEY, 422, "not valid JSON"),
    ("form content type", "text/predict", b"inputs=a", {"content-type": "application/x-www-form-urlencoded"}, KEY,
     415, "application/json"),
    ("pair to a one-text model", "text/predict", b'{"inputs": [["a", "b"]]}', {}, KEY, 422, "not a pair"),
    ("text to a pair model", "pair/predict", b'{"inputs": "a"}', {}, KEY, 422, "sentence pairs"),
    ("empty list", "text/predict", b'{"inputs": []}', {}, KEY, 422, "empty"),
    ("unknown route", "text/classify", b'{"inputs": "a"}', {}, KEY, 404, ""),
]


@pytest.mark.slow
@pytest.mark.parametrize("what, route, raw, headers, key, status, says", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_a_4xx_and_the_server_stays_up(server, what, route, raw, headers, key, status, says):
    code, body, answer_headers = call(f"{server['url']}/{route}", raw=raw, key=key, headers=headers)
    assert code == status, body
    if says:
        assert says in json.loads(body)["error"]
    if status == 401:
        assert answer_headers.get("www-authenticate") == "Bearer"
    assert call(f"{server['url']}/text/health", key=None)[0] == 200


@pytest.mark.slow
def test_ctrl_c_stops_the_server_cleanly(server):
    """Runs last in this module (pytest keeps file order): the server drains and exits 0."""
    proc = server["proc"]
    proc.send_signal(signal.SIGINT)  # the driver only: it stops Ray itself
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("kdeploy serve did not stop within 90 s of Ctrl-C")
    assert proc.returncode == 0, out
    assert "stopped" in out and "Traceback" not in out, out
