"""CLI verb ``mixopt fit``: fit a surrogate on any table of past runs, print its CV table and a proposal.

    mixopt fit train_mixture.csv train_loss.csv --on index --weights 'train_' --targets 'metric/' \\
        --surrogate auto --propose --out out/

Several files are inner-joined on ``--on`` (default: their one shared column); ``--join FILE`` is the same
as an extra positional file. Column selections are exact names (comma-separated) or a regex / prefix.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mixopt.errors import MixoptError

__all__ = ["register", "run_fit"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fit`` to the ``mixopt`` parser."""
    p = sub.add_parser("fit", help="fit a surrogate on a table of past runs (and propose a mixture)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tables", nargs="+", type=Path, help="CSV / TSV / parquet / JSONL run table(s)")
    p.add_argument("--join", action="append", type=Path, default=[], help="another table to join (repeatable)")
    p.add_argument("--on", help="join key column (default: the one column all tables share)")
    p.add_argument("--weights", required=True, help="weight columns: names 'a,b,c' or a regex/prefix")
    p.add_argument("--targets", required=True, help="loss columns: names 'a,b,c' or a regex/prefix")
    p.add_argument("--fidelity-columns", help="fidelity columns (tokens, steps, model size), same syntax")
    p.add_argument("--objective", default="mean", help="'mean' or 'target=w,target=w' (substring names ok)")
    p.add_argument("--surrogate", default="auto", help="surrogate name (see docs/surrogates.md); default auto")
    p.add_argument("--params", default="{}", help="JSON dict of surrogate parameters")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (0 = no CV table)")
    p.add_argument("--propose", action="store_true", help="also propose the best mixture")
    p.add_argument("--method", default="auto", choices=["auto", "sample_topk", "slsqp"])
    p.add_argument("--min-weight", help="float or 'domain=w,...'")
    p.add_argument("--max-weight", help="float or 'domain=w,...'")
    p.add_argument("--kl-to-prior", type=float, help="max KL(proposal || prior) in nats")
    p.add_argument("--prior", help="'domain=w,...' (default: the mean of the runs' mixtures)")
    p.add_argument("--sum-tol", type=float, default=0.05, help="rows whose weights sum further from 1 are skipped")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write cv.json, proposal.json and fit.json here")
    p.set_defaults(handler=run_fit)


