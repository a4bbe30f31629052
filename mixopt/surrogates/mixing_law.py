"""Data Mixing Laws surrogate: ``L_i(r) = c_i + k_i * exp(sum_j t_ij r_j)`` per target.

Ye et al., "Data Mixing Laws" (2024). Each target is fitted by robust (Huber) least squares with bounded
parameters from many initialisations: log-linear fits and random exponents, refined together by a
vectorised Levenberg-Marquardt, the best finished by ``scipy.optimize.least_squares``. Since ``sum_j r_j = 1``, ``k_i`` and a common shift of ``t_i`` are
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


def _starts(W, y, n: int, rng) -> np.ndarray:
    """``(n, d + 2)`` initialisations ``[c, log k, t]``: three log-linear fits (``log(y - c0) ≈ log k + W t``
    for three floors ``c0``), then random exponents at several scales with ``c`` and ``log k`` fitted to them."""
    nrow, d = W.shape
    span = float(np.ptp(y)) + 1e-9
    out = []
    A = np.hstack([np.ones((nrow, 1)), W])
    for frac in (0.5, 0.05, 2.0):
        c0 = float(y.min()) - frac * span
        coef, *_ = np.linalg.lstsq(A.T @ A + 1e-6 * np.eye(d + 1), A.T @ np.log(y - c0), rcond=None)
        out.append(np.r_[c0, coef[0] + coef[1:].mean(), coef[1:] - coef[1:].mean()])
    scales = np.array([0.5, 1.0, 2.0, 4.0])
    for i in range(max(0, n - len(out))):
        t0 = rng.normal(0.0, scales[i % len(scales)], d)
        t0 -= t0.mean()
        e = np.exp(np.clip(W @ t0, -50, 50))
        # least squares of y on [1, e] for (c, k), kept below min(y) and positive
        Z = np.column_stack([np.ones(nrow), e])
        (c0, k0), *_ = np.linalg.lstsq(Z, y, rcond=None)
        c0 = min(float(c0), float(y.min()) - rng.uniform(0.02, 1.0) * span)
        k0 = max(float(np.mean(y - c0) / np.mean(e)), 1e-9)
        out.append(np.r_[c0, np.log(k0), t0])
    return np.array(out[:n])


def _batch_lm(W, y, P0, *, lam: float, scale: float, lo, hi, iters: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on every start at once (numpy, ``(S, p)`` parameters), Huber-weighted
    (iteratively reweighted), ridge ``lam`` on ``t``, parameters clipped to ``[lo, hi]``.
    Returns the parameters and their objective (Huber loss + ridge)."""
    S, p = P0.shape
    n = len(y)
    P = np.clip(P0, lo, hi)
    ridge = np.zeros(p)
    ridge[2:] = lam**2

    def loss(P):
        r = P[:, :1] + np.exp(np.clip(P[:, 1:2] + P[:, 2:] @ W.T, -50, 50)) - y[None, :]
        a = np.abs(r)
        h = np.where(a <= scale, 0.5 * r**2, scale * (a - 0.5 * scale))
        return h.sum(axis=1) + 0.5 * lam**2 * (P[:, 2:] ** 2).sum(axis=1)

    cur = loss(P)
    mu = np.full(S, 1e-3)
    eye = np.eye(p)
    for _ in range(iters):
        e = np.exp(np.clip(P[:, 1:2] + P[:, 2:] @ W.T, -50, 50))  # (S, n)
        r = P[:, :1] + e - y[None, :]
        w = np.minimum(1.0, scale / np.maximum(np.abs(r), 1e-300))  # Huber IRLS weights
        J = np.empty((S, n, p))
        J[:, :, 0] = 1.0
        J[:, :, 1] = e
        J[:, :, 2:] = e[:, :, None] * W[None, :, :]
        Jw = J * w[:, :, None]
        H = np.einsum("snp,snq->spq", Jw, J) + ridge * eye
        g = np.einsum("snp,sn->sp", Jw, r)
        g[:, 2:] += lam**2 * P[:, 2:]
        diag = np.einsum("spp->sp", H)
        step = np.linalg.solve(H + (mu[:, None] * np.maximum(diag, 1e-12))[:, :, None] * eye, -g[:, :, None])[:, :, 0]
        Pn = np.clip(P + step, lo, hi)
        new = loss(Pn)
        better = new < cur
        P[better], cur[better] = Pn[better], new[better]
        mu = np.where(better, np.maximum(mu / 3.0, 1e-9), np.minimum(mu * 4.0, 1e9))
    return P, cur


def fit_mixing_law(W, y, *, n_restarts: int = 8, alpha: float = 1e-4, t_bound: float = 30.0,
                   huber_scale: float | None = None, seed: int = 0, n_polish: int = 1) -> tuple[float, float, np.ndarray]:
    """Fit ``y ≈ c + k * exp(W @ t)`` for one target. W: ``(n, k)`` weights; y: ``(n,)`` losses.

    ``n_restarts`` initialisations (log-linear fits and random exponents at several scales) are refined
    together by a vectorised Huber Levenberg-Marquardt; the ``n_polish`` best are finished with
    ``scipy.optimize.least_squares`` (bounded, Huber) and the lowest loss wins. Deterministic for a seed.
    Returns ``(c, k, t (k,))``. ``c`` is bounded to ``[min(y) - 10*range, min(y)]``, ``log k`` to
    ``[-20, 20]``, ``t`` to ``[-t_bound, t_bound]``. ``alpha`` is a ridge penalty on ``t`` (relative to n).
    """
    W, y = np.asarray(W, float), np.asarray(y, float)
    n, d = W.shape
    rng = np.random.default_rng(seed)
    span = float(np.ptp(y)) + 1e-9
    scale = huber_scale or max(1e-8, 0.1 * float(y.std()) + 1e-9)
    lam = np.sqrt(alpha * n) * scale
    c_lo, c_hi = float(y.min()) - 10 * span, float(y.min()) - 1e-9 * span
    lo = np.r_[c_lo, -20.0, np.full(d, -t_bound)]
    hi = np.r_[c_hi, 20.0, np.full(d, t_bound)]

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

    starts = _starts(W, y, max(1, int(n_restarts)), rng)
    P, cost = _batch_lm(W, y, starts, lam=lam, scale=scale, lo=lo + 1e-12, hi=hi - 1e-12)
    best = None
    for i in np.argsort(cost, kind="stable")[: max(1, n_polish)]:
        r = least_squares(resid, np.clip(P[i], lo + 1e-12, hi - 1e-12), jac=jac, bounds=(lo, hi), loss="huber",
                          f_scale=scale, max_nfev=200)
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

    def __init__(self, n_restarts: int = 8, alpha: float = 1e-4, huber_scale: float | None = None,
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
