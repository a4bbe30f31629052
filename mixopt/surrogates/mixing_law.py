"""Data Mixing Laws surrogate: ``L_i(r) = c_i + k_i * exp(sum_j t_ij r_j)`` per target.

Ye et al., "Data Mixing Laws" (2024). Each target is fitted by robust least squares
(``scipy.optimize.least_squares(loss="huber")``) with bounded parameters and several starts (one from a
log-linear regression, the rest random). Since ``sum_j r_j = 1``, ``k_i`` and a common shift of ``t_i`` are
not separately identifiable; a small ridge penalty on ``t`` picks the centred solution (``mean_j t_ij ≈ 0``).

With ``fidelity_columns`` (e.g. the eval step, or model size), the nested laws of the paper are applied
first (:func:`mixopt.surrogates.scaling.nested_extrapolate`): each run's curve is extrapolated to the
target fidelity and the mixing law is fitted on the extrapolated losses. Predictions at another fidelity
move along the median fitted curve shape.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from mixopt.surrogates.base import Surrogate
from mixopt.surrogates.scaling import nested_extrapolate

__all__ = ["MixingLawSurrogate", "fit_mixing_law"]


def fit_mixing_law(W, y, *, n_restarts: int = 4, alpha: float = 1e-4, t_bound: float = 30.0,
                   huber_scale: float | None = None, seed: int = 0) -> tuple[float, float, np.ndarray]:
    """Fit ``y ≈ c + k * exp(W @ t)`` for one target. W: ``(n, k)`` weights; y: ``(n,)`` losses.

    Returns ``(c, k, t (k,))``. ``c`` is bounded to ``[min(y) - 10*range, min(y)]``, ``log k`` to
    ``[-20, 20]``, ``t`` to ``[-t_bound, t_bound]``. ``alpha`` is a ridge penalty on ``t`` (relative to n).
    """
    W, y = np.asarray(W, float), np.asarray(y, float)
    n, d = W.shape
    rng = np.random.default_rng(seed)
    span = float(np.ptp(y)) + 1e-9
    scale = huber_scale or max(1e-8, 0.1 * float(y.std()) + 1e-9)
    lam = np.sqrt(alpha * n) * scale

    def resid(p):
        e = np.exp(np.clip(p[1] + W @ p[2:], -50, 50))
        return np.concatenate([p[0] + e - y, lam * p[2:]])

    def jac(p):
        e = np.exp(np.clip(p[1] + W @ p[2:], -50, 50))
        J = np.empty((n + d, d + 2))
        J[:n, 0] = 1.0
        J[:n, 1] = e
        J[:n, 2:] = e[:, None] * W
        J[n:, :2] = 0.0
        J[n:, 2:] = lam * np.eye(d)
        return J

    c_lo, c_hi = float(y.min()) - 10 * span, float(y.min()) - 1e-9 * span
    lo = np.r_[c_lo, -20.0, np.full(d, -t_bound)]
    hi = np.r_[c_hi, 20.0, np.full(d, t_bound)]
    starts = []
    for frac in (0.5, 0.05, 2.0):  # log-linear starts: log(y - c0) ≈ log k + W t
        c0 = float(y.min()) - frac * span
        A = np.hstack([np.ones((n, 1)), W])
        coef, *_ = np.linalg.lstsq(A.T @ A + 1e-6 * np.eye(d + 1), A.T @ np.log(y - c0), rcond=None)
        t0 = coef[1:] - coef[1:].mean()
        starts.append(np.r_[c0, coef[0] + coef[1:].mean(), t0])
    for _ in range(max(0, n_restarts - len(starts))):
        c0 = float(y.min()) - rng.uniform(0.05, 3.0) * span
        t0 = rng.normal(0, 2.0, d)
        k0 = np.log(max(1e-9, float(np.mean(y - c0)))) - float(np.mean(W @ t0))
        starts.append(np.r_[c0, k0, t0])
    best = None
    for x0 in starts[: max(1, n_restarts)]:
        x0 = np.clip(x0, lo + 1e-12, hi - 1e-12)
        r = least_squares(resid, x0, jac=jac, bounds=(lo, hi), loss="huber", f_scale=scale, max_nfev=400)
        if best is None or r.cost < best.cost:
            best = r
    p = best.x
    return float(p[0]), float(np.exp(p[1])), p[2:].copy()


class MixingLawSurrogate(Surrogate):
    """Data Mixing Laws' exponential law per target (optionally nested over step / size fidelities).

    Fitted attributes: ``c_ (m,)``, ``k_ (m,)``, ``t_ (m, k)``; with fidelity columns also ``shapes_``
    (median ``(B, beta)`` per fidelity column and target).

    >>> import numpy as np
    >>> W = np.random.default_rng(0).dirichlet(np.ones(3), 60); y = 2.0 + 1.5 * np.exp(W @ [-2.0, 0.5, 1.5])
    >>> s = MixingLawSurrogate(random_state=0).fit(W, y)
    >>> bool(np.abs(s.predict(W) - y).max() < 1e-3)
    True
    """

    smooth = True
    uses_curves = True  # the nested step law reads each cheap run's eval curve

    def __init__(self, n_restarts: int = 4, alpha: float = 1e-4, huber_scale: float | None = None,
                 fidelity_columns=None, target_fidelity=None, random_state=None):
        self.n_restarts = n_restarts
        self.alpha = alpha
        self.huber_scale = huber_scale
        self.fidelity_columns = fidelity_columns
        self.target_fidelity = target_fidelity
        self.random_state = random_state

    def _fit(self, W, F, Y):
        self.shapes_ = None
        if F is not None:
            W, Y, self.shapes_ = nested_extrapolate(W, F, Y, self.target_fidelity_)
        seed = 0 if self.random_state is None else int(self.random_state)
        params = [fit_mixing_law(W, Y[:, j], n_restarts=self.n_restarts, alpha=self.alpha,
                                 huber_scale=self.huber_scale, seed=seed + j) for j in range(Y.shape[1])]
        self.c_ = np.array([p[0] for p in params])
        self.k_ = np.array([p[1] for p in params])
        self.t_ = np.stack([p[2] for p in params])

    def _predict(self, W, F):
        mean = self.c_[None, :] + self.k_[None, :] * np.exp(np.clip(W @ self.t_.T, -50, 50))
        if F is not None and self.shapes_ is not None:
            for c, shape_c in enumerate(self.shapes_):
                for j, (B, beta) in enumerate(shape_c):
                    mean[:, j] += B * (F[:, c] ** (-beta) - self.target_fidelity_[c] ** (-beta))
        return mean, None
