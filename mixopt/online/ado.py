"""ADO-style mixer: per-domain scaling laws fitted online; sample where the predicted loss still falls.

After Jiang et al., "Adaptive Data Optimization: Dynamic Sample Selection with Scaling Laws" (2024),
written from the paper's description. Each update:

1. Fit ``L_k(n) = eps_k + beta_k * n^-alpha_k`` per domain ``k`` to its mean training loss (held-out when
   ``eval_loss`` is given) against ``n``: by default the tokens *of that domain* trained so far
   (``count="domain"``); ``count="total"`` is the paper's "same step size", where every domain's clock is
   the whole run. The fit is :class:`~mixopt.online.power_law.PowerLawFit`: closed-form weighted least
   squares over a grid of exponents, vectorised over domains, weights = tokens behind each mean.
2. Preference ``rho_k ∝ mu_k * h_k^s * (-dL_k/dn)``: the prior ``mu`` times the predicted loss decrease per
   token (the law's derivative ``alpha_k beta_k n^(-alpha_k-1)``) times a credit-assignment factor
   ``h_k^s``, where ``h`` is a moving average of the policy (a domain's own data is credited with its
   loss decrease in proportion to how much of it was sampled).
3. Policy ``pi = gamma2 * rho + (1 - gamma2) * pi_bar`` with ``pi_bar`` the time average of ``rho`` so far
   (started at ``mu``), then the floor ``min_share``; ``h <- gamma1 * pi + (1 - gamma1) * h``.

The first ``warmup`` updates keep the prior and are not fitted (the initial drop, learning the unigram
distribution, is not part of a power law), and a domain's law is used once ``min_points`` intervals are
behind it. A domain that stopped improving (noise, or learned) has ``beta ≈ 0`` or a flat tail, hence no
predicted progress, and falls to the floor; a data-hungry domain keeps a large derivative.

With ``reference=`` (see :mod:`mixopt.online.reference`), ``rho`` is further tilted toward the domains
that lag their reference curve: ``rho_k *= exp(temperature * lag_k / max(max_j lag_j, min_scale))``.

Differences from the paper: ``n`` counts each domain's own tokens and ``gamma2 = 0.5`` by default (the
paper: total tokens and 0.1; both are options; the defaults were chosen on the tuning seeds of
``experiments/bench_online.py``, where they beat the paper's settings in 3 of 4 settings and tied in the
fourth: with the total-token clock and a slow policy average the mixer keeps feeding a domain that learns
fast early and starves one whose returns come later); least squares in linear space over an exponent
grid (the paper: Huber loss in log space, L-BFGS from a grid of starts); no Savitzky-Golay smoothing of the
losses (least squares over all intervals already averages the noise); the floor maps the policy affinely
(:func:`apply_floor`) instead of clipping and renormalising.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixopt.online.base import Mixer, MixerError, observed_loss, register_mixer
from mixopt.online.power_law import ALPHA_GRID, PowerLawFit
from mixopt.online.reference import load_reference

__all__ = ["AdoMixer"]


@register_mixer("ado")
class AdoMixer(Mixer):
    """ADO: sample in proportion to each domain's predicted loss decrease per token (``make_mixer("ado",
    ...)``; the default from 2026-12-01 until ``reducible`` replaced it).

    Args:
        gamma1: rate of the credit-assignment average ``h`` (0.1).
        gamma2: weight of the new preference against the time-averaged policy (0.5; the paper: 0.1).
        s: exponent of the credit-assignment factor ``h^s`` (0.5; 0 = off).
        warmup: first updates that keep the prior and are not fitted (5).
        min_points: intervals a domain's law needs before it is used (3).
        count: ``"domain"`` (``n`` = the domain's own tokens) or ``"total"`` (the paper: ``n`` = all tokens).
        forget: forgetting factor of the fit's statistics per update (1.0 = all intervals count equally).
        reference: optional reference curves (``{domain: (E, B, beta)}``, ``{domain: loss}`` or a path to a
            ``proposal.json``); domains lagging theirs are tilted up.
        reference_tokens: the tokens at which a proposal's targets hold (default: the proposal's own).
        temperature: strength of the reference tilt (2.0).
        min_scale: lags below this (nats) count as noise in the tilt (0.05).
        min_share: per-domain floor (``0.25 / k`` when omitted).

    >>> from mixopt.online import make_mixer
    >>> m = make_mixer("ado", ["noise", "text"], warmup=0, min_points=2, min_share=0.0)
    >>> for i in range(1, 30):          # noise stays at 4.0 nats, text follows 2 + 2 (n / 1000)^-0.5
    ...     w = m.update(i, [4000.0, 1000 * (2 + 2 * (1000 * i / 1000) ** -0.5)], [500, 500])
    >>> bool(w[1] > 0.8)
    True
    """

    name = "ado"

    def __init__(self, domains, initial_weights=None, seed=0, min_share=None, gamma1: float = 0.1,
                 gamma2: float = 0.5, s: float = 0.5, warmup: int = 5, min_points: int = 3,
                 count: str = "domain", forget: float = 1.0, reference: Any = None,
                 reference_tokens: float | None = None,
                 temperature: float = 2.0, min_scale: float = 0.05, score: str = "slope"):
        k = len(domains)
        super().__init__(domains, initial_weights=initial_weights, seed=seed,
                         min_share=(0.25 / max(k, 1)) if min_share is None else min_share)
        if not (0 < gamma1 <= 1 and 0 < gamma2 <= 1 and s >= 0 and warmup >= 0 and min_points >= 2):
            raise MixerError(f"ado: need 0 < gamma1, gamma2 <= 1, s >= 0, warmup >= 0, min_points >= 2; got "
                             f"gamma1={gamma1}, gamma2={gamma2}, s={s}, warmup={warmup}, "
                             f"min_points={min_points}")
        if count not in ("total", "domain") or not 0 < forget <= 1 or temperature < 0 or min_scale < 0:
            raise MixerError(f"ado: need count 'total' or 'domain', 0 < forget <= 1, temperature >= 0, "
                             f"min_scale >= 0; got {count!r}, {forget}, {temperature}, {min_scale}")
        self.gamma1, self.gamma2, self.s = float(gamma1), float(gamma2), float(s)
        self.warmup, self.min_points = int(warmup), int(min_points)
        self.count, self.forget = count, float(forget)
        self.temperature, self.min_scale = float(temperature), float(min_scale)
        if score not in ("slope", "reducible"):
            raise MixerError(f"ado: score must be 'slope' or 'reducible', got {score!r}")
        self.score = score
        self.reference = (None if reference is None
                          else load_reference(reference, self.domains, reference_tokens))
        self._fit = PowerLawFit(self.k, forget=self.forget, alphas=self._exponent_grid())
        self._state = {
            "fit_n0": self._fit.n0,
            "fit_stats": self._fit.stats,
            "points": np.zeros(self.k),
            "domain_tokens": np.zeros(self.k),
            "h": self._weights.copy(),
            "pi_bar": self.prior.copy(),
            "t": 0,
        }
        if self.reference is not None:
            self._state["ref_E"], self._state["ref_B"] = self.reference.E, self.reference.B

    def _after_load(self) -> None:
        self._fit.n0, self._fit.stats = self._state["fit_n0"], self._state["fit_stats"]
        if self.reference is not None:
            self.reference.E, self.reference.B = self._state["ref_E"], self._state["ref_B"]

    def law(self):
        """The current :class:`~mixopt.online.power_law.PowerLaw` per domain (NaN where not fitted yet)."""
        return self._fit.solve()

    def _exponent_grid(self) -> np.ndarray:
        """The power-law exponents the fit tries (subclasses narrow it)."""
        return ALPHA_GRID

    def _score(self) -> np.ndarray:
        """``(k,)`` the per-domain score of this update, called once per update after the fit (subclasses
        that average the score over updates advance the average here)."""
        return self.predicted_progress()

    def predicted_progress(self) -> np.ndarray:
        """``(k,)`` ``-dL_k/dn`` at the current token count (nats per token; NaN where not fitted yet)."""
        st = self._state
        n = st["domain_tokens"] if self.count == "domain" else self.tokens_seen
        law = self.law()
        slope = law.slope(n) if self.score == "slope" else law.loss(n) - law.eps
        return np.where(st["points"] >= self.min_points, slope, np.nan)

    def _update(self, step, mean_loss, count, eval_loss):
        st = self._state
        loss = observed_loss(mean_loss, eval_loss)
        st["domain_tokens"] += count
        if self.n_updates <= self.warmup:
            return self.prior
        if eval_loss is None:  # a training mean describes the model half-way through the interval
            n = (st["domain_tokens"] - count / 2 if self.count == "domain"
                 else self.tokens_seen - count.sum() / 2)
            w = count
        else:
            n = st["domain_tokens"] if self.count == "domain" else self.tokens_seen
            w = np.where(np.isfinite(loss), 1.0, 0.0)
        self._fit.add(n, loss, w)
        st["fit_n0"], st["fit_stats"] = self._fit.n0, self._fit.stats
        seen = np.isfinite(loss) & (w > 0)
        st["points"] = st["points"] * self.forget + seen
        progress = self._score()
        if not np.all(np.isfinite(progress)):
            return self._weights  # some domain has no law yet: keep the current policy
        rho = self.prior * st["h"] ** self.s * np.maximum(progress, 0.0)
        if self.reference is not None:
            self.reference.calibrate(loss, self.tokens_seen)
            lag = np.maximum(self.reference.lag(loss, self.tokens_seen), 0.0)
            top = max(lag.max(), self.min_scale)
            rho = rho * np.exp(self.temperature * lag / top)
        total = rho.sum()
        rho = rho / total if total > 0 and np.isfinite(total) else self.prior.copy()
        t = int(st["t"]) + 1
        pi = self.gamma2 * rho + (1.0 - self.gamma2) * st["pi_bar"]
        st["pi_bar"] = st["pi_bar"] + (rho - st["pi_bar"]) / (t + 1)
        st["h"] = self.gamma1 * pi + (1.0 - self.gamma1) * st["h"]
        st["t"] = t
        return pi
