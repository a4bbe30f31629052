"""Downstream evaluation tasks scored on a trained proxy: jsonl items by log-likelihood, or a user function.

A task is a plain dict (``mixopt.config.EvalTask.model_dump()``), one of:

- ``{"name": "qa", "path": "items.jsonl", "kind": "multiple_choice"}``: each line is
  ``{"prompt": str, "choices": [str, ...], "answer": int}``. Every choice is scored by the proxy's
  log-likelihood of the choice's tokens after the prompt's (``<|endoftext|>`` first, as at a document
  start in the shards). Metrics: ``accuracy`` (the answer has the highest summed log-likelihood),
  ``accuracy_norm`` (highest log-likelihood per token) and ``norm_nll`` (the answer's negative
  log-likelihood per token, nats);
- ``{"name": "qa", "path": "items.jsonl", "kind": "completion"}``: each line is
  ``{"prompt": str, "completion": str}``. Metrics: ``norm_nll`` (of the completion, nats per token) and
  ``accuracy`` (the share of items whose completion is the proxy's greedy continuation, token for token);
- ``{"name": "mine", "entry": "package.module:function"}``: ``function(model, tokenizer) -> {metric:
  value}`` with the proxy (``torch.nn.Module`` in eval mode; ``model(ids_BT).logits_BTV``) and the
  ``tokenizers.Tokenizer`` of the shards; the module is imported when the task runs.

:func:`run_evals` returns ``{"eval/<task>/<metric>": value}``; these become run-table target columns,
which an objective weighs by name. ``norm_nll`` is a loss (lower is better, like the domain losses);
``accuracy`` is higher-is-better, so an objective gives it a negative weight
(``{"eval/qa/accuracy": -1}``). Prompts are cut from the left so that prompt and choice fit in
``max_len`` tokens.

>>> metric_names({"name": "qa", "path": "qa.jsonl", "kind": "multiple_choice"})
['eval/qa/accuracy', 'eval/qa/accuracy_norm', 'eval/qa/norm_nll']
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mixopt.errors import ConfigError, DataError

__all__ = ["METRICS", "EvalItem", "load_entry", "load_items", "metric_names", "run_evals", "score_items"]

METRICS = {"multiple_choice": ("accuracy", "accuracy_norm", "norm_nll"), "completion": ("accuracy", "norm_nll")}


@dataclass(frozen=True)
class EvalItem:
    """One item: a prompt, its candidate continuations and the index of the right one (completion
    items have one choice, index 0)."""

    prompt: str
    choices: tuple[str, ...]
    answer: int


def metric_names(task: dict[str, Any]) -> list[str]:
    """The run-table columns a jsonl task records (an entry task's are known only once it runs)."""
    return [f"eval/{task['name']}/{m}" for m in METRICS.get(task.get("kind") or "", ())]


def load_items(path: str | Path, kind: str) -> list[EvalItem]:
    """The items of a jsonl task; a one-line DataError naming the file and line for a bad item."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"eval items {path} do not exist")
    items = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"eval items {where} is not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("prompt"), str):
            raise DataError(f"eval items {where}: need a JSON object with a text 'prompt'")
        if kind == "multiple_choice":
            choices, answer = rec.get("choices"), rec.get("answer")
            if not (isinstance(choices, list) and len(choices) >= 2 and all(isinstance(c, str) and c for c in choices)):
                raise DataError(f"eval items {where}: 'choices' must be a list of 2 or more non-empty strings")
            if not (isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(choices)):
                raise DataError(f"eval items {where}: 'answer' must be the index of the right choice "
                                f"(0..{len(choices) - 1}), got {answer!r}")
            items.append(EvalItem(rec["prompt"], tuple(choices), answer))
        else:
            completion = rec.get("completion")
            if not (isinstance(completion, str) and completion):
                raise DataError(f"eval items {where}: need a non-empty text 'completion'")
            items.append(EvalItem(rec["prompt"], (completion,), 0))
    if not items:
        raise DataError(f"eval items {path} hold no items")
    return items


def load_entry(entry: str) -> Callable:
    """The function ``module:function`` names, imported now; a one-line ConfigError if it is missing."""
    module, sep, name = entry.partition(":")
    if not sep or not module or not name:
        raise ConfigError(f"eval entry {entry!r}: expected 'module:function'")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"eval entry {entry!r}: cannot import {module!r} ({e})") from None
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise ConfigError(f"eval entry {entry!r}: module {module!r} has no function {name!r}")
    return fn


@torch.no_grad()
def score_items(model: torch.nn.Module, tokenizer, items: list[EvalItem], kind: str, *, eos_id: int, max_len: int,
                batch_size: int = 32, device: torch.device | str = "cpu") -> dict[str, float]:
    """The task's metrics (see the module docstring) for ``items`` under ``model``.

    Each (item, choice) is one sequence ``[eos] + prompt + choice`` (the prompt cut from the left to fit
    ``max_len`` tokens), scored in right-padded batches of ``batch_size``."""
    seqs, spans = [], []  # spans: (item, choice, first continuation position, length)
    for i, item in enumerate(items):
        prompt = tokenizer.encode(item.prompt, add_special_tokens=False).ids
        for j, choice in enumerate(item.choices):
            cont = tokenizer.encode(choice, add_special_tokens=False).ids[: max_len - 1] or [eos_id]
            ids = ([eos_id] + prompt)[-(max_len - len(cont)):] + cont
            seqs.append(ids)
            spans.append((i, j, len(ids) - len(cont), len(cont)))
    ll = np.zeros(len(seqs))  # summed log-likelihood of each continuation
    greedy = np.zeros(len(seqs), dtype=bool)  # every continuation token is the argmax
    for start in range(0, len(seqs), batch_size):
        chunk = seqs[start:start + batch_size]
        T = max(len(s) for s in chunk)
        ids_BT = torch.zeros(len(chunk), T, dtype=torch.long)
        for b, s in enumerate(chunk):
            ids_BT[b, :len(s)] = torch.tensor(s)
        logp_BTV = F.log_softmax(model(ids_BT[:, :-1].to(device)).logits_BTV.float(), dim=-1).cpu()
        for b in range(len(chunk)):
            _, _, first, n = spans[start + b]
            target = ids_BT[b, first:first + n]
            lp_NV = logp_BTV[b, first - 1:first - 1 + n]
            ll[start + b] = float(lp_NV.gather(1, target[:, None]).sum())
            greedy[start + b] = bool((lp_NV.argmax(-1) == target).all())
    by_item: dict[int, list[tuple[float, int, bool]]] = {}
    for (i, _, _, n), v, g in zip(spans, ll, greedy, strict=True):
        by_item.setdefault(i, []).append((v, n, g))
    answers = [items[i].answer for i in sorted(by_item)]
    rows = [by_item[i] for i in sorted(by_item)]
    nll = float(np.mean([-r[a][0] / r[a][1] for r, a in zip(rows, answers, strict=True)]))
    if kind == "completion":
        return {"accuracy": float(np.mean([r[0][2] for r in rows])), "norm_nll": nll}
    acc = np.mean([int(np.argmax([v for v, _, _ in r])) == a for r, a in zip(rows, answers, strict=True)])
    acc_norm = np.mean([int(np.argmax([v / n for v, n, _ in r])) == a for r, a in zip(rows, answers, strict=True)])
    return {"accuracy": float(acc), "accuracy_norm": float(acc_norm), "norm_nll": nll}


def run_evals(model: torch.nn.Module, tokenizer, tasks: list[dict[str, Any]], *, eos_id: int, max_len: int,
              batch_size: int = 32, device: torch.device | str = "cpu") -> dict[str, float]:
    """``{"eval/<task>/<metric>": value}`` for every task; a task's bad output is a one-line ConfigError."""
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    try:
        for task in tasks:
            name = task["name"]
            if task.get("entry"):
                with torch.no_grad():
                    got = load_entry(task["entry"])(model, tokenizer)
                if not isinstance(got, dict) or not got:
                    raise ConfigError(f"eval {name!r}: {task['entry']} returned {type(got).__name__}, "
                                      "not a {metric: value} dict")
            else:
                got = score_items(model, tokenizer, load_items(task["path"], task["kind"]), task["kind"],
                                  eos_id=eos_id, max_len=max_len, batch_size=batch_size, device=device)
            for metric, value in got.items():
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise ConfigError(f"eval {name!r}: metric {metric!r} is {value!r}, not a number") from None
                if not math.isfinite(value):
                    raise ConfigError(f"eval {name!r}: metric {metric!r} is not finite ({value})")
                out[f"eval/{name}/{metric}"] = value
    finally:
        model.train(was_training)
    return out
