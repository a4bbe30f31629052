"""Bayesian optimisation: a (multi-fidelity) GP of the objective and a cost-aware acquisition.

One GP (``make_surrogate("gp")`` through :func:`~mixopt.surrogates.fit_model`) serves both halves: the
acquisition (:func:`mixopt.acquisition.select_batch`; with one level a qLogNEI over the candidates, with
several a cost-aware multi-fidelity MES that may buy a cheap run to learn about the target) and the
recommendation (the feasible mixture with the best posterior mean at the target fidelity).
"""

from __future__ import annotations

import numpy as np

from mixopt.runs import RunTable
from mixopt.strategies.base import Pick, Strategy

__all__ = ["BOStrategy"]


class BOStrategy(Strategy):
    """GP + (cost-aware, multi-fidelity) acquisition; the default strategy.

    Args:
        cheap_share: with several levels, the share of the initial design run at the cheapest level (the
            rest, at least one run, is run at the target level on the same mixtures).
        fidelity_model: the GP's model of how fidelities relate: ``"multitask"`` (default: a learned
            correlation between each level and the target; on every development pool it reached a top-3
            target mixture for less than the downsampling kernel, see ``experiments/LOG.md``) or
            ``"downsampling"`` (see :class:`~mixopt.surrogates.gp.GPSurrogate`). The acquisition's cost of
            a run at each level is fitted from the observed run costs (``RunTable.estimated_level_costs``).
        select_params: extra keyword arguments for :func:`mixopt.acquisition.select_batch`.
        Others: see :class:`~mixopt.strategies.base.Strategy` (``recommend="predicted"`` by default).

    >>> from mixopt.runs import RunTable
    >>> t = RunTable.empty(list("abcd"), ["a"], fidelity_names=["tokens"], levels=[[1.0], [4.0]])
    >>> [f for _, f in BOStrategy(seed=0).initial(t, np.eye(4), 3)]  # two cheap runs, one at the target
    [0, 0, 1]
    """

    name = "bo"
    default_surrogate = "gp"
    default_recommend = "predicted"

    def __init__(self, seed: int = 0, *, cheap_share: float = 0.75, fidelity_model: str = "multitask",
                 select_params: dict | None = None, **params) -> None:
        params.setdefault("per_target", False)
        super().__init__(seed=seed, **params)
        self.fidelity_model = fidelity_model
        if self.surrogate == "gp":
            self.surrogate_params.setdefault("fidelity_model", fidelity_model)
        self.cheap_share = float(cheap_share)
        self.select_params = dict(select_params or {})
        self._round = 0

    def initial(self, table: RunTable, candidates: np.ndarray, n: int) -> list[Pick]:
        target = table.target_level
        if target == 0 or n < 2:
            return super().initial(table, candidates, n)
        n_target = max(1, int(round(n * (1.0 - self.cheap_share))))
        n_cheap = max(1, n - n_target)
        idx = self.rng.choice(len(candidates), size=min(n_cheap, len(candidates)), replace=False)
        return [(int(i), 0) for i in idx] + [(int(i), target) for i in idx[:n_target]]

    def ask(self, table: RunTable, candidates: np.ndarray, n: int) -> list[Pick]:
        from mixopt.acquisition import select_batch

        F = table.n_levels
        candidates = np.asarray(candidates, dtype=np.float64)
        revealed = np.stack([table.revealed(candidates, j) for j in range(F)], axis=1)  # (N, F)
        model = self.model(table)
        if model is None or self.surrogate != "gp":
            return [(i, F - 1) for i in self._random_open(~revealed[:, -1], n)]
        open_any = np.flatnonzero(~revealed.all(axis=1))
        if open_any.size == 0:
            return []
        self._round += 1
        level_fidelity = None
        if model.inputs.fidelity_names:
            cols = [table.fidelity_names.index(c) for c in model.inputs.fidelity_names]
            level_fidelity = table.levels[:, cols]
        mf = F > 1 and level_fidelity is not None
        raw = select_batch(model.surrogate, candidates[open_any], q=min(n, open_any.size),
                           level_fidelity=level_fidelity if mf else None,
                           level_costs=table.estimated_level_costs() if mf else None,
                           seed=self.seed * 7919 + self._round, **self.select_params)
        picks: list[Pick] = []
        for ci, fi in raw:
            c, fi = int(open_any[int(ci)]), (int(fi) if mf else F - 1)
            if revealed[c, fi]:  # already run at that level: run it at the cheapest open one instead
                fi = int(np.flatnonzero(~revealed[c])[0])
            if (c, fi) not in picks:
                picks.append((c, fi))
        if len(picks) < n:  # top up (deduplicated acquisitions) at the target level
            taken = np.zeros(len(candidates), dtype=bool)
            taken[[c for c, _ in picks]] = True
            picks += [(i, F - 1) for i in self._random_open(~revealed[:, -1] & ~taken, n - len(picks))]
        return picks[:n]
