"""An entity-tagging task's data: sentences as words with one tag per word, read from

- CoNLL column files (`word … tag` per line, whitespace-separated, the tag last; a blank line
  between sentences; `-DOCSTART-` lines skipped), any extension but .jsonl/.json;
- JSON Lines (`{"tokens": [...], "tags": [...]}`; `words` for tokens; `ner_tags` as ids with
  `--label-names`);
- a hub dataset or `save_to_disk` folder with `tokens` and `ner_tags` (its ClassLabel names).

Tags are made BIO2 as they are read (IOB1's and invalid sequences' `I-X` after `O` or another
type becomes `B-X`), and the count is said per split, never silently. The result is `TaskData`
whose splits hold `text` (the words joined by spaces: what a served model reads), `words` and
`label` (tag ids per word).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..console import note
from ..errors import KdeployError
from ..tasks.tokens import OUTSIDE, tag_names, to_bio2
from .config import DataConfig
from .files import file_kind, read_text, read_text_lines
from .task import TaskData, fingerprint_of

WORD_KEYS = ("tokens", "words")
TAG_KEYS = ("tags", "ner_tags", "labels", "label")
JSON_KINDS = (".jsonl", ".json", ".ndjson")
CONLL_HINT = "give CoNLL columns (word … tag, a blank line between sentences) or JSON Lines of tokens/tags"


def _conll(path: Path, cfg: DataConfig) -> tuple[list[list[str]], list[list]]:
    words, tags, sentence, sentence_tags = [], [], [], []
    for n, line in enumerate(read_text_lines(path, cfg.encoding, cfg.encoding_errors), 1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if sentence:
                words.append(sentence), tags.append(sentence_tags)
            sentence, sentence_tags = [], []
            continue
        if len(fields) < 2:
            raise KdeployError(f"{path}:{n}: {line.strip()!r} has one column; {CONLL_HINT}")
        sentence.append(fields[0]), sentence_tags.append(fields[-1])
    if sentence:
        words.append(sentence), tags.append(sentence_tags)
    return words, tags


def _json_lines(path: Path, cfg: DataConfig) -> tuple[list[list[str]], list[list]]:
    text = read_text(path, cfg.encoding, cfg.encoding_errors)
    lines = [line for line in text.split("\n") if line.strip()]
    if file_kind(path) == ".json" and text.lstrip().startswith("["):
        rows = json.loads(text)
    else:
        rows = []
        for n, line in enumerate(lines, 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise KdeployError(f"{path}:{n}: not JSON ({exc.msg}); {CONLL_HINT}") from None
    words, tags = [], []
    for n, row in enumerate(rows, 1):
        w = next((row[k] for k in WORD_KEYS if isinstance(row, dict) and k in row), None)
        t = next((row[k] for k in TAG_KEYS if isinstance(row, dict) and k in row), None)
        if not isinstance(w, list) or not isinstance(t, list):
            raise KdeployError(f"{path}: row {n} lacks a list of words ({'/'.join(WORD_KEYS)}) and a list of tags "
                               f"({'/'.join(TAG_KEYS)})")
        words.append([str(x) for x in w]), tags.append(t)
    return words, tags


def _hub(cfg: DataConfig) -> tuple[dict, dict, list[str] | None]:
    from .hub import load_dataset_source

    raw, sources = load_dataset_source(cfg)
    out, names = {}, None
    for split, (columns, where, label_feature) in raw.items():
        names = names or (label_feature[1] if label_feature else None)
        w = next((k for k in WORD_KEYS if k in columns), None)
        t = next((k for k in TAG_KEYS if k in columns), None)
        if w is None or t is None:
            raise KdeployError(f"{where}: no word and tag columns ({'/'.join(WORD_KEYS)}, {'/'.join(TAG_KEYS)}) among "
                               f"{', '.join(columns)}")
        out[split] = ([list(map(str, x)) for x in columns[w]], [list(x) for x in columns[t]], where)
    return out, sources, names


def _named(tags: list[list], names: list[str] | None, where: str) -> list[list[str]]:
    """Tag ids as names (`--label-names`); names as they are; anything else (null, NaN, a list) refused."""
    for n, row in enumerate(tags, 1):
        bad = [t for t in row if isinstance(t, bool) or not isinstance(t, (str, int)) or (isinstance(t, str)
                                                                                         and not t.strip())]
        if bad:
            bad = bad[0]
            raise KdeployError(f"{where}: sentence {n} has tag {bad!r}; a tag is a name (B-PER, O) or an id")
    if not any(tags) or not isinstance(next(t for t in tags if t)[0], int):
        return [[str(x) for x in t] for t in tags]
    if not names:
        raise KdeployError(f"{where}: the tags are ids (0, 1, …); name them in id order with --label-names "
                           "(CoNLL-2003's: O,B-PER,I-PER,B-ORG,I-ORG,B-LOC,I-LOC,B-MISC,I-MISC)")
    try:
        return [[names[x] for x in t] for t in tags]
    except IndexError:
        raise KdeployError(f"{where}: a tag id is past the {len(names)} --label-names given") from None


def _read(cfg: DataConfig) -> tuple[dict, dict, list[str] | None]:
    """({split: (words, tags, where)}, sources, the dataset's own tag names)."""
    if cfg.dataset:
        parsed, sources, hub_names = _hub(cfg)
        return parsed, sources, hub_names
    raw, sources = {}, {}
    for split in ("train", "validation", "test"):
        path = getattr(cfg, split)
        if path:
            path = Path(path)
            reader = _json_lines if file_kind(path) in JSON_KINDS else _conll
            w, t = reader(path, cfg)
            raw[split], sources[split] = (w, t, str(path)), str(path)
    return raw, sources, None


def _blank(word: str) -> bool:
    """A word no tokenizer reads: empty, whitespace, or only control/format characters (zero-width
    spaces, BOMs), which BERT's normaliser deletes. It would have no sub-token to carry its tag."""
    import unicodedata

    return all(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in word)


def _bio2(words: list, tags: list, names: list[str] | None, where: str) -> tuple[list, list]:
    """The split's sentences with BIO2 tags; blank words and then empty sentences dropped. Each
    change is counted and said, never silent."""
    tags = _named(tags, names, where)
    kept_words, fixed, changed, blank, blank_tagged = [], [], 0, 0, 0
    for n, (w, t) in enumerate(zip(words, tags), 1):
        if len(w) != len(t):
            raise KdeployError(f"{where}: sentence {n} has {len(w)} words but {len(t)} tags")
        keep = [i for i, x in enumerate(w) if not _blank(x)]
        blank += len(w) - len(keep)
        blank_tagged += sum(t[i] != OUTSIDE for i in set(range(len(w))) - set(keep))
        bio, c = to_bio2([t[i] for i in keep])  # after the drop: an entity's remaining words stay one entity
        kept_words.append([w[i] for i in keep]), fixed.append(bio)
        changed += c
    if changed:
        note(f"{where}: {changed:,} tags made BIO2 (an I-X after O or another type became B-X: IOB1's "
             "convention, or an invalid sequence repaired; BIOES/BILOU's S-/U- read as B-, E-/L- as I-)")
    if blank:
        note(f"{where}: {blank:,} blank words dropped (empty, whitespace or invisible characters: no tokenizer "
             f"reads them){f'; {blank_tagged:,} of them were tagged as part of an entity' if blank_tagged else ''}")
    empty = sum(not w for w in kept_words)
    if empty:
        note(f"{where}: {empty:,} empty sentences skipped (no words{' left' if blank else ''})")
    keep = [i for i, w in enumerate(kept_words) if w]
    return [kept_words[i] for i in keep], [fixed[i] for i in keep]


def _tag_set(out: dict, given: list[str] | None) -> list[str]:
    seen = {t for _, tags in out.values() for s in tags for t in s}
    names = list(given) if given else tag_names(seen)
    missing = sorted(seen - set(names))
    if missing:
        raise KdeployError(f"tags {', '.join(missing[:5])} are not among the model's or --label-names' tags "
                           f"({', '.join(names)})")
    if "train" in out:
        unseen = sorted({t for s in ("validation", "test") if s in out for x in out[s][1] for t in x}
                        - {t for x in out["train"][1] for t in x} - {OUTSIDE})
        if unseen:
            note(f"tags {', '.join(unseen)} occur in evaluation but never in train: no model can learn them here")
    return names


def _carve(out: dict, cfg: DataConfig) -> None:
    """A seeded validation split from train when none is given (said)."""
    if "train" not in out or "validation" in out:
        return
    import random

    order = list(range(len(out["train"][0])))
    random.Random(cfg.split_seed).shuffle(order)
    cut = max(1, int(len(order) * cfg.validation_fraction))
    words, tags = out["train"]
    if len(words) < 2:
        raise KdeployError(f"{len(words)} training sentence: too few to set a validation split aside; give more, or "
                           "--validation FILE")
    out["validation"] = ([words[i] for i in order[:cut]], [tags[i] for i in order[:cut]])
    out["train"] = ([words[i] for i in order[cut:]], [tags[i] for i in order[cut:]])
    note(f"no validation split: {cut:,} training sentences set aside for it (seed {cfg.split_seed})")


def load_token_data(cfg: DataConfig, label_names: list[str] | None = None) -> TaskData:
    """Every split read, tags made BIO2 (said), a validation split carved from train when none is
    given; `label_names` (a model's tag set) fixes the id order, else O then B/I per type."""
    import hashlib

    import datasets

    raw, sources, hub_names = _read(cfg)
    if not raw:
        raise KdeployError("no data: give --train FILE (and --validation/--test) or --dataset NAME")
    out = {split: _bio2(words, tags, cfg.label_names or hub_names, where) for split, (words, tags, where) in raw.items()}
    for split, (words, _) in out.items():
        if not words:
            raise KdeployError(f"{raw[split][2]}: no sentences (words with tags); {CONLL_HINT}")
    names = _tag_set(out, label_names or cfg.label_names)
    _carve(out, cfg)
    index = {n: i for i, n in enumerate(names)}
    features = datasets.Features({"text": datasets.Value("string"), "words": datasets.Sequence(datasets.Value("string")),
                                  "label": datasets.Sequence(datasets.Value("int64"))})
    splits, h = {}, hashlib.sha256("\x1f".join(names).encode())
    for split, (words, tags) in out.items():
        limit = cfg.max_train_samples if split == "train" else cfg.max_eval_samples
        if limit and len(words) > limit:  # a seeded sample, in file order
            import random

            keep = sorted(random.Random(cfg.split_seed).sample(range(len(words)), limit))
            words, tags = [words[i] for i in keep], [tags[i] for i in keep]
        ids = [[index[t] for t in s] for s in tags]
        splits[split] = datasets.Dataset.from_dict({"text": [" ".join(w) for w in words], "words": words,
                                                    "label": ids}, features=features)
        h.update(f"{split}\x1e{fingerprint_of([' '.join(w) for w in words], ids, names)}".encode())
    return TaskData(splits=datasets.DatasetDict(splits), label_names=names, fingerprint=h.hexdigest()[:16],
                    sources=sources, task="token-classification")
