"""Name -> strategy class. A new strategy is one file plus one line here."""

from __future__ import annotations

from mixopt.registry import Registry

__all__ = ["STRATEGIES"]

STRATEGIES = Registry("strategy")
STRATEGIES.add("random", "mixopt.strategies.random_search:RandomStrategy")
STRATEGIES.add("regmix", "mixopt.strategies.regmix:RegMixStrategy")
STRATEGIES.add("mixing_law", "mixopt.strategies.mixing_law:MixingLawStrategy")
STRATEGIES.add("bo", "mixopt.strategies.bo:BOStrategy")
STRATEGIES.add("surrogate", "mixopt.strategies.surrogate_search:SurrogateSearch")
