"""How far to trust a proposal: the checks a careful user would make before training on it.

:func:`assess` returns the trust report attached to a :class:`~mixopt.proposal.Proposal` (``trust``):

- **model quality**: the model's cross-validated error and rank correlation on the runs (``auto`` reports
  its own; any other model is cross-validated here, folds grouped by mixture); a CV error larger than that of
  predicting every run by the runs' mean is a warning;
- **extrapolation in loss**: is the predicted objective better than every observed run by more than the
  model's error (CV MAE, or its predictive std when larger)?
- **extrapolation in mixture space**: the total-variation distance from the proposal to the nearest run,
  against the typical spacing of the runs (the median nearest-neighbour distance among them);
- **self-consistency**: does the model predict the best observed run better than its own proposal?
- **evidence**: fewer successful runs than domains + 2;
- **starved domains**: the proposal gives a domain the objective scores less than a quarter of an even
  share among the scored domains (``_STARVED``). Small proxies learn little of such a domain whatever its
  share, so their runs cannot show what a larger model loses when it barely sees it; in the transfer
  experiment (``experiments/transfer``, 6 search seeds) 9 of 10 proposals with a starved scored domain did
  better at the target scale once it was lifted to the threshold (the 10th within seed noise), and the
  three that lost to the uniform mixture were all of this kind. The warning names the domains and the ``constraints.min_weight``
  that lifts them (``report["starved"]``). A search job keeps such domains at this floor by default
  (``constraints.scored_floor``), so there the warning means the floor was turned off or could not be met;
  a proposal fitted from a run table (``mixopt fit``) has no floor unless ``--min-weight`` sets one;
- **run-to-run noise** (when some mixtures were run more than once at the target fidelity): the noise std
  of the objective at the proposal (:func:`mixopt.noise.noise_at`: its own repeats, else smoothed from the
  repeated mixtures) against the predicted gain over the best observed mixture (the mean of its repeats).
  A gain (or loss) within the noise is a tie, not an improvement: the report says so (a warning,
  ``"medium"``) and suggests repeating the proposal.

``level`` is ``"high"`` (no warning), ``"medium"`` (a warning, e.g. a predicted improvement over the best
run larger than the model's error) or ``"low"`` (the predicted improvement exceeds twice the model's error,
or the model ranks held-out runs poorly). A low-trust proposal says what to do instead: confirm
it with a run at the target fidelity, or use the best mixture observed (``fallback``). In a search with
budget left, a low-trust proposal that was never run is run next (``needs_run``).
"""

from __future__ import annotations

import numpy as np

from mixopt.objective import Objective
from mixopt.runs import RunTable, match_rows

__all__ = ["assess", "confirmation_check", "needs_run", "noise_line", "warnings_line"]

_WEAK_SPEARMAN = 0.5  # below this, the model ranks held-out runs too poorly to rely on its optimum
_FAR = 2.0  # nearest run farther than this many times the runs' typical spacing
_OUTSIDE = 2.0  # predicted better than every run by this many times the model's error: low trust
_STARVED = 0.25  # a scored domain below this fraction of an even share (among scored domains) is starved


def _tv(a: np.ndarray, B: np.ndarray) -> np.ndarray:
    return 0.5 * np.abs(B - a[None, :]).sum(axis=1)


def _model_cv(model, seed: int) -> tuple[float | None, float | None, float | None]:
    """``(CV MAE, CV Spearman, 68% quantile of the CV errors)`` of the objective under ``model``'s
    surrogate (``None``: too few runs)."""
    s = model.surrogate
    if getattr(s, "cv_mae_", None) is not None:
        return float(s.cv_mae_), float(s.cv_spearman_), None
    from mixopt.surrogates.auto import cross_validate

    inputs = model.inputs
    n_groups = len(np.unique(np.round(inputs.X[:, : s.n_domains_], 6), axis=0))
    if n_groups < 6:
        return None, None, None
    y = inputs.Y if model.per_target else inputs.Y[:, 0]
    try:
        res = cross_validate(s, inputs.X, y, n_folds=min(5, n_groups), seed=seed,
                             objective_weights=model._w if model.per_target else None,
                             fidelity_columns=inputs.fidelity_columns, y_var=model.y_var)
    except (ValueError, RuntimeError, ArithmeticError, np.linalg.LinAlgError):
        return None, None, None
    oof = np.asarray(res["oof"], float).reshape(len(y), -1)
    err = np.abs(inputs.Y @ model._w - oof @ model._w) if model.per_target else np.abs(inputs.Y[:, 0] - oof[:, 0])
    return float(res["mae"]), float(res["spearman"]), float(np.quantile(err, 0.6827))


