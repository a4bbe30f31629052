"""No strategy ever reads an unrevealed value: poisoning every unrevealed row changes nothing."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from replay_tables import pool_from_frame

from mixopt.errors import MixoptError
from mixopt.replay import Oracle, replay


@pytest.mark.parametrize("name", ["random", "regmix", "mixing_law", "bo"])
def test_poisoned_unrevealed_rows_do_not_change_any_choice(mf_table, name):
    pool = pool_from_frame(mf_table, fidelity=mf_table["size"])
    params = {"regmix": {"n_min": 5}, "mixing_law": {"n_min": 5, "refit_every": 3}}
    # bo buys cheap runs (1/8 of a target run), so a smaller budget gives it as many reveals
    kw = dict(seeds=[3], budget=3.0 if name == "bo" else 10.0, n_init=4, strategy_params=params)
    clean = replay(pool, [name], **kw).curves
    revealed = set(zip(clean["candidate"], clean["fidelity_index"], strict=True))
    poisoned = copy.deepcopy(pool)
    hidden = [poisoned.row(c, f) for c in range(len(pool.X)) for f in range(pool.n_levels)
              if (c, f) not in revealed]
    poisoned.table.targets[hidden] = np.nan  # any read would drop the row from the fit or crash it
    assert np.isnan(poisoned.Y).any(axis=2).sum() == len(hidden) == pool.Y.shape[0] * pool.Y.shape[1] - len(revealed)
    assert np.isfinite(pool.table.targets).all()  # the clean pool is untouched
    dirty = replay(poisoned, [name], **kw).curves
    cols = ["candidate", "fidelity_index", "recommended", "cum_cost"]
    assert len(clean) >= 8
    assert clean[cols].equals(dirty[cols])


def test_oracle_hands_out_only_revealed_rows(mf_table):
    pool = pool_from_frame(mf_table, fidelity=mf_table["size"])
    oracle = Oracle(pool)
    assert len(oracle.table()) == 0
    cost = oracle.reveal(5, 0)
    oracle.reveal(9, 1)
    t = oracle.table()
    assert cost == pytest.approx(1 / 8)
    assert len(t) == 2 and np.allclose(t.weights, pool.X[[5, 9]]) and t.level.tolist() == [0, 1]
    assert np.allclose(t.targets, [pool.Y[5, 0], pool.Y[9, 1]])
    assert np.allclose(t.objective(pool.objective), [pool.values[5, 0], pool.values[9, 1]])
    assert t.n_levels == 2 and np.allclose(t.level_costs, pool.fidelity_costs)  # the levels are known upfront
    assert oracle.accessed == [(5, 0), (9, 1)]
    with pytest.raises(MixoptError, match="already revealed"):
        oracle.reveal(5, 0)
    with pytest.raises(MixoptError, match="outside the pool"):
        oracle.reveal(60, 0)
