"""Multi-fidelity replay: which strategy finds a top-3 target-fidelity mixture for the least cost.

Pools (each with 3 fidelity levels and a cost per run):
- ``demo``: mixopt's own proxies on the demo corpus (``experiments/data/demo_pool``: 60 mixtures x 3 model
  sizes, cost = wall seconds), objective the mean of the 5 learnable domains;
- ``synth-high`` / ``synth-medium`` / ``synth-low``: synthetic pools (``experiments/data/synthetic_pools.py``)
  whose cheap levels correlate with the target at about 0.95 / 0.7 / 0.3; costs 1/16, 1/4, 1.

Every strategy is replayed for ``--seeds`` seeds with the same budget (``--budget`` target runs' worth of
cost), each point scoring ``strategy.recommend`` (the search's proposal). Printed per pool: cost to reach the
top 3 (seeds that never did count what they spent; "reached" says how many did) and its ratio to random
search's analytic expectation (random runs the target fidelity only), and the rank at half the budget.

    python experiments/bench_mf_replay.py --seeds 5 --budget 30 [--pools demo,synth-high] [--strategies ...]
        [--set bo.fidelity_model=multitask]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "data"))


def pools(names: list[str], demo: Path):
    for name in names:
        if name == "demo":
            from demo_pool import load_demo_pool

            from mixopt.replay import Pool

            t = load_demo_pool(demo)
            yield name, Pool.from_run_table(t, objective={d: 1.0 for d in t.domains if d != "noise"})
        else:
            from synthetic_pools import make_pool

            yield name, make_pool(name.split("-", 1)[1], seed=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pools", default="demo,synth-high,synth-medium,synth-low")
    ap.add_argument("--strategies", default="random,regmix,mixing_law,bo")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=30.0, help="in target-fidelity runs' worth of cost")
    ap.add_argument("--set", action="append", default=[], metavar="LABEL=STRATEGY.KEY=VALUE or STRATEGY.KEY=VALUE",
                    help="a strategy variant, e.g. bo-mt=bo.fidelity_model=multitask (adds a row)")
    ap.add_argument("--demo", type=Path, default=HERE / "data" / "demo_pool")
    ap.add_argument("--out", type=Path, default=Path("experiments/out/mf-replay"))
    a = ap.parse_args()
    import torch

    from mixopt.replay import replay

    torch.set_num_threads(1)
    runs: list[tuple[str, str, dict]] = [(s, s, {}) for s in a.strategies.split(",")]
    for item in a.set:
        label, _, spec = item.partition("=") if item.count("=") > 1 else ("", "", item)
        key, _, raw = spec.rpartition("=")
        strat, _, param = key.partition(".")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        runs.append((label or f"{strat}:{param}={raw}", strat, {param: value}))
    a.out.mkdir(parents=True, exist_ok=True)
    table = []
    for pname, pool in pools(a.pools.split(","), a.demo):
        budget = a.budget * float(pool.fidelity_costs[-1])
        N = len(pool.X)
        print(f"\n=== {pname}: {N} mixtures x {pool.n_levels} levels, level costs "
              f"{np.round(pool.fidelity_costs, 4).tolist()}, budget {budget:.4g} ===", flush=True)
        for label, strat, params in runs:
            t0 = time.time()
            res = replay(pool, [strat], seeds=a.seeds, budget=budget, strategy_params={strat: params})
            s = res.summary.iloc[0]
            c = res.curves
            cheap_share = float((c["fidelity_index"] < pool.n_levels - 1).mean())
            row = {"pool": pname, "strategy": label, "cost_to_top3": s["cost_to_top3"],
                   "reached_top3": int(s["reached_top3"]), "ratio_vs_random": s["cost_ratio_top3"],
                   "rank@0.5": s["rank@0.5"], "rank@1": s["rank@1"], "cheap_share": cheap_share,
                   "seconds": time.time() - t0}
            table.append(row)
            print(f"{label:<24} cost to top-3 {row['cost_to_top3']:8.3f} (reached {row['reached_top3']}/{a.seeds}) "
                  f"x{row['ratio_vs_random']:.3f} of random's expectation; rank @half {row['rank@0.5']:.1f} "
                  f"@end {row['rank@1']:.1f}; {100 * cheap_share:.0f}% cheap reveals ({row['seconds']:.0f}s)",
                  flush=True)
            c.assign(pool=pname, strategy=label).to_csv(a.out / f"curves_{pname}_{label}.csv", index=False)
    df = pd.DataFrame(table)
    df.to_csv(a.out / "summary.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print("\n" + df.to_string(index=False))


if __name__ == "__main__":
    main()
