"""The bundle's README (model card), generated from its manifest."""
from __future__ import annotations

from ..formats import FORMATS
from ..manifest import BundleManifest
from ..metrics import PERCENT, TITLES as METRIC_TITLES, Scores
from ..results import build
from ..tasks import task_kind

EXAMPLE = "a gripping, beautifully acted film"


def use_python(m: BundleManifest) -> list[str]:
    if task_kind(m.task).sentence_vectors:
        return ["```python", "from kdeploy.edge import Predictor   # pip install kdeploy: onnxruntime, tokenizers, numpy",
                "p = Predictor('path/to/bundle')", "vectors = p.embed(['your text here'])   # float32 [N, D]",
                "```", "",
                "Without kdeploy: tokenise with `tokenizers` (`Tokenizer.from_file('tokenizer.json')`, truncation to "
                f"{m.max_length}), feed {', '.join(m.inputs or ['input_ids'])} as int64 [batch, length] (right-padded "
                "with the pad id); the `sentence_embedding` output is the vector, pooled and normalised in the graph.",
                ""]
    if task_kind(m.task).word_labels:
        return ["```bash", "pip install kdeploy   # the slim core: onnxruntime, tokenizers, numpy; no torch",
                "kdeploy predict path/to/bundle \"John Smith flew to Berlin.\"            # spans, JSON Lines",
                "kdeploy predict path/to/bundle --redact \"John Smith flew to Berlin.\"   # [PER] flew to [LOC].",
                "```", "", "```python", "from kdeploy.edge import Predictor",
                "p = Predictor('path/to/bundle')",
                "for e in p.predict(['John Smith flew to Berlin.'])[0].entities: print(e.entity, e.start, e.end, e.text)",
                "```", "",
                "Without kdeploy: tokenise with `tokenizers` (`Tokenizer.from_file('tokenizer.json')`, truncation to "
                f"{m.max_length}), feed {', '.join(m.inputs or ['input_ids'])} as int64 [batch, length] (right-padded "
                "with the pad id); the `logits` output is [batch, length, tags]: softmax each token's row, read each "
                "word's tag at its first sub-token (the encoding's `word_ids`), group B-/I- tags of one type into "
                f"entities and take their character offsets from the encoding's `offsets`; tag i is {m.label_names}[i].",
                ""]
    return ["```bash",
            "pip install kdeploy   # the slim core: onnxruntime, tokenizers, numpy; no torch",
            "kdeploy predict path/to/bundle \"your text here\"",
            "```", "",
            "```python", "from kdeploy.edge import Predictor",
            "p = Predictor('path/to/bundle')", "print(p.predict(['your text here']))", "```", "",
            "Without kdeploy: tokenise with `tokenizers` (`Tokenizer.from_file('tokenizer.json')`, truncation to "
            f"{m.max_length}, `encode_special_tokens = True`), feed {', '.join(m.inputs or ['input_ids'])} as int64 "
            "[batch, length] (right-padded with the pad id), softmax the `logits` output; label i is "
            f"{m.label_names}[i].", ""]


