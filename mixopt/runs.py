"""The run table: every run the decisions see, one row per run, from any source.

A :class:`RunTable` is the one run model of mixopt. The search builds it from its proxies' run records
(:meth:`RunTable.from_records`: mixture, fidelity, per-domain losses, the eval curve of each run, cost,
status), ``mixopt fit`` / ``mixopt replay`` from published tables (:func:`load_run_table`: CSV / parquet /
JSON lines, one file or several joined on a key column), and replay reveals rows of one to the strategy
under test (:meth:`RunTable.take`). Strategies, surrogates and the proposer read nothing else.

Rows that fail validation (NaN or non-finite values, negative weights, weights summing further than
``sum_tol`` from 1, non-positive fidelity or cost) are skipped and listed in ``skipped`` -- never silently
used. Tables read from files (:func:`load_run_table`, so ``mixopt fit`` and ``mixopt replay``) also skip
rows whose targets fall outside ``target_range`` (default :data:`TARGET_RANGE`, ``[0, 1e6]``: a loss is
never negative, and one of 1e300 would dominate every fit). A malformed table raises a one-line
:class:`~mixopt.errors.TableError`; so do duplicate column names (which pandas would silently rename).

Column selection (``weights=``, ``targets=``, ``fidelity=``, ``cost=``): a list of names, a
comma-separated string of exact names, or a regular expression matched at the start of each column name
(so a prefix works: ``"train_"``).

>>> import pandas as pd
>>> df = pd.DataFrame({"w_a": [0.5, 0.2], "w_b": [0.5, 0.8], "loss_a": [3.1, 3.4], "loss_b": [2.9, 2.7]})
>>> t = RunTable.from_frame(df, weights="w_", targets="loss_")
>>> t.domains, t.target_names, t.weights.shape
(['a', 'b'], ['loss_a', 'loss_b'], (2, 2))
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mixopt.errors import TableError

__all__ = ["TARGET_RANGE", "RunTable", "load_run_table", "match_rows", "match_targets_to_domains", "select_columns"]

_SEP = "_/.:- "
TARGET_RANGE = (0.0, 1e6)  # plausible losses: rows of a file table outside it are skipped (and listed)


def select_columns(columns: Sequence[str], spec, *, what: str) -> list[str]:
    """Columns chosen by ``spec`` (list of names, ``"a,b,c"`` exact names, or a regex/prefix)."""
    cols = [str(c) for c in columns]
    if spec is None:
        return []
    if not isinstance(spec, str):
        names = [str(s) for s in spec]
    elif "," in spec:
        names = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        names = None
    if names is not None:
        missing = [n for n in names if n not in cols]
        if missing:
            raise TableError(f"{what} column(s) {missing} not in the table (columns: {_preview(cols)})")
        return names
    try:
        rx = re.compile(spec)
    except re.error as e:
        raise TableError(f"{what}: {spec!r} is not a valid regular expression ({e})") from None
    chosen = [c for c in cols if rx.match(c)]
    if not chosen:
        raise TableError(f"no {what} column matches {spec!r} (columns: {_preview(cols)})")
    return chosen


def _preview(cols: list[str], n: int = 8) -> str:
    return ", ".join(cols[:n]) + (f", ... ({len(cols)} in all)" if len(cols) > n else "")


def _short_names(cols: list[str]) -> list[str]:
    """Strip the common prefix and suffix (cut at a separator) from column names: domain names."""
    if len(cols) < 2:
        return list(cols)
    pre = len(_common_prefix(cols))
    while pre > 0 and cols[0][pre - 1] not in _SEP:
        pre -= 1
    suf = len(_common_prefix([c[::-1] for c in cols]))
    while suf > 0 and cols[0][len(cols[0]) - suf] not in _SEP:
        suf -= 1
    out = [c[pre: len(c) - suf] for c in cols]
    return out if all(out) and len(set(out)) == len(out) else list(cols)


def _common_prefix(strs: list[str]) -> str:
    s1, s2 = min(strs), max(strs)
    i = 0
    while i < min(len(s1), len(s2)) and s1[i] == s2[i]:
        i += 1
    return s1[:i]


def match_targets_to_domains(target_names: Sequence[str], domains: Sequence[str]) -> list[int] | None:
    """For each target, the index of the domain whose name it contains as a whole word (delimited by
    non-alphanumerics; the longest match wins).

    Returns ``None`` if any target names no domain (e.g. a mean or downstream-task target).
    """
    out = []
    pats = [re.compile(r"(?:^|[^a-z0-9])" + re.escape(d.lower()) + r"(?:$|[^a-z0-9])") if d else None
            for d in domains]
    for t in target_names:
        tl = t.lower()
        hits = [i for i, rx in enumerate(pats) if rx is not None and rx.search(tl)]
        if not hits:
            return None
        out.append(max(hits, key=lambda i: len(domains[i])))
    return out


@dataclass
class RunTable:
    """Runs, one row each: mixture, fidelity, per-target results, cost, status and eval curves.

    Attributes:
        weights: ``(n, k)`` mixtures on the simplex; ``domains`` names the ``k`` columns.
        targets: ``(n, m)`` per-target results (losses or any recorded metric; NaN where a run failed);
            ``target_names`` names them.
        fidelity: ``(n, f)`` fidelity columns (tokens, model size, ...) or ``None``; ``fidelity_names``.
        levels: ``(F, f)`` the fidelity levels a strategy may choose from, cheapest first; the last is the
            **target fidelity**, where the objective is judged. Default: the distinct fidelity rows,
            ordered by size, or ``None`` without fidelity columns (one level).
        level_costs: ``(F,)`` the prior cost of one run at each level (default: the mean ``cost`` per level,
            or the product of the fidelity values relative to the target's);
            :meth:`estimated_level_costs` updates it from the observed costs.
        cost: ``(n,)`` what each run cost (FLOPs, seconds, ...; NaN where unknown; default its level's
            prior cost).
        status: ``"ok"`` or ``"failed"`` per row (default all ok).
        curves: per row ``(x (p,), Y (p, m))``: the targets at ``p`` evaluation points during the run, ``x``
            in the units of the fidelity column named by ``quantity`` (tokens seen), or ``None``.
        run_ids, skipped (``"<row>: <reason>"`` for every input row that was rejected), source.

    >>> t = RunTable.from_arrays([[0.5, 0.5], [0.2, 0.8]], [[3.1], [2.9]], domains=["a", "b"],
    ...                          target_names=["loss"])
    >>> len(t), t.n_levels, t.objective().tolist()
    (2, 1, [3.1, 2.9])
    """

    weights: np.ndarray
    targets: np.ndarray
    domains: list[str]
    target_names: list[str]
    fidelity: np.ndarray | None = None
    fidelity_names: list[str] = field(default_factory=list)
    levels: np.ndarray | None = None
    level_costs: np.ndarray | None = None
    cost: np.ndarray | None = None
    status: list[str] | None = None
    curves: list | None = None
    quantity: str | None = None
    run_ids: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        W = np.asarray(self.weights, dtype=np.float64).reshape(-1, len(self.domains))
        n = len(W)
        Y = np.asarray(self.targets, dtype=np.float64).reshape(n, len(self.target_names))
        self.weights, self.targets = W, Y
        self.domains, self.target_names = [str(d) for d in self.domains], [str(t) for t in self.target_names]
        self.status = ["ok"] * n if self.status is None else [str(s) for s in self.status]
        self.run_ids = [str(i) for i in self.run_ids] if self.run_ids else [str(i) for i in range(n)]
        if len(self.status) != n or len(self.run_ids) != n:
            raise TableError(f"run table: {n} rows but {len(self.status)} statuses / {len(self.run_ids)} run ids")
        if self.curves is not None and len(self.curves) != n:
            raise TableError(f"run table: {n} rows but {len(self.curves)} curves")
        if self.fidelity is not None:
            F = np.asarray(self.fidelity, dtype=np.float64)
            F = F if F.ndim == 2 else F.reshape(n, -1)
            if len(self.fidelity_names) != F.shape[1]:
                self.fidelity_names = [f"fidelity_{j}" for j in range(F.shape[1])]
            self.fidelity = F
            if self.levels is None:
                self.levels = _default_levels(F[np.array(self.ok, dtype=bool)] if any(self.ok) else F)
            self.levels = np.asarray(self.levels, dtype=np.float64).reshape(-1, F.shape[1])
            self.level = _level_index(F, self.levels)
        else:
            if self.levels is not None:
                raise TableError("run table: fidelity levels given without fidelity columns")
            self.level = np.zeros(n, dtype=np.int64)
        if self.cost is not None:
            self.cost = np.asarray(self.cost, dtype=np.float64).reshape(n)
        if self.level_costs is None:
            self.level_costs = self._default_level_costs()
        self.level_costs = np.asarray(self.level_costs, dtype=np.float64).reshape(self.n_levels)
        if not (np.isfinite(self.level_costs).all() and (self.level_costs > 0).all()):
            raise TableError(f"run table: level costs must be positive, got {self.level_costs.tolist()}")
        if self.cost is None:
            self.cost = np.where(self.level >= 0, self.level_costs[np.clip(self.level, 0, None)], np.nan)

    def _default_level_costs(self) -> np.ndarray:
        if self.cost is not None:
            out = np.array([np.nanmean(self.cost[self.level == j]) if np.any(self.level == j) else np.nan
                            for j in range(self.n_levels)])
            if np.isfinite(out).all() and (out > 0).all():
                return out
        if self.levels is None:
            return np.ones(1)
        return np.prod(self.levels / self.levels[-1], axis=1)

    # ------------------------------------------------------------------ shape and views
    def __len__(self) -> int:
        return len(self.weights)

    @property
    def ok(self) -> np.ndarray:
        """``(n,)`` bool: the run finished and every target is finite."""
        return np.array([s == "ok" for s in self.status], dtype=bool) & np.isfinite(self.targets).all(axis=1)

    @property
    def n_levels(self) -> int:
        return 1 if self.levels is None else len(self.levels)

    @property
    def target_level(self) -> int:
        """Index of the target fidelity in :attr:`levels` (the last)."""
        return self.n_levels - 1

    @property
    def target_fidelity(self) -> np.ndarray | None:
        """``(f,)`` the target fidelity's values (``None`` without fidelity columns)."""
        return None if self.levels is None else self.levels[-1].copy()

    @property
    def X(self) -> np.ndarray:
        """Surrogate input ``(n, k + f)``: weights then fidelity columns."""
        return self.weights if self.fidelity is None else np.hstack([self.weights, self.fidelity])

    @property
    def fidelity_columns(self) -> list[int] | None:
        """Indices of the fidelity columns in :attr:`X` (``None`` without fidelity)."""
        if self.fidelity is None:
            return None
        k = self.weights.shape[1]
        return list(range(k, k + self.fidelity.shape[1]))

    def take(self, rows) -> RunTable:
        """The table of ``rows`` (indices or a bool mask), same domains, targets and fidelity levels."""
        idx = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.int64).ravel()
        return RunTable(
            weights=self.weights[idx], targets=self.targets[idx], domains=self.domains,
            target_names=self.target_names, fidelity=None if self.fidelity is None else self.fidelity[idx],
            fidelity_names=self.fidelity_names, levels=self.levels, level_costs=self.level_costs,
            cost=self.cost[idx], status=[self.status[i] for i in idx],
            curves=None if self.curves is None else [self.curves[i] for i in idx], quantity=self.quantity,
            run_ids=[self.run_ids[i] for i in idx], skipped=list(self.skipped), source=self.source)

    def ok_runs(self) -> RunTable:
        """The table of the successful runs only."""
        return self.take(self.ok)

    def at_level(self, level: int) -> np.ndarray:
        """``(n,)`` bool: successful runs at fidelity level ``level`` (``-1``: the target)."""
        return self.ok & (self.level == (level % self.n_levels))

    def revealed(self, candidates: np.ndarray, level: int) -> np.ndarray:
        """``(N,)`` bool: which of the ``candidates`` ``(N, k)`` already have a row at ``level``."""
        mask = np.zeros(len(candidates), dtype=bool)
        at = self.level == (level % self.n_levels)
        if np.any(at):
            idx = match_rows(candidates, self.weights[at])
            mask[idx[idx >= 0]] = True
        return mask

    def estimated_level_costs(self) -> np.ndarray:
        """``(F,)`` what a run at each level costs, as observed so far: the mean ``cost`` of the successful
        runs at a level; a level with no run yet gets its prior ``level_costs`` scaled by the median ratio
        of observed to prior cost over the levels that have runs (so observed costs may be in another unit,
        e.g. seconds against prior FLOPs)."""
        prior = np.asarray(self.level_costs, dtype=np.float64)
        obs = np.full(self.n_levels, np.nan)
        for j in range(self.n_levels):
            c = self.cost[self.at_level(j)]
            c = c[np.isfinite(c) & (c > 0)]
            if c.size:
                obs[j] = float(c.mean())
        have = np.isfinite(obs)
        if not have.any():
            return prior.copy()
        ratio = float(np.median(obs[have] / prior[have]))
        return np.where(have, obs, prior * ratio)

    def objective(self, objective="mean") -> np.ndarray:
        """``(n,)`` the objective of every run (NaN for failed runs); see :class:`mixopt.objective.Objective`."""
        from mixopt.objective import Objective

        return Objective.parse(objective).values(self.targets, self.target_names)

    def target_domains(self) -> list[int] | None:
        """Weight column of each target's domain, matched by name (``None`` when they do not match)."""
        return match_targets_to_domains(self.target_names, self.domains)

    def fingerprint(self) -> str:
        """A short hash of the table's content (rows, targets, levels): equal tables, equal fingerprints."""
        h = hashlib.sha256()
        for a in (self.weights, self.targets, self.level, self.level_costs,
                  self.fidelity if self.fidelity is not None else np.zeros(0)):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update("|".join(self.status).encode())
        if self.curves is not None:
            for c in self.curves:
                if c is not None:
                    h.update(np.ascontiguousarray(c[0]).tobytes() + np.ascontiguousarray(c[1]).tobytes())
        return h.hexdigest()[:16]

    def summary(self) -> str:
        fid = f", fidelity {self.fidelity_names} at {self.n_levels} level(s)" if self.fidelity is not None else ""
        failed = int((~self.ok).sum())
        return (f"{len(self)} runs x {len(self.domains)} domains -> {len(self.target_names)} targets{fid}"
                + (f", {failed} failed" if failed else "") + f" ({len(self.skipped)} rows skipped)")

    # -- builders -------------------------------------------------------------------------------------
    @classmethod
    def empty(cls, domains: Sequence[str], target_names: Sequence[str], *, fidelity_names=None, levels=None,
              level_costs=None, quantity: str | None = None) -> RunTable:
        """A table with no runs yet (the fidelity levels a search will choose from may already be known)."""
        f = 0 if levels is None else np.asarray(levels, float).reshape(len(levels), -1).shape[1]
        return cls(weights=np.zeros((0, len(domains))), targets=np.zeros((0, len(target_names))),
                   domains=list(domains), target_names=list(target_names),
                   fidelity=None if levels is None else np.zeros((0, f)), fidelity_names=list(fidelity_names or []),
                   levels=levels, level_costs=level_costs, quantity=quantity)

    @classmethod
    def from_arrays(cls, weights, targets, *, domains: Sequence[str] | None = None,
                    target_names: Sequence[str] | None = None, fidelity=None, fidelity_names=None, cost=None,
                    target_fidelity=None, run_ids=None, sum_tol: float = 0.05, source: str = "arrays") -> RunTable:
        """Validate rows of arrays (``weights (n, k)``, ``targets (n,) | (n, m)``, ``fidelity (n,) | (n, f)``,
        ``cost (n,)``) into a table; invalid rows are skipped and listed, as for files."""
        W = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        T = np.asarray(targets, dtype=np.float64)
        T = T[:, None] if T.ndim == 1 else T
        n = W.shape[0]
        if W.ndim != 2 or T.ndim != 2 or T.shape[0] != n or n == 0:
            raise TableError(f"weights {W.shape} and targets {T.shape} must be (n, k) and (n, m) with n > 0")
        domains = list(domains) if domains is not None else [f"domain_{j}" for j in range(W.shape[1])]
        target_names = list(target_names) if target_names is not None else [f"target_{j}" for j in range(T.shape[1])]
        cols = {f"w:{d}": W[:, j] for j, d in enumerate(domains)} | {f"y:{t}": T[:, j] for j, t in enumerate(target_names)}
        F = None
        if fidelity is not None:
            F = np.asarray(fidelity, dtype=np.float64)
            F = F[:, None] if F.ndim == 1 else F
            if F.shape[0] != n:
                raise TableError(f"fidelity column has {F.shape[0]} values for {n} rows")
            fidelity_names = list(fidelity_names or [f"fidelity_{j}" for j in range(F.shape[1])])
            cols |= {f"f:{c}": F[:, j] for j, c in enumerate(fidelity_names)}
        if cost is not None:
            cvals = np.asarray(cost, dtype=np.float64).ravel()
            if cvals.shape != (n,):
                raise TableError(f"cost column has {cvals.size} values for {n} rows")
            cols["cost"] = cvals
        df = pd.DataFrame(cols)
        df["run_id"] = [str(r) for r in run_ids] if run_ids is not None else [str(i) for i in range(n)]
        t = cls.from_frame(df, weights=[f"w:{d}" for d in domains], targets=[f"y:{t}" for t in target_names],
                           fidelity=None if F is None else [f"f:{c}" for c in fidelity_names],
                           cost="cost" if cost is not None else None, target_fidelity=target_fidelity,
                           id_column="run_id", sum_tol=sum_tol, source=source)
        return _renamed(t, domains, target_names, fidelity_names if F is not None else [])

    @classmethod
    def from_frame(cls, df: pd.DataFrame, *, weights, targets, fidelity=None, cost=None, target_fidelity=None,
                   id_column: str | None = None, sum_tol: float = 0.05, source: str = "table",
                   target_range: tuple[float, float] | None = None) -> RunTable:
        """Build from a DataFrame; see the module docstring for column selection and row validation.

        cost: the column of each run's cost (positive). target_fidelity: the fidelity the objective is
        judged at (one value per fidelity column; default the most expensive level); levels above it are
        kept as evidence but not offered to strategies. target_range: ``(lo, hi)``: rows with a target
        outside it are skipped (None: any finite value).
        """
        if len(df) == 0:
            raise TableError(f"{source}: the table has no rows")
        dup = sorted({str(c) for c in df.columns if list(map(str, df.columns)).count(str(c)) > 1})
        if dup:
            raise TableError(f"{source}: duplicate column name(s) {dup}; give every column its own name")
        skip = {id_column} if id_column else set()
        cols = [c for c in map(str, df.columns) if c not in skip]
        df = df.rename(columns=str)
        wcols = select_columns(cols, weights, what="weight")
        tcols = [c for c in select_columns(cols, targets, what="target") if c not in wcols]
        if not tcols:
            raise TableError(f"{source}: the target columns are all weight columns")
        fcols = [c for c in select_columns(cols, fidelity, what="fidelity") if c not in wcols + tcols]
        if fidelity is not None and not fcols:
            raise TableError(f"{source}: the fidelity columns overlap the weight/target columns")
        ccols = select_columns(cols, [cost] if isinstance(cost, str) else cost, what="cost") if cost else []
        if len(ccols) > 1:
            raise TableError(f"{source}: give one cost column, got {ccols}")
        if ccols and ccols[0] in wcols + tcols + fcols:
            raise TableError(f"{source}: the cost column {ccols[0]!r} is also a weight, target or fidelity column")
        num = {c: _numeric(df[c], c, source) for c in wcols + tcols + fcols + ccols}
        W = np.column_stack([num[c] for c in wcols])
        Y = np.column_stack([num[c] for c in tcols])
        F = np.column_stack([num[c] for c in fcols]) if fcols else None
        C = num[ccols[0]] if ccols else None
        ids = [str(v) for v in df[id_column]] if id_column and id_column in df else [str(i) for i in df.index]
        keep, skipped = [], []
        for i in range(len(W)):
            reason = _row_problem(W[i], Y[i], None if F is None else F[i], None if C is None else C[i], sum_tol,
                                  wcols, tcols, fcols, ccols, target_range)
            if reason:
                skipped.append(f"row {i}" + (f" ({id_column}={ids[i]})" if id_column else "") + f": {reason}")
            else:
                keep.append(i)
        if not keep:
            raise TableError(f"{source}: no valid rows ({len(W)} rejected; first: {skipped[0]})")
        W = W[keep]
        F = None if F is None else F[keep]
        C = None if C is None else C[keep]
        levels = None
        if F is not None:
            levels = _default_levels(F, None if C is None else C)
            if target_fidelity is not None:
                tf = np.broadcast_to(np.asarray(target_fidelity, dtype=np.float64).ravel(), (F.shape[1],))
                hit = np.flatnonzero(np.isclose(levels, tf, rtol=1e-9, atol=0).all(axis=1))
                if not hit.size:
                    raise TableError(f"{source}: target fidelity {tf.tolist()} is not among the table's "
                                     f"fidelities {levels.tolist()}")
                above = int(len(levels) - 1 - hit[0])
                levels = levels[: hit[0] + 1]
                if above:
                    skipped.append(f"{above} fidelity level(s) above the target {tf.tolist()} are evidence only")
        return cls(weights=W / W.sum(axis=1, keepdims=True), targets=Y[keep], domains=_short_names(wcols),
                   target_names=tcols, fidelity=F, fidelity_names=fcols, levels=levels, cost=C,
                   skipped=skipped, run_ids=[ids[i] for i in keep], source=source)

    @classmethod
    def from_records(cls, records, *, domains: Sequence[str] | None = None, targets: Sequence[str] | None = None,
                     fidelity: Sequence[str] | None = None, levels=None, level_costs=None,
                     curves: bool = True, quantity: str | None = "tokens", cost: str | None = "flops",
                     keep_failed: bool = False) -> RunTable:
        """Build from run records (``RunRecord`` objects, their ``to_dict()`` dicts, or dicts like them).

        Each record gives ``run_id``, ``weights {domain: w}``, ``status``, ``final_loss {target: value}``,
        ``tokens_seen`` / ``val_loss {target: [...]}`` (the eval curve) and the fields named by
        ``fidelity`` (e.g. ``["tokens", "n_params"]``) and ``cost``. With ``levels`` (``(F, f)``, the
        fidelity levels of a search), a record may give its ``level`` index instead of fidelity fields.
        domains / targets: order of weight and result keys (default: the first ok record's order).
        curves: keep each run's eval curve (``x`` = ``tokens_seen``, in the units of ``quantity``).
        keep_failed: keep failed runs as rows with NaN targets (``status="failed"``) instead of listing
        them in ``skipped``.
        """
        recs = [r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in records]
        ok = [r for r in recs if r.get("status", "ok") == "ok"]
        if not recs or (not ok and not keep_failed):
            raise TableError(f"no successful runs among {len(recs)} records")
        first = ok[0] if ok else recs[0]
        domains = list(domains or first["weights"].keys())
        targets = list(targets or (first.get("final_loss") or {}).keys() or domains)
        fid = list(fidelity or [])
        lv = None if levels is None else np.asarray(levels, dtype=np.float64).reshape(-1, len(fid))
        rows, skipped = [], []
        for r in recs:
            rid = str(r.get("run_id", len(rows)))
            failed = r.get("status", "ok") != "ok"
            if failed and not keep_failed:
                skipped.append(f"run {rid}: status {r.get('status')} ({r.get('reason')})")
                continue
            try:
                w = np.array([float(r["weights"].get(d, 0.0)) for d in domains])
                if lv is not None and r.get("level") is not None:
                    f = lv[int(r["level"])]
                else:
                    f = np.array([float(r[c]) for c in fid])
                y = np.full(len(targets), np.nan) if failed else np.array([float(r["final_loss"][t]) for t in targets])
                c = float(r[cost]) if cost and r.get(cost) is not None else np.nan
                curve = None
                if curves and not failed and r.get("tokens_seen") and all(t in (r.get("val_loss") or {}) for t in targets):
                    x = np.asarray(r["tokens_seen"], dtype=np.float64)
                    Yc = np.column_stack([np.asarray(r["val_loss"][t], dtype=np.float64) for t in targets])
                    if Yc.shape[0] == len(x) and np.isfinite(Yc).all() and (x > 0).all():
                        curve = (x, Yc)
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
                skipped.append(f"run {rid}: missing or bad field {e}")
                continue
            reason = None if failed else _row_problem(w, y, f if fid else None, None, 0.05, domains, targets, fid, [])
            if reason:
                skipped.append(f"run {rid}: {reason}")
                continue
            rows.append((rid, "failed" if failed else "ok", w / w.sum() if w.sum() > 0 else w, y, f, c, curve))
        if not rows:
            raise TableError(f"no usable runs among {len(recs)} records ({skipped[0] if skipped else ''})")
        costs = np.array([r[5] for r in rows])
        return cls(weights=np.stack([r[2] for r in rows]), targets=np.stack([r[3] for r in rows]), domains=domains,
                   target_names=targets, fidelity=np.stack([r[4] for r in rows]) if fid else None,
                   fidelity_names=fid, levels=lv, level_costs=level_costs,
                   cost=costs if np.isfinite(costs).any() else None, status=[r[1] for r in rows],
                   curves=[r[6] for r in rows] if curves else None,
                   quantity=quantity if quantity in fid else None, run_ids=[r[0] for r in rows],
                   skipped=skipped, source="run records")


