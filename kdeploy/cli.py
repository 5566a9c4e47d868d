"""kdeploy's command line: a thin layer that maps flags to typed configs and calls the stage APIs."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import KdeployError

app = typer.Typer(
    name="kdeploy",
    help="Distil a large text classifier into a small student, export it to ONNX and run it on the edge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}

# --- shared option aliases ---------------------------------------------------------------
Train = Annotated[Optional[str], typer.Option("--train", help="Training file (.csv/.tsv/.jsonl/.parquet).", rich_help_panel="Data")]
Validation = Annotated[Optional[str], typer.Option("--validation", help="Validation file; carved from train (seeded) when absent.", rich_help_panel="Data")]
Test = Annotated[Optional[str], typer.Option("--test", help="Test file, scored once at the end.", rich_help_panel="Data")]
Dataset = Annotated[Optional[str], typer.Option("--dataset", help="Hub dataset (imdb, glue/sst2), a save_to_disk folder, or builtin:rotten_tomatoes.", rich_help_panel="Data")]
DatasetConfig = Annotated[Optional[str], typer.Option("--dataset-config", help="Hub dataset configuration name.", rich_help_panel="Data")]
TextColumn = Annotated[Optional[str], typer.Option("--text-column", help="Default: text, sentence, review, ...", rich_help_panel="Data")]
LabelColumn = Annotated[Optional[str], typer.Option("--label-column", help="Default: label, labels, category, ...", rich_help_panel="Data")]
LabelNames = Annotated[Optional[str], typer.Option("--label-names", help="Names for integer labels, in id order: negative,positive.", rich_help_panel="Data")]
MaxTrain = Annotated[Optional[int], typer.Option("--max-train-samples", help="Use a seeded sample of the training data.", rich_help_panel="Data")]
MaxEval = Annotated[Optional[int], typer.Option("--max-eval-samples", help="Use a seeded sample of validation/test.", rich_help_panel="Data")]
Epochs = Annotated[float, typer.Option("--epochs", rich_help_panel="Training")]
BatchSize = Annotated[int, typer.Option("--batch-size", rich_help_panel="Training")]
GradAccum = Annotated[int, typer.Option("--gradient-accumulation", rich_help_panel="Training")]
MaxLength = Annotated[int, typer.Option("--max-length", help="Tokens per text; longer texts are truncated.", rich_help_panel="Training")]
Seed = Annotated[int, typer.Option("--seed", rich_help_panel="Training")]
Precision = Annotated[str, typer.Option("--mixed-precision", help="auto (fp16 on CUDA), no, fp16, bf16.", rich_help_panel="Training")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.", rich_help_panel="Training")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder (written atomically).")]
TrustRemote = Annotated[bool, typer.Option("--trust-remote-code", help="Allow model code from the hub (off by default).")]


def _data(train, validation, test, dataset, dataset_config, text_column, label_column, label_names,
          max_train, max_eval):
    from .data import DataConfig

    return DataConfig(train=train, validation=validation, test=test, dataset=dataset, dataset_config=dataset_config,
                      text_column=text_column, label_column=label_column, label_names=label_names,
                      max_train_samples=max_train, max_eval_samples=max_eval)


def _train(epochs, learning_rate, batch_size, gradient_accumulation, max_length, seed, mixed_precision, resume):
    from .distill.trainer import TrainConfig

    return TrainConfig(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                       gradient_accumulation=gradient_accumulation, max_length=max_length, seed=seed,
                       mixed_precision=mixed_precision, resume=resume)


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    _state["debug"] = debug


@app.command(epilog="Examples:\n\n  kdeploy finetune --model builtin:all-MiniLM-L6-v2 --train train.tsv --test test.tsv --epochs 2 --out runs/teacher\n\n"
             "  kdeploy finetune --model bilstm --tokenizer bert-base-uncased --dataset imdb --out runs/lstm-teacher")
def finetune(
    out: Out,
    model: Annotated[str, typer.Option("--model", help="Pretrained encoder (folder, hub id, builtin:all-MiniLM-L6-v2) or bilstm/cnn.")],
    tokenizer: Annotated[Optional[str], typer.Option("--tokenizer", help="For bilstm/cnn: whose tokenizer and embeddings.")] = None,
    train: Train = None, validation: Validation = None, test: Test = None, dataset: Dataset = None,
    dataset_config: DatasetConfig = None, text_column: TextColumn = None, label_column: LabelColumn = None,
    label_names: LabelNames = None, max_train_samples: MaxTrain = None, max_eval_samples: MaxEval = None,
    epochs: Epochs = 2.0,
    learning_rate: Annotated[float, typer.Option("--learning-rate", "--lr", rich_help_panel="Training")] = 5e-5,
    batch_size: BatchSize = 32, gradient_accumulation: GradAccum = 1, max_length: MaxLength = 128, seed: Seed = 42,
    mixed_precision: Precision = "auto", resume: Resume = False, trust_remote_code: TrustRemote = False,
) -> None:
    """Fine-tune a pretrained encoder into a task teacher (for users without one)."""
    from .distill.api import FinetuneConfig, finetune as run
    from .report_table import print_training_record

    cfg = FinetuneConfig(
        model=model, out=str(out), tokenizer=tokenizer, trust_remote_code=trust_remote_code,
        data=_data(train, validation, test, dataset, dataset_config, text_column, label_column, label_names,
                   max_train_samples, max_eval_samples),
        train=_train(epochs, learning_rate, batch_size, gradient_accumulation, max_length, seed, mixed_precision, resume),
    )
    print_training_record(run(cfg), out)


def _floats(text: str | None, flag: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise KdeployError(f"{flag} {text!r}: give comma-separated numbers, e.g. 0.6,0.4") from None


@app.command(epilog="Examples:\n\n  kdeploy distill --teacher runs/teacher --train train.tsv --validation dev.tsv --test test.tsv "
             "--student-layers 2 --alpha 0.5 --temperature 2 --epochs 3 --out runs/student\n\n"
             "  kdeploy distill --teacher runs/teacher --train train.tsv --layer-loss hidden --layer-loss attention "
             "--augment 2 --out runs/student\n\n"
             "  kdeploy distill --teacher runs/teacher-a --teacher runs/teacher-b --train train.tsv --out runs/student\n\n"
             "  kdeploy distill --teacher runs/teacher --train train.tsv --unlabeled more.txt --alpha 1 --out runs/student\n\n"
             "  kdeploy distill --teacher runs/teacher --dataset glue/sst2 --student bilstm --out runs/bilstm\n\n"
             "  torchrun --nproc_per_node 2 -m kdeploy distill --teacher runs/teacher --train train.tsv --out runs/student")
def distill(
    out: Out,
    teacher: Annotated[list[str], typer.Option("--teacher", help="Task teacher: a model folder or hub id. Repeat for an ensemble.")],
    student: Annotated[str, typer.Option("--student", help="layers (from the teacher), bilstm, cnn, or a pretrained model folder / hub id.", rich_help_panel="Student")] = "layers",
    student_layers: Annotated[str, typer.Option("--student-layers", help="Teacher layers to keep: a count (evenly spaced) or indices 0,5.", rich_help_panel="Student")] = "2",
    hidden_size: Annotated[int, typer.Option("--hidden-size", help="bilstm hidden size.", rich_help_panel="Student")] = 256,
    embedding_dim: Annotated[Optional[int], typer.Option("--embedding-dim", help="bilstm/cnn embedding size (default: the teacher's, initialised from it).", rich_help_panel="Student")] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Weight of the KD term; 0 = hard labels only.", rich_help_panel="Distillation")] = 0.5,
    temperature: Annotated[float, typer.Option("--temperature", "-T", help="Softmax temperature for the KD term.", rich_help_panel="Distillation")] = 2.0,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Where teacher logits are cached (default ~/.cache/kdeploy).", rich_help_panel="Distillation")] = None,
    teacher_weights: Annotated[Optional[str], typer.Option("--teacher-weights", help="Ensemble weights, one per --teacher: 0.6,0.4 (default equal).", rich_help_panel="Distillation")] = None,
    layer_loss: Annotated[Optional[list[str]], typer.Option("--layer-loss", help="Intermediate-layer loss NAME[=WEIGHT]: hidden, attention, embedding (kdeploy list). Repeatable.", rich_help_panel="Distillation")] = None,
    layer_map: Annotated[Optional[str], typer.Option("--layer-map", help="student:teacher layer pairs from 0, e.g. 0:2,1:5 (default uniform).", rich_help_panel="Distillation")] = None,
    unlabeled: Annotated[Optional[str], typer.Option("--unlabeled", help="Unlabelled transfer text (.txt one per line, or a table); the teacher labels it.", rich_help_panel="Transfer data")] = None,
    augment: Annotated[int, typer.Option("--augment", help="Augmented copies per training sentence (mask/delete/swap), labelled by the teacher.", rich_help_panel="Transfer data")] = 0,
    augment_seed: Annotated[int, typer.Option("--augment-seed", rich_help_panel="Transfer data")] = 0,
    train: Train = None, validation: Validation = None, test: Test = None, dataset: Dataset = None,
    dataset_config: DatasetConfig = None, text_column: TextColumn = None, label_column: LabelColumn = None,
    label_names: LabelNames = None, max_train_samples: MaxTrain = None, max_eval_samples: MaxEval = None,
    epochs: Epochs = 3.0,
    learning_rate: Annotated[float, typer.Option("--learning-rate", "--lr", rich_help_panel="Training")] = 1e-4,
    batch_size: BatchSize = 32, gradient_accumulation: GradAccum = 1, max_length: MaxLength = 128, seed: Seed = 42,
    mixed_precision: Precision = "auto", resume: Resume = False, trust_remote_code: TrustRemote = False,
) -> None:
    """Distil a teacher into a small student: (1-α)·CE + α·T²·KL(teacher ‖ student) at temperature T."""
    from .distill.api import DistillConfig, distill as run
    from .distill.students import StudentConfig
    from .report_table import print_training_record

    cfg = DistillConfig(
        teacher=teacher, out=str(out), alpha=alpha, temperature=temperature,
        teacher_weights=_floats(teacher_weights, "--teacher-weights"), layer_losses=layer_loss or {},
        layer_map=layer_map, unlabeled=unlabeled, augment=augment, augment_seed=augment_seed,
        cache_dir=str(cache_dir) if cache_dir else None, trust_remote_code=trust_remote_code,
        student=StudentConfig(kind=student, layers=student_layers, hidden_size=hidden_size, embedding_dim=embedding_dim),
        data=_data(train, validation, test, dataset, dataset_config, text_column, label_column, label_names,
                   max_train_samples, max_eval_samples),
        train=_train(epochs, learning_rate, batch_size, gradient_accumulation, max_length, seed, mixed_precision, resume),
    )
    print_training_record(run(cfg), out)


@app.command(epilog="Examples:\n\n  kdeploy prune runs/student --out runs/student-small\n\n"
             "  kdeploy prune runs/student --train train.tsv --extra-corpus more.txt --out runs/student-small\n\n"
             "  kdeploy prune runs/student --heads 0.25 --recover-epochs 1 --out runs/student-small")
def prune(
    model: Annotated[Path, typer.Argument(help="A student (or any BERT-family classifier) folder.")],
    out: Out,
    extra_corpus: Annotated[Optional[str], typer.Option("--extra-corpus", help="More text whose tokens to keep (.txt one per line, or a table).")] = None,
    vocab: Annotated[bool, typer.Option("--vocab/--no-vocab", help="Trim the vocabulary.")] = True,
    heads: Annotated[float, typer.Option("--heads", help="Fraction of attention heads to prune by importance (Michel et al.), e.g. 0.25.")] = 0.0,
    recover_epochs: Annotated[float, typer.Option("--recover-epochs", help="Distillation after head pruning.")] = 1.0,
    teacher: Annotated[Optional[str], typer.Option("--teacher", help="Teacher for the recovery (default: the unpruned model).")] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Default: the training max length.")] = None,
    train: Train = None, validation: Validation = None, test: Test = None, dataset: Dataset = None,
    dataset_config: DatasetConfig = None, text_column: TextColumn = None, label_column: LabelColumn = None,
    label_names: LabelNames = None,
) -> None:
    """Make a student smaller: trim its vocabulary to the tokens the data uses (same logits on that text) and/or
    prune its least important attention heads, then recover by a short distillation."""
    from .console import console
    from .prune.api import PruneConfig, prune as run

    given = any(x is not None for x in (train, dataset))
    cfg = PruneConfig(model=str(model), out=str(out), extra_corpus=extra_corpus, max_length=max_length, vocab=vocab,
                      heads=heads, recover_epochs=recover_epochs, teacher=teacher,
                      data=_data(train, validation, test, dataset, dataset_config, text_column, label_column,
                                 label_names, None, None) if given else None)
    r = run(cfg)
    if "heads" in r:
        console.print(f"heads {r['heads']['heads_before']} → {r['heads']['heads_after']}", highlight=False)
    if "vocab" in r:
        console.print(f"vocabulary {r['vocab']['vocab_before']} → {r['vocab']['vocab_after']} tokens", highlight=False)
    console.print(f"{r['parameters_before']:,} → {r['parameters']:,} parameters; "
                  f"{r['eval_split']} accuracy {100 * r['before']['accuracy']:.2f}% → {100 * r['after']['accuracy']:.2f}% "
                  f"(agreement {100 * r['agreement']:.2f}%); written to {out}", highlight=False)


@app.command(epilog="Examples:\n\n  kdeploy export runs/student --out runs/onnx\n\n"
             "  kdeploy export runs/student --out runs/onnx --optimize O2 --quantize int8 --data test.tsv\n\n"
             "  kdeploy export runs/student --out runs/onnx --quantize int8-static --calibration-method percentile "
             "--train train.tsv --test test.tsv\n\n"
             "  kdeploy export runs/student --out runs/onnx-gpu --optimize O2 --fp16 --data test.tsv")
def export(
    model: Annotated[Path, typer.Argument(help="Model folder: a kdeploy distill/finetune output or any HF sequence classifier.")],
    out: Out,
    optimize: Annotated[Optional[str], typer.Option("--optimize", help="ORT transformer fusions: O1, O2, O3 (+GELU approx.), O4 (+fp16).", rich_help_panel="Optimisation")] = None,
    quantize: Annotated[Optional[str], typer.Option("--quantize", help="int8 (dynamic, CPU default) or int8-static (calibrated).", rich_help_panel="Optimisation")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write model.fp16.onnx, for the CUDA execution provider.", rich_help_panel="Optimisation")] = False,
    isa: Annotated[str, typer.Option("--isa", help="int8 preset: auto (detected), avx2, avx512, avx512_vnni, arm64.", rich_help_panel="Optimisation")] = "auto",
    per_channel: Annotated[bool, typer.Option("--per-channel", help="Per-channel weight scales.", rich_help_panel="Optimisation")] = False,
    calibration_samples: Annotated[int, typer.Option("--calibration-samples", rich_help_panel="Optimisation")] = 256,
    calibration_method: Annotated[str, typer.Option("--calibration-method", help="minmax, percentile, entropy.", rich_help_panel="Optimisation")] = "minmax",
    opset: Annotated[int, typer.Option("--opset")] = 18,
    atol: Annotated[float, typer.Option("--atol", help="Parity tolerance: max |logit difference| vs PyTorch.", rich_help_panel="Gates")] = 1e-4,
    max_accuracy_drop: Annotated[float, typer.Option("--max-accuracy-drop", help="Accuracy points a quantised model may lose.", rich_help_panel="Gates")] = 1.0,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Default: the training max length.")] = None,
    data_file: Annotated[Optional[str], typer.Option("--data", help="A labelled file for parity inputs, calibration and the accuracy gate.", rich_help_panel="Data")] = None,
    train: Train = None, validation: Validation = None, test: Test = None, dataset: Dataset = None,
    dataset_config: DatasetConfig = None, text_column: TextColumn = None, label_column: LabelColumn = None,
    label_names: LabelNames = None, max_eval_samples: MaxEval = None, trust_remote_code: TrustRemote = False,
) -> None:
    """Export a model to ONNX, check it against PyTorch, optionally optimise and quantise it (accuracy-gated)."""
    from .export.api import export as run
    from .export.config import ExportConfig
    from .report_table import print_export_report

    data = None
    if data_file or train or dataset:
        data = _data(train or data_file, validation, test or (data_file if not train else None), dataset,
                     dataset_config, text_column, label_column, label_names, None, max_eval_samples)
    cfg = ExportConfig(model=str(model), out=str(out), data=data, opset=opset, optimize=optimize, quantize=quantize,
                       fp16=fp16, isa=isa, per_channel=per_channel, calibration_samples=calibration_samples,
                       calibration_method=calibration_method, atol=atol, max_accuracy_drop=max_accuracy_drop,
                       max_length=max_length, trust_remote_code=trust_remote_code)
    print_export_report(run(cfg), out)


@app.command(epilog="Examples:\n\n  kdeploy bench runs/teacher runs/onnx --data test.tsv --out runs/report\n\n"
             "  kdeploy bench runs/teacher runs/student runs/student@int8 runs/onnx/model.int8.onnx --data test.tsv "
             "--batch-sizes 1,32 --threads 2 --out runs/report\n\n"
             "  kdeploy bench runs/onnx-gpu/model.fp16.onnx --provider cuda --out runs/report-gpu")
def bench(
    models: Annotated[list[str], typer.Argument(help="Model folders (PyTorch; FOLDER@int8 for torch.ao dynamic int8), ONNX files, or export folders (every .onnx in them).")],
    out: Out,
    provider: Annotated[str, typer.Option("--provider", help="cpu, cuda or tensorrt.")] = "cpu",
    allow_fallback: Annotated[bool, typer.Option("--allow-fallback", help="Accept a session that fell back to another provider.")] = False,
    batch_sizes: Annotated[str, typer.Option("--batch-sizes", help="Comma-separated.")] = "1,32",
    threads: Annotated[Optional[int], typer.Option("--threads", help="Intra-op threads (default: every core).")] = None,
    warmup: Annotated[int, typer.Option("--warmup")] = 10,
    iterations: Annotated[int, typer.Option("--iterations", help="Timed calls per model and batch size.")] = 100,
    duration: Annotated[Optional[float], typer.Option("--duration", help="Seconds per model and batch size (instead of --iterations).")] = None,
    seq_length: Annotated[Optional[int], typer.Option("--seq-length", help="Fixed token length (default: real sentences).")] = None,
    max_length: MaxLength = 128,
    teacher: Annotated[Optional[str], typer.Option("--teacher", help="Reference model name for agreement and drop (default: the first).")] = None,
    data_file: Annotated[Optional[str], typer.Option("--data", help="Labelled file: accuracy, and the sentences timed.", rich_help_panel="Data")] = None,
    dataset: Dataset = None, dataset_config: DatasetConfig = None, text_column: TextColumn = None,
    label_column: LabelColumn = None, label_names: LabelNames = None, max_eval_samples: MaxEval = None,
) -> None:
    """Benchmark models side by side: latency percentiles, throughput, memory, size and accuracy."""
    from .runtime.bench import BenchConfig, run_bench
    from .runtime.report import print_table

    data = None
    if data_file or dataset:
        data = _data(data_file, None, data_file, dataset, dataset_config, text_column, label_column, label_names,
                     None, max_eval_samples)
    cfg = BenchConfig(models=models, out=str(out), data=data, provider=provider, allow_fallback=allow_fallback,
                      batch_sizes=batch_sizes, threads=threads, warmup=warmup, iterations=iterations, duration=duration,
                      seq_length=seq_length, max_length=max_length, teacher=teacher)
    print_table(run_bench(cfg))
    print(f"reports: {out}/report.html, report.md, report.json")


@app.command(epilog="Examples:\n\n  kdeploy package runs/onnx --out runs/bundle\n\n"
             "  kdeploy package runs/onnx --out runs/bundle --model-file model.onnx --archive zip --report runs/report/report.json")
def package(
    export_dir: Annotated[Path, typer.Argument(help="A folder written by kdeploy export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder; the archive is written beside it.")],
    model_file: Annotated[Optional[str], typer.Option("--model-file", help="Which ONNX file (default: int8, else optimised, else fp32).")] = None,
    archive: Annotated[str, typer.Option("--archive", help="tar.gz, zip or none.")] = "tar.gz",
    report: Annotated[Optional[Path], typer.Option("--report", help="A kdeploy bench report.json to record in the manifest.")] = None,
    ort_format: Annotated[bool, typer.Option("--ort-format", help="Also the ORT format (model.ort) for ONNX Runtime Mobile.")] = False,
) -> None:
    """Make a self-contained, checksummed edge bundle (model, tokenizer, manifest, model card)."""
    from .package.bundle import PackageConfig, package as run

    result = run(PackageConfig(export_dir=str(export_dir), out=str(out), model_file=model_file,
                               archive=None if archive == "none" else archive, report=str(report) if report else None,
                               ort_format=ort_format))
    print(f"bundle: {result['bundle']} ({result['bundle_mib']:.1f} MiB)")
    if result["archive"]:
        print(f"archive: {result['archive']} ({result['archive_mib']:.1f} MiB)")


@app.command(epilog="Examples:\n\n  kdeploy predict runs/bundle \"a gripping, beautiful film\" \"dull\"\n\n"
             "  kdeploy predict runs/bundle.tar.gz --file reviews.txt > predictions.jsonl\n\n"
             "  echo 'what a mess' | kdeploy predict runs/bundle")
def predict(
    bundle: Annotated[Path, typer.Argument(help="A bundle folder or archive made by kdeploy package.")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts to classify (default: one per line from --file or stdin).")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="One text per line; - for standard input.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
    threads: Annotated[Optional[int], typer.Option("--threads")] = None,
) -> None:
    """Classify text with a bundle (onnxruntime + tokenizers only); writes JSON Lines."""
    import json

    from .edge import Predictor

    if texts:
        items = list(texts)
    elif file is not None and str(file) != "-":
        if not file.is_file():
            raise KdeployError(f"{file}: file not found")
        items = file.read_text(encoding="utf-8").splitlines()
    else:
        items = sys.stdin.read().splitlines()
    predictor = Predictor(bundle, threads=threads)
    for text, result in zip(items, predictor.predict(items, batch_size=batch_size)):
        sys.stdout.write(json.dumps({"text": text, **result}, ensure_ascii=False) + "\n")


@app.command(epilog="Example:\n\n  kdeploy run models/rotten_tomatoes_minilm.yaml --out runs/demo")
def run(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML (see models/).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (default runs/<recipe name>).")] = None,
) -> None:
    """Run a recipe's stages in order; finished stages with unchanged settings are skipped."""
    from .pipeline import load_recipe, run_recipe

    run_recipe(load_recipe(recipe), out)


