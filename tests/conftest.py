"""Fixtures: tiny BERT models built from config, and small datasets written to tmp files.

Everything here runs offline in seconds; real-model tests are marked `real`.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers on a 2-core machine: one thread each, or torch's pools fight over the cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

POSITIVE = ["good", "great", "fine", "lovely", "superb", "moving", "funny", "smart"]
NEGATIVE = ["bad", "awful", "dull", "boring", "weak", "messy", "tedious", "flat"]
FILLER = ["the", "film", "movie", "plot", "was", "a", "very", "and", "it", "story", "acting", "quite"]


PEOPLE = ["alice", "bob", "carol", "dave", "erin"]
PLACES = ["paris", "rome", "oslo", "lima", "quito"]
NER_FILLER = ["the", "a", "and", "was", "very", "it", "quite", "story"]
NER_TAGS = ("O", "B-LOC", "I-LOC", "B-PER", "I-PER")


def _sentence(rng: random.Random) -> tuple[list[str], list[str]]:
    words, tags = [], []
    for _ in range(rng.randint(1, 3)):
        words += rng.sample(NER_FILLER, rng.randint(1, 3))
        tags += ["O"] * (len(words) - len(tags))
        if rng.random() < 0.5:
            n = rng.randint(1, 2)
            words += rng.sample(PEOPLE, n)
            tags += ["B-PER"] + ["I-PER"] * (n - 1)
        else:
            words.append(rng.choice(PLACES))
            tags.append("B-LOC")
    if rng.random() < 0.5:
        words, tags = words + [rng.choice(".,!")], tags + ["O"]
    return words, tags


def write_ner(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(json.dumps(dict(zip(("tokens", "tags"), _sentence(rng)))) + "\n" for _ in range(n)))
    return path


def build_tiny_tagger(folder: Path) -> Path:
    """A 2-layer, 32-wide BERT token classifier with CoNLL-style tags, saved as a model folder (random weights)."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    tok = build_tokenizer(folder, continuation=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=len(NER_TAGS),
                        id2label=dict(enumerate(NER_TAGS)), label2id={n: i for i, n in enumerate(NER_TAGS)},
                        problem_type="token_classification")
    BertForTokenClassification(config).save_pretrained(folder)
    return folder


def make_sentences(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """A learnable toy sentiment task: the label is which word list dominates."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        words = rng.sample(FILLER, rng.randint(2, 8))
        cue = POSITIVE if label == "positive" else NEGATIVE
        for _ in range(rng.randint(1, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(cue))
        rows.append((" ".join(words), label))
    return rows


def write_tsv(path: Path, rows, header=("sentence", "label")) -> Path:
    path.write_text("\t".join(header) + "\n" + "".join(f"{t}\t{l}\n" for t, l in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def toy_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("toy")
    return {
        "train": write_tsv(d / "train.tsv", make_sentences(160, 1)),
        "validation": write_tsv(d / "dev.tsv", make_sentences(40, 2)),
        "test": write_tsv(d / "test.tsv", make_sentences(40, 3)),
    }


def build_tokenizer(folder: Path, continuation: bool = False):
    """`continuation`: also "##a".."##z", as real BERT vocabularies have (every word spells out)."""
    from transformers import BertTokenizerFast

    words = sorted(set(POSITIVE + NEGATIVE + FILLER) | set("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    if continuation:
        vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(folder)
    return tok


def build_tiny_bert(folder: Path, num_labels: int = 2, layers: int = 4, label_names=("negative", "positive"), seed=0,
                    continuation: bool = False):
    """A 4-layer, 32-wide BERT classifier saved as a model folder (weights are random)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tok = build_tokenizer(folder, continuation)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=num_labels,
                        id2label=dict(enumerate(label_names)) if label_names else None,
                        label2id={n: i for i, n in enumerate(label_names)} if label_names else None)
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    return folder


