"""Replay benchmark on the RegMix run tables: regret vs revealed runs for every strategy.

The pool is the 768 RegMix 1M runs (train + test concatenated, one fidelity); targets: the mean of the 13
validation losses and the Pile-CC loss. Every strategy starts from the same random initial design per seed;
non-random strategies get ``--budget`` reveals, random search the whole pool (it is cheap), and its
analytic expectation (N+1)/4 reveals to reach the top 3 is printed beside the measured one.

    python experiments/bench_replay.py --seeds 5 --budget 64 [--strategies bo,regmix,mixing_law]
        [--compare-recommend] [--data ../shared/data/regmix]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mixopt.replay import Pool, load_pool, replay


def load_regmix(data: Path) -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    """(weights (768, 17), losses frame (768, 13), domain names): train + test, each file pair joined on index."""
    pool = load_pool([data / "train_mixture_1m.csv", data / "test_mixture_1m.csv"],
                     join=[data / "train_pile_loss_1m.csv", data / "test_pile_loss_1m.csv"], on="index",
                     weights="train_", targets="metric/")
    return pool.X, pd.DataFrame(pool.Y[:, -1, :], columns=pool.target_names), pool.domains


def main() -> None:
    torch.set_num_threads(1)  # GP fits on <100 points: threads only add contention on shared cores
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "regmix")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=64, help="reveals for the non-random strategies")
    ap.add_argument("--strategies", default="bo,regmix,mixing_law")
    ap.add_argument("--targets", default="mean,pile_cc")
    ap.add_argument("--compare-recommend", action="store_true",
                    help="also run each model-based strategy with recommend=revealed (its default is predicted)")
    ap.add_argument("--out", type=Path, default=Path("experiments/out/replay"))
    ap.add_argument("--n-init", type=int, default=None,
                    help="random initial reveals shared by every strategy (default: replay's, max(4, k//4+1))")
    args = ap.parse_args()

    W, L, domains = load_regmix(args.data)
    print(f"pool: {W.shape[0]} runs, {W.shape[1]} domains, {L.shape[1]} targets")
    params = {"mixing_law": {"refit_every": 4, "surrogate_params": {"n_restarts": 2}}}
    for target in args.targets.split(","):
        if target == "mean":
            names, objective = list(L.columns), "mean"
        else:
            names = [c for c in L.columns if target in c]
            objective = {names[0]: 1.0}
        pool = Pool.from_arrays(W, L[names].to_numpy(), target_names=names, domains=domains,
                                objective=objective if target != "mean" else "mean")
        N = pool.X.shape[0]
        print(f"\n=== target {target} ({names[0] if target != 'mean' else 'mean of 13'}), pool {N} ===")
        t0 = time.time()
        rand = replay(pool, ["random"], seeds=args.seeds, budget=N, n_init=args.n_init)
        rand_top3 = rand.summary.loc[0, "reveals_to_top3"]
        analytic = rand.summary.attrs["random_expected_reveals_to_top3"]
        print(f"random: reveals to top-3 measured {rand_top3:.1f} (analytic {analytic:.1f}), "
              f"to rank 1 {rand.summary.loc[0, 'reveals_to_rank1']:.1f} ({time.time() - t0:.1f}s)")
        runs = [(s, {}) for s in args.strategies.split(",")]
        if args.compare_recommend:  # each model-based strategy with the other rule (its default is predicted)
            runs += [(f"{s}:revealed", {"recommend": "revealed"}) for s in args.strategies.split(",") if s != "random"]
        frames = [rand.curves]
        rows = []
        for label, extra in runs:
            name = label.split(":")[0]
            t0 = time.time()
            res = replay(pool, [name], seeds=args.seeds, budget=args.budget, n_init=args.n_init,
                         strategy_params={name: params.get(name, {}) | extra},
                         progress=lambda s, k, t0=t0: print(f"  {s} seed {k} ({time.time() - t0:.0f}s)", flush=True))
            dt = time.time() - t0
            s = res.summary.iloc[0]
            c = res.curves
            reg = {b: c[c.reveal == b].regret.mean() for b in (16, 32, 64) if b <= args.budget}
            rank = {b: c[c.reveal == b]["rank"].mean() for b in (16, 32, 64) if b <= args.budget}
            rows.append(dict(strategy=label, reveals_to_top3=s.reveals_to_top3, reached_top3=s.reached_top3,
                             reveals_to_rank1=s.reveals_to_rank1, reached_rank1=s.reached_rank1,
                             ratio_vs_random=s.reveals_to_top3 / analytic,
                             **{f"regret@{b}": v for b, v in reg.items()},
                             **{f"rank@{b}": v for b, v in rank.items()}, seconds=dt))
            frames.append(c.assign(strategy=label))
            print(f"{label}: done in {dt:.1f}s", flush=True)
        table = pd.DataFrame(rows)
        with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
            print(table.to_string(index=False))
        args.out.mkdir(parents=True, exist_ok=True)
        pd.concat(frames).to_csv(args.out / f"curves_{target}.csv", index=False)
        table.to_csv(args.out / f"summary_{target}.csv", index=False)


if __name__ == "__main__":
    main()
