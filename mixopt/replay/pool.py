"""The replay pool: a table of finished runs grouped by mixture, every mixture at every fidelity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixopt.errors import TableError
from mixopt.runs import RunTable, load_run_table, objective_vector

__all__ = ["Pool", "load_pool"]


def _objective_weights(objective, target_names: Sequence[str]) -> np.ndarray:
    m = len(target_names)
    if objective is None or (isinstance(objective, str) and objective == "mean"):
        return np.full(m, 1.0 / m)
    if isinstance(objective, dict):
        unknown = sorted(set(objective) - set(target_names))
        if unknown:
            raise TableError(f"objective names unknown targets {unknown}; targets are {list(target_names)}")
        w = np.array([float(objective.get(t, 0.0)) for t in target_names])
    else:
        w = np.asarray(objective, dtype=np.float64).reshape(-1)
    if w.shape != (m,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise TableError(f"objective weights must be {m} non-negative numbers with a positive sum, got {objective!r}")
    return w / w.sum()


@dataclass
class Pool:
    """The hidden table, grouped by mixture: every candidate has a row at every fidelity.

    Attributes:
        X: (N, k) distinct mixtures (the candidates).
        Y: (N, F, m) per-target losses of each mixture at each fidelity.
        cost: (N, F) cost of revealing each (mixture, fidelity) row.
        fidelity_values: (F,) fidelity values, cheapest first; the last is the target fidelity.
        objective_weights: (m,) weights of the objective ``Y @ w`` (lower is better).
        target_names, domains: column names; ``skipped``: one line per dropped row or mixture.
    """

    X: np.ndarray
    Y: np.ndarray
    cost: np.ndarray
    fidelity_values: np.ndarray
    objective_weights: np.ndarray
    target_names: list[str]
    domains: list[str]
    skipped: list[str] = field(default_factory=list)

    @property
    def objective(self) -> np.ndarray:
        """(N, F) objective of every row."""
        return self.Y @ self.objective_weights

    @property
    def fidelity_costs(self) -> np.ndarray:
        """(F,) mean reveal cost per fidelity: what strategies are told a run at each fidelity costs."""
        return self.cost.mean(axis=0)

    @classmethod
    def from_arrays(
        cls,
        weights,
        targets,
        *,
        fidelity=None,
        target_fidelity: float | None = None,
        costs=None,
        objective="mean",
        target_names: Sequence[str] | None = None,
        domains: Sequence[str] | None = None,
        skipped: Sequence[str] = (),
    ) -> Pool:
        """Group rows ``weights (n, k)``, ``targets (n,) | (n, m)``, ``fidelity (n,)``, ``costs (n,)``.

        Rows with NaN targets or invalid weights are skipped (and listed in ``skipped``); repeated rows of a
        mixture at one fidelity are averaged; mixtures missing a fidelity are dropped. The default cost of
        a reveal is ``fidelity / target_fidelity`` (1 per run without a fidelity). Raises
        :class:`TableError` on a malformed fidelity or cost column or an absent target fidelity.
        """
        W = np.asarray(weights, dtype=np.float64)
        T = np.asarray(targets, dtype=np.float64)
        T = T[:, None] if T.ndim == 1 else T
        n = W.shape[0]
        if W.ndim != 2 or T.ndim != 2 or T.shape[0] != n or n == 0:
            raise TableError(f"weights {W.shape} and targets {T.shape} must be (n, k) and (n, m) with n > 0")
        names = list(target_names) if target_names is not None else [f"target_{j}" for j in range(T.shape[1])]
        doms = list(domains) if domains is not None else [f"domain_{j}" for j in range(W.shape[1])]
        skipped = list(skipped)
        fid = _numeric_column(fidelity, n, "fidelity") if fidelity is not None else np.ones(n)
        if fidelity is not None and np.any(fid <= 0):
            raise TableError(f"fidelity column has non-positive values (row {int(np.argmax(fid <= 0))})")
        c = _numeric_column(costs, n, "cost") if costs is not None else None
        if c is not None and np.any(~(c > 0)):
            r = int(np.argmax(~(c > 0)))
            raise TableError(f"cost column must be positive; row {r} has {c[r]!r}")
        ok = np.ones(n, dtype=bool)
        for r in range(n):
            why = _row_problem(W[r], T[r])
            if why:
                skipped.append(f"row {r}: {why}")
                ok[r] = False
        if not ok.any():
            raise TableError("no valid rows left (all rows have missing targets or invalid weights)")
        W = W / np.where(ok, W.sum(1), 1.0)[:, None]
        levels = np.unique(fid[ok])
        tf = levels[-1] if target_fidelity is None else float(target_fidelity)
        if not np.any(np.isclose(levels, tf)):
            raise TableError(f"target fidelity {target_fidelity} is not in the table's fidelities {levels.tolist()}")
        tf = levels[np.isclose(levels, tf)][0]
        levels = levels[levels <= tf]  # fidelities above the target are not used
        keep = ok & (fid <= tf)
        if (ok & (fid > tf)).any():
            skipped.append(f"{int((ok & (fid > tf)).sum())} rows above the target fidelity {tf:g} are not used")
        if c is None:
            c = fid / tf
        keys = np.round(W, 6)
        groups: dict[bytes, dict[int, list[int]]] = {}
        for r in np.flatnonzero(keep):
            groups.setdefault(keys[r].tobytes(), {}).setdefault(int(np.searchsorted(levels, fid[r])), []).append(r)
        F = len(levels)
        rows = [g for g in groups.values() if len(g) == F]
        if len(rows) < len(groups):
            skipped.append(f"{len(groups) - len(rows)} mixtures lack a row at some fidelity and are not in the pool")
        if len(rows) < 2:
            raise TableError(f"the pool needs at least 2 mixtures with rows at every fidelity, found {len(rows)}")
        X = np.stack([W[g[0][0]] for g in rows])
        Y = np.stack([[T[g[j]].mean(axis=0) for j in range(F)] for g in rows])
        cost = np.stack([[c[g[j]].mean() for j in range(F)] for g in rows])
        return cls(X, Y, cost, levels.astype(np.float64), _objective_weights(objective, names), names, doms, skipped)

    @classmethod
    def from_run_table(cls, table, *, costs=None, target_fidelity=None, objective="mean") -> Pool:
        """From a :class:`mixopt.runs.RunTable` (its single fidelity column, if any, is the fidelity)."""
        fid = getattr(table, "fidelity", None)
        if fid is not None:
            fid = np.asarray(fid, dtype=np.float64)
            if fid.ndim == 2 and fid.shape[1] != 1:
                raise TableError(f"replay needs one fidelity column, the table has {fid.shape[1]}")
            fid = fid.reshape(-1)
        return cls.from_arrays(
            table.weights, table.targets, fidelity=fid, target_fidelity=target_fidelity, costs=costs,
            objective=objective, target_names=list(table.target_names), domains=list(table.domains),
            skipped=list(getattr(table, "skipped", []) or []),
        )


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


def _row_problem(w: np.ndarray, t: np.ndarray) -> str | None:
    if not np.all(np.isfinite(t)):
        return "missing or non-finite target"
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        return "missing or negative weight"
    if abs(w.sum() - 1.0) > 0.05:
        return f"weights sum to {w.sum():.4g}, not 1"
    return None


def load_pool(
    runs,
    *,
    weights,
    targets,
    join=None,
    on: str | None = None,
    fidelity_column: str | None = None,
    target_fidelity: float | None = None,
    cost_column: str | None = None,
    objective="mean",
) -> Pool:
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
    extra = [c for c in (fidelity_column, cost_column) if c]
    if fidelity_column and fidelity_column == cost_column:
        raise TableError("the fidelity and cost columns must differ")
    tables: list[RunTable] = []
    for path, other in zip(runs, join, strict=True):
        paths = [path] if other is None else [path, other]
        try:
            t = load_run_table(paths, weights=weights, targets=targets, fidelity=extra or None, on=on)
        except TableError as e:
            msg = str(e)
            if cost_column and repr(cost_column) in msg:
                msg = msg.replace("fidelity column", "cost column")
            raise TableError(msg) from None
        for line in t.skipped:
            if cost_column and repr(cost_column) in line:
                raise TableError(f"{t.source}: cost column {cost_column!r} must be positive and present "
                                 f"({line.split(':')[0]})")
        tables.append(t)
    first = tables[0]
    for t in tables[1:]:
        if list(t.domains) != list(first.domains) or list(t.target_names) != list(first.target_names):
            raise TableError(f"{t.source}: columns differ from {first.source}; tables must share weights and targets")
    F = np.vstack([t.fidelity for t in tables]) if extra else None
    fid = F[:, extra.index(fidelity_column)] if fidelity_column else None
    costs = F[:, extra.index(cost_column)] if cost_column else None
    if target_fidelity is not None and fidelity_column is None:
        raise TableError("a target fidelity needs a fidelity column")
    skipped = [f"{t.source} {line}" for t in tables for line in t.skipped]
    return Pool.from_arrays(
        np.vstack([t.weights for t in tables]), np.vstack([t.targets for t in tables]), fidelity=fid,
        target_fidelity=target_fidelity, costs=costs, objective=objective_vector(objective, first.target_names),
        target_names=list(first.target_names), domains=list(first.domains), skipped=skipped,
    )
