"""The predictor for devices: onnxruntime, tokenizers and numpy only — no torch, no transformers.

    pip install kdeploy            # the slim core: onnxruntime + tokenizers + numpy (+ the CLI's typer/rich/pyyaml)
    from kdeploy.edge import Predictor
    p = Predictor("bundle.tar.gz")
    p.predict(["a gripping film"])  # [ClassPrediction(label="positive", score=0.97, probabilities={...})]
    p.predict([("A man plays a guitar", "A person plays music")])   # a sentence-pair model
    p.rank("how do I reset my router", passages)  # a reranker: passages by score, best first

A bundle is verified before anything in it is trusted: from an archive only the files its
manifest lists are extracted, each within its listed size and checked against its sha256;
the label names must be the ones bound into the model; the session must run on the provider
asked for (a fallback is refused unless allowed).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import KdeployError
from .formats import FORMATS
from .manifest import (
    LEGACY_FORMAT,
    LEGACY_MANIFEST,
    MANIFEST,
    METADATA_KEY,
    BundleError,
    BundleManifest,
    bundle_digest,
    normal_digest,
    verify_bundle,
)
from .tasks import Prediction, task_kind
from .truncation import Reader

__all__ = ["Predictor", "BundleError", "verify_bundle"]


def _text(value, i: int) -> str:
    """A text as a model may read it: a string, of valid Unicode (a lone surrogate from Python
    cannot be tokenised or encoded as UTF-8)."""
    if not isinstance(value, str):
        raise KdeployError(f"input {i + 1}: not a text (got {type(value).__name__} {value!r:.40}); give strings")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise KdeployError(f"input {i + 1}: holds a lone surrogate (U+{ord(value[exc.start]):04X} at character "
                           f"{exc.start}), which is not valid Unicode; decode the text with errors='replace'") from None
    return value


def _extract(archive: Path, target: Path, expected_digest: str | None) -> Path:
    """Only the manifest's files, each capped at its size and checked while it streams."""
    from .safety import extract_listed, read_member

    name, raw = read_member(archive, {MANIFEST, LEGACY_MANIFEST})
    if expected_digest is not None and bundle_digest(raw) != normal_digest(expected_digest):
        raise BundleError(f"{archive}: the bundle digest is {bundle_digest(raw)}, not the pinned "
                          f"{normal_digest(expected_digest)}; "
                          "refusing it")
    manifest = BundleManifest.parse(raw, f"{archive}:{name}")
    folder = target / (name.parent.name or "bundle")
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise BundleError(f"extract_to: {folder} exists and is not a folder; refusing to write the bundle there")
    if folder.is_dir() and any(folder.iterdir()):
        if (folder / name.name).is_file() and (folder / name.name).read_bytes() == raw:
            verify_bundle(folder, expected_digest)  # the same bundle, extracted before: checked, not rewritten
            return folder
        raise BundleError(f"extract_to: {folder} already holds files kdeploy did not extract from {archive.name}; "
                          "refusing to overwrite them (choose an empty folder)")
    extract_listed(archive, name.parent, {n: {"bytes": e.bytes, "sha256": e.sha256} for n, e in manifest.files.items()},
                   folder)
    (folder / name.name).write_bytes(raw)
    return folder


def read_python(bundle: Path, m: BundleManifest, model: str, provider: str, threads, allow_fallback: bool,
                spin_wait: bool):
    """The python (and web) format's reader: its ONNX file in onnxruntime on `provider`, or in
    OpenVINO (an IR bundle, or provider "openvino")."""
    from .modelio.onnx_session import create_session

    if (m.runtime or {}).get("name") == "openvino":
        from .modelio.openvino_session import OpenVINOSession

        if provider not in ("cpu", "openvino"):
            raise BundleError(f"{bundle}: an OpenVINO bundle runs on the CPU here; provider {provider!r} "
                              "is for ONNX bundles")
        return OpenVINOSession(bundle / model, threads, m.runtime.get("precision", "bf16"))
    if provider == "openvino":  # the bundle's own ONNX file, in OpenVINO (QDQ int8 runs int8 there)
        return _openvino_on_onnx(bundle, model, threads)
    return create_session(bundle / model, provider, threads, allow_fallback,
                          (m.session or {}).get("disabled_optimizers"), spin_wait=spin_wait)


