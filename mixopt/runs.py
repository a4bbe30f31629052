"""Run tables: past proxy runs as arrays a surrogate can fit, from files or from run records.

A :class:`RunTable` holds ``weights (n, k)`` on the simplex, ``targets (n, m)`` losses and optional
``fidelity (n, f)`` columns (tokens, steps, model size). It is built the same way whether the runs come
from a published table (:func:`load_run_table`: CSV/parquet, one file or several joined on a key column)
or from the search job's own records (:meth:`RunTable.from_records`). Rows that fail validation (NaN or
non-finite values, negative weights, weights summing further than ``sum_tol`` from 1, non-positive
fidelity) are skipped and listed in ``skipped`` — never silently used. A malformed table raises a one-line
:class:`~mixopt.errors.TableError`.

Column selection (``weights=``, ``targets=``, ``fidelity=``): a list of names, a comma-separated string of
exact names, or a regular expression matched at the start of each column name (so a prefix works:
``"train_"``).

>>> import pandas as pd
>>> df = pd.DataFrame({"w_a": [0.5, 0.2], "w_b": [0.5, 0.8], "loss_a": [3.1, 3.4], "loss_b": [2.9, 2.7]})
>>> t = RunTable.from_frame(df, weights="w_", targets="loss_")
>>> t.domains, t.target_names, t.weights.shape
(['a', 'b'], ['loss_a', 'loss_b'], (2, 2))
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mixopt.errors import TableError

__all__ = ["RunTable", "load_run_table", "match_targets_to_domains", "objective_vector", "select_columns"]

_SEP = "_/.:- "


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


def objective_vector(spec, target_names: Sequence[str]) -> np.ndarray:
    """Objective weights ``(m,)`` over targets: ``"mean"``/``None`` -> ``1/m``; a dict ``{target: w}`` (a
    target may be named by its full column name or any unique substring); or a sequence of ``m`` numbers."""
    m = len(target_names)
    if spec is None or (isinstance(spec, str) and spec == "mean"):
        return np.full(m, 1.0 / m)
    if isinstance(spec, str):
        raise TableError(f"objective {spec!r}: use 'mean' or a mapping target=weight")
    if isinstance(spec, dict):
        w = np.zeros(m)
        for key, val in spec.items():
            idx = [i for i, t in enumerate(target_names) if t == key]
            idx = idx or [i for i, t in enumerate(target_names) if str(key) in t]
            if len(idx) != 1:
                raise TableError(f"objective target {key!r} matches {len(idx)} targets (need exactly one)")
            w[idx[0]] = float(val)
        if not np.any(w):
            raise TableError("objective weights are all zero")
        return w
    w = np.asarray(spec, dtype=float).ravel()
    if w.shape != (m,):
        raise TableError(f"objective: expected {m} weights, got {w.size}")
    return w


@dataclass
class RunTable:
    """Past runs as arrays. weights ``(n, k)`` (rows on the simplex), targets ``(n, m)`` losses,
    fidelity ``(n, f)`` or ``None``; ``skipped`` lists ``"<row>: <reason>"`` for each rejected row."""

    weights: np.ndarray
    targets: np.ndarray
    domains: list[str]
    target_names: list[str]
    fidelity: np.ndarray | None = None
    fidelity_names: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.weights)

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

    def objective(self, spec="mean") -> np.ndarray:
        """``(n,)`` objective: the weighted sum of targets (``spec`` as in :func:`objective_vector`)."""
        return self.targets @ objective_vector(spec, self.target_names)

    def target_domains(self) -> list[int] | None:
        """Weight column of each target's domain, matched by name (``None`` when they do not match)."""
        return match_targets_to_domains(self.target_names, self.domains)

    def summary(self) -> str:
        fid = f", fidelity {self.fidelity_names}" if self.fidelity is not None else ""
        return (f"{len(self)} runs x {len(self.domains)} domains -> {len(self.target_names)} targets{fid}"
                f" ({len(self.skipped)} rows skipped)")

    # -- builders -------------------------------------------------------------------------------------
    @classmethod
    def from_frame(cls, df: pd.DataFrame, *, weights, targets, fidelity=None, id_column: str | None = None,
                   sum_tol: float = 0.05, source: str = "table") -> RunTable:
        """Build from a DataFrame; see the module docstring for column selection and row validation."""
        if len(df) == 0:
            raise TableError(f"{source}: the table has no rows")
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
        num = {}
        for c in wcols + tcols + fcols:
            col = df[c]
            if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
                conv = pd.to_numeric(col, errors="coerce")
                bad = conv.isna() & col.notna() & (col.astype(str).str.strip() != "")
                if bad.any():
                    raise TableError(f"{source}: column {c!r} is not numeric (e.g. {col[bad].iloc[0]!r})")
                col = conv
            num[c] = col.to_numpy(dtype=float)
        W = np.column_stack([num[c] for c in wcols])
        Y = np.column_stack([num[c] for c in tcols])
        F = np.column_stack([num[c] for c in fcols]) if fcols else None
        ids = [str(v) for v in df[id_column]] if id_column and id_column in df else [str(i) for i in df.index]
        keep, skipped = [], []
        for i in range(len(W)):
            reason = _row_problem(W[i], Y[i], None if F is None else F[i], sum_tol, wcols, tcols, fcols)
            if reason:
                skipped.append(f"row {i}" + (f" ({id_column}={ids[i]})" if id_column else "") + f": {reason}")
            else:
                keep.append(i)
        if not keep:
            raise TableError(f"{source}: no valid rows ({len(W)} rejected; first: {skipped[0]})")
        W = W[keep]
        return cls(weights=W / W.sum(axis=1, keepdims=True), targets=Y[keep], domains=_short_names(wcols),
                   target_names=tcols, fidelity=None if F is None else F[keep], fidelity_names=fcols,
                   skipped=skipped, run_ids=[ids[i] for i in keep], source=source)

    @classmethod
    def from_records(cls, records, *, domains: Sequence[str] | None = None, targets: Sequence[str] | None = None,
                     fidelity: Sequence[str] | None = None, curves: bool = False,
                     sum_tol: float = 0.05) -> RunTable:
        """Build from run records (``proxies.RunRecord`` objects or their ``to_dict()`` dicts).

        domains / targets: order of weight and loss keys (default: the first ok record's order).
        fidelity: record fields to use as fidelity columns, e.g. ``["tokens"]`` or ``["n_params"]``.
        curves: one row per eval point (``tokens_seen`` becomes the first fidelity column and losses come
        from ``val_loss``) instead of one row per run with ``final_loss`` — for step laws and BiMix.
        Failed records (``status != "ok"``) are listed in ``skipped``.
        """
        recs = [r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in records]
        ok = [r for r in recs if r.get("status", "ok") == "ok"]
        skipped = [f"run {r.get('run_id', '?')}: status {r.get('status')} ({r.get('reason')})"
                   for r in recs if r.get("status", "ok") != "ok"]
        if not ok:
            raise TableError(f"no successful runs among {len(recs)} records")
        domains = list(domains or ok[0]["weights"].keys())
        targets = list(targets or ok[0]["final_loss"].keys())
        fid = list(fidelity or [])
        fnames = (["tokens_seen"] if curves else []) + fid
        rows = []
        for r in ok:
            try:
                w = [float(r["weights"].get(d, 0.0)) for d in domains]
                extra = [float(r[f]) for f in fid]
                if curves:
                    for p, seen in enumerate(r["tokens_seen"]):
                        rows.append((r, w, [float(r["val_loss"][t][p]) for t in targets], [float(seen)] + extra))
                else:
                    rows.append((r, w, [float(r["final_loss"][t]) for t in targets], extra))
            except (KeyError, IndexError, TypeError, ValueError) as e:
                skipped.append(f"run {r.get('run_id', '?')}: missing or bad field {e}")
        if not rows:
            raise TableError(f"no usable runs among {len(recs)} records ({skipped[0] if skipped else ''})")
        df = pd.DataFrame(
            [[r.get("run_id", "")] + w + y + f for r, w, y, f in rows],
            columns=["run_id"] + [f"w:{d}" for d in domains] + [f"y:{t}" for t in targets]
            + [f"f:{f}" for f in fnames],
        )
        t = cls.from_frame(df, weights=[f"w:{d}" for d in domains], targets=[f"y:{t}" for t in targets],
                           fidelity=[f"f:{f}" for f in fnames] or None, id_column="run_id", sum_tol=sum_tol,
                           source="run records")
        t.domains, t.target_names, t.fidelity_names = list(domains), list(targets), fnames
        t.skipped = skipped + t.skipped
        return t


def _row_problem(w, y, f, tol, wcols, tcols, fcols) -> str | None:
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
    if f is not None and (not np.isfinite(f).all() or (f <= 0).any()):
        return f"non-positive or missing fidelity in {fcols[int(np.argmax(~np.isfinite(f) | (f <= 0)))]!r}"
    return None


def _read(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise TableError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True)
        return pd.read_csv(path, sep=None, engine="python") if path.suffix.lower() == ".tsv" else pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise TableError(f"{path}: cannot read as a table ({str(e).splitlines()[0]})") from None


def load_run_table(paths, *, weights, targets, fidelity=None, on: str | None = None,
                   sum_tol: float = 0.05) -> RunTable:
    """Load runs from one file or several joined on a key column (CSV, TSV, parquet, JSON lines).

    paths: a path or a list of paths. With several files, rows are inner-joined on ``on`` (default: the
    one column name every file shares); rows present in only some files are reported in ``skipped``.
    weights / targets / fidelity: column selections (see :func:`select_columns`).
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
    t = RunTable.from_frame(df, weights=weights, targets=targets, fidelity=fidelity, id_column=id_col,
                            sum_tol=sum_tol, source=source)
    t.skipped = extra_skipped + t.skipped
    return t
