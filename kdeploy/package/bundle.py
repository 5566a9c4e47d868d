"""`package(PackageSettings(...), export_dir=..., out=...)`: an export folder → a
self-contained, checksummed bundle (folder and archive) with a manifest and a model card."""
from __future__ import annotations

import json
import os
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

from ..configtools import to_dict
from ..console import say
from ..errors import KdeployError
from ..export.files import PREFERENCE
from ..formats import FORMATS
from ..fsutil import (
    atomic_dir,
    check_output,
    claimed_output,
    normal_permissions,
    write_text,
)
from ..manifest import (
    BUNDLE_FORMAT,
    LEGACY_MANIFEST,
    MANIFEST,
    BundleManifest,
    FileEntry,
    bundle_digest,
    verify_bundle,
)
from ..modelio.exported import ExportedModel
from ..modelio.record import read_config
from ..modelio.sizes import mib
from ..names import TOKENIZER_FILE
from ..safety import sha256_of
from ..tasks import task_kind
from .card import model_card
from .config import ARCHIVES, PackageSettings
from .result import PackageResult

BUNDLE_MODEL = "model.onnx"  # a python bundle's model, whichever export file it came from


def package(settings: PackageSettings, export_dir: str | Path, out: str | Path, report: str | Path | None = None,
            data=None, overwrite: bool = False) -> PackageResult:
    """One bundle per format in `settings.formats`: the first in `out`, the others in OUT-FORMAT
    beside it. `data` (a DataConfig; default: the one the student was trained on) gives the
    validation split that the e2e format's parity gate runs on."""
    from ..export.result import REPORT, ExportResult

    export_dir, out = Path(export_dir), Path(out)
    # before any name is built from --out: "." has no name to put an archive or OUT-FORMAT beside it
    check_output(out, [export_dir, report], overwrite)
    if not (export_dir / REPORT).is_file():
        raise KdeployError(f"{export_dir}: no {REPORT}; package a folder written by kdeploy export")
    if report is not None and not Path(report).is_file():
        raise KdeployError(f"--report {report}: file not found (give a report.json written by kdeploy bench)")
    export = ExportResult.load(export_dir / REPORT)
    kind = task_kind((ExportedModel.read(export_dir) or ExportedModel()).task)
    for fmt in settings.formats:  # a format the task has no bundle for, before any work
        kind.refuse("--format", fmt, kind.formats)
    if export.retention is not None:  # the export's --allow-low-retention carries over; said again here
        say(export.retention.line())
        export.retention.check(settings.allow_low_retention or bool(export.low_retention_allowed), str(export_dir))
    results = [_package_one(kind, settings, export_dir, export, folder, report, data, overwrite)
               for kind, folder in format_folders(out, settings.formats)]
    results[0].others = results[1:]
    return results[0]


def format_folders(out: Path, formats: list[str]) -> list[tuple[str, Path]]:
    return [(kind, out if i == 0 else out.with_name(f"{out.name}-{kind}")) for i, kind in enumerate(formats)]


def _package_one(kind: str, settings: PackageSettings, export_dir: Path, export, out: Path, report, data,
                 overwrite: bool) -> PackageResult:
    archive = _archive_path(out, settings.archive)
    with claimed_output(out, [export_dir, report], overwrite, "kdeploy package"):
        if archive is not None:
            _check_archive_target(archive, [export_dir, report], overwrite)
        manifest = _manifest(settings, export_dir, export, Path(report) if report else None)
        manifest.kind = kind
        before = _manifest_bytes(out)
        with atomic_dir(out, overwrite=overwrite) as tmp:
            parity = _write_bundle(tmp, export_dir, manifest, settings, export, data)
        digest = bundle_digest((out / MANIFEST).read_bytes())
        written = _write_archive(out, archive) if archive else None
        _drop_stale_archives(out, written, before)
    return PackageResult(bundle=str(out), bundle_mib=mib(out), digest=digest, manifest=manifest,
                         archive=str(written) if written else None, archive_mib=mib(written) if written else None,
                         kind=kind, e2e_parity=parity)


