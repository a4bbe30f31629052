"""The replay pool: a run table grouped by mixture, every mixture at every fidelity level.

A :class:`Pool` is a view of a :class:`~mixopt.runs.RunTable`: its candidates are the distinct mixtures
that have a row at every level (repeated rows of a mixture at one level are averaged), and
``rows[c, f]`` is the table row of candidate ``c`` at level ``f``. Replay reveals rows of that table to
the strategy under test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixopt.errors import TableError
from mixopt.objective import Objective
from mixopt.runs import RunTable, load_run_table

__all__ = ["Pool", "load_pool"]


@dataclass
class Pool:
    """The hidden table (one row per candidate and level) and how it is grouped.

    Attributes:
        table: the rows, candidate-major (row ``c * F + f`` is candidate ``c`` at level ``f``).
        X: ``(N, k)`` the distinct mixtures (the candidates).
        objective: the :class:`~mixopt.objective.Objective` replay scores (lower is better).
        skipped: one line per dropped row or mixture.
    """

    table: RunTable
    X: np.ndarray
    objective: Objective
    skipped: list[str] = field(default_factory=list)

    @property
    def n_levels(self) -> int:
        return self.table.n_levels

    @property
    def domains(self) -> list[str]:
        return self.table.domains

    @property
    def target_names(self) -> list[str]:
        return self.table.target_names

    def row(self, cand: int, level: int) -> int:
        """Index in :attr:`table` of candidate ``cand`` at level ``level``."""
        return int(cand) * self.n_levels + int(level)

    @property
    def Y(self) -> np.ndarray:
        """``(N, F, m)`` per-target values of every row."""
        return self.table.targets.reshape(len(self.X), self.n_levels, -1)

    @property
    def cost(self) -> np.ndarray:
        """``(N, F)`` the cost of revealing each row."""
        return self.table.cost.reshape(len(self.X), self.n_levels)

    @property
    def values(self) -> np.ndarray:
        """``(N, F)`` the objective of every row."""
        return self.table.objective(self.objective).reshape(len(self.X), self.n_levels)

    @property
    def fidelity_values(self) -> np.ndarray:
        """``(F,)`` the levels' fidelity (the first fidelity column; ``[1.0]`` without fidelity)."""
        return np.ones(1) if self.table.levels is None else self.table.levels[:, 0].copy()

    @property
    def fidelity_costs(self) -> np.ndarray:
        """``(F,)`` mean reveal cost per level: what strategies are told a run at each level costs."""
        return self.table.level_costs

    def empty_table(self) -> RunTable:
        """The table with no rows revealed (what a strategy sees before the first reveal)."""
        return self.table.take(np.zeros(0, dtype=np.int64))

    @classmethod
    def from_run_table(cls, table: RunTable, *, objective="mean", skipped: Sequence[str] = ()) -> Pool:
        """Group a run table's successful rows by mixture (rows above the target level are dropped)."""
        obj = Objective.parse(objective)
        obj.weights(table.target_names)  # a one-line error now if the objective names unknown targets
        skipped = list(skipped) + list(table.skipped)
        ok = table.ok
        above = ok & (table.level < 0)
        if above.any():
            skipped.append(f"{int(above.sum())} rows above the target fidelity are not used")
        F = table.n_levels
        keys = np.round(table.weights, 6)
        groups: dict[bytes, dict[int, list[int]]] = {}
        for r in np.flatnonzero(ok & (table.level >= 0)):
            groups.setdefault(keys[r].tobytes(), {}).setdefault(int(table.level[r]), []).append(int(r))
        full = [g for g in groups.values() if len(g) == F]
        if len(full) < len(groups):
            skipped.append(f"{len(groups) - len(full)} mixtures lack a row at some fidelity and are not in the pool")
        if len(full) < 2:
            raise TableError(f"the pool needs at least 2 mixtures with rows at every fidelity, found {len(full)}")
        X = np.stack([table.weights[g[0][0]] for g in full])
        Y = np.stack([table.targets[g[j]].mean(axis=0) for g in full for j in range(F)])
        cost = np.array([table.cost[g[j]].mean() for g in full for j in range(F)])
        fid = None if table.levels is None else np.tile(table.levels, (len(full), 1))
        curves = None if table.curves is None else [table.curves[g[j][0]] if len(g[j]) == 1 else None
                                                    for g in full for j in range(F)]
        grouped = RunTable(weights=np.repeat(X, F, axis=0), targets=Y, domains=table.domains,
                           target_names=table.target_names, fidelity=fid, fidelity_names=table.fidelity_names,
                           levels=table.levels, level_costs=table.level_costs if table.cost is None else None,
                           cost=cost, curves=curves, quantity=table.quantity,
                           run_ids=[f"c{c}@{j}" for c in range(len(full)) for j in range(F)], source=table.source)
        return cls(grouped, X, obj, skipped)

    @classmethod
    def from_arrays(cls, weights, targets, *, fidelity=None, target_fidelity: float | None = None, costs=None,
                    objective="mean", target_names: Sequence[str] | None = None,
                    domains: Sequence[str] | None = None, skipped: Sequence[str] = ()) -> Pool:
        """Group rows ``weights (n, k)``, ``targets (n,) | (n, m)``, ``fidelity (n,)``, ``costs (n,)``.

        Rows with missing targets or invalid weights are skipped (and listed); a malformed fidelity or
        cost column is a :class:`TableError`. The default cost of a reveal is ``fidelity / target``
        (1 per run without a fidelity).
        """
        W = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        n = len(W)
        fid = _numeric_column(fidelity, n, "fidelity") if fidelity is not None else None
        if fid is not None and np.any(fid <= 0):
            raise TableError(f"fidelity column has non-positive values (row {int(np.argmax(fid <= 0))})")
        c = _numeric_column(costs, n, "cost") if costs is not None else None
        if c is not None and np.any(~(c > 0)):
            r = int(np.argmax(~(c > 0)))
            raise TableError(f"cost column must be positive; row {r} has {c[r]!r}")
        table = RunTable.from_arrays(W, targets, domains=domains, target_names=target_names, fidelity=fid,
                                     fidelity_names=None if fid is None else ["fidelity"], cost=c,
                                     target_fidelity=target_fidelity, source="pool")
        table.skipped = [s.replace("(run_id=", "(id=") for s in table.skipped]
        return cls.from_run_table(table, objective=objective, skipped=skipped)


