"""Aioli-style mixer: estimate how training on each domain lowers every domain's loss, then take an
exponentiated-gradient step on the mixture.

Model (per update interval ``t``): ``L_t - L_{t-1} ≈ -A w_t`` where ``w_t`` ``(k,)`` is the mixture used
during the interval and ``A[i, j]`` is how much a full interval on domain ``j`` lowers domain ``i``'s loss.
``A`` is fitted online by exponentially-forgotten ridge least squares from sufficient statistics. To keep
``A`` identifiable, each interval's mixture is the base mixture ``p`` nudged toward one domain
(``(1 - probe) p + probe e_j``, ``j`` cycling through a seeded permutation), as in Aioli's probing rounds.
The base mixture then takes the step ``p <- p * exp(eta * g)`` with ``g = A.sum(0)`` (total loss drop per
unit of each domain), centred and scaled to ``[-1, 1]`` so ``eta`` is unitless; optional ``smoothing``
pulls ``p`` back toward the prior.

Uses held-out losses when ``eval_loss`` is given (as Aioli does), otherwise mean training losses. Intervals
in which some domain was not observed do not enter the fit.
"""

from __future__ import annotations

import numpy as np

from mixopt.online.base import Mixer, MixerError, apply_floor, register_mixer

__all__ = ["AioliMixer"]


@register_mixer("aioli")
class AioliMixer(Mixer):
    """Online Aioli-style exponentiated-gradient mixer.

    Args:
        eta: step size of the exponentiated-gradient update (0.3; unitless, see module docstring).
        probe: share moved onto the probed domain each interval (0.1).
        forget: forgetting factor of the least-squares statistics per update (0.9).
        ridge: ridge penalty, relative to the mean diagonal of the design statistics (1e-3).
        smoothing: pull of the base mixture toward the prior each update (0.0).
        min_share: per-domain floor of the weights in use (0).
    """

    name = "aioli"

    def __init__(self, domains, initial_weights=None, seed=0, min_share=None, eta: float = 0.3,
                 probe: float = 0.1, forget: float = 0.9, ridge: float = 1e-3, smoothing: float = 0.0):
        super().__init__(domains, initial_weights=initial_weights, seed=seed, min_share=min_share)
        if eta < 0 or not 0 <= probe < 1 or not 0 < forget <= 1 or ridge <= 0 or not 0 <= smoothing <= 1:
            raise MixerError(
                f"aioli: need eta >= 0, 0 <= probe < 1, 0 < forget <= 1, ridge > 0, 0 <= smoothing <= 1; "
                f"got eta={eta}, probe={probe}, forget={forget}, ridge={ridge}, smoothing={smoothing}"
            )
        self.eta, self.probe, self.forget, self.ridge, self.smoothing = eta, probe, forget, ridge, smoothing
        k = self.k
        self._state = {
            "p": self.prior.copy(),
            "sww": np.zeros((k, k)),
            "slw": np.zeros((k, k)),
            "n_fit": 0,
            "prev_loss": np.full(k, np.nan),
            "order": self._rng.permutation(k),
            "pos": 0,
        }

    def interaction(self) -> np.ndarray | None:
        """``(k, k)`` current estimate of ``A`` (row: affected domain, column: trained domain), or None."""
        st = self._state
        if st["n_fit"] < 2:
            return None
        sww = st["sww"]
        lam = self.ridge * max(np.trace(sww) / self.k, 1e-12)
        return -np.linalg.solve(sww + lam * np.eye(self.k), st["slw"].T).T

    def _update(self, step, mean_loss, count, eval_loss):
        st = self._state
        loss = mean_loss if eval_loss is None else np.where(np.isfinite(eval_loss), eval_loss, mean_loss)
        prev = st["prev_loss"]
        w_used = self._weights
        if np.all(np.isfinite(loss)) and np.all(np.isfinite(prev)):
            d = loss - prev
            st["sww"] = self.forget * st["sww"] + np.outer(w_used, w_used)
            st["slw"] = self.forget * st["slw"] + np.outer(d, w_used)
            st["n_fit"] = int(st["n_fit"]) + 1
        st["prev_loss"] = np.where(np.isfinite(loss), loss, prev)
        a = self.interaction()
        p = st["p"]
        if a is not None and st["n_fit"] >= self.k:
            g = a.sum(axis=0)
            g = g - g.mean()
            top = np.abs(g).max()
            if top > 0:
                p = p * np.exp(self.eta * g / top)
                p = p / p.sum()
            p = (1.0 - self.smoothing) * p + self.smoothing * self.prior
            st["p"] = p
        j = int(st["order"][int(st["pos"]) % self.k])
        st["pos"] = int(st["pos"]) + 1
        e = np.zeros(self.k)
        e[j] = 1.0
        return (1.0 - self.probe) * apply_floor(p, self.min_share) + self.probe * e