def _kv(text: str | None, what: str):
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    out = {}
    for part in text.split(","):
        if "=" not in part:
            raise MixoptError(f"{what}: expected a number or 'name=value,...', got {text!r}")
        k, v = part.rsplit("=", 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise MixoptError(f"{what}: {v!r} is not a number") from None
    return out


def _print_cv(rows: list[dict], file=None) -> None:
    file = file or sys.stdout
    print(f"{'surrogate':<12} {'spearman':>9} {'mae':>9} {'tgt_sp':>8} {'tgt_mae':>8} {'secs':>7}  note", file=file)
    for r in rows:
        if "skipped" in r:
            print(f"{r['surrogate']:<12} {'-':>9} {'-':>9} {'-':>8} {'-':>8} {'-':>7}  skipped: {r['skipped']}",
                  file=file)
            continue
        note = "chosen" if r.get("chosen") else ""
        print(f"{r['surrogate']:<12} {r['spearman']:>9.4f} {r['mae']:>9.4f} {r['mean_target_spearman']:>8.4f} "
              f"{r['mean_target_mae']:>8.4f} {r['seconds']:>7.1f}  {note}", file=file)


def run_fit(args: argparse.Namespace) -> int:
    """Handler of ``mixopt fit``."""
    from mixopt.constraints import Constraints
    from mixopt.propose import propose
    from mixopt.runs import load_run_table, objective_vector
    from mixopt.surrogates import make_surrogate
    from mixopt.surrogates.auto import cross_validate

    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as e:
        raise MixoptError(f"--params is not valid JSON ({e.msg})") from None
    if not isinstance(params, dict):
        raise MixoptError("--params must be a JSON object")
    table = load_run_table(list(args.tables) + list(args.join), weights=args.weights, targets=args.targets,
                           fidelity=args.fidelity_columns, on=args.on, sum_tol=args.sum_tol)
    print(f"{table.source}: {table.summary()}")
    for s in table.skipped[:20]:
        print(f"  skipped {s}")
    if len(table.skipped) > 20:
        print(f"  ... and {len(table.skipped) - 20} more skipped rows")
    obj_spec = "mean" if args.objective == "mean" else _kv(args.objective, "--objective")
    if isinstance(obj_spec, float):
        raise MixoptError("--objective: use 'mean' or 'target=w,...'")
    ow = objective_vector(obj_spec, table.target_names)
    params.setdefault("random_state", args.seed)
    if table.fidelity_columns:
        params.setdefault("fidelity_columns", table.fidelity_columns)
    td = table.target_domains()
    if args.surrogate in ("bimix", "auto") and td is not None:
        params.setdefault("target_domains", td)
    if args.surrogate == "auto":
        params.setdefault("objective_weights", ow.tolist())
        params.setdefault("n_folds", max(2, args.folds))
    surrogate = make_surrogate(args.surrogate, **params)
    y = table.targets
    if args.surrogate == "auto":
        surrogate.fit(table.X, y)
        cv_rows = surrogate.cv_table_
    else:
        cv_rows = []
        if args.folds >= 2:
            res = cross_validate(surrogate, table.X, y, n_folds=args.folds, objective_weights=ow, seed=args.seed,
                                 fidelity_columns=table.fidelity_columns)
            cv_rows = [{"surrogate": args.surrogate, "chosen": True,
                        **{k: round(float(res[k]), 5) for k in ("spearman", "mae", "mean_target_spearman",
                                                                 "mean_target_mae", "seconds")}}]
        surrogate.fit(table.X, y)
    if cv_rows:
        print(f"\n{args.folds}-fold cross-validation on the objective ({len(table)} runs):")
        _print_cv(cv_rows)
    out = {"table": {"source": table.source, "runs": len(table), "domains": table.domains,
                     "targets": table.target_names, "fidelity": table.fidelity_names,
                     "skipped": table.skipped},
           "surrogate": args.surrogate, "chosen": getattr(surrogate, "chosen_", args.surrogate),
           "objective_weights": dict(zip(table.target_names, ow.tolist(), strict=True))}
    proposal = None
    if args.propose:
        prior = _kv(args.prior, "--prior")
        if isinstance(prior, dict):
            prior = np.array([prior.get(d, 0.0) for d in table.domains])
        elif prior is None:
            prior = table.weights.mean(axis=0)
        else:
            raise MixoptError("--prior: expected 'domain=w,...'")
        cons = Constraints(min_weight=_kv(args.min_weight, "--min-weight") or 0.0,
                           max_weight=_kv(args.max_weight, "--max-weight") or 1.0, kl_to_prior=args.kl_to_prior)
        proposal = propose(surrogate, table.domains, objective_weights=ow, constraints=cons, prior=prior,
                           method=args.method, seed=args.seed, target_names=table.target_names)
        if not cv_rows or args.surrogate != "auto":
            proposal.cv_table = cv_rows or None
        print(f"\nproposal ({proposal.surrogate}, {proposal.method}): predicted objective {proposal.predicted:.4f}"
              + (f" ± {proposal.std:.4f}" if proposal.std is not None else ""))
        for d, w in sorted(proposal.weights.items(), key=lambda kv: -kv[1]):
            if w >= 5e-4:
                print(f"  {d:<30} {w:.4f}")
        if proposal.active_constraints:
            print(f"  active constraints: {', '.join(proposal.active_constraints)}")
        best = int(np.argmin(table.targets @ ow))
        print(f"  best observed run: {table.run_ids[best]} objective {float(table.targets[best] @ ow):.4f}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cv.json").write_text(json.dumps(cv_rows, indent=2))
        (args.out / "fit.json").write_text(json.dumps(out, indent=2))
        if proposal is not None:
            (args.out / "proposal.json").write_text(json.dumps(proposal.to_dict(), indent=2))
        print(f"\nwrote {args.out}/")
    return 0
