"""Reducible-loss mixer: sample each domain in proportion to the loss it can still lose.

Why this rule. A static mixture ``w`` that minimises the summed loss ``sum_k L_k(w_k N)`` after ``N``
tokens satisfies (Lagrange, ``n_k = w_k N``) ``w_k ∝ -dL_k / d ln n_k``: every domain gets data in
proportion to its loss decrease per *doubling* of its own data. For a power law
``L_k(n) = eps_k + beta_k n^-alpha_k`` that is ``alpha_k * (L_k(n_k) - eps_k)``: the exponent times the
*reducible* loss. Online, the exponents are poorly identified (a curve bending over the last few
intervals can be read as any ``alpha``), and weighting by them was worse on the tuning seeds of
``experiments/bench_online.py`` (base setting 0.896 vs 0.854 of stratified's excess), so the policy is
``w_k ∝ prior_k * R_k`` with ``R_k = L_k(n_k) - eps_k`` read off the same online power-law fit as
:class:`~mixopt.online.ado.AdoMixer` (``n`` = the domain's own tokens).

Two guards against the noise of ``R`` (the fitted ``eps`` is an extrapolation):

* exponents below ``alpha_min`` (0.2) are not fitted: with a tiny exponent a flat, unlearnable domain is
  fitted as ``eps = 0, beta = L`` and would look maximally reducible;
* ``R`` is averaged over updates (exponential average, rate ``smooth``) and the per-domain averages are
  shrunk toward their mean across domains by the James-Stein factor ``max(0, 1 - noise / spread)``:
  ``noise`` is the mean variance of the averages (from their running second moment), ``spread`` the
  variance of the averages across domains. Domains that only differ by noise (equally hard domains) keep
  the prior; consistently different ones are split by ``R``.

A guard for every domain (``max_harm``, 0.02 nats by default; None turns it off). A domain's harm ``H_k``
is the larger of

* the loss its token deficit against the prior costs by its own fitted law,
  ``L_k(n_k) - L_k(n_k + deficit_k)`` (a domain that is still learning), and
* how far its smoothed loss has risen above the best it reached (a domain whose loss depends on its
  *current* share: a distribution the model must keep seeing or it drifts away from it; a law in the
  cumulative tokens cannot see that).

Once ``H_k`` passes ``max_harm / 2`` the domain's share is held up, reaching the prior at ``max_harm``, so
its deficit stops growing. A flat, unlearnable domain has ``H ≈ 0`` and can still be starved.

A cooldown (``cooldown``, 0.2 by default): the last fifth of the run trains on the prior mixture again,
when the run's length is known (``total_steps``; ``OnlineMixing(..., total_steps=)``, the HF and Lightning
integrations set it). On the demo corpus a domain's held-out loss depends on how much of it the model saw
*recently*, not only in total: the domains that gave up tokens recover most of their loss in the cooldown,
while the data-hungry domains keep most of their gain (measured: the same mean gain, the other domains'
losses cut by 55-70%; ``experiments/LOG.md``, 2026-12-02, fourth session). The mixer keeps fitting its laws
during the cooldown; only its weights are not used.

Everything else (warm-up, floor ``min_share``, ``reference=`` tilt) is :class:`AdoMixer`'s; the
time-averaged policy and the credit factor are off (``gamma2 = 1``, ``s = 0``): the averaging is done on
``R`` instead.

Measured (``experiments/LOG.md``, 2026-12-02): on the synthetic benchmark's tuning seeds it moves most
data to the data-hungry domain, which is the gain; a learned-in-hindsight schedule is still better. The
guard at 0.02 costs the synthetic benchmark nothing measurable (0.891 vs 0.890 of stratified's excess
loss); on the demo corpus it gives up 13% of the mean gain and cuts what the other domains lose by 16-63%
(the noise-like domain least).
"""

from __future__ import annotations

import numpy as np