@app.command(epilog="Examples:\n\n  kdeploy search --teacher runs/teacher --train train.tsv --validation dev.tsv --test test.tsv "
             "--trials 20 --out runs/search\n\n"
             "  kdeploy search ... --out runs/search   (again: resumes the study in runs/search/study.db)\n\n"
             "  kdeploy run runs/search/recipes/trial-007.yaml   (a front point, as a full pipeline)")
def search(
    out: Out,
    teacher: Annotated[str, typer.Option("--teacher", help="Task teacher: a model folder or hub id.")],
    trials: Annotated[int, typer.Option("--trials", help="Trials in the study (a resumed study counts its own).", rich_help_panel="Budget")] = 20,
    minutes: Annotated[Optional[float], typer.Option("--minutes", help="Start no new trial after this long.", rich_help_panel="Budget")] = None,
    epochs: Annotated[float, typer.Option("--epochs", help="Distillation epochs per trial.", rich_help_panel="Budget")] = 2.0,
    layers: Annotated[str, typer.Option("--layers", help="Student depths to try.", rich_help_panel="Space")] = "1,2,3",
    heads: Annotated[str, typer.Option("--heads", help="Head-pruning fractions to try.", rich_help_panel="Space")] = "0,0.25,0.5",
    vocab: Annotated[str, typer.Option("--vocab", help="Vocabulary trimming: both, on or off.", rich_help_panel="Space")] = "both",
    space_file: Annotated[Optional[Path], typer.Option("--space", help="YAML with temperature/alpha/learning_rate ranges etc.", rich_help_panel="Space")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="Threads for the latency measurement.")] = None,
    latency_iterations: Annotated[int, typer.Option("--latency-iterations")] = 50,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    max_length: MaxLength = 128,
    train: Train = None, validation: Validation = None, test: Test = None, dataset: Dataset = None,
    dataset_config: DatasetConfig = None, text_column: TextColumn = None, label_column: LabelColumn = None,
    label_names: LabelNames = None, max_train_samples: MaxTrain = None, max_eval_samples: MaxEval = None,
) -> None:
    """Search distillation and pruning settings for the accuracy/latency front (Optuna, multi-objective)."""
    import yaml

    from .configtools import from_dict
    from .console import console
    from .search.api import search as run
    from .search.config import SearchConfig, SearchSpace

    raw = {}
    if space_file is not None:
        if not space_file.is_file():
            raise KdeployError(f"{space_file}: file not found")
        raw = yaml.safe_load(space_file.read_text(encoding="utf-8")) or {}
    choices = {"both": [False, True], "on": [True], "off": [False]}
    if vocab not in choices:
        raise KdeployError(f"--vocab must be both, on or off, got {vocab!r}")
    raw.setdefault("layers", [int(x) for x in _floats(layers, "--layers")])
    raw.setdefault("heads", _floats(heads, "--heads"))
    raw.setdefault("vocab", choices[vocab])
    cfg = SearchConfig(
        teacher=teacher, out=str(out), trials=trials, minutes=minutes, epochs=epochs, threads=threads,
        latency_iterations=latency_iterations, seed=seed, max_length=max_length,
        space=from_dict(SearchSpace, raw, "search space"),
        data=_data(train, validation, test, dataset, dataset_config, text_column, label_column, label_names,
                   max_train_samples, max_eval_samples),
    )
    r = run(cfg)
    console.print(f"{r['trials']}; {r['verdict']}", highlight=False)
    console.print(f"front: {out / 'front.md'} (plot front.png); a recipe per point in {out / 'recipes'}", highlight=False)


