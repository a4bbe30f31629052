"""RegMix as a strategy: random mixtures, a LightGBM regression, then the predicted-best mixture.

RegMix (Liu et al., ICLR 2025) is one-shot: train many small proxies on random mixtures, regress the target
loss on the weights with LightGBM, and take the mixture with the best prediction. Sequentially, the initial
design is random and every later batch is the open candidates with the best LightGBM prediction; the
recommendation is the feasible mixture with the best prediction.
"""

from __future__ import annotations

from mixopt.strategies.surrogate_search import SurrogateSearch

__all__ = ["RegMixStrategy"]


class RegMixStrategy(SurrogateSearch):
    """LightGBM on the objective, greedy asks at one fidelity, predicted recommendation.

    Keyword arguments are those of :class:`~mixopt.strategies.surrogate_search.SurrogateSearch`.
    """

    name = "regmix"
    default_surrogate = "lightgbm"
