"""Random search: uniform over the candidates not yet run, at the target fidelity (the baseline)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixopt.strategies.base import Pick, Strategy
from mixopt.strategies.history import History

__all__ = ["RandomStrategy"]


class RandomStrategy(Strategy):
    """Reveal candidates uniformly at random at the target fidelity; recommend the best revealed one.

    >>> s = RandomStrategy(seed=0)
    >>> len(s.initial(np.eye(3), 2, [1.0]))
    2
    """

    name = "random"

    def ask(self, history: History, candidates: np.ndarray, fidelities: Sequence[float] | None, n: int) -> list[Pick]:
        f = self._set_fidelities(fidelities)
        target = len(f) - 1
        open_mask = ~self.revealed_mask(history, np.asarray(candidates, dtype=np.float64), target)
        return [(i, target) for i in self._random_open(open_mask, n)]
