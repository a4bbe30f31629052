"""Fit a surrogate on any table of past runs, cross-validate it, and propose: the library of ``mixopt fit``.

The proposal is the ``surrogate`` strategy's :meth:`~mixopt.strategies.Strategy.recommend` (the same call
the search and replay make) with the chosen surrogate and ``recommend="predicted"``.

>>> import numpy as np
>>> from mixopt.runs import RunTable
>>> W = np.random.default_rng(0).dirichlet(np.ones(3), 30)
>>> t = RunTable.from_arrays(W, 3 - W[:, 0], domains=["a", "b", "c"], target_names=["loss"])
>>> res = fit_table(t, surrogate="linear", propose=True)
>>> round(res.proposal.weights["a"], 2)
1.0
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mixopt.errors import MixoptError
from mixopt.feasible import Constraints
from mixopt.objective import Objective
from mixopt.proposal import Proposal
from mixopt.runs import RunTable

__all__ = ["FitResult", "fit_table"]

_CV_KEYS = ("spearman", "mae", "mean_target_spearman", "mean_target_mae", "seconds")


@dataclass
class FitResult:
    """A fitted model on a table: ``model`` (:class:`~mixopt.surrogates.TableModel`), its ``cv_table``
    (one row per surrogate tried), and the ``proposal`` when one was asked for."""

    table: RunTable
    objective: Objective
    surrogate: str
    model: object
    cv_table: list[dict] = field(default_factory=list)
    proposal: Proposal | None = None

    def to_dict(self) -> dict:
        """What ``fit.json`` holds: the table's shape, the objective, the surrogate and what was chosen, and
        the run-to-run noise when the table repeats mixtures (``noise``: repeated mixtures, pooled std per
        fitted column, whether the model was fitted with it; ``None`` without repeats)."""
        t = self.table
        w = self.objective.weights(t.target_names)
        est = self.model.inputs.noise
        noise = None if est is None else {
            "repeated_mixtures": est.n_groups, "fitted_with_noise": self.model.y_var is not None,
            "pooled_std": dict(zip(self.model.target_names, np.sqrt(est.pooled).round(6).tolist(), strict=True))}
        return {"table": {"source": t.source, "runs": len(t), "domains": t.domains, "targets": t.target_names,
                          "fidelity": t.fidelity_names, "skipped": t.skipped},
                "surrogate": self.surrogate, "chosen": self.model.describe(),
                "objective": self.objective.to_json(),
                "objective_weights": dict(zip(t.target_names, w.tolist(), strict=True)),
                "noise": noise}


def fit_table(table: RunTable, *, surrogate: str = "auto", objective="mean", params: dict | None = None,
              folds: int = 5, seed: int = 0, propose: bool = False, constraints: Constraints | None = None,
              prior=None, method: str | None = None) -> FitResult:
    """Fit ``surrogate`` on ``table`` for ``objective``; cross-validate it; optionally propose.

    params: surrogate parameters. method: the proposer's optimiser (``auto``, ``sample_topk``, ``slsqp``). folds: K of the K-fold CV table (``auto`` chooses with it; 0 or 1: no
    CV table for a single surrogate). constraints / prior: the feasible set of the proposal (default: only
    the simplex; prior default: the mean of the table's mixtures). Raises a one-line
    :class:`MixoptError` when the model cannot be fitted.
    """
    from sklearn.base import clone

    from mixopt.strategies import make_strategy
    from mixopt.surrogates.auto import cross_validate

    obj = Objective.parse(objective)
    params = dict(params or {})
    if surrogate == "auto":
        params.setdefault("n_folds", max(2, folds))
    strategy = make_strategy("surrogate", seed=seed, objective=obj, surrogate=surrogate, surrogate_params=params,
                             recommend="predicted", n_min=2,
                             propose_params={"method": method} if method and method != "auto" else None)
    model = strategy.model(table)
    if model is None:
        why = strategy.fit_errors[-1] if strategy.fit_errors else \
            f"need at least 2 successful runs with different objectives, have {int(table.ok.sum())}"
        raise MixoptError(f"fit: {why}")
    if surrogate == "auto":
        cv_rows = list(model.cv_table or [])
    elif folds >= 2:
        y = model.inputs.Y if model.per_target else model.inputs.Y[:, 0]
        res = cross_validate(clone(model.surrogate), model.inputs.X, y, n_folds=folds,
                             objective_weights=model._w if model.per_target else None, seed=seed,
                             fidelity_columns=model.inputs.fidelity_columns, y_var=model.y_var)
        cv_rows = [{"surrogate": surrogate, "chosen": True, **{k: round(float(res[k]), 5) for k in _CV_KEYS}}]
    else:
        cv_rows = []
    result = FitResult(table=table, objective=obj, surrogate=surrogate, model=model, cv_table=cv_rows)
    if propose:
        p = np.asarray(prior, dtype=np.float64) if prior is not None else table.weights[table.ok].mean(axis=0)
        feasible = (constraints or Constraints()).resolve(table.domains, prior=p)
        prop = strategy.recommend(table, feasible)
        prop.trust = strategy.trust(table, prop)
        if prop.cv_table is None:
            prop.cv_table = cv_rows or None
        y = table.objective(obj)
        best = int(np.flatnonzero(table.ok)[np.argmin(y[table.ok])])
        prop.baselines["best_run"] = {"run_id": table.run_ids[best], "observed": float(y[best]),
                                      "weights": dict(zip(table.domains, table.weights[best].tolist(), strict=True))}
        result.proposal = prop
    return result
