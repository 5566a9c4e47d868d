"""The web bundle: the folder transformers.js (`@huggingface/transformers`) loads offline.

    index.html                      a demo page (imports ./vendor/transformers.min.js)
    model/config.json               model_type, id2label, the dtype to load
    model/tokenizer.json            the same tokenizer the Python predictor uses
    model/tokenizer_config.json     model_max_length = the bundle's max_length (truncation)
    model/onnx/model_quantized.onnx the int8 file (dtype "q8"), or model.onnx (fp32) / model_fp16.onnx

transformers.js picks the model class from `model_type` and feeds the graph the tokenizer's
input_ids / attention_mask / token_type_ids (those the graph declares), reading `logits`.
Every kdeploy student has that interface, so each is described as a BERT-style sequence
classifier to it; anything else (an OpenVINO IR, other inputs or outputs) is refused here.

Two differences from the `tokenizers` library are removed, both measured by bench/web_parity.py:
- transformers.js truncates after adding [CLS]/[SEP], so a long text lost its final [SEP]: the
  web model therefore truncates itself (first max_length-1 tokens + each row's last real
  token) and the tokenizer config lets transformers.js pass the whole text;
- it matches "[SEP]", "[CLS]"… typed inside the text as special tokens: the web tokenizer.json
  lists no added tokens (the post-processor still adds the real ones by id), so such text is
  text, as in the Python predictor and the e2e model.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from ..errors import KdeployError
from ..fsutil import write_json, write_text
from ..modelio.exported import KEY as EXPORTED_KEY
from ..modelio.exported import ExportedModel
from ..names import MODEL_CONFIG, TOKENIZER_FILE

NO_LIMIT = 1_000_000_000  # model_max_length for transformers.js: the graph truncates (see above)
TRANSFORMERS_JS = "4.3.2"  # the version the bundle was tested with (bench/web_parity.py)
MODEL_DIR = "model"
DTYPE_FILE = {"int8": ("q8", "model_quantized.onnx"), "fp32": ("fp32", "model.onnx"), "fp16": ("fp16", "model_fp16.onnx")}
KNOWN_TYPES = {"bert", "distilbert", "roberta", "xlm-roberta", "mpnet", "electra", "albert", "deberta", "deberta-v2",
               "camembert", "mobilebert", "squeezebert", "modernbert"}


def web_model_name(dtype: str) -> str:
    if dtype not in DTYPE_FILE:
        raise KdeployError(f"--format web: a {dtype} model has no transformers.js dtype; package the int8, fp32 or "
                           "fp16 file")
    return f"{MODEL_DIR}/onnx/{DTYPE_FILE[dtype][1]}"


def check_web_task(pairs: bool, task: str) -> None:
    """What transformers.js's text-classification pipeline would get wrong, refused up front (the
    task kinds it cannot run at all are refused by their registry entry, before any work)."""
    if pairs:
        raise KdeployError("--format web: transformers.js truncates a long pair by cutting its end (the second "
                           "text and its [SEP]) where BERT takes tokens from the longer text; bundle a pair model as "
                           "python or onnx-e2e")


def check_web_model(model_path: Path, output: str = "logits") -> None:
    """Refuse what transformers.js cannot run as a text classifier (or, `output` its vector, as a
    feature extractor), before anything is written."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    outputs = [o.name for o in model.graph.output]
    if set(inputs) - {"input_ids", "attention_mask", "token_type_ids"} or "input_ids" not in inputs:
        raise KdeployError(f"--format web: {model_path.name} takes {inputs}; transformers.js feeds input_ids, "
                           "attention_mask and token_type_ids only")
    if output not in outputs:
        raise KdeployError(f"--format web: {model_path.name} outputs {outputs}; transformers.js reads {output!r}")


def output_as_logits(path: Path, output: str) -> None:
    """Rename the graph's `output` to `logits`: what transformers.js's feature-extraction pipeline
    reads (`last_hidden_state ?? logits ?? token_embeddings`). An embedder's graph already pools
    and normalises, so the page calls the pipeline with pooling "none" and gets the vector."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        node.output[:] = ["logits" if o == output else o for o in node.output]
    for o in model.graph.output:
        if o.name == output:
            o.name = "logits"
    onnx.save(model, str(path))


def web_keep_first(tokenizer_json: Path, max_length: int, truncation: str) -> int:
    """How many leading positions a long text keeps, for this tokenizer's special tokens."""
    from tokenizers import Tokenizer

    from ..truncation import keep_first, special_counts

    probe = Tokenizer.from_file(str(tokenizer_json))
    probe.no_truncation()
    mask = probe.encode("a").special_tokens_mask
    return keep_first(truncation, max_length, *(special_counts(mask) if 0 in mask else (1, 1)))


