"""What `bench --baselines` checks before any model is loaded, and how it makes the baseline
candidates. Each check is here because its failure used to surface late (after seconds of
loading, as a traceback) or not at all (a baseline trained on the scored file reports 100%):
a missing train split, an encoder that names nothing, a reference with no encoder to distil
(an ONNX export holds no weights), and a train or validation file that is the scored file."""
from __future__ import annotations

import filecmp
import os
import re
from pathlib import Path

from ..errors import KdeployError
from ..names import EXPORT_REPORT, MODEL_CONFIG

PIP = {"sklearn": "scikit-learn", "fasttext": "fasttext-numpy2", "model2vec": "'model2vec[distill]'", "torch": "torch"}
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
ENCODER_FIX = "give --baseline-encoder FOLDER (a transformer encoder with its weights) or a hub model id"
OVERLAP = 0.5  # this share of the scored texts in the train split: the baselines would be scored on what they learnt


def check_before_work(settings, data, reference_path: Path) -> str | None:
    """Refuse what would fail (or lie) later; returns the encoder model2vec distils (None when
    model2vec is not asked for or not installed)."""
    from .baselines import missing

    if settings.baseline_encoder and "model2vec" not in settings.baselines:
        raise KdeployError("--baseline-encoder is the encoder model2vec distils; add model2vec to --baselines "
                           "or drop --baseline-encoder")
    if not settings.baselines:
        return None
    if data is None or not data.has_train:
        raise KdeployError("--baselines are trained on the students' own train split: give --train (and "
                           "--validation) beside --data")
    check_separate_files(data, settings.split)
    if "model2vec" not in settings.baselines or missing("model2vec"):
        return None
    if settings.baseline_encoder:
        return check_encoder(settings.baseline_encoder)
    encoder = encoder_of(reference_path)
    if encoder is None:
        raise KdeployError(f"model2vec (baseline): the reference {reference_path} has no encoder weights to distil "
                           "(an ONNX file or export folder holds none, and no model it came from was found); "
                           + ENCODER_FIX)
    return encoder


# --- the scored texts must not be the baselines' training texts ----------------------------

def check_separate_files(data, split: str) -> None:
    """--train (or --validation, which picks the baselines' settings) that is the scored file,
    by path or by content, is refused: a baseline would be scored on what it learnt."""
    scored_name = "validation" if (split == "validation" and data.validation) or not data.test else "test"
    scored = getattr(data, scored_name)
    given = [("--train", data.train)] + ([("--validation", data.validation)] if scored_name == "test" else [])
    for flag, path in given:
        if path and scored and _same_file(path, scored):
            trained = flag == "--train"
            raise KdeployError(f"{flag} {path} is the file the models are scored on ({scored}): baselines "
                               f"{'trained' if trained else 'tuned'} on it would be scored on their own "
                               f"{'training' if trained else 'validation'} texts; give the train (and validation) "
                               "split the student learnt from, kept apart from the scored file")


def _same_file(a: str, b: str) -> bool:
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    if not (pa.is_file() and pb.is_file()):
        return False
    if pa.resolve() == pb.resolve():
        return True
    return pa.stat().st_size == pb.stat().st_size and filecmp.cmp(pa, pb, shallow=False)


def check_overlap(task, scored_split: str) -> None:
    """The same check on the texts themselves (a copy reformatted, a hub dataset's splits)."""
    from .baselines import as_text

    learning = [s for s in ("train", "validation") if s in task.splits and s != scored_split]
    learnt = {as_text(t) for s in learning for t in task.texts(s)}
    scored = [as_text(t) for t in task.texts(scored_split)]
    shared = sum(t in learnt for t in scored)
    if scored and shared / len(scored) >= OVERLAP:
        raise KdeployError(f"{shared:,} of the {len(scored):,} scored texts ({scored_split} split) are also in the "
                           f"{' and '.join(learning)} split{'s' if len(learning) > 1 else ''} the baselines learn "
                           "from: they would be scored on what they learnt; give a train split kept apart from the "
                           "scored one")


# --- the encoder model2vec distils -------------------------------------------------------

def usable_encoder(folder: str | Path) -> bool:
    """A transformer model folder with its weights (not an export's config-only folder, not
    one of kdeploy's own BiLSTM/CNN/static students)."""
    from ..modelio.record import read_config

    folder = Path(folder)
    if not (folder.is_dir() and (folder / MODEL_CONFIG).is_file() and any((folder / w).is_file() for w in WEIGHTS)):
        return False
    try:
        return not str(read_config(folder).get("model_type", "")).startswith("kdeploy-")
    except KdeployError:
        return False


