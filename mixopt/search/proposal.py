"""From finished runs to the job's proposal: surrogate fit (auto by CV), constrained optimisation, and the
comparison with the prior, the uniform mixture and the best run observed.

The proposal is a plain dict (written to ``<job_dir>/proposal.json`` and logged to MLflow)::

    {"weights": {domain: w}, "predicted": float, "std": float | None, "surrogate": str,
     "cv_table": [...], "active_constraints": [...], "objective": "mean" | {domain: weight},
     "fidelity": {"preset", "tokens"}, "n_runs": int, "n_fit": int,
     "prior": {"weights", "predicted", "std", "observed"}, "uniform": {...},
     "best_run": {"run_id", "weights", "objective", "fidelity"}, "observed": float | None}

``predicted`` is the objective (lower is better) at the target fidelity; ``observed`` comes from a
confirmation run of the same weights (``search.confirm``) when there is one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mixopt.errors import MixoptError
from mixopt.search.state import JobState, RunEntry, atomic_write_text

__all__ = ["build_proposal", "fit_surrogate", "history_from_runs", "objective_weights", "training_set"]

log = logging.getLogger(__name__)


def objective_weights(cfg, domains: list[str]) -> np.ndarray:
    """(k,) weights turning per-domain final val losses into the objective (``search.objective``)."""
    obj = cfg.search.objective
    if obj == "mean":
        return np.full(len(domains), 1.0 / len(domains))
    w = np.array([float(obj.get(d, 0.0)) for d in domains])
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise MixoptError(f"search.objective: weights must be non-negative with a positive sum, got {obj}")
    return w / w.sum()


def history_from_runs(runs: list[RunEntry], domains: list[str], obj_w: np.ndarray):
    """The strategy's :class:`~mixopt.strategies.History` of ok runs (X (n,k), fidelity, y, costs, Y)."""
    from mixopt.strategies import History

    ok = [r for r in runs if r.ok and r.objective is not None]
    k = len(domains)
    if not ok:
        return History(np.zeros((0, k)), np.zeros(0, int), np.zeros(0), np.zeros(0), Y=np.zeros((0, k)),
                       objective_weights=obj_w)
    X = np.array([[r.weights[d] for d in domains] for r in ok])
    Y = np.array([[r.final_loss[d] for d in domains] for r in ok])
    return History(X, np.array([r.fidelity for r in ok]), Y @ obj_w, np.array([r.flops for r in ok]), Y=Y,
                   objective_weights=obj_w)


def training_set(runs: list[RunEntry], domains: list[str], costs: list[float]):
    """``(X, Y, fidelity_columns, target)`` for the surrogate.

    With one fidelity: ``X`` (n, k) weights. With several: one more column, the run's FLOPs (the
    surrogate's fidelity column), and ``target`` the target fidelity's FLOPs; ``Y`` (n, k) per-domain
    final val losses of the ok runs.
    """
    ok = [r for r in runs if r.ok and r.objective is not None]
    X = np.array([[r.weights[d] for d in domains] for r in ok], dtype=np.float64).reshape(len(ok), len(domains))
    Y = np.array([[r.final_loss[d] for d in domains] for r in ok], dtype=np.float64).reshape(len(ok), len(domains))
    fids = {r.fidelity for r in ok}
    if len(costs) > 1 and len(fids) > 1:
        F = np.array([[costs[r.fidelity]] for r in ok])
        return np.hstack([X, F]), Y, [len(domains)], float(costs[-1])
    return X, Y, None, None


def fit_surrogate(cfg, runs: list[RunEntry], domains: list[str], costs: list[float]):
    """Fit ``cfg.search.surrogate`` (``auto`` picks by CV) on the ok runs; returns (surrogate, X, Y, fcols).

    With several fidelities the run FLOPs are a fidelity column; a surrogate without fidelity support is
    fitted on the target-fidelity runs only.
    """
    import inspect

    from mixopt.surrogates import make_surrogate, surrogate_class

    X, Y, fcols, target = training_set(runs, domains, costs)
    accepted = set(inspect.signature(surrogate_class(cfg.search.surrogate).__init__).parameters)
    if fcols is not None and "fidelity_columns" not in accepted:
        target_runs = [r for r in runs if r.fidelity == len(costs) - 1]
        X, Y, fcols, target = training_set(target_runs, domains, costs[-1:])
    if len(X) < 2:
        raise MixoptError(f"need at least 2 successful runs to fit a surrogate, have {len(X)}")
    params = {"random_state": cfg.seed, "objective_weights": objective_weights(cfg, domains),
              "fidelity_columns": fcols, "target_fidelity": target}
    params = {k: v for k, v in params.items() if k in accepted and (v is not None or k == "random_state")}
    s = make_surrogate(cfg.search.surrogate, **params)
    try:
        s.fit(X, Y)
    except MixoptError as e:
        if cfg.search.surrogate != "auto":
            raise
        # Too few runs to cross-validate: the simplest model, said so in the proposal.
        log.warning("auto surrogate unavailable (%s); using linear", str(e).splitlines()[0][:160])
        s = make_surrogate("linear", **{k: v for k, v in params.items() if k != "objective_weights"})
        s.fit(X, Y)
    return s, X, Y, fcols