def assess(proposal, model, table: RunTable, objective="mean", *, seed: int = 0) -> dict:
    """The trust report of ``proposal`` made by ``model`` (a ``TableModel`` or ``None``) from ``table``."""
    obj = Objective.parse(objective)
    y = table.objective(obj)
    at = table.at_level(-1)
    runs = at if at.any() else table.ok
    if not runs.any():
        return {"level": "low", "warnings": ["no successful run yet"], "needs_run": True,
                "recommendation": "run it, or wait for runs: nothing supports it yet"}
    W, yv, ids = table.weights[runs], y[runs], [table.run_ids[i] for i in np.flatnonzero(runs)]
    w = np.array([proposal.weights[d] for d in table.domains])
    dist = _tv(w, W)
    near = int(np.argmin(dist))
    if len(W) >= 2:
        nn = [float(np.min(np.delete(_tv(W[i], W), i))) for i in range(len(W))]
        spacing = float(np.median(nn))
    else:
        spacing = float("nan")
    best = int(np.argmin(yv))
    report: dict = {
        "nearest_run": ids[near], "nearest_distance": round(float(dist[near]), 4),
        "typical_spacing": None if not np.isfinite(spacing) else round(spacing, 4),
        "observed_range": [round(float(yv.min()), 5), round(float(yv.max()), 5)],
        "fallback": {"run_id": ids[best], "observed": float(yv[best]),
                     "weights": dict(zip(table.domains, map(float, W[best]), strict=True))},
    }
    warnings: list[str] = []
    severe = False
    k = len(table.domains)
    if int(table.ok.sum()) < k + 2:
        warnings.append(f"only {int(table.ok.sum())} successful runs for {k} domains")
    cv_mae = cv_sp = None
    if model is not None:
        cv_mae, cv_sp, cv_q68 = _model_cv(model, seed)
        report["cv_mae"] = None if cv_mae is None else round(cv_mae, 5)
        report["cv_spearman"] = None if cv_sp is None else round(cv_sp, 4)
        if cv_q68 is not None:
            report["cv_std"] = round(cv_q68, 5)  # 68% of held-out errors are smaller: a std when the model has none
        if cv_sp is not None and cv_sp < _WEAK_SPEARMAN:
            warnings.append(f"the model ranks held-out runs poorly (CV Spearman {cv_sp:.2f})")
            severe = True
        y_ok = y[table.ok & np.isfinite(y)]
        spread = float(np.mean(np.abs(y_ok - y_ok.mean()))) if len(y_ok) else 0.0
        if cv_mae is not None and spread > 0 and cv_mae > spread:
            # a few folds where the model blows up (an exponential law far from its runs) make the CV error
            # huge, which would otherwise silence the extrapolation check below
            warnings.append(f"the model's held-out error (CV MAE {cv_mae:.4g}) is larger than predicting every "
                            f"run by the runs' mean ({spread:.4g})")
        if proposal.predicted is not None:
            # the model's error: its CV error or predictive std; without either, the runs' own spread
            err = max(cv_mae or 0.0, proposal.std or 0.0) or float(np.std(yv))
            gap = float(yv.min()) - float(proposal.predicted)
            if err > 0 and gap > err:
                what = "its CV error or std" if (cv_mae or proposal.std) else "the spread of the runs"
                warnings.append(f"predicted {proposal.predicted:.4f}, better than every observed run "
                                f"({yv.min():.4f}) by {gap:.4f}, more than {what} ({err:.4f})")
                severe = severe or gap > _OUTSIDE * err
            pred_best = float(model.predict(W[best][None, :])[0][0])
            if proposal.run_id is None and pred_best < float(proposal.predicted) - 1e-9:
                warnings.append(f"the model predicts the best observed run ({ids[best]}) better than its "
                                f"own proposal ({pred_best:.4f} vs {proposal.predicted:.4f})")
    _starved_check(report, warnings, table, obj, w)
    _noise_check(report, warnings, proposal, table, obj, w)
    if np.isfinite(spacing) and spacing > 0 and dist[near] > _FAR * spacing:
        warnings.append(f"{dist[near]:.2f} (total variation) from the nearest run {ids[near]}, "
                        f"{dist[near] / spacing:.1f}x the runs' typical spacing")
    level = "low" if severe else ("medium" if warnings else "high")
    report["level"] = level
    report["warnings"] = warnings
    observed = proposal.observed is not None or (proposal.run_id is not None)
    report["needs_run"] = level == "low" and not observed
    if level == "low":
        report["recommendation"] = (
            f"do not train on it blindly: confirm it with a run at the target fidelity (search.confirm: true), "
            f"or use the best observed mixture ({ids[best]}, objective {yv[best]:.4f})")
    elif level == "medium":
        report["recommendation"] = "usable; a confirmation run at the target fidelity would settle it"
    else:
        report["recommendation"] = "supported by the runs"
    return report


