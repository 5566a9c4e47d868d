"""The bundle formats' writers (named in kdeploy.formats, where each sits beside its reader):
each lays its files out in the bundle's temporary folder and returns their names, and the
figures of its own gate where it has one."""
from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..configtools import to_dict
from ..errors import KdeployError
from ..manifest import BundleManifest
from ..names import TOKENIZER_FILE
from ..tasks import task_kind
from .binding import bind_labels


def python(tmp: Path, export_dir: Path, source: Path, manifest: BundleManifest, settings, export,
           data) -> tuple[list[str], None]:
    """model.onnx (labels bound into it) + tokenizer.json, optionally model.ort; or an OpenVINO IR."""
    from .ort_format import OPERATORS, ORT_MODEL, convert_to_ort

    if source.suffix == ".xml":  # an OpenVINO IR: its labels were bound at export
        if settings.ort_format:
            raise KdeployError("--ort-format needs an ONNX model; an OpenVINO IR bundle cannot carry one")
        shutil.copyfile(source, tmp / "model.xml")
        shutil.copyfile(source.with_suffix(".bin"), tmp / "model.bin")
        manifest.model, manifest.model_weights = "model.xml", "model.bin"
        manifest.runtime = {"name": "openvino", "precision": "bf16"}
        shutil.copyfile(export_dir / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        return ["model.xml", "model.bin", TOKENIZER_FILE], None
    bind_labels(source, tmp / manifest.model, manifest.label_names)
    shutil.copyfile(export_dir / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
    names = [manifest.model, TOKENIZER_FILE]
    if settings.ort_format:
        names += convert_to_ort(tmp / manifest.model, tmp)
        manifest.ort_model, manifest.ort_operators = ORT_MODEL, OPERATORS
    return names, None


def web(tmp: Path, export_dir: Path, source: Path, manifest: BundleManifest, settings, export,
        data) -> tuple[list[str], None]:
    """The transformers.js layout and its index.html page."""
    from .web import check_web_task, write_web

    check_web_task(manifest.pairs, manifest.task)
    names = write_web(tmp, export_dir, source, manifest.dtype, manifest.label_names, manifest.max_length,
                      manifest.pairs, export_dir / TOKENIZER_FILE, manifest.truncation, manifest.task,
                      manifest.thresholds)
    manifest.model, manifest.tokenizer = names[3], names[2]
    # transformers.js cannot disable onnxruntime optimizers: the export's fusion plan (e.g. lean's
    # SkipLayerNorm off) does not reach the browser, and int8 amplifies that kernel difference
    # (up to 1.7e-2 on the demo test split). The web manifest says what JS runs: Python on it agrees (6e-8).
    manifest.session = None
    return names, None


def e2e(tmp: Path, export_dir: Path, source: Path, manifest: BundleManifest, settings, export,
        data) -> tuple[list[str], dict]:
    """One ONNX file, text in and label out, gated on token and probability parity."""
    shutil.copyfile(export_dir / TOKENIZER_FILE, tmp / TOKENIZER_FILE)  # what the graph's tokenizer came from
    parity = _e2e_model(tmp, source, manifest, export, data)
    return [manifest.model, TOKENIZER_FILE], parity


def _e2e_model(tmp: Path, source: Path, manifest: BundleManifest, export, data) -> dict:
    """model.e2e.onnx (text in, label out), gated on token and probability parity with the
    plain model and the `tokenizers` library, i.e. with what the python bundle answers."""
    import onnx

    from .e2e import E2E_MODEL, build_e2e
    from .hostile_texts import HOSTILE_TEXTS, hostile_pairs
    from .parity import check_e2e
    from .tokenizer_graph import in_graph_tokenizer, tokenizer_model

    if task_kind(manifest.task).word_labels:
        return _tagger_e2e_model(tmp, source, manifest, export, data)
    attributes, table = in_graph_tokenizer(_tokenizer_json(source, tmp), manifest.max_length, manifest.pairs)
    from .bundle import gate_texts

    texts, where = gate_texts(export, data, manifest.task)
    disabled = (manifest.session or {}).get("disabled_optimizers")
    with _bound_model(source, manifest) as (plain, fused):
        kind = task_kind(manifest.task)
        thresholds = [manifest.thresholds[n] for n in manifest.label_names] if manifest.thresholds else None
        if kind.thresholds and thresholds is None:
            thresholds = [0.5] * len(manifest.label_names)
        onnx.save(build_e2e(fused, attributes, table, manifest.label_names, manifest.pairs, manifest.pair_truncation,
                            manifest.truncation, kind.activation, thresholds, kind.e2e_output), str(tmp / E2E_MODEL))
        hostile = hostile_pairs() if manifest.pairs else list(HOSTILE_TEXTS)
        parity = check_e2e(tmp / E2E_MODEL, tokenizer_model(attributes, table, manifest.pairs,
                                                            pair_truncation=manifest.pair_truncation,
                                                            truncation=manifest.truncation), plain,
                           tmp / TOKENIZER_FILE, texts + hostile, f"{where} + {len(hostile)} hostile "
                           + ("pairs" if manifest.pairs else "texts"), manifest.max_length, manifest.pairs,
                           disabled, manifest.pair_truncation, truncation=manifest.truncation, task=manifest.task)
    return _gated(parity, manifest)


def _tagger_e2e_model(tmp: Path, source: Path, manifest: BundleManifest, export, data) -> dict:
    """An entity tagger's model.e2e.onnx (text in, entities with character offsets out), gated on
    the same spans as the python bundle (kdeploy.package.e2e_words)."""
    import onnx

    from .bundle import gate_texts
    from .e2e import E2E_MODEL
    from .e2e_words import build_tagger_e2e, wordpiece_vocab
    from .hostile_texts import HOSTILE_TEXTS
    from .parity import check_tagger_e2e
    from .tokenizer_graph import bert_tokenizer_attributes, normaliser_table

    tokenizer_json = _tokenizer_json(source, tmp)
    # one line if BERT's normaliser or template cannot be reproduced; else its [CLS]/[SEP] strings
    attributes = bert_tokenizer_attributes(tokenizer_json, manifest.max_length)
    vocab, _ = wordpiece_vocab(tokenizer_json)
    texts, where = gate_texts(export, data, manifest.task)
    disabled = (manifest.session or {}).get("disabled_optimizers")
    with _bound_model(source, manifest) as (plain, fused):
        cls_id, sep_id = (vocab[attributes[t]] for t in ("cls_token", "sep_token"))
        onnx.save(build_tagger_e2e(fused, tokenizer_json, normaliser_table(tokenizer_json), manifest.label_names,
                                   manifest.max_length, cls_id, sep_id), str(tmp / E2E_MODEL))
        hostile = list(HOSTILE_TEXTS)
        parity = check_tagger_e2e(tmp / E2E_MODEL, plain, tmp / TOKENIZER_FILE, texts + hostile,
                                  f"{where} + {len(hostile)} hostile texts", manifest.max_length,
                                  manifest.label_names, disabled_optimizers=disabled)
    return _gated(parity, manifest)


def _gated(parity, manifest: BundleManifest) -> dict:
    """The e2e gate's verdict (one line and nothing written when it fails), recorded in the manifest."""
    from .e2e import E2E_MODEL
    from .parity import gate

    gate(parity)
    manifest.model = E2E_MODEL
    manifest.parity = {**(manifest.parity or {}), "e2e": to_dict(parity)}
    return to_dict(parity)


def _tokenizer_json(source: Path, tmp: Path) -> Path:
    """The export's own tokenizer.json (errors then name the folder the user gave), else the copy."""
    named = source.parent / TOKENIZER_FILE
    return named if named.is_file() else tmp / TOKENIZER_FILE


@contextmanager
def _bound_model(source: Path, manifest: BundleManifest):
    """(plain, fused): the source file with the manifest's label names bound in, and the same with
    the fusions onnxruntime applies at load written in (what an e2e graph wraps), in a scratch folder."""
    from .e2e import with_load_time_fusions

    with tempfile.TemporaryDirectory(prefix="kdeploy-e2e-") as scratch:
        plain, fused = Path(scratch) / "model.onnx", Path(scratch) / "fused.onnx"
        bind_labels(source, plain, manifest.label_names)
        with_load_time_fusions(plain, fused, (manifest.session or {}).get("disabled_optimizers"))
        yield plain, fused
