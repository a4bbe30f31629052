"""Mixture reuse against a fresh search, on the demo corpus: the compute saved and what it costs in quality.

Per seed: a first search ``v1`` over five demo domains (code, prose, arithmetic, records, lowent); then the
data changes (``prose`` keeps 150 of its documents, ``noise`` is added) and the six-domain job ``v2`` is
searched three ways:

* ``fresh``: a new search over all six domains with ``--fresh-runs`` proxy runs;
* ``reuse``: ``search --reuse v1`` (collapse: the four unchanged domains at v1's proportions) with
  ``--reuse-runs`` runs;
* ``fresh-small``: a fresh search with the reuse budget (what the same compute buys without reuse).

Each proposal (what ``mixopt search`` returns) is then trained at the target fidelity with ``--eval-seeds``
fresh seeds and scored on the job's objective (mean per-domain validation loss over the six domains);
lower is better. Compute is the proxy training FLOPs of each search (v1's own cost is reported beside it:
reuse pays off when v1 was run anyway). Ray is started once for the whole benchmark.

    python experiments/bench_reuse.py --out experiments/out/reuse --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_JOB = """name: {name}
workspace: {ws}
seed: {seed}
domains:
  code: {demo}/code
  prose: {prose}
  arithmetic: {demo}/arithmetic
  records: {demo}/records
  lowent: {demo}/lowent
{noise}tokenizer: {{vocab_size: 512, sample_bytes_per_domain: 100000}}
data: {{val_tokens: 4096}}
proxy: {{preset: dense-tiny, tokens: {tokens}, seq_len: 64, batch_size: 16, eval_points: 2, eval_tokens: 2048}}
search: {{strategy: {strategy}, n_init: {n_init}, batch_size: 2, cpus_per_proxy: 1, parallel: 2}}
budget: {{runs: {runs}}}
tracking: {{enabled: false}}
"""


def write_job(path: Path, *, name: str, ws: Path, demo: Path, seed: int, v2: bool, runs: int, tokens: int,
              strategy: str, n_init: int) -> Path:
    prose = f"{{path: {demo}/prose, max_documents: 150}}" if v2 else f"{demo}/prose"
    noise = f"  noise: {demo}/noise\n" if v2 else ""
    path.write_text(_JOB.format(name=name, ws=ws, demo=demo, seed=seed, prose=prose, noise=noise, tokens=tokens,
                                strategy=strategy, n_init=n_init, runs=runs))
    return path


def search(job: Path, reuse: Path | None = None) -> dict:
    from mixopt.config import load_job_config
    from mixopt.search import run_search

    cfg = load_job_config(job, {"reuse": {"job": str(reuse)}} if reuse else None)
    res = run_search(cfg, progress=False)
    return {"weights": res.proposal.weights, "predicted": res.proposal.predicted,
            "flops": float(sum(r.flops for r in res.runs)), "runs": len(res.runs), "cfg": cfg}


def evaluate(cfg, weights: dict, seeds: list[int]) -> list[float]:
    """The objective of ``weights`` trained at the job's target fidelity with fresh seeds."""
    from mixopt.data import load_prepared
    from mixopt.objective import Objective
    from mixopt.proxies import ProxyConfig, TrainSettings, train_proxy

    data = load_prepared(cfg.data_dir)
    fid = cfg.proxy.fidelity_list()[-1]
    settings = TrainSettings.from_job(cfg.proxy)
    obj, out = Objective.parse(cfg.search.objective), []
    for s in seeds:
        rec = train_proxy(ProxyConfig.preset(fid.preset), data, weights, tokens=fid.tokens, seed=10_000 + s,
                          settings=settings, threads=2)
        out.append(float(obj.values([[rec.final_loss[d] for d in data.domains]], list(data.domains))[0]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="experiments/out/reuse")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--v1-runs", type=int, default=12)
    ap.add_argument("--fresh-runs", type=int, default=16)
    ap.add_argument("--reuse-runs", type=int, default=6)
    ap.add_argument("--tokens", type=int, default=32_768)
    ap.add_argument("--strategy", default="bo")
    ap.add_argument("--eval-seeds", type=int, default=3)
    args = ap.parse_args()

    import ray

    from mixopt.data import build_demo_corpus

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    demo = out / "demo"
    if not (demo / "job.yaml").exists():
        build_demo_corpus(demo, seed=0)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024**2,
             _node_ip_address="127.0.0.1", runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    results: dict = {"args": vars(args), "seeds": {}}
    try:
        for seed in args.seeds:
            ws = out / f"ws-{seed}"
            common = {"ws": ws, "demo": demo, "seed": seed, "tokens": args.tokens, "strategy": args.strategy,
                      "n_init": 4}
            v1 = search(write_job(out / f"v1-{seed}.yaml", name="v1", v2=False, runs=args.v1_runs, **common))
            arms = {
                "fresh": search(write_job(out / f"fresh-{seed}.yaml", name="fresh", v2=True, runs=args.fresh_runs,
                                          **common)),
                "reuse": search(write_job(out / f"reuse-{seed}.yaml", name="reuse", v2=True, runs=args.reuse_runs,
                                          **common), reuse=ws / "jobs" / "v1"),
                "fresh-small": search(write_job(out / f"small-{seed}.yaml", name="small", v2=True,
                                                runs=args.reuse_runs, **common)),
            }
            row = {"v1_flops": v1["flops"]}
            eval_seeds = list(range(seed * 100, seed * 100 + args.eval_seeds))
            for name, a in arms.items():
                scores = evaluate(a["cfg"], a["weights"], eval_seeds)
                row[name] = {"flops": a["flops"], "runs": a["runs"], "weights": a["weights"],
                             "predicted": a["predicted"], "scores": scores, "mean": statistics.mean(scores)}
                print(f"seed {seed} {name:11s}: {a['runs']:2d} runs, {a['flops']:.3g} FLOPs, proposal scores "
                      f"{statistics.mean(scores):.4f} (eval seeds {eval_seeds})", flush=True)
            results["seeds"][seed] = row
    finally:
        ray.shutdown()
    rows = list(results["seeds"].values())

    def mean_se(xs):
        m = statistics.mean(xs)
        return m, (statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else float("nan"))

    print(f"\n{'arm':12s} {'runs':>5s} {'FLOPs':>10s} {'objective (mean ± se over seeds)':>34s}")
    for name in ("fresh", "reuse", "fresh-small"):
        m, se = mean_se([r[name]["mean"] for r in rows])
        fl = statistics.mean(r[name]["flops"] for r in rows)
        print(f"{name:12s} {rows[0][name]['runs']:5d} {fl:10.3g} {m:22.4f} ± {se:.4f}")
    diff = [r["reuse"]["mean"] - r["fresh"]["mean"] for r in rows]
    saved = 1 - statistics.mean(r["reuse"]["flops"] for r in rows) / statistics.mean(r["fresh"]["flops"] for r in rows)
    m, se = mean_se(diff)
    print(f"reuse - fresh: {m:+.4f} ± {se:.4f} (paired over seeds); compute saved against the fresh search "
          f"{100 * saved:.0f}% (v1 itself cost {statistics.mean(r['v1_flops'] for r in rows):.3g} FLOPs)")
    results["summary"] = {"reuse_minus_fresh": m, "se": se, "compute_saved": saved}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
