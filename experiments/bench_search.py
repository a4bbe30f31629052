"""Benchmarks of the mixture search job on the demo corpus.

1. Search efficiency: best observed objective vs number of proxy runs, and the observed objective of the
   final proposal (``strategy.recommend``, confirmed by a run at the target fidelity), for ``random``,
   ``regmix`` and ``bo`` over several seeds. Lower is better. Baseline: ``random`` in the same run.
2. Orchestration overhead of N proxies (``--overhead-runs``, budget N, all in the initial design, random,
   MLflow on, no confirmation run), measured twice:

   * ``cold``: ``run_search`` in a process where Ray is not running, as ``mixopt search`` runs: it
     starts an embedded Ray itself (in the background, while the data is checked) and its workers
     import torch before the first proxy.
   * ``ray up``: Ray already running in the process (a notebook, a service, the efficiency runs below):
     the search reuses it; its workers are fresh, so they still warm up.
   * ``warm``: the next search in that same Ray session: its workers imported torch for the previous
     search (Ray keeps idle workers of a driver), as for every search after the first in a notebook, a
     sweep of searches (``experiments/transfer/run.py``) or the efficiency runs below.

   ``ideal`` = the same N proxies (same mixtures, seeds, tokens) trained one after another in this
   process (torch imported, data open), divided by ``search.parallel`` (2). Printed per run:

   * ``loop``: from the call of ``run_search`` to the last proxy result (runs.jsonl ``finished_at``):
     preflight, lock and job files, Ray start and worker warm-up (background, overlapping the data
     check and the initial design), the proxies, MLflow logging of each run. ``ratio = loop / ideal``
     (1.0 = no overhead); the issue's target is <= 1.5 for N = 6.
   * ``after``: from the last proxy result to the return of ``run_search``: the final fit
     (``strategy.recommend``), the baselines' predictions, the trust report, the plots, Ray shutdown and
     the MLflow drain. ``total = loop + after``, with its own ratio.
   * a per-phase breakdown (seconds from the call; background phases -- Ray start, worker warm-up, the
     MLflow store -- overlap the others), from ``SearchResult.phases``.

    python experiments/bench_search.py --out experiments/out/search [--runs 10 --seeds 0 1 2]
    python experiments/bench_search.py --out /tmp/bs --skip-efficiency     # the overhead only

Writes ``results.json`` and ``efficiency.png`` under ``--out``. The machine may be shared: wall times
are noisy (the load average is printed); the ratios are measured in the same process, back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def make_cfg(demo: Path, ws: Path, name: str, strategy: str, seed: int, runs: int, n_init: int, tokens: int,
             confirm: bool):
    from mixopt.config import load_job_config

    cfg = load_job_config(demo / "job.yaml")
    cfg.workspace = str(ws)
    cfg.name = name
    cfg.seed = seed
    cfg.tokenizer.vocab_size = 1024
    cfg.proxy = cfg.proxy.model_copy(update={"tokens": tokens, "seq_len": 64, "batch_size": 16, "eval_points": 2,
                                             "eval_tokens": 2048})
    cfg.search = cfg.search.model_copy(update={"strategy": strategy, "n_init": n_init, "parallel": 2,
                                               "candidates": 512, "confirm": confirm})
    cfg.budget = cfg.budget.model_copy(update={"runs": runs})
    cfg.tracking.enabled = False
    return type(cfg).model_validate(cfg.model_dump())


def efficiency(args, demo: Path, ws: Path) -> dict:
    from mixopt.search import read_runs, run_search

    out: dict = {}
    for strategy in args.strategies:
        for seed in args.seeds:
            cfg = make_cfg(demo, ws, f"eff-{strategy}-{seed}", strategy, seed, args.runs, args.n_init, args.tokens,
                           confirm=True)
            t0 = time.time()
            res = run_search(cfg, progress=False)
            runs = [r for r in read_runs(cfg.job_dir / "runs.jsonl") if r.source != "confirm"]
            runs.sort(key=lambda r: r.finished_at)
            best, curve = np.inf, []
            for r in runs:
                if r.ok:
                    best = min(best, r.objective)
                curve.append(float(best))
            p = res.proposal  # strategy.recommend: what the user gets (and what replay scores)
            out[f"{strategy}/{seed}"] = {
                "best_vs_runs": curve, "proposal_observed": p.observed if p else None,
                "proposal_predicted": p.predicted if p else None, "proposal_rule": p.rule if p else None,
                "prior_predicted": p.baselines.get("prior", {}).get("predicted") if p else None,
                "wall_s": time.time() - t0, "failed": len(res.failed_runs),
            }
            print(f"{strategy:8s} seed {seed}: best {curve[-1]:.4f}  proposal ({p.rule if p else '-'}) observed "
                  f"{p.observed if p else None}  predicted {p.predicted if p else None}  ({time.time() - t0:.0f}s)",
                  flush=True)
    return out


def _breakdown(phases: dict, t_last: float) -> str:
    lines = [f"    {'phase':22s} {'start':>7s} {'end':>7s} {'seconds':>8s}"]
    for name, p in phases.items():
        lines.append(f"    {name:22s} {p['start_s']:7.2f} {p['end_s']:7.2f} {p['s']:8.2f}")
    lines.append(f"    {'last proxy result':22s} {'':7s} {t_last:7.2f}")
    return "\n".join(lines)


def overhead_run(cfg, label: str) -> tuple[dict, list]:
    from mixopt.search import read_runs, run_search

    load = os.getloadavg()[0]
    t0 = time.time()
    res = run_search(cfg, progress=False)
    t_total = time.time() - t0
    runs = read_runs(cfg.job_dir / "runs.jsonl")
    t_loop = max(r.finished_at for r in runs) - t0  # up to the last proxy result
    out = {"label": label, "t_loop_s": t_loop, "t_total_s": t_total, "t_after_s": t_total - t_loop,
           "phases": res.phases, "load_average": load, "ok": len(res.ok_runs),
           "mixtures": [[round(w, 6) for w in r.weights.values()] for r in sorted(runs, key=lambda r: r.run_id)]}
    return out, runs


def overhead(args, demo: Path, ws: Path) -> dict:
    import ray

    from mixopt.data import load_prepared
    from mixopt.proxies import ProxyConfig, TrainSettings, train_proxy

    n, stamp = args.overhead_runs, time.strftime("%H%M%S")
    cfgs = {}
    for label in ("cold", "ray up", "warm"):
        cfg = make_cfg(demo, ws, f"overhead-{label.replace(' ', '')}-{stamp}", "random", 0, n, n, args.tokens,
                       confirm=False)
        cfg.tracking.enabled = True
        cfgs[label] = cfg
    assert not ray.is_initialized()
    runs_out = {}
    cold, runs = overhead_run(cfgs["cold"], "cold")  # run_search starts (and stops) its own Ray
    runs_out["cold"] = cold
    _ray_init()
    runs_out["ray up"], _ = overhead_run(cfgs["ray up"], "ray up")
    runs_out["warm"], _ = overhead_run(cfgs["warm"], "warm")
    data = load_prepared(cfgs["cold"].data_dir)
    settings = TrainSettings.from_job(cfgs["cold"].proxy)
    t0 = time.time()
    for r in runs:
        train_proxy(ProxyConfig.preset(r.preset).with_vocab(data.vocab_size), data, r.weights, tokens=r.tokens,
                    seed=r.seed, settings=settings, threads=1)
    t_seq = time.time() - t0
    par = cfgs["cold"].search.parallel
    ideal = t_seq / par
    same = all(r["mixtures"] == runs_out["cold"]["mixtures"] for r in runs_out.values())
    print(f"overhead: {n} proxies; ideal = sequential {t_seq:.1f}s / parallel {par} = {ideal:.1f}s "
          f"(load average {os.getloadavg()[0]:.2f})", flush=True)
    for label, r in runs_out.items():
        r |= {"ratio": r["t_loop_s"] / ideal, "ratio_total": r["t_total_s"] / ideal}
        print(f"  {label:6s}: loop (call -> last proxy result) {r['t_loop_s']:.1f}s -> ratio {r['ratio']:.2f}; "
              f"after it (final fit, baselines, trust report, plots, Ray shutdown, MLflow drain) "
              f"{r['t_after_s']:.1f}s; total {r['t_total_s']:.1f}s -> ratio {r['ratio_total']:.2f}; "
              f"{r['ok']} ok; load average {r['load_average']:.2f} at its start")
        print(_breakdown(r["phases"], r["t_loop_s"]), flush=True)
    print(f"  same mixtures in all {len(runs_out)} runs: {same}")
    return {"n": n, "t_sequential_s": t_seq, "parallel": par, "ideal_s": ideal, "runs": runs_out,
            "same_mixtures": same}


def _ray_init() -> None:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024**2,
             _node_ip_address="127.0.0.1", runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})


def plot(eff: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for strategy in sorted({k.split("/")[0] for k in eff}):
        curves = np.array([v["best_vs_runs"] for k, v in eff.items() if k.startswith(strategy + "/")])
        m = np.nanmean(np.where(np.isfinite(curves), curves, np.nan), axis=0)
        ax.plot(np.arange(1, len(m) + 1), m, label=f"{strategy} (mean of {len(curves)})")
    ax.set(xlabel="proxy runs", ylabel="best observed objective", title="search efficiency (demo corpus)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="experiments/out/search")
    ap.add_argument("--strategies", nargs="+", default=["random", "regmix", "bo"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--n-init", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=32_768)
    ap.add_argument("--overhead-runs", type=int, default=6)
    ap.add_argument("--skip-efficiency", action="store_true")
    args = ap.parse_args()

    import ray

    from mixopt.data import build_demo_corpus, prepare_data

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    demo, ws = out / "demo", out / "workspace"
    if not (demo / "job.yaml").exists():
        build_demo_corpus(demo, seed=0)
    prepare_data(make_cfg(demo, ws, "prep", "random", 0, 1, 1, args.tokens, False), progress=False)
    try:
        results = {"args": vars(args)}
        results["overhead"] = overhead(args, demo, ws)  # leaves Ray running, reused by the efficiency runs
        if not args.skip_efficiency:
            results["efficiency"] = eff = efficiency(args, demo, ws)
            plot(eff, out / "efficiency.png")
            base = np.mean([v["best_vs_runs"][-1] for k, v in eff.items() if k.startswith("random/")])
            for strategy in args.strategies:
                vals = [v for k, v in eff.items() if k.startswith(strategy + "/")]
                best = np.mean([v["best_vs_runs"][-1] for v in vals])
                obs = [v["proposal_observed"] for v in vals if v["proposal_observed"] is not None]
                print(f"{strategy:8s}: mean best after {args.runs} runs {best:.4f} (vs random {best - base:+.4f}); "
                      f"mean proposal observed {np.mean(obs) if obs else float('nan'):.4f}")
        (out / "results.json").write_text(json.dumps(results, indent=1))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
