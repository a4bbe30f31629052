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

Everything else (warm-up, floor ``min_share``, ``reference=`` tilt) is :class:`AdoMixer`'s; the
time-averaged policy and the credit factor are off (``gamma2 = 1``, ``s = 0``): the averaging is done on
``R`` instead.

Measured (``experiments/LOG.md``, 2026-12-02): on the synthetic benchmark's tuning seeds it moves most
data to the data-hungry domain, which is the gain; a learned-in-hindsight schedule is still better.
"""

from __future__ import annotations

import numpy as np

from mixopt.online.ado import AdoMixer
from mixopt.online.base import MixerError, register_mixer
from mixopt.online.power_law import ALPHA_GRID

__all__ = ["ReducibleMixer"]


@register_mixer("reducible")
class ReducibleMixer(AdoMixer):
    """Sample in proportion to each domain's reducible loss ``L - eps`` (``make_mixer("reducible", ...)``).

    Args:
        alpha_min: smallest power-law exponent fitted (0.2); 40 exponents log-spaced up to 2.
        smooth: rate of the running average of ``R`` (0.5).
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
                 min_scale: float = 0.05):
        if not (0 < alpha_min < ALPHA_GRID[-1]) or not (0 < smooth <= 1):
            raise MixerError(f"reducible: need 0 < alpha_min < {ALPHA_GRID[-1]:g} and 0 < smooth <= 1; got "
                             f"alpha_min={alpha_min}, smooth={smooth}")
        self.alpha_min, self.smooth = float(alpha_min), float(smooth)  # before the fit is built
        super().__init__(domains, initial_weights=initial_weights, seed=seed, min_share=min_share, gamma1=1.0,
                         gamma2=1.0, s=0.0, warmup=warmup, min_points=min_points, count="domain", forget=forget,
                         reference=reference, reference_tokens=reference_tokens, temperature=temperature,
                         min_scale=min_scale, score="reducible")
        self._state.update(r_mean=np.full(self.k, np.nan), r_sq=np.full(self.k, np.nan), shrink=np.nan)

    def _exponent_grid(self) -> np.ndarray:
        return np.geomspace(self.alpha_min, ALPHA_GRID[-1], 40)

    def predicted_progress(self) -> np.ndarray:
        """``(k,)`` the shrunk running average of ``R_k = L_k(n_k) - eps_k`` as of the last update (NaN until
        every domain has a law and the average has had two updates)."""
        m, shrink = self._state["r_mean"], float(self._state["shrink"])
        if np.isnan(m).any() or np.isnan(shrink):
            return np.full(self.k, np.nan)
        return np.maximum(m.mean() + shrink * (m - m.mean()), 0.0)

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