def _predict_objective(surrogate, W: np.ndarray, obj_w: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    out = surrogate.predict(W, return_std=True)
    mean, std = out if isinstance(out, tuple) else (out, None)
    mean = np.asarray(mean, dtype=np.float64).reshape(len(W), -1)
    obj = mean @ obj_w if mean.shape[1] == len(obj_w) else mean[:, 0]
    if std is None or not getattr(surrogate, "has_std", True):
        return obj, None
    std = np.asarray(std, dtype=np.float64).reshape(len(W), -1)
    sd = np.sqrt((std**2) @ (obj_w**2)) if std.shape[1] == len(obj_w) else std[:, 0]
    return obj, sd


def _observed(runs: list[RunEntry], w: dict[str, float], fidelity: int) -> float | None:
    for r in reversed(runs):
        if r.ok and r.fidelity == fidelity and all(abs(r.weights.get(d, -1) - v) < 1e-6 for d, v in w.items()):
            return r.objective
    return None


def _constraints(cfg, domains: list[str], domain_tokens: np.ndarray):
    """``cfg.constraints`` with each domain's train tokens (for the repetition caps)."""
    from mixopt.propose import Constraints

    return Constraints.from_settings(cfg.constraints,
                                     domain_tokens=dict(zip(domains, domain_tokens.tolist(), strict=True)))


def build_proposal(cfg, state: JobState, domains: list[str], prior: np.ndarray, domain_tokens: np.ndarray,
                   costs: list[float], *, plots: bool = True) -> tuple[dict | None, list[Path]]:
    """Fit, propose, compare; write ``proposal.json`` (+ plots). Returns (proposal | None, plot paths).

    Returns ``(None, [])`` (with a warning) when fewer than two runs succeeded.
    """
    import hashlib
    import json

    from mixopt.propose import propose

    runs = state.runs
    n_counted = sum(r.source != "confirm" for r in runs)  # a confirmation run does not call for a re-fit
    key = hashlib.sha256(json.dumps([n_counted, cfg.search.surrogate, cfg.search.objective, cfg.seed,
                                     cfg.constraints.model_dump(mode="json")], sort_keys=True).encode()).hexdigest()[:16]
    path = state.job_dir / "proposal.json"
    if path.exists():  # nothing changed since the last proposal: reuse it (a fit costs seconds to minutes)
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = {}
        plot_files = sorted((state.job_dir / "plots").glob("*.png"))
        if old.get("key") == key and (plot_files or not plots):
            return old, plot_files
    obj_w = objective_weights(cfg, domains)
    target = len(costs) - 1
    try:
        surrogate, X, Y, fcols = fit_surrogate(cfg, runs, domains, costs)
    except MixoptError as e:
        log.warning("no proposal: %s", e)
        return None, []
    p = propose(surrogate, domains, objective_weights=obj_w, constraints=_constraints(cfg, domains, domain_tokens),
                prior=prior, seed=cfg.seed, target_names=domains)
    w = np.array([p.weights[d] for d in domains])
    uniform = np.full(len(domains), 1.0 / len(domains))
    pred, sd = _predict_objective(surrogate, np.vstack([w, prior, uniform]), obj_w)

    def point(vec: np.ndarray, i: int) -> dict:
        wd = {d: float(x) for d, x in zip(domains, vec, strict=True)}
        return {"weights": wd, "predicted": float(pred[i]), "std": None if sd is None else float(sd[i]),
                "observed": _observed(runs, wd, target)}

    ok = [r for r in runs if r.ok and r.objective is not None]
    best = min(ok, key=lambda r: (r.fidelity != target, r.objective))
    fid = cfg.proxy.fidelity_list()[target]
    proposal = point(w, 0) | {
        "predicted": float(p.predicted),
        "std": None if p.std is None else float(p.std),
        "surrogate": p.surrogate or type(surrogate).__name__,
        "cv_table": _jsonable(p.cv_table),
        "surrogate_reason": p.reason, "method": p.method, "kl_to_prior": p.kl_to_prior,
        "predicted_targets": p.predicted_targets,
        "active_constraints": _jsonable(p.active_constraints),
        "objective": cfg.search.objective,
        "fidelity": {"preset": fid.preset, "tokens": fid.tokens},
        "strategy": cfg.search.strategy,
        "key": key, "n_runs": len(runs), "n_fit": int(len(X)), "n_failed": sum(not r.ok for r in runs),
        "prior": point(prior, 1), "uniform": point(uniform, 2),
        "best_run": {"run_id": best.run_id, "weights": best.weights, "objective": best.objective,
                     "fidelity": best.fidelity, "preset": best.preset, "tokens": best.tokens},
    }
    state.job_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(proposal, indent=1))
    state.set(proposal={"weights": proposal["weights"], "predicted": proposal["predicted"], "n_runs": len(runs)})
    paths: list[Path] = []
    if plots:
        from mixopt.search.plots import write_plots

        try:
            paths = write_plots(state.job_dir / "plots", cfg, runs, domains, proposal, surrogate, X, Y, obj_w,
                                fcols)
        except Exception as e:  # noqa: BLE001 - a figure never costs the proposal
            log.warning("could not draw plots: %s", e)
    return proposal, paths


def _jsonable(x):
    """Tables (pandas / numpy / dataclasses) as JSON-friendly lists and dicts."""
    if x is None:
        return None
    if hasattr(x, "to_dict") and hasattr(x, "columns"):
        return x.to_dict(orient="records")
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if hasattr(x, "__dataclass_fields__"):
        from dataclasses import asdict

        return _jsonable(asdict(x))
    return x if isinstance(x, (str, int, float, bool)) else str(x)