def match_rows(candidates: np.ndarray, X: np.ndarray, decimals: int = 8) -> np.ndarray:
    """For each row of ``X`` ``(n, k)``, the index of the equal row of ``candidates`` ``(N, k)``, or -1.

    Rows are compared after rounding to ``1e-decimals``, so a mixture that came from the candidates matches.
    """
    def keys(A):
        return [row.tobytes() for row in np.round(np.asarray(A, dtype=np.float64), decimals) + 0.0]

    index: dict[bytes, int] = {}
    for i, key in enumerate(keys(candidates)):
        index.setdefault(key, i)
    return np.array([index.get(key, -1) for key in keys(X)], dtype=np.int64)


def _default_levels(F: np.ndarray, cost: np.ndarray | None = None) -> np.ndarray:
    """Distinct fidelity rows, cheapest first (by mean cost when known, else by size relative to the max)."""
    levels = np.unique(F, axis=0)
    if cost is not None:
        idx = _level_index(F, levels)
        key = np.array([np.mean(cost[idx == j]) for j in range(len(levels))])
    else:
        key = np.prod(levels / np.abs(levels).max(axis=0).clip(1e-300), axis=1)
    return levels[np.lexsort((np.arange(len(levels)), key))]


def _level_index(F: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``(n,)`` index of each fidelity row in ``levels`` (-1 when it is none of them)."""
    out = np.full(len(F), -1, dtype=np.int64)
    for j, lv in enumerate(levels):
        out[np.isclose(F, lv[None, :], rtol=1e-9, atol=0).all(axis=1) & (out < 0)] = j
    return out


def _numeric(col: pd.Series, name: str, source: str) -> np.ndarray:
    if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
        conv = pd.to_numeric(col, errors="coerce")
        bad = conv.isna() & col.notna() & (col.astype(str).str.strip() != "")
        if bad.any():
            raise TableError(f"{source}: column {name!r} is not numeric (e.g. {col[bad].iloc[0]!r})")
        col = conv
    return col.to_numpy(dtype=float)


def _renamed(t: RunTable, domains, target_names, fidelity_names) -> RunTable:
    t.domains, t.target_names, t.fidelity_names = list(domains), list(target_names), list(fidelity_names)
    return t


def _row_problem(w, y, f, c, tol, wcols, tcols, fcols, ccols, target_range=None) -> str | None:
    if np.isnan(w).any():
        return f"missing weight in {wcols[int(np.argmax(np.isnan(w)))]!r}"
    if not np.isfinite(w).all():
        return "infinite weight"
    if (w < 0).any():
        j = int(np.argmax(w < 0))
        return f"negative weight {w[j]:.4g} in {wcols[j]!r}"
    s = w.sum()
    if abs(s - 1.0) > tol:
        return f"weights sum to {s:.4g} (more than {tol} from 1)"
    if not np.isfinite(y).all():
        return f"missing or non-finite target {tcols[int(np.argmax(~np.isfinite(y)))]!r}"
    if target_range is not None:
        lo, hi = target_range
        out = (y < lo) | (y > hi)
        if out.any():
            j = int(np.argmax(out))
            return f"target {tcols[j]!r} = {y[j]:.4g} is outside [{lo:g}, {hi:g}] (not a plausible loss)"
    if f is not None and (not np.isfinite(f).all() or (f <= 0).any()):
        return f"non-positive or missing fidelity in {fcols[int(np.argmax(~np.isfinite(f) | (f <= 0)))]!r}"
    if c is not None and not (np.isfinite(c) and c > 0):
        return f"non-positive or missing cost in {ccols[0]!r}"
    return None



def _read(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise TableError(f"{path}: no such file")
    if path.is_dir():
        raise TableError(f"{path}: is a folder, not a table file")
    suffix = path.suffix.lower()
    header = None
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffix in (".jsonl", ".ndjson"):
            df = pd.read_json(path, lines=True)
        else:
            kw = {"sep": None, "engine": "python"} if suffix == ".tsv" else {}
            df = pd.read_csv(path, **kw)
            header = pd.read_csv(path, header=None, nrows=1, dtype=str, **kw).iloc[0].tolist()  # as written
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise TableError(f"{path}: cannot read as a table ({str(e).splitlines()[0]})") from None
    header = [str(c) for c in (header if header is not None else df.columns)]
    dup = sorted({c for c in header if header.count(c) > 1})  # pandas renames CSV duplicates to 'x.1'
    if dup:
        raise TableError(f"{path}: duplicate column name(s) {dup}; give every column its own name")
    return df


def load_run_table(paths, *, weights, targets, fidelity=None, cost=None, target_fidelity=None,
                   on: str | None = None, sum_tol: float = 0.05,
                   target_range: tuple[float, float] | None = TARGET_RANGE) -> RunTable:
    """Load runs from one file or several joined on a key column (CSV, TSV, parquet, JSON lines).

    paths: a path or a list of paths. With several files, rows are inner-joined on ``on`` (default: the
    one column name every file shares); rows present in only some files are reported in ``skipped``.
    weights / targets / fidelity / cost: column selections (see :func:`select_columns`); target_fidelity,
    target_range (default ``[0, 1e6]``; None accepts any finite target): see :meth:`RunTable.from_frame`.
    """
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not paths:
        raise TableError("no run table given")
    frames = [_read(p) for p in paths]
    source = " + ".join(p.name for p in paths)
    extra_skipped = []
    if len(frames) == 1:
        df = frames[0]
        id_col = on if on and on in df.columns else None
        if on and id_col is None:
            raise TableError(f"{paths[0]}: join column {on!r} not found")
    else:
        if on is None:
            common = set(map(str, frames[0].columns)).intersection(*(set(map(str, f.columns)) for f in frames[1:]))
            if len(common) != 1:
                raise TableError(
                    f"{source}: cannot guess the join column (shared columns: {sorted(common) or 'none'}); "
                    "pass on=<column> (--on)"
                )
            on = common.pop()
        df = None
        for p, f in zip(paths, frames, strict=True):
            f = f.rename(columns=str)
            if on not in f.columns:
                raise TableError(f"{p}: join column {on!r} not found")
            if f[on].duplicated().any():
                raise TableError(f"{p}: join column {on!r} has duplicate values")
            if df is None:
                df = f
                continue
            dup = (set(df.columns) & set(f.columns)) - {on}
            if dup:
                raise TableError(f"{p}: column(s) {sorted(dup)[:5]} appear in more than one file")
            keys_l, keys_r = set(df[on]), set(f[on])
            extra_skipped += [f"{on}={k}: only in some files" for k in sorted(keys_l ^ keys_r, key=str)]
            df = df.merge(f, on=on, how="inner")
        df = df.reset_index(drop=True)
        id_col = on
    t = RunTable.from_frame(df, weights=weights, targets=targets, fidelity=fidelity, cost=cost,
                            target_fidelity=target_fidelity, id_column=id_col, sum_tol=sum_tol, source=source,
                            target_range=target_range)
    t.skipped = extra_skipped + t.skipped
    return t
