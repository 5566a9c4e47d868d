"""What a run shows of each stage (the stage table names these): its rows in the run's table
(and the baselines bench trained, beside the student they may beat, with their verdicts); after
bench, the benchmark's table; after package, the bundle's sample predictions, each beside the
teacher's, so a reader sees whether the student follows its teacher (its job) and where the
teacher itself errs."""
from __future__ import annotations

from ..console import say
from ..export.files import FP32, INT8


def finetune_rows(results: dict, folder, split: str, cells) -> list[list[str]]:
    from ..modelio.sizes import weights_mib

    t = results["finetune"]
    return [["teacher (fine-tuned)", *cells(getattr(t, split)), f"{t.parameters / 1e6:.1f}M",
             f"{weights_mib(folder):.1f}", f"{t.train_seconds or 0:.0f}"]]


def distill_rows(results: dict, folder, split: str, cells) -> list[list[str]]:
    """The student, and its teacher's scores when the run did not fine-tune that teacher itself."""
    from ..modelio.sizes import weights_mib

    s, rows = results["distill"], []
    if "finetune" not in results and s.teacher and getattr(s.teacher, split, None):
        rows.append([f"teacher {s.teacher.model}", *cells(getattr(s.teacher, split)), "-", "-", "-"])
    rows.append([f"student ({s.description})", *cells(getattr(s, split)), f"{s.parameters / 1e6:.1f}M",
                 f"{weights_mib(folder):.1f}", f"{s.train_seconds or 0:.0f}"])
    return rows


def prune_rows(results: dict, folder, split: str, cells) -> list[list[str]]:
    from ..modelio.sizes import weights_mib

    p = results["prune"]
    return [[f"student, {p.summary_line() or 'pruned'}", *cells(p.after), f"{p.parameters / 1e6:.1f}M",
             f"{weights_mib(folder):.1f}", "-"]]


def export_rows(results: dict, folder, split: str, cells) -> list[list[str]]:
    e = results["export"]
    return [[f"student ONNX {entry.role.role}", *cells(entry.scores), "-", f"{entry.info.mib:.1f}", "-"]
            for entry in filter(None, (e.entry(FP32), e.entry(INT8)))]


def bench_rows(results: dict, split: str, cells) -> list[list[str]]:
    """The baselines the bench trained and scored: in the run's table beside the student, so a
    baseline that beats it is seen where the student's own score is (bench's split named when
    it is not the table's)."""
    report = results["bench"]
    other = f" [{report.accuracy_split}]" if report.accuracy_split and report.accuracy_split != split else ""
    return [[f"{m.name}{other}", *cells(m.accuracy), "-", f"{m.size_mib:.1f}",
             f"{m.train_seconds:.0f}" if m.train_seconds is not None else "-"]
            for m in report.models if m.kind.startswith("baseline-")]


def bench_summary(report) -> list[str]:
    """The lines a run's summary ends with: each baseline against each student, in words."""
    return list(getattr(report, "verdicts", None) or [])


def bench(step, outcome, teacher: str | None = None) -> None:
    outcome.render()


def package(step, outcome, teacher: str | None = None) -> None:
    for r in [outcome, *outcome.others]:
        say(f"{r.kind} bundle: {r.bundle} ({r.bundle_mib:.1f} MiB)"
            + (f", archive {r.archive} ({r.archive_mib:.1f} MiB)" if r.archive else "") + f"; digest {r.digest}")
    for line in outcome.notes():
        say(line)
    texts = step.inputs.sample_pairs if outcome.manifest.pairs else step.inputs.sample_texts
    if texts:
        from ..edge import Predictor

        examples = [tuple(t) for t in texts] if outcome.manifest.pairs else list(texts)
        student = Predictor(outcome.archive or outcome.bundle).predict(examples)
        taught = _teacher_answers(teacher, examples) if teacher else None
        say(f"  {'student (bundle)':>22}  {'teacher':>22}  text" if taught else "  student (bundle)  text")
        for i, (text, pred) in enumerate(zip(texts, student)):
            shown = " | ".join(text) if outcome.manifest.pairs else text
            cells = [_answer(pred)] + ([_answer(taught[i])] if taught else [])
            mark = " *" if taught and _decided(pred) != _decided(taught[i]) else ""
            say("  " + "  ".join(f"{c:>22}" for c in cells) + f"  {shown}{mark}")
        if taught and any(_decided(p) != _decided(t) for p, t in zip(student, taught)):
            say("  * the student's label differs from its teacher's")


def _answer(pred) -> str:
    return pred.line().replace("\t", " ")


def _decided(pred):
    """What a prediction decided (its class, or its set of labels; None for a score)."""
    return pred.get("label", pred.get("labels"))


def _teacher_answers(teacher: str, examples: list) -> list | None:
    """The teacher's own answers (PyTorch, fp32) for the sample texts; None where the teacher
    cannot be loaded here (it is shown as missing, not guessed)."""
    import numpy as np
    import torch

    from ..errors import KdeployError
    from ..modelio.loading import load_classifier, load_tokenizer
    from ..modelio.record import resolve_max_length
    from ..modelio.torch_infer import torch_logits

    try:
        model, tokenizer = load_classifier(teacher).eval(), load_tokenizer(teacher)
    except KdeployError:
        return None
    length = resolve_max_length(None, teacher, getattr(model.config, "max_position_embeddings", None),
                                getattr(tokenizer, "model_max_length", None))
    with torch.inference_mode():
        logits = torch_logits(model, tokenizer, examples, length).astype(np.float64)
    from ..modelio.record import ModelRecord
    from ..tasks import kind_of_config

    kind = kind_of_config(model.config)
    names = [str(model.config.id2label[i]) for i in range(logits.shape[-1])]
    thresholds = ModelRecord.of(teacher).thresholds
    return [kind.prediction(row, names, thresholds) for row in kind.outputs(logits)]
