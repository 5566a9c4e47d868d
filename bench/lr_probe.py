"""What `kdeploy finetune`'s learning-rate probe chooses for all-MiniLM-L6-v2 on SST-2 and on SICK
entailment (pairs), and what it costs: the same steps finetune takes before training (data, the
window, the truncation), then the probe alone. Where it chooses 5e-5, the teacher it trains is
the 5e-5 teacher of bench/results/finetune_early_stopping.md (same seed and settings).

    python bench/lr_probe.py [--tasks sst2,sick]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data"
TASKS = {
    "sst2": dict(train=DATA / "sst2/train.tsv", validation=DATA / "sst2/dev.tsv", test=DATA / "sst2/test.tsv",
                 label_names=["negative", "positive"]),
    "sick": dict(train=DATA / "sick/train.tsv", validation=DATA / "sick/dev.tsv", test=DATA / "sick/test.tsv",
                 label_column="label"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="sst2,sick")
    args = ap.parse_args()
    from kdeploy.configtools import settings_from
    from kdeploy.data import DataConfig, load_task_data
    from kdeploy.distill.api import _base_model, _window, read_as
    from kdeploy.distill.config import FinetuneSettings
    from kdeploy.distill.lr_probe import probe_learning_rate

    rows = []
    for name in args.tasks.split(","):
        spec = {k: str(v) if isinstance(v, Path) else v for k, v in TASKS[name].items()}
        task = load_task_data(DataConfig(**spec))
        settings = settings_from(FinetuneSettings, {})  # the CLI's default: no rate given
        model = "builtin:all-MiniLM-L6-v2"
        built, tok, _ = _base_model(settings, model, None, task)
        settings, task = _window(settings, task, tok, built.config.to_dict())
        task = read_as(task, tok, model, settings.train.max_length)
        rate, measured = probe_learning_rate(built, tok, task, settings.train)
        rows.append({"task": name, "chosen": rate, **measured})
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
