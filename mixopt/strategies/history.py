"""What a strategy is allowed to see: the runs revealed so far."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mixopt.errors import MixoptError

__all__ = ["History", "match_rows"]


@dataclass(frozen=True)
class History:
    """Revealed runs, in reveal order.

    Attributes:
        X: (n, k) mixtures on the simplex.
        fidelity_index: (n,) int index into the ``fidelities`` list given to ``ask`` (0 = cheapest).
        y: (n,) objective (lower is better), e.g. the mean validation loss.
        costs: (n,) cost paid for each run (any unit: seconds, FLOPs, relative cost).
        Y: optional (n, m) per-target losses, with ``y == Y @ objective_weights``; surrogates that model each
            target (``mixing_law``) use them.
        objective_weights: optional (m,) weights turning ``Y`` into ``y`` (default: the mean).

    >>> h = History.empty(3)
    >>> h.n
    0
    """

    X: np.ndarray
    fidelity_index: np.ndarray
    y: np.ndarray
    costs: np.ndarray
    Y: np.ndarray | None = None
    objective_weights: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        X = np.atleast_2d(np.asarray(self.X, dtype=np.float64))
        n = X.shape[0]
        fid = np.asarray(self.fidelity_index, dtype=np.int64).reshape(-1)
        y = np.asarray(self.y, dtype=np.float64).reshape(-1)
        costs = np.asarray(self.costs, dtype=np.float64).reshape(-1)
        if not (fid.shape[0] == y.shape[0] == costs.shape[0] == n):
            raise MixoptError(
                f"History: X has {n} rows but fidelity_index/y/costs have "
                f"{fid.shape[0]}/{y.shape[0]}/{costs.shape[0]}"
            )
        if not np.all(np.isfinite(y)):
            raise MixoptError("History: y must be finite (drop failed runs before building the history)")
        Y = self.Y
        if Y is not None:
            Y = np.asarray(Y, dtype=np.float64)
            Y = Y[:, None] if Y.ndim == 1 else Y
            if Y.ndim != 2 or Y.shape[0] != n:
                raise MixoptError(f"History: Y must be (n, m) with n = {n} rows, got shape {Y.shape}")
        w = self.objective_weights
        if w is not None:
            w = np.asarray(w, dtype=np.float64).reshape(-1)
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "fidelity_index", fid)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "costs", costs)
        object.__setattr__(self, "Y", Y)
        object.__setattr__(self, "objective_weights", w)

    @classmethod
    def empty(cls, k: int, m: int | None = None) -> History:
        """A history with no runs over ``k`` domains (and ``m`` targets when per-target losses are kept)."""
        return cls(np.zeros((0, k)), np.zeros(0, int), np.zeros(0), np.zeros(0), None if m is None else np.zeros((0, m)))

    @property
    def n(self) -> int:
        """Number of revealed runs."""
        return int(self.X.shape[0])

    def at(self, fid: int) -> np.ndarray:
        """(n,) bool mask of the runs at fidelity index ``fid``."""
        return self.fidelity_index == fid


def _keys(A: np.ndarray, decimals: int = 8) -> list[bytes]:
    return [row.tobytes() for row in np.round(np.asarray(A, dtype=np.float64), decimals) + 0.0]


def match_rows(candidates: np.ndarray, X: np.ndarray) -> np.ndarray:
    """For each row of ``X`` (n, k), the index of the equal row of ``candidates`` (N, k), or -1.

    Rows are compared after rounding to 1e-8, so a mixture that came from the candidate set matches it.
    """
    index = {}
    for i, key in enumerate(_keys(candidates)):
        index.setdefault(key, i)
    return np.array([index.get(key, -1) for key in _keys(X)], dtype=np.int64)
