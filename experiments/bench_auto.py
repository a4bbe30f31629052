"""Decision-quality benchmark of ``auto`` against every single candidate, through the real decision path.

Every model is fitted with :func:`mixopt.surrogates.fit_model` (what a search, ``mixopt fit`` and replay
use) on a training table and scored on held-out runs: Spearman and MAE of the objective, and for models
with a std the share of held-out errors inside the 68% / 95% intervals. ``auto`` is scored the same way,
so "auto - best single" is measured on data auto never saw.

Tables:
- ``regmix``: RegMix's 512 training runs -> its 256 test runs (1M params), objectives ``mean`` of the 13
  losses and ``pile_cc``; plus random training subsets of 32 / 64 / 128 runs (``--subsets`` each).
- ``demo``: mixopt's own 60 mixtures x 3 fidelities (``experiments/data/demo_pool``): fit on every run
  below the largest fidelity plus the largest for half the mixtures, score the other half at the largest
  (the target fidelity), objective ``mean`` of the 5 learnable domains.

    python experiments/bench_auto.py [--tables regmix,demo] [--n 512 128 64 32] [--subsets 3]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "data"))
warnings.filterwarnings("ignore")

# every single model auto may use, each in the mode auto tries it in ("name:mode" = per_target / objective)
CANDIDATES = ["linear", "lightgbm:objective", "lightgbm:per_target", "mixing_law", "bimix", "gp"]


def _score(model, test, objective) -> dict:
    y = test.objective(objective)
    mean, sd = model.predict(test.weights)
    out = {"spearman": float(spearmanr(y, mean).statistic), "mae": float(np.mean(np.abs(y - mean)))}
    if sd is not None and np.all(sd > 0):
        out["cov68"] = float(np.mean(np.abs(y - mean) <= sd))
        out["cov95"] = float(np.mean(np.abs(y - mean) <= 1.96 * sd))
    return out


def evaluate(train, test, objective, label, names) -> list[dict]:
    from mixopt.surrogates import fit_model

    rows = []
    for spec in names:
        name, _, mode = spec.partition(":")
        t0 = time.perf_counter()
        try:
            model = fit_model(name, train, objective, seed=0, per_target=None if not mode else mode == "per_target")
        except Exception as e:  # noqa: BLE001 - a candidate that cannot fit this table is reported
            rows.append({"table": label, "model": spec, "error": str(e).splitlines()[0][:80]})
            continue
        secs = time.perf_counter() - t0
        r = {"table": label, "model": model.describe() + (f":{mode}" if mode else ""), "seconds": secs}
        r |= _score(model, test, objective)
        if name == "auto":
            s = model.surrogate
            r["kept"] = ",".join(f"{k}:{v:.2f}" for k, v in s.weights_.items())
            r["cv"] = s.cv_kind_.split(":")[0]
            r["cv_cov68"] = s.coverage68_  # the coverage auto reports from its own CV
        rows.append(r)
    best = max((r for r in rows if "spearman" in r and r["model"].split("->")[0] != "auto"),
               key=lambda r: r["spearman"], default=None)
    for r in rows:
        if best is not None and "spearman" in r:
            r["vs_best"] = r["spearman"] - best["spearman"]
        line = f"{label:<28} {r['model']:<24}"
        if "error" in r:
            print(line + f" failed: {r['error']}", flush=True)
            continue
        cov = f" cov68 {r['cov68']:.2f} cov95 {r['cov95']:.2f}" if "cov68" in r else ""
        extra = f"  kept {r['kept']} ({r['cv']}; CV cov68 {r['cv_cov68']:.2f})" if "kept" in r else ""
        print(line + f" sp {r['spearman']:.4f} ({r['vs_best']:+.4f} vs best single) mae {r['mae']:.4f}"
              f"{cov} {r['seconds']:.1f}s{extra}", flush=True)
    return rows


def regmix_tables(data: Path, ns, subsets):
    from mixopt.runs import load_run_table

    def load(split):
        return load_run_table([data / f"{split}_mixture_1m.csv", data / f"{split}_pile_loss_1m.csv"],
                              weights="train_", targets="metric/", on="index")

    train, test = load("train"), load("test")
    pile = next(t for t in train.target_names if "pile_cc" in t)
    for n in ns:
        seeds = [0] if n >= len(train) else list(range(subsets))
        for seed in seeds:
            idx = np.arange(len(train)) if n >= len(train) else np.sort(
                np.random.default_rng(seed).choice(len(train), n, replace=False))
            for objective, oname in (("mean", "mean13"), (pile, "pile_cc")):
                yield f"regmix n={n} s{seed} {oname}", train.take(idx), test, objective


def demo_tables(folder: Path):
    from demo_pool import load_demo_pool

    t = load_demo_pool(folder)
    top = t.level == t.target_level
    mix = np.unique(np.round(t.weights, 6), axis=0, return_inverse=True)[1].ravel()
    held = np.isin(mix, np.random.default_rng(0).permutation(mix.max() + 1)[: (mix.max() + 1) // 2])
    objective = {d: 1.0 for d in t.domains if d != "noise"}
    yield "demo 3 sizes, half at target", t.take(~(top & held)), t.take(top & held), objective


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", default="regmix,demo")
    ap.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data" / "regmix")
    ap.add_argument("--demo", type=Path, default=HERE / "data" / "demo_pool")
    ap.add_argument("--n", type=int, nargs="+", default=[512, 128, 64, 32])
    ap.add_argument("--subsets", type=int, default=3)
    ap.add_argument("--models", default=",".join(CANDIDATES + ["auto"]))
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    names = a.models.split(",")
    rows = []
    gens = []
    if "regmix" in a.tables:
        gens.append(regmix_tables(a.data, a.n, a.subsets))
    if "demo" in a.tables:
        gens.append(demo_tables(a.demo))
    for gen in gens:
        for label, train, test, objective in gen:
            rows += evaluate(train, test, objective, label, names)
    auto = [r for r in rows if r.get("model", "").startswith("auto") and "vs_best" in r]
    if auto:
        worst = min(auto, key=lambda r: r["vs_best"])
        covs = [r["cov68"] for r in auto if "cov68" in r]
        cvc = [r["cv_cov68"] for r in auto]
        print(f"\nauto vs the best single candidate (held-out Spearman): mean {np.mean([r['vs_best'] for r in auto]):+.4f}, "
              f"worst {worst['vs_best']:+.4f} ({worst['table']}); stacks kept on {sum('stack' in r['model'] for r in auto)} "
              f"of {len(auto)} tables; auto's 68% coverage on held-out runs {min(covs):.2f}-{max(covs):.2f}, "
              f"in its own CV {min(cvc):.2f}-{max(cvc):.2f}")


if __name__ == "__main__":
    main()
