"""BiMix surrogate: a bivariate law in domain proportion and data quantity, per domain.

Ge et al., "BiMix: A Bivariate Data Mixing Law for Language Model Pretraining" (2024):

    L_i(r_i, s) = A_i / r_i^alpha_i * (B_i / s^beta_i + C_i)

where ``r_i`` is the proportion of domain ``i`` and ``s`` the data quantity (steps or tokens seen). Each
target is the loss on one domain and is tied to that domain's weight column (``target_domains``). ``A_i``
and ``(B_i, C_i)`` only appear as products, so the fit fixes ``A_i = 1`` (``B_`` and ``C_`` are the products
``A*B`` and ``A*C``). Zero proportions are handled by an offset ``r_i + eps_i`` (``eps_i`` fitted, bounded).
Every eval point of every run (with ``fidelity_columns=[step column]``) is one data point; without a
fidelity column the law reduces to ``C_i / (r_i + eps_i)^alpha_i``.
Fitted by Huber least squares (``scipy.optimize.least_squares``) with several starts.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from mixopt.errors import DataError
from mixopt.surrogates.base import Surrogate

__all__ = ["BiMixSurrogate"]


def _fit_one(r, s, y, *, use_s: bool, n_restarts: int, seed: int, huber_scale: float | None):
    """Fit one domain's law; r: (n,) proportions, s: (n,) normalised quantity or None, y: (n,) losses.

    Parameters p = [alpha, log eps, log C, log B, beta] (the last two only when ``use_s``).
    """
    rng = np.random.default_rng(seed)
    scale = huber_scale or max(1e-8, 0.05 * float(y.std()) + 1e-9)

    def model(p):
        base = np.exp(-p[0] * np.log(r + np.exp(p[1])))
        q = np.exp(p[2]) + (np.exp(p[3]) * s ** (-p[4]) if use_s else 0.0)
        return base * q

    def resid(p):
        return model(p) - y

    lo = [0.0, np.log(1e-6), -30.0] + ([-30.0, 0.0] if use_s else [])
    hi = [5.0, np.log(1.0), 30.0] + ([30.0, 3.0] if use_s else [])
    best = None
    for i in range(max(1, n_restarts)):
        alpha0 = 0.05 if i == 0 else rng.uniform(0.0, 0.5)
        leps0 = np.log(1e-2) if i == 0 else rng.uniform(np.log(1e-5), np.log(0.3))
        base = (r + np.exp(leps0)) ** (-alpha0)
        if use_s:
            beta0 = 0.5 if i == 0 else rng.uniform(0.1, 1.5)
            # y / base ≈ C + B s^-beta: linear in (C, B) given beta
            A = np.column_stack([np.ones_like(s), s ** (-beta0)])
            (c0, b0), *_ = np.linalg.lstsq(A, y / base, rcond=None)
            p0 = [alpha0, leps0, np.log(max(c0, 1e-6)), np.log(max(b0, 1e-6)), beta0]
        else:
            p0 = [alpha0, leps0, np.log(max(float(np.mean(y / base)), 1e-9))]
        p0 = np.clip(p0, np.array(lo) + 1e-9, np.array(hi) - 1e-9)
        res = least_squares(resid, p0, bounds=(lo, hi), loss="huber", f_scale=scale, max_nfev=600)
        if best is None or res.cost < best.cost:
            best = res
    return best.x


class BiMixSurrogate(Surrogate):
    """BiMix's bivariate law, one law per target, each tied to one domain's weight column.

    target_domains: for each target, the index of its domain's weight column (default: target ``j`` ↔
    weight column ``j``, only allowed when there are as many targets as domains). Use
    :func:`mixopt.runs.match_targets_to_domains` to build it from names.
    fidelity_columns: the data-quantity column (steps or tokens seen), at most one.

    Fitted attributes: ``alpha_ (m,)``, ``eps_ (m,)``, ``B_ (m,)`` (= A*B), ``beta_ (m,)``, ``C_ (m,)`` (= A*C).
    """

    smooth = True
    uses_curves = True  # the quantity term reads each cheap run's eval curve

    def __init__(self, target_domains=None, n_restarts: int = 4, huber_scale: float | None = None,
                 fidelity_columns=None, target_fidelity=None, random_state=None):
        self.target_domains = target_domains
        self.n_restarts = n_restarts
        self.huber_scale = huber_scale
        self.fidelity_columns = fidelity_columns
        self.target_fidelity = target_fidelity
        self.random_state = random_state

    def _fit(self, W, F, Y):
        n, k = W.shape
        m = Y.shape[1]
        if self.target_domains is None:
            if m != k:
                raise DataError(
                    f"bimix: {m} targets but {k} weight columns; pass target_domains (the weight column of "
                    "each target's domain), e.g. from mixopt.runs.match_targets_to_domains"
                )
            td = list(range(k))
        else:
            td = [int(c) for c in self.target_domains]
            if len(td) != m or any(not 0 <= c < k for c in td):
                raise DataError(f"bimix: target_domains must list {m} weight-column indices in [0, {k})")
        if F is not None and F.shape[1] != 1:
            raise DataError("bimix: at most one fidelity column (the data quantity: steps or tokens)")
        self.target_domains_ = td
        use_s = F is not None and len(np.unique(F[:, 0])) >= 3
        self.use_quantity_ = use_s
        self.s_scale_ = float(F[:, 0].max()) if F is not None else 1.0
        s = F[:, 0] / self.s_scale_ if F is not None else None
        seed = 0 if self.random_state is None else int(self.random_state)
        params = [_fit_one(W[:, td[j]], s, Y[:, j], use_s=use_s, n_restarts=self.n_restarts,
                           seed=seed + j, huber_scale=self.huber_scale) for j in range(m)]
        self.alpha_ = np.array([p[0] for p in params])
        self.eps_ = np.exp([p[1] for p in params])
        self.C_ = np.exp([p[2] for p in params])
        if use_s:
            self.B_ = np.exp([p[3] for p in params]) * self.s_scale_ ** np.array([p[4] for p in params])
            self.beta_ = np.array([p[4] for p in params])
        else:
            self.B_ = np.zeros(m)
            self.beta_ = np.zeros(m)

    def _predict(self, W, F):
        R = W[:, self.target_domains_]  # (n, m) proportion of each target's domain
        q = self.C_[None, :]
        if self.use_quantity_:
            s = F[:, :1]
            q = q + self.B_[None, :] * s ** (-self.beta_[None, :])
        return (R + self.eps_[None, :]) ** (-self.alpha_[None, :]) * q, None
