"""Replay results a user relies on: cheap fidelities pay off, regret and rank are measured honestly."""

from __future__ import annotations

import numpy as np
from replay_tables import pool_from_frame, synthetic_table

from mixopt.replay import replay


def test_bo_with_cheap_fidelity_reaches_optimum_at_lower_cost_than_random(mf_table):
    pool = pool_from_frame(mf_table, fidelity=mf_table["size"])
    n = pool.X.shape[0]
    rand = replay(pool, ["random"], seeds=[0, 1, 2], budget=n, n_init=4).summary.iloc[0]
    assert rand["reached_rank1"] == 3  # random search runs the whole pool at the target fidelity
    # Six seeds: which seeds get there depends on the GP fit's rounding, which differs between CPUs (on the
    # 2026-12-02 VM seeds 1, 3, 5 and 6 of 0-7 did; on the VM before, two of seeds 0-2). Random search
    # would find the optimum within 5 target runs in 5/60 of its seeds.
    bo = replay(pool, ["bo"], seeds=range(6), budget=5.0, n_init=4)
    s = bo.summary.iloc[0]
    assert s["reached_rank1"] >= 3  # within 5 target runs' worth of cost (a seed that did not counts 5)
    # random needs (n + 1) / 2 = 30.5 target runs in expectation; bo scouts with cheap runs
    assert s["cost_to_rank1"] < 0.5 * min(rand["cost_to_rank1"], (n + 1) / 2)
    assert (bo.curves["fidelity_index"] == 0).any()  # it did use the cheap fidelity


def test_curves_report_true_regret_and_rank_of_the_recommendation():
    pool = pool_from_frame(synthetic_table(40, two_fidelities=False))
    res = replay(pool, ["random"], seeds=[0], budget=40, n_init=4)
    c = res.curves
    truth = pool.values[:, -1]
    assert c["reveal"].tolist() == list(range(1, 41))
    assert np.allclose(c["objective"], truth[c["recommended"]])
    assert np.allclose(c["regret"], truth[c["recommended"]] - truth.min())
    # revealing the whole pool ends at the best mixture; regret never increases (revealed-best rule)
    assert c["rank"].iloc[-1] == 1 and c["regret"].iloc[-1] == 0
    assert (c["rule"] == "revealed").all()
    assert np.all(np.diff(c["regret"]) <= 1e-12)
    assert res.summary.loc[0, "cost_to_rank1"] == c.loc[c["rank"] == 1, "cum_cost"].iloc[0]
