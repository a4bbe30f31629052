"""Checks that need no training: ``mixopt plan`` prints them, ``mixopt search`` runs them first.

Before any data is tokenised, any job file written or Ray started, a job is checked against its data --
counted exactly from the manifest when this data configuration is prepared, else estimated from a sample
of each source (:func:`mixopt.search.plan.plan_job`):

* the workspace is a folder (or does not exist yet), and a given ``tokenizer.path`` exists;
* every domain holds at least ``2 x data.val_tokens`` tokens (the validation split needs half of it);
* ``proxy.seq_len + 1`` tokens fit in the validation split, and every proxy run is at least one step;
* no proxy run repeats the training data more than ``data.max_epochs`` times *whatever the mixture*
  (a run of ``T`` tokens over ``N`` training tokens repeats some domain at least ``T / N`` times, since
  some weight is at least its token share);
* every ``evals:`` task's items file parses and every entry point (``module:function``) imports;
* the constraints are feasible and leave room for ``search.candidates`` distinct mixtures
  (``Constraints(...).resolve(domains, prior)`` with the estimated token counts and prior).

Names from registries (strategy, surrogate, proxy presets) and the objective are checked when the config
is loaded and when the plan is made. Each problem is one line that names the key and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixopt.errors import ConfigError, MixoptError

__all__ = ["check_plan", "preflight"]


def _workspace_problem(cfg) -> str | None:
    ws = cfg.workspace_dir
    for p in (ws, *ws.parents):
        if p.exists():
            return None if p.is_dir() else f"workspace {ws}: {p} is a file, not a folder (set `workspace` to a folder)"
    return None


def _eval_problems(cfg) -> list[str]:
    """Each eval task's items parse, and each entry point imports (``mixopt.proxies.evals``)."""
    from mixopt.proxies.evals import load_entry, load_items

    problems = []
    for task in cfg.evals:
        try:
            if task.entry:
                load_entry(task.entry)
            else:
                load_items(task.path, task.kind)
        except MixoptError as e:
            problems.append(f"evals {task.name!r}: {e}")
    return problems


def check_plan(cfg, plan: dict[str, Any]) -> list[str]:
    """The problems of ``cfg`` given its ``plan`` (:func:`~mixopt.search.plan.plan_job`), one line each."""
    from mixopt.feasible import Constraints

    problems = [p for p in [_workspace_problem(cfg)] if p]
    problems += _eval_problems(cfg)
    if cfg.tokenizer.path and not Path(cfg.tokenizer.path).is_file():
        problems.append(f"tokenizer.path {cfg.tokenizer.path} does not exist (give a tokenizer.json, or leave it "
                        "unset to train one)")
    val, T, B = cfg.data.val_tokens, cfg.proxy.seq_len, cfg.proxy.batch_size
    rows = plan["domains"]
    for r in rows:
        if r["tokens"] is not None and r["tokens"] < 2 * val:
            about = "" if r["exact"] else "about "
            problems.append(f"domain {r['domain']!r}: {about}{r['tokens']:,} tokens, need at least 2 x data.val_tokens"
                            f" = {2 * val:,} (lower data.val_tokens or add documents)")
    if val < T + 1:
        problems.append(f"proxy.seq_len {T:,} needs validation windows of {T + 1:,} tokens but data.val_tokens is "
                        f"{val:,} (lower proxy.seq_len or raise data.val_tokens)")
    known = all(r["train_tokens"] is not None for r in rows)
    total = plan["train_tokens"]
    about = "" if all(r["exact"] for r in rows) else "about "
    for f in plan["fidelities"]:
        if f["tokens"] < T * B:
            problems.append(f"a {f['preset']} proxy run of {f['tokens']:,} tokens is less than one step of "
                            f"proxy.batch_size {B} x seq_len {T} (raise proxy.tokens or lower the batch)")
        if known and total > 0 and f["tokens"] / total > cfg.data.max_epochs:
            problems.append(f"a {f['preset']} proxy run of {f['tokens']:.3g} tokens repeats the training data "
                            f"{f['tokens'] / total:.3g} times whatever the mixture ({about}{total:,} train tokens), "
                            f"above data.max_epochs = {cfg.data.max_epochs:g} (lower proxy.tokens or raise "
                            "data.max_epochs)")
    if known and total > 0:
        domains = [r["domain"] for r in rows]
        tokens = {r["domain"]: float(r["train_tokens"]) for r in rows}
        estimated = "" if about == "" else " (with estimated token counts)"
        try:
            fs = Constraints.from_settings(cfg.constraints, tokens, groups=list(cfg.hierarchy().groups.values()),
                                           floors=cfg.scored_floors()).resolve(domains, prior=[r["prior"] for r in rows])
        except MixoptError as e:
            problems.append(f"{e}{estimated}")
        else:
            try:  # what the initial design and every acquisition round draw
                fs.sample(cfg.search.candidates, seed=cfg.seed)
            except MixoptError as e:
                problems.append(f"search.candidates {cfg.search.candidates}: {e}{estimated} (lower search.candidates "
                                "or loosen the constraints)")
    return problems


def preflight(cfg) -> dict[str, Any]:
    """Check ``cfg`` before spending anything; returns the plan, or raises a one-line ConfigError naming the
    first problem (``mixopt plan`` lists them all)."""
    from mixopt.search.plan import plan_job

    ws = _workspace_problem(cfg)
    if ws:
        raise ConfigError(ws)
    plan = plan_job(cfg, verify=False)
    problems = check_plan(cfg, plan)
    if problems:
        more = f" (+{len(problems) - 1} more; `mixopt plan` lists them)" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)
    return plan
