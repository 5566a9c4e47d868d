"""finetune, distill, prune, export: the stages that make a model."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..distill.config import DistillSettings, FinetuneSettings
from ..export.config import ExportSettings
from ..prune.config import PruneSettings
from .app import app
from .options import Out, Overwrite, Resume, TrustRemote, data_config, data_options, eval_data, floats, shown

T = "Training"


def _train(epochs, learning_rate, batch_size, gradient_accumulation, max_length, seed, mixed_precision,
           early_stopping=None) -> dict:
    return dict(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                gradient_accumulation=gradient_accumulation, max_length=max_length, seed=seed,
                mixed_precision=mixed_precision, early_stopping=early_stopping)


def _training_options(cls):
    """Annotated aliases whose --help defaults come from `cls`'s own train config."""
    return dict(
        Epochs=Annotated[Optional[float], typer.Option("--epochs", rich_help_panel=T, show_default=shown(cls, "train.epochs") + ("; static: up to 20, until validation stops improving" if cls is DistillSettings else ""))],
        LR=Annotated[Optional[float], typer.Option("--learning-rate", "--lr", rich_help_panel=T, show_default=shown(cls, "train.learning_rate") + ("; bilstm/cnn 2e-3, static 3e-4 (kdeploy list)" if cls is DistillSettings else ""))],
        EarlyStopping=Annotated[Optional[int], typer.Option("--early-stopping", help="Stop after this many epochs without a better validation score (the best epoch is kept); --epochs is then the budget; 0: off. A run still improving at its last epoch says so.", rich_help_panel=T, show_default=shown(cls, "train.early_stopping").replace("none", "off"))],
    )


FT, DS = _training_options(FinetuneSettings), _training_options(DistillSettings)
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", rich_help_panel=T, show_default=shown(DistillSettings, "train.batch_size"))]
GradAccum = Annotated[Optional[int], typer.Option("--gradient-accumulation", rich_help_panel=T, show_default=shown(DistillSettings, "train.gradient_accumulation"))]
MaxLength = Annotated[Optional[int], typer.Option("--max-length", help="Tokens per text; longer texts are cut (--truncation). Auto: 128, or a longer window when 1 in 10 training texts is longer (512 for a transformer, the texts' length for BiLSTM/CNN/static students).", rich_help_panel=T, show_default="auto")]
Seed = Annotated[Optional[int], typer.Option("--seed", rich_help_panel=T, show_default=shown(DistillSettings, "train.seed"))]
Precision = Annotated[Optional[str], typer.Option("--mixed-precision", help="auto (fp16 on CUDA), no, fp16, bf16.", rich_help_panel=T, show_default=shown(DistillSettings, "train.mixed_precision"))]


@app.command(epilog="Examples:\n\n  kdeploy finetune --model builtin:all-MiniLM-L6-v2 --train train.tsv --test test.tsv --epochs 2 --out runs/teacher\n\n"
             "  kdeploy finetune --model bilstm --tokenizer bert-base-uncased --dataset imdb --out runs/lstm-teacher")
@data_options()
def finetune(
    out: Out,
    model: Annotated[str, typer.Option("--model", help="Pretrained encoder (folder, hub id, builtin:all-MiniLM-L6-v2) or bilstm/cnn.")],
    tokenizer: Annotated[Optional[str], typer.Option("--tokenizer", help="For bilstm/cnn: whose tokenizer and embeddings.")] = None,
    epochs: FT["Epochs"] = None, learning_rate: FT["LR"] = None, batch_size: BatchSize = None,
    gradient_accumulation: GradAccum = None, max_length: MaxLength = None, seed: Seed = None,
    mixed_precision: Precision = None, early_stopping: FT["EarlyStopping"] = None, resume: Resume = False,
    lr_probe: Annotated[Optional[bool], typer.Option("--lr-probe/--no-lr-probe", help="With no --lr: try 2e-5, 5e-5 and 1e-4 for one pass over 2,000 training examples each and keep the one with the lowest validation loss.", rich_help_panel=T, show_default="on when no --lr is given")] = None,
    trust_remote_code: TrustRemote = False, overwrite: Overwrite = False, data_flags: dict | None = None,
) -> None:
    """Fine-tune a pretrained encoder into a task teacher (for users without one)."""
    from ..configtools import settings_from
    from ..distill.api import finetune as run

    settings = settings_from(FinetuneSettings, {
        "trust_remote_code": trust_remote_code or None, "learning_rate_probe": lr_probe,
        "train": _train(epochs, learning_rate, batch_size, gradient_accumulation, max_length, seed, mixed_precision,
                        early_stopping)})
    data = data_config(**data_flags)
    run(settings, model=model, data=data, out=out, tokenizer=tokenizer, resume=resume,
        overwrite=overwrite).render(f"finetune → {out}")


