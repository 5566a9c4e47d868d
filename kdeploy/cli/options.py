"""Options shared by several commands, and the helpers that turn flags into a stage's config.

A flag left out is None: the stage's config supplies its default (shown in --help from the
config itself), so every default is declared once, in `<stage>/config.py`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..configtools import default_of
from ..data.config import DataConfig
from ..errors import KdeployError


def shown(cls: type, dotted: str) -> str:
    """--help's [default: ...] for a flag, read from the config that owns it."""
    value = default_of(cls, dotted)
    return "none" if value is None else ",".join(map(str, value)) if isinstance(value, list) else str(value)


DATA = "Data"


def task_help() -> str:
    from ..tasks import help_text

    return "The task kind: " + help_text() + "."

Train = Annotated[Optional[str], typer.Option("--train", help="Training file (.csv/.tsv/.jsonl/.parquet).", rich_help_panel=DATA)]
Validation = Annotated[Optional[str], typer.Option("--validation", help="Validation file; carved from train (seeded) when absent.", rich_help_panel=DATA)]
Test = Annotated[Optional[str], typer.Option("--test", help="Test file, scored once at the end.", rich_help_panel=DATA)]
Dataset = Annotated[Optional[str], typer.Option("--dataset", help="Hub dataset (imdb, glue/sst2), a save_to_disk folder, or builtin:rotten_tomatoes.", rich_help_panel=DATA)]
DatasetConfig = Annotated[Optional[str], typer.Option("--dataset-config", help="Hub dataset configuration name.", rich_help_panel=DATA)]
TextColumn = Annotated[Optional[str], typer.Option("--text-column", help="Default: text, sentence, review, ...", rich_help_panel=DATA)]
TextPairColumn = Annotated[Optional[str], typer.Option("--text-pair-column", help="The second text of a sentence pair (default: found: sentence1/sentence2, premise/hypothesis, question1/question2, query/passage, ...).", rich_help_panel=DATA)]
TaskKind = Annotated[Optional[str], typer.Option("--task", help=task_help(), show_default=shown(DataConfig, "task"), rich_help_panel=DATA)]
LabelSeparator = Annotated[Optional[str], typer.Option("--label-separator", help="multi-label: what joins a row's label names in one column.", show_default=shown(DataConfig, "label_separator"), rich_help_panel=DATA)]
PairTruncation = Annotated[Optional[str], typer.Option("--pair-truncation", help="Which text of a pair gives up tokens: longest_first, only_first, only_second.", show_default=shown(DataConfig, "pair_truncation"), rich_help_panel=DATA)]
Truncation = Annotated[Optional[str], typer.Option("--truncation", help="Which tokens of a text longer than --max-length are read: head, tail, or head+tail[:N] (N from the start, the rest from the end; default N: a quarter). Recorded in the model and honoured by every bundle format. [default: the model's own, else head]", rich_help_panel=DATA)]
LabelColumn = Annotated[Optional[str], typer.Option("--label-column", help="Default: label, labels, category, ... (multi-label: several 0/1 columns, joined by ',').", rich_help_panel=DATA)]
LabelNames = Annotated[Optional[str], typer.Option("--label-names", help="Names for integer labels, in id order: negative,positive.", rich_help_panel=DATA)]
Encoding = Annotated[Optional[str], typer.Option("--encoding", help="Text encoding of the files: any Python codec (utf-8, latin-1, cp1252, ...).", show_default=shown(DataConfig, "encoding"), rich_help_panel=DATA)]
EncodingErrors = Annotated[Optional[str], typer.Option("--encoding-errors", help="strict: stop at an undecodable byte; replace: use U+FFFD and count them.", show_default=shown(DataConfig, "encoding_errors"), rich_help_panel=DATA)]
MaxTrain = Annotated[Optional[int], typer.Option("--max-train-samples", help="Use a seeded sample of the training data.", rich_help_panel=DATA)]
MaxEval = Annotated[Optional[int], typer.Option("--max-eval-samples", help="Use a seeded sample of validation/test.", rich_help_panel=DATA)]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder (written atomically; an existing one only if kdeploy wrote it).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out even if kdeploy did not write it.")]
TrustRemote = Annotated[bool, typer.Option("--trust-remote-code", help="Allow model code from the hub (off by default).")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.", rich_help_panel="Training")]


def data_config(**flags):
    """The data flags (`data_options`) as a DataConfig; a flag left out takes DataConfig's default."""
    from ..configtools import settings_from
    from ..data import DataConfig

    if "label_names" in flags:
        flags["label_names"] = names(flags["label_names"])
    return settings_from(DataConfig, flags)


#: The data options, declared once; `data_options` adds them to a command.
DATA_OPTIONS = {"train": Train, "validation": Validation, "test": Test, "dataset": Dataset,
                "dataset_config": DatasetConfig, "text_column": TextColumn, "text_pair_column": TextPairColumn,
                "task": TaskKind, "label_separator": LabelSeparator, "pair_truncation": PairTruncation, "truncation": Truncation,
                "label_column": LabelColumn, "label_names": LabelNames, "encoding": Encoding,
                "encoding_errors": EncodingErrors, "max_train_samples": MaxTrain, "max_eval_samples": MaxEval}


def data_options(omit: tuple[str, ...] = ()):
    """Give a command the data options (all of DATA_OPTIONS but `omit`) without listing them:
    Typer sees them in the command's signature, and the command receives their values as one
    `data_flags` dict (for `data_config` / `eval_data`)."""
    import functools
    import inspect

    unknown = set(omit) - set(DATA_OPTIONS)
    if unknown:
        raise ValueError(f"not data options: {sorted(unknown)}")
    added = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=a)
             for n, a in DATA_OPTIONS.items() if n not in omit]

    def decorate(command):
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "data_flags"]

        @functools.wraps(command)
        def wrapper(**kwargs):
            flags = {p.name: kwargs.pop(p.name) for p in added if p.name in kwargs}
            return command(**kwargs, data_flags=flags)

        wrapper.__signature__ = signature.replace(parameters=own + added)
        wrapper.__annotations__ = {p.name: p.annotation for p in own + added}
        return wrapper

    return decorate


def eval_data(data_file=None, train=None, validation=None, test=None, **kwargs):
    """Data for a stage that scores (export, bench): `--data FILE` is an evaluation file, never split."""
    if data_file and (train or test or validation):
        raise KdeployError("give --data FILE, or --train/--validation/--test, not both")
    if not (data_file or train or validation or test or kwargs.get("dataset")):
        return None
    return data_config(train=train, validation=validation, test=test or data_file, **kwargs)


def names(text: str | None) -> list[str] | None:
    """A flag's comma-separated names (label names, formats, families): the CLI splits them, so
    that a config's list of texts is never split (a recipe's sample text may hold commas)."""
    if not isinstance(text, str):
        return text
    return [x.strip() for x in text.split(",") if x.strip()]


def floats(text: str | None, flag: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise KdeployError(f"{flag} {text!r}: give comma-separated numbers, e.g. 0.6,0.4") from None


def ints(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise KdeployError(f"{flag} {text!r}: give comma-separated whole numbers, e.g. 1,32") from None
