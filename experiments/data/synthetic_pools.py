"""Synthetic multi-fidelity replay pools with a known correlation between the cheap fidelities and the target.

Each pool has ``n`` mixtures over ``k`` domains at three fidelity levels with relative costs 1/16, 1/4 and
1. The target level's objective is a data mixing law ``2 + exp(w . t)``; each cheaper level is a shifted,
scaled mix of the target's (standardised) ranking and an independent smooth law, with correlation
``rho`` to the target:

    y_level = mu_level + s_level * (rho_level * z_target + sqrt(1 - rho_level^2) * z_level) + noise

``high``: rho (0.98, 0.95); ``medium``: (0.8, 0.6); ``low``: (0.4, 0.2), for (cheapest, middle).

>>> pool = make_pool("high", n=30, seed=0)
>>> pool.X.shape, pool.n_levels
((30, 6), 3)
"""

from __future__ import annotations

import numpy as np

CORRELATIONS = {"high": (0.98, 0.95), "medium": (0.8, 0.6), "low": (0.4, 0.2)}
COSTS = (1 / 16, 1 / 4, 1.0)


def _z(v: np.ndarray) -> np.ndarray:
    return (v - v.mean()) / v.std()


def make_pool(kind: str, *, n: int = 200, k: int = 6, seed: int = 0, noise: float = 0.01):
    """A :class:`mixopt.replay.Pool` of ``n`` mixtures x 3 levels with the correlations of ``kind``."""
    from mixopt.replay import Pool

    rho = CORRELATIONS[kind]
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.full(k, 0.7), n)
    t = rng.normal(0.0, 1.5, k)
    target = 2.0 + np.exp(W @ t)
    zt = _z(target)
    rows, ys, fid, cost = [], [], [], []
    for level, (mu, s) in enumerate(((0.9, 0.25), (0.4, 0.2))):
        other = _z(2.0 + np.exp(W @ rng.normal(0.0, 1.5, k)))
        y = float(target.mean()) + mu + s * (rho[level] * zt + np.sqrt(1 - rho[level] ** 2) * other) * target.std()
        rows.append(W)
        ys.append(y + noise * rng.normal(size=n))
        fid.append(np.full(n, level + 1.0))
        cost.append(np.full(n, COSTS[level]))
    rows.append(W)
    ys.append(target + noise * rng.normal(size=n))
    fid.append(np.full(n, 3.0))
    cost.append(np.full(n, COSTS[2]))
    return Pool.from_arrays(np.vstack(rows), np.concatenate(ys), fidelity=np.concatenate(fid),
                            costs=np.concatenate(cost), domains=[f"d{j}" for j in range(k)], target_names=["loss"])