def use_e2e(m: BundleManifest) -> list[str]:
    shape = "[N, 2] (pairs)" if m.pairs else "[N]"
    kind = task_kind(m.task)
    outputs = [kind.e2e_output] if kind.sentence_vectors else ["probabilities", "label"]
    returns = (f"`{kind.e2e_output}`: float [N, {(m.pooling or {}).get('dimension', 'D')}] (the sentence vector)"
               if kind.sentence_vectors else
               f"`probabilities`: float [N, {len(m.label_names)}] and `label`: string [N]")
    if kind.word_labels:  # kdeploy.package.e2e_words: one text a call, its entities grouped in the graph
        shape, outputs = "[1] (one text a call)", ["entity", "start", "end", "score"]
        returns = ("its entities: `entity`: string [E] (the type), `start` and `end`: int64 [E] (Unicode code-point "
                   "offsets into the text: Python `str` indices; a Java/C# app converts them with "
                   "`offsetByCodePoints`), `score`: float [E] (the mean of its words' tag probabilities); and per "
                   f"word, `word_start`, `word_end` and `probabilities`: float [W, {len(m.label_names)}] in the "
                   f"order {', '.join(m.label_names)}. A text longer than the model's {m.max_length} tokens is read "
                   "whole, in overlapping windows, as the python bundle reads it")
    return [f"`{m.model}` takes `text`: string {shape} and returns {returns}. The tokenizer is inside the graph as onnxruntime-extensions custom ops, so "
            "any ONNX Runtime binding runs it once the extensions library is registered. (`model.onnx` and "
            "`tokenizer.json` are the same model without the tokenizer, for the python predictor.)", "",
            "Python:", "", "```python", "import numpy as np, onnxruntime as ort",
            "from onnxruntime_extensions import get_library_path   # pip install onnxruntime-extensions",
            "options = ort.SessionOptions()", "options.register_custom_ops_library(get_library_path())",
            f"session = ort.InferenceSession('{m.model}', options)",
            f"outputs = session.run(None, {{'text': np.array(['{EXAMPLE}'], dtype=object)}})",
            "```", "",
            "C++ (ONNX Runtime C/C++ API; link libortextensions from an onnxruntime-extensions build):", "",
            "```cpp", "#include <onnxruntime_cxx_api.h>",
            "Ort::Env env;", "Ort::SessionOptions options;",
            "options.RegisterCustomOpsLibrary(ORT_TSTR(\"libortextensions.so\"));",
            f"Ort::Session session(env, ORT_TSTR(\"{m.model}\"), options);",
            "Ort::AllocatorWithDefaultOptions alloc;", "int64_t shape[] = {1};",
            "Ort::Value text = Ort::Value::CreateTensor(alloc, shape, 1, ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING);",
            f"const char* rows[] = {{\"{EXAMPLE}\"}};", "text.FillStringTensor(rows, 1);",
            "const char* in[] = {\"text\"}; const char* out[] = {" + ", ".join(f'\"{n}\"' for n in outputs) + "};",
            f"auto result = session.Run(Ort::RunOptions{{nullptr}}, in, &text, 1, out, {len(outputs)});",
            "const float* p = result[0].GetTensorData<float>();", "```", "",
            "Android (Java/Kotlin, `com.microsoft.onnxruntime:onnxruntime-android` + "
            "`com.microsoft.onnxruntime:onnxruntime-extensions-android`):", "",
            "```java", "OrtEnvironment env = OrtEnvironment.getEnvironment();",
            "OrtSession.SessionOptions options = new OrtSession.SessionOptions();",
            "options.registerCustomOpLibrary(OrtxPackage.getLibraryPath());",
            f"OrtSession session = env.createSession(modelBytes, options);  // {m.model} from assets",
            f"OnnxTensor text = OnnxTensor.createTensor(env, new String[]{{\"{EXAMPLE}\"}}, new long[]{{1}});",
            "float[][] p = (float[][]) session.run(Map.of(\"text\", text)).get(0).getValue();", "```", "",
            "iOS (CocoaPods `onnxruntime-objc` + `onnxruntime-extensions-c`): "
            "`[options registerCustomOpsUsingFunction:@\"RegisterCustomOps\" error:&error]`, then run as above "
            "with a string tensor.", ""]


def use_web(m: BundleManifest) -> list[str]:
    from .web import TRANSFORMERS_JS

    return ["The `model/` folder is what transformers.js (`@huggingface/transformers`) loads offline; "
            "`index.html` is a demo page.", "",
            "Browser (served from this folder; no CDN):", "", "```bash",
            f"npm install @huggingface/transformers@{TRANSFORMERS_JS}",
            "mkdir -p vendor && cp node_modules/@huggingface/transformers/dist/transformers.min.js vendor/",
            "cp $(find node_modules -path '*onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.*' | head -2) vendor/",
            "python -m http.server 8000   # open http://localhost:8000/index.html", "```", "",
            "Node:", "", "```js", "import { pipeline, env } from '@huggingface/transformers';",
            "env.allowRemoteModels = false;", "env.localModelPath = '/path/to/this/bundle/';",
            *(["const extract = await pipeline('feature-extraction', 'model');  // pooled and normalised in the graph",
               f"console.log((await extract('{EXAMPLE}')).tolist()[0]);"] if task_kind(m.task).sentence_vectors else
              ["const classify = await pipeline('text-classification', 'model');",
               f"console.log(await classify('{EXAMPLE}', {{ top_k: null }}));"]), "```", "",
            "Python (the same files): `kdeploy predict path/to/this/bundle \"your text\"`.", ""]


def _invariance(m: BundleManifest) -> list[str]:
    inv = m.invariance or {}
    if m.batch_invariant is True and inv.get("note"):
        return [f"Batch-invariant: {inv['note']}.", ""]
    if m.batch_invariant is True:
        return [f"Batch-invariant: a text gets the same answer alone or in any batch (measured on {inv.get('texts')} "
                f"texts alone, in batches of 32 and beside the longest: max |Δp| {inv.get('max_abs_diff', 0):.1e}, "
                "no label changed).", ""]
    if m.batch_invariant is False:
        return [f"Not batch-invariant: this model's int8 activations are scaled per call, so a text's answer "
                f"depends on which texts share its batch ({inv.get('flips')} of {inv.get('texts')} labels changed, "
                f"max |Δp| {inv.get('max_abs_diff', 0):.1e}). Predict one text per call for stable answers, or "
                "re-export with `--quantize int8` (calibrated).", ""]
    return []


