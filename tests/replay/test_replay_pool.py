"""The replay pool: grouping by mixture, skipped rows, and clear errors for malformed columns."""

from __future__ import annotations

import numpy as np
import pytest
from replay_tables import pool_from_frame, synthetic_table

from mixopt.errors import TableError


def test_pool_groups_fidelities_and_defaults_cost_to_fidelity_ratio(mf_table):
    pool = pool_from_frame(mf_table, fidelity=mf_table["size"])
    assert pool.X.shape == (60, 3) and pool.Y.shape == (60, 2, 2)
    assert pool.fidelity_values.tolist() == [1.0, 8.0]
    assert np.allclose(pool.fidelity_costs, [1 / 8, 1.0])
    # the best mixture at the target fidelity is the one nearest the bowl's centre
    assert pool.values.shape == (60, 2)
    best = int(np.argmin(pool.values[:, -1]))
    from replay_tables import W_STAR

    assert best == int(np.argmin(((pool.X - W_STAR) ** 2).sum(1)))


def test_cost_column_and_lower_target_fidelity(mf_table):
    pool = pool_from_frame(mf_table, fidelity=mf_table["size"], costs=mf_table["hours"])
    assert np.allclose(pool.fidelity_costs, [0.5, 4.0])
    low = pool_from_frame(mf_table, fidelity=mf_table["size"], target_fidelity=1.0)
    assert low.fidelity_values.tolist() == [1.0]
    assert any("above the target fidelity" in s for s in low.skipped)


def test_rows_with_missing_targets_or_bad_weights_are_skipped_and_reported():
    df = synthetic_table(20, two_fidelities=False)
    df.loc[3, "loss_x"] = np.nan
    df.loc[5, "w_a"] = -0.2
    pool = pool_from_frame(df)
    assert pool.X.shape[0] == 18
    # one line per rejected row, naming the row and what is wrong with it
    assert len(pool.skipped) == 2
    assert any(s.startswith("row 3") and "target" in s and "loss_x" in s for s in pool.skipped)
    assert any(s.startswith("row 5") and "negative weight" in s for s in pool.skipped)


def test_mixture_without_every_fidelity_is_dropped(mf_table):
    df = mf_table.drop(index=[0])  # mixture 0 loses its cheap row
    pool = pool_from_frame(df, fidelity=df["size"])
    assert pool.X.shape[0] == 59
    assert any("lack a row" in s for s in pool.skipped)


@pytest.mark.parametrize(
    "mutate, kw, match",
    [
        (lambda d: d.assign(size=d["size"].astype(object).where(d.index != 4, "big")), {}, "not numeric"),
        (lambda d: d.assign(size=d["size"].where(d.index != 4, np.nan)), {}, "fidelity column has missing"),
        (lambda d: d.assign(size=d["size"].where(d.index != 4, -1.0)), {}, "non-positive"),
        (lambda d: d.assign(hours=d["hours"].where(d.index != 7, 0.0)), {"use_cost": True}, "cost column must be positive"),
        (lambda d: d.assign(hours=d["hours"].where(d.index != 7, -3.0)), {"use_cost": True}, "positive"),
        (lambda d: d, {"target_fidelity": 4.0}, r"target fidelity \[4\.0\] is not among"),
    ],
)
def test_malformed_fidelity_or_cost_columns_raise(mf_table, mutate, kw, match):
    df = mutate(mf_table.copy())
    costs = df["hours"] if kw.pop("use_cost", False) else None
    with pytest.raises(TableError, match=match):
        pool_from_frame(df, fidelity=df["size"], costs=costs, **kw)


def test_objective_weights_select_targets(mf_table):
    pool = pool_from_frame(mf_table, fidelity=mf_table["size"], objective={"loss_x": 1.0})
    assert np.allclose(pool.values, pool.Y[:, :, 0])
    with pytest.raises(TableError, match="unknown target 'loss_z'"):
        pool_from_frame(mf_table, objective={"loss_z": 1.0})
