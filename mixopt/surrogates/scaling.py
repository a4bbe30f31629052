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


def _amplitudes(x: np.ndarray, y: np.ndarray, groups: list[np.ndarray], beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Per group, least squares of ``y ≈ E_g + B_g x^-beta`` with ``B_g >= 0`` (NaN for groups with fewer
    than 2 distinct ``x``). Returns ``(E (G,), B (G,))`` and the total squared residual as ``E``'s sum."""
    E, B = np.full(len(groups), np.nan), np.full(len(groups), np.nan)
    for g, idx in enumerate(groups):
        if len(np.unique(x[idx])) < 2:
            continue
        Eg, Bg, _ = _linear_fit(x[idx], y[idx], beta, np.ones(len(idx)))
        E[g], B[g] = Eg, Bg
    return E, B


def _shared_exponent(x, y, groups, *, max_beta: float = 3.0) -> float | None:
    """One exponent for every curve: the ``beta`` minimising the summed per-curve residuals of
    ``E_g + B_g x^-beta`` (variable projection over curves with >= 3 distinct points; ``None`` when
    no curve has 3)."""
    from scipy.optimize import minimize_scalar

    long = [idx for idx in groups if len(np.unique(x[idx])) >= 3]
    if not long:
        return None
    s0 = float(np.max(x))

    def sse(beta):
        tot = 0.0
        for idx in long:
            tot += float(np.sum(_linear_fit(x[idx] / s0, y[idx], beta, np.ones(len(idx)))[2] ** 2))
        return tot

    grid = np.linspace(0.02, max_beta, 40)
    b0 = grid[int(np.argmin([sse(b) for b in grid]))]
    step = grid[1] - grid[0]
    res = minimize_scalar(sse, bounds=(max(1e-4, b0 - step), min(max_beta, b0 + step)), method="bounded",
                          options={"xatol": 1e-7})
    return float(res.x)


def _amplitude_model(Wg: np.ndarray, B: np.ndarray):
    """Predict a curve's amplitude from its mixture: ridge regression of ``log B`` on the weights over the
    curves with a fitted amplitude (median with fewer than 3 of them; 0 with none)."""
    have = np.isfinite(B) & (B > 0)
    if not have.any():
        return lambda w: np.zeros(len(w))
    if have.sum() < 3:
        med = float(np.median(B[np.isfinite(B)]))
        return lambda w: np.full(len(w), med)
    from sklearn.linear_model import Ridge

    reg = Ridge(alpha=1e-2).fit(Wg[have], np.log(B[have]))
    lo, hi = np.log(B[have]).min(), np.log(B[have]).max()
    return lambda w: np.exp(np.clip(reg.predict(w), lo, hi))


def nested_extrapolate(W, F, Y, targets, *, default_exponent: float = 0.3):
    """Reduce runs at several fidelities to one row per mixture at the target fidelity.

    W: ``(n, k)`` weights; F: ``(n, f)`` fidelity columns (processed in order: e.g. tokens then model
    size); Y: ``(n, m)`` losses; targets: ``(f,)`` target fidelity values.

    For each fidelity column in turn, rows sharing a mixture and the later fidelity values form a curve
    ``L = E_g + B_g S^-beta``. Every curve of a target shares one exponent ``beta``, fitted jointly on the
    curves with at least 3 distinct points (``default_exponent`` when there is none: then only curves with
    2 points inform the amplitudes, and a target among the observed values is still reproduced exactly).
    A curve with 2 or more points gets its own amplitude ``B_g``; a single-point curve gets the amplitude
    its mixture predicts (a ridge regression of ``log B`` on the weights over the fitted curves), so ``E``
    and ``B`` always come from one consistent law. Curves are taken in a fixed (sorted) order, so the
    result does not depend on the order of the rows.

    Returns ``(W_out (g, k), Y_out (g, m), shapes)`` with ``shapes[c][j] = (B, beta)``: the median amplitude
    and the shared exponent per fidelity column ``c`` and target ``j``.
    """
    W, F, Y = np.asarray(W, float), np.asarray(F, float), np.asarray(Y, float)
    targets = np.asarray(targets, float).ravel()
    shapes = []
    for c in range(F.shape[1]):
        key = np.hstack([W, F[:, c + 1:]])
        gid = _group_ids(key)
        groups = []
        for g in range(gid.max() + 1):  # rows of a curve in a fixed order: by fidelity, then loss
            idx = np.flatnonzero(gid == g)
            groups.append(idx[np.lexsort((Y[idx, 0], F[idx, c]))])
        first = np.array([idx[0] for idx in groups])
        s0 = float(F[:, c].max())
        x = F[:, c] / s0
        xt = targets[c] / s0
        Yn = np.empty((len(groups), Y.shape[1]))
        shape_c = []
        for j in range(Y.shape[1]):
            beta = _shared_exponent(x, Y[:, j], groups)
            beta = default_exponent if beta is None else beta
            E, B = _amplitudes(x, Y[:, j], groups, beta)
            single = ~np.isfinite(B)
            if single.any():
                Wf = W[first]
                B[single] = _amplitude_model(Wf[~single], B[~single])(Wf[single])
                for g in np.flatnonzero(single):
                    idx = groups[g]
                    E[g] = float(np.mean(Y[idx, j] - B[g] * x[idx] ** (-beta)))
            Yn[:, j] = E + B * xt ** (-beta)
            shape_c.append((float(np.median(B)) * s0**beta, float(beta)))
        shapes.append(shape_c)
        W, F, Y = W[first], F[first], Yn
    return W, Y, shapes
