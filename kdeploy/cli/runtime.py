"""bench, package, predict: measuring a model, bundling it, and running the bundle."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import KdeployError
from ..package.config import PackageSettings
from ..runtime.config import BenchSettings
from .app import app
from .options import DATA_OPTIONS, Out, Overwrite, data_options, eval_data, ints, names, shown


@app.command(epilog="Examples:\n\n  kdeploy bench runs/teacher runs/onnx --data test.tsv --out runs/report\n\n"
             "  kdeploy bench runs/teacher runs/student runs/student@int8 runs/onnx/model.int8.onnx --data test.tsv "
             "--batch-sizes 1,32 --threads 2 --out runs/report\n\n"
             "  kdeploy bench runs/teacher runs/onnx/model.int8.onnx --peers --data test.tsv --out runs/report   (against "
             "the teacher's faster runtimes)\n\n"
             "  kdeploy bench runs/teacher@bf16 runs/onnx/model.onnx@openvino-int8 --data test.tsv --out runs/report\n\n"
             "  kdeploy bench runs/onnx-gpu/model.fp16.onnx --provider cuda --out runs/report-gpu")
@data_options(omit=("train", "validation", "test", "max_train_samples"))  # --train/--validation: the baselines'
def bench(
    models: Annotated[list[str], typer.Argument(help="Model folders (PyTorch; FOLDER@int8 for torch.ao dynamic int8), ONNX files, or export folders (every .onnx in them).")],
    out: Out,
    provider: Annotated[Optional[str], typer.Option("--provider", help="cpu, cuda or tensorrt.", show_default=shown(BenchSettings, "provider"))] = None,
    allow_fallback: Annotated[bool, typer.Option("--allow-fallback", help="Accept a session that fell back to another provider.")] = False,
    batch_sizes: Annotated[Optional[str], typer.Option("--batch-sizes", help="Comma-separated.", show_default=shown(BenchSettings, "batch_sizes"))] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="Intra-op threads (default: every core).")] = None,
    warmup: Annotated[Optional[int], typer.Option("--warmup", show_default=shown(BenchSettings, "warmup"))] = None,
    iterations: Annotated[Optional[int], typer.Option("--iterations", help="Timed calls per model and batch size.", show_default=shown(BenchSettings, "iterations"))] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", help="Seconds per model and batch size (instead of --iterations).")] = None,
    seq_length: Annotated[Optional[int], typer.Option("--seq-length", help="Fixed token length (default: real sentences).")] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Default: each model's training max length.")] = None,
    teacher: Annotated[Optional[str], typer.Option("--teacher", help="Reference model name for agreement and drop (default: the first).")] = None,
    peers: Annotated[bool, typer.Option("--peers", help="Also the runtimes a user would pick instead: the reference in bf16, torch.compile, optimum's int8 and OpenVINO; OpenVINO fp32/bf16/int8 on each ONNX student (kdeploy list).")] = False,
    batching: Annotated[Optional[str], typer.Option("--batching", help="sorted (batches of similar length, as a bucketing server runs) or random.", show_default=shown(BenchSettings, "batching"))] = None,
    peaks: Annotated[Optional[bool], typer.Option("--peaks/--no-peaks", help="Measure the machine's int8/fp32 GEMM peaks and each model's share.", show_default=shown(BenchSettings, "peaks"))] = None,
    data_file: Annotated[Optional[str], typer.Option("--data", help="Labelled evaluation file: accuracy, and the sentences timed (never split).", rich_help_panel="Data")] = None,
    baselines: Annotated[Optional[str], typer.Option("--baselines", help="Also the cheap baselines, trained on --train (C or early stopping on --validation) and timed in the same run: tfidf-lr, fasttext, model2vec (comma-separated).", rich_help_panel="Baselines")] = None,
    baseline_encoder: Annotated[Optional[str], typer.Option("--baseline-encoder", help="The encoder model2vec distils. [default: the reference's base model]", rich_help_panel="Baselines")] = None,
    train: Annotated[Optional[str], typer.Option("--train", help="Training file for --baselines.", rich_help_panel="Baselines")] = None,
    validation: Annotated[Optional[str], typer.Option("--validation", help="Validation file for --baselines' choices.", rich_help_panel="Baselines")] = None,
    overwrite: Overwrite = False, data_flags: dict | None = None,
) -> None:
    """Benchmark models side by side: latency percentiles, throughput, memory, size and accuracy."""
    _check_baseline_flags(baselines, baseline_encoder, train, validation, data_file, data_flags)
    from ..configtools import settings_from
    from ..console import say
    from ..runtime.bench import bench as run

    settings = settings_from(BenchSettings, {
        "provider": provider, "allow_fallback": allow_fallback or None, "batch_sizes": ints(batch_sizes, "--batch-sizes"),
        "threads": threads, "warmup": warmup, "iterations": iterations, "duration": duration, "seq_length": seq_length,
        "max_length": max_length, "peers": peers or None, "batching": batching, "peaks": peaks,
        "baselines": names(baselines), "baseline_encoder": baseline_encoder})
    data = eval_data(None if train or validation else data_file, train=train, validation=validation,
                     test=data_file if train or validation else None, **data_flags)
    run(settings, models=models, out=out, data=data, teacher=teacher, overwrite=overwrite).render()
    say(f"reports: {out}/report.html, report.md, report.json")


def _check_baseline_flags(baselines, encoder, train, validation, data_file, data_flags) -> None:
    """The baseline flags that go together, checked before anything is loaded (a missing --train
    used to be found after the models had loaded)."""
    if baselines is not None and not names(baselines):
        raise KdeployError(f"--baselines {baselines!r} names no baseline; give one or more of tfidf-lr, fasttext, "
                           "model2vec (comma-separated), or drop --baselines")
    if encoder is not None and "model2vec" not in (names(baselines) or []):
        raise KdeployError("--baseline-encoder is the encoder model2vec distils; add --baselines model2vec (or drop "
                           "--baseline-encoder)")
    if (train or validation) and not baselines:
        raise KdeployError("--train and --validation are for --baselines (the models are already trained)")
    if baselines and not train and not (data_flags or {}).get("dataset"):
        raise KdeployError("--baselines are trained on the students' own train split: give --train (and "
                           "--validation) beside --data")
    if baselines and not data_file and not (data_flags or {}).get("dataset"):
        raise KdeployError("--baselines are scored beside the models: give --data (the labelled test file)")


@app.command(epilog="Examples:\n\n  kdeploy package runs/onnx --out runs/bundle\n\n"
             "  kdeploy package runs/onnx --out runs/bundle --format python,onnx-e2e,web   (runs/bundle, "
             "runs/bundle-onnx-e2e, runs/bundle-web)\n\n"
             "  kdeploy package runs/onnx --out runs/bundle --model-file model.onnx --archive zip --report runs/report/report.json")
@data_options(omit=("train", "validation", "test", "max_train_samples"))
def package(
    export_dir: Annotated[Path, typer.Argument(help="A folder written by kdeploy export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder (the first format); the archive is written beside it.")],
    formats: Annotated[Optional[str], typer.Option("--format", help="Comma-separated: python (kdeploy.edge), onnx-e2e (one ONNX file, text in, label out; needs onnxruntime-extensions), web (transformers.js). The first goes to --out, the others to OUT-FORMAT.", show_default=shown(PackageSettings, "formats"))] = None,
    model_file: Annotated[Optional[str], typer.Option("--model-file", help="Which ONNX file (default: int8, else optimised, else fp32).")] = None,
    archive: Annotated[Optional[str], typer.Option("--archive", help="tar.gz, zip or none.", show_default=shown(PackageSettings, "archive"))] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="A kdeploy bench report.json to record in the manifest.")] = None,
    ort_format: Annotated[bool, typer.Option("--ort-format", help="Also the ORT format (model.ort) for ONNX Runtime Mobile.")] = False,
    allow_low_retention: Annotated[bool, typer.Option("--allow-low-retention", help="Bundle a student that kept less than half of its teacher's gain over the trivial answer (the verdict goes into the manifest and the card).")] = False,
    data_file: Annotated[Optional[str], typer.Option("--data", help="Labelled file whose texts the e2e gate compares (default: the student's validation split).", rich_help_panel="Data")] = None,
    overwrite: Overwrite = False, data_flags: dict | None = None,
) -> None:
    """Make self-contained, checksummed bundles (model, tokenizer, manifest, README with the code to run them)."""
    from ..configtools import settings_from
    from ..console import say
    from ..package.bundle import package as run

    settings = settings_from(PackageSettings, {"model_file": model_file, "archive": archive,
                                               "ort_format": ort_format or None, "formats": names(formats),
                                               "allow_low_retention": allow_low_retention or None})
    data = eval_data(data_file, **data_flags)
    result = run(settings, export_dir=export_dir, out=out, report=report, data=data, overwrite=overwrite)
    for r in [result, *result.others]:
        say(f"{r.kind} bundle: {r.bundle} ({r.bundle_mib:.1f} MiB)"
            + (f"; archive {r.archive} ({r.archive_mib:.1f} MiB)" if r.archive else ""))
        say(f"  digest: {r.digest}  (pin it: kdeploy predict --digest {r.digest} ...)")
    for line in result.notes():
        say(line)


@app.command(epilog="Examples:\n\n  kdeploy predict runs/bundle \"a gripping, beautiful film\" \"dull\"\n\n"
             "  kdeploy predict runs/bundle.tar.gz --file reviews.txt > predictions.jsonl\n\n"
             "  echo 'what a mess' | kdeploy predict runs/bundle\n\n"
             "  kdeploy predict runs/sick-bundle --pair \"A man plays a guitar\" \"A person plays music\"   (a pair model; "
             "a file or stdin gives one pair per line, the two texts separated by a tab)\n\n"
             "  kdeploy predict runs/bundle --file test.tsv   (a table: its text column, found as every stage finds it; "
             "the label column is ignored)")
@data_options(omit=tuple(k for k in DATA_OPTIONS if k not in ("text_column", "text_pair_column")))
def predict(
    bundle: Annotated[Path, typer.Argument(help="A bundle folder or archive made by kdeploy package.")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts to classify (default: one per line from --file or stdin).")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="A table (.tsv/.csv/.jsonl/.parquet: its text column(s), the label ignored), or one text per line (split on newlines only; a pair model reads FIRST<TAB>SECOND); - for standard input.")] = None,
    pair: Annotated[bool, typer.Option("--pair", help="The text arguments are pairs, two by two (first, second), for a sentence-pair model.")] = False,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Texts per model call (length-sorted). [default: the predictor's]")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads")] = None,
    provider: Annotated[str, typer.Option("--provider", help="cpu, cuda, tensorrt, or openvino (the bundle's ONNX file in OpenVINO: QDQ int8, see export --int8-format).")] = "cpu",
    allow_fallback: Annotated[bool, typer.Option("--allow-fallback", help="Accept a session that fell back to another provider.")] = False,
    digest: Annotated[Optional[str], typer.Option("--digest", help="Refuse the bundle unless its digest (printed by kdeploy package) is this.")] = None,
    encoding: Annotated[str, typer.Option("--encoding", help="Encoding of the input text (file, stdin, arguments).")] = "utf-8",
    encoding_errors: Annotated[str, typer.Option("--encoding-errors", help="strict or replace.")] = "strict",
    redact: Annotated[bool, typer.Option("--redact", help="An entity tagger: print each text with its entities replaced by their type ([PER]), one per line.")] = False,
    data_flags: dict | None = None,
) -> None:
    """Classify or tag text with a bundle (onnxruntime + tokenizers only); writes JSON Lines."""
    import json

    from ..data.files import decode
    from ..edge import Predictor
    from .predict_input import examples, read_source

    if batch_size is not None and batch_size < 1:
        raise KdeployError(f"--batch-size must be at least 1, got {batch_size}")
    if threads is not None and threads < 1:
        raise KdeployError(f"--threads must be at least 1, got {threads}")
    if encoding_errors not in ("strict", "replace"):
        raise KdeployError(f"--encoding-errors must be strict or replace, got {encoding_errors!r}")
    decode(b"", "--encoding", encoding)  # an unknown codec is refused before any work
    source = read_source(texts, file, encoding, encoding_errors)
    predictor = Predictor(bundle, threads=threads, provider=provider, allow_fallback=allow_fallback,
                          expected_digest=digest)
    if pair and not predictor.manifest.pairs:
        raise KdeployError(f"--pair: {bundle} reads one text per example, not pairs")
    if redact and not predictor.kind.word_labels:
        raise KdeployError(f"--redact replaces the entities an entity tagger finds; {bundle} is a "
                           f"{predictor.kind.name} model")
    items = examples(source, predictor.manifest.pairs, **(data_flags or {}))
    if predictor.batch_invariant is False and len(items) > 1 and batch_size != 1:
        from ..console import note

        why = ("its int8 file runs in OpenVINO, whose kernels change with the batch's shape"
               if provider == "openvino" and predictor.manifest.batch_invariant is not False else "it holds dynamic int8")
        note(f"{bundle}: {why}, so its answers depend on which texts share a batch; --batch-size 1 gives "
             "each text its own answer" + ("" if provider == "openvino" else " (or re-export with --quantize int8)"))
    results = predictor.predict(items, **({"batch_size": batch_size} if batch_size else {}))
    for item, result in zip(items, results):
        if redact:  # the text with its entities replaced: PII out, one line per text
            sys.stdout.write(result.redact(item).translate(_LINE_BREAKS).replace("\n", " ") + "\n")
            continue
        fields = {"text": item[0], "text_pair": item[1]} if predictor.manifest.pairs else {"text": item}
        line = json.dumps({**fields, **result.to_dict()}, ensure_ascii=False)
        # one record per line for every reader: escape the characters some split lines on
        sys.stdout.write(line.translate(_LINE_BREAKS) + "\n")


_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})
