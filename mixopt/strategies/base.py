"""The strategy contract: pick which (candidate, fidelity) pairs to run next, and recommend a candidate.

A strategy sees only a :class:`~mixopt.strategies.history.History` of revealed runs and a finite candidate
set (live search: freshly sampled mixtures; replay: the pool). ``fidelities`` is the list of relative costs
of the fidelities, cheapest first; the last one is the target fidelity (the one the objective is judged at).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixopt.errors import MixoptError
from mixopt.strategies.history import History, match_rows

__all__ = ["Pick", "Strategy", "check_fidelities"]

Pick = tuple[int, int]  # (candidate index, fidelity index)
_RECOMMEND_MODES = ("revealed", "predicted")


def check_fidelities(fidelities: Sequence[float] | None) -> np.ndarray:
    """(F,) float64 positive finite costs, cheapest first; ``None`` means one fidelity of cost 1."""
    if fidelities is None:
        return np.ones(1)
    f = np.asarray(list(fidelities), dtype=np.float64).reshape(-1)
    if f.size == 0 or not np.all(np.isfinite(f)) or np.any(f <= 0):
        raise MixoptError(f"fidelities must be a non-empty list of positive finite costs, got {list(fidelities)!r}")
    return f


class Strategy:
    """Base class: random choices, bookkeeping of what was revealed, and the recommendation rule.

    Subclasses override :meth:`ask` (and :meth:`predict_objective` when they have a surrogate).

    Args:
        seed: seeds every random choice of the strategy.
        recommend: ``"revealed"`` — the best revealed run at the target fidelity (falls back to the
            surrogate's prediction before any target-fidelity run is revealed); ``"predicted"`` — the
            candidate with the best predicted objective at the target fidelity.
    """

    name = "base"

    def __init__(self, seed: int = 0, recommend: str = "revealed") -> None:
        if recommend not in _RECOMMEND_MODES:
            raise MixoptError(f"recommend must be one of {_RECOMMEND_MODES}, got {recommend!r}")
        self.seed = int(seed)
        self.recommend_mode = recommend
        self.rng = np.random.default_rng(self.seed)
        self.fidelities_: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed}, recommend={self.recommend_mode!r})"

    # ----------------------------------------------------------------- the contract
    def initial(self, candidates: np.ndarray, n: int, fidelities: Sequence[float] | None = None) -> list[Pick]:
        """``n`` distinct random candidates at the target fidelity (subclasses may use cheap fidelities)."""
        f = self._set_fidelities(fidelities)
        target = len(f) - 1
        idx = self.rng.choice(len(candidates), size=min(n, len(candidates)), replace=False)
        return [(int(i), target) for i in idx]

    def ask(
        self, history: History, candidates: np.ndarray, fidelities: Sequence[float] | None, n: int
    ) -> list[Pick]:
        """The next ``n`` distinct (candidate, fidelity) pairs to run, never one already revealed."""
        raise NotImplementedError

    def recommend(
        self, history: History, candidates: np.ndarray, fidelities: Sequence[float] | None = None
    ) -> int:
        """Index into ``candidates`` of the mixture to recommend now, from revealed runs and predictions."""
        candidates = np.asarray(candidates, dtype=np.float64)
        target = self._target(history, fidelities)
        if self.recommend_mode == "predicted" or not np.any(history.at(target)):
            pred = self.predict_objective(history, candidates, target)
            if pred is not None:
                return int(np.argmin(pred))
        return self._best_revealed(history, candidates, target)

    def predict_objective(self, history: History, candidates: np.ndarray, target: int) -> np.ndarray | None:
        """(N,) predicted objective at fidelity ``target`` for each candidate, or ``None`` (no model yet)."""
        return None

    # ----------------------------------------------------------------- helpers
    def _set_fidelities(self, fidelities: Sequence[float] | None) -> np.ndarray:
        f = check_fidelities(fidelities) if fidelities is not None else self.fidelities_
        if f is None:
            f = np.ones(1)
        self.fidelities_ = f
        return f

    def _target(self, history: History, fidelities: Sequence[float] | None) -> int:
        if fidelities is not None:
            return len(check_fidelities(fidelities)) - 1
        if self.fidelities_ is not None:
            return len(self.fidelities_) - 1
        return int(history.fidelity_index.max()) if history.n else 0

    @staticmethod
    def revealed_mask(history: History, candidates: np.ndarray, fid: int) -> np.ndarray:
        """(N,) bool: candidate already revealed at fidelity index ``fid``."""
        mask = np.zeros(len(candidates), dtype=bool)
        at = history.at(fid)
        if np.any(at):
            idx = match_rows(candidates, history.X[at])
            mask[idx[idx >= 0]] = True
        return mask

    def _random_open(self, open_mask: np.ndarray, n: int) -> list[int]:
        idx = np.flatnonzero(open_mask)
        return [int(i) for i in self.rng.choice(idx, size=min(n, idx.size), replace=False)]

    def _top_open(self, scores: np.ndarray, open_mask: np.ndarray, n: int) -> list[int]:
        """Up to ``n`` open candidates with the lowest ``scores`` (ties broken by index)."""
        idx = np.flatnonzero(open_mask)
        order = idx[np.argsort(scores[idx], kind="stable")]
        return [int(i) for i in order[:n]]

    def _best_revealed(self, history: History, candidates: np.ndarray, target: int) -> int:
        """Candidate with the lowest revealed objective at ``target`` (else at the highest fidelity seen)."""
        if history.n == 0:
            return 0
        idx = match_rows(candidates, history.X)
        ok = idx >= 0
        if not np.any(ok):
            return 0
        fids = history.fidelity_index[ok]
        best_fid = target if np.any(fids == target) else int(fids.max())
        sel = ok & (history.fidelity_index == best_fid)
        j = np.flatnonzero(sel)[np.argmin(history.y[sel])]
        return int(idx[j])


def fingerprint(history: History) -> tuple:
    """A cheap key identifying a history's content (to reuse a fitted surrogate between ask and recommend)."""
    return (history.n, float(history.y.sum()), float(history.X.sum()), int(history.fidelity_index.sum()))
