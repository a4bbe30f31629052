"""Run-to-run noise: how much a mixture's loss moves between seeds, estimated from repeated runs.

Repeats are rows of a run table (or a surrogate's inputs) with the same mixture and fidelity: every run
stays its own row, and :func:`repeat_groups` finds which rows repeat one another (with
:func:`mixopt.runs.match_rows`, the rounding every other mixture comparison uses).

The noise model, per target column (``Y (n, m)``; the objective is simply a one-column ``Y``):

- a mixture run ``r >= 2`` times has the sample variance ``s2_g`` of its results (``r - 1`` degrees of
  freedom);
- the **pooled** variance is their dof-weighted mean (the noise if it did not depend on the mixture);
- the noise variance at any mixture ``w`` is a kernel regression of the groups' sample variances, with
  the pooled variance as a prior worth ``prior_dof`` degrees of freedom::

      var(w) = (sum_g K(w, w_g) (r_g - 1) s2_g + prior_dof * pooled) / (sum_g K(w, w_g) (r_g - 1) + prior_dof)

  ``K`` is a Gaussian kernel on the total-variation distance between mixtures, bandwidth the median
  distance from a repeated mixture to its nearest other repeated mixture (``bandwidth`` overrides it);
  only groups at the same fidelity count, and the prior is the pooled variance of that fidelity (of all
  repeats when that fidelity has none). A
  repeated mixture is dominated by its own repeats (``K = 1``); a mixture run once borrows from its
  repeated neighbours. The estimate is linear in the sample variances (no log bias) and never zero when
  any repeat differs.

>>> import numpy as np
>>> W = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.5, 0.5]])
>>> y = np.array([[3.0], [3.2], [2.0], [2.0]] + [[2.5]])
>>> est = estimate_noise(W, y)
>>> est.n_groups, round(float(est.pooled[0]), 3)
(2, 0.01)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixopt.runs import match_rows

__all__ = ["NoiseEstimate", "estimate_noise", "mixture_means", "mixture_spread", "noise_at", "repeat_groups"]

_FLOOR = 1e-12  # variances below this are zero for every practical purpose


def repeat_groups(X: np.ndarray, decimals: int = 8) -> np.ndarray:
    """``(n,)`` group id of each row of ``X (n, d)``: the index of the first row equal to it (rounded to
    ``1e-decimals``), so rows that repeat one another share an id."""
    X = np.asarray(X, dtype=np.float64)
    return match_rows(X, X, decimals=decimals)


@dataclass
class NoiseEstimate:
    """Per-row noise variances and the repeated groups they came from.

    var: ``(n, m)`` noise variance of each row's targets (units: the targets', squared); pooled: ``(m,)``;
    groups: ``(G, d)`` the repeated rows' inputs (weights [+ fidelity]); group_var: ``(G, m)`` their sample
    variances; group_dof: ``(G,)`` repeats - 1; bandwidth: the kernel's (total variation); n_groups: G.
    """

    var: np.ndarray
    pooled: np.ndarray
    groups: np.ndarray
    group_var: np.ndarray
    group_dof: np.ndarray
    bandwidth: float
    prior_dof: float
    k: int

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    def at(self, X: np.ndarray) -> np.ndarray:
        """``(q, m)`` noise variance at inputs ``X (q, d)`` (same columns as the fitted rows)."""
        return _smoothed(np.atleast_2d(np.asarray(X, float)), self)


def _tv(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``(a, b)`` total-variation distances between the mixtures of ``A (a, k)`` and ``B (b, k)``."""
    return 0.5 * np.abs(A[:, None, :] - B[None, :, :]).sum(axis=2)


def _smoothed(X: np.ndarray, est: NoiseEstimate) -> np.ndarray:
    k = est.k
    K = np.exp(-0.5 * (_tv(X[:, :k], est.groups[:, :k]) / est.bandwidth) ** 2)
    pooled = np.tile(est.pooled, (len(X), 1))
    if X.shape[1] > k:  # only groups at the same fidelity; the pooled variance of that fidelity if it has any
        same = np.isclose(X[:, None, k:], est.groups[None, :, k:], rtol=1e-9, atol=0).all(axis=2)
        K = K * same
        sd = same * est.group_dof[None, :]
        have = sd.sum(axis=1) > 0
        pooled[have] = np.maximum((sd @ est.group_var)[have] / sd.sum(axis=1, keepdims=True)[have], _FLOOR)
    Kd = K * est.group_dof[None, :]  # (q, G)
    num = Kd @ est.group_var + est.prior_dof * pooled
    return np.maximum(num / (Kd.sum(axis=1, keepdims=True) + est.prior_dof), _FLOOR)


