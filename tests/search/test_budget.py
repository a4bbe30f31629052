"""The search budget: whichever limit is reached first stops new launches."""

from __future__ import annotations

from mixopt.config import BudgetSettings
from mixopt.search.budget import Budget, Spend


def test_run_limit_counts_in_flight_runs():
    b = Budget(BudgetSettings(runs=4))
    assert b.can_launch(Spend(runs=2), Spend(runs=1), 0.0)
    assert not b.can_launch(Spend(runs=2), Spend(runs=2), 0.0)
    assert b.left(Spend(runs=1), 0.0) == {"runs": 3.0}


def test_first_limit_reached_wins():
    b = Budget(BudgetSettings(runs=None, tokens=1000, wall_seconds=60))
    assert b.fraction(Spend(tokens=500), 45.0) == 0.75
    assert not b.exhausted(Spend(tokens=999), 10.0)
    assert b.exhausted(Spend(tokens=1000), 10.0)
    assert b.exhausted(Spend(tokens=10), 61.0)


def test_flops_limit():
    b = Budget(BudgetSettings(runs=None, flops=1e12))
    assert b.can_launch(Spend(flops=4e11), Spend(flops=5e11), 0.0)
    assert not b.can_launch(Spend(flops=6e11), Spend(flops=5e11), 0.0)
    assert b.describe() == "flops=1e+12"
