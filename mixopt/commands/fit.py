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

from mixopt.commands import check_out_dir
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
    p.add_argument("--quiet", action="store_true", help="no progress lines while auto cross-validates")
    p.set_defaults(handler=run_fit)


def _kv(text: str | None, what: str):
    """``None``, a number, or ``{name: number}`` from ``'name=value,...'``."""
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

    def num(r, key, fmt):
        return format(r[key], fmt) if isinstance(r.get(key), (int, float)) else "-".rjust(int(fmt.split(".")[0]))

    print(f"{'surrogate':<20} {'spearman':>9} {'mae':>9} {'tgt_sp':>8} {'cov68':>6} {'cov95':>6} {'weight':>7} "
          f"{'secs':>6}  note", file=file)
    for r in rows:
        if "skipped" in r:
            print(f"{r['surrogate']:<20} {'skipped: ' + r['skipped']}", file=file)
            continue
        note = "chosen" if r.get("chosen") else ""
        if r["surrogate"] == "stack" and r.get("weights"):
            note = (note + " " if note else "") + "blend " + ", ".join(f"{k} {v}" for k, v in r["weights"].items())
        print(f"{r['surrogate']:<20} {num(r, 'spearman', '9.4f')} {num(r, 'mae', '9.4f')} "
              f"{num(r, 'mean_target_spearman', '8.4f')} {num(r, 'coverage68', '6.2f')} {num(r, 'coverage95', '6.2f')} "
              f"{num(r, 'weight', '7.3f')} {num(r, 'seconds', '6.1f')}  {note}", file=file)


def _progress(done: int, total: int, label: str) -> None:
    """One line per cross-validation fit on stderr (auto can take a while on large tables)."""
    print(f"  cv {done}/{total}: {label}", file=sys.stderr, flush=True)


def run_fit(args: argparse.Namespace) -> int:
    """Handler of ``mixopt fit``: parse, call :func:`mixopt.fit.fit_table`, print, write."""
    from mixopt.feasible import Constraints
    from mixopt.fit import fit_table
    from mixopt.runs import load_run_table
    from mixopt.trust import noise_line

    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as e:
        raise MixoptError(f"--params is not valid JSON ({e.msg})") from None
    if not isinstance(params, dict):
        raise MixoptError("--params must be a JSON object")
    check_out_dir(args.out)
    table = load_run_table(list(args.tables) + list(args.join), weights=args.weights, targets=args.targets,
                           fidelity=args.fidelity_columns, on=args.on, sum_tol=args.sum_tol)
    print(f"{table.source}: {table.summary()}")
    for s in table.skipped[:20]:
        print(f"warning: skipped {s}", file=sys.stderr)
    if len(table.skipped) > 20:
        print(f"warning: ... and {len(table.skipped) - 20} more skipped rows", file=sys.stderr)
    prior = _kv(args.prior, "--prior")
    if isinstance(prior, float):
        raise MixoptError("--prior: expected 'domain=w,...'")
    if isinstance(prior, dict):
        unknown = sorted(set(prior) - set(table.domains))
        if unknown:
            raise MixoptError(f"--prior: unknown domain(s) {unknown}; domains are {table.domains}")
        prior = [prior.get(d, 0.0) for d in table.domains]
    cons = Constraints(min_weight=_kv(args.min_weight, "--min-weight") or 0.0,
                       max_weight=_kv(args.max_weight, "--max-weight") or 1.0, kl_to_prior=args.kl_to_prior)
    if args.surrogate == "auto" and not args.quiet:
        params.setdefault("progress", _progress)
    res = fit_table(table, surrogate=args.surrogate, objective=args.objective, params=params, folds=args.folds,
                    seed=args.seed, propose=args.propose, constraints=cons, prior=prior, method=args.method)
    if res.cv_table:
        print(f"\n{args.folds}-fold cross-validation on the objective ({len(table)} runs):")
        _print_cv(res.cv_table)
    p = res.proposal
    if p is not None:
        std = f" ± {p.std:.4f}" if p.std is not None else ""
        pred = f"predicted objective {p.predicted:.4f}{std}" if p.predicted is not None else "no prediction"
        print(f"\nproposal ({p.surrogate or p.rule}, {p.method}): {pred}")
        if p.reason:
            print(f"  note: {p.reason}")
        if p.trust:
            warn = "; ".join(p.trust.get("warnings", []))
            print(f"  trust: {p.trust['level']}" + (f" -- {warn}" if warn else ""))
            if p.trust["level"] != "high":
                print(f"  advice: {p.trust['recommendation']}")
            if noise_line(p.trust):
                print(f"  {noise_line(p.trust)}")
        for d, w in sorted(p.weights.items(), key=lambda kv: -kv[1]):
            if w >= 5e-4:
                print(f"  {d:<30} {w:.4f}")
        if p.active_constraints:
            print(f"  active constraints: {', '.join(p.active_constraints)}")
        best = p.baselines["best_run"]
        print(f"  best observed run: {best['run_id']} objective {best['observed']:.4f}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cv.json").write_text(json.dumps(res.cv_table, indent=2))
        (args.out / "fit.json").write_text(json.dumps(res.to_dict(), indent=2))
        if p is not None:
            (args.out / "proposal.json").write_text(json.dumps(p.to_dict(), indent=2))
        print(f"\nwrote {args.out}/")
    return 0