@app.command(name="list")
def list_registered() -> None:
    """What is registered: students, losses, layer losses, augmentations, int8 presets."""
    from .console import console
    from .distill.augment import AUGMENTERS
    from .distill.layer_losses import LAYER_LOSSES
    from .distill.losses import LOSSES
    from .distill.students import STUDENTS
    from .export.quantize import PRESETS

    def doc(fn) -> str:
        return (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""

    sections = {
        "students (--student)": {n: doc(f) for n, f in STUDENTS.items()} | {"PATH or hub id": "any pretrained model"},
        "logit losses": {n: doc(f) for n, f in LOSSES.items()},
        "layer losses (--layer-loss)": {n: loss.doc for n, loss in LAYER_LOSSES.items()},
        "augmentations (--augment)": {n: doc(f) for n, f in AUGMENTERS.items()},
        "int8 presets (--isa)": {n: f"{p['weight_type']} weights" for n, p in PRESETS.items()},
    }
    for title, items in sections.items():
        console.print(f"[bold]{title}[/bold]")
        for name, text in items.items():
            console.print(f"  {name:<16} {text}", highlight=False)


@app.command()
def demo(out: Annotated[Path, typer.Option("--out", "-o")] = Path("runs/demo")) -> None:
    """The embedded default, offline: Rotten Tomatoes, all-MiniLM-L6-v2 teacher, 2-layer student."""
    from .pipeline import default_recipe_path, load_recipe, run_recipe

    run_recipe(load_recipe(default_recipe_path()), out)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    debug = "--debug" in sys.argv[1:]
    if not debug:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        app()
    except KdeployError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