def model_card(m: BundleManifest) -> str:
    acc = m.accuracy or {}
    model = m.provenance.get("model") or m.provenance.get("student") or {}
    what = (f"{len(model['teacher_layers'])}-layer student" if model.get("teacher_layers")
            else model.get("builder", "model"))
    lines = [f"# {task_kind(m.task).title}: {what} (kdeploy bundle)", "",
             f"{_gives(m)} Max length: {m.max_length} tokens ("
             + ("a longer text is read whole, in overlapping windows)." if task_kind(m.task).word_labels
                else "longer text is truncated)."),
             *_thresholds(m),
             f"Model: `{m.model}` ({m.dtype}, from `{m.source_file}`, opset {m.opset}); run it on {m.provider_advice}.",
             ""]
    lines += _invariance(m)
    if m.ort_model:
        lines += [f"ORT format: `{m.ort_model}` (same model, for ONNX Runtime Mobile and other minimal builds; "
                  f"`{m.ort_operators}` lists the operators a reduced build must include).", ""]
    if acc:
        scores = build(Scores, acc)
        lines += [f"On the {m.accuracy_split} split: {scores.summary()} ({acc.get('examples')} examples"
                  + (f"; {acc['drop_points']:.2f} points below the fp32 export" if acc.get("drop_points") is not None
                     else "") + ").", ""]
    r = m.retention
    if r:
        learned = r.get("learned")
        lines += [f"Retention on the {r.get('split')} split: {_figure(r, 'student')} against the teacher's "
                  f"{_figure(r, 'teacher')} and {_figure(r, 'trivial')} for the trivial answer ({r.get('trivial_answer')})"
                  + (f"; the student kept {100 * learned:.0f}% of the teacher's gain over it" if learned is not None
                     else "") + "."
                  + ("" if r.get("passed", True) else " **Below kdeploy's retention floor: shipped with "
                     "`--allow-low-retention`; the student learned little of what its teacher knows.**"), ""]
    b = m.benchmark
    if b:
        for bs, s in b["latency"].items():
            lines.append(f"- batch {bs}: p50 {s['p50_ms']:.2f} ms, {s['throughput_per_s']:.0f} sentences/s "
                         f"({b['provider']}, {b['threads']} threads, {b['machine']['cpu']})")
        lines.append("")
    p = m.provenance
    teacher = p.get("teacher") or {}
    test = build(Scores, teacher.get("test")) if isinstance(teacher.get("test"), dict) else None
    lines += ["## Provenance", "",
              f"- teacher: {teacher.get('model', '-')}" + (f" (test: {test.summary()})" if test and test.metrics else ""),
              f"- distillation: α={p.get('alpha')}, T={p.get('temperature')}",
              f"- data fingerprint: {p.get('data_fingerprint')}",
              f"- kdeploy {p.get('package_versions', {}).get('kdeploy', '?')}, "
              f"onnxruntime {p.get('package_versions', {}).get('onnxruntime', '?')}", "",
              "## Use", ""] + FORMATS[m.kind].use()(m) + [
              "## Integrity", "",
              "Every file is listed in `bundle.json` with its size and sha256 and is checked before it is loaded; "
              "the label names are also written into the model's own metadata and must agree. The checksums "
              "catch a damaged or altered file, not a rewritten manifest: to trust exactly this bundle, pin its "
              "digest (the sha256 of `bundle.json`, printed by `kdeploy package`) with "
              "`Predictor(path, expected_digest=...)` or `kdeploy predict --digest ...`.", ""]
    return "\n".join(lines)


def _gives(m: BundleManifest) -> str:
    """What the model answers: its labels, or (an embedder) its vectors and how they are pooled."""
    if not task_kind(m.task).sentence_vectors:
        return f"Labels: {', '.join(m.label_names)}."
    pooling = m.pooling or {}
    return (f"Vectors: {pooling.get('dimension')} wide, {pooling.get('pooling')} pooling"
            f"{', L2-normalised' if pooling.get('normalize') else ''}, inside the graph.")


def _thresholds(m: BundleManifest) -> list[str]:
    if not m.thresholds:
        return []
    return [f"Thresholds (a label is chosen when its sigmoid score reaches its own, tuned on validation; every "
            f"format and the server apply them): {', '.join(f'{k} {v:g}' for k, v in m.thresholds.items())}."]


def _figure(r: dict, key: str) -> str:
    value = r.get(key)
    if value is None:
        return "?"
    metric = r.get("metric") or "accuracy"
    title = "" if metric == "accuracy" else f"{METRIC_TITLES.get(metric, metric)} "
    return f"{title}{100 * value:.2f}%" if metric in PERCENT else f"{title}{value:.3f}"

