"""The surrogate contract: input validation shared by every surrogate.

A surrogate maps mixture weights (+ optional fidelity columns) to predicted losses. Every surrogate is a
scikit-learn estimator (constructor only stores parameters, ``fit`` returns ``self``, fitted attributes end
in ``_``, ``random_state`` honoured) built on :class:`Surrogate`, which takes care of:

- ``X``: ``(n, k + f)`` array. The ``k`` weight columns are rows on the simplex: rows whose sum is within
  ``sum_tol`` of 1 are renormalised, negative / NaN / infinite weights raise :class:`~mixopt.errors.DataError`.
  The ``f`` columns listed in ``fidelity_columns`` (indices into ``X``) hold fidelity values (tokens, steps,
  model size), positive and finite.
- ``y``: ``(n,)`` one target or ``(n, m)`` several targets; predictions come back in the same shape.
- ``y_var`` (optional, only for surrogates with ``uses_noise``): the observation-noise variance of each
  ``y`` value, same shape (e.g. :func:`mixopt.noise.estimate_noise` from repeated runs).
- At predict time ``X`` may omit the fidelity columns (``(n, k)``): the prediction is then at
  ``target_fidelity`` (default: the largest fidelity seen in ``fit``).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from threadpoolctl import threadpool_limits

from mixopt.errors import DataError

__all__ = ["Surrogate", "split_X", "validate_weights_matrix", "validate_y"]


def validate_weights_matrix(W, *, sum_tol: float = 0.05, what: str = "X") -> np.ndarray:
    """Check ``(n, k)`` mixture weights and renormalise rows to sum to 1.

    Raises :class:`DataError` (one line, naming the first bad row) on NaN/inf, negative weights, or a row
    whose sum is further than ``sum_tol`` from 1.
    """
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] == 0 or W.shape[1] == 0:
        raise DataError(f"{what}: expected a non-empty (n, k) array of mixture weights, got shape {W.shape}")
    bad = ~np.isfinite(W)
    if bad.any():
        r = int(np.argwhere(bad)[0][0])
        raise DataError(f"{what}: row {r} has NaN or infinite weights")
    if (W < 0).any():
        r, c = (int(v) for v in np.argwhere(W < 0)[0])
        raise DataError(f"{what}: row {r} has a negative weight {W[r, c]:.4g} in column {c}")
    s = W.sum(axis=1)
    far = np.abs(s - 1.0) > sum_tol
    if far.any():
        r = int(np.argmax(far))
        raise DataError(
            f"{what}: row {r} weights sum to {s[r]:.4g}, not 1 (±{sum_tol}); pass mixture weights on the simplex"
        )
    return W / s[:, None]


def validate_y(y, n: int) -> tuple[np.ndarray, bool]:
    """Return ``(Y (n, m) float64, was_1d)``; raise :class:`DataError` on a shape mismatch or NaN/inf."""
    Y = np.asarray(y, dtype=np.float64)
    was_1d = Y.ndim == 1
    if was_1d:
        Y = Y[:, None]
    if Y.ndim != 2:
        raise DataError(f"y: expected shape (n,) or (n, m), got {Y.shape}")
    if Y.shape[0] != n:
        raise DataError(f"y: {Y.shape[0]} rows but X has {n}")
    if Y.shape[1] == 0:
        raise DataError("y: no targets (0 columns)")
    if not np.isfinite(Y).all():
        r = int(np.argwhere(~np.isfinite(Y))[0][0])
        raise DataError(f"y: row {r} has a NaN or infinite target")
    return Y, was_1d


def split_X(X, fidelity_columns=None, *, sum_tol: float = 0.05) -> tuple[np.ndarray, np.ndarray | None]:
    """Split ``X (n, k+f)`` into validated weights ``(n, k)`` and fidelity ``(n, f)`` (or ``None``)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise DataError(f"X: expected a 2-D array (n, k), got shape {X.shape}")
    fid = [] if fidelity_columns is None else [int(c) for c in fidelity_columns]
    d = X.shape[1]
    for c in fid:
        if not -d <= c < d:
            raise DataError(f"fidelity_columns: index {c} out of range for X with {d} columns")
    fid = sorted({c % d for c in fid})
    wcols = [c for c in range(d) if c not in fid]
    W = validate_weights_matrix(X[:, wcols], sum_tol=sum_tol)
    if not fid:
        return W, None
    F = X[:, fid]
    if not np.isfinite(F).all() or (F <= 0).any():
        raise DataError("X: fidelity columns must be positive and finite (tokens, steps or model size)")
    return W, F


