"""CLI verb ``mixopt replay``: judge search strategies offline on a table of finished runs."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from mixopt.commands import check_out_dir
from mixopt.errors import MixoptError
from mixopt.objective import Objective
from mixopt.security import redact_uri

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``mixopt replay`` to the `mixopt` parser."""
    p = sub.add_parser(
        "replay",
        help="replay search strategies on a table of finished runs (regret vs cost)",
        description="Pool-based simulation: each strategy reveals rows of the table one at a time; the "
        "curves report the true regret and rank of the mixture it would recommend after each reveal.",
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUNS", help="run table(s) (CSV/parquet); several are concatenated")
    p.add_argument("--join", nargs="+", type=Path, metavar="FILE", help="per-run target file(s), one per RUNS, joined on --on")
    p.add_argument("--on", metavar="COL", help="join column (e.g. index)")
    p.add_argument("--weights", required=True, metavar="COLS",
                   help="weight columns: 'a,b,c' exact names or a prefix/regex (e.g. train_)")
    p.add_argument("--targets", required=True, metavar="COLS",
                   help="target (loss) columns: 'a,b,c' exact names or a prefix/regex (e.g. metric/)")
    p.add_argument("--objective", default="mean", help="'mean' of the targets or 'col=w,col=w' (a unique part of the name is enough; default: mean)")
    p.add_argument("--strategy", default="random,regmix,mixing_law,bo", help="comma list (default: all four)")
    p.add_argument("--fidelity-column", metavar="COL", help="numeric column holding each run's fidelity")
    p.add_argument("--target-fidelity", type=float, metavar="VALUE", help="fidelity judged (default: the largest)")
    p.add_argument("--cost-column", metavar="COL", help="positive cost of each run (default: cost ∝ fidelity)")
    p.add_argument("--budget", type=float, help="cost per replay (runs without fidelity/cost; default 50 target runs)")
    p.add_argument("--seeds", type=int, default=5, help="seeds per strategy (default 5)")
    p.add_argument("--n-init", type=int, help="initial design size")
    p.add_argument("--batch-size", type=int, default=1, help="picks per strategy.ask (default 1)")
    p.add_argument("--set", action="append", default=[], metavar="STRATEGY.KEY=VALUE",
                   help="strategy parameter, e.g. bo.recommend=predicted or mixing_law.refit_every=4")
    p.add_argument("--no-verify", action="store_true",
                   help="do not reveal a low-trust recommendation before asking (the search's verify_proposals)")
    p.add_argument("--out", type=Path, default=Path("replay-out"), help="output folder (default replay-out)")
    p.add_argument("--tracking-uri", help="MLflow URI (default: sqlite:///<out>/mlflow.db)")
    p.add_argument("--experiment", default="mixopt-replay", help="MLflow experiment (default mixopt-replay)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.set_defaults(handler=run_replay)


def _strategy_params(items: list[str], names: list[str]) -> dict[str, dict]:
    params: dict[str, dict] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        strat, dot, name = key.partition(".")
        if not sep or not dot or strat not in names:
            raise MixoptError(f"--set {item!r}: expected STRATEGY.KEY=VALUE with STRATEGY one of {names}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        params.setdefault(strat, {})[name] = value
    return params


def run_replay(args: argparse.Namespace) -> int:
    from mixopt.replay import load_pool, replay
    from mixopt.replay.report import log_replay_mlflow, write_outputs
    from mixopt.strategies import available_strategies
    from mixopt.tracking import check_tracking_server, client_uri

    names = [s.strip() for s in args.strategy.split(",") if s.strip()]
    unknown = [s for s in names if s not in available_strategies()]
    if unknown or not names:
        raise MixoptError(f"--strategy: unknown {unknown}; choose from {available_strategies()}")
    params = _strategy_params(args.set, names)
    if args.join and len(args.join) != len(args.runs):
        raise MixoptError(f"--join: give one file per RUNS table ({len(args.runs)}), got {len(args.join)}")
    if args.seeds < 1:
        raise MixoptError("--seeds must be at least 1")
    check_out_dir(args.out)
    uri = None
    if not args.no_mlflow:  # a dead server is found now, not after the replay
        uri = args.tracking_uri or f"sqlite:///{(args.out / 'mlflow.db').resolve()}"
        check_tracking_server(uri)
    pool = load_pool(
        args.runs, join=args.join, on=args.on, weights=args.weights, targets=args.targets,
        fidelity_column=args.fidelity_column, target_fidelity=args.target_fidelity,
        cost_column=args.cost_column, objective=Objective.parse(args.objective),
    )
    for line in pool.skipped:
        log.warning("skipped: %s", line)
    print(f"pool: {pool.X.shape[0]} mixtures x {len(pool.fidelity_values)} fidelities "
          f"(costs {', '.join(f'{c:.3g}' for c in pool.fidelity_costs)}), {len(pool.target_names)} targets; "
          f"{len(pool.skipped)} skipped")
    result = replay(pool, names, seeds=args.seeds, budget=args.budget, n_init=args.n_init,
                    batch_size=args.batch_size, strategy_params=params, verify=not args.no_verify,
                    progress=lambda s, k: log.info("replaying %s seed %d", s, k))
    paths = write_outputs(result, args.out, title=", ".join(p.name for p in args.runs))
    failed = None
    if uri is not None:
        try:
            pid = log_replay_mlflow(
                result, tracking_uri=client_uri(uri), experiment=args.experiment,
                run_name=f"replay {args.runs[0].name}",
                params={"strategies": ",".join(names), "seeds": args.seeds, "objective": args.objective},
                artifacts=list(paths.values()), artifact_root=args.out / "mlartifacts",
            )
            print(f"mlflow: {redact_uri(uri)} (run {pid})")
        except Exception as e:  # noqa: BLE001 - MLflow raises many types; the results are on disk already
            why = redact_uri(str(e).splitlines()[0] if str(e) else "")[:200]
            failed = (f"MLflow logging to {redact_uri(uri)} failed ({type(e).__name__}: {why}); "
                      f"the replay results are in {args.out}/")
    with_cols = ["strategy", "seeds", "cost_to_rank1", "reached_rank1", "cost_to_top3", "reached_top3",
                 "cost_ratio_top3", "regret@0.25", "regret@0.5", "regret@1"]
    print(result.summary[with_cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    a = result.summary.attrs
    print(f"random search expects {a['random_expected_reveals_to_top3']:.1f} target runs (cost "
          f"{a['random_expected_cost_to_top3']:.4g}) to reach the top 3 (cost_ratio_top3 = cost_to_top3 / that); "
          f"outputs in {args.out}/")
    if failed:
        raise MixoptError(failed)
    return 0
