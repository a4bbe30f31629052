"""Per-domain learning curves of a mixture, read off a run table's eval curves: what a search hands the
online mixer as its reference (``reference=`` in :mod:`mixopt.online.reference`).

For a mixture ``w`` and each domain ``d`` whose loss the table records, :func:`curve_laws` returns a power law
in the **total** training tokens ``n`` (all domains together):

    L_d(n) = E_d + B_d * n ** -beta_d

It comes from BiMix's bivariate law (:class:`mixopt.surrogates.bimix.BiMixSurrogate`,
``L_d(r, n) = (r + eps)^-alpha * (B n^-beta + C)``), fitted to every eval point of every successful run at
the target model size (runs of other model sizes learn at other rates), and evaluated at ``r = w_d``:
``E_d = C (w_d + eps)^-alpha``, ``B_d = B (w_d + eps)^-alpha``. With ``anchor={domain: loss}`` (the
proposal's own per-domain predictions at ``tokens``) each curve is shifted, ``E`` only, so that it ends there:
the curve then takes its shape from the runs' curves and its end point from the search's model.
:func:`proposal_curves` is what a search writes into its proposal: the end point is the **observed** final
loss when a run of exactly the proposed weights exists at the target fidelity (the best run, a confirmation),
else the proposal's per-domain prediction, else the law's own.

Returns ``None`` (no curves: the reference falls back to a default shape) when fewer than ``min_runs`` runs
at the target size have eval curves, when the eval points span fewer than 3 distinct token counts, or when
no target is a domain's loss.

>>> import numpy as np
>>> from mixopt.runs import RunTable
>>> rng = np.random.default_rng(0)
>>> recs = []
>>> for i, w in enumerate(rng.dirichlet(np.ones(2), 6)):
...     n = np.geomspace(1e4, 1e6, 5)
...     loss = {d: (2.0 + 30.0 * n ** -0.3) * (w[j] + 0.01) ** -0.1 for j, d in enumerate(["a", "b"])}
...     recs.append({"run_id": str(i), "weights": {"a": w[0], "b": w[1]}, "tokens": 1e6,
...                  "final_loss": {d: v[-1] for d, v in loss.items()}, "tokens_seen": n.tolist(),
...                  "val_loss": {d: v.tolist() for d, v in loss.items()}})
>>> table = RunTable.from_records(recs, fidelity=["tokens"])
>>> laws = curve_laws(table, np.array([0.5, 0.5]))
>>> [round(float(x), 1) for x in laws["a"]]  # true: (2 + 30 n^-0.3) * 0.51^-0.1 = 2.14 + 32.12 n^-0.3
[2.1, 32.1, 0.3]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mixopt.runs import RunTable
from mixopt.surrogates.bimix import BiMixSurrogate

__all__ = ["curve_laws", "curve_points", "proposal_curves"]


def _target_rows(table: RunTable) -> np.ndarray:
    """``(n,)`` bool: successful runs at the target model size (all successful runs without a size column)."""
    rows = table.ok.copy()
    if table.fidelity is not None and "n_params" in table.fidelity_names:
        col = table.fidelity_names.index("n_params")
        size = table.levels[-1, col] if table.levels is not None else np.nanmax(table.fidelity[:, col])
        rows &= np.isclose(table.fidelity[:, col], size, rtol=1e-6)
    return rows


def curve_points(table: RunTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], int]:
    """Every eval point of the runs at the target model size.

    Returns ``(W (p, k), n (p,), Y (p, m), domains (m,), runs)``: each point's mixture, total tokens seen
    and the losses of the ``m`` domains that are targets, and how many runs contributed.
    """
    doms = [d for d in table.domains if d in table.target_names]
    cols = [table.target_names.index(d) for d in doms]
    W, n, Y, runs = [], [], [], 0
    for i in np.flatnonzero(_target_rows(table)):
        curve = table.curves[i] if table.curves is not None else None
        if curve is None:
            continue
        x, Yc = curve
        W.append(np.repeat(table.weights[i][None, :], len(x), axis=0))
        n.append(np.asarray(x, dtype=np.float64))
        Y.append(np.asarray(Yc, dtype=np.float64)[:, cols])
        runs += 1
    if not runs:
        k = len(table.domains)
        return np.zeros((0, k)), np.zeros(0), np.zeros((0, len(doms))), doms, 0
    return np.vstack(W), np.concatenate(n), np.vstack(Y), doms, runs


def curve_laws(table: RunTable, weights, *, anchor: Mapping[str, float] | None = None,
               tokens: float | None = None, seed: int = 0, min_runs: int = 3) -> dict[str, list[float]] | None:
    """``{domain: [E, B, beta]}``: each domain's loss after ``n`` total tokens of the mixture ``weights``
    (``(k,)`` in ``table.domains`` order), or ``None`` (see the module docstring).

    anchor: ``{domain: loss}`` at ``tokens`` total tokens; each curve is shifted to end there (domains
    missing from it keep the fitted end point). seed: BiMix's restarts.
    """
    W, n, Y, doms, runs = curve_points(table)
    if runs < min_runs or not doms or len(np.unique(n)) < 3:
        return None
    k = len(table.domains)
    td = [table.domains.index(d) for d in doms]
    law = BiMixSurrogate(target_domains=td, fidelity_columns=[k], random_state=seed)
    law.fit(np.column_stack([W, n]), Y)
    if not law.use_quantity_:
        return None
    w = np.asarray(weights, dtype=np.float64).reshape(k)
    scale = (w[td] + law.eps_) ** -law.alpha_
    E, B, beta = law.C_ * scale, law.B_ * scale, law.beta_.copy()
    if anchor is not None:
        if tokens is None or tokens <= 0:
            raise ValueError("curve_laws: anchor needs tokens (the total tokens at which it holds)")
        for j, d in enumerate(doms):
            a = anchor.get(d)
            if a is not None and np.isfinite(a):
                E[j] += float(a) - (E[j] + B[j] * float(tokens) ** -beta[j])
    return {d: [float(E[j]), float(B[j]), float(beta[j])] for j, d in enumerate(doms)}


def proposal_curves(table: RunTable, weights, *, predicted: Mapping[str, float] | None, tokens: float,
                    seed: int = 0) -> dict[str, list[float]] | None:
    """The curves a proposal carries: :func:`curve_laws` at ``weights``, ending after ``tokens`` at the
    observed per-domain losses of the latest run of exactly these weights at the target fidelity, else at
    ``predicted`` (``{domain: loss}``, the proposal's ``predicted_targets``), else where the law ends."""
    w = np.asarray(weights, dtype=np.float64).reshape(len(table.domains))
    anchor = dict(predicted) if predicted else None
    same = table.at_level(-1) & (np.abs(table.weights - w).max(axis=1) <= 1e-8)
    if same.any():
        row = int(np.flatnonzero(same)[-1])
        anchor = {d: float(table.targets[row, table.target_names.index(d)])
                  for d in table.domains if d in table.target_names}
    return curve_laws(table, w, anchor=anchor, tokens=tokens if anchor else None, seed=seed)
