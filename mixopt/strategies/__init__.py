"""Search strategies: which (mixture, fidelity) to run next, and which mixture to recommend.

Shared by the live search loop (``mixopt.search``) and the replay simulator (``mixopt.replay``):

>>> import numpy as np
>>> from mixopt.strategies import History, make_strategy
>>> s = make_strategy("random", seed=0)
>>> cands = np.eye(3)
>>> picks = s.initial(cands, 2, [1.0])
>>> h = History(cands[[i for i, _ in picks]], [0, 0], [1.0, 2.0], [1.0, 1.0])
>>> s.recommend(h, cands) == picks[0][0]
True
"""

from __future__ import annotations

from mixopt.errors import MixoptError
from mixopt.strategies.base import Pick, Strategy, check_fidelities
from mixopt.strategies.bo import BOStrategy
from mixopt.strategies.history import History, match_rows
from mixopt.strategies.mixing_law import MixingLawStrategy
from mixopt.strategies.random_search import RandomStrategy
from mixopt.strategies.regmix import RegMixStrategy

__all__ = [
    "BOStrategy",
    "History",
    "MixingLawStrategy",
    "Pick",
    "RandomStrategy",
    "RegMixStrategy",
    "Strategy",
    "available_strategies",
    "check_fidelities",
    "make_strategy",
    "match_rows",
]

_REGISTRY: dict[str, type[Strategy]] = {
    "random": RandomStrategy,
    "regmix": RegMixStrategy,
    "mixing_law": MixingLawStrategy,
    "bo": BOStrategy,
}


def available_strategies() -> list[str]:
    """Names accepted by :func:`make_strategy`."""
    return list(_REGISTRY)


def make_strategy(name: str, seed: int = 0, **params) -> Strategy:
    """Build a strategy by name (``random``, ``regmix``, ``mixing_law``, ``bo``) with its parameters."""
    if name not in _REGISTRY:
        raise MixoptError(f"unknown strategy {name!r}; choose one of {', '.join(_REGISTRY)}")
    try:
        return _REGISTRY[name](seed=seed, **params)
    except TypeError as e:
        raise MixoptError(f"strategy {name!r}: bad parameters {sorted(params)}: {e}") from None
