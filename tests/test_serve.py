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

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdeploy.errors import KdeployError
from kdeploy.serve.api import parse_bundles
from kdeploy.serve.config import ServeSettings
from kdeploy.serve.requests import HttpError, label_scores, parse_json, predict_request, rerank_request

from conftest import build_tiny_bert, build_tiny_embedder, build_tiny_tagger, make_scored_pairs, write_ner, write_scored_pairs
from test_pairs import write_pairs
from test_tasks import LABELS, make_tagged, write_tagged

KEY = "test-key-0123456789"


# ---- requests, checked without a server -------------------------------------------------------

def test_predict_shapes_follow_text_embeddings_inference():
    from kdeploy.tasks import ClassPrediction

    one = predict_request({"inputs": "a text"}, pairs=False, max_texts=8)
    assert one.examples == ["a text"] and one.single
    many = predict_request({"inputs": ["a", "b"]}, pairs=False, max_texts=8)
    assert many.examples == ["a", "b"] and not many.single
    pair = predict_request({"inputs": ["a", "b"]}, pairs=True, max_texts=8)  # one pair, as TEI reads it
    assert pair.examples == [("a", "b")] and pair.single
    pairs = predict_request({"inputs": [["a", "b"], ["c", "d"]]}, pairs=True, max_texts=8)
    assert pairs.examples == [("a", "b"), ("c", "d")] and not pairs.single
    assert label_scores(ClassPrediction("b", 0.7, {"a": 0.3, "b": 0.7})) == \
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


def test_replicas_are_sized_to_the_cores():
    """Issue 42 #5: three bundles on two cores reserve what Ray has (not 2 CPUs each, forever pending)."""
    s = ServeSettings()
    assert s.threads_per_replica(2, bundles=3) == 1 and s.cpus_per_replica(2, bundles=3) == pytest.approx(2 / 3)
    assert s.threads_per_replica(8, bundles=2) == 4 and s.cpus_per_replica(8, bundles=2) == 4
    assert ServeSettings(threads=4).cpus_per_replica(2) == 2  # given threads: shares what there is


def test_haproxy_template_is_put_on_loopback():
    """The HAProxy configuration Ray renders: every bind on loopback, no statistics page, the admin
    socket for its user only (checked on the template of the installed Ray, and on a copy of the
    lines that were wrong in Ray 2.60)."""
    from kdeploy.serve.loopback import loopback_template

    old = ("global\n    stats socket {{ config.socket_path }} mode 666 level admin expose-fd listeners\n"
           "frontend prometheus\n    bind :{{ config.metrics_port }}\n    mode http\n"
           "frontend http_frontend\n    bind {{ config.frontend_host }}:{{ config.frontend_port }}\n"
           "listen stats\n  bind *:{{ config.stats_port }}\n  stats enable\n  stats uri {{ config.stats_uri }}\n")
    new = loopback_template(old)
    assert "mode 600 level admin" in new and "bind 127.0.0.1:{{ config.metrics_port }}" in new
    assert "bind {{ config.frontend_host }}:{{ config.frontend_port }}" in new  # the API: --host decides
    assert "listen stats" not in new and "stats_port" not in new
    templates = pytest.importorskip("ray.serve._private.haproxy_templates")
    real = loopback_template(templates.HAPROXY_CONFIG_TEMPLATE)
    binds = [line.split()[1] for line in real.splitlines() if line.strip().startswith("bind ")]
    assert binds and all(b.startswith(("127.0.0.1:", "{{")) for b in binds), binds
    assert "mode 666" not in real and "listen stats" not in real


def test_bundle_names_route_apart(tmp_path):
    assert parse_bundles(["runs/b.tar.gz", "x=runs/b"]) == [("b", Path("runs/b.tar.gz")), ("x", Path("runs/b"))]
    with pytest.raises(KdeployError, match="both named 'b'"):
        parse_bundles(["one/b", "two/b"])
    with pytest.raises(KdeployError, match="cannot name a route"):
        parse_bundles(["bad name=runs/b"])


