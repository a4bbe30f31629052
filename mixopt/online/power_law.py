"""Per-domain power laws ``L(n) = eps + beta * (n / n0) ** -alpha``, fitted online and vectorised.

A power law in the tokens ``n`` is linear in ``(eps, beta)`` once ``alpha`` is fixed, so :class:`PowerLawFit`
keeps weighted least-squares sufficient statistics for every domain and every ``alpha`` on a fixed
log-spaced grid (``(k, a)`` arrays) and solves all of them in closed form: adding a point and solving cost
``O(k * a)`` array operations, no optimiser and no stored history. Per ``(domain, alpha)`` the solution is
constrained to ``beta >= 0`` and ``eps >= 0`` (a flat domain gets ``beta = 0``); per domain the ``alpha``
with the smallest weighted squared error wins. ``n0`` (the first ``n`` seen per domain) keeps
``x = (n / n0)^-alpha`` in ``(0, 1]``; :meth:`PowerLaw.as_tokens` gives the equivalent
``L(n) = E + B n^-alpha`` with ``n`` in tokens.

>>> import numpy as np
>>> n = np.geomspace(1e4, 1e6, 30)
>>> fit = PowerLawFit(1)
>>> for x in n:
...     fit.add(x, [2.0 + 3.0 * (x / 1e4) ** -0.4])
>>> law = fit.solve()
>>> np.round([law.eps[0], law.beta[0], law.alpha[0]], 1).tolist()
[2.0, 3.0, 0.4]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mixopt.online.base import MixerError

__all__ = ["ALPHA_GRID", "PowerLaw", "PowerLawFit", "fit_power_law"]

ALPHA_GRID = np.geomspace(0.02, 2.0, 64)  # exponents tried; neighbours differ by 7.6%


@dataclass
class PowerLaw:
    """Fitted laws for ``k`` domains: ``L_k(n) = eps_k + beta_k * (n / n0) ** -alpha_k`` (NaN = no fit).

    eps, beta, alpha: ``(k,)``; n0: ``(k,)`` the token counts the ``beta`` refer to; sse: ``(k,)`` weighted
    squared error of the fit; points: ``(k,)`` weighted number of points behind it.
    """

    eps: np.ndarray
    beta: np.ndarray
    alpha: np.ndarray
    n0: np.ndarray
    sse: np.ndarray
    points: np.ndarray

    def loss(self, n: Any) -> np.ndarray:
        """``(k,)`` predicted loss after ``n`` tokens (a number or ``(k,)``)."""
        return self.eps + self.beta * (n / self.n0) ** -self.alpha

    def slope(self, n: Any) -> np.ndarray:
        """``(k,)`` ``-dL/dn``: predicted loss decrease per token at ``n`` tokens (>= 0)."""
        return self.alpha * self.beta * (n / self.n0) ** -self.alpha / n

    def as_tokens(self) -> dict[str, np.ndarray]:
        """``{"E", "B", "beta"}``: the same laws as ``L(n) = E + B * n ** -beta`` with ``n`` in tokens."""
        return {"E": self.eps.copy(), "B": self.beta * self.n0**self.alpha, "beta": self.alpha.copy()}


class PowerLawFit:
    """Online weighted least squares of ``k`` power laws over the exponent grid :data:`ALPHA_GRID`.

    Args:
        k: number of domains.
        forget: multiplies the old statistics at every :meth:`add` (1.0 = keep everything).
        alphas: exponent grid (``(a,)``, positive).
    """

    def __init__(self, k: int, forget: float = 1.0, alphas: np.ndarray = ALPHA_GRID):
        if not 0 < forget <= 1:
            raise MixerError(f"power-law fit: forget must be in (0, 1], got {forget}")
        self.k, self.forget = int(k), float(forget)
        self.alphas = np.asarray(alphas, dtype=np.float64)
        a = len(self.alphas)
        self.n0 = np.full(self.k, np.nan)
        # weighted sums of 1, x, x^2, y, x*y, y^2 per (domain, alpha); x = (n / n0)^-alpha
        self.stats = np.zeros((6, self.k, a))

    def add(self, n: Any, y: Any, w: Any = None) -> None:
        """One point per domain: loss ``y`` ``(k,)`` (NaN = not observed) after ``n`` tokens (a number, or
        ``(k,)`` per domain), weight ``w`` ``(k,)`` (e.g. the tokens behind each mean; 1 when omitted)."""
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        w = np.ones(self.k) if w is None else np.asarray(w, dtype=np.float64).reshape(-1)
        n = np.broadcast_to(np.asarray(n, dtype=np.float64), (self.k,))
        ok = np.isfinite(y) & (w > 0) & (n > 0)
        first = ok & np.isnan(self.n0)
        self.n0[first] = n[first]
        w = np.where(ok, w, 0.0)[:, None]  # (k, 1)
        y = np.where(ok, y, 0.0)[:, None]
        r = np.where(ok, n / np.where(ok, self.n0, 1.0), 1.0)
        x = r[:, None] ** -self.alphas[None, :]  # (k, a)
        self.stats *= self.forget
        self.stats += np.stack([w * np.ones_like(x), w * x, w * x * x, w * y * np.ones_like(x), w * x * y,
                                w * y * y * np.ones_like(x)])

    def solve(self) -> PowerLaw:
        """The best law per domain (NaN parameters for a domain with fewer than 2 weighted points)."""
        s0, sx, sxx, sy, sxy, syy = self.stats
        with np.errstate(invalid="ignore", divide="ignore"):
            det = s0 * sxx - sx * sx
            beta = np.where(det > 1e-12 * s0 * sxx, (s0 * sxy - sx * sy) / det, 0.0)
            beta = np.maximum(beta, 0.0)
            eps = (sy - beta * sx) / s0
            # eps < 0: refit through the origin (eps = 0, beta = sxy / sxx)
            neg = eps < 0
            eps = np.where(neg, 0.0, eps)
            beta = np.where(neg, np.maximum(sxy / sxx, 0.0), beta)
            sse = (syy - 2 * eps * sy - 2 * beta * sxy + eps * eps * s0 + 2 * eps * beta * sx
                   + beta * beta * sxx)
        sse = np.where(np.isfinite(sse), sse, np.inf)
        best = np.argmin(sse, axis=1)  # (k,)
        rows = np.arange(self.k)
        pts = s0[:, 0]
        enough = pts > 0
        nan = np.full(self.k, np.nan)
        return PowerLaw(
            eps=np.where(enough, eps[rows, best], nan),
            beta=np.where(enough, beta[rows, best], nan),
            alpha=np.where(enough, self.alphas[best], nan),
            n0=self.n0.copy(),
            sse=np.where(enough, np.maximum(sse[rows, best], 0.0), nan),
            points=pts.copy(),
        )

    def state_dict(self) -> dict[str, Any]:
        return {"n0": self.n0.tolist(), "stats": self.stats.tolist()}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.n0 = np.asarray(sd["n0"], dtype=np.float64).reshape(self.k).copy()
        self.stats = np.asarray(sd["stats"], dtype=np.float64).reshape(self.stats.shape).copy()


def fit_power_law(n: Any, y: Any, w: Any = None) -> PowerLaw:
    """Fit ``L(n) = eps + beta (n / n[0])^-alpha`` to a curve (or one per column).

    Args:
        n: ``(T,)`` tokens at each point (increasing).
        y: ``(T,)`` or ``(T, k)`` losses (NaN = missing).
        w: optional ``(T,)`` or ``(T, k)`` weights.
    """
    n = np.asarray(n, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64)
    y = y.reshape(len(n), -1)
    w = np.ones_like(y) if w is None else np.broadcast_to(np.asarray(w, dtype=np.float64).reshape(len(n), -1),
                                                          y.shape)
    fit = PowerLawFit(y.shape[1])
    for t in range(len(n)):
        fit.add(n[t], y[t], w[t])
    return fit.solve()
