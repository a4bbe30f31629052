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

    It uses its model from the third run on (``n_min=3``: small trees on few runs; on RegMix's pool this
    reaches the top 3 in about half the reveals of waiting for ``k + 2`` runs, see ``experiments/LOG.md``).
    Keyword arguments are those of :class:`~mixopt.strategies.surrogate_search.SurrogateSearch`.
    """

    name = "regmix"
    default_surrogate = "lightgbm"

    def __init__(self, seed: int = 0, **params) -> None:
        params.setdefault("n_min", 3)
        super().__init__(seed=seed, **params)
