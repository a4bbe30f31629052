"""Benchmarks of the mixture search job on the demo corpus.

1. Search efficiency: best observed objective vs number of proxy runs, and the observed objective of the
   final proposal (``strategy.recommend``, confirmed by a run at the target fidelity), for ``random``,
   ``regmix`` and ``bo`` over several seeds. Lower is better. Baseline: ``random`` in the same run.
2. Orchestration overhead: wall time of N proxies through the search loop (Ray tasks, state on disk,
   MLflow) vs the same N proxies trained sequentially in one process, divided by the ideal parallel
   speed-up (``ratio = T_loop / (T_sequential / parallel)``; 1.0 = no overhead).

    python experiments/bench_search.py --out experiments/out/search [--runs 10 --seeds 0 1 2]

Writes ``results.json`` and ``efficiency.png`` under ``--out``. The machine may be shared: wall times
are noisy; the ratios are measured in the same process, back to back.
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


def overhead(args, demo: Path, ws: Path) -> dict:
    from mixopt.data import load_prepared
    from mixopt.proxies import ProxyConfig, TrainSettings, train_proxy
    from mixopt.search import read_runs, run_search

    n = args.overhead_runs
    cfg = make_cfg(demo, ws, "overhead", "random", 0, n, n, args.tokens, confirm=False)
    cfg.tracking.enabled = True
    t0 = time.time()
    run_search(cfg, progress=False)
    t_loop = time.time() - t0
    runs = read_runs(cfg.job_dir / "runs.jsonl")
    t_pipe = max(r.finished_at for r in runs) - t0  # up to the last proxy result (no final proposal fit)
    data = load_prepared(cfg.data_dir)
    settings = TrainSettings.from_job(cfg.proxy)
    t0 = time.time()
    for r in runs:
        train_proxy(ProxyConfig.preset(r.preset), data, r.weights, tokens=r.tokens, seed=r.seed, settings=settings,
                    threads=1)
    t_seq = time.time() - t0
    par = cfg.search.parallel
    ratio = t_loop / (t_seq / par)
    print(f"overhead: {n} proxies, loop {t_loop:.1f}s (incl. data check, Ray tasks, MLflow, proposal) vs "
          f"sequential {t_seq:.1f}s / parallel {par} = ideal {t_seq / par:.1f}s -> ratio {ratio:.2f}; "
          f"up to the last result {t_pipe:.1f}s -> ratio {t_pipe / (t_seq / par):.2f}", flush=True)
    return {"n": n, "t_loop_s": t_loop, "t_pipeline_s": t_pipe, "t_sequential_s": t_seq, "parallel": par,
            "ratio": ratio, "ratio_pipeline": t_pipe / (t_seq / par)}


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
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024**2,
             _node_ip_address="127.0.0.1", runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    try:
        results = {"args": vars(args)}
        results["overhead"] = overhead(args, demo, ws)
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