from mixopt.online.ado import AdoMixer
from mixopt.online.base import MixerError, observed_loss, register_mixer
from mixopt.online.power_law import ALPHA_GRID

__all__ = ["ReducibleMixer"]

_RISE_RATE = 0.2  # running average of each domain's loss for the rise guard (about the last 9 updates)


@register_mixer("reducible")
class ReducibleMixer(AdoMixer):
    """Sample in proportion to each domain's reducible loss ``L - eps`` (``make_mixer("reducible", ...)``).

    Args:
        alpha_min: smallest power-law exponent fitted (0.2); 40 exponents log-spaced up to 2.
        smooth: rate of the running average of ``R`` (0.5).
        max_harm: no domain is let fall further behind the prior mixture once it is ``max_harm`` nats worse
            off for it (its law's prediction, or its loss's rise); 0.02 (about 1% of an LM's loss); None: off.
        cooldown: the last ``cooldown`` fraction of the run trains on the prior mixture (0.2; 0: off). Needs
            the run's length: ``total_steps`` here, ``OnlineMixing(..., total_steps=)``, or the HF /
            Lightning integrations, which set it from the trainer; without it there is no cooldown.
        total_steps: the run's length in optimiser steps (see ``cooldown``).
        warmup, min_points, forget, reference, reference_tokens, temperature, min_scale, min_share: as
            :class:`~mixopt.online.ado.AdoMixer` (the floor defaults to ``0.25 / k``).

    >>> from mixopt.online import make_mixer
    >>> m = make_mixer("reducible", ["noise", "text"], warmup=0, min_points=2, min_share=0.0)
    >>> for i in range(1, 30):          # noise stays at 4.0 nats, text follows 2 + 2 (n / 1000)^-0.5
    ...     w = m.update(i, [4000.0, 1000 * (2 + 2 * (1000 * i / 1000) ** -0.5)], [500, 500])
    >>> bool(w[1] > 0.9)
    True
    """

    name = "reducible"

    def __init__(self, domains, initial_weights=None, seed=0, min_share=None, warmup: int = 5,
                 min_points: int = 3, forget: float = 1.0, alpha_min: float = 0.2, smooth: float = 0.5,
                 reference=None, reference_tokens: float | None = None, temperature: float = 2.0,
                 min_scale: float = 0.05, max_harm: float | None = 0.02, cooldown: float = 0.2,
                 total_steps: int | None = None):
        if not (0 < alpha_min < ALPHA_GRID[-1]) or not (0 < smooth <= 1) or (max_harm is not None and not max_harm > 0):
            raise MixerError(f"reducible: need 0 < alpha_min < {ALPHA_GRID[-1]:g}, 0 < smooth <= 1 and max_harm > 0 "
                             f"(or None); got alpha_min={alpha_min}, smooth={smooth}, max_harm={max_harm}")
        if not 0 <= cooldown < 1:
            raise MixerError(f"reducible: cooldown must be in [0, 1), got {cooldown}")
        self.alpha_min, self.smooth = float(alpha_min), float(smooth)  # before the fit is built
        self.max_harm = None if max_harm is None else float(max_harm)
        super().__init__(domains, initial_weights=initial_weights, seed=seed, min_share=min_share, gamma1=1.0,
                         gamma2=1.0, s=0.0, warmup=warmup, min_points=min_points, count="domain", forget=forget,
                         reference=reference, reference_tokens=reference_tokens, temperature=temperature,
                         min_scale=min_scale, score="reducible")
        self.cooldown = float(cooldown)
        self.set_total_steps(total_steps)
        self._state.update(r_mean=np.full(self.k, np.nan), r_sq=np.full(self.k, np.nan), shrink=np.nan,
                           loss_ema=np.full(self.k, np.nan), loss_best=np.full(self.k, np.nan))

    def _exponent_grid(self) -> np.ndarray:
        return np.geomspace(self.alpha_min, ALPHA_GRID[-1], 40)

    def predicted_progress(self) -> np.ndarray:
        """``(k,)`` the shrunk running average of ``R_k = L_k(n_k) - eps_k`` as of the last update (NaN until
        every domain has a law and the average has had two updates)."""
        m, shrink = self._state["r_mean"], float(self._state["shrink"])
        if np.isnan(m).any() or np.isnan(shrink):
            return np.full(self.k, np.nan)
        return np.maximum(m.mean() + shrink * (m - m.mean()), 0.0)

    def predicted_harm(self) -> np.ndarray:
        """``(k,)`` nats each domain is worse off than under the prior mixture: the larger of what its token
        deficit costs by its own fitted law and how far its smoothed loss has risen above its best (0 before
        either is known)."""
        st = self._state
        n = st["domain_tokens"]
        deficit = np.maximum(self.prior * self.tokens_seen - n, 0.0)
        law = self.law()
        with np.errstate(invalid="ignore", divide="ignore"):
            by_law = law.loss(np.maximum(n, 1.0)) - law.loss(n + deficit)
        rise = st["loss_ema"] - st["loss_best"]
        harm = np.fmax(np.where(np.isfinite(by_law), by_law, np.nan), np.where(np.isfinite(rise), rise, np.nan))
        return np.where(np.isfinite(harm), np.maximum(harm, 0.0), 0.0)

    def _update(self, step, mean_loss, count, eval_loss):
        pi = super()._update(step, mean_loss, count, eval_loss)
        if self.max_harm is None or self.n_updates <= self.warmup:
            return pi
        st = self._state
        loss = observed_loss(mean_loss, eval_loss)
        ema, seen = st["loss_ema"], np.isfinite(loss)
        ema = np.where(seen & np.isnan(ema), loss, np.where(seen, ema + _RISE_RATE * (loss - ema), ema))
        st["loss_ema"], st["loss_best"] = ema, np.fmin(st["loss_best"], ema)
        target = self.prior * np.clip(2.0 * self.predicted_harm() / self.max_harm - 1.0, 0.0, 1.0)
        # the floor then maps w to min_share + (1 - k min_share) w: ask for what lands on the target
        lower = np.maximum(target - self.min_share, 0.0) / max(1.0 - self.k * self.min_share, 1e-12)
        return _at_least(np.asarray(pi, dtype=np.float64) / np.sum(pi), lower)

    def _score(self) -> np.ndarray:
        """Advance the running average of ``R`` and its shrink factor by this update, then return the score."""
        st = self._state
        r = super().predicted_progress()  # ADO's score="reducible": L(n) - eps, NaN before min_points
        if not np.all(np.isfinite(r)):
            return np.full(self.k, np.nan)
        r = np.maximum(r, 0.0)
        m, sq, a = st["r_mean"], st["r_sq"], self.smooth
        if np.isnan(m).any():
            st["r_mean"], st["r_sq"] = r.copy(), r * r
            return np.full(self.k, np.nan)
        m, sq = m + a * (r - m), sq + a * (r * r - sq)
        st["r_mean"], st["r_sq"] = m, sq
        noise = float(np.maximum(sq - m * m, 0.0).mean()) * a / (2.0 - a)  # variance of an average
        spread = float(m.var())
        st["shrink"] = max(0.0, 1.0 - noise / spread) if spread > 0 else 0.0
        return self.predicted_progress()


def _at_least(w: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """``w`` (on the simplex) with every entry raised to ``lower`` (sum <= 1), the others scaled down in
    proportion (water-filling)."""
    fixed = np.zeros(len(w), dtype=bool)
    out = w.copy()
    for _ in range(len(w)):
        free = ~fixed
        rest, mass = 1.0 - lower[fixed].sum(), w[free].sum()
        out[fixed] = lower[fixed]
        out[free] = w[free] * rest / mass if mass > 0 else rest / max(free.sum(), 1)
        below = free & (out < lower)
        if not below.any():
            break
        fixed |= below
    return out
