"""Search strategies: which (mixture, fidelity level) to run next, and the proposal.

Shared by the live search (``mixopt.search``), replay (``mixopt.replay``) and ``mixopt fit --propose``;
each sees a :class:`~mixopt.runs.RunTable` and returns a :class:`~mixopt.proposal.Proposal`:

>>> import numpy as np
>>> from mixopt.feasible import FeasibleSet
>>> from mixopt.runs import RunTable
>>> s = make_strategy("random", seed=0)
>>> cands = np.eye(3)
>>> picks = s.initial(RunTable.empty(["a", "b", "c"], ["loss"]), cands, 2)
>>> t = RunTable.from_arrays(cands[[i for i, _ in picks]], [1.0, 2.0], domains=["a", "b", "c"], target_names=["loss"])
>>> s.recommend(t, FeasibleSet.simplex(["a", "b", "c"])).weights == dict(zip("abc", cands[picks[0][0]]))
True
"""

from __future__ import annotations

from mixopt.strategies.base import Pick, Strategy
from mixopt.strategies.registry import STRATEGIES

__all__ = ["STRATEGIES", "Pick", "Strategy", "available_strategies", "make_strategy"]


def available_strategies() -> list[str]:
    """Names accepted by :func:`make_strategy`."""
    return STRATEGIES.names()


def make_strategy(name: str, seed: int = 0, **params) -> Strategy:
    """Build a strategy by name (``random``, ``regmix``, ``mixing_law``, ``bo``, ``surrogate``)."""
    return STRATEGIES.create(name, seed=seed, **params)
