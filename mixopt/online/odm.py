"""Online Data Mixing (ODM): loss-chasing bandit mixers, kept as baselines.

Two variants, both with the decaying exploration rate ``eps_t = min(1/K, sqrt(ln K / (K t)))``
(``t`` = number of updates so far, ``K`` = number of domains):

* ``odm`` -- the rule as it was actually run: ``R_i <- alpha R_i + (1 - alpha) exp(L_i)`` (a moving
  average of the exponentiated training loss of each observed domain) and
  ``p = (1 - K eps_t) R / sum(R) + eps_t``.
* ``exp3`` -- the EXP3 form from the ODM paper, with importance weighting:
  ``R_i <- alpha R_i + (1 - alpha) L_i / pi_i`` for observed domains (``pi`` = the weights in use),
  ``p = (1 - K eps_t) softmax(eps_{t-1} R) + eps_t``. In the batched setting every domain is usually
  observed each interval, so ``1 / pi_i`` inflates the reward of rarely sampled domains.

**Caveat (both variants):** the reward is the raw training loss, so a domain that cannot be learned
(uniform noise, high irreducible entropy) always looks most "rewarding" and captures most samples. On small
synthetic domains this was ~35-57% worse than stratified sampling; prefer ``"default"`` (``progress``).
"""

from __future__ import annotations

import numpy as np

from mixopt.online.base import Mixer, MixerError, register_mixer

__all__ = ["Exp3Mixer", "OdmMixer", "exploration_rate"]

_MAX_LOSS = 50.0  # exp() guard; a mean loss above 50 nats/token is a diverged run anyway


def exploration_rate(t: int, k: int) -> float:
    """``min(1/K, sqrt(ln K / (K t)))`` for update ``t >= 1``; ``1/K`` for ``t <= 0``."""
    if t <= 0 or k <= 1:
        return 1.0 / k
    return float(min(1.0 / k, np.sqrt(np.log(k) / (k * t))))


def _check_alpha(alpha: float) -> float:
    if not 0.0 <= alpha < 1.0:
        raise MixerError(f"alpha (moving-average weight of the old reward) must be in [0, 1), got {alpha}")
    return float(alpha)


@register_mixer("odm")
class OdmMixer(Mixer):
    """ODM as run: ``p`` proportional to a moving average of ``exp(train loss)`` plus exploration.

    Args:
        alpha: weight of the previous reward in the moving average (0.9).
        min_share: optional floor (0 as run).

    >>> from mixopt.online import make_mixer
    >>> m = make_mixer("odm", ["easy", "noise"], alpha=0.0)
    >>> m.update(1, [0.0, 20.0], [10, 10]).round(3).tolist()  # t=1: eps = 1/K, uniform
    [0.5, 0.5]
    """

    name = "odm"

    def __init__(self, domains, initial_weights=None, seed=0, min_share=None, alpha: float = 0.9):
        super().__init__(domains, initial_weights=initial_weights, seed=seed, min_share=min_share)
        self.alpha = _check_alpha(alpha)
        self._state = {"reward": np.full(self.k, np.nan)}

    def _update(self, step, mean_loss, count, eval_loss):
        r = self._state["reward"]
        seen = np.isfinite(mean_loss)
        x = np.exp(np.minimum(mean_loss[seen], _MAX_LOSS))
        old = r[seen]
        r[seen] = np.where(np.isnan(old), x, self.alpha * old + (1.0 - self.alpha) * x)
        if not np.any(np.isfinite(r)):
            return self._weights
        # Domains never observed get the largest reward so far (optimistic: they will be tried).
        filled = np.where(np.isfinite(r), r, np.nanmax(r))
        eps = exploration_rate(self.n_updates, self.k)
        return (1.0 - self.k * eps) * filled / filled.sum() + eps


@register_mixer("exp3")
class Exp3Mixer(Mixer):
    """ODM's EXP3 with importance-weighted loss rewards (see the module docstring for the caveat).

    Args:
        alpha: weight of the previous reward estimate (0.9).
        min_share: optional floor (0 as published).
    """

    name = "exp3"

    def __init__(self, domains, initial_weights=None, seed=0, min_share=None, alpha: float = 0.9):
        super().__init__(domains, initial_weights=initial_weights, seed=seed, min_share=min_share)
        self.alpha = _check_alpha(alpha)
        self._state = {"reward": np.zeros(self.k)}

    def _update(self, step, mean_loss, count, eval_loss):
        r = self._state["reward"]
        seen = np.isfinite(mean_loss)
        pi = self._weights
        reward = np.minimum(mean_loss[seen], _MAX_LOSS) / pi[seen]
        r[seen] = self.alpha * r[seen] + (1.0 - self.alpha) * reward
        eps_prev = exploration_rate(self.n_updates - 1, self.k)
        eps = exploration_rate(self.n_updates, self.k)
        z = eps_prev * r
        z = np.exp(z - z.max())
        return (1.0 - self.k * eps) * z / z.sum() + eps
