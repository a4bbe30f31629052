"""The simulation: an oracle that reveals rows on demand, the replay loop, and the per-strategy summary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixopt.errors import MixoptError
from mixopt.feasible import FeasibleSet
from mixopt.replay.pool import Pool
from mixopt.runs import RunTable, match_rows
from mixopt.strategies import make_strategy
from mixopt.trust import needs_run

__all__ = ["Oracle", "ReplayResult", "replay", "summarize"]


class Oracle:
    """Holds a pool's hidden rows and hands a row out only when it is revealed (and logs every reveal).

    The strategy never receives the oracle, only :meth:`table`: the revealed rows, in reveal order.
    """

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self.accessed: list[tuple[int, int]] = []

    def reveal(self, cand: int, level: int) -> float:
        """Reveal row (``cand``, ``level``); returns its cost. Revealing a row twice is an error."""
        cand, level = int(cand), int(level)
        N, F = len(self._pool.X), self._pool.n_levels
        if not (0 <= cand < N and 0 <= level < F):
            raise MixoptError(f"strategy asked for ({cand}, {level}), outside the pool ({N} mixtures, {F} fidelities)")
        if (cand, level) in self.accessed:
            raise MixoptError(f"strategy asked for ({cand}, {level}) again: it is already revealed")
        self.accessed.append((cand, level))
        return float(self._pool.cost[cand, level])

    def table(self) -> RunTable:
        """The revealed rows, in reveal order."""
        return self._pool.table.take([self._pool.row(c, f) for c, f in self.accessed])


@dataclass
class ReplayResult:
    """``curves``: one row per (strategy, seed, reveal); ``summary``: one row per strategy; ``pool``."""

    curves: pd.DataFrame
    summary: pd.DataFrame
    pool: Pool
    budget: float


def _run_one(pool: Pool, name: str, seed: int, *, budget: float, n_init: int, batch_size: int, params: dict,
             verify: bool):
    strategy = make_strategy(name, seed=seed, **({"objective": pool.objective} | params))
    oracle = Oracle(pool)
    feasible = FeasibleSet.simplex(pool.domains).restrict(pool.X)
    truth = pool.values[:, -1]
    order = np.sort(truth)
    queue = list(strategy.initial(pool.empty_table(), pool.X, n_init))
    rows, spent = [], 0.0
    n_rows = pool.cost.size
    target = pool.n_levels - 1
    proposal, verified = None, set()
    while spent < budget and len(oracle.accessed) < n_rows:
        if not queue and verify and proposal is not None and proposal.rule == "predicted" \
                and oracle.table().at_level(-1).any():
            # as the search does: a low-trust recommendation that was never run is run next
            rec = int(match_rows(pool.X, proposal.vector(pool.domains)[None, :])[0])
            if rec not in verified and (rec, target) not in oracle.accessed:
                verified.add(rec)
                proposal.trust = strategy.trust(oracle.table(), proposal)
                if needs_run(proposal):
                    queue = [(rec, target)]
        if not queue:
            queue = list(strategy.ask(oracle.table(), pool.X, batch_size))
            if not queue:
                break
        c, f = queue.pop(0)
        spent += oracle.reveal(c, f)
        proposal = strategy.recommend(oracle.table(), feasible)
        rec = int(match_rows(pool.X, proposal.vector(pool.domains)[None, :])[0])
        if rec < 0:
            raise MixoptError(f"strategy {name} recommended a mixture outside the pool")
        value = float(truth[rec])
        rows.append(dict(
            strategy=name, seed=seed, reveal=len(oracle.accessed), candidate=int(c), fidelity_index=int(f),
            fidelity=float(pool.fidelity_values[f]), cost=float(pool.cost[c, f]), cum_cost=spent,
            recommended=rec, rule=proposal.rule, objective=value, regret=value - float(order[0]),
            rank=int(np.searchsorted(order, value, side="left")) + 1,
        ))
    return rows, oracle.accessed


def replay(
    pool: Pool,
    strategies: Sequence[str],
    *,
    seeds: int | Sequence[int] = 5,
    budget: float | None = None,
    n_init: int | None = None,
    batch_size: int = 1,
    strategy_params: dict[str, dict] | None = None,
    verify: bool = True,
    progress=None,
) -> ReplayResult:
    """Replay each strategy on the pool for each seed until ``budget`` (cost units) is spent.

    Args:
        pool: the hidden table (:meth:`Pool.from_arrays`, :meth:`Pool.from_run_table`).
        strategies: names for :func:`mixopt.strategies.make_strategy`.
        seeds: number of seeds (0..n-1) or the seeds themselves.
        budget: total cost per replay (default: 50 target-fidelity runs or the whole pool if smaller).
        n_init: initial design size (default: ``max(4, k // 4 + 1)``, at most a quarter of the pool; small
            designs let the surrogate-driven strategies start exploiting sooner, see experiments/LOG.md).
        batch_size: picks per ``ask``.
        strategy_params: per-strategy keyword arguments.
        verify: as ``search.verify_proposals``: before asking, reveal the current recommendation when it is
            low-trust (:mod:`mixopt.trust`) and not revealed yet.
        progress: optional callable ``(strategy, seed)`` called before each replay.
    """
    N = len(pool.X)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise MixoptError("replay needs at least one seed")
    tcost = float(pool.fidelity_costs[-1])
    if budget is None:
        budget = min(N, 50) * tcost
    if not budget > 0:
        raise MixoptError(f"budget must be positive, got {budget}")
    if n_init is None:
        n_init = max(4, pool.X.shape[1] // 4 + 1)
    n_init = max(1, min(int(n_init), max(1, N // 4)))
    params = strategy_params or {}
    rows = []
    for name in strategies:
        for seed in seed_list:
            if progress is not None:
                progress(name, seed)
            r, _ = _run_one(pool, name, seed, budget=budget, n_init=n_init, batch_size=batch_size,
                            params=params.get(name, {}), verify=verify)
            rows += r
    curves = pd.DataFrame(rows)
    return ReplayResult(curves, summarize(curves, pool, budget), pool, float(budget))


def _first(g: pd.DataFrame, ok: pd.Series, col: str) -> float:
    hit = g.loc[ok, col]
    return float(hit.iloc[0]) if len(hit) else math.inf


def summarize(curves: pd.DataFrame, pool: Pool, budget: float, fractions=(0.25, 0.5, 1.0)) -> pd.DataFrame:
    """One row per strategy, means over seeds.

    ``cost_to_rank1`` / ``cost_to_top3`` (and ``reveals_to_*``): cumulative cost (reveals) when the
    recommendation first reached true rank 1 / rank <= 3; a seed that never did counts as what it spent
    (so the mean is then a lower bound) and ``reached_rank1`` / ``reached_top3`` count the seeds that did.
    ``regret@f`` / ``rank@f``: regret and rank of the recommendation once a fraction ``f`` of the budget
    was spent. ``cost_ratio_top3`` / ``cost_ratio_rank1``: the cost to reach the top 3 / rank 1 over random
    search's analytic expectation (``summary.attrs``: reveals and cost, random running the target fidelity).
    """
    N = len(pool.X)
    out = []
    for name, gs in curves.groupby("strategy", sort=False):
        per_seed = []
        for _, g in gs.groupby("seed"):
            d = {}
            for label, ok in (("rank1", g["rank"] <= 1), ("top3", g["rank"] <= 3)):
                d[f"reached_{label}"] = int(ok.any())
                d[f"cost_to_{label}"] = min(_first(g, ok, "cum_cost"), float(g["cum_cost"].iloc[-1]))
                d[f"reveals_to_{label}"] = min(_first(g, ok, "reveal"), float(g["reveal"].iloc[-1]))
            for fr in fractions:
                at = g[g["cum_cost"] <= fr * budget + 1e-9]
                d[f"regret@{fr:g}"] = float(at["regret"].iloc[-1]) if len(at) else math.nan
                d[f"rank@{fr:g}"] = float(at["rank"].iloc[-1]) if len(at) else math.nan
            per_seed.append(d)
        df = pd.DataFrame(per_seed)
        row = {"strategy": name, "seeds": len(df)}
        for col in df.columns:
            row[col] = int(df[col].sum()) if col.startswith("reached_") else float(df[col].mean())
        out.append(row)
    summary = pd.DataFrame(out)
    # Random search's expectation, analytically: the first of the top r among N drawn without replacement,
    # each draw a run at the target fidelity.
    tcost = float(pool.fidelity_costs[-1])
    summary.attrs["random_expected_reveals_to_top3"] = (N + 1) / (min(3, N) + 1)
    summary.attrs["random_expected_reveals_to_rank1"] = (N + 1) / 2
    summary.attrs["random_expected_cost_to_top3"] = tcost * (N + 1) / (min(3, N) + 1)
    summary.attrs["random_expected_cost_to_rank1"] = tcost * (N + 1) / 2
    if len(summary):
        summary["cost_ratio_top3"] = summary["cost_to_top3"] / summary.attrs["random_expected_cost_to_top3"]
        summary["cost_ratio_rank1"] = summary["cost_to_rank1"] / summary.attrs["random_expected_cost_to_rank1"]
    return summary