@app.command(epilog="Examples:\n\n  kdeploy distill --teacher runs/teacher --train train.tsv --validation dev.tsv --test test.tsv "
             "--alpha 0.5 --temperature 2 --epochs 3 --out runs/student   (depth: probed)\n\n"
             "  kdeploy distill --teacher runs/teacher --train train.tsv --student-layers 3 --out runs/student\n\n"
             "  kdeploy distill --teacher runs/teacher --train train.tsv --layer-loss hidden --layer-loss attention "
             "--augment 2 --out runs/student\n\n"
             "  kdeploy distill --teacher runs/teacher-a --teacher runs/teacher-b --train train.tsv --out runs/student\n\n"
             "  kdeploy distill --teacher runs/teacher --train train.tsv --unlabeled more.txt --alpha 1 --out runs/student\n\n"
             "  kdeploy distill --teacher runs/teacher --dataset glue/sst2 --student bilstm --out runs/bilstm\n\n"
             "  kdeploy distill --teacher runs/teacher --train train.tsv --student static --embedding-dim 256 "
             "--out runs/static   (token vectors from the teacher, model2vec-style)\n\n"
             "  kdeploy distill --teacher runs/teacher --train train.tsv --student cnn --embedding-dim 128 --lr 2e-3 "
             "--out runs/cnn\n\n"
             "  torchrun --nproc_per_node 2 -m kdeploy distill --teacher runs/teacher --train train.tsv --out runs/student")
