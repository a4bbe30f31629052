"""The job's proposal: ``strategy.recommend(table, feasible)``, compared with the prior, the uniform mixture
and the best run observed under the same model, written to ``<job_dir>/proposal.json`` (and plots).

The proposal is a :class:`~mixopt.proposal.Proposal` (``proposal.json`` is its ``to_dict()``); its
``baselines`` hold ``prior``, ``uniform`` and ``best_run`` (each ``{weights, predicted, std, observed}``),
its ``context`` the target fidelity, the strategy's settings and the key that says which runs it was
made from. The table it is made from excludes confirmation runs (they check a proposal, they do not
change it), so a confirmation never calls for a new proposal.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from mixopt.curves import proposal_curves
from mixopt.errors import MixoptError
from mixopt.proposal import Proposal
from mixopt.search.phases import PhaseClock
from mixopt.search.space import SearchSpace, make_job_strategy
from mixopt.search.state import JobState, RunEntry, atomic_write_text

__all__ = ["build_proposal", "proposal_key", "switch_to_best_run"]

log = logging.getLogger(__name__)


def proposal_key(cfg, runs: list[RunEntry]) -> str:
    """What a proposal depends on: the finished runs (not confirmations) and the decision settings."""
    counted = sorted((r.run_id, r.status) for r in runs if r.source != "confirm")
    s = cfg.search
    settings = [s.strategy, s.surrogate, s.recommend, s.objective, cfg.seed, cfg.constraints.model_dump(mode="json")]
    if cfg.groups:  # group bounds and priors decide too (flat jobs keep their keys)
        settings.append({k: g.model_dump(mode="json") for k, g in cfg.groups.items()})
    return hashlib.sha256(json.dumps([counted, settings], sort_keys=True, default=str).encode()).hexdigest()[:16]


def _reference_curves(table, space: SearchSpace, p: Proposal, tokens: float, seed: int) -> dict | None:
    """The proposal's per-domain learning curves (:func:`mixopt.curves.proposal_curves`); ``None`` (with a
    warning) when the fit fails: a curve never costs the proposal."""
    try:
        return proposal_curves(table, p.vector(space.domains), predicted=p.predicted_targets, tokens=float(tokens),
                               seed=seed)
    except (MixoptError, ValueError, np.linalg.LinAlgError) as e:
        log.warning("no reference curves in the proposal: %s", e)
        return None


def build_proposal(cfg, state: JobState, space: SearchSpace, *, plots: bool = True,
                   strategy=None, clock=None) -> tuple[Proposal | None, list[Path]]:
    """Recommend, compare, write ``proposal.json`` (+ plots); reuse the file when its key is current.

    strategy: the search's own strategy object (reuses its fitted model); default a fresh one.
    clock: a :class:`~mixopt.search.phases.PhaseClock` that times the phases "final fit" (recommend),
    "baseline predictions" (prior, uniform, best run), "trust report", "reference curves" and "plots".
    Returns ``(None, [])`` (with a warning) before any successful run.
    """
    key = proposal_key(cfg, state.runs)
    path = state.job_dir / "proposal.json"
    if state.proposal_is_current(key):
        plot_files = sorted((state.job_dir / "plots").glob("*.png"))
        if plot_files or not plots:
            return Proposal.from_dict(json.loads(path.read_text())), plot_files
    table = space.table(state.runs, include_confirm=False)
    if not table.ok.any():
        log.warning("no proposal: no successful run yet")
        return None, []
    clock = clock or PhaseClock()  # timed either way; only the caller's clock is reported
    strategy = strategy or make_job_strategy(cfg, space.objective)
    with clock("final fit"):
        p = strategy.recommend(table, space.feasible)
    with clock("trust report"):
        p.trust = strategy.trust(table, p)
    y = table.objective(space.objective)
    uniform = np.full(len(space.domains), 1.0 / len(space.domains))
    target = table.at_level(-1)
    best = int(np.flatnonzero(target)[np.argmin(y[target])]) if target.any() else \
        int(np.flatnonzero(table.ok)[np.argmin(y[table.ok])])
    refs = {"prior": space.prior, "uniform": uniform, "best_run": table.weights[best]}
    with clock("baseline predictions"):
        pred = strategy.predict(table, np.stack(list(refs.values())))
    for i, (name, w) in enumerate(refs.items()):
        at = np.flatnonzero(target & (np.abs(table.weights - w).max(axis=1) <= 1e-8))
        p.baselines[name] = {
            "weights": {d: float(x) for d, x in zip(space.domains, w, strict=True)},
            "predicted": None if pred is None else float(pred[0][i]),
            "std": None if pred is None or pred[1] is None else float(pred[1][i]),
            "observed": float(y[at[-1]]) if at.size else None,
        }
    fid = cfg.proxy.fidelity_list()[-1]
    with clock("reference curves"):
        p.reference_curves = _reference_curves(table, space, p, fid.tokens, cfg.seed)
    p.baselines["best_run"] |= {"run_id": table.run_ids[best], "observed": float(y[best]),
                                "at_target": bool(target[best])}
    p.context |= {"key": key, "fidelity": {"preset": fid.preset, "tokens": fid.tokens},
                 "search_strategy": cfg.search.strategy, "n_failed": int((~table.ok).sum())}
    if cfg.groups:  # the report and MLflow show group totals beside the leaves
        p.context["groups"] = cfg.hierarchy().names
    if space.reuse is not None:  # the user gets the full mixture; the coordinates go to the context
        p.context["reuse"] = space.reuse.to_dict() | {"coordinate_weights": dict(p.weights)}
        p.weights = space.leaf_weights(p.weights)
        for b in [*p.baselines.values(), p.trust.get("fallback") or {}]:
            if "weights" in b:
                b["weights"] = space.leaf_weights(b["weights"])
    state.job_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(p.to_dict(), indent=1))
    state.set(proposal={"weights": p.weights, "predicted": p.predicted, "n_runs": p.n_runs, "key": key})
    paths: list[Path] = []
    if plots:
        from mixopt.search.plots import write_plots

        try:
            with clock("plots"):
                paths = write_plots(state.job_dir / "plots", cfg, state.runs, space, p, strategy.model(table), table)
        except Exception as e:  # noqa: BLE001 - a figure never costs the proposal
            log.warning("could not draw plots: %s", e)
    return p, paths


def switch_to_best_run(cfg, state: JobState, space: SearchSpace, p: Proposal) -> Proposal:
    """``search.confirm: switch``, after the confirmation run did worse than the best run observed at the target
    fidelity (:func:`mixopt.trust.confirmation_check`): that run becomes the proposal (rule ``revealed``, its
    observed objective, the model's prediction there, its reference curves); the model's proposal and its
    confirmation are kept in ``context["unconfirmed"]``. Measured on the transfer experiment's searches
    (experiments/LOG.md, 2026-12-03 eleventh session)."""
    fb, best = p.trust["fallback"], p.baselines.get("best_run") or {}
    same = best.get("run_id") == fb["run_id"]
    p.context["unconfirmed"] = {"weights": p.weights, "predicted": p.predicted, "std": p.std, "rule": p.rule,
                                "surrogate": p.surrogate, "observed": p.observed,
                                "active_constraints": p.active_constraints,
                                "confirm_run_id": p.context.get("confirm_run_id")}
    p.weights = dict(fb["weights"])
    p.predicted, p.std = (best.get("predicted"), best.get("std")) if same else (None, None)
    p.observed, p.predicted_targets = float(fb["observed"]), None
    p.rule, p.method, p.run_id, p.active_constraints = "revealed", "revealed", fb["run_id"], []
    u = p.context["unconfirmed"]
    predicted = "" if u["predicted"] is None else f" (predicted {u['predicted']:.4f})"
    p.reason = (f"search.confirm: switch: proposed instead of the model's mixture{predicted}, which observed "
                f"{u['observed']:.4f} in its confirmation run {u['confirm_run_id']}")
    p.trust["level"], p.trust["needs_run"] = "medium", False
    p.trust["recommendation"] = (f"the best observed run ({fb['run_id']}), proposed instead of the model's mixture, "
                                 "which did worse when it was run")
    if space.reuse is None:  # under reuse the curves live in the coordinates, which this run's weights are not
        table = space.table(state.runs, include_confirm=False)
        p.reference_curves = _reference_curves(table, space, p, cfg.proxy.fidelity_list()[-1].tokens, cfg.seed)
    else:
        p.reference_curves = None
    return p
