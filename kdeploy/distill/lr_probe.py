"""A short learning-rate probe for `kdeploy finetune` when no rate is given: the usual rates for
fine-tuning a pretrained encoder, each tried for one pass over a slice of the training data from
the same starting weights, and the one with the lowest validation loss kept. A rate that is too
low leaves a teacher undertrained, one too high diverges; a minute of probing costs less than
either (a fixed 5e-5 left a pair-task teacher still improving at its last epoch)."""
from __future__ import annotations

import copy
import math

import numpy as np

from ..progress import progress_bar

CANDIDATES = (2e-5, 5e-5, 1e-4)
PROBE_EXAMPLES = 2000  # training examples each rate sees once
PROBE_EVAL = 500  # validation examples it is scored on
# below this, one pass is a handful of steps: the rates' losses differ by noise, not by rate
PROBE_MIN_EXAMPLES = 64


def probe_learning_rate(model, tokenizer, task, cfg, candidates=CANDIDATES) -> tuple[float, dict]:
    """(the rate with the lowest validation loss, {rate: loss, ..., "examples": n, "seconds": s})."""
    import time

    import torch

    started = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    train = rng.permutation(len(task.splits["train"]))[:PROBE_EXAMPLES]
    held = "validation" if "validation" in task.splits else "train"
    evaluate = np.arange(len(task.splits[held]))[:PROBE_EVAL]
    losses = {}
    steps = math.ceil(len(train) / cfg.batch_size) + math.ceil(len(evaluate) / cfg.eval_batch_size)
    with progress_bar("learning-rate probe", steps * len(candidates)) as advance:
        for rate in candidates:
            torch.manual_seed(cfg.seed)
            trial = copy.deepcopy(model)
            _one_pass(trial, tokenizer, task, train, cfg, rate, advance)
            losses[rate] = _loss(trial, tokenizer, task, held, evaluate, cfg, advance)
            del trial
    best = min(candidates, key=lambda r: (losses[r], r))
    return best, {**{f"{r:g}": round(v, 6) for r, v in losses.items()}, "examples": int(len(train)),
                  "seconds": round(time.perf_counter() - started, 1)}


def _batch(tokenizer, task, split, rows, cfg):
    import torch

    from ..modelio.inputs import select_inputs, tokenize

    labels = task.splits[split]["label"]
    if task.kind.word_labels:  # a tag per word, on its first sub-token
        from ..modelio.words import encode_words

        words = task.splits[split]["words"]
        enc, _ = encode_words(tokenizer, [words[i] for i in rows], cfg.max_length, [labels[i] for i in rows],
                              padding=True, return_tensors="pt")
        return select_inputs(enc), torch.as_tensor(enc["labels"])
    texts = task.texts(split)
    enc = tokenize(tokenizer, [texts[i] for i in rows], cfg.max_length, return_tensors="pt")
    return select_inputs(enc), torch.tensor([labels[i] for i in rows])  # the task's loss casts them


def _one_pass(model, tokenizer, task, rows, cfg, rate: float, advance=lambda n=1: None) -> None:
    """AdamW at `rate` after a 10% warm-up, one pass; a diverging rate stops early (its loss says so)."""
    import torch

    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=rate, weight_decay=cfg.weight_decay)
    steps = max(1, math.ceil(len(rows) / cfg.batch_size))
    warm = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / warm))
    for start in range(0, len(rows), cfg.batch_size):
        inputs, labels = _batch(tokenizer, task, "train", rows[start:start + cfg.batch_size], cfg)
        loss = task.kind.hard_loss(model(**inputs).logits, labels)
        advance()
        if not torch.isfinite(loss):
            return
        loss.backward()
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()


def _loss(model, tokenizer, task, split, rows, cfg, advance=lambda n=1: None) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(rows), cfg.eval_batch_size):
            chunk = rows[start:start + cfg.eval_batch_size]
            inputs, labels = _batch(tokenizer, task, split, chunk, cfg)
            total += float(task.kind.hard_loss(model(**inputs).logits, labels)) * len(chunk)
            count += len(chunk)
            advance()
    value = total / max(count, 1)
    return value if math.isfinite(value) else float("inf")
