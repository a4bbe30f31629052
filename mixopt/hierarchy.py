"""Hierarchical domains: leaves named by their path (``web/hq``), groups that bound and centre their
leaves' total weight.

A mixture is always a weight vector over the **leaves** (the domains that have token shards); a group
is a name prefix: group ``web`` holds every leaf whose name starts with ``web/``, group ``web/en`` every
leaf under ``web/en/``. Groups nest to any depth. Each group may set

- ``min_weight`` / ``max_weight``: bounds on the sum of its leaves' weights (in the whole mixture);
- ``prior``: its share of the natural mixture (of the whole mixture, not of its parent); its leaves
  split it by their token shares. A group without a prior takes the token share of its leaves (after
  the fixed priors of its siblings are taken out). A group nested in another may set a prior only when
  its parent does.

The constraints live in one :class:`~mixopt.feasible.FeasibleSet`, which uses :meth:`Hierarchy.project_rows`
to sample, project and check, so the design, the candidates and the proposal obey the group bounds.
Projection is top-down: the node's total is split among its children (``clip(m_j - n_j tau, L_j, U_j)``,
``m_j`` the child's mass in ``v``, ``n_j`` its leaf count, ``[L_j, U_j]`` its effective bounds; ``tau``
found exactly at the kinks of a piecewise-linear sum), then each
child group splits its share among its own children. Without groups this is exactly the Euclidean
projection onto the box-simplex; with groups it is exact in feasibility (bounds hold to ~1e-12) and
leaves feasible points unchanged.

>>> h = Hierarchy(["web/hq", "web/lq", "code"], [Group("web", max_weight=0.5, prior=0.4)])
>>> h.prior([10.0, 30.0, 60.0]).round(3).tolist()
[0.1, 0.3, 0.6]
>>> w = h.project_rows(np.array([[0.5, 0.3, 0.2]]), np.zeros(3), np.ones(3))[0]
>>> round(float(w[:2].sum()), 6), round(float(w.sum()), 6)
(0.5, 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mixopt.errors import MixoptError

__all__ = ["SEP", "Group", "Hierarchy", "group_totals"]

SEP = "/"
_TOL = 1e-9


@dataclass(frozen=True)
class Group:
    """One group of leaves: ``name`` is the common prefix (``"web"``, ``"web/en"``); bounds and prior are
    fractions of the whole mixture."""

    name: str
    min_weight: float = 0.0
    max_weight: float = 1.0
    prior: float | None = None


def group_totals(weights: Mapping[str, float], groups: Sequence[str]) -> dict[str, float]:
    """``{group: sum of its leaves' weights}`` from a ``{leaf: weight}`` dict (leaves named by path)."""
    return {g: float(sum(v for d, v in weights.items() if d.startswith(g + SEP))) for g in groups}


class Hierarchy:
    """Leaves ``domains`` (order kept) and the ``groups`` over them; see the module docstring.

    Raises :class:`MixoptError` when a leaf's prefix is not a declared group, a group has no leaves or a
    group is declared twice.
    """

    def __init__(self, domains: Sequence[str], groups: Sequence[Group] = ()):
        self.domains = list(domains)
        self.groups: dict[str, Group] = {}
        for g in groups:
            if g.name in self.groups:
                raise MixoptError(f"group {g.name!r} is declared twice")
            if g.name in self.domains:
                raise MixoptError(f"{g.name!r} is both a group and a domain")
            self.groups[g.name] = g
        for name in [*self.domains, *self.groups]:
            parent = _parent(name)
            if parent is not None and parent not in self.groups:
                what = "domain" if name in self.domains else "group"
                raise MixoptError(f"{what} {name!r}: its group {parent!r} is not declared")
        self.members = {g: np.array([i for i, d in enumerate(self.domains) if d.startswith(g + SEP)], dtype=int)
                        for g in self.groups}
        empty = [g for g, m in self.members.items() if m.size == 0]
        if empty:
            raise MixoptError(f"group {empty[0]!r} has no domains")
        # children of each node (None = the root), in the order of their first leaf: leaf index or group name
        self.children: dict[str | None, list[int | str]] = {None: [], **{g: [] for g in self.groups}}
        for i, d in enumerate(self.domains):
            chain = _ancestors(d)
            for parent, g in zip([None, *chain], chain, strict=False):
                if g not in self.children[parent]:
                    self.children[parent].append(g)
            self.children[chain[-1] if chain else None].append(i)
        self.names = [g for g in self._walk(None) if isinstance(g, str)]  # groups, depth-first
        self._bounds_key: tuple | None = None  # the last bounds() of project_rows, keyed by (lo, hi)
        self._bounds: dict = {}
        self._M = np.zeros((len(self.domains), len(self.names)))
        for j, g in enumerate(self.names):
            self._M[self.members[g], j] = 1.0

    @property
    def flat(self) -> bool:
        return not self.groups

    def _walk(self, node):
        for c in self.children[node]:
            yield c
            if isinstance(c, str):
                yield from self._walk(c)

    def _size(self, c) -> int:
        return 1 if isinstance(c, (int, np.integer)) else int(self.members[c].size)

    def _idx(self, c) -> np.ndarray:
        return np.array([c]) if isinstance(c, (int, np.integer)) else self.members[c]

    def totals(self, W) -> np.ndarray:
        """``(n, G)`` group totals of mixtures ``W`` ``(n, k)``, columns in :attr:`names` order."""
        return np.atleast_2d(np.asarray(W, float)) @ self._M

    # ------------------------------------------------------------------ prior
    def check_priors(self) -> None:
        """One-line :class:`MixoptError` unless the group priors are consistent (see the module docstring)."""
        for g in self.groups.values():
            if g.prior is not None and not (g.min_weight - _TOL <= g.prior <= g.max_weight + _TOL):
                raise MixoptError(f"group {g.name!r}: prior {g.prior:.4g} lies outside its "
                                  f"[min_weight, max_weight] = [{g.min_weight:.4g}, {g.max_weight:.4g}]")
        for node in self.children:
            share = 1.0 if node is None else self.groups[node].prior
            fixed = [c for c in self.children[node] if isinstance(c, str) and self.groups[c].prior is not None]
            where = "the top level" if node is None else f"group {node!r}"
            if fixed and share is None:
                raise MixoptError(f"group {fixed[0]!r} sets a prior but its parent group {node!r} does not")
            if share is None:
                continue
            total = sum(self.groups[c].prior for c in fixed)
            if total > share + _TOL:
                raise MixoptError(f"group priors in {where} sum to {total:.4g} > {share:.4g}")
            if len(fixed) == len(self.children[node]) and abs(total - share) > 1e-6:
                raise MixoptError(f"group priors in {where} sum to {total:.4g}, not {share:.4g} "
                                  "(every entry there has a prior)")

    def prior(self, tokens) -> np.ndarray:
        """``(k,)`` the natural mixture from ``tokens`` ``(k,)`` (training tokens per leaf): group priors
        where given, token shares everywhere else."""
        t = np.asarray(tokens, float).ravel()
        if t.shape != (len(self.domains),) or not np.isfinite(t).all() or (t < 0).any() or t.sum() <= 0:
            raise MixoptError(f"prior: need {len(self.domains)} non-negative token counts with a positive sum")
        self.check_priors()
        out = np.zeros(len(self.domains))

        def split(node, share: float) -> None:
            kids = self.children[node]
            fixed = {c: self.groups[c].prior for c in kids if isinstance(c, str) and self.groups[c].prior is not None}
            free = [c for c in kids if c not in fixed]
            mass = np.array([t[self._idx(c)].sum() for c in free])
            rest = max(share - sum(fixed.values()), 0.0)
            shares = dict(fixed)
            if free:
                frac = mass / mass.sum() if mass.sum() > 0 else np.full(len(free), 1.0 / len(free))
                shares |= {c: rest * float(f) for c, f in zip(free, frac, strict=True)}
            for c in kids:
                if isinstance(c, str):
                    split(c, shares[c])
                else:
                    out[c] = shares[c]

        split(None, 1.0)
        return out

    def temper(self, p, t: float) -> np.ndarray:
        """``(k,)`` the design centre: ``p ** t`` renormalised level by level (siblings' totals ``m_j ** t``
        share their parent's part, top-down), so flattening the prior (``t < 1``) evens out the groups
        first instead of favouring the group with the most leaves; ``t = 0`` is uniform at every level."""
        p = np.asarray(p, float)
        out = np.zeros(len(self.domains))

        def split(node, share: float) -> None:
            kids = self.children[node]
            m = np.array([p[self._idx(c)].sum() for c in kids])
            b = np.where(m > 0, m**t if t > 0 else 1.0, 0.0)
            b = b / b.sum() if b.sum() > 0 else np.full(len(kids), 1.0 / len(kids))
            for c, x in zip(kids, b, strict=True):
                if isinstance(c, str):
                    split(c, share * float(x))
                else:
                    out[c] = share * float(x)

        split(None, 1.0)
        return out

    # ------------------------------------------------------------------ bounds
    def bounds(self, lo, hi) -> dict:
        """Effective ``(L, U)`` of every node (leaf index or group name) given leaf bounds ``lo``, ``hi``
        ``(k,)``; a one-line :class:`MixoptError` when a group (or the whole mixture) cannot be met."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        eff: dict = {i: (float(lo[i]), float(hi[i])) for i in range(len(self.domains))}
        for g in reversed(self.names):  # children before parents
            spec = self.groups[g]
            if spec.min_weight > spec.max_weight + _TOL:
                raise MixoptError(f"infeasible constraints: group {g!r} has min_weight {spec.min_weight:.4g} > "
                                  f"max_weight {spec.max_weight:.4g}")
            kl = sum(eff[c][0] for c in self.children[g])
            ku = sum(eff[c][1] for c in self.children[g])
            if kl > spec.max_weight + _TOL:
                raise MixoptError(f"infeasible constraints: group {g!r} allows at most {spec.max_weight:.4g} but "
                                  f"its domains need at least {kl:.4g}")
            if ku < spec.min_weight - _TOL:
                raise MixoptError(f"infeasible constraints: group {g!r} needs at least {spec.min_weight:.4g} but "
                                  f"its domains allow at most {ku:.4g}")
            eff[g] = (max(spec.min_weight, kl), max(min(spec.max_weight, ku), max(spec.min_weight, kl)))
        top_l = sum(eff[c][0] for c in self.children[None])
        top_u = sum(eff[c][1] for c in self.children[None])
        if top_l > 1 + _TOL:
            raise MixoptError(f"infeasible constraints: min weights of the top-level groups and domains sum to "
                              f"{top_l:.4g} > 1")
        if top_u < 1 - _TOL:
            raise MixoptError(f"infeasible constraints: max weights of the top-level groups and domains sum to "
                              f"{top_u:.4g} < 1")
        return eff

    def in_bounds(self, w, tol: float = 1e-9) -> bool:
        """Whether every group total of ``w`` ``(k,)`` lies within its group's min/max weight."""
        t = self.totals(w)[0]
        return all(self.groups[g].min_weight - tol <= t[j] <= self.groups[g].max_weight + tol
                   for j, g in enumerate(self.names))

    def active(self, w, tol: float = 1e-6) -> list[str]:
        """The group bounds that bind at ``w``: ``"min_weight[web]"``, ``"max_weight[web]"``."""
        out = []
        t = self.totals(w)[0]
        for j, g in enumerate(self.names):
            spec = self.groups[g]
            if spec.min_weight > 0 and t[j] <= spec.min_weight + tol:
                out.append(f"min_weight[{g}]")
            if spec.max_weight < 1 and t[j] >= spec.max_weight - tol:
                out.append(f"max_weight[{g}]")
        return out

    # ------------------------------------------------------------------ projection
    def project_rows(self, V, lo, hi, mode: str = "euclid") -> np.ndarray:
        """``(n, k)``: each row of ``V`` moved into ``{sum = 1, lo <= w <= hi, group bounds}`` top-down
        (module docstring). ``mode="kl"`` scales masses (``clip(c m_j, L_j, U_j)``) instead of shifting."""
        V = np.atleast_2d(np.asarray(V, float))
        key = (np.asarray(lo, float).tobytes(), np.asarray(hi, float).tobytes())
        if self._bounds_key != key:
            self._bounds_key, self._bounds = key, self.bounds(lo, hi)
        eff = self._bounds
        out = np.zeros_like(V)

        def fill(node, T: np.ndarray) -> None:
            kids = self.children[node]
            M = np.stack([V[:, self._idx(c)].sum(axis=1) for c in kids], axis=1)
            cnt = np.array([self._size(c) for c in kids], dtype=float)
            L = np.array([eff[c][0] for c in kids])
            U = np.array([eff[c][1] for c in kids])
            t = _split(M, cnt, L, U, T, mode)
            for j, c in enumerate(kids):
                if isinstance(c, str):
                    fill(c, t[:, j])
                else:
                    out[:, c] = t[:, j]

        fill(None, np.ones(len(V)))
        return out


def _split(M, cnt, L, U, T, mode: str) -> np.ndarray:
    """``(n, c)`` child totals within ``[L, U]`` summing to ``T`` ``(n,)``, near the masses ``M`` ``(n, c)``.

    Each child's total is ``clip(A + B x, L, U)`` with one ``x`` per row (``A = M, B = -cnt`` for
    ``euclid``, ``A = 0, B = M`` for ``kl``); their sum is monotone and piecewise linear in ``x`` with kinks
    where a child meets a bound, so ``x`` is found exactly by evaluating the sum at the kinks and
    interpolating linearly between the two that bracket ``T``.
    """
    n, c = M.shape
    A, B = (M, np.broadcast_to(-cnt, M.shape)) if mode == "euclid" else (np.zeros_like(M), M)
    with np.errstate(divide="ignore", invalid="ignore"):
        kinks = np.concatenate([(L - A) / B, (U - A) / B], axis=1)  # (n, 2c)
    kinks = np.sort(np.where(np.isfinite(kinks), kinks, 0.0), axis=1)
    S = np.clip(A[:, None, :] + B[:, None, :] * kinks[:, :, None], L, U).sum(axis=2)  # (n, 2c)
    if mode == "euclid":  # decreasing in x: flip signs to search an increasing sum
        S, target = -S, -T
    else:
        target = T
    rows = np.arange(n)
    k = np.clip((target[:, None] > S).sum(axis=1) - 1, 0, 2 * c - 2)
    s0, s1, x0, x1 = S[rows, k], S[rows, k + 1], kinks[rows, k], kinks[rows, k + 1]
    frac = np.clip(np.where(s1 > s0, (target - s0) / np.where(s1 > s0, s1 - s0, 1.0), 0.0), 0.0, 1.0)
    x = (x0 + frac * (x1 - x0))[:, None]
    t = np.clip(A + B * x, L, U)
    Tc = T[:, None]
    for _ in range(5):  # spread the rounding residual (or an unreachable total) over children with room
        r = Tc - t.sum(axis=1, keepdims=True)
        if np.abs(r).max() < 1e-15:
            break
        slack = np.where(r > 0, U - t, t - L)
        tot = slack.sum(axis=1, keepdims=True)
        t = np.clip(t + np.where(tot > 0, r * slack / np.where(tot > 0, tot, 1.0), 0.0), L, U)
    return t


def _parent(name: str) -> str | None:
    return name.rsplit(SEP, 1)[0] if SEP in name else None


def _ancestors(name: str) -> list[str]:
    """``"a/b/c"`` -> ``["a", "a/b"]``."""
    parts = name.split(SEP)
    return [SEP.join(parts[:i]) for i in range(1, len(parts))]
