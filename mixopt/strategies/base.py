"""The strategy contract: ``ask`` chooses what to run, ``recommend`` is the proposal.

A strategy sees a :class:`~mixopt.runs.RunTable` of the runs so far (live search: the job's runs;
replay: the rows revealed so far) and nothing else. The table carries the fidelity levels a run can be
bought at (cheapest first; the last is the target fidelity, where the objective is judged) and their
costs.

- ``initial(table, candidates, n)`` / ``ask(table, candidates, n)`` return ``(candidate index, level)``
  pairs from a finite candidate set (live search: mixtures sampled from the feasible set; replay: the
  pool), never a pair the table already holds.
- ``recommend(table, feasible) -> Proposal`` is **the** recommendation: the search returns it, ``mixopt
  propose`` and ``mixopt fit --propose`` print it, and replay scores it after every reveal (with the
  pool as a finite feasible set). Rule ``"predicted"``: the feasible mixture with the best predicted
  objective under the strategy's surrogate; ``"revealed"``: the best run observed at the target fidelity
  (a mixture run several times, ``search.repeats``, by the mean of its repeats).
  Without enough runs for a model, ``predicted`` falls back to the best run observed (and says so in
  ``Proposal.reason``).
"""

from __future__ import annotations

import logging

import numpy as np

from mixopt.errors import MixoptError
from mixopt.events import fallback
from mixopt.feasible import FeasibleSet, kl_divergence
from mixopt.noise import repeat_groups
from mixopt.objective import Objective
from mixopt.proposal import Proposal, propose
from mixopt.runs import RunTable

__all__ = ["Pick", "Strategy"]

log = logging.getLogger(__name__)

Pick = tuple[int, int]  # (candidate index, fidelity level index)
_RULES = ("revealed", "predicted")
_FIT_ERRORS = (MixoptError, ValueError, RuntimeError, ArithmeticError, np.linalg.LinAlgError)


