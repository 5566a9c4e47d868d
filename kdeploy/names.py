"""The names of the files kdeploy writes and reads, declared once on the ground floor (as
transformers declares CONFIG_NAME and SAFE_WEIGHTS_NAME): every reader and writer imports the
constant, so a record is never looked for under a name another stage spells differently. The
export's own files (model.onnx, model.int8.onnx, ...) are declared with their roles in
`kdeploy.export.files`."""
from __future__ import annotations

MODEL_RECORD = "kdeploy.json"  # a trained model's record: finetune, distill, prune
EXPORT_REPORT = "export_report.json"  # what kdeploy export wrote and checked
BENCH_REPORT = "report.json"  # kdeploy bench's measurements
BUNDLE_MANIFEST = "bundle.json"  # a bundle's manifest: every file with its size and sha256
LEGACY_MANIFEST = "kdeploy.json"  # kdeploy-bundle/1 (kdeploy 0.1) named its manifest like the model record
RUN_RECORD = "kdeploy-run.json"  # a recipe run's record
MODEL_CONFIG = "config.json"  # transformers' model configuration (CONFIG_NAME)
TOKENIZER_FILE = "tokenizer.json"  # the `tokenizers` library's serialised fast tokenizer