def _kdeploy(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kdeploy", *args], capture_output=True, text=True, timeout=timeout)


def test_serve_refuses_in_one_line_before_starting_anything(bundles):
    """Issue 42 #13 and #14: --replicas with --autoscale, and a cluster that cannot be reached
    (a one-line error within seconds, not Ray's ConnectionError after 32 s)."""
    both = _kdeploy("serve", str(bundles["text"]), "--autoscale", "1,2", "--replicas", "2")
    assert both.returncode == 2 and "not both" in both.stderr and "Traceback" not in both.stderr, both.stderr
    start = time.monotonic()
    far = _kdeploy("serve", str(bundles["text"]), "--address", f"ray://127.0.0.1:{_free_port()}")
    assert far.returncode == 2 and "cannot reach the Ray cluster" in far.stderr, far.stderr
    assert len(far.stderr.strip().splitlines()) == 1 and time.monotonic() - start < 25


# ---- one real server ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, exported_tiny) -> dict[str, Path]:
    """The tiny text bundle, a tiny pair bundle (a random BERT named for entailment), and a tiny
    multi-label bundle (a random BERT with recorded thresholds)."""
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
    tags_model = build_tiny_bert(root / "tags-model", num_labels=3, label_names=LABELS)
    config = json.loads((tags_model / "config.json").read_text())
    (tags_model / "config.json").write_text(json.dumps({**config, "problem_type": "multi_label_classification"}))
    (tags_model / "kdeploy.json").write_text(json.dumps({"thresholds": dict(zip(LABELS, (0.45, 0.5, 0.55)))}))
    tagged = {k: write_tagged(root / f"tags-{k}.tsv", make_tagged(n, s)) for k, n, s in (("train", 60, 1),
                                                                                         ("test", 30, 2))}
    export(ExportSettings(optimize=None, quantize="int8", max_accuracy_drop=100), model=tags_model,
           out=root / "tags-onnx", data=DataConfig(train=str(tagged["train"]), test=str(tagged["test"]),
                                                   task="multi-label"))
    embedder = build_tiny_embedder(root / "emb-model")
    scored = {k: write_scored_pairs(root / f"emb-{k}.tsv", make_scored_pairs(n, s)) for k, n, s in (("train", 60, 1),
                                                                                                   ("test", 30, 2))}
    export(ExportSettings(quantize="int8", max_accuracy_drop=100), model=embedder, out=root / "emb-onnx",
           data=DataConfig(train=str(scored["train"]), test=str(scored["test"]), task="embedding"))
    tagger = build_tiny_tagger(root / "ner-model")
    ner = {k: write_ner(root / f"ner-{k}.jsonl", n, s) for k, n, s in (("train", 60, 1), ("test", 30, 2))}
    export(ExportSettings(quantize="int8", max_accuracy_drop=100), model=tagger, out=root / "ner-onnx",
           data=DataConfig(train=str(ner["train"]), test=str(ner["test"]), task="token-classification"))
    out = {}
    for name, folder in (("text", exported_tiny), ("pair", pair_export), ("tags", root / "tags-onnx"),
                         ("emb", root / "emb-onnx"), ("ner", root / "ner-onnx")):
        out[name] = root / f"{name}-bundle"
        package(PackageSettings(archive=None), export_dir=folder, out=out[name])
    return out


@pytest.fixture(scope="session")
def server(bundles):
    pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'kdeploy[serve]')")
    port = _free_port()
    env = {**os.environ, "KDEPLOY_API_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "kdeploy", "serve", f"text={bundles['text']}",
                             f"pair={bundles['pair']}", f"tags={bundles['tags']}", f"emb={bundles['emb']}", f"ner={bundles['ner']}", "--port", str(port), "--batch-wait-ms", "400",
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
                if all(call(f"{url}/{name}/health")[0] == 200 for name in ("text", "pair", "tags", "emb", "ner")):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("kdeploy serve did not become healthy in 180 s")
        yield {"url": url, "proc": proc}
    finally:
        if proc.poll() is None:  # a run that skipped the Ctrl-C test: stop it as a user would, then make sure
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
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
def test_a_multi_label_bundle_is_served_with_its_thresholds(server, bundles):
    """TEI's shape with sigmoid scores (not a softmax over the labels), each label marked whether
    it reaches its threshold: the same decision the python bundle makes."""
    from kdeploy.edge import Predictor

    url = server["url"]
    texts = ["the film was very good", "a dull plot", "Überraschend gut 👍"]
    code, body, _ = call(f"{url}/tags/predict", {"inputs": texts})
    assert code == 200
    p = Predictor(bundles["tags"])
    assert json.loads(body) == [r.label_scores() for r in p.predict(texts)]  # exactly, not close
    for row, r in zip(json.loads(body), p.predict(texts)):
        assert sorted(d["label"] for d in row if d["selected"]) == sorted(r.labels)
    info = json.loads(call(f"{url}/tags/info")[1])
    assert info["task"] == "multi-label" and info["model_type"] == "multi-label classifier"
    assert info["thresholds"] == dict(zip(LABELS, (0.45, 0.5, 0.55))) == p.thresholds
    code, body, _ = call(f"{url}/tags/rerank", {"query": "q", "texts": ["a"]})
    assert code == 422 and b"multi-label bundle answers /predict, not /rerank" in body


def test_an_entity_tagger_answers_spans_with_character_offsets(server, bundles):
    """/predict on a tagger: a list of entities per text in transformers' pipeline shape, exactly
    the python bundle's; /rerank refused by the task; /info says what it is."""
    from kdeploy.edge import Predictor

    url = server["url"]
    texts = ["alice and bob was in rome .", "Überraschend 👍 paris", ""]
    code, body, _ = call(f"{url}/ner/predict", {"inputs": texts})
    assert code == 200
    p = Predictor(bundles["ner"])
    assert json.loads(body) == [r.label_scores() for r in p.predict(texts)]
    for text, row in zip(texts, json.loads(body)):
        for entity in row:
            assert set(entity) == {"entity_group", "score", "word", "start", "end"}
            assert text[entity["start"]:entity["end"]] == entity["word"]
    info = json.loads(call(f"{url}/ner/info")[1])
    assert info["task"] == "token-classification"
    code, body, _ = call(f"{url}/ner/rerank", {"query": "q", "texts": ["a"]})
    assert code == 422 and b"token-classification bundle answers /predict, not /rerank" in body


@pytest.mark.slow
def test_an_embedder_answers_tei_embed_and_the_openai_client(server, bundles):
    """/embed in TEI's shape and /v1/embeddings through the real `openai` client (its default
    asks for base64), each equal to the bundle's own vectors; other routes refused by the task."""
    from kdeploy.edge import Predictor

    url, texts = server["url"], ["the film was very good", "dull boring plot", "Überraschend gut 👍"]
    p = Predictor(bundles["emb"])
    expected = np.stack([p.embed([t])[0] for t in texts])
    code, body, _ = call(f"{url}/emb/embed", {"inputs": texts})
    assert code == 200 and np.abs(np.array(json.loads(body)) - expected).max() < 1e-6
    code, body, _ = call(f"{url}/emb/embed", {"inputs": texts[0], "dimensions": 8})
    got = np.array(json.loads(body))
    assert code == 200 and got.shape == (1, 8) and abs(np.linalg.norm(got) - 1) < 1e-5
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{url}/emb/v1", api_key=KEY)
    answer = client.embeddings.create(input=texts, model="emb")
    assert [d.index for d in answer.data] == [0, 1, 2] and answer.usage.prompt_tokens > 0
    assert np.abs(np.array([d.embedding for d in answer.data]) - expected).max() < 1e-6
    floats = client.embeddings.create(input="dull boring plot", model="emb", encoding_format="float", dimensions=4)
    assert len(floats.data[0].embedding) == 4
    info = json.loads(call(f"{url}/emb/info")[1])
    assert info["model_type"] == "embedding" and info["pooling"]["pooling"] == "mean" and info["dimensions"] == 32
    code, body, _ = call(f"{url}/emb/predict", {"inputs": "a text"})
    assert code == 422 and "answers /embed, /v1/embeddings" in json.loads(body)["error"]
    code, body, _ = call(f"{url}/text/embed", {"inputs": "a text"})
    assert code == 422 and "not /embed" in json.loads(body)["error"]


@pytest.mark.slow
def test_embed_under_32_concurrent_clients_is_each_texts_answer_alone(server, bundles):
    """Each text's /embed answer among 32 clients at once (the replica micro-batches them) is its
    answer alone, and Predictor.embed's, within 1e-6. Not byte for byte: onnxruntime's kernels
    change the last bits with the batch's shape (measured on the STS-B student: even same-length
    batches on one thread move a vector by up to 4.5e-8)."""
    from concurrent.futures import ThreadPoolExecutor

    from kdeploy.edge import Predictor

    url = server["url"]
    texts = [f"{w} film number {i} was {'very ' * (i % 5)}good" for i, w in
             enumerate(["the", "a", "this", "that"] * 16)]  # 64 texts of mixed lengths
    alone = [call(f"{url}/emb/embed", {"inputs": t}) for t in texts]
    with ThreadPoolExecutor(32) as pool:
        together = list(pool.map(lambda t: call(f"{url}/emb/embed", {"inputs": t}), texts))
    assert all(a[0] == 200 for a in alone + together)
    one = np.array([json.loads(b)[0] for _, b, _ in alone])
    assert np.abs(np.array([json.loads(b)[0] for _, b, _ in together]) - one).max() <= 1e-6
    predictor = Predictor(bundles["emb"])
    assert np.abs(one - np.stack([predictor.embed([t])[0] for t in texts])).max() < 1e-6


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
    ("unknown route", "text/classify", b'{"inputs": "a"}', {}, KEY, 404, "no route"),
    ("wrong method", "text/health", b'{"inputs": "a"}', {}, KEY, 405, "not allowed"),
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


def _tree(pid: int) -> set[int]:
    import psutil

    root = psutil.Process(pid)
    return {root.pid, *(p.pid for p in root.children(recursive=True))}


def _private_folders(pid: int) -> set[Path]:
    """The folders of the unix sockets the server's processes hold (HAProxy's admin socket, Ray's)."""
    import psutil

    out = set()
    for p in _tree(pid):
        try:
            out |= {Path(c.laddr).parent for c in psutil.Process(p).net_connections(kind="unix")
                    if c.laddr and c.laddr.startswith("/")}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


@pytest.mark.slow
def test_every_socket_of_the_server_is_on_loopback_and_private(server):
    """Issue 42 #1: the API, HAProxy (ingress, statistics, Prometheus) and Ray (GCS, raylet,
    agents, workers, replicas' gRPC) listen on loopback only; no admin socket others can open."""
    pytest.importorskip("psutil")
    from kdeploy.serve.loopback import beyond_loopback, listening

    sockets = listening(server["proc"].pid)
    port = int(server["url"].rsplit(":", 1)[1])
    assert any(p == port for _, p, _ in sockets), sockets  # the listing sees the server's own port
    assert len({name for *_, name in sockets}) >= 3, sockets  # and Ray's daemons, not only the driver
    assert beyond_loopback(sockets) == [], sockets
    names = " ".join(name for *_, name in sockets)
    assert "haproxy" not in names or not any(p == 8404 for _, p, _ in sockets)  # no statistics page
    folders = _private_folders(server["proc"].pid)
    assert any(f.name == "h" or "h" in f.parts for f in folders), folders  # HAProxy's admin socket is among them
    for folder in folders:  # each unix socket sits in a folder only this user can enter
        assert any(a.stat().st_mode & 0o077 == 0 and a.stat().st_uid == os.getuid()
                   for a in (folder, *folder.parents) if a.exists()), f"{folder} is open to other users"
    assert not any("haproxy-serve" in str(f) for f in folders)


def test_a_killed_servers_leftovers_are_swept_by_the_next_start(tmp_path, monkeypatch):
    """A server killed outright (SIGKILL) cannot clean up: HAProxy outlived Ray, and the folder
    stayed. The next local start removes folders marked as a server's whose server is gone, and
    kills what still runs from them; a folder kdeploy did not mark stays."""
    import tempfile

    from kdeploy.serve import loopback

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / "kdeploy-stale"
    (stale / "h").mkdir(parents=True)
    (stale / "owner.json").write_text(json.dumps({"pid": int(dead.stdout), "kdeploy": "serve"}))
    survivor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", str(stale / "h" / "haproxy.cfg")])
    mine = tmp_path / "kdeploy-not-a-server"
    mine.mkdir()
    live = tmp_path / "kdeploy-live"
    live.mkdir()
    (live / "owner.json").write_text(json.dumps({"pid": os.getpid(), "kdeploy": "serve"}))
    try:
        assert str(stale) in loopback.sweep_stale()
        assert survivor.wait(10) is not None  # killed
    finally:
        if survivor.poll() is None:
            survivor.kill()
    assert not stale.exists() and mine.exists() and live.exists()


def test_a_stop_kills_only_the_instances_processes(tmp_path, monkeypatch):
    """The clean-up kills what Ray left running, never another subprocess of the application that
    called serve_bundles: only this process's children that name the instance's folder (Ray's
    daemons) and what they started."""
    import tempfile

    pytest.importorskip("psutil")
    from kdeploy.serve.loopback import LocalInstance

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # too long for HAProxy: /tmp is used instead
    local = LocalInstance()
    assert local.folder.parent == Path("/tmp")
    sleeper = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); time.sleep(120)"
    daemon = subprocess.Popen([sys.executable, "-c", sleeper, f"--session-dir={local.folder}/ray"])
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        time.sleep(1.0)  # the daemon's own child is up
        local.remember_children()
        assert daemon.pid in local.pids and len(local.pids) == 2 and bystander.pid not in local.pids
        daemon.terminate()  # as ray.shutdown() does; its child is left behind, as Ray's agents were
        local.clean_up(grace_s=1.0)
        assert bystander.poll() is None and not local.folder.exists()
        assert _gone(local.pids - {daemon.pid}, 10) == set()
    finally:
        for proc in (daemon, bystander):
            if proc.poll() is None:
                proc.kill()