def read_e2e(bundle: Path, m: BundleManifest, model: str, provider: str, threads, allow_fallback: bool,
             spin_wait: bool):
    """The onnx-e2e format's reader: text in, probabilities out; the tokenizer runs inside the
    graph as onnxruntime-extensions operators, on the CPU."""
    from .modelio.onnx_session import create_session

    if provider != "cpu":
        raise BundleError(f"{bundle}: the e2e model's tokenizer ops run on the CPU; use provider cpu")
    return create_session(bundle / model, provider, threads, allow_fallback,
                          (m.session or {}).get("disabled_optimizers"), custom_ops_library=quiet_extensions())


def quiet_extensions() -> str:
    """The onnxruntime-extensions op library, with the SentencePiece inside it told to keep its
    LOG(INFO) lines ("precompiled_charsmap is empty ...", printed on stderr as a Unigram model
    loads) to itself; warnings and errors still show. Its minimum level is a function of that
    library and nothing else (no environment switch); onnxruntime loads the same file, so the
    setting holds there. A build without the function is left as it is."""
    import ctypes

    from .modelio.onnx_session import extensions_library

    library = extensions_library()
    try:
        ctypes.CDLL(library)._ZN13sentencepiece7logging14SetMinLogLevelEi(1)  # 1: LOG_WARNING
    except (OSError, AttributeError):
        pass
    return library


def _openvino_on_onnx(bundle: Path, model: str, threads: int | None):
    """OpenVINO on an ONNX bundle's own file, its float work in fp32 so that its answers match
    onnxruntime's. OpenVINO reads standard ONNX, QDQ int8 included (run as int8); onnxruntime's
    own integer operators (com.microsoft: export's fused `integer` int8 form) it cannot."""
    from .modelio.openvino_session import OpenVINOSession

    try:
        return OpenVINOSession(bundle / model, threads, "f32")
    except KdeployError as exc:
        hint = ("; this file uses onnxruntime's own integer operators: export with --int8-format qdq for one "
                "int8 file that onnxruntime and OpenVINO both run") if "com.microsoft." in str(exc) else ""
        raise BundleError(f"{bundle}: {exc}{hint}") from None


