"""Greedy surrogate search: fit a surrogate on the runs so far, run the open candidates it predicts best.

The shared engine of the ``regmix`` (LightGBM on the objective) and ``mixing_law`` (per-target mixing laws)
strategies. It runs one fidelity level (the target by default); until ``n_min`` runs are there, or for a
share ``explore`` of each batch, it picks open candidates at random. The model sees every run in the table
(every level, and eval curves where the surrogate reads them).
"""

from __future__ import annotations

import numpy as np

from mixopt.errors import MixoptError
from mixopt.runs import RunTable
from mixopt.strategies.base import Pick, Strategy

__all__ = ["SurrogateSearch"]


class SurrogateSearch(Strategy):
    """Fit the strategy's surrogate and run the open candidates it predicts best.

    Args:
        explore: share of each batch (binomial draw) picked at random among open candidates.
        n_min: successful runs needed at the level before the model is used (default: k + 2, the
            mixing law's parameter count; ``regmix`` uses 3).
        fidelity: level index to run (``-1`` = the target).
        Others: see :class:`~mixopt.strategies.base.Strategy`.
    """

    name = "surrogate"
    default_surrogate = "lightgbm"
    default_recommend = "predicted"

    def __init__(self, seed: int = 0, *, explore: float = 0.0, n_min: int | None = None, fidelity: int = -1,
                 **params) -> None:
        super().__init__(seed=seed, **params)
        if not 0.0 <= explore <= 1.0:
            raise MixoptError(f"explore must be in [0, 1], got {explore}")
        self.explore = float(explore)
        self.n_min = n_min
        self.fidelity = int(fidelity)

    def initial(self, table: RunTable, candidates: np.ndarray, n: int) -> list[Pick]:
        """``n`` random candidates at the strategy's own level (the runs its model waits for)."""
        level = self.fidelity % table.n_levels
        return [(i, level) for i, _ in super().initial(table, candidates, n)]

    def enough_runs(self, table: RunTable) -> bool:
        n_min = self.n_min if self.n_min is not None else table.weights.shape[1] + 2
        level = self.fidelity % table.n_levels
        return int(table.at_level(level).sum()) >= max(n_min, 2) and super().enough_runs(table)

    def ask(self, table: RunTable, candidates: np.ndarray, n: int) -> list[Pick]:
        level = self.fidelity % table.n_levels
        candidates = np.asarray(candidates, dtype=np.float64)
        open_mask = ~table.revealed(candidates, level)
        model = self.model(table)
        if model is None:
            return [(i, level) for i in self._random_open(open_mask, n)]
        pred = model.predict(candidates)[0]
        n_rand = int(self.rng.binomial(n, self.explore)) if self.explore > 0 else 0
        greedy = self._top_open(pred, open_mask, n - n_rand)
        open_mask[greedy] = False
        return [(i, level) for i in greedy + self._random_open(open_mask, n_rand)]
