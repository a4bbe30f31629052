"""Mixing-law search: fit a per-target data mixing law, run the predicted-best open candidates.

Data mixing laws (Ye et al., 2024) model each target loss as ``c + k * exp(t . w)``; the strategy fits one
law per target on the runs so far (cheap runs are extrapolated to the target fidelity along their eval
curves first: the nested laws), combines them into the objective and runs the open candidates with the
best prediction, with a share of random picks for exploration.
"""

from __future__ import annotations

from mixopt.strategies.surrogate_search import SurrogateSearch

__all__ = ["MixingLawStrategy"]


class MixingLawStrategy(SurrogateSearch):
    """The mixing law per target; 20 % of each batch explores at random; predicted recommendation.

    Keyword arguments are those of :class:`~mixopt.strategies.surrogate_search.SurrogateSearch`.
    """

    name = "mixing_law"
    default_surrogate = "mixing_law"

    def __init__(self, seed: int = 0, **params) -> None:
        params.setdefault("explore", 0.2)
        super().__init__(seed=seed, **params)