class Surrogate(RegressorMixin, BaseEstimator):
    """Base class: shared validation and shape handling; subclasses implement ``_fit`` and ``_predict``.

    Subclasses receive ``W (n, k)`` validated weights, ``F (n, f) | None`` fidelity, ``Y (n, m)`` targets
    and return ``(mean (n, m), std (n, m) | None)`` from ``_predict``.
    """

    #: whether the prediction is smooth in the weights (the proposer then refines with SLSQP)
    smooth: bool = True
    #: whether ``predict(..., return_std=True)`` gives a real uncertainty
    has_std: bool = False
    #: fitted on each target the objective uses (True) or on the objective itself (False) by default
    per_target: bool = True
    #: fed the eval-curve points of runs below the target fidelity (see ``surrogates.table_model``)
    uses_curves: bool = False
    #: accepts per-row observation-noise variances (``fit(X, y, y_var=...)``): heteroscedastic noise
    uses_noise: bool = False

    # -- subclass hooks -------------------------------------------------------------------------------
    def _fit(self, W: np.ndarray, F: np.ndarray | None, Y: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def _predict(self, W: np.ndarray, F: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError  # pragma: no cover

    # -- public API -----------------------------------------------------------------------------------
    def _fidelity_columns(self) -> list[int]:
        return list(getattr(self, "fidelity_columns", None) or [])

    def fit(self, X, y, y_var=None):
        """Fit on ``X (n, k[+f])`` and ``y (n,) | (n, m)``; returns ``self``.

        y_var: ``(n,) | (n, m)`` known noise variance of each ``y`` value (surrogates with ``uses_noise``
        only; ``None``: the noise is learned, the same everywhere)."""
        fc = self._fidelity_columns()
        W, F = split_X(X, fc)
        Y, was_1d = validate_y(y, W.shape[0])
        Yvar = None
        if y_var is not None:
            if not self.uses_noise:
                raise DataError(f"{type(self).__name__} does not model per-run noise; fit it without y_var")
            Yvar, _ = validate_y(y_var, W.shape[0])
            if Yvar.shape != Y.shape or (Yvar < 0).any():
                raise DataError(f"y_var: expected non-negative variances of shape {Y.shape}, got {Yvar.shape}"
                                + (" with negative values" if Yvar.shape == Y.shape else ""))
        if W.shape[0] < 2:
            raise DataError(f"{type(self).__name__}: need at least 2 runs to fit, got {W.shape[0]}")
        self.n_features_in_ = np.asarray(X).shape[1]
        self.n_domains_ = W.shape[1]
        self.n_targets_ = Y.shape[1]
        self.y_1d_ = was_1d
        if F is not None:
            tf = getattr(self, "target_fidelity", None)
            self.target_fidelity_ = (
                F.max(axis=0) if tf is None else np.broadcast_to(np.asarray(tf, float), (F.shape[1],)).copy()
            )
        else:
            self.target_fidelity_ = None
        with threadpool_limits(limits=1, user_api="blas"):  # small solves: threads only thrash
            if Yvar is None:
                self._fit(W, F, Y)
            else:
                self._fit(W, F, Y, Yvar=Yvar)
        return self

    def _split_predict_X(self, X) -> tuple[np.ndarray, np.ndarray | None]:
        if not hasattr(self, "n_targets_"):
            raise DataError(f"{type(self).__name__} is not fitted yet: call fit(X, y) first")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        fc = self._fidelity_columns()
        if fc and X.shape[1] == self.n_domains_:
            W = validate_weights_matrix(X)
            F = np.tile(self.target_fidelity_, (W.shape[0], 1))
            return W, F
        if X.shape[1] != self.n_features_in_:
            raise DataError(
                f"X: {X.shape[1]} columns but the surrogate was fitted on {self.n_features_in_}"
                + (f" (or {self.n_domains_} weights only)" if fc else "")
            )
        return split_X(X, fc)

    def predict(self, X, return_std: bool = False):
        """Predict losses: ``(n,)`` or ``(n, m)`` like the fitted ``y``; with ``return_std`` also the std
        (zeros for surrogates without an uncertainty model)."""
        W, F = self._split_predict_X(X)
        mean, std = self._predict(W, F)
        if std is None:
            std = np.zeros_like(mean)
        if self.y_1d_:
            mean, std = mean[:, 0], std[:, 0]
        return (mean, std) if return_std else mean
