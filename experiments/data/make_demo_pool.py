#!/usr/bin/env python
"""Make the demo pool: a development table of proxy runs on the offline demo corpus, for surrogates that
extrapolate across model size and for multi-fidelity strategies.

Every mixture (RegMix's Dirichlet design, ``FeasibleSet.sample``) is trained at three fidelities -- model
size and tokens growing together -- with seed = its index; the first ``--repeat-mixtures`` mixtures get
``--extra-seeds`` more seeds at every fidelity (seed-to-seed noise)::

    python experiments/data/make_demo_pool.py                 # 60 mixtures x 3 fidelities + repeats
    python experiments/data/make_demo_pool.py --quick         # 6-mixture smoke version (experiments/out/)

Resumable: each finished run is appended to ``<out>/records.jsonl`` (its raw ``RunRecord`` under a key that
hashes mixture, model, tokens, settings and seed); a rerun skips recorded runs, then writes ``runs.csv``,
``curves.csv`` and ``README.md`` from the records. Load the result with
``experiments/data/demo_pool.py:load_demo_pool``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

CORPUS_SEED = 0
VOCAB_SIZE = 512
EXTRA_SEED_STRIDE = 1000  # repeat r of mixture i uses seed i + r * 1000 (never another mixture's seed)
TRAIN = {"seq_len": 64, "batch_size": 8, "schedule": "cosine", "eval_points": 4, "eval_tokens": 4096}
# (name, dense-tiny overrides, tokens, peak lr), cheapest first; parameter counts at vocabulary 512
FIDELITIES = [
    ("pool-s", {"d_model": 32, "n_layers": 2, "n_heads": 2, "d_ff": 88}, 20_000, 0.01),     # 41.6k params
    ("pool-m", {"d_model": 64, "n_layers": 2, "n_heads": 2, "d_ff": 176}, 40_000, 0.005),   # 133.4k
    ("pool-l", {"d_model": 96, "n_layers": 3, "n_heads": 3, "d_ff": 256}, 80_000, 0.003),   # 381.6k
]


# --- data, mixtures and the run plan -------------------------------------------------------------------
def prepare(workspace: Path):
    """Build the demo corpus (once) and prepare its token shards (vocabulary 512) in ``workspace``."""
    from mixopt.config import load_job_config
    from mixopt.data import build_demo_corpus, prepare_data

    corpus = workspace / "corpus"
    if not (corpus / "job.yaml").exists():
        build_demo_corpus(corpus, seed=CORPUS_SEED)
    cfg = load_job_config(corpus / "job.yaml")
    cfg.workspace = str(workspace)
    cfg.tokenizer.vocab_size = VOCAB_SIZE
    return prepare_data(cfg, progress=False)


def model_configs(vocab_size: int) -> list[dict]:
    """``ProxyConfig.to_dict()`` of each fidelity's model."""
    from mixopt.proxies import ProxyConfig

    base = ProxyConfig.preset("dense-tiny").with_vocab(vocab_size)
    return [base.replace(name=name, **over).to_dict() for name, over, _, _ in FIDELITIES]


def plan_runs(mixtures: np.ndarray, domains: list[str], models: list[dict], repeat_mixtures: int,
              extra_seeds: int) -> list[dict]:
    """Every run to make, as plain dicts (they cross a process boundary), keyed for resuming."""
    jobs = []
    for i, w in enumerate(mixtures):
        seeds = [i] + ([i + r * EXTRA_SEED_STRIDE for r in range(1, extra_seeds + 1)] if i < repeat_mixtures else [])
        weights = {d: float(x) for d, x in zip(domains, w, strict=True)}
        for f, ((_, _, tokens, lr), model) in enumerate(zip(FIDELITIES, models, strict=True)):
            settings = TRAIN | {"lr": lr}
            for seed in seeds:
                payload = {"weights": {d: round(x, 12) for d, x in weights.items()}, "model": model,
                           "tokens": tokens, "settings": settings, "seed": seed, "corpus_seed": CORPUS_SEED}
                key = hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
                jobs.append({"run": f"m{i:02d}-f{f}-s{seed}", "key": key, "mixture": i, "seed": seed, "fidelity": f,
                             "weights": weights, "model": model, "tokens": tokens, "settings": settings})
    return jobs