def _starved_check(report: dict, warnings: list[str], table: RunTable, obj: Objective, w: np.ndarray) -> None:
    """Warn about domains the objective scores that the proposal (nearly) leaves out (``report["starved"]``:
    ``{"domains": {domain: weight}, "floor": floor}``)."""
    names = obj.scored_domains(table.target_names, table.domains)
    scored = [table.domains.index(d) for d in names]
    if len(scored) < 2:  # one scored domain: the proposal gives it what it can, nothing to hedge
        return
    floor = _STARVED / len(scored)
    low = {table.domains[j]: float(w[j]) for j in scored if w[j] < floor - 1e-6}  # a floor met to rounding is met
    if not low:
        return
    report["starved"] = {"domains": {d: round(x, 4) for d, x in low.items()}, "floor": round(floor, 4)}
    names = ", ".join(f"{d} {x:.3f}" for d, x in low.items())
    lift = np.ceil(floor * 100) / 100  # rounded up, so the suggested bound clears the floor
    warnings.append(f"gives {names} (below {floor:.3f}, a quarter of an even share) though the objective scores "
                    f"{'it' if len(low) == 1 else 'them'}: small proxies cannot show what a larger model loses on a "
                    f"domain it barely sees; consider constraints.min_weight: {{{', '.join(f'{d}: {lift:.2f}' for d in low)}}}")


def _noise_check(report: dict, warnings: list[str], proposal, table: RunTable, obj: Objective, w: np.ndarray) -> None:
    """Add the run-to-run noise at the proposal (``noise``) and, for a predicted proposal, a warning when
    its predicted gain over the best observed mixture (mean of its repeats) is within that noise."""
    from mixopt.noise import mixture_means, noise_at

    noise = noise_at(table, w, obj)
    if noise is None:
        return
    report["noise"] = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in noise.items()}
    if proposal.predicted is None:
        return
    best = mixture_means(table, obj)[0]["mean"]
    gain = best - float(proposal.predicted)
    report["noise"] |= {"best_observed_mean": round(best, 5), "predicted_gain": round(gain, 5)}
    if abs(gain) < noise["std"]:  # (a proposal predicted clearly worse is the self-consistency check's)
        warnings.append(f"predicted gain {gain:.4f} over the best observed mixture ({best:.4f}) is within the "
                        f"run-to-run noise {noise['std']:.4f}: repeat the proposal or treat it as a tie")


def noise_line(report: dict | None) -> str | None:
    """One line on the run-to-run noise of a trust report (``None`` when the runs had no repeats)."""
    n = (report or {}).get("noise")
    if not n:
        return None
    own = f"{n['repeats']} run(s) of this mixture" if n["repeats"] else "not run yet"
    gain = f"; predicted gain over the best mixture {n['predicted_gain']:.4f}" if "predicted_gain" in n else ""
    return (f"noise: run-to-run std {n['std']:.4f} at the proposal ({own}; {n['n_groups']} repeated mixture(s), "
            f"pooled std {n['pooled_std']:.4f}){gain}")


def warnings_line(warnings: list[str], limit: int = 160) -> str:
    """The warnings joined by "; " for a one-line message: whole warnings only (the first always), as many as
    fit in about ``limit`` characters, then how many were left out."""
    shown: list[str] = []
    for w in warnings:
        if shown and len("; ".join([*shown, w])) > limit:
            break
        shown.append(w)
    rest = len(warnings) - len(shown)
    return "; ".join(shown) + (f"; {rest} more in the trust report" if rest else "")


def confirmation_check(report: dict, observed: float, run_id: str, weights: dict | None = None) -> bool:
    """After a confirmation run of the proposal (``search.confirm``): record it (``report["confirmation"]``)
    and, when it did worse than the best observed run (``fallback``) by more than the run-to-run noise (when
    the runs have repeats), drop the report to ``"low"`` and recommend that run instead. In the transfer
    experiment the proposals that lost most to uniform at the target scale had already done worse than the
    search's best run at the proxy scale (experiments/LOG.md, 2026-12-03 ninth session). Returns whether it
    did worse (then ``search.confirm: switch`` proposes that run). ``weights``: the confirmed mixture; when it is
    the best run's own (a ``revealed`` proposal) the confirmation is a repeat of that run, never "worse"."""
    fb = report.get("fallback")
    if not fb or not np.isfinite(observed):
        return False
    tol = float((report.get("noise") or {}).get("std") or 0.0)
    names = list(weights or {})
    same = bool(names) and match_rows(np.array([[fb["weights"].get(d, 0.0) for d in names]]),
                                      np.array([[weights[d] for d in names]]))[0] == 0
    worse = fb["run_id"] != run_id and not same and observed > fb["observed"] + tol
    report["confirmation"] = {"run_id": run_id, "observed": round(float(observed), 5), "worse": bool(worse)}
    if not worse:
        return False
    warning = (f"the confirmation run {run_id} observed {observed:.4f}, worse than the best observed run "
               f"{fb['run_id']} ({fb['observed']:.4f})" + (f" by more than the run-to-run noise ({tol:.4f})" if tol else ""))
    if warning not in report.setdefault("warnings", []):  # a resumed job checks the same run again
        report["warnings"].append(warning)
    report["level"], report["needs_run"] = "low", False
    report["recommendation"] = (f"use the best observed mixture ({fb['run_id']}, objective {fb['observed']:.4f}; "
                                f"trust.fallback): the proposal did worse when it was run")
    return True


def needs_run(proposal) -> bool:
    """Whether a search with budget left should run this proposal next (low trust and never run)."""
    return bool((proposal.trust or {}).get("needs_run"))