def existing_bundle(out: Path, formats: list[str] | None = None) -> PackageResult:
    """The result of an earlier, verified package run into `out` (its archive, if any, beside
    it), with the other formats it wrote beside it (OUT-FORMAT)."""
    results = []
    kinds = formats or ["python", *(k for k in FORMATS if k != "python")]
    for i, (kind, folder) in enumerate(format_folders(out, kinds)):
        if i > 0 and not (folder / MANIFEST).is_file():
            continue
        manifest = verify_bundle(folder)
        archive = next((p for p in (_archive_path(folder, k) for k in ("tar.gz", "zip")) if p.is_file()), None)
        results.append(PackageResult(bundle=str(folder), bundle_mib=mib(folder),
                                     digest=bundle_digest((folder / MANIFEST).read_bytes()), manifest=manifest,
                                     archive=str(archive) if archive else None,
                                     archive_mib=mib(archive) if archive else None, kind=manifest.kind,
                                     e2e_parity=(manifest.parity or {}).get("e2e")))
    results[0].others = results[1:]
    return results[0]


def _pick_model(export_dir: Path, wanted: str | None) -> Path:
    if wanted:
        path = export_dir / wanted
        if not path.is_file():
            raise KdeployError(f"{path}: no such ONNX file in the export folder")
        return path
    for name in (role.file for role in PREFERENCE):
        if (export_dir / name).is_file():
            return export_dir / name
    raise KdeployError(f"{export_dir}: no model.onnx; make an export folder with kdeploy export")


def _bench_figures(report_path: Path, model_path: Path) -> dict | None:
    from ..runtime.result import BenchReport

    report = BenchReport.load(report_path)
    for m in report.models:
        if Path(m.path).resolve() == model_path.resolve() or m.name.endswith(model_path.name):
            return {"latency": {str(bs): {"p50_ms": s.p50_ms, "throughput_per_s": s.throughput_per_s}
                                for bs, s in m.latency.items()},
                    "accuracy": m.accuracy.metrics if m.accuracy else None, "size_mib": m.size_mib,
                    "provider": m.provider, "threads": m.threads, "machine": report.environment.get("machine"),
                    "reference": report.reference,
                    "p50_speedup_vs_reference": {str(k): v for k, v in m.vs_reference.p50_speedup.items()}}
    return None


def _pad(export_dir: Path, config: dict) -> tuple[str, int]:
    tok_config = json.loads((export_dir / "tokenizer_config.json").read_text()) \
        if (export_dir / "tokenizer_config.json").exists() else {}
    pad_token = tok_config.get("pad_token") or "[PAD]"
    if isinstance(pad_token, dict):
        pad_token = pad_token.get("content", "[PAD]")
    vocab = json.loads((export_dir / TOKENIZER_FILE).read_text(encoding="utf-8"))["model"].get("vocab", {})
    pad_id = config.get("pad_token_id")
    if isinstance(vocab, dict) and pad_token in vocab:
        pad_id = vocab[pad_token]
    return pad_token, pad_id if pad_id is not None else 0


def _manifest(settings: PackageSettings, export_dir: Path, export, report: Path | None) -> BundleManifest:
    from ..environment import library_versions

    model_path = _pick_model(export_dir, settings.model_file)
    if not (export_dir / TOKENIZER_FILE).is_file():
        raise KdeployError(f"{export_dir}: no tokenizer.json (a fast tokenizer is needed on the device)")
    config = read_config(export_dir)
    kd = ExportedModel.from_config(config) or ExportedModel()
    name = model_path.name
    info = export.files.get(name)
    dtype = info.dtype if info else "fp32"
    pad_token, pad_id = _pad(export_dir, config)
    scores = export.scores(name)
    return BundleManifest(
        format=BUNDLE_FORMAT, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), model=BUNDLE_MODEL,
        source_file=name, dtype=dtype, tokenizer=TOKENIZER_FILE,
        label_names=kd.label_names or export.label_names, max_length=kd.max_length or export.max_length,
        pad_token=pad_token, pad_token_id=pad_id, inputs=kd.inputs, outputs=kd.outputs,
        pairs=bool(kd.pairs), task=kd.task, thresholds=kd.thresholds, pair_truncation=kd.pair_truncation, truncation=kd.truncation or "head",
        opset=kd.opset, files={}, session=kd.session_of(name) or None, pooling=kd.pooling,
        provider_advice=("OpenVINO on an Intel CPU (pip install openvino)" if name.endswith(".xml")
                         else "CPUExecutionProvider (int8 has no CUDA kernels)" if dtype == "int8"
                         else "CUDAExecutionProvider" if dtype == "fp16"
                         else "CPUExecutionProvider or CUDAExecutionProvider"),
        accuracy={k: v for k, v in to_dict(scores).items() if v is not None} if scores else None, accuracy_split=export.accuracy.split if export.accuracy else None,
        parity={k: v.max_abs_diff for k, v in export.parity.items()},
        benchmark=_bench_figures(report, model_path) if report else None,
        retention=({**to_dict(export.retention), "passed": export.retention.passed, "learned": export.retention.learned}
                   if export.retention is not None else None),
        provenance={**export.provenance, "data_fingerprint": export.data_fingerprint,
                    "export_versions": export.versions, "package_versions": library_versions()})