# --- training (worker processes) ------------------------------------------------------------------------
_DATA = None


def _init_worker(data_dir: str) -> None:
    """Load the prepared data once per worker process."""
    global _DATA
    import torch

    from mixopt.data import load_prepared

    torch.set_num_threads(1)
    _DATA = load_prepared(data_dir)


def _train(job: dict) -> dict:
    from mixopt.proxies import ProxyConfig, TrainSettings, train_proxy

    record = train_proxy(ProxyConfig.from_dict(job["model"]), _DATA, job["weights"], tokens=job["tokens"],
                         seed=job["seed"], settings=TrainSettings.from_dict(job["settings"]), threads=1)
    return record.to_dict()


def read_records(path: Path) -> dict[str, dict]:
    """``{key: line}`` of the records already made (a torn last line from a killed run is ignored)."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[entry["key"]] = entry
    return done


def run_all(jobs: list[dict], data_dir: Path, records_path: Path, workers: int,
            started: float) -> tuple[dict[str, dict], int]:
    """Train every job not yet in ``records_path`` (appending each as it finishes, with this session's start
    time ``started`` and the seconds since then); all records by key and the number of runs made now."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    done = read_records(records_path)
    todo = [j for j in jobs if j["key"] not in done]
    todo.sort(key=lambda j: -j["fidelity"])  # longest first: the pool stays busy to the end
    print(f"{len(jobs)} runs planned, {len(jobs) - len(todo)} already recorded, {len(todo)} to train "
          f"on {workers} worker(s)", flush=True)
    if not todo:
        return done, 0
    if records_path.exists() and not records_path.read_bytes().endswith(b"\n"):
        with records_path.open("a") as f:  # terminate a torn last line so new lines parse
            f.write("\n")
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(str(data_dir),)) as pool, records_path.open("a") as out:
        futures = {pool.submit(_train, j): j for j in todo}
        for n, fut in enumerate(as_completed(futures), 1):
            job, rec = futures[fut], fut.result()
            entry = {k: job[k] for k in ("run", "key", "mixture", "seed", "fidelity")} | {
                "session": round(started, 3), "session_s": round(time.time() - started, 3), "record": rec}
            out.write(json.dumps(entry) + "\n")
            out.flush()
            os.fsync(out.fileno())
            done[job["key"]] = entry
            elapsed = time.perf_counter() - t0
            loss = np.mean(list(rec["final_loss"].values())) if rec["status"] == "ok" else float("nan")
            left = (len(todo) - n) * elapsed / n
            print(f"[{n:3d}/{len(todo)}] {job['run']:<13} {rec['preset']:<7} {rec['wall_time']:5.1f}s  "
                  f"mean loss {loss:.3f}  {rec['status']}{'' if rec['status'] == 'ok' else ': ' + str(rec['reason'])}"
                  f"  ({elapsed:.0f}s elapsed, ~{left:.0f}s left)", flush=True)
    return done, len(todo)


# --- tables ---------------------------------------------------------------------------------------------
def write_tables(jobs: list[dict], done: dict[str, dict], domains: list[str], out: Path) -> list[str]:
    """Write ``runs.csv`` and ``curves.csv`` (successful runs, plan order); return the failed runs' lines."""
    rows, curve_rows, failed = [], [], []
    for job in jobs:
        rec = done[job["key"]]["record"]
        if rec["status"] != "ok":
            failed.append(f"{job['run']}: {rec['reason']}")
            continue
        rows.append({"run": job["run"], "mixture": job["mixture"], "seed": job["seed"], "fidelity": job["fidelity"],
                     "preset": rec["preset"], "n_params": rec["n_params"], "tokens": rec["tokens"],
                     "flops": int(round(rec["flops"])), "seconds": round(rec["wall_time"], 3)}
                    | {f"w_{d}": rec["weights"][d] for d in domains}
                    | {f"loss_{d}": rec["final_loss"][d] for d in domains})
        for p, x in enumerate(rec["tokens_seen"]):
            curve_rows.append({"run": job["run"], "tokens_seen": x} | {f"loss_{d}": rec["val_loss"][d][p] for d in domains})
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "runs.csv", index=False, float_format="%.7g")
    pd.DataFrame(curve_rows).to_csv(out / "curves.csv", index=False, float_format="%.7g")
    return failed


