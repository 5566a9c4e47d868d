"""The bundle manifest (`bundle.json`): what a bundle holds and how to check it. Standard
library only: the torch-free predictor reads it on the device.

Trust rules, all checked before any model is loaded:
- every file the predictor loads (the model, the tokenizer, the ORT model) is listed with
  its size and sha256, and every listed file matches; a manifest without checksums is refused;
- listed names are plain relative paths inside the bundle (at most three plain parts, as the
  web layout's `model/onnx/model_quantized.onnx`; no `..`, hidden or absolute names);
- the label names agree with the ones written into the ONNX model's own metadata.

What the checksums protect against: a damaged or altered *file*. They cannot protect against
a rewritten *manifest* (whoever can change files can change it too); for that, pin the
bundle digest (the sha256 of bundle.json, printed by `kdeploy package`) where the bundle is used.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import KdeployError
from .formats import FORMATS
from .names import BUNDLE_MANIFEST, LEGACY_MANIFEST
from .truncation import resolve

MANIFEST = BUNDLE_MANIFEST
BUNDLE_FORMAT = "kdeploy-bundle/2"
LEGACY_FORMAT = "kdeploy-bundle/1"
MAX_MANIFEST_BYTES = 1 << 20
METADATA_KEY = "kdeploy.label_names"  # in the ONNX model's metadata_props: binds labels to the model
KINDS = tuple(FORMATS)  # what the bundle is laid out for (kdeploy.formats: writer and reader)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BundleError(KdeployError):
    pass


@dataclass
class FileEntry:
    sha256: str
    bytes: int


@dataclass
class BundleManifest:
    model: str
    tokenizer: str
    label_names: list[str]
    max_length: int
    files: dict[str, FileEntry]
    format: str = BUNDLE_FORMAT
    created: str = ""
    source_file: str = ""
    dtype: str = "fp32"
    pad_token: str = "[PAD]"
    pad_token_id: int = 0
    inputs: list[str] | None = None
    outputs: list[str] = field(default_factory=lambda: ["logits"])
    opset: int | None = None
    provider_advice: str = ""
    accuracy: dict | None = None
    accuracy_split: str | None = None
    retention: dict | None = None  # the student against its teacher and the trivial answer (kdeploy.retention)
    parity: dict | None = None
    benchmark: dict | None = None
    provenance: dict = field(default_factory=dict)
    ort_model: str | None = None
    ort_operators: str | None = None
    session: dict | None = None  # onnxruntime settings the export found fastest here (disabled_optimizers)
    runtime: dict | None = None  # {"name": "openvino", "precision": "bf16"}; onnxruntime when absent
    model_weights: str | None = None  # an OpenVINO IR's .bin beside its .xml
    kind: str = "python"  # python: model + tokenizer.json; onnx-e2e: text in, label out; web: transformers.js
    pairs: bool = False  # the model reads sentence pairs
    task: str = "classification"  # a task kind's name (kdeploy.tasks): classification, regression, multi-label
    thresholds: dict | None = None  # multi-label: {label: decision threshold}, tuned on validation, applied everywhere
    pair_truncation: str = "longest_first"
    truncation: str = "head"  # a long single text: head, tail or head+tail:N (kdeploy.truncation), in every format
    # Measured on this bundle at package time: each text alone vs in batches vs beside long texts.
    # False for dynamic int8 (activations scaled per call): its answers move with the batch.
    batch_invariant: bool | None = None
    invariance: dict | None = None
    pooling: dict | None = None  # an embedder's {pooling, normalize, dimension}: done inside the graph

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def parse(cls, raw: bytes, where: str) -> "BundleManifest":
        """Parse and validate the manifest's shape (not yet the files it lists)."""
        if len(raw) > MAX_MANIFEST_BYTES:
            raise BundleError(f"{where}: the manifest is larger than {MAX_MANIFEST_BYTES:,} bytes")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{where}: the manifest is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise BundleError(f"{where}: the manifest is not a JSON object")
        if data.get("format") not in (BUNDLE_FORMAT, LEGACY_FORMAT):
            raise BundleError(f"{where}: unknown bundle format {data.get('format')!r}; expected {BUNDLE_FORMAT}")
        files = data.get("files")
        if not isinstance(files, dict) or not files:
            raise BundleError(f"{where}: the manifest lists no files with checksums; refusing the bundle")
        entries = {}
        for name, info in files.items():
            _check_name(name, where)
            if not isinstance(info, dict) or not _SHA256.match(str(info.get("sha256", ""))) \
                    or not isinstance(info.get("bytes"), int) or info["bytes"] < 0:
                raise BundleError(f"{where}: {name!r} has no valid sha256 and size in the manifest; refusing the bundle")
            entries[name] = FileEntry(info["sha256"], info["bytes"])
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known and k != "files"}
        missing = [k for k in ("model", "tokenizer", "label_names", "max_length") if k not in kwargs]
        if missing:
            raise BundleError(f"{where}: the manifest lacks {', '.join(missing)}")
        try:
            manifest = cls(files=entries, **kwargs)
        except TypeError as exc:
            raise BundleError(f"{where}: malformed manifest ({exc})") from None
        manifest._check(where)
        return manifest

    def _truncation_is_canonical(self) -> bool:
        """head, tail or head+tail:N that fits max_length, as export writes it; head for pairs."""
        try:
            return resolve(self.truncation, int(self.max_length)) == self.truncation and \
                not (self.pairs and self.truncation != "head")
        except (KdeployError, TypeError, ValueError):
            return False

    def _check(self, where: str) -> None:
        loaded = [self.model, self.tokenizer] + [x for x in (self.ort_model, self.model_weights) if x]
        from .tasks import TASKS

        if self.task not in TASKS or self.pair_truncation not in (
                "longest_first", "only_first", "only_second") or not isinstance(self.pairs, bool):
            raise BundleError(f"{where}: malformed task settings in the manifest ({self.task!r}, {self.pair_truncation!r})")
        if not self._truncation_is_canonical():
            raise BundleError(f"{where}: malformed truncation {self.truncation!r} in the manifest")
        if self.kind not in KINDS:
            raise BundleError(f"{where}: unknown bundle kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.batch_invariant is not None and not isinstance(self.batch_invariant, bool):
            raise BundleError(f"{where}: malformed batch_invariant {self.batch_invariant!r} in the manifest")
        if self.runtime is not None and (not isinstance(self.runtime, dict)
                                         or self.runtime.get("name") not in ("onnxruntime", "openvino")):
            raise BundleError(f"{where}: unknown runtime {self.runtime!r} in the manifest")
        for name in loaded:
            if not isinstance(name, str):
                raise BundleError(f"{where}: malformed manifest (file name {name!r})")
            _check_name(name, where)
            if name not in self.files:
                raise BundleError(f"{where}: {name} is loaded by the predictor but has no checksum in the manifest; "
                                  "refusing the bundle")
        if not isinstance(self.label_names, list) or not self.label_names \
                or not all(isinstance(n, str) for n in self.label_names) \
                or len(set(self.label_names)) != len(self.label_names):
            raise BundleError(f"{where}: the manifest's label names must be distinct strings")
        if self.thresholds is not None and (
                not isinstance(self.thresholds, dict) or set(self.thresholds) != set(self.label_names)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0
                           for v in self.thresholds.values())):
            raise BundleError(f"{where}: the manifest's thresholds must give each label one number in [0, 1]")
        if not isinstance(self.max_length, int) or not 2 <= self.max_length <= 1 << 16:
            raise BundleError(f"{where}: the manifest's max_length {self.max_length!r} is not a token count")
        if not isinstance(self.pad_token_id, int) or self.pad_token_id < 0:
            raise BundleError(f"{where}: the manifest's pad_token_id {self.pad_token_id!r} is not a token id")
        disabled = (self.session or {}).get("disabled_optimizers", []) if isinstance(self.session, dict) else None
        if self.session is not None and (not isinstance(disabled, list) or not all(isinstance(x, str) for x in disabled)):
            raise BundleError(f"{where}: the manifest's session settings are malformed")


