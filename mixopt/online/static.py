"""Static mixers: the baselines every online mixer must beat.

``stratified`` samples every domain equally (the strongest simple baseline in the literature: most online
methods do not reliably beat it). ``static`` keeps ``initial_weights`` (e.g. a proposal from the proxy
search) for the whole run.
"""

from __future__ import annotations

import numpy as np

from mixopt.online.base import Mixer, register_mixer

__all__ = ["StaticMixer", "StratifiedMixer"]


@register_mixer("static")
class StaticMixer(Mixer):
    """Keep the initial mixture (``initial_weights``, uniform when omitted) for the whole run.

    >>> from mixopt.online import make_mixer
    >>> make_mixer("static", ["a", "b"], {"a": 0.8, "b": 0.2}).update(1, [1, 1], [1, 1]).tolist()
    [0.8, 0.2]
    """

    name = "static"

    def _update(self, step, mean_loss, count, eval_loss):
        return self.prior


@register_mixer("stratified")
class StratifiedMixer(StaticMixer):
    """Uniform over domains, whatever ``initial_weights`` says (it is kept only as ``prior``)."""

    name = "stratified"

    def __init__(self, domains, initial_weights=None, seed=0, min_share=None):
        super().__init__(domains, initial_weights=initial_weights, seed=seed, min_share=min_share)
        self._weights = np.full(self.k, 1.0 / self.k)

    def _update(self, step, mean_loss, count, eval_loss):
        return np.full(self.k, 1.0 / self.k)
