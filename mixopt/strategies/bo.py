"""Bayesian optimisation: a (multi-fidelity) GP and a cost-aware acquisition, through the shared proposer.

The acquisition is :func:`mixopt.propose.select_batch` — the same BoTorch code the live search loop uses:
with one fidelity a GP and qLogNEI over the candidates, with several a GP over (weights, fidelity) and a
cost-aware multi-fidelity acquisition that may spend a cheap run to learn about the target. Fidelity values
given to the GP are the fidelities' relative costs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixopt.strategies.base import Pick, Strategy, fingerprint
from mixopt.strategies.history import History

__all__ = ["BOStrategy"]


class BOStrategy(Strategy):
    """GP + (cost-aware, multi-fidelity) acquisition via ``select_batch``; the default strategy.

    Args:
        seed: seeds the initial design, the acquisition optimiser and the GP fits.
        cheap_share: with several fidelities, the share of the initial design run at the cheapest fidelity
            (the rest, at least one run, is run at the target fidelity on the same mixtures).
        recommend: ``"predicted"`` (default: the candidate with the best GP posterior mean at the target
            fidelity; better than ``"revealed"`` on the RegMix tables, see ``experiments/LOG.md``) or
            ``"revealed"`` (the best revealed target-fidelity run).
        select_params: extra keyword arguments for :func:`mixopt.propose.select_batch`.

    >>> s = BOStrategy(seed=0)
    >>> [f for _, f in s.initial(np.eye(4), 3, [1.0, 4.0])]  # two cheap runs, one at the target
    [0, 0, 1]
    """

    name = "bo"

    def __init__(
        self,
        seed: int = 0,
        *,
        cheap_share: float = 0.75,
        recommend: str = "predicted",
        select_params: dict | None = None,
    ) -> None:
        super().__init__(seed=seed, recommend=recommend)
        self.cheap_share = float(cheap_share)
        self.select_params = dict(select_params or {})
        self._round = 0
        self._cache: tuple | None = None

    def initial(self, candidates: np.ndarray, n: int, fidelities: Sequence[float] | None = None) -> list[Pick]:
        f = self._set_fidelities(fidelities)
        target = len(f) - 1
        if target == 0 or n < 2:
            return super().initial(candidates, n, fidelities)
        n_target = max(1, int(round(n * (1.0 - self.cheap_share))))
        n_cheap = max(1, n - n_target)
        idx = self.rng.choice(len(candidates), size=min(n_cheap, len(candidates)), replace=False)
        picks = [(int(i), 0) for i in idx]
        return picks + [(int(i), target) for i in idx[:n_target]]

    def ask(self, history: History, candidates: np.ndarray, fidelities: Sequence[float] | None, n: int) -> list[Pick]:
        from mixopt.propose import select_batch

        f = self._set_fidelities(fidelities)
        F = len(f)
        candidates = np.asarray(candidates, dtype=np.float64)
        revealed = np.stack([self.revealed_mask(history, candidates, j) for j in range(F)], axis=1)  # (N, F)
        if history.n < 2 or np.ptp(history.y) == 0:
            return [(i, F - 1) for i in self._random_open(~revealed[:, -1], n)]
        open_any = np.flatnonzero(~revealed.all(axis=1))
        if open_any.size == 0:
            return []
        self._round += 1
        kwargs = dict(q=min(n, open_any.size), seed=self.seed * 7919 + self._round, **self.select_params)
        if F > 1:
            kwargs.update(fidelity_obs=f[history.fidelity_index], fidelity_values=f, costs=f, target_fidelity=f[-1])
        raw = select_batch(history.X, history.y, candidates[open_any], **kwargs)
        picks: list[Pick] = []
        for ci, fi in raw:
            c, fi = int(open_any[int(ci)]), int(fi)
            if revealed[c, fi]:  # already run at that fidelity: run it at the cheapest open one instead
                fi = int(np.flatnonzero(~revealed[c])[0])
            if (c, fi) not in picks:
                picks.append((c, fi))
        if len(picks) < n:  # top up (deduplicated acquisitions) at the target fidelity
            taken = np.zeros(len(candidates), dtype=bool)
            taken[[c for c, _ in picks]] = True
            picks += [(i, F - 1) for i in self._random_open(~revealed[:, -1] & ~taken, n - len(picks))]
        return picks[:n]

    def predict_objective(self, history: History, candidates: np.ndarray, target: int) -> np.ndarray | None:
        """GP posterior mean at the target fidelity (``make_surrogate("gp")``), ``None`` before 2 runs."""
        if history.n < 2 or np.ptp(history.y) == 0:
            return None
        key = fingerprint(history)
        if self._cache is None or self._cache[0] != key:
            from mixopt.surrogates import make_surrogate

            f = self.fidelities_ if self.fidelities_ is not None else np.ones(int(history.fidelity_index.max()) + 1)
            if len(np.unique(history.fidelity_index)) > 1:
                X = np.column_stack([history.X, f[history.fidelity_index]])
                model = make_surrogate("gp", random_state=self.seed, fidelity_columns=[X.shape[1] - 1],
                                       target_fidelity=f[target])
            else:
                X = history.X
                model = make_surrogate("gp", random_state=self.seed)
            self._cache = (key, model.fit(X, history.y))
        return np.asarray(self._cache[1].predict(np.asarray(candidates, dtype=np.float64)), dtype=np.float64)