def _write_bundle(tmp: Path, export_dir: Path, manifest: BundleManifest, settings: PackageSettings, export,
                  data) -> dict | None:
    """Write one format's files into tmp (its writer, from the format table), list them with
    checksums, verify; the format's gate figures come back (the e2e gate's; None for the others)."""
    source = export_dir / manifest.source_file
    if source.suffix == ".xml" and manifest.kind != "python":
        raise KdeployError(f"--format {manifest.kind} needs an ONNX model; an OpenVINO IR is bundled only as python")
    names, parity = FORMATS[manifest.kind].write()(tmp, export_dir, source, manifest, settings, export, data)
    for path in tmp.rglob("*"):  # a copied file keeps its source's mode: every file gets the umask's
        if path.is_file() and not path.is_symlink():
            normal_permissions(path)
    for n in names:
        manifest.files[n] = FileEntry(sha256=sha256_of(tmp / n), bytes=(tmp / n).stat().st_size)
    write_text(tmp / MANIFEST, manifest.to_json())
    verify_bundle(tmp)
    _gate_invariance(tmp, manifest, export, data)
    write_text(tmp / "README.md", model_card(manifest))
    manifest.files["README.md"] = FileEntry(sha256=sha256_of(tmp / "README.md"), bytes=(tmp / "README.md").stat().st_size)
    write_text(tmp / MANIFEST, manifest.to_json())
    verify_bundle(tmp)
    return parity


INVARIANCE_TEXTS = 1000


def _gate_invariance(tmp: Path, manifest: BundleManifest, export, data) -> None:
    """The bundle as the device will run it, each text alone vs in batches vs beside long
    texts; recorded in the manifest. A file the export found batch-invariant must stay so in
    every format (a format that re-fuses or re-rounds it is refused, not shipped)."""
    from ..edge import Predictor
    from ..modelio.invariance import check_invariance, longest_first
    from .hostile_texts import HOSTILE_TEXTS, hostile_pairs

    from ..modelio.invariance import Invariance
    from ..tasks import task_kind

    if task_kind(manifest.task).word_labels and manifest.kind == "onnx-e2e":
        manifest.batch_invariant, manifest.invariance = True, to_dict(Invariance(
            texts=0, max_abs_diff=0.0, flips=0, note="one text per call: the graph's input is [1], so no call "
                                                     "ever holds two texts (its windows are the python bundle's)"))
        return
    texts, _ = gate_texts(export, data, manifest.task)
    hostile = hostile_pairs() if manifest.pairs else list(HOSTILE_TEXTS)
    examples = longest_first([tuple(t) if manifest.pairs else t for t in texts], INVARIANCE_TEXTS) + hostile
    predictor = Predictor(tmp)
    result = check_invariance(predictor.outputs, examples, manifest.task, thresholds=predictor.threshold_array)
    manifest.batch_invariant, manifest.invariance = result.passed, to_dict(result)
    source = export.files.get(manifest.source_file)
    if source is not None and source.batch_invariant and not result.passed:
        raise KdeployError(f"the {manifest.kind} bundle of {manifest.source_file} is not batch-invariant "
                           f"({result.summary()}; worst {result.worst!r}) although the export's file is; "
                           "not writing a bundle whose answers move with the batch")