def _check_extract_to(target: Path, archive: Path) -> None:
    """A file where the extraction folder (or one above it) should be is refused in one line,
    not met as the operating system's NotADirectoryError halfway through."""
    existing = next((p for p in (target, *target.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise BundleError(f"extract_to: {existing} is a file, not a folder; give a folder to extract {archive.name} "
                          "into (or none: a temporary one)")


def providers() -> tuple[str, ...]:
    """What a bundle runs on: onnxruntime's providers (their one table, kdeploy.modelio.onnx_session)
    and OpenVINO."""
    from .modelio.onnx_session import PROVIDERS

    return (*PROVIDERS, "openvino")


def _check_provider(provider) -> None:
    """An unknown provider is refused before the bundle is read, naming every one there is."""
    if provider not in providers():
        raise BundleError(f"unknown provider {provider!r}; choose from {', '.join(providers())}")


def _check_sizes(batch_size, max_tokens) -> None:
    for name, value in (("batch size", batch_size), ("max_tokens", max_tokens)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise KdeployError(f"{name} must be a whole number of at least 1, got {value!r}")


class Predictor:
    """Loads a verified bundle (folder or .tar.gz/.zip) and classifies text. `spin_wait=False`
    where the process shares its cores with others (a server): onnxruntime's idle threads then
    sleep instead of spinning. `provider="openvino"` runs a python bundle's ONNX file in OpenVINO
    (a QDQ int8 file as int8; export's fused `integer` form is onnxruntime's own)."""

    def __init__(self, bundle: str | os.PathLike, threads: int | None = None, provider: str = "cpu",
                 extract_to: str | os.PathLike | None = None, model_format: str = "onnx",
                 allow_fallback: bool = False, expected_digest: str | None = None, spin_wait: bool = True):
        from tokenizers import Tokenizer

        if model_format not in ("onnx", "ort"):
            raise BundleError(f"model_format must be onnx or ort, got {model_format!r}")
        if expected_digest is not None:
            expected_digest = normal_digest(expected_digest)  # a malformed pin is refused before anything is read
        _check_provider(provider)
        bundle = Path(bundle)
        if not bundle.exists():
            raise BundleError(f"{bundle}: no such bundle")
        self._tmp = None
        if bundle.is_file():
            if extract_to is not None:
                _check_extract_to(Path(extract_to), bundle)
            else:
                self._tmp = tempfile.TemporaryDirectory(prefix="kdeploy-bundle-")
                extract_to = self._tmp.name
            bundle = _extract(bundle, Path(extract_to), expected_digest)
        self.folder = bundle
        self.manifest = verify_bundle(bundle, expected_digest)
        m = self.manifest
        if model_format == "ort" and not m.ort_model:
            raise BundleError(f"{bundle}: the bundle has no ORT-format model; package it with --ort-format")
        self.labels: list[str] = list(m.label_names)
        self.kind = task_kind(m.task)  # how outputs become answers, and the typed prediction
        self.thresholds: dict[str, float] | None = dict(m.thresholds) if m.thresholds else None
        self.max_length: int = m.max_length
        try:
            self.tokenizer = Tokenizer.from_file(str(bundle / m.tokenizer))
        except Exception as exc:  # the tokenizers library raises its own exception type
            raise BundleError(f"{bundle}: cannot read {m.tokenizer} ({str(exc).splitlines()[0]})") from None
        self.reader = Reader(self.tokenizer, self.max_length, m.truncation, m.pair_truncation)
        self.tokenizer.no_padding()  # batches are padded here, after they are grouped by length
        self.tokenizer.encode_special_tokens = True  # "[SEP]" typed by a user is text, as in every bundle format
        self._whole = None  # an entity tagger reads every token of a long text, in windows (`entities`)
        if self.kind.word_labels:
            self._whole = Tokenizer.from_file(str(bundle / m.tokenizer))
            self._whole.no_truncation(), self._whole.no_padding()
            self._whole.encode_special_tokens = True
        model = m.ort_model if model_format == "ort" else m.model
        self.e2e = m.kind == "onnx-e2e"
        self.session = FORMATS[m.kind].read()(bundle, m, model, provider, threads, allow_fallback, spin_wait)
        self._on_openvino = provider == "openvino" and (m.runtime or {}).get("name") != "openvino"
        self._check_labels(bundle / model)
        self._inputs = [i.name for i in self.session.get_inputs()]

    def _check_labels(self, model: Path) -> None:
        import json

        if hasattr(self.session, "label_names"):  # OpenVINO IR: the names live in its runtime info
            bound = self.session.label_names()
            if bound != self.labels:
                raise BundleError(f"{self.folder}: the manifest's label names {self.labels} differ from the ones "
                                  f"bound into {model.name} ({bound}); refusing the bundle")
            return
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY in meta:
            try:
                bound = json.loads(meta[METADATA_KEY])
            except json.JSONDecodeError:
                bound = None
            if bound != self.labels:
                raise BundleError(f"{self.folder}: the manifest's label names {self.labels} differ from the ones "
                                  f"bound into {model.name} ({bound}); refusing the bundle")
        elif self.manifest.format != LEGACY_FORMAT and model.suffix == ".onnx":
            raise BundleError(f"{self.folder}: {model.name} carries no label names ({METADATA_KEY}); "
                              "re-package the export with kdeploy package")
        outputs = self.session.get_outputs()[0].shape
        if self.kind.sentence_vectors:  # one vector per text, named by its one output
            return
        if outputs and isinstance(outputs[-1], int) and outputs[-1] != len(self.labels):
            raise BundleError(f"{self.folder}: the model has {outputs[-1]} outputs but the manifest names "
                              f"{len(self.labels)} labels; refusing the bundle")

    @property
    def digest(self) -> str:
        return bundle_digest((self.folder / (MANIFEST if (self.folder / MANIFEST).exists() else LEGACY_MANIFEST))
                             .read_bytes())

    def _feeds(self, encs) -> dict[str, np.ndarray]:
        """Encodings (unpadded) -> the model's inputs, right-padded to the longest."""
        longest = max((len(e.ids) for e in encs), default=1) or 1
        ids = np.full((len(encs), longest), self.manifest.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(encs), longest), dtype=np.int64)
        types = np.zeros((len(encs), longest), dtype=np.int64)
        for row, e in enumerate(encs):
            n = len(e.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = e.ids, e.attention_mask, e.type_ids
        columns = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        missing = [name for name in self._inputs if name not in columns]
        if missing:
            raise BundleError(f"the model needs input {missing[0]!r}, which a tokenizer does not produce")
        return {name: columns[name] for name in self._inputs}

    def _encode(self, texts: list):
        """Token ids of each text, cut to max_length the way the model was trained to read."""
        return self.reader.encode_batch(texts)

    def _examples(self, texts) -> list:
        """Strings for a one-text model; (first, second) tuples for a pair model, checked: a
        value that is not a string is refused, never classified as its repr."""
        if isinstance(texts, str) or (self.manifest.pairs and isinstance(texts, tuple) and len(texts) == 2
                                      and all(isinstance(t, str) for t in texts)):
            texts = [texts]
        if isinstance(texts, (bytes, dict)) or not hasattr(texts, "__iter__"):
            raise KdeployError(f"give a list of texts, got {type(texts).__name__}")
        out = []
        for i, t in enumerate(texts):
            if self.manifest.pairs:
                if not isinstance(t, (tuple, list)) or len(t) != 2:
                    raise KdeployError(f"input {i + 1}: this model reads sentence pairs; give (first, second), "
                                       f"got {t!r:.80}")
                out.append((_text(t[0], i), _text(t[1], i)))
            elif isinstance(t, (tuple, list)):
                raise KdeployError(f"input {i + 1}: this model reads one text, not a pair")
            else:
                out.append(_text(t, i))
        return out

    @property
    def threshold_array(self) -> np.ndarray | None:
        """The decision thresholds in label order (multi-label), as every format applies them."""
        from .tasks.base import thresholds_of

        return thresholds_of(self.thresholds, self.labels)

    def _result(self, p: np.ndarray) -> Prediction:
        return self.kind.prediction(p, self.labels, self.thresholds)

    def _predict_e2e(self, texts: list[str], chunk: int) -> list[Prediction]:
        """The graph loops over its rows itself (each at its own length); chunks bound memory."""
        out: list[Prediction] = []
        for start in range(0, len(texts), chunk):
            rows = texts[start:start + chunk]
            batch = np.array([list(t) for t in rows] if self.manifest.pairs else rows, dtype=object)
            out += [self._result(p) for p in self.session.run([self.kind.e2e_output], {"text": batch})[0]]
        return out

    @property
    def batch_invariant(self) -> bool | None:
        """Whether a text's answer is the same alone and in any batch (measured at package time
        in onnxruntime; False for dynamic int8, whose activations are scaled per call; None for an
        older bundle). False for an int8 file run in OpenVINO: its kernels change with the batch's
        shape, and a last-bit change before a fixed quantisation step moves a value by one step
        (measured: up to 1e-2 in p on the demo's QDQ file); call it a text at a time there."""
        if self._on_openvino and self.manifest.dtype == "int8":
            return False
        return self.manifest.batch_invariant

    def outputs(self, texts) -> np.ndarray:
        """Exactly one model call on `texts` as given (no regrouping): probabilities per label,
        or the score. What the batch-invariance gate compares."""
        examples = self._examples(texts)
        if self.e2e and self.kind.word_labels:
            raise BundleError(f"{self.folder}: an e2e tagger's graph reads one text a call and returns its "
                              "entities, not per-token rows; use predict()")
        if self.e2e:
            batch = np.array([list(t) for t in examples] if self.manifest.pairs else examples, dtype=object)
            return self.session.run([self.kind.e2e_output], {"text": batch})[0].astype(np.float64)
        encs = self._encode(examples)
        logits = self.session.run(None, self._feeds(encs))[0].astype(np.float64)
        if self.kind.word_labels:  # per token: [texts, max_length, tags], zero past each text's tokens
            out = np.zeros((len(encs), self.max_length, logits.shape[-1]))
            for row, e in enumerate(encs):
                out[row, :len(e.ids)] = self.kind.outputs(logits[row, :len(e.ids)])
            return out
        return self.kind.outputs(logits)

    def logits(self, texts: list[str]) -> np.ndarray:
        if self.e2e:
            raise BundleError(f"{self.folder}: an e2e bundle returns probabilities, not logits; use predict()")
        return self.session.run(None, self._feeds(self._encode(self._examples(texts))))[0].astype(np.float32)

    def predict(self, texts, batch_size: int | None = None, max_tokens: int = 1024) -> list[Prediction]:
        """One typed prediction per text (or (first, second) pair, for a pair model), in order:
        the task kind's (`kdeploy.tasks`): ClassPrediction(label, score, probabilities),
        ScorePrediction(score), or LabelsPrediction(labels above their thresholds, scores).

        Texts are tokenised once, sorted by length and run in batches of similar length: by
        default as many as fit `max_tokens` padded tokens (the predictor picks the batch
        size); with `batch_size`, that many per call.
        """
        if isinstance(texts, str):
            texts = [texts]
        _check_sizes(batch_size, max_tokens)
        texts = self._examples(texts)
        if self.kind.word_labels:
            return self.entities(texts, batch_size=batch_size, max_tokens=max_tokens)
        if self.e2e:
            return self._predict_e2e(texts, batch_size or 64)
        encs = self._encode(texts)
        results: list = [None] * len(texts)
        for idx, logits in self._batches(encs, batch_size, max_tokens):
            for i, p in zip(idx, self.kind.outputs(logits.astype(np.float32))):
                results[i] = self._result(p)
        return results

    def _batches(self, encs, batch_size: int | None, max_tokens: int):
        """(indices, logits) per model call: texts of similar length together, `batch_size` per call
        or as many as fit `max_tokens` padded tokens."""
        from .modelio.batching import buckets, token_batches

        _check_sizes(batch_size, max_tokens)
        groups = buckets([e.ids for e in encs], batch_size) if batch_size else \
            token_batches([len(e.ids) for e in encs], max_tokens)
        for idx in groups:
            yield idx, self.session.run(None, self._feeds([encs[i] for i in idx]))[0].astype(np.float64)

    def entities(self, texts, batch_size: int | None = None, max_tokens: int = 1024) -> list[Prediction]:
        """An entity tagger's spans per text, in order: `EntitiesPrediction([EntitySpan(entity,
        score, start, end, text)])`, with character offsets into each text as given. The text's
        words are the tokenizer's own (as transformers' pipeline splits them), each tagged by its
        first sub-token (aggregation "first"). A text longer than the window is read whole, in
        overlapping windows (`kdeploy.truncation.windows`), each token taken from the window
        that gives it the most context: nothing past the window goes unread (or unredacted)."""
        from .modelio.words import read_in_windows, text_spans

        if not self.kind.word_labels:
            raise KdeployError(f"entities() needs an entity-tagging bundle; this one is a {self.kind.name} model "
                               "(use predict())")
        texts = self._examples([texts] if isinstance(texts, str) else texts)
        if self.e2e:  # the graph groups the entities itself (kdeploy.package.e2e_words), a text a call
            return [self.kind.prediction(self._e2e_spans(t), self.labels) for t in texts]
        encs = self._whole.encode_batch(texts)

        def run(pieces):
            for idx, logits in self._batches(pieces, batch_size, max_tokens):
                yield idx, [self.kind.outputs(row) for row in logits]
        rows = read_in_windows(encs, self.max_length, len(self.labels), run)
        return [self.kind.prediction(text_spans(t, e.offsets, e.word_ids, r, self.labels), self.labels)
                for t, e, r in zip(texts, encs, rows)]

    def _e2e_words(self, text: str) -> dict:
        from .tasks.tokens import E2E_OUTPUTS

        return dict(zip(E2E_OUTPUTS, self.session.run(list(E2E_OUTPUTS), {"text": np.array([text], dtype=object)})))

    def _e2e_spans(self, text: str) -> list[dict]:
        out = self._e2e_words(text)
        return [{"entity": e.decode() if isinstance(e, bytes) else str(e), "score": round(float(s), 6),
                 "start": int(a), "end": int(b), "text": text[int(a):int(b)]}
                for e, a, b, s in zip(out["entity"], out["start"], out["end"], out["score"])]

    def embed(self, texts, normalize: bool = True, dimensions: int | None = None, batch_size: int | None = None,
              max_tokens: int = 1024) -> np.ndarray:
        """A sentence embedder's vectors, float32 [N, D], in input order, with the model's own pooling
        (and normalisation, where the model has it) done inside the graph. `dimensions` keeps the
        first D of them (Matryoshka-style truncation); `normalize` L2-normalises what is returned
        (after truncation), as TEI's and OpenAI's embeddings are."""
        if not self.kind.sentence_vectors:
            raise KdeployError(f"embed() needs a sentence-embedding bundle; this one is a {self.kind.name} model "
                               "(use predict())")
        width = int((self.manifest.pooling or {}).get("dimension") or 0)
        if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int)
                                       or not 1 <= dimensions <= (width or dimensions)):
            raise KdeployError(f"dimensions must be a whole number from 1 to {width or 'the model width'}, "
                               f"got {dimensions!r}")
        rows = self.predict(texts, batch_size=batch_size, max_tokens=max_tokens)
        vectors = np.asarray([r.embedding for r in rows], dtype=np.float32).reshape(len(rows), -1)
        if dimensions is not None:
            vectors = vectors[:, :dimensions]
        if normalize:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
        return vectors.astype(np.float32)

    def rank(self, query: str, passages: list[str], top_k: int | None = None, label: str | None = None,
             batch_size: int | None = None) -> list[dict]:
        """Passages by relevance to `query`, best first: [{"index", "passage", "score"}]. The
        score is a score model's output, or a classifier's probability of `label` (default:
        its last label, e.g. "relevant" or "entailment" after "contradiction"/"irrelevant")."""
        if not self.manifest.pairs:
            raise KdeployError("rank() needs a sentence-pair model (query, passage); this bundle reads one text")
        if label is not None and label not in self.labels:
            raise KdeployError(f"label {label!r} is not one of the model's labels {self.labels}")
        if not isinstance(query, str):
            raise KdeployError(f"the query must be a text, got {type(query).__name__}")
        if isinstance(passages, (str, bytes)) or not isinstance(passages, (list, tuple)):
            raise KdeployError(f"passages must be a list of texts, got {type(passages).__name__}"
                               + (" (a single text: wrap it in a list)" if isinstance(passages, str) else ""))
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise KdeployError(f"top_k must be a whole number of at least 1 (or None for all), got {top_k!r}")
        results = self.predict([(query, p) for p in passages], batch_size=batch_size)
        key = label or self.labels[-1]
        scores = [r.relevance(key) for r in results]
        order = sorted(range(len(passages)), key=lambda i: -scores[i])[:top_k]
        return [{"index": i, "passage": passages[i], "score": scores[i]} for i in order]