def session_walls(entries: list[dict]) -> dict[float, float]:
    """``{session start: seconds from its start (data preparation included) to its last recorded run}``."""
    walls: dict[float, float] = {}
    for e in entries:
        walls[e["session"]] = max(walls.get(e["session"], 0.0), e["session_s"])
    return walls


def sanity(out: Path) -> dict:
    """Summary figures, computed from the table as :func:`demo_pool.load_demo_pool` loads it.

    Per objective (each domain's loss, ``mean`` of all six, ``learnable`` = mean without ``noise``) and level:
    mean loss and sd over the mixtures at seed = index, Spearman with the largest level over those mixtures,
    and the seed sd (per repeated mixture over its seeds, root-mean-square over the repeated mixtures).
    """
    from demo_pool import load_demo_pool

    t = load_demo_pool(out)
    runs = pd.read_csv(out / "runs.csv").set_index("run").loc[t.run_ids]
    learnable = {d: 1.0 for d in t.domains if d != "noise"}
    objectives = dict(zip(t.domains, t.targets.T, strict=True)) | {
        "mean": t.objective("mean"), "learnable": t.objective(learnable)}
    frame = runs[["mixture", "seed"]].assign(level=t.level, cost=t.cost, **objectives)
    primary = frame[frame.seed == frame.mixture]
    repeated = frame[frame.mixture.isin(frame[frame.seed != frame.mixture].mixture)]
    top = t.target_level
    stats = {}
    for o in objectives:
        wide = primary.pivot(index="mixture", columns="level", values=o)
        sd = repeated.groupby(["level", "mixture"])[o].std(ddof=1).groupby("level")
        stats[o] = {"loss": wide.mean().tolist(), "spread": wide.std(ddof=1).tolist(),
                    "spearman": [float(wide[j].corr(wide[top], method="spearman")) for j in range(t.n_levels)],
                    "seed_sd": [float(np.sqrt(v.pow(2).mean())) for _, v in sd] if len(repeated) else [np.nan] * 3}
    m = primary.pivot(index="mixture", columns="level", values="mean")
    falls = (m.diff(axis=1).iloc[:, 1:] < 0).all(axis=1)
    levels = [{"level": j, "preset": runs.preset[t.level == j].iloc[0], "n_params": int(t.levels[j][1]),
               "tokens": int(t.levels[j][0]), "runs": int((t.level == j).sum()),
               "seconds": frame.cost[frame.level == j].describe()[["mean", "min", "max"]].tolist(),
               "flops": float(runs.flops[t.level == j].iloc[0])} for j in range(t.n_levels)]
    return {"summary": t.summary(), "levels": levels, "stats": stats, "mixtures": len(m),
            "repeated": int(repeated.mixture.nunique()), "domains": t.domains,
            "falls_monotone": int(falls.sum()), "not_falling": [int(i) for i in m.index[~falls]],
            "largest_beats_smallest": int((m[top] < m[0]).sum()), "total_seconds": float(frame.cost.sum())}