def gate_texts(export, data, task: str | None = None) -> tuple[list, str]:
    """The validation split of `data` (read as the bundle's `task`), else of the data the student
    was trained on (if its files are still there), else none (the hostile list alone; the result
    says so)."""
    from ..data import data_still_there, load_task_data
    from ..modelio.record import as_model_task

    if data is None:
        recorded = (export.provenance or {}).get("data")
        data = data_still_there(recorded)
    if data is None:
        return [], "no validation split (give --data)"
    from ..tasks import task_kind

    if task_kind(task).sentence_vectors:  # scored pairs, each text a row
        from ..data.embedding import load_embedding_data

        scored = load_embedding_data(as_model_task(data, task)).scored
        split = "validation" if "validation" in scored else next(iter(scored), None)
        if split is None:
            return [], "no scored pairs (give --validation)"
        return scored[split][0], f"the {split} split ({len(scored[split][0])} texts)"
    read = load_task_data(as_model_task(data, task))
    split = "validation" if "validation" in read.splits else next(iter(read.splits))
    texts = read.texts(split)
    return texts, f"the {split} split ({len(texts)} {'pairs' if read.pairs else 'texts'})"


def _manifest_bytes(folder: Path) -> bytes | None:
    """The manifest of the bundle `folder` holds now (before it is replaced), if any."""
    try:
        return (folder / MANIFEST).read_bytes() if (folder / MANIFEST).is_file() else None
    except OSError:
        return None


def _drop_stale_archives(folder: Path, kept: Path | None, before: bytes | None) -> None:
    """An archive beside the folder that is not the one just written would outlive its bundle
    (`predict bundle.tar.gz` would run the old model without a word). It is removed when its
    manifest is byte for byte the one the folder held before this run (kdeploy's archive of
    that bundle); any other is never deleted, but said."""
    from ..console import note
    from ..safety import read_member

    for path in (_archive_path(folder, kind) for kind in ARCHIVES):
        if path == kept or path.is_symlink() or not path.is_file():
            continue
        try:
            _, raw = read_member(path, {MANIFEST, LEGACY_MANIFEST})
        except KdeployError:
            raw = None
        if raw is not None and raw == before:
            path.unlink(missing_ok=True)
            note(f"removed {path}: the archive of the bundle {folder} held before, which this run replaced")
        else:
            note(f"left {path} as it is: it is not the archive of the bundle just written, nor provably of the one "
                 f"{folder} held before; move it away, or `kdeploy predict {path}` runs another bundle than {folder}")


def _archive_path(folder: Path, kind: str | None) -> Path | None:
    if kind is None:
        return None
    return folder.with_name(folder.name + (".tar.gz" if kind == "tar.gz" else ".zip"))


def _check_archive_target(archive: Path, inputs: list, overwrite: bool) -> None:
    """The archive beside the bundle replaces only an earlier bundle archive (or --overwrite)."""
    from ..safety import read_member

    for item in inputs:
        if item is not None and Path(item).resolve() == archive.resolve():
            raise KdeployError(f"the bundle archive {archive} would overwrite the input {item}; choose another --out")
    if archive.is_dir():
        raise KdeployError(f"{archive} is a folder; refusing to replace it by the bundle archive")
    if archive.exists() and not overwrite:
        try:
            read_member(archive, {MANIFEST, LEGACY_MANIFEST})
        except KdeployError:
            raise KdeployError(f"{archive} exists and is not a kdeploy bundle archive; move it away, or pass "
                               "--overwrite to replace it") from None


def _write_archive(folder: Path, target: Path) -> Path:
    """The manifest first (a reader learns what to extract before anything else), then the rest;
    written beside the folder under a temporary name and renamed into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder.parent)
    os.close(fd)
    from ..fsutil import LEDGER

    members = sorted((p for p in folder.iterdir() if p.name != LEDGER), key=lambda p: (p.name != MANIFEST, p.name))
    try:
        if target.name.endswith(".tar.gz"):
            with tarfile.open(tmp, "w:gz") as tf:
                for p in members:
                    tf.add(p, arcname=f"{folder.name}/{p.name}")
        else:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for p in members:
                    zf.write(p, arcname=f"{folder.name}/{p.name}")
        normal_permissions(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
