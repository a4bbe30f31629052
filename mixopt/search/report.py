"""Plain-text views of a job for the CLI: status (runs, best, budget left) and the proposal report."""

from __future__ import annotations

import time
from pathlib import Path

from mixopt.hierarchy import SEP, group_totals
from mixopt.search.budget import Budget, Spend
from mixopt.search.state import JobState
from mixopt.trust import noise_line

__all__ = ["driver_alive", "format_proposal", "format_runs", "format_status", "runs_frame"]

HEARTBEAT_S = 5.0


def driver_alive(state: JobState) -> bool:
    """Whether a driver wrote a heartbeat recently (then pending launches are really running)."""
    hb = state.meta.get("heartbeat")
    return hb is not None and time.time() - float(hb) < 6 * HEARTBEAT_S


def format_status(cfg, state: JobState) -> str:
    """Runs done / running / failed, best so far, budget spent and left."""
    budget = Budget(cfg.budget)
    spent = Spend.of(state.runs)
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
        w = state.meta["proposal"]["weights"]  # state.json keeps its keys sorted: back to the job's domain order
        ordered = {d: w[d] for d in cfg.domains if d in w} | w
        lines.append(f"latest proposal (after {state.meta['proposal']['n_runs']} runs): " + _weights(ordered))
    return "\n".join(lines)


def _weights(w: dict[str, float]) -> str:
    return ", ".join(f"{d} {v:.3f}" for d, v in w.items())


def _num(x, fmt: str = ".4f") -> str:
    return "-" if x is None else format(x, fmt)


def _rows(domains: list[str], groups: list[str]) -> list[tuple[str, str, bool]]:
    """(label, name, is_group) in tree order: each group (its total) just before its first leaf, indented."""
    rows, shown = [], set()
    for d in domains:
        parts = d.split(SEP)
        for i in range(1, len(parts)):
            g = SEP.join(parts[:i])
            if g in groups and g not in shown:
                shown.add(g)
                rows.append(("  " * (i - 1) + f"{g} (group)", g, True))
        depth = sum(1 for i in range(1, len(parts)) if SEP.join(parts[:i]) in groups)
        rows.append(("  " * depth + d, d, False))
    return rows


def format_proposal(p) -> str:
    """The proposal (a :class:`~mixopt.proposal.Proposal`), its comparison with the prior / uniform / best
    run under the same model, and where it came from. With hierarchical domains each group's total is
    shown above its leaves."""
    domains = list(p.weights)
    groups = list(p.context.get("groups") or [])
    rows = _rows(domains, groups)
    width = max(10, *(len(label) for label, _, _ in rows))
    fid = p.context.get("fidelity", {})
    how = (f"best predicted by {p.surrogate} ({p.n_fit} rows fitted)" if p.rule == "predicted"
           else f"best run observed ({p.run_id})" if p.run_id else p.method)
    at = f", at {fid.get('preset')} / {fid.get('tokens', 0):,} tokens" if fid else ""
    out = [f"proposal of strategy {p.strategy}: {how}; objective {p.objective}{at}"]
    line = "  predicted objective " + (f"{p.predicted:.4f}" if p.predicted is not None else "- (no model)")
    if p.std is not None:
        line += f" ± {p.std:.4f}"
    if p.observed is not None:
        switched = p.context.get("unconfirmed")
        line += f"; observed {p.observed:.4f}" + (" (confirmation run)" if p.context.get("confirm_run_id")
                                                  and not switched else "")
    out.append(line)
    if p.reason:
        out.append(f"  note: {p.reason}")
    reuse = p.context.get("reuse")
    if reuse:
        kept = ", ".join(reuse["kept"])
        how = (f"collapsed into '{reuse['coordinates'][0]}' = {reuse['coordinate_weights'][reuse['coordinates'][0]]:.4f} "
               "at the previous proportions" if reuse["mode"] == "collapse" else "frozen at their previous weights")
        out.append(f"  reuse: {kept} kept from {reuse['source']} ({how}); searched "
                   f"{len(reuse['coordinates'])} coordinates: {', '.join(reuse['coordinates'])}")
    if p.trust:
        out.append(f"  trust: {p.trust['level']}" + (f" -- {'; '.join(p.trust['warnings'])}" if p.trust.get("warnings") else ""))
        if p.trust["level"] != "high":
            out.append(f"  advice: {p.trust.get('recommendation', '')}")
        if noise_line(p.trust):
            out.append(f"  {noise_line(p.trust)}")
    base = p.baselines
    cols = [("proposal", {"weights": p.weights, "predicted": p.predicted, "observed": p.observed})]
    cols += [(name if name != "best_run" else f"best {b.get('run_id', '')}", b) for name, b in base.items()]
    out.append("  " + "domain".ljust(width) + "".join(c.rjust(14) for c, _ in cols))
    totals = [group_totals(b["weights"], groups) for _, b in cols]
    for label, name, is_group in rows:
        vals = [t[name] for t in totals] if is_group else [b["weights"][name] for _, b in cols]
        out.append("  " + label.ljust(width) + "".join(f"{v:14.4f}" for v in vals))
    out.append("  " + "predicted".ljust(width) + "".join(f"{_num(b.get('predicted')):>14}" for _, b in cols))
    out.append("  " + "observed".ljust(width) + "".join(f"{_num(b.get('observed')):>14}" for _, b in cols))
    if p.active_constraints:
        out.append(f"  active constraints: {p.active_constraints}")
    if p.reference_curves:
        out.append(f"  learning curves for {len(p.reference_curves)} domain(s) in proposal.json: train with "
                   "make_mixer('default', domains, initial_weights=..., reference=<job dir>) to follow them")
    return "\n".join(out)


def format_runs(state: JobState, top: int = 10) -> str:
    """The ``top`` best ok runs and every failed run."""
    ok = sorted([r for r in state.ok_runs if r.objective is not None], key=lambda r: (-r.fidelity, r.objective))[:top]
    lines = [f"best {len(ok)} of {len(state.ok_runs)} ok runs (target fidelity first):"]
    for r in ok:
        lines.append(f"  {r.run_id}  {r.objective:.4f}  {r.preset:<12} {r.tokens:>10,}  {_weights(r.weights)}")
    for r in state.failed_runs:
        lines.append(f"  {r.run_id}  FAILED after {len(r.attempts) + 1} attempt(s): {r.reason}")
    return "\n".join(lines)


def runs_frame(state: JobState):
    """The job's runs as one flat table (``pandas.DataFrame``, a row per finished run) for ``mixopt fit`` /
    ``mixopt replay``: ``run_id, status, fidelity, preset, tokens, seed, flops, wall_time, objective``, then
    ``weight/<domain>``, ``loss/<domain>`` and every recorded ``eval/<task>/<metric>``."""
    import pandas as pd

    rows = []
    for r in state.runs:
        row = {"run_id": r.run_id, "status": r.status, "fidelity": r.fidelity, "preset": r.preset,
               "tokens": r.tokens, "seed": r.seed, "flops": r.flops, "wall_time": r.wall_time,
               "objective": r.objective}
        row |= {f"weight/{d}": w for d, w in r.weights.items()}
        row |= {f"loss/{d}": v for d, v in r.final_loss.items()}
        row |= dict(r.metrics or {})
        rows.append(row)
    return pd.DataFrame(rows)


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