@data_options()
def distill(
    out: Out,
    teacher: Annotated[list[str], typer.Option("--teacher", help="Task teacher: a model folder or hub id. Repeat for an ensemble.")],
    student: Annotated[Optional[str], typer.Option("--student", help="layers (from the teacher), bilstm, cnn, static (token vectors), or a pretrained model folder / hub id (kdeploy list).", rich_help_panel="Student", show_default=shown(DistillSettings, "student.kind"))] = None,
    student_layers: Annotated[Optional[str], typer.Option("--student-layers", help="Teacher layers to keep: a count (evenly spaced), indices 0,5, or auto (a one-epoch probe of 2, 3 and 4 layers keeps the smallest within 1 point of the best).", rich_help_panel="Student", show_default=shown(DistillSettings, "student.layers"))] = None,
    own_layers: Annotated[Optional[int], typer.Option("--student-own-layers", help="A pretrained --student (another tokenizer): keep this many of its own layers, evenly spaced. [default: all]", rich_help_panel="Student")] = None,
    hidden_size: Annotated[Optional[int], typer.Option("--hidden-size", help="bilstm hidden size; static: the head's hidden layer (0: linear).", rich_help_panel="Student", show_default=shown(DistillSettings, "student.hidden_size"))] = None,
    embedding_dim: Annotated[Optional[int], typer.Option("--embedding-dim", help="bilstm/cnn/static token-vector size (bilstm/cnn default: the teacher's width, its embeddings; static: 256; another width starts from the teacher's static vectors).", rich_help_panel="Student")] = None,
    num_filters: Annotated[Optional[int], typer.Option("--num-filters", help="cnn filters per width.", rich_help_panel="Student", show_default=shown(DistillSettings, "student.num_filters"))] = None,
    alpha: Annotated[Optional[float], typer.Option("--alpha", help="Weight of the KD term; 0 = hard labels only.", rich_help_panel="Distillation", show_default=shown(DistillSettings, "alpha"))] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", "-T", help="Softmax temperature for the KD term.", rich_help_panel="Distillation", show_default=shown(DistillSettings, "temperature"))] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help="The logit loss: kd (Hinton, softened KL) or logit-mse (MSE on raw logits, Tang et al.); kdeploy list shows the registered ones.", rich_help_panel="Distillation", show_default=shown(DistillSettings, "loss"))] = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Where teacher logits are cached (default ~/.cache/kdeploy, or $KDEPLOY_CACHE).", rich_help_panel="Distillation")] = None,
    teacher_weights: Annotated[Optional[str], typer.Option("--teacher-weights", help="Ensemble weights, one per --teacher: 0.6,0.4 (default equal).", rich_help_panel="Distillation")] = None,
    layer_loss: Annotated[Optional[list[str]], typer.Option("--layer-loss", help="Intermediate-layer loss NAME[=WEIGHT]: hidden, attention, embedding (kdeploy list). Repeatable.", rich_help_panel="Distillation")] = None,
    layer_map: Annotated[Optional[str], typer.Option("--layer-map", help="student:teacher layer pairs from 0, e.g. 0:2,1:5 (default uniform).", rich_help_panel="Distillation")] = None,
    unlabeled: Annotated[Optional[str], typer.Option("--unlabeled", help="Unlabelled transfer text (.txt one per line, or a table); the teacher labels it.", rich_help_panel="Transfer data")] = None,
    augment: Annotated[Optional[int], typer.Option("--augment", help="Augmented copies per training sentence (mask/delete/swap), labelled by the teacher. [default: by data size, up to 8: a small training set gets copies]", rich_help_panel="Transfer data")] = None,
    augment_seed: Annotated[Optional[int], typer.Option("--augment-seed", rich_help_panel="Transfer data", show_default=shown(DistillSettings, "augment_seed"))] = None,
    teacher_chunks: Annotated[Optional[bool], typer.Option("--teacher-chunks", help="A text longer than the teacher's window is read window by window and its soft labels are the mean of the windows' logits (chunk-and-pool), so the student learns from the whole document.", rich_help_panel="Distillation")] = None,
    epochs: DS["Epochs"] = None, learning_rate: DS["LR"] = None, batch_size: BatchSize = None,
    gradient_accumulation: GradAccum = None, max_length: MaxLength = None, seed: Seed = None,
    mixed_precision: Precision = None, early_stopping: DS["EarlyStopping"] = None, resume: Resume = False,
    trust_remote_code: TrustRemote = False, overwrite: Overwrite = False, data_flags: dict | None = None,
) -> None:
    """Distil a teacher into a small student: (1-α)·CE + α·T²·KL(teacher ‖ student) at temperature T."""
    from ..configtools import settings_from
    from ..distill.api import distill as run

    settings = settings_from(DistillSettings, {
        "alpha": alpha, "temperature": temperature, "loss": loss, "teacher_weights": floats(teacher_weights, "--teacher-weights"),
        "layer_losses": layer_loss, "layer_map": layer_map, "augment": augment, "augment_seed": augment_seed,
        "teacher_chunks": teacher_chunks,
        "trust_remote_code": trust_remote_code or None,
        "student": {"kind": student, "layers": student_layers, "hidden_size": hidden_size, "embedding_dim": embedding_dim,
                    "num_filters": num_filters, "own_layers": own_layers},
        "train": _train(epochs, learning_rate, batch_size, gradient_accumulation, max_length, seed, mixed_precision,
                        early_stopping)})
    data = data_config(**data_flags)
    run(settings, teacher=teacher if len(teacher) > 1 else teacher[0], data=data, out=out, unlabeled=unlabeled,
        cache_dir=cache_dir, resume=resume, overwrite=overwrite).render(f"distill → {out}")