def write_readme(out: Path, s: dict, *, command: str, wall_s: float, sessions: int, failed: list[str],
                 n_mixtures: int, seed: int, repeat_mixtures: int, extra_seeds: int, workers: int) -> None:
    import torch

    lv, top = s["levels"], len(s["levels"]) - 1
    fid_rows = "\n".join(
        f"| {x['level']} | `{x['preset']}` ({o['d_model']}d, {o['n_layers']} layers, {o['n_heads']} heads, "
        f"ff {o['d_ff']}) | {x['n_params']:,} | {x['tokens']:,} | {x['flops']:.3g} | {lr:g} | {x['runs']} | "
        f"{x['seconds'][0]:.1f} ({x['seconds'][1]:.1f}-{x['seconds'][2]:.1f}) |"
        for x, (_, o, _, lr) in zip(lv, FIDELITIES, strict=True))

    def cells(values, fmt, skip=None):
        return " | ".join("-" if j == skip else format(v, fmt) for j, v in enumerate(values))

    stat_rows = "\n".join(
        f"| {'**' + o + '**' if o in ('mean', 'learnable') else '`' + o + '`'} | {cells(st['loss'], '.3f')} | "
        f"{st['spread'][top]:.3f} | {cells(st['spearman'][:top], '.3f')} | {cells(st['seed_sd'], '.3f')} |"
        for o, st in s["stats"].items())
    head_levels = " | ".join(f"f{j}" for j in range(len(lv)))
    first = "mixture 0" if repeat_mixtures == 1 else f"mixtures 0-{repeat_mixtures - 1}"
    repeats = (f"{first} also with seeds `i + {EXTRA_SEED_STRIDE}·r` (r = 1..{extra_seeds})"
               if repeat_mixtures and extra_seeds else "no repeated seeds")
    fail_text = ("None failed." if not failed else
                 f"**{len(failed)} failed** (left out of the tables):\n\n" + "\n".join(f"- {f}" for f in failed))
    mean = s["stats"]["mean"]
    not_falling = f" (not: mixture(s) {', '.join(map(str, s['not_falling']))})" if s["not_falling"] else ""
    where = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    text = f"""# Demo pool: proxy runs for surrogate and multi-fidelity development

Proxy runs made with mixopt's own proxies (`mixopt.proxies.train_proxy`) on its offline demo corpus
(`mixopt.data.build_demo_corpus`, seed {CORPUS_SEED}; BPE vocabulary {VOCAB_SIZE}; domains
{", ".join(f"`{d}`" for d in s["domains"])}): **{n_mixtures} mixtures x {len(lv)} fidelities**, model size and
tokens growing together, each run with its eval curve and cost; {repeats} at every fidelity, for
seed-to-seed noise. {s["summary"]}. {fail_text}

```bash
{command}
```

Wall time: **{wall_s / 60:.1f} min** in {sessions} session(s) (from the start of the script, data preparation
included, to the last run), {workers} worker processes with one torch thread each on 2 CPU cores shared with
other jobs; the runs' own wall times add up to {s["total_seconds"] / 60:.1f} min. torch {torch.__version__},
Python {platform.python_version()}. Rerunning the command reuses `records.jsonl` and only rewrites the
tables and this file.

## Loading

```python
import sys; sys.path.insert(0, "experiments/data")
from demo_pool import load_demo_pool
table = load_demo_pool("{where}")  # mixopt.runs.RunTable
```

Fidelity columns `["tokens", "n_params"]` (levels cheapest first; the last is the target fidelity),
`cost` = seconds, targets = the six per-domain losses named by domain, eval curves attached
(`quantity="tokens"`). `run_ids` are the `run` column, so `mixture` and `seed` join back from `runs.csv`.

## Files

- `runs.csv`: one row per run: `run` (`m<mixture>-f<fidelity>-s<seed>`), `mixture` (index into the
  design), `seed`, `fidelity` (0, 1, 2), `preset`, `n_params`, `tokens` (the budget; a run trains
  `tokens // 512` steps of 8 x 64 tokens), `flops` (training FLOPs of the tokens trained), `seconds` (wall
  time of the `train_proxy` call, evaluation included: the cost), `w_<domain>` (the mixture, sums to 1),
  `loss_<domain>` (final validation loss, nats/token, on 4,096 fixed held-out tokens per domain).
- `curves.csv`: long format, one row per run and eval point (4 log-spaced points, the last = the final
  loss): `run`, `tokens_seen`, `loss_<domain>`.
- `records.jsonl`: the raw `RunRecord` of every run, one JSON line each, keyed by a hash of mixture, model,
  tokens, settings and seed (the script's resume log; also holds training losses and settings).

## Design

- Mixtures: `FeasibleSet.simplex(domains, prior=data.prior()).sample({n_mixtures}, seed={seed})` (RegMix's
  Dirichlet design around the token-share prior). Mixture `i` is trained at every fidelity with seed `i`.
- Models: `dense-tiny` with the overrides below; training as in `experiments/transfer` (sequence 64,
  batch 8, cosine schedule with 10 % warmup, AdamW, 4,096 eval tokens per domain) but 4 eval points per run.
- `seconds` depends on the machine's load (other jobs shared the cores); `flops` is the load-free cost.

| fidelity | model | parameters | tokens | FLOPs | peak LR | runs | s / run: mean (min-max) |
|---|---|---|---|---|---|---|---|
{fid_rows}

## Sanity summary

Per objective: each domain's final loss, **mean** of the six and **learnable** (mean without `noise`, random
characters with an irreducible floor). Loss: mean over the {s["mixtures"]} mixtures at seed = index, per
fidelity; spread: sd of the largest fidelity's loss over those mixtures; Spearman: rank correlation of a
cheap fidelity's loss with the largest's over those mixtures; seed sd: sd over the {1 + extra_seeds} seeds of
each of the {s["repeated"]} repeated mixtures, root-mean-square over them.

| objective | loss {head_levels} | spread f{top} | Spearman {" | ".join(f"f{j}-f{top}" for j in range(top))} | seed sd {head_levels} |
|---|{"---|" * (2 * len(lv) + top + 1)}
{stat_rows}

The mean loss falls with size (f0 > f1 > f2) for {s["falls_monotone"]} of {s["mixtures"]} mixtures{not_falling}; the
largest fidelity beats the smallest for {s["largest_beats_smallest"]} of {s["mixtures"]}. At the largest fidelity the
seed sd of the mean loss is {mean["seed_sd"][top] / mean["spread"][top]:.2f} of its spread over mixtures.
"""
    (out / "README.md").write_text(text)


