"""The bundle's README (model card), generated from its manifest."""
from __future__ import annotations

from ..manifest import BundleManifest


def model_card(m: BundleManifest) -> str:
    acc = m.accuracy or {}
    model = m.provenance.get("model") or m.provenance.get("student") or {}
    what = (f"{len(model['teacher_layers'])}-layer student" if model.get("teacher_layers")
            else model.get("builder", "model"))
    lines = [f"# Text classifier: {what} (kdeploy bundle)", "",
             f"Labels: {', '.join(m.label_names)}. Max length: {m.max_length} tokens (longer text is truncated).",
             f"Model: `{m.model}` ({m.dtype}, from `{m.source_file}`, opset {m.opset}); run it on {m.provider_advice}.",
             ""]
    if m.ort_model:
        lines += [f"ORT format: `{m.ort_model}` (same model, for ONNX Runtime Mobile and other minimal builds; "
                  f"`{m.ort_operators}` lists the operators a reduced build must include).", ""]
    if acc:
        lines += [f"Accuracy on the {m.accuracy_split} split: {100 * acc['accuracy']:.2f}% "
                  f"(macro-F1 {100 * acc['macro_f1']:.2f}%; {acc.get('examples')} examples"
                  + (f"; {acc['drop_points']:.2f} points below the fp32 export" if acc.get("drop_points") is not None
                     else "") + ").", ""]
    b = m.benchmark
    if b:
        for bs, s in b["latency"].items():
            lines.append(f"- batch {bs}: p50 {s['p50_ms']:.2f} ms, {s['throughput_per_s']:.0f} sentences/s "
                         f"({b['provider']}, {b['threads']} threads, {b['machine']['cpu']})")
        lines.append("")
    p = m.provenance
    teacher = p.get("teacher") or {}
    test = teacher.get("test") or {}
    lines += ["## Provenance", "",
              f"- teacher: {teacher.get('model', '-')}"
              + (f" (test accuracy {100 * test['accuracy']:.2f}%)" if test.get("accuracy") is not None else ""),
              f"- distillation: α={p.get('alpha')}, T={p.get('temperature')}",
              f"- data fingerprint: {p.get('data_fingerprint')}",
              f"- kdeploy {p.get('package_versions', {}).get('kdeploy', '?')}, "
              f"onnxruntime {p.get('package_versions', {}).get('onnxruntime', '?')}", "",
              "## Use", "",
              "```bash",
              "pip install kdeploy   # the slim core: onnxruntime, tokenizers, numpy; no torch",
              "kdeploy predict path/to/bundle \"your text here\"",
              "```", "",
              "```python", "from kdeploy.edge import Predictor",
              "p = Predictor('path/to/bundle')", "print(p.predict(['your text here']))", "```", "",
              "## Integrity", "",
              "Every file is listed in `bundle.json` with its size and sha256 and is checked before it is loaded; "
              "the label names are also written into the model's own metadata and must agree. The checksums "
              "catch a damaged or altered file, not a rewritten manifest: to trust exactly this bundle, pin its "
              "digest (the sha256 of `bundle.json`, printed by `kdeploy package`) with "
              "`Predictor(path, expected_digest=...)` or `kdeploy predict --digest ...`.", ""]
    return "\n".join(lines)