def estimate_noise(X, Y, *, k: int | None = None, prior_dof: float = 1.0,
                   bandwidth: float | None = None) -> NoiseEstimate | None:
    """The noise model of the module docstring from rows ``X (n, d)`` (the first ``k`` columns mixture
    weights, default all; the rest fidelity) and results ``Y (n,) | (n, m)``.

    Returns ``None`` when no row repeats another (nothing to estimate the noise from).
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    Y = Y[:, None] if Y.ndim == 1 else Y
    k = X.shape[1] if k is None else int(k)
    gid = repeat_groups(X)
    ids, counts = np.unique(gid, return_counts=True)
    rep = ids[counts >= 2]
    if rep.size == 0:
        return None
    groups = X[rep]
    gvar = np.stack([Y[gid == g].var(axis=0, ddof=1) for g in rep])
    dof = counts[counts >= 2].astype(np.float64) - 1.0
    pooled = np.maximum((dof[:, None] * gvar).sum(axis=0) / dof.sum(), _FLOOR)
    if bandwidth is None:
        if len(rep) >= 2:
            D = _tv(groups[:, :k], groups[:, :k])
            np.fill_diagonal(D, np.inf)
            bandwidth = float(np.median(D.min(axis=1)))
        else:
            bandwidth = 0.25
    est = NoiseEstimate(var=np.zeros_like(Y), pooled=pooled, groups=groups, group_var=gvar, group_dof=dof,
                        bandwidth=max(float(bandwidth), 1e-3), prior_dof=float(prior_dof), k=k)
    est.var = est.at(X)
    return est


def _target_groups(table, objective) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The successful target-fidelity runs: ``(weights (n, k), objective (n,), group id (n,))``."""
    at = np.flatnonzero(table.at_level(-1))
    W = table.weights[at]
    return W, table.objective(objective)[at], repeat_groups(W) if len(W) else np.zeros(0, dtype=np.int64)


def mixture_means(table, objective="mean") -> list[dict]:
    """Every mixture run at the target fidelity, its repeats pooled: ``{"weights" (k,), "mean", "std"
    (ddof 1; ``None`` when run once), "n", "run_ids"}`` of its objective, sorted by mean (best first)."""
    at = np.flatnonzero(table.at_level(-1))
    W, y, gid = _target_groups(table, objective)
    if len(gid) == 0:
        return []
    order = np.argsort(gid, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(gid[order]) != 0])
    out = []
    for rows in np.split(order, starts[1:]):
        g = gid[rows[0]]
        out.append({"weights": W[g], "mean": float(y[rows].mean()),
                    "std": float(y[rows].std(ddof=1)) if rows.size >= 2 else None,
                    "n": int(rows.size), "run_ids": [table.run_ids[at[r]] for r in rows]})
    return sorted(out, key=lambda d: d["mean"])


def mixture_spread(table, objective="mean") -> list[dict]:
    """The mixtures of :func:`mixture_means` run more than once (empty without repeats)."""
    return [d for d in mixture_means(table, objective) if d["n"] >= 2]


def noise_at(table, w, objective="mean") -> dict | None:
    """The run-to-run noise of the objective at mixture ``w (k,)`` and the target fidelity, from the
    table's repeated target-fidelity runs: ``{"std", "pooled_std", "repeats", "n_groups"}`` (``repeats``:
    how often exactly ``w`` was run); ``None`` without repeats."""
    W, y, _ = _target_groups(table, objective)
    est = estimate_noise(W, y) if len(W) else None
    if est is None:
        return None
    w = np.asarray(w, dtype=np.float64)[None, :]
    return {"std": float(np.sqrt(est.at(w)[0, 0])), "pooled_std": float(np.sqrt(est.pooled[0])),
            "repeats": int((np.abs(W - w).max(axis=1) <= 1e-8).sum()),
            "n_groups": est.n_groups}