@app.command(epilog="Examples:\n\n  kdeploy prune runs/student --out runs/student-small\n\n"
             "  kdeploy prune runs/student --train train.tsv --extra-corpus more.txt --out runs/student-small\n\n"
             "  kdeploy prune runs/student --heads 0.25 --recover-epochs 1 --out runs/student-small\n\n"
             "  kdeploy prune runs/student --ffn 0.5 --recover-layer-loss hidden --out runs/student-narrow")
@data_options(omit=("max_train_samples", "max_eval_samples"))
def prune(
    model: Annotated[Path, typer.Argument(help="A student (or any BERT-family classifier) folder.")],
    out: Out,
    extra_corpus: Annotated[Optional[str], typer.Option("--extra-corpus", help="More text whose tokens to keep (.txt one per line, or a table).")] = None,
    vocab: Annotated[Optional[bool], typer.Option("--vocab/--no-vocab", help="Trim the vocabulary.", show_default=shown(PruneSettings, "vocab"))] = None,
    heads: Annotated[Optional[float], typer.Option("--heads", help="Fraction of attention heads to prune by importance (Michel et al.), e.g. 0.25.", show_default=shown(PruneSettings, "heads"))] = None,
    ffn: Annotated[Optional[float], typer.Option("--ffn", help="Fraction of feed-forward neurons to prune by importance (|activation x gradient|), e.g. 0.5; every layer keeps a multiple of 32.", show_default=shown(PruneSettings, "ffn"))] = None,
    recover_layer_loss: Annotated[Optional[str], typer.Option("--recover-layer-loss", help="Also match the unpruned model's layers during recovery, e.g. hidden.")] = None,
    recover_epochs: Annotated[Optional[float], typer.Option("--recover-epochs", help="Distillation after head pruning.", show_default=shown(PruneSettings, "recover_epochs"))] = None,
    teacher: Annotated[Optional[str], typer.Option("--teacher", help="Teacher for the recovery (default: the unpruned model).")] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Default: the model's training max length.")] = None,
    overwrite: Overwrite = False, data_flags: dict | None = None,
) -> None:
    """Make a student smaller: trim its vocabulary to the tokens the data uses (same logits on that text) and/or
    prune its least important attention heads, then recover by a short distillation."""
    from ..configtools import settings_from
    from ..console import say
    from ..prune.api import prune as run

    settings = settings_from(PruneSettings, {"vocab": vocab, "heads": heads, "ffn": ffn, "recover_epochs": recover_epochs,
                                             "recover_layer_loss": recover_layer_loss, "max_length": max_length})
    data = data_config(**data_flags) if (data_flags.get("train") or data_flags.get("dataset")) else None
    result = run(settings, model=model, out=out, data=data, extra_corpus=extra_corpus, teacher=teacher,
                 overwrite=overwrite)
    result.render(f"prune → {out}")
    say(result.summary_line())


@app.command(epilog="Examples:\n\n  kdeploy export runs/student --out runs/onnx\n\n"
             "  kdeploy export runs/student --out runs/onnx --optimize O2 --quantize int8 --data test.tsv\n\n"
             "  kdeploy export runs/student --out runs/onnx --quantize int8 --calibration-method percentile "
             "--train train.tsv --test test.tsv\n\n"
             "  kdeploy export runs/student --out runs/onnx-fp32 --optimize none --quantize none\n\n"
             "  kdeploy export runs/student --out runs/onnx-gpu --optimize O2 --fp16 --data test.tsv")
