"""Plain-text views of a job for the CLI: status (runs, best, budget left) and the proposal report."""

from __future__ import annotations

import time
from pathlib import Path

from mixopt.search.budget import Budget, Spend
from mixopt.search.state import JobState

__all__ = ["driver_alive", "format_proposal", "format_runs", "format_status"]

HEARTBEAT_S = 5.0


def driver_alive(state: JobState) -> bool:
    """Whether a driver wrote a heartbeat recently (then pending launches are really running)."""
    hb = state.meta.get("heartbeat")
    return hb is not None and time.time() - float(hb) < 6 * HEARTBEAT_S


def _spent(state: JobState) -> Spend:
    s = Spend()
    for r in state.runs:
        if r.source != "confirm":
            s = s + Spend(1, r.tokens, r.flops)
    return s


def format_status(cfg, state: JobState) -> str:
    """Runs done / running / failed, best so far, budget spent and left."""
    budget = Budget(cfg.budget)
    spent = _spent(state)
    elapsed = float(state.meta.get("elapsed_s", 0.0))
    pending = len(state.meta.get("pending", {}))
    live = driver_alive(state)
    lines = [f"job {cfg.name} ({cfg.job_dir.resolve()}): strategy {cfg.search.strategy}, "
             f"driver {'running' if live else 'not running'}"]
    lines.append(f"runs: {len(state.ok_runs)} done, {pending} {'running' if live else 'interrupted (re-run on resume)'}, "
                 f"{len(state.failed_runs)} failed")
    best = state.best(len(cfg.proxy.fidelity_list()) - 1) or state.best()
    if best is not None:
        lines.append(f"best so far: {best.run_id} objective {best.objective:.4f} ({best.preset}, {best.tokens:,} tokens)")
    fr = budget.fractions(spent, elapsed)
    left = budget.left(spent, elapsed)
    parts = [f"{k} {100 * v:.0f}% used ({left[k]:,.4g} left)" for k, v in fr.items()]
    lines.append("budget: " + "; ".join(parts) + f"; {spent.flops:.3g} proxy FLOPs, elapsed {elapsed:.0f}s")
    unlogged = state.meta.get("unlogged", [])
    if unlogged:
        lines.append(f"MLflow: {len(unlogged)} run(s) not yet logged ({', '.join(unlogged[:5])}"
                     f"{'…' if len(unlogged) > 5 else ''}); `mixopt report` back-fills them")
    if state.meta.get("proposal"):
        lines.append(f"latest proposal (after {state.meta['proposal']['n_runs']} runs): "
                     + _weights(state.meta["proposal"]["weights"]))
    return "\n".join(lines)


def _weights(w: dict[str, float]) -> str:
    return ", ".join(f"{d} {v:.3f}" for d, v in w.items())


def _num(x, fmt: str = ".4f") -> str:
    return "-" if x is None else format(x, fmt)


def format_proposal(p: dict) -> str:
    """The proposal, its comparison with prior / uniform / best run, and where it came from."""
    domains = list(p["weights"])
    width = max(10, *(len(d) for d in domains))
    fid = p.get("fidelity", {})
    std = f" ± {p['std']:.4f}" if p.get("std") is not None else ""
    out = [f"proposal ({p.get('surrogate', '?')} surrogate, {p.get('n_fit', '?')} runs fitted, "
           f"objective {p.get('objective')}, at {fid.get('preset')} / {fid.get('tokens', 0):,} tokens):",
           f"  predicted objective {p['predicted']:.4f}{std}"
           + (f"; observed (confirmation run) {p['observed']:.4f}" if p.get("observed") is not None else "")]
    best = p["best_run"]
    cols = ["proposal", "prior", "uniform", f"best {best['run_id']}"]
    out.append("  " + "domain".ljust(width) + "".join(c.rjust(14) for c in cols))
    for d in domains:
        vals = [p["weights"][d], p["prior"]["weights"][d], p["uniform"]["weights"][d], best["weights"][d]]
        out.append("  " + d.ljust(width) + "".join(f"{v:14.4f}" for v in vals))
    out.append("  " + "predicted".ljust(width) + "".join(
        f"{_num(v):>14}" for v in (p["predicted"], p["prior"]["predicted"], p["uniform"]["predicted"], None)))
    out.append("  " + "observed".ljust(width) + "".join(
        f"{_num(v):>14}" for v in (p.get("observed"), p["prior"].get("observed"), p["uniform"].get("observed"),
                                   best["objective"])))
    if p.get("active_constraints"):
        out.append(f"  active constraints: {p['active_constraints']}")
    return "\n".join(out)


def format_runs(state: JobState, top: int = 10) -> str:
    """The ``top`` best ok runs and every failed run."""
    ok = sorted(state.ok_runs, key=lambda r: (-r.fidelity, r.objective))[:top]
    lines = [f"best {len(ok)} of {len(state.ok_runs)} ok runs (target fidelity first):"]
    for r in ok:
        lines.append(f"  {r.run_id}  {r.objective:.4f}  {r.preset:<12} {r.tokens:>10,}  {_weights(r.weights)}")
    for r in state.failed_runs:
        lines.append(f"  {r.run_id}  FAILED after {len(r.attempts) + 1} attempt(s): {r.reason}")
    return "\n".join(lines)


def format_cv_table(table) -> str:
    if not table:
        return ""
    if isinstance(table, list) and table and isinstance(table[0], dict):
        keys = list(table[0])
        lines = ["surrogate CV:", "  " + "".join(str(k)[:16].rjust(17) for k in keys)]
        for row in table:
            lines.append("  " + "".join((f"{v:.4g}" if isinstance(v, float) else str(v))[:16].rjust(17)
                                        for v in row.values()))
        return "\n".join(lines)
    return f"surrogate CV: {table}"


def plot_paths(job_dir: Path) -> list[Path]:
    return sorted((Path(job_dir).resolve() / "plots").glob("*.png"))
