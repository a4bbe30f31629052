"""Helpers for the replay tests: synthetic run tables with a known optimum, one or two fidelities."""

from __future__ import annotations

import numpy as np
import pandas as pd

W_STAR = np.array([0.6, 0.25, 0.15])


def synthetic_table(n: int = 60, *, seed: int = 0, two_fidelities: bool = True) -> pd.DataFrame:
    """Columns w_a, w_b, w_c (mixture), loss_x, loss_y (targets), size (fidelity: 1 cheap, 8 target),
    hours (cost). The mean loss is a bowl around W_STAR; the cheap fidelity is the target's loss plus a
    constant and a small smooth bias (so it ranks mixtures almost like the target)."""
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.ones(3), size=n)
    bowl = 4.0 * ((W - W_STAR) ** 2).sum(1)
    rows = []
    for size in ([1.0, 8.0] if two_fidelities else [8.0]):
        shift = 0.0 if size == 8.0 else 0.5 + 0.05 * W[:, 1]
        base = 3.0 + bowl + shift
        for i in range(n):
            rows.append({"w_a": W[i, 0], "w_b": W[i, 1], "w_c": W[i, 2], "loss_x": base[i] + 0.1 * W[i, 0],
                         "loss_y": base[i] - 0.1 * W[i, 0], "size": size, "hours": size * 0.5})
    return pd.DataFrame(rows)


def pool_from_frame(df: pd.DataFrame, **kw):
    from mixopt.replay import Pool

    return Pool.from_arrays(df[["w_a", "w_b", "w_c"]].to_numpy(), df[["loss_x", "loss_y"]].to_numpy(),
                            target_names=["loss_x", "loss_y"], domains=["a", "b", "c"], **kw)