def write_web(tmp: Path, export_dir: Path, model_file: Path, dtype: str, labels: list[str], max_length: int,
              pairs: bool, tokenizer_json: Path, truncation: str = "head", task: str = "classification",
              thresholds: dict | None = None) -> list[str]:
    """Write the transformers.js layout into tmp; return the names the manifest lists. The
    config's problem_type is the task kind's: transformers.js's text-classification pipeline
    applies a sigmoid for multi_label_classification and a softmax otherwise."""
    from ..tasks import task_kind
    from .binding import bind_labels

    kind = task_kind(task)
    vector = kind.e2e_output if kind.sentence_vectors else None  # an embedder's one output
    check_web_model(model_file, vector or "logits")
    config = json.loads((export_dir / MODEL_CONFIG).read_text(encoding="utf-8"))
    kd = ExportedModel.from_config(config) or ExportedModel()
    config.pop(EXPORTED_KEY, None)
    model_type = config.get("model_type")
    if model_type not in KNOWN_TYPES:  # BiLSTM, CNN, static students: same inputs and logits as BERT
        config = {"model_type": "bert", "architectures": ["BertForSequenceClassification"],
                  "kdeploy_student": model_type, "vocab_size": config.get("vocab_size")}
    if vector:  # transformers.js's feature-extraction pipeline takes the encoder class of its model_type
        config.pop("problem_type", None)
        config.update({"transformers.js_config": {"dtype": DTYPE_FILE[dtype][0]}})
    else:
        config.update({"id2label": {str(i): n for i, n in enumerate(labels)},
                       "label2id": {n: i for i, n in enumerate(labels)}, "problem_type": kind.problem_type,
                       "transformers.js_config": {"dtype": DTYPE_FILE[dtype][0]}})
    config[EXPORTED_KEY] = ExportedModel(label_names=labels, max_length=max_length, pairs=pairs, inputs=kd.inputs,
                                         truncation=truncation, task=task, thresholds=thresholds).to_json(
        "label_names", "max_length", "pairs", "inputs", "truncation", "task", *(["thresholds"] if thresholds else []))
    folder = tmp / MODEL_DIR
    (folder / "onnx").mkdir(parents=True)
    write_json(folder / MODEL_CONFIG, config)
    tok_config_path = export_dir / "tokenizer_config.json"
    tok_config = json.loads(tok_config_path.read_text(encoding="utf-8")) if tok_config_path.exists() else {}
    tok_config.update({"model_max_length": NO_LIMIT, "truncation_side": "right", "padding_side": "right"})
    write_json(folder / "tokenizer_config.json", tok_config)
    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    spec["added_tokens"] = []  # typed "[SEP]" is text; the post-processor adds the real ones by id
    spec["truncation"] = spec["padding"] = None  # transformers.js ignores them; the graph truncates
    write_json(folder / TOKENIZER_FILE, spec)
    model_name = web_model_name(dtype)
    bind_labels(model_file, tmp / model_name, labels)
    if vector:
        output_as_logits(tmp / model_name, vector)
    add_truncation(tmp / model_name, max_length, web_keep_first(tokenizer_json, max_length, truncation))
    write_text(tmp / "index.html", embed_html() if vector else index_html(labels, pairs, thresholds))
    return [f"{MODEL_DIR}/config.json", f"{MODEL_DIR}/tokenizer_config.json", f"{MODEL_DIR}/tokenizer.json",
            model_name, "index.html"]


def add_truncation(path: Path, max_length: int, first: int | None = None) -> None:
    """Prepend to the graph the cut `tokenizers` makes (kdeploy.truncation's rule): a row longer
    than max_length keeps its first `first` positions and its last max_length - first, so
    its final [SEP] stays (head: first = max_length - 1; tail: 1; head+tail:N: 1 + N)."""
    import onnx
    from onnx import helper

    from .tokenizer_graph import cut_index_nodes

    first = max_length - 1 if first is None else first
    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    feeds = [i.name for i in graph.input if i.name not in inits]
    p = "kdeploy_truncate_"
    inner = {name: p + name for name in feeds}
    for node in graph.node:
        for k, x in enumerate(node.input):
            if x in inner:
                node.input[k] = inner[x]
    axis0, axis1 = (helper.make_tensor(p + f"axis{k}_v", onnx.TensorProto.INT64, [1], [k]) for k in (0, 1))
    nodes = [helper.make_node("Constant", [], [p + "axis0"], value=axis0),
             helper.make_node("Constant", [], [p + "axis1"], value=axis1),
             helper.make_node("Shape", ["input_ids"], [p + "dims"]),
             helper.make_node("Gather", [p + "dims", p + "axis1"], [p + "shape"], axis=0)]  # [L]
    if "attention_mask" in feeds:  # each row's real length, [B, 1]
        nodes.append(helper.make_node("ReduceSum", ["attention_mask", p + "axis1"], [p + "lens"], keepdims=1))
    else:  # no mask: every row is as long as the batch
        nodes += [helper.make_node("Gather", [p + "dims", p + "axis0"], [p + "batch"], axis=0),
                  helper.make_node("Expand", [p + "shape", p + "batch"], [p + "lens_flat"]),
                  helper.make_node("Unsqueeze", [p + "lens_flat", p + "axis1"], [p + "lens"])]
    index_nodes, index = cut_index_nodes(p + "lens", p + "shape", max_length, first, p + "cut_", rows=True)
    nodes += index_nodes
    nodes += [helper.make_node("GatherElements", [name, index], [inner[name]], axis=1) for name in feeds]
    body = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + body)
    onnx.save(model, str(path))


