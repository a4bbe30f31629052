"""Benchmark the surrogates on a train/test pair of run tables (default: the RegMix 1M tables).

Fits every surrogate on the training runs (all of them, and random subsets of 32/64/128), scores the held-out
runs by Spearman rank correlation and MAE on one focus target (default: Pile-CC) and on the mean of all
targets, and prints each figure next to LightGBM's (RegMix's model) measured in the same run. Also times
fit + propose on the full table and GP fit + batch acquisition on a synthetic 300 runs x 20 domains table.

    python experiments/bench_surrogates.py                          # everything (~10+ min on 2 cores)
    python experiments/bench_surrogates.py --n 512 64 --subsets 2 --surrogates linear lightgbm auto
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from mixopt.acquisition import select_batch
from mixopt.feasible import Constraints
from mixopt.proposal import propose
from mixopt.runs import load_run_table
from mixopt.surrogates import fit_model, make_surrogate

warnings.filterwarnings("ignore")
os.environ.setdefault("OMP_NUM_THREADS", "2")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "regmix"


def _params(name: str, table) -> dict:
    p = {"random_state": 0}
    td = table.target_domains()
    if name in ("bimix", "auto") and td is not None:
        p["target_domains"] = td
    return p


def _score(y, p) -> tuple[float, float]:
    return float(spearmanr(y, p).statistic), float(np.mean(np.abs(y - p)))


def accuracy(train, test, names, ns, subsets, focus) -> dict:
    results = {}
    for n in ns:
        seeds = [0] if n >= len(train) else list(range(subsets))
        for name in names:
            rows = []
            for seed in seeds:
                idx = np.arange(len(train)) if n >= len(train) else np.sort(
                    np.random.default_rng(seed).choice(len(train), n, replace=False))
                t0 = time.perf_counter()
                s = make_surrogate(name, **_params(name, train)).fit(train.X[idx], train.targets[idx])
                secs = time.perf_counter() - t0
                P = s.predict(test.X)
                sp_f, mae_f = _score(test.targets[:, focus], P[:, focus])
                sp_m, mae_m = _score(test.targets.mean(1), P.mean(1))
                sp_each = np.mean([_score(test.targets[:, j], P[:, j])[0] for j in range(P.shape[1])])
                rows.append((sp_f, mae_f, sp_m, mae_m, sp_each, secs, getattr(s, "chosen_", "")))
            a = np.array([r[:6] for r in rows], float)
            results[(n, name)] = (a.mean(0), a.std(0), [r[6] for r in rows])
            m, sd, ch = results[(n, name)]
            print(f"n={n:<4} {name:<11} focus sp {m[0]:.4f}±{sd[0]:.3f} mae {m[1]:.4f} | mean-target sp "
                  f"{m[2]:.4f}±{sd[2]:.3f} mae {m[3]:.4f} | avg per-target sp {m[4]:.4f} | fit {m[5]:.1f}s"
                  + (f" chose {ch}" if any(ch) else ""), flush=True)
    return results


def timing(train) -> None:
    print("\n# fit + propose on the full table (weights x targets = "
          f"{train.weights.shape[1]} x {train.targets.shape[1]}, n={len(train)})")
    base = None
    feasible = Constraints().resolve(train.domains, prior=train.weights.mean(0))
    for name in ("lightgbm", "linear", "mixing_law", "bimix", "auto"):
        t0 = time.perf_counter()
        model = fit_model(name, train, "mean", seed=0, per_target=True)  # what a search / `mixopt fit` does
        t1 = time.perf_counter()
        p = propose(model, feasible, seed=0)
        t2 = time.perf_counter()
        base = base or (t2 - t0)
        print(f"{name:<11} fit {t1 - t0:6.2f}s propose {t2 - t1:5.2f}s total {t2 - t0:6.2f}s "
              f"(x{(t2 - t0) / base:.2f} of lightgbm) method {p.method} predicted {p.predicted:.4f}", flush=True)
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(20), 300)
    y = 3.0 + np.exp(X @ rng.normal(0, 1, 20)) + 0.01 * rng.normal(size=300)
    cands = rng.dirichlet(np.ones(20), 2048)
    t0 = time.perf_counter()
    gp = make_surrogate("gp", random_state=0).fit(X, y)
    t1 = time.perf_counter()
    select_batch(gp, cands, q=4, seed=0)
    t2 = time.perf_counter()
    levels = np.array([[1e6], [4e6], [1.6e7]])
    fo = rng.choice(levels[:, 0], 300)
    Xf, yf = np.column_stack([X, fo]), y + 300 / np.sqrt(fo)
    msg = []
    for threads in (1, 2):  # 1: what the search driver uses (the proxies hold the other cores); 2: the machine
        kw = dict(random_state=0, fidelity_columns=[20], target_fidelity=[1.6e7], fidelity_model="multitask",
                  n_threads=threads)
        ta = time.perf_counter()
        prev = make_surrogate("gp", **kw).fit(Xf[:290], yf[:290])  # the previous round's fit (cold)
        tb = time.perf_counter()
        mf = make_surrogate("gp", init_state=prev.hyper_state(), **kw).fit(Xf, yf)  # this round, warm-started
        tc = time.perf_counter()
        select_batch(mf, cands, q=4, level_fidelity=levels, level_costs=[1, 4, 16], seed=0, n_threads=threads)
        td = time.perf_counter()
        msg.append(f"{threads} thread(s): multitask GP fit cold {tb - ta:.2f}s / warm {tc - tb:.2f}s + MES "
                   f"(3 fidelities, q=4) {td - tc:.2f}s = step {tb - ta + td - tc:.2f}s cold, "
                   f"{td - tb:.2f}s warm")
    print(f"gp 300x20: surrogate fit {t1 - t0:.2f}s; select_batch q=4 over 2048 candidates: qLogNEI "
          f"{t2 - t1:.2f}s", flush=True)
    for m in msg:
        print(f"gp 300x20x3 {m}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--n", type=int, nargs="+", default=[512, 128, 64, 32])
    ap.add_argument("--subsets", type=int, default=3, help="random training subsets per n < all")
    ap.add_argument("--surrogates", nargs="+", default=["linear", "lightgbm", "mixing_law", "bimix", "gp", "auto"])
    ap.add_argument("--focus", default="pile_cc", help="substring of the focus target's column name")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--no-accuracy", action="store_true")
    a = ap.parse_args()
    load = lambda split: load_run_table([a.data / f"{split}_mixture_1m.csv", a.data / f"{split}_pile_loss_1m.csv"],  # noqa: E731
                                        weights="train_", targets="metric/", on="index")
    train, test = load("train"), load("test")
    focus = next(i for i, t in enumerate(train.target_names) if a.focus in t)
    print(f"train {train.summary()}; test {test.summary()}; focus target {train.target_names[focus]}")
    if not a.no_accuracy:
        res = accuracy(train, test, a.surrogates, a.n, a.subsets, focus)
        if "lightgbm" in a.surrogates:
            print("\n# ratio to lightgbm (Spearman focus / mean-target; MAE focus / mean-target)")
            for (n, name), (m, _, _) in res.items():
                b = res[(n, "lightgbm")][0]
                print(f"n={n:<4} {name:<11} sp {m[0] / b[0]:.3f} / {m[2] / b[2]:.3f}   "
                      f"mae {m[1] / b[1]:.2f} / {m[3] / b[3]:.2f}")
    if not a.no_timing:
        timing(train)


if __name__ == "__main__":
    main()