class Strategy:
    """Base class: random picks, bookkeeping of what was run, the model cache and the recommendation.

    Args:
        seed: seeds every random choice of the strategy and its model fits.
        objective: what is minimised (:class:`~mixopt.objective.Objective` or its spec; default the mean).
        recommend: ``"predicted"`` or ``"revealed"`` (default: the strategy's own, ``default_recommend``).
        surrogate: the registered surrogate behind predictions (default: the strategy's own,
            ``default_surrogate``; ``None`` means no model).
        surrogate_params: extra parameters for that surrogate.
        per_target: fit each target the objective uses (default: the surrogate's choice).
        refit_every: refit the model only once this many new successful runs arrived since the last fit
            (1 = every time; larger values make replays of slow surrogates affordable).
        propose_params: options of :func:`mixopt.proposal.propose` (``method``, ``n_candidates``, ...).
    """

    name = "base"
    default_surrogate: str | None = None
    default_recommend = "revealed"

    def __init__(self, seed: int = 0, *, objective="mean", recommend: str | None = None,
                 surrogate: str | None = None, surrogate_params: dict | None = None,
                 per_target: bool | None = None, refit_every: int = 1, propose_params: dict | None = None) -> None:
        rule = recommend or self.default_recommend
        if rule not in _RULES:
            raise MixoptError(f"recommend must be one of {_RULES}, got {recommend!r}")
        self.seed = int(seed)
        self.objective = Objective.parse(objective)
        self.recommend_rule = rule
        self.surrogate = surrogate if surrogate is not None else self.default_surrogate
        if self.surrogate is not None:
            from mixopt.surrogates import SURROGATES

            SURROGATES.check(self.surrogate)
        self.surrogate_params = dict(surrogate_params or {})
        self.per_target = per_target
        self.refit_every = max(1, int(refit_every))
        self.propose_params = dict(propose_params or {})
        self.rng = np.random.default_rng(self.seed)
        self.fit_errors: list[str] = []
        self._cache: tuple | None = None  # (fingerprint, successful runs fitted on, model)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(seed={self.seed}, recommend={self.recommend_rule!r}, "
                f"surrogate={self.surrogate!r}, objective={self.objective.describe()!r})")

    # ----------------------------------------------------------------- asking
    def initial(self, table: RunTable, candidates: np.ndarray, n: int) -> list[Pick]:
        """``n`` distinct random candidates at the target level (subclasses may use cheap levels)."""
        idx = self.rng.choice(len(candidates), size=min(n, len(candidates)), replace=False)
        return [(int(i), table.target_level) for i in idx]

    def ask(self, table: RunTable, candidates: np.ndarray, n: int) -> list[Pick]:
        """The next ``n`` distinct (candidate, level) pairs to run, never one the table already holds."""
        raise NotImplementedError

    # ----------------------------------------------------------------- the model
    def enough_runs(self, table: RunTable) -> bool:
        """Whether the table supports a model (at least two successful runs that differ)."""
        y = table.objective(self.objective)[table.ok]
        return len(y) >= 2 and np.ptp(y) > 0

    def model(self, table: RunTable):
        """The strategy's surrogate fitted on ``table`` (a :class:`~mixopt.surrogates.TableModel`), or
        ``None``: no surrogate, too few runs, or a fit that failed (logged; kept in ``fit_errors``)."""
        if self.surrogate is None or not self.enough_runs(table):
            return None
        key = (table.fingerprint(), hash(self.objective))
        n_ok = int(table.ok.sum())
        if self._cache is not None and (self._cache[0] == key or 0 < n_ok - self._cache[1] < self.refit_every):
            return self._cache[2]
        from mixopt.surrogates import fit_model

        try:
            model = fit_model(self.surrogate, table, self.objective, seed=self.seed, per_target=self.per_target,
                              params=self.surrogate_params)
        except _FIT_ERRORS as e:
            msg = f"{self.surrogate} could not be fitted on {n_ok} runs: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}"
            fallback("strategy.model_fit_failed", f"strategy {self.name}: {msg}; recommending the best run", log)
            self.fit_errors.append(msg)
            model = None
        self._cache = (key, n_ok, model)
        return model

    def predict(self, table: RunTable, W) -> tuple[np.ndarray, np.ndarray | None] | None:
        """``(mean (n,), std (n,) | None)`` of the objective at the target fidelity for mixtures ``W``
        under the strategy's model (``None`` without one)."""
        m = self.model(table)
        return None if m is None else m.predict(np.atleast_2d(np.asarray(W, dtype=np.float64)))

    def trust(self, table: RunTable, proposal: Proposal) -> dict:
        """The trust report of ``proposal`` under the strategy's model (:func:`mixopt.trust.assess`). A
        predicted proposal from a model without an uncertainty model gets the model's cross-validated
        error as its std (``context["std_source"] = "cv"``)."""
        from mixopt.trust import assess

        report = assess(proposal, self.model(table), table, self.objective, seed=self.seed)
        if proposal.std is None and proposal.predicted is not None and report.get("cv_std") is not None:
            proposal.std = float(report["cv_std"])
            proposal.context["std_source"] = "cv"
        elif proposal.std is not None:
            proposal.context.setdefault("std_source", "model")
        return report

    # ----------------------------------------------------------------- recommending
    def recommend(self, table: RunTable, feasible: FeasibleSet) -> Proposal:
        """The mixture to recommend now (see the module docstring); the same call everywhere."""
        model = self.model(table) if self.recommend_rule == "predicted" or not table.at_level(-1).any() else None
        notes = []
        if model is not None and self.recommend_rule == "predicted":
            p = propose(model, feasible, seed=self.seed, **self.propose_params)
        else:
            if self.recommend_rule == "predicted":
                notes.append(self.fit_errors[-1] if self.fit_errors and self.surrogate
                             else f"too few runs for a {self.surrogate} model")
            p = self._best_run(table, feasible, model)
        y = table.objective(self.objective)
        if p.run_id is None:  # an observed value of exactly the proposed weights, when there is one
            p.observed = _observed(table, p.vector(feasible.domains), y)
        p.strategy = self.name
        p.objective = self.objective.to_json()
        p.n_runs = int(len(table))
        if notes:
            p.reason = "; ".join([*notes, p.reason] if p.reason else notes)
        return p

    def _best_run(self, table: RunTable, feasible: FeasibleSet, model) -> Proposal:
        """The best successful run at the target level (else at the highest level run), within the
        feasible set; the model's prediction when no run qualifies; the prior before any run."""
        y = table.objective(self.objective)
        ok = table.ok & np.array([feasible.is_feasible(w, tol=1e-6) for w in table.weights], dtype=bool)
        if ok.any():
            level = table.target_level if np.any(ok & (table.level == table.target_level)) else int(table.level[ok].max())
            sel = np.flatnonzero(ok & (table.level == level))
            # repeats of a mixture (search.repeats) are judged by their mean, not by their luckiest run
            _, inv, counts = np.unique(repeat_groups(table.weights[sel]), return_inverse=True, return_counts=True)
            means = (np.bincount(inv, weights=y[sel]) / counts)[inv]  # (len(sel),) each row's mixture mean
            i = int(sel[np.argmin(means)])
            n_rep = int(counts[inv[int(np.argmin(means))]])
            w = table.weights[i]
            pred = None if model is None else model.predict(w[None, :])
            kl = kl_divergence(w, feasible.prior)
            at = "the target fidelity" if level == table.target_level else f"fidelity level {level} (none at the target yet)"
            return Proposal(weights=dict(zip(feasible.domains, map(float, w), strict=True)),
                            predicted=None if pred is None else float(pred[0][0]),
                            std=None if pred is None or pred[1] is None else float(pred[1][0]),
                            observed=float(means.min()), rule="revealed", method="revealed", run_id=table.run_ids[i],
                            surrogate="" if model is None else model.describe(),
                            reason=f"best of {int(ok.sum())} feasible runs, at {at}"
                            + (f" (the mean of its {n_rep} repeats)" if n_rep > 1 else ""),
                            active_constraints=feasible.active(w), kl_to_prior=kl if np.isfinite(kl) else None,
                            n_fit=0 if model is None else model.n_fit)
        if model is not None:
            return propose(model, feasible, seed=self.seed, **self.propose_params)
        w = feasible.project(feasible.prior)
        return Proposal(weights=dict(zip(feasible.domains, map(float, w), strict=True)), rule="revealed",
                        method="prior", reason="no successful run yet: the prior, projected into the feasible set",
                        active_constraints=feasible.active(w))

    # ----------------------------------------------------------------- helpers
    def _random_open(self, open_mask: np.ndarray, n: int) -> list[int]:
        idx = np.flatnonzero(open_mask)
        return [int(i) for i in self.rng.choice(idx, size=min(n, idx.size), replace=False)]

    @staticmethod
    def _top_open(scores: np.ndarray, open_mask: np.ndarray, n: int) -> list[int]:
        """Up to ``n`` open candidates with the lowest ``scores`` (ties broken by index)."""
        idx = np.flatnonzero(open_mask)
        order = idx[np.argsort(scores[idx], kind="stable")]
        return [int(i) for i in order[:n]]


def _observed(table: RunTable, w: np.ndarray, y: np.ndarray) -> float | None:
    """The objective of the latest successful target-level run of exactly ``w`` (None if there is none)."""
    at = np.flatnonzero(table.at_level(-1) & (np.abs(table.weights - w).max(axis=1) <= 1e-8))
    return float(y[at[-1]]) if at.size else None