def embed_html() -> str:
    """The demo page of an embedder: two texts, their vectors and their cosine similarity."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>kdeploy sentence embedder</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto}}textarea{{width:100%}}</style>
</head>
<body>
<h1>Sentence embedder</h1>
<p>Two texts, their cosine similarity. Runs in this tab (transformers.js, onnxruntime-web WASM); nothing is sent anywhere.</p>
<textarea id="first" rows="2">A man is playing a guitar.</textarea>
<textarea id="second" rows="2">Someone plays an instrument.</textarea>
<p><button id="go" disabled>loading…</button> <span id="time"></span></p>
<p id="out"></p>
<script type="module">
import {{ pipeline, env }} from './vendor/transformers.min.js';
env.allowRemoteModels = false;             // offline: only this folder
env.allowLocalModels = true;
env.localModelPath = new URL('./', location.href).pathname;
env.backends.onnx.wasm.wasmPaths = new URL('./vendor/', location.href).href;  // no CDN
const extract = await pipeline('feature-extraction', '{MODEL_DIR}');  // the graph pools and normalises
const embed = async (text) => (await extract(text)).tolist()[0];
const go = document.getElementById('go');
go.textContent = 'compare'; go.disabled = false;
go.onclick = async () => {{
  const t0 = performance.now();
  const [a, b] = [await embed(document.getElementById('first').value), await embed(document.getElementById('second').value)];
  document.getElementById('time').textContent = `${{(performance.now() - t0).toFixed(1)}} ms`;
  const dot = a.reduce((s, x, i) => s + x * b[i], 0);
  const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  document.getElementById('out').textContent = `cosine ${{(dot / (norm(a) * norm(b))).toFixed(4)}} (${{a.length}} dims)`;
}};
window.kdeploy = {{ embed }};               // for scripted checks
</script>
</body>
</html>
"""


def index_html(labels: list[str], pairs: bool, thresholds: dict | None = None) -> str:
    """The demo page; a multi-label model's labels at or above their thresholds are marked ✓."""
    second = ('<textarea id="second" rows="2" placeholder="second sentence"></textarea>' if pairs else "")
    feed = "{ text: first, text_pair: document.getElementById('second').value }" if pairs else "first"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>kdeploy text classifier</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto}}textarea{{width:100%}}
td{{padding:.1rem .6rem}}</style>
</head>
<body>
<h1>Text classifier</h1>
<p>Labels: {html.escape(", ".join(labels))}. Runs in this tab (transformers.js, onnxruntime-web WASM); nothing is sent anywhere.</p>
<textarea id="first" rows="3">A gripping, beautifully acted film.</textarea>
{second}
<p><button id="go" disabled>loading…</button> <span id="time"></span></p>
<table id="out"></table>
<script type="module">
import {{ pipeline, env }} from './vendor/transformers.min.js';
env.allowRemoteModels = false;             // offline: only this folder
env.allowLocalModels = true;
env.localModelPath = new URL('./', location.href).pathname;  // a path: transformers.js probes local files by path
env.backends.onnx.wasm.wasmPaths = new URL('./vendor/', location.href).href;  // no CDN
const classify = await pipeline('text-classification', '{MODEL_DIR}');
const thresholds = {json.dumps(thresholds) if thresholds else "null"};  // multi-label: a label is chosen at or above its own
const go = document.getElementById('go');
go.textContent = 'classify'; go.disabled = false;
go.onclick = async () => {{
  const first = document.getElementById('first').value;
  const t0 = performance.now();
  const scores = await classify({feed}, {{ top_k: null }});
  document.getElementById('time').textContent = `${{(performance.now() - t0).toFixed(1)}} ms`;
  const table = document.getElementById('out');
  table.replaceChildren(...scores.map(s => {{
    const row = document.createElement('tr');
    const mark = thresholds ? (s.score >= thresholds[s.label] ? '✓' : '') : '';
    for (const value of [s.label, s.score.toFixed(4), mark]) {{
      const cell = document.createElement('td'); cell.textContent = value; row.append(cell);
    }}
    return row;
  }}));
}};
window.kdeploy = {{ classify }};           // for scripted checks
</script>
</body>
</html>
"""