def _check_name(name, where: str) -> None:
    parts = name.split("/") if isinstance(name, str) else []
    if not parts or len(parts) > 3 or any(not part or part.startswith(".") or "\\" in part or ":" in part
                                          or "\x00" in part for part in parts):
        raise BundleError(f"{where}: the manifest names {name!r}, which is not a plain file name inside the bundle; "
                          "refusing the bundle")


def manifest_path(folder: Path) -> Path:
    for name in (MANIFEST, LEGACY_MANIFEST):
        if (folder / name).is_file():
            return folder / name
    raise BundleError(f"{folder}: no {MANIFEST}; not a kdeploy bundle (make one with kdeploy package)")


def bundle_digest(manifest_bytes: bytes) -> str:
    """What to pin: the manifest lists every file's sha256, so its own hash covers the bundle."""
    return "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()


def normal_digest(value: str) -> str:
    """A pinned digest as kdeploy prints it ("sha256:" + 64 lower-case hex digits), from that
    form, the bare hex `sha256sum` prints, or either in upper case; anything else is refused
    as malformed (a pin that cannot match is a mistake, not a mismatch)."""
    text = str(value).strip()
    hexpart = text[7:] if text.lower().startswith("sha256:") else text
    if not re.fullmatch(r"[0-9a-fA-F]{64}", hexpart):
        raise BundleError(f"--digest {text[:80]!r} is not a sha256 digest; give sha256: and 64 hex digits, as "
                          "kdeploy package prints it")
    return "sha256:" + hexpart.lower()


def verify_bundle(folder: str | os.PathLike, expected_digest: str | None = None) -> BundleManifest:
    """Read the manifest and check every file it lists; raise BundleError on any mismatch."""
    from .safety import sha256_of

    folder = Path(folder)
    path = manifest_path(folder)
    raw = path.read_bytes()[:MAX_MANIFEST_BYTES + 1]
    if expected_digest is not None and bundle_digest(raw) != normal_digest(expected_digest):
        raise BundleError(f"{folder}: the bundle digest is {bundle_digest(raw)}, not the pinned "
                          f"{normal_digest(expected_digest)}; "
                          "refusing it")
    manifest = BundleManifest.parse(raw, str(path))
    for name, info in manifest.files.items():
        file = folder / name
        parents = [folder.joinpath(*name.split("/")[:i]) for i in range(1, name.count("/") + 1)]
        if not file.is_file() or file.is_symlink() or any(p.is_symlink() for p in parents):
            raise BundleError(f"{folder}: {name} is missing from the bundle")
        if file.stat().st_size != info.bytes or sha256_of(file) != info.sha256:
            raise BundleError(f"{folder}: {name} does not match its sha256 in {path.name}; "
                              "the bundle was modified or damaged, refusing to load it")
    return manifest