def encoder_of(path: Path) -> str | None:
    """The encoder a reference started from: its training record's base model, else itself;
    for an ONNX file or export folder, the same of the model it was exported from."""
    from ..assets import resolve_model
    from ..modelio.record import ModelRecord

    folder = path if path.is_dir() else path.parent
    options: list[str | Path] = []
    for f in filter(None, (folder, exported_from(folder))):
        base = ModelRecord.of(f).base_model
        if base:
            try:
                options.append(resolve_model(base))
            except KdeployError:
                pass
        options.append(f)
    return next((str(o) for o in options if usable_encoder(o)), None)


def exported_from(folder: Path) -> Path | None:
    """The model folder an export folder was made from (its export report says), if still there."""
    import json

    try:  # read as JSON, not through kdeploy.export (the bench does not reach into another stage)
        model = json.loads((folder / EXPORT_REPORT).read_text(encoding="utf-8")).get("model")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(model) if isinstance(model, str) and model and Path(model).is_dir() else None


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def check_encoder(name: str) -> str:
    """--baseline-encoder, checked before any work: a usable local folder, or a hub id that is
    cached here or (online) exists. Returns what model2vec is given."""
    from ..assets import resolve_model

    path = Path(resolve_model(name)).expanduser()
    if path.exists():
        if usable_encoder(path):
            return str(path)
        raise KdeployError(f"--baseline-encoder {name}: {_why_not(path)}; {ENCODER_FIX}")
    if not _HUB_ID.match(name) or name.startswith((".", "~")):
        raise KdeployError(f"--baseline-encoder {name}: no such folder; {ENCODER_FIX}")
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, MODEL_CONFIG), str):
        return name
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1":
        raise KdeployError(f"--baseline-encoder {name}: not a local folder, and the hub is off (HF_HUB_OFFLINE=1) "
                           f"with no cached copy; {ENCODER_FIX}")
    from huggingface_hub import repo_exists

    try:
        found = repo_exists(name)
    except Exception as exc:  # noqa: BLE001 - any network or hub error, said in one line
        raise KdeployError(f"--baseline-encoder {name}: not a local folder, and the hub could not be asked "
                           f"({type(exc).__name__}); {ENCODER_FIX}") from None
    if not found:
        raise KdeployError(f"--baseline-encoder {name}: not a local folder nor a hub model id; {ENCODER_FIX}")
    return name


def _why_not(path: Path) -> str:
    if not path.is_dir():
        return "not a folder"
    if not (path / MODEL_CONFIG).is_file():
        return "no config.json in it"
    if not any((path / w).is_file() for w in WEIGHTS):
        return ("no weights in it (an export folder holds ONNX files only: give the model it was exported from)"
                if any(path.glob("*.onnx")) else "no weights file (model.safetensors) in it")
    return "one of kdeploy's own students, with no transformer encoder to distil"


# --- the candidates -------------------------------------------------------------------------

def make_baselines(settings, task, ref, encoder: str | None, threads: int, work: Path, skipped: list[str],
                   exports: Path | None = None) -> list:
    """The cheap baselines, trained on the task's own train split (labels in the reference's order)."""
    from ..modelio.record import label_names_in
    from .baselines import FitContext, baseline_candidate, missing

    if task is None or "train" not in task.splits:
        raise KdeployError("--baselines are trained on the students' own train split: give --train (and "
                           "--validation) beside --data")
    for name in settings.baselines:  # a baseline the task kind has none of, before any is trained
        task.kind.refuse("baseline", name, task.kind.baselines)
    aligned = task.aligned_to(label_names_in(ref.path if ref.path.is_dir() else ref.path.parent), "model")
    check_overlap(aligned, settings.split if settings.split in aligned.splits else aligned.eval_split)
    choice = "validation" if "validation" in aligned.splits else "train"
    out = []
    for name in settings.baselines:
        absent = missing(name)
        if absent:
            skipped.append(f"{name} (baseline): skipped, {absent} is not installed (pip install {PIP[absent]})")
            continue
        out.append(baseline_candidate(name, aligned, choice, FitContext(work / f"baseline-{name}", settings.seed,
                                                                        threads, encoder),
                                      exports / name if exports is not None else None))
    return out
