"""Greedy surrogate search: fit a surrogate on the revealed runs, run the predicted-best open candidates.

The shared engine of the ``regmix`` (LightGBM on the objective) and ``mixing_law`` (per-target mixing laws)
strategies. Runs a single fidelity (the target by default); until ``n_min`` runs are revealed there, or for
a share ``explore`` of each batch, it picks open candidates at random.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixopt.errors import MixoptError
from mixopt.strategies.base import Pick, Strategy, fingerprint
from mixopt.strategies.history import History

__all__ = ["SurrogateSearch"]


class SurrogateSearch(Strategy):
    """Fit ``make_surrogate(surrogate)`` at one fidelity and run the open candidates it predicts best.

    Args:
        seed: seeds random picks and the surrogate's ``random_state``.
        surrogate: registered surrogate name (``mixopt.surrogates.available_surrogates()``).
        surrogate_params: extra keyword arguments for the surrogate.
        per_target: fit the per-target losses ``History.Y`` (n, m) and combine the predictions with
            ``History.objective_weights`` (default: mean) instead of fitting the objective ``y``.
        explore: share of each batch (rounded, at least 0) picked at random among open candidates.
        n_min: revealed runs needed at the fidelity before the surrogate is used (default: k + 2).
        fidelity: fidelity index to run (``-1`` = the target).
        refit_every: refit the surrogate only once this many new runs were revealed at the fidelity since
            the last fit (1 = every time; larger values make replays of slow surrogates affordable).
        recommend: see :class:`~mixopt.strategies.base.Strategy`.
    """

    name = "surrogate"

    def __init__(
        self,
        seed: int = 0,
        *,
        surrogate: str = "lightgbm",
        surrogate_params: dict | None = None,
        per_target: bool = False,
        explore: float = 0.0,
        n_min: int | None = None,
        fidelity: int = -1,
        refit_every: int = 1,
        recommend: str = "revealed",
    ) -> None:
        super().__init__(seed=seed, recommend=recommend)
        if not 0.0 <= explore <= 1.0:
            raise MixoptError(f"explore must be in [0, 1], got {explore}")
        self.surrogate = surrogate
        self.surrogate_params = dict(surrogate_params or {})
        self.per_target = per_target
        self.explore = float(explore)
        self.n_min = n_min
        self.fidelity = int(fidelity)
        self.refit_every = max(1, int(refit_every))
        self._cache: tuple | None = None  # ((fingerprint, fid), runs fitted on, fitted surrogate)


    def _fit(self, history: History, fid: int):
        """The surrogate fitted on the runs at ``fid``, or ``None`` when there are too few of them."""
        at = history.at(fid)
        n_min = self.n_min if self.n_min is not None else history.X.shape[1] + 2
        if at.sum() < max(n_min, 2):
            return None
        key = (fingerprint(history), fid)
        if self._cache is not None and (
            self._cache[0] == key or (self._cache[0][1] == fid and 0 <= at.sum() - self._cache[1] < self.refit_every)
        ):
            return self._cache[2]
        from mixopt.surrogates import make_surrogate

        if self.per_target and history.Y is not None:
            y = history.Y[at]
        else:
            y = history.y[at]
        model = make_surrogate(self.surrogate, random_state=self.seed, **self.surrogate_params).fit(history.X[at], y)
        self._cache = (key, int(at.sum()), model)
        return model

    def predict_objective(self, history: History, candidates: np.ndarray, target: int) -> np.ndarray | None:
        model = self._fit(history, self.fidelity % (target + 1))
        if model is None:
            return None
        pred = np.asarray(model.predict(np.asarray(candidates, dtype=np.float64)), dtype=np.float64)
        if pred.ndim == 2:
            w = history.objective_weights
            w = np.full(pred.shape[1], 1.0 / pred.shape[1]) if w is None else w
            pred = pred @ w
        return pred.reshape(-1)

    def ask(self, history: History, candidates: np.ndarray, fidelities: Sequence[float] | None, n: int) -> list[Pick]:
        fid = self.fidelity % len(self._set_fidelities(fidelities))
        candidates = np.asarray(candidates, dtype=np.float64)
        open_mask = ~self.revealed_mask(history, candidates, fid)
        pred = self.predict_objective(history, candidates, fid)
        if pred is None:
            return [(i, fid) for i in self._random_open(open_mask, n)]
        n_rand = int(self.rng.binomial(n, self.explore)) if self.explore > 0 else 0
        greedy = self._top_open(pred, open_mask, n - n_rand)
        open_mask[greedy] = False
        return [(i, fid) for i in greedy + self._random_open(open_mask, n_rand)]
