"""Synthetic run tables drawn from known laws (seeded), shared by the surrogate tests."""

from __future__ import annotations

import numpy as np

# Parameters that keep every surrogate fast in tests (the defaults are the papers' settings).
FAST = {
    "lightgbm": {"n_estimators": 150, "learning_rate": 0.05},
    "auto": {"candidates": ["linear", "mixing_law"], "n_folds": 3},
    "gp": {"max_iter": 30},
    "mixing_law": {"n_restarts": 2},
    "bimix": {"n_restarts": 2},
}


def mixing_law_data(n=60, k=4, m=1, noise=0.0, seed=0):
    """X (n, k) Dirichlet mixtures, Y (n, m) = c + k exp(X @ t) (+ noise), and the true parameters."""
    rng = np.random.default_rng(seed)
    X = rng.dirichlet(np.ones(k), n)
    c = rng.uniform(1.5, 2.5, m)
    kk = rng.uniform(0.5, 1.5, m)
    t = rng.normal(0.0, 1.5, (m, k))
    Y = c + kk * np.exp(X @ t.T) + noise * rng.normal(size=(n, m))
    return X, Y, (c, kk, t)


