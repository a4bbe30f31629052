"""CLI verbs for the data layer: ``demo-data``, ``prepare``, ``plan``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def _demo_data(args: argparse.Namespace) -> int:
    from mixopt.data import build_demo_corpus

    paths = build_demo_corpus(args.dir, seed=args.seed, bytes_per_domain=int(args.size_mb * 1e6))
    for name, path in paths.items():
        size = sum(f.stat().st_size for f in path.iterdir())
        print(f"{name:<12}{size / 1e6:>7.2f} MB  {path}")
    print(f"wrote {args.dir}/job.yaml; next: mixopt prepare {args.dir}/job.yaml")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from mixopt.config import load_job_config
    from mixopt.data import prepare_data

    cfg = load_job_config(args.config)
    data = prepare_data(cfg, progress=not args.quiet)
    print(f"{'domain':<14}{'documents':>11}{'train tokens':>14}{'val tokens':>12}  status")
    for r in data.summary():
        print(f"{r['domain']:<14}{r['documents']:>11,}{r['train_tokens']:>14,}{r['val_tokens']:>12,}  {r['work']}")
    if all(w == "up to date" for w in data.work.values()):
        print(f"data in {data.data_dir} is up to date (nothing to do)")
    else:
        print(f"prepared {data.data_dir} (vocab {data.vocab_size}, {data.dtype.name} shards)")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from mixopt.config import load_job_config
    from mixopt.search.plan import format_plan, plan_job
    from mixopt.search.preflight import check_plan

    cfg = load_job_config(args.config)
    plan = plan_job(cfg)
    print(format_plan(plan))
    problems = check_plan(cfg, plan)
    for p in problems:  # the same checks `mixopt search` makes before it spends anything
        print(f"error: {p}", file=sys.stderr)
    return 2 if problems else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo-data``, ``prepare`` and ``plan`` to the ``mixopt`` parser."""
    p = sub.add_parser("demo-data", help="build the offline demo corpus and its job.yaml")
    p.add_argument("dir", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size-mb", type=float, default=1.0, help="text per domain, MB (default 1)")
    p.set_defaults(handler=_demo_data)

    p = sub.add_parser("prepare", help="tokenize the job's domains into token shards (idempotent)")
    p.add_argument("config", help="job YAML")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_prepare)

    p = sub.add_parser("plan", help="validate a job and show what it would do and cost")
    p.add_argument("config", help="job YAML")
    p.set_defaults(handler=_plan)