def _start(args: list[str], port: int, env: dict) -> tuple[subprocess.Popen, list[str]]:
    """A server, and its output lines as they come (read by a thread, so the pipe never fills)."""
    proc = subprocess.Popen([sys.executable, "-m", "kdeploy", "serve", *args, "--port", str(port), "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    return proc, lines


def _wait_started(proc, lines: list[str], timeout_s: float = 180) -> None:
    """Until the server says it is up (its start-up has returned: a stop is then a stop, not an
    interrupted start)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any("Ctrl-C stops the server" in line for line in lines):
            return
        if proc.poll() is not None:
            time.sleep(0.5)
            pytest.fail(f"kdeploy serve exited {proc.returncode}:\n{''.join(lines)}")
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"kdeploy serve did not start in {timeout_s:.0f} s:\n{''.join(lines)}")


def _gone(pids: set[int], timeout_s: float = 20) -> set[int]:
    import psutil

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = {p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
        if not alive:
            return set()
        time.sleep(0.2)
    return alive


@pytest.mark.slow
def test_a_second_server_beside_the_first_and_sigterm_leaves_nothing(server, bundles):
    """Issue 42 #2 and #3: a second server starts beside the first (HAProxy's ports are no longer
    fixed), and SIGTERM stops it with every process it started gone and its folder removed."""
    pytest.importorskip("psutil")
    import tempfile

    port = _free_port()
    debris_before = set(Path(tempfile.gettempdir()).glob("kdeploy-*")) | set(Path(tempfile.gettempdir()).glob("haproxy-*"))
    proc, lines = _start([str(bundles["text"])], port, {**os.environ, "KDEPLOY_API_KEY": KEY})
    try:
        _wait_started(proc, lines)
        assert call(f"http://127.0.0.1:{port}/predict", {"inputs": "a good film"})[0] == 200
        assert call(f"{server['url']}/text/predict", {"inputs": "a good film"})[0] == 200  # the first still answers
        pids, folders = _tree(proc.pid), _private_folders(proc.pid)
        assert len(pids) > 3 and folders
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(0.5)
    out = "".join(lines)
    assert proc.returncode == 0 and "Traceback" not in out, out
    assert _gone(pids) == set(), "processes left running after SIGTERM"
    left = [f for f in folders if f.exists() and any(part.startswith("kdeploy-") for part in f.parts)]
    assert left == [], f"left on disk: {left}"
    debris = set(Path(tempfile.gettempdir()).glob("kdeploy-*")) | set(Path(tempfile.gettempdir()).glob("haproxy-*"))
    assert debris - debris_before == set(), f"left in {tempfile.gettempdir()}: {debris - debris_before}"


@pytest.mark.slow
def test_ctrl_c_under_load_drains_without_a_404_and_leaves_nothing(server):
    """Issue 42 #4, and the stop: Ctrl-C while clients keep sending; in-flight requests finish,
    new ones get 503 + Retry-After (or find the port closed), never a 404 or a 500; the server
    exits 0 and nothing it started stays running. Runs last in this module (file order)."""
    pytest.importorskip("psutil")
    proc, url = server["proc"], server["url"]
    pids = _tree(proc.pid)
    codes: list[int] = []
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                code, _, headers = call(f"{url}/text/predict", {"inputs": ["a good film", "dull"]})
            except OSError:  # the port closed: what a stopped server does
                time.sleep(0.05)
                continue
            codes.append(code)
            if code == 503:
                assert headers.get("retry-after") or headers.get("Retry-After")

    clients = [threading.Thread(target=client) for _ in range(4)]
    for t in clients:
        t.start()
    time.sleep(1.5)
    served_before = len(codes)
    proc.send_signal(signal.SIGINT)  # the driver only: it stops Ray itself
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("kdeploy serve did not stop within 90 s of Ctrl-C")
    finally:
        stop.set()
        for t in clients:
            t.join(30)
    assert served_before > 0 and 200 in codes
    assert set(codes) <= {200, 503}, sorted(set(codes))
    assert 503 in codes  # the drain answered (new requests refused with Retry-After while in-flight ones finished)
    assert proc.returncode == 0, out
    assert "stopped" in out and "Traceback" not in out, out
    assert _gone(pids) == set(), "processes left running after Ctrl-C"
