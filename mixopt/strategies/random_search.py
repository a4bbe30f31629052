"""Random search: uniform over the candidates not yet run, at the target fidelity (the baseline)."""

from __future__ import annotations

import numpy as np

from mixopt.runs import RunTable
from mixopt.strategies.base import Pick, Strategy

__all__ = ["RandomStrategy"]


class RandomStrategy(Strategy):
    """Run random candidates at the target fidelity; recommend the best run observed.

    With ``surrogate=...`` and ``recommend="predicted"`` it becomes "random design, then a model's best
    prediction" (RegMix's one-shot recipe with any surrogate).

    >>> from mixopt.runs import RunTable
    >>> s = RandomStrategy(seed=0)
    >>> len(s.initial(RunTable.empty(["a", "b", "c"], ["a"]), np.eye(3), 2))
    2
    """

    name = "random"

    def ask(self, table: RunTable, candidates: np.ndarray, n: int) -> list[Pick]:
        open_mask = ~table.revealed(np.asarray(candidates, dtype=np.float64), -1)
        return [(i, table.target_level) for i in self._random_open(open_mask, n)]