def _numeric_column(values, n: int, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TableError(f"{what} column is not numeric") from None
    if arr.shape[0] != n:
        raise TableError(f"{what} column has {arr.shape[0]} values for {n} rows")
    if not np.all(np.isfinite(arr)):
        raise TableError(f"{what} column has missing or non-finite values (row {int(np.argmax(~np.isfinite(arr)))})")
    return arr


def load_pool(runs, *, weights, targets, join=None, on: str | None = None, fidelity_column: str | None = None,
              target_fidelity: float | None = None, cost_column: str | None = None, objective="mean") -> Pool:
    """Load a pool from run table files with :func:`mixopt.runs.load_run_table` (as ``mixopt fit`` does).

    runs: one path or several (concatenated into one pool); join: optional per-run target files, one per
    ``runs`` entry, joined on ``on``. weights / targets: column selections (names, ``"a,b"`` or a prefix /
    regex). fidelity_column: numeric fidelity of each run; cost_column: positive cost of each run.
    Raises :class:`TableError` for a missing, non-numeric or non-positive fidelity or cost column.
    """
    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    join = [None] * len(runs) if not join else list(join)
    if len(join) != len(runs):
        raise TableError(f"give one join file per run table ({len(runs)}), got {len(join)}")
    if fidelity_column and fidelity_column == cost_column:
        raise TableError("the fidelity and cost columns must differ")
    if target_fidelity is not None and fidelity_column is None:
        raise TableError("a target fidelity needs a fidelity column")
    tables: list[RunTable] = []
    for path, other in zip(runs, join, strict=True):
        paths = [path] if other is None else [path, other]
        t = load_run_table(paths, weights=weights, targets=targets, fidelity=fidelity_column, cost=cost_column, on=on)
        for line in t.skipped:
            for col, what in ((cost_column, "cost"), (fidelity_column, "fidelity")):
                if col and repr(col) in line:
                    raise TableError(f"{t.source}: {what} column {col!r} must be positive and present "
                                     f"({line.split(':')[0]})")
        tables.append(t)
    first = tables[0]
    for t in tables[1:]:
        if list(t.domains) != list(first.domains) or list(t.target_names) != list(first.target_names):
            raise TableError(f"{t.source}: columns differ from {first.source}; tables must share weights and targets")
    skipped = [f"{t.source} {line}" for t in tables for line in t.skipped]
    return Pool.from_arrays(
        np.vstack([t.weights for t in tables]), np.vstack([t.targets for t in tables]),
        fidelity=np.concatenate([t.fidelity[:, 0] for t in tables]) if fidelity_column else None,
        target_fidelity=target_fidelity, costs=np.concatenate([t.cost for t in tables]) if cost_column else None,
        objective=objective, target_names=list(first.target_names), domains=list(first.domains), skipped=skipped,
    )
