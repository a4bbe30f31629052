"""Step / size laws ``L(S) = E + B * S^-beta`` used to extrapolate small runs to a target scale.

Data Mixing Laws (Ye et al., 2024) nest three laws: a training-step law fitted on each run's eval curve, a
model-size law fitted across proxy sizes, and the mixing law fitted on the extrapolated losses. This module
holds the first two (same functional form) and :func:`nested_extrapolate`, which reduces a table of runs
at several fidelities to one loss per mixture at the target fidelity.

>>> import numpy as np
>>> s = np.array([100, 200, 400, 800, 1600.0]); law = fit_step_law(s, 3.0 + 20 * s ** -0.5)
>>> round(float(law(1e6)), 2)
3.02
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixopt.errors import DataError

__all__ = ["StepLaw", "extrapolate", "fit_step_law", "nested_extrapolate"]


@dataclass(frozen=True)
class StepLaw:
    """``L(S) = E + B * S^-beta`` with ``S`` in the units it was fitted on (steps, tokens or params)."""

    E: float
    B: float
    beta: float

    def __call__(self, s) -> np.ndarray:
        s = np.asarray(s, dtype=np.float64)
        return self.E + self.B * s ** (-self.beta)

    def to_dict(self) -> dict:
        return {"E": self.E, "B": self.B, "beta": self.beta}


def _linear_fit(u, y, beta, w):
    """Weighted least squares of ``y ≈ E + B u^-beta`` for fixed ``beta`` with ``B >= 0``."""
    A = np.column_stack([np.ones_like(u), u ** (-beta)]) * w[:, None]
    (E, B), *_ = np.linalg.lstsq(A, y * w, rcond=None)
    if B < 0:
        E, B = float(np.sum(w**2 * y) / np.sum(w**2)), 0.0
    r = E + B * u ** (-beta) - y
    return float(E), float(B), r


def fit_step_law(steps, losses, *, huber_scale: float | None = None, max_beta: float = 3.0) -> StepLaw:
    """Fit ``L(S) = E + B S^-beta`` to one loss curve (variable projection + Huber-weighted refits).

    steps: ``(p,)`` positive scale values (steps, tokens or parameters), at least 3 distinct.
    losses: ``(p,)`` losses at those scales. ``B >= 0``, ``0 < beta <= max_beta``; for each ``beta`` on a
    grid (then refined by a bounded scalar search) ``E`` and ``B`` are a linear least-squares solve; one
    iteratively-reweighted pass with Huber weights (``huber_scale``, default 5% of the curve's spread)
    down-weight outlying eval points.
    """
    from scipy.optimize import minimize_scalar

    s = np.asarray(steps, dtype=np.float64).ravel()
    y = np.asarray(losses, dtype=np.float64).ravel()
    if s.shape != y.shape or len(np.unique(s)) < 3:
        raise DataError("fit_step_law: need at least 3 distinct (step, loss) points of matching length")
    if (s <= 0).any() or not (np.isfinite(s).all() and np.isfinite(y).all()):
        raise DataError("fit_step_law: steps must be positive and steps/losses finite")
    s0 = s.max()
    u = s / s0  # conditioning: fit B' on the normalised scale, B = B' * s0^beta
    scale = huber_scale or max(1e-8, 0.05 * (float(np.ptp(y)) + 1e-12))
    w = np.ones_like(y)
    grid = np.linspace(0.02, max_beta, 30)
    for _ in range(2):
        def sse(beta, w=w):
            return float(np.sum((w * _linear_fit(u, y, beta, w)[2]) ** 2))

        b0 = grid[int(np.argmin([sse(b) for b in grid]))]
        step = grid[1] - grid[0]
        res = minimize_scalar(sse, bounds=(max(1e-4, b0 - step), min(max_beta, b0 + step)), method="bounded",
                              options={"xatol": 1e-6})
        beta = float(res.x)
        E, Bp, r = _linear_fit(u, y, beta, w)
        w = np.sqrt(np.minimum(1.0, scale / np.maximum(np.abs(r), 1e-300)))  # Huber IRLS weights
    return StepLaw(E=float(E), B=float(Bp * s0**beta), beta=float(beta))


def extrapolate(law: StepLaw, target) -> float:
    """The law's loss at ``target`` scale (same units as it was fitted on)."""
    return float(law(target))


def _group_ids(M: np.ndarray, decimals: int = 6) -> np.ndarray:
    _, inv = np.unique(np.round(M, decimals), axis=0, return_inverse=True)
    return inv.ravel()


def nested_extrapolate(W, F, Y, targets, *, min_points: int = 3):
    """Reduce runs at several fidelities to one row per mixture at the target fidelity.

    W: ``(n, k)`` weights; F: ``(n, f)`` fidelity columns (processed in order: e.g. step then model size);
    Y: ``(n, m)`` losses; targets: ``(f,)`` target fidelity values.
    For each fidelity column in turn, rows sharing a mixture and the later fidelity values form a curve;
    a curve with ``>= min_points`` distinct fidelities gets its own step law, shorter ones get the median
    shape (``B``, ``beta``) of the fitted curves shifted through their points (or, when no curve is long
    enough, one law fitted on the pooled points). Returns ``(W_out (g, k), Y_out (g, m), shapes)`` with
    ``shapes[c][j] = (B, beta)``: the median curve shape per fidelity column ``c`` and target ``j``.
    """
    W, F, Y = np.asarray(W, float), np.asarray(F, float), np.asarray(Y, float)
    targets = np.asarray(targets, float).ravel()
    shapes = []
    for c in range(F.shape[1]):
        key = np.hstack([W, F[:, c + 1:]])
        gid = _group_ids(key)
        groups = [np.flatnonzero(gid == g) for g in range(gid.max() + 1)]
        Yn = np.empty((len(groups), Y.shape[1]))
        shape_c = []
        for j in range(Y.shape[1]):
            laws = {}
            for g, idx in enumerate(groups):
                if len(np.unique(F[idx, c])) >= min_points:
                    laws[g] = fit_step_law(F[idx, c], Y[idx, j])
            if laws:
                B = float(np.median([lw.B for lw in laws.values()]))
                beta = float(np.median([lw.beta for lw in laws.values()]))
            elif len(np.unique(F[:, c])) >= min_points:
                pooled = fit_step_law(F[:, c], Y[:, j] - _group_means(Y[:, j], gid) + Y[:, j].mean())
                B, beta = pooled.B, pooled.beta
            else:
                B, beta = 0.0, 1.0  # no curve information: treat the loss as flat in this fidelity
            shape_c.append((B, beta))
            for g, idx in enumerate(groups):
                if g in laws:
                    Yn[g, j] = extrapolate(laws[g], targets[c])
                else:
                    E = np.mean(Y[idx, j] - B * F[idx, c] ** (-beta))
                    Yn[g, j] = E + B * targets[c] ** (-beta)
        shapes.append(shape_c)
        first = [idx[0] for idx in groups]
        W, F, Y = W[first], F[first], Yn
    return W, Y, shapes


def _group_means(y: np.ndarray, gid: np.ndarray) -> np.ndarray:
    sums = np.bincount(gid, weights=y)
    counts = np.bincount(gid)
    return (sums / counts)[gid]