# --- main -------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default experiments/data/demo_pool; --quick: experiments/out/demo_pool_quick)")
    ap.add_argument("--workspace", type=Path, default=ROOT / "experiments/out/demo_pool",
                    help="scratch folder for the corpus and token shards (git-ignored)")
    ap.add_argument("--workers", type=int, default=2, help="training processes (one torch thread each)")
    ap.add_argument("--mixtures", type=int, default=None, help="mixtures in the design (default 60; --quick 6)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the mixture design (training seeds: the mixture indices)")
    ap.add_argument("--repeat-mixtures", type=int, default=None,
                    help="the first N mixtures get extra seeds (default 5; --quick 1)")
    ap.add_argument("--extra-seeds", type=int, default=2, help="extra seeds per repeated mixture")
    ap.add_argument("--quick", action="store_true", help="6-mixture smoke version into experiments/out/")
    args = ap.parse_args(argv)
    out = (args.out or ROOT / ("experiments/out/demo_pool_quick" if args.quick else "experiments/data/demo_pool"))
    out = out.resolve()
    n_mix = args.mixtures or (6 if args.quick else 60)
    n_rep = args.repeat_mixtures if args.repeat_mixtures is not None else (1 if args.quick else 5)
    started = time.time()

    from mixopt.feasible import FeasibleSet

    data = prepare(args.workspace.resolve())
    domains = list(data.domains)
    mixtures = FeasibleSet.simplex(domains, prior=data.prior()).sample(n_mix, seed=args.seed)
    models = model_configs(data.vocab_size)
    jobs = plan_runs(mixtures, domains, models, n_rep, args.extra_seeds)
    print(f"data: {len(domains)} domains, vocabulary {data.vocab_size}, {data.data_dir}; out: {out}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    done, made_now = run_all(jobs, data.data_dir, out / "records.jsonl", args.workers, started)
    failed = write_tables(jobs, done, domains, out)
    s = sanity(out)
    sessions = session_walls([done[j["key"]] for j in jobs])
    wall = sum(sessions.values())
    command = "python experiments/data/make_demo_pool.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    write_readme(out, s, command=command, wall_s=wall, sessions=len(sessions), failed=failed, n_mixtures=n_mix,
                 seed=args.seed, repeat_mixtures=n_rep, extra_seeds=args.extra_seeds, workers=args.workers)
    st = s["stats"]["mean"]
    for x in s["levels"]:
        j = x["level"]
        print(f"fidelity {j} ({x['preset']}, {x['n_params']:,} params, {x['tokens']:,} tokens): mean loss "
              f"{st['loss'][j]:.3f}, Spearman vs largest {st['spearman'][j]:.3f}, seed sd {st['seed_sd'][j]:.4f}, "
              f"{x['seconds'][0]:.2f} s/run")
    print(f"{s['summary']}; loss falls with size for {s['falls_monotone']}/{s['mixtures']} mixtures; "
          f"{len(failed)} failed; {made_now} runs trained now; wall {wall / 60:.1f} min over {len(sessions)} "
          f"session(s); wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