@data_options(omit=("max_train_samples",))
def export(
    model: Annotated[Path, typer.Argument(help="Model folder: a kdeploy distill/finetune output or any HF sequence classifier.")],
    out: Out,
    optimize: Annotated[Optional[str], typer.Option("--optimize", help="ORT transformer fusions: O1, O2, O3 (+GELU approx.), O4 (+fp16), or none.", rich_help_panel="Optimisation", show_default=shown(ExportSettings, "optimize"))] = None,
    quantize: Annotated[Optional[str], typer.Option("--quantize", help="int8 (calibrated static int8: batch-invariant, the default; = int8-static), int8-dynamic (activations scaled per call: answers move with the batch), or none.", rich_help_panel="Optimisation", show_default=shown(ExportSettings, "quantize"))] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write model.fp16.onnx, for the CUDA execution provider.", rich_help_panel="Optimisation")] = False,
    openvino: Annotated[bool, typer.Option("--openvino", help="Also write model.ov.xml, an OpenVINO IR (bf16 on AMX), accuracy-gated; package it with --model-file model.ov.xml.", rich_help_panel="Optimisation")] = False,
    isa: Annotated[Optional[str], typer.Option("--isa", help="int8 preset: auto (detected), avx2, avx512, avx512_vnni, arm64.", rich_help_panel="Optimisation", show_default=shown(ExportSettings, "isa"))] = None,
    per_channel: Annotated[Optional[bool], typer.Option("--per-channel/--per-tensor", help="int8 weight scales per output channel, or one per tensor.", show_default=shown(ExportSettings, "per_channel"), rich_help_panel="Optimisation")] = None,
    calibration_samples: Annotated[Optional[int], typer.Option("--calibration-samples", help="Training texts (a seeded sample) that fix the int8 activation scales.", rich_help_panel="Optimisation", show_default=shown(ExportSettings, "calibration_samples"))] = None,
    int8_format: Annotated[Optional[str], typer.Option("--int8-format", help="Calibrated int8 as auto (the faster here), integer (onnxruntime's integer operators on the fused graph) or qdq (Quantize/DequantizeLinear: OpenVINO, TensorRT and other runtimes read it).", rich_help_panel="Optimisation", show_default=shown(ExportSettings, "int8_format"))] = None,
    calibration_method: Annotated[Optional[str], typer.Option("--calibration-method", help="minmax, percentile, entropy.", rich_help_panel="Optimisation", show_default=shown(ExportSettings, "calibration_method"))] = None,
    opset: Annotated[Optional[int], typer.Option("--opset", show_default=shown(ExportSettings, "opset"))] = None,
    atol: Annotated[Optional[float], typer.Option("--atol", help="Parity tolerance: max |logit difference| vs PyTorch.", rich_help_panel="Gates", show_default=shown(ExportSettings, "atol"))] = None,
    max_accuracy_drop: Annotated[Optional[float], typer.Option("--max-accuracy-drop", help="Accuracy points a quantised model may lose.", rich_help_panel="Gates", show_default=shown(ExportSettings, "max_accuracy_drop"))] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Default: the model's training max length.")] = None,
    allow_low_retention: Annotated[bool, typer.Option("--allow-low-retention", help="Export a student that kept less than half of its teacher's gain over the trivial answer (its verdict is recorded).", rich_help_panel="Gates")] = False,
    data_file: Annotated[Optional[str], typer.Option("--data", help="A labelled evaluation file: parity inputs, calibration and the accuracy gate (never split).", rich_help_panel="Data")] = None,
    trust_remote_code: TrustRemote = False, overwrite: Overwrite = False, data_flags: dict | None = None,
) -> None:
    """Export a model to ONNX, check it against PyTorch, optimise and quantise it (accuracy-gated)."""
    from ..configtools import settings_from
    from ..export.api import export as run

    settings = settings_from(ExportSettings, {
        "optimize": optimize, "quantize": quantize, "fp16": fp16 or None, "openvino": openvino or None, "isa": isa, "per_channel": per_channel,
        "calibration_samples": calibration_samples, "calibration_method": calibration_method, "opset": opset,
        "int8_format": int8_format,
        "atol": atol, "max_accuracy_drop": max_accuracy_drop, "max_length": max_length,
        "allow_low_retention": allow_low_retention or None, "trust_remote_code": trust_remote_code or None})
    data = eval_data(data_file, **data_flags)
    run(settings, model=model, out=out, data=data, overwrite=overwrite).render(f"export → {out}")