def make_scored_pairs(n: int, seed: int) -> list[tuple[str, str, float]]:
    """Toy scored pairs: two sentences of the same sentiment are similar (4-5), others not (0-1)."""
    rng = random.Random(seed)

    def sentence(cue):
        words = rng.sample(FILLER, rng.randint(2, 6))
        words.insert(rng.randrange(len(words) + 1), rng.choice(cue))
        return " ".join(words)
    rows = []
    for i in range(n):
        a_cue = POSITIVE if rng.random() < 0.5 else NEGATIVE
        same = rng.random() < 0.5
        b_cue = a_cue if same else (NEGATIVE if a_cue is POSITIVE else POSITIVE)
        rows.append((sentence(a_cue), sentence(b_cue), round((4.0 if same else 0.0) + rng.random(), 2)))
    return rows


def write_scored_pairs(path: Path, rows) -> Path:
    path.write_text("sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in rows))
    return path


def build_tiny_embedder(folder: Path) -> Path:
    """A 4-layer, 32-wide BERT as a sentence-transformers folder: mean pooling, then Normalize."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel

    base = folder.parent / f"{folder.name}-encoder"
    tok = build_tokenizer(base, continuation=True)  # every word spells out, as in a real vocabulary (the e2e gate)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(base)
    encoder = Transformer(str(base), max_seq_length=64)
    SentenceTransformer(modules=[encoder, Pooling(32, "mean"), Normalize()], device="cpu").save(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_base_bert(tmp_path_factory) -> Path:
    """A 'pretrained encoder' without task labels, for finetune."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_base"), label_names=None)


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("KDEPLOY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def sst2_dir() -> Path:
    if not (SHARED_DATA / "sst2" / "train.tsv").exists():
        pytest.skip(f"{SHARED_DATA / 'sst2'} is absent")
    return SHARED_DATA / "sst2"


@pytest.fixture(scope="session")
def exported_tiny(tmp_path_factory, tiny_bert, toy_files) -> Path:
    """The tiny BERT exported with int8 (accuracy gate opened wide: its weights are random)."""
    from kdeploy.data import DataConfig
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings

    out = tmp_path_factory.mktemp("exported") / "onnx"
    export(ExportSettings(optimize=None, quantize="int8", max_accuracy_drop=100), model=tiny_bert, out=out,
           data=DataConfig(train=str(toy_files["train"]), test=str(toy_files["test"])))
    return out


def data_of(files, **kwargs):
    """The toy task's three files as a DataConfig."""
    from kdeploy.data import DataConfig

    return DataConfig(train=str(files["train"]), validation=str(files["validation"]), test=str(files["test"]), **kwargs)


#: a training setup that learns the toy task in seconds
FAST = dict(epochs=3, learning_rate=3e-3, warmup_ratio=0.0, batch_size=16, max_length=32)


def distill_settings(**kwargs):
    """DistillSettings with FAST training, no augmentation and a 2-layer student unless asked
    (the depth probe has its own tests); `train=` overrides single training settings."""
    from kdeploy.configtools import settings_from
    from kdeploy.distill.config import DistillSettings

    train = {**FAST, **kwargs.pop("train", {})}
    return settings_from(DistillSettings, {"train": train, "augment": 0, "student": {"layers": 2}, **kwargs})


def finetune_settings(**kwargs):
    from kdeploy.configtools import settings_from
    from kdeploy.distill.config import FinetuneSettings

    train = {**FAST, **kwargs.pop("train", {})}
    return settings_from(FinetuneSettings, {"train": train, **kwargs})


# --- kdeploy used the way a hurried or hostile user would -----------------------------------
# Every refusal is one CLI call that must end with exit 2 and one `error:` line (no traceback),
# write nothing outside its target, leave no half-written output that looks complete, and leave
# the user's files untouched.


def cli(*args, cwd: Path | None = None, stdin: bytes | None = None, capfd=None) -> tuple[int, str, str]:
    """The real entry point in a process of its own: exit code, stdout, stderr (a fork of a
    preloaded interpreter where it can be: `forkserver.py`)."""
    from forkserver import SERVER_INSTANCE

    env = {**os.environ, "KDEPLOY_CACHE": os.environ.get("KDEPLOY_CACHE", "/tmp/kdeploy-test-cache")}
    if SERVER_INSTANCE.usable(env):
        code, out, err = SERVER_INSTANCE.run([os.fsdecode(a) for a in args], cwd, stdin, env, 300)
        return code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    result = subprocess.run([sys.executable, "-m", "kdeploy", *map(os.fsdecode, args)], capture_output=True,
                            cwd=cwd, input=stdin, env=env, timeout=300)
    return result.returncode, result.stdout.decode("utf-8", "replace"), result.stderr.decode("utf-8", "replace")


def tree(folder: Path) -> dict[str, str]:
    """Every file below `folder` with its content hash: to show nothing changed."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_error_line(code: int, err: str, message: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert lines and lines[-1].startswith("error: "), err
    assert message in lines[-1], f"{message!r} not in {lines[-1]!r}"


def assert_no_leftovers(out: Path) -> None:
    siblings = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert not siblings, siblings


def refused_cleanly(args: list[str], fill: dict, watched: list[Path], tmp_path: Path, message: str) -> None:
    """One table row: exit 2 with one `error:` line, no `--out` and no temporary siblings, and
    every watched folder (the user's models, bundles and data) byte-identical."""
    before = [tree(folder) for folder in watched]
    code, out, err = cli(*[a.format(**fill) for a in args], cwd=tmp_path)
    assert_one_error_line(code, err, message)
    assert not (tmp_path / "o").exists()
    assert_no_leftovers(tmp_path / "o")
    assert before == [tree(folder) for folder in watched]  # the user's files, untouched


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, exported_tiny) -> Path:
    """A bundle of the int8 export (folder `B`, archive `B.tar.gz` beside it). Tests only read it."""
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    out = tmp_path_factory.mktemp("hostile-bundle") / "B"
    package(PackageSettings(), export_dir=exported_tiny, out=out)
    return out


def _record(folder: Path, pairs: bool) -> Path:
    data = {"label_names": ["negative", "positive"], **({"pairs": True} if pairs else {})}
    (folder / "kdeploy.json").write_text(json.dumps({"stage": "finetune", "data": data}))
    return folder


@pytest.fixture(scope="session")
def hostile_world(tmp_path_factory, tiny_bert, toy_files) -> dict[str, Path]:
    """Models, bundles and files a hostile user brings (issue 22), as placeholders for the CLI
    refusal tables: {MR}/{MRP} the tiny teacher with a kdeploy record saying it reads one text /
    pairs, {pairs} pair data labelled like the one-text task, {BP} a pair bundle, {empty} a
    training file whose texts are all blank, {fifo} a named pipe, {badjsonl} a JSON Lines file
    with one bad line (line 58), {nohead} a TSV with no header line, {ids} labels as ids 0..1."""
    from kdeploy.data import DataConfig
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    d = tmp_path_factory.mktemp("hostile-world")
    world = {"MR": _record(Path(shutil.copytree(tiny_bert, d / "MR")), pairs=False),
             "MRP": _record(Path(shutil.copytree(tiny_bert, d / "MRP")), pairs=True)}
    rows = make_sentences(80, 7)
    world["pairs"] = d / "pairs.tsv"
    world["pairs"].write_text("sentence1\tsentence2\tlabel\n" + "".join(
        f"{rows[i][0]}\t{rows[i + 40][0]}\t{rows[i][1]}\n" for i in range(40)))
    export(ExportSettings(optimize=None, quantize="int8", max_accuracy_drop=100), model=world["MRP"],
           out=d / "XP", data=DataConfig(test=str(world["pairs"])))
    world["BP"] = d / "BP"
    package(PackageSettings(), export_dir=d / "XP", out=world["BP"])
    world["empty"] = write_tsv(d / "empty.tsv", [(" ", "positive" if i % 2 else "negative") for i in range(60)])
    world["fifo"] = d / "fifo.tsv"
    os.mkfifo(world["fifo"])
    lines = [json.dumps({"text": t, "label": label}) for t, label in make_sentences(100, 8)]
    lines[57] = '{"text": "oops, "label": 1}'
    world["badjsonl"] = d / "bad.jsonl"
    world["badjsonl"].write_text("\n".join(lines) + "\n")
    world["nohead"] = d / "nohead.tsv"
    world["nohead"].write_text("".join(f"{i}\t{t}\t{label}\n" for i, (t, label) in enumerate(make_sentences(60, 9))))
    world["ids"] = write_tsv(d / "ids.tsv", [(t, str(int(label == "positive"))) for t, label in make_sentences(60, 10)])
    return world
