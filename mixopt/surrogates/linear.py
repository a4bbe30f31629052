"""RegMix's linear regression surrogate: ``L(r) = b + sum_j w_j r_j`` per target (+ log-fidelity terms)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LinearRegression, Ridge

from mixopt.surrogates.base import Surrogate

__all__ = ["LinearSurrogate"]


class LinearSurrogate(Surrogate):
    """Least-squares linear model on the mixture weights, one output per target (RegMix's baseline).

    Fidelity columns, if declared, enter as ``log(fidelity)`` features. ``alpha > 0`` switches to ridge.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).dirichlet(np.ones(3), 20); y = 2 - X @ [1.0, 0.5, 0.0]
    >>> LinearSurrogate().fit(X, y).predict(X[:2]).round(3).tolist() == y[:2].round(3).tolist()
    True
    """

    smooth = True

    def __init__(self, alpha: float = 0.0, fidelity_columns=None, target_fidelity=None, random_state=None):
        self.alpha = alpha
        self.fidelity_columns = fidelity_columns
        self.target_fidelity = target_fidelity
        self.random_state = random_state

    @staticmethod
    def _features(W, F):
        return W if F is None else np.hstack([W, np.log(F)])

    def _fit(self, W, F, Y):
        # Weights sum to 1, so an intercept plus all k weights is collinear; lstsq handles it (min-norm).
        model = Ridge(alpha=self.alpha) if self.alpha > 0 else LinearRegression()
        self.model_ = model.fit(self._features(W, F), Y)

    def _predict(self, W, F):
        return self.model_.predict(self._features(W, F)).reshape(len(W), -1), None
