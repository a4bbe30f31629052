"""The feasible set: which mixtures may be run and proposed. It samples, projects and checks.

One object serves the initial design, the candidates every strategy chooses from, and the proposer, so a
mixture the search runs and the mixture it proposes obey the same constraints:

    {w : sum(w) = 1, lo <= w <= hi, group bounds, KL(w || prior) <= kl_to_prior}

``lo`` / ``hi`` come from per-domain min/max weights, **floors** (soft lower bounds: each is cut to its
domain's upper bound, and all are dropped when they would make the set empty; the search puts one on every
domain its objective scores, ``constraints.scored_floor``) and **repetition caps** (a domain with ``D_i`` tokens
may be repeated at most ``max_epochs`` times in a run of ``target_tokens`` tokens, so
``w_i <= max_epochs * D_i / target_tokens``) and, for hierarchical domains (:mod:`mixopt.hierarchy`), from
the groups' min/max on the sum of their leaves' weights. The set is convex; :meth:`FeasibleSet.project` maps any
point into it. A set may also be **finite** (:meth:`FeasibleSet.restrict`): only the listed mixtures are
allowed. Replay uses that: only the pool's mixtures can be scored.

Sampling (:meth:`FeasibleSet.sample`) is RegMix's: ``Dirichlet(c * k * prior**t / sum(prior**t))`` with one
concentration ``c`` per draw, log-uniform over ``concentrations`` (small ``c``: sparse mixtures far from the
prior; large ``c``: close to it), each draw projected into the set; draws equal on a 1e-3 grid are dropped.

>>> fs = Constraints(max_weight=0.6).resolve(["a", "b", "c"], prior=[0.5, 0.3, 0.2])
>>> X = fs.sample(4, seed=0)
>>> X.shape, bool(np.allclose(X.sum(1), 1)), bool((X <= 0.6 + 1e-9).all())
((4, 3), True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from mixopt.errors import MixoptError
from mixopt.hierarchy import Group, Hierarchy

__all__ = ["Constraints", "FeasibleSet", "kl_divergence"]

_TOL = 1e-9
_ALPHA_FLOOR = 1e-3  # Dirichlet needs alpha > 0: a domain with zero prior keeps a tiny chance of weight
_GRID = 3  # de-duplication grid of sampled mixtures: 1e-3


def kl_divergence(w: np.ndarray, p: np.ndarray) -> float:
    """``KL(w || p)`` in nats (``inf`` if ``w`` puts mass where ``p`` has none)."""
    w, p = np.asarray(w, float), np.asarray(p, float)
    nz = w > 0
    if np.any(p[nz] <= 0):
        return float("inf")
    return float(np.sum(w[nz] * np.log(w[nz] / p[nz])))


def _per_domain(value, domains: Sequence[str], default: float, what: str) -> np.ndarray:
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(domains))
        if unknown:
            raise MixoptError(f"{what}: unknown domain(s) {unknown}; domains are {list(domains)}")
        return np.array([float(value.get(d, default)) for d in domains])
    arr = np.asarray(default if value is None else value, dtype=float)
    if arr.ndim == 0:
        return np.full(len(domains), float(arr))
    if arr.shape != (len(domains),):
        raise MixoptError(f"{what}: expected one number or {len(domains)} values, got {arr.size}")
    return arr.astype(float)


@dataclass
class Constraints:
    """Constraints as a user writes them (all optional); :meth:`resolve` turns them into a FeasibleSet.

    min_weight / max_weight: a float for every domain or ``{domain: value}`` (others 0 / 1).
    max_epochs, target_tokens, domain_tokens (``{domain: tokens available}``): repetition caps.
    kl_to_prior: max ``KL(w || prior)`` in nats.
    groups: :class:`~mixopt.hierarchy.Group` s over the domains (named ``group/leaf``), each with min/max
    bounds on its leaves' total weight.
    floors: ``{domain: weight}`` soft lower bounds: each is cut to its domain's upper bound (max weight,
    repetition cap) and all are dropped when they would leave no feasible mixture.
    """

    min_weight: float | dict[str, float] = 0.0
    max_weight: float | dict[str, float] = 1.0
    max_epochs: float | None = None
    target_tokens: float | None = None
    domain_tokens: dict[str, float] | None = None
    kl_to_prior: float | None = None
    groups: Sequence[Group] = ()
    floors: dict[str, float] | None = None

    @classmethod
    def from_settings(cls, settings, domain_tokens: dict[str, float] | None = None,
                      groups: Sequence[Group] = (), floors: dict[str, float] | None = None) -> Constraints:
        """From ``JobConfig.constraints`` (``ConstraintSettings``) plus the tokens available per domain, the
        job's groups (``JobConfig.hierarchy().groups``) and its soft floors (``JobConfig.scored_floors()``)."""
        return cls(min_weight=settings.min_weight, max_weight=settings.max_weight,
                   max_epochs=settings.max_epochs, target_tokens=settings.target_tokens,
                   domain_tokens=domain_tokens, kl_to_prior=settings.kl_to_prior, groups=tuple(groups),
                   floors=dict(floors) if floors else None)

    def to_dict(self) -> dict:
        d = {"min_weight": self.min_weight, "max_weight": self.max_weight, "max_epochs": self.max_epochs,
             "target_tokens": self.target_tokens, "domain_tokens": self.domain_tokens,
             "kl_to_prior": self.kl_to_prior}
        if self.groups:
            d["groups"] = {g.name: {"min_weight": g.min_weight, "max_weight": g.max_weight, "prior": g.prior}
                           for g in self.groups}
        if self.floors:
            d["floors"] = dict(self.floors)
        return d

    def resolve(self, domains: Sequence[str], prior=None) -> FeasibleSet:
        """The feasible set over ``domains`` (in order) around ``prior`` (default uniform); a one-line
        :class:`MixoptError` if it is empty."""
        domains = list(domains)
        k = len(domains)
        if k < 2:
            raise MixoptError(f"need at least 2 domains to mix, got {k}")
        lo = _per_domain(self.min_weight, domains, 0.0, "min_weight")
        hi = _per_domain(self.max_weight, domains, 1.0, "max_weight")
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise MixoptError("constraints: min/max weights must be finite")
        cap_kind = ["max_weight"] * k
        if (lo < 0).any() or (hi < 0).any():
            raise MixoptError("constraints: min/max weights must be >= 0")
        hi = np.minimum(hi, 1.0)
        if self.max_epochs is not None and self.target_tokens is not None:
            if not self.domain_tokens:
                raise MixoptError("constraints: repetition caps (max_epochs, target_tokens) need domain_tokens")
            missing = [d for d in domains if d not in self.domain_tokens]
            if missing:
                raise MixoptError(f"constraints: domain_tokens lacks {missing}")
            if self.max_epochs <= 0 or self.target_tokens <= 0:
                raise MixoptError("constraints: max_epochs and target_tokens must be positive")
            cap = np.array([self.max_epochs * float(self.domain_tokens[d]) / self.target_tokens for d in domains])
            for i in range(k):
                if cap[i] < hi[i]:
                    hi[i], cap_kind[i] = cap[i], "repetition_cap"
        if self.floors:  # hi holds the max weights and repetition caps here: a floor never asks for more
            floor = _per_domain(self.floors, domains, 0.0, "floors")
            if not np.isfinite(floor).all() or (floor < 0).any():
                raise MixoptError("constraints: floors must be finite and >= 0")
            bare = replace(self, floors=None)
            raised = np.maximum(lo, np.minimum(floor, hi))
            try:  # floors must not make a feasible set empty: first with them, else without
                fs = replace(bare, min_weight=raised).resolve(domains, prior)
            except MixoptError:
                return bare.resolve(domains, prior)
            fs.floored = frozenset(d for d, a, b in zip(domains, raised, lo, strict=True) if a > b)
            return fs
        p = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, float).ravel()
        if p.shape != (k,) or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
            raise MixoptError(f"constraints: prior must be {k} non-negative weights with a positive sum")
        p = p / p.sum()
        if self.kl_to_prior is not None:
            if not self.kl_to_prior > 0:
                raise MixoptError("constraints: kl_to_prior must be positive")
            for i in np.flatnonzero((p <= 0) & (hi > 0)):  # KL is infinite where the prior has no mass
                hi[i], cap_kind[i] = 0.0, "zero_prior"
        bad = np.flatnonzero(lo > hi + _TOL)
        if bad.size:
            i = int(bad[0])
            raise MixoptError(f"infeasible constraints: domain {domains[i]!r} needs weight >= {lo[i]:.4g} but "
                              f"its {cap_kind[i]} allows at most {hi[i]:.4g}")
        if lo.sum() > 1 + _TOL:
            raise MixoptError(f"infeasible constraints: min weights sum to {lo.sum():.4g} > 1")
        if hi.sum() < 1 - _TOL:
            raise MixoptError(f"infeasible constraints: max weights / repetition caps sum to {hi.sum():.4g} < 1")
        hierarchy = Hierarchy(domains, self.groups) if self.groups else None
        if hierarchy is not None:
            hierarchy.bounds(lo, np.maximum(hi, lo))  # a one-line error when a group cannot be met
        fs = FeasibleSet(domains, lo, np.maximum(hi, lo), cap_kind, p, self.kl_to_prior, hierarchy=hierarchy)
        if self.kl_to_prior is not None:
            kl_min = kl_divergence(fs.kl_anchor, p)
            if kl_min > self.kl_to_prior + _TOL:
                raise MixoptError(f"infeasible constraints: the closest mixture to the prior within the bounds "
                                  f"has KL {kl_min:.4g} > kl_to_prior {self.kl_to_prior:.4g}")
        return fs


class FeasibleSet:
    """Resolved constraints: bounds ``lo``, ``hi`` ``(k,)``, the ``prior`` ``(k,)`` the sampler centres on,
    an optional KL bound ``kl_max``, optionally a finite list of allowed ``points`` ``(N, k)``, and the
    ``hierarchy`` of groups whose bounds hold too (``None`` for flat domains).

    Build it with :meth:`Constraints.resolve` (or :meth:`simplex` for no constraints).
    """

    def __init__(self, domains, lo, hi, cap_kind, prior, kl_max, points: np.ndarray | None = None,
                 hierarchy: Hierarchy | None = None):
        self.domains, self.lo, self.hi, self.cap_kind = list(domains), np.asarray(lo, float), np.asarray(hi, float), cap_kind
        self.prior = np.asarray(prior, float)
        self.kl_max = kl_max
        self.hierarchy = hierarchy if hierarchy is not None and not hierarchy.flat else None
        self.kl_anchor = self._box_simplex(self.prior, mode="kl")
        self.points = points
        self.floored: frozenset[str] = frozenset()  # domains whose lower bound is a floor (Constraints.floors)

    @classmethod
    def simplex(cls, domains: Sequence[str], prior=None) -> FeasibleSet:
        """Every mixture of ``domains`` (no constraints)."""
        return Constraints().resolve(domains, prior=prior)

    @property
    def k(self) -> int:
        return len(self.domains)

    @property
    def finite(self) -> bool:
        return self.points is not None

    def restrict(self, points) -> FeasibleSet:
        """The finite set of those ``points`` ``(N, k)`` that satisfy the constraints (order kept)."""
        P = np.atleast_2d(np.asarray(points, float))
        if P.shape[1] != self.k:
            raise MixoptError(f"feasible set: points have {P.shape[1]} domains, expected {self.k}")
        keep = np.array([self._in_constraints(w) for w in P], dtype=bool)
        if not keep.any():
            raise MixoptError("infeasible constraints: none of the given mixtures satisfies them")
        fs = FeasibleSet(self.domains, self.lo, self.hi, self.cap_kind, self.prior, self.kl_max, P[keep],
                         hierarchy=self.hierarchy)
        fs.floored = self.floored
        return fs

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, seed: int, *, concentrations: Sequence[float] = (0.1, 5.0),
               temperature: float = 0.5, distinct: bool = True, max_draws: int | None = None,
               at_most: bool = False) -> np.ndarray:
        """``(n, k)`` feasible mixtures (RegMix's Dirichlet design, see the module docstring); seeded.

        temperature: ``t`` in ``prior**t`` (``t < 1`` flattens the prior, ``t = 0`` is uniform; with groups
        it flattens level by level, :meth:`~mixopt.hierarchy.Hierarchy.temper`).
        distinct: drop draws equal to an earlier one on a 1e-3 grid. A finite set returns ``n`` of its
        points at random (all of them when it has fewer). Raises :class:`MixoptError` when the bounds leave
        too little room for ``n`` distinct mixtures, unless ``at_most`` (a candidate pool: fewer distinct
        mixtures than asked for is all there is, e.g. the 1,001 grid points of two domains).
        """
        n = int(n)
        if n <= 0:
            raise MixoptError(f"number of mixtures must be positive, got {n}")
        rng = np.random.default_rng(seed)
        if self.points is not None:
            idx = rng.permutation(len(self.points))[:n]
            return self.points[np.sort(idx)].copy()
        if temperature < 0:
            raise MixoptError(f"temperature must be >= 0, got {temperature}")
        c = np.asarray(concentrations, dtype=np.float64).ravel()
        if c.size not in (1, 2) or np.any(c <= 0) or not np.all(np.isfinite(c)):
            raise MixoptError(f"concentrations must be one or two positive numbers, got {concentrations!r}")
        k, p = self.k, self.prior
        if self.hierarchy is not None:  # flattened level by level: groups first, then within each group
            base = self.hierarchy.temper(p, temperature)
        else:
            base = p**temperature if temperature > 0 else np.ones(k)
            base = np.where(p > 0, base, 0.0)
            base = base / base.sum()
        limit = max_draws if max_draws is not None else 50 * n + 1000
        kept: list[np.ndarray] = []
        seen: set[bytes] = set()
        drawn = 0
        while len(kept) < n and drawn < limit:
            m = min(max(2 * (n - len(kept)), 16), limit - drawn)
            conc = np.exp(rng.uniform(np.log(c.min()), np.log(c.max()), size=m)) * k
            G = rng.gamma(np.maximum(conc[:, None] * base[None, :], _ALPHA_FLOOR))
            W = G / np.clip(G.sum(axis=1, keepdims=True), 1e-300, None)
            W = self.project_rows(W)
            drawn += m
            for w in W:
                key = np.round(w, _GRID).tobytes()
                if distinct and key in seen:
                    continue
                seen.add(key)
                kept.append(w)
                if len(kept) == n:
                    break
        if len(kept) < n and not (at_most and kept):
            raise MixoptError(f"found only {len(kept)} distinct mixtures of the {n} asked for in {drawn} draws: "
                              "the weight bounds leave too little room")
        return np.stack(kept)

    # ------------------------------------------------------------------ projection
    def _box_simplex(self, v: np.ndarray, mode: str = "euclid") -> np.ndarray:
        """Projection onto ``{sum = 1, lo <= w <= hi}``: Euclidean (``clip(v - tau)``) or KL (``clip(c v)``);
        with groups, the hierarchy's top-down version of the same."""
        lo, hi = self.lo, self.hi
        if self.hierarchy is not None:
            return self.hierarchy.project_rows(v[None, :], lo, hi, mode=mode)[0]

        def point(t):
            return np.clip(v - t, lo, hi) if mode == "euclid" else np.clip(v * t, lo, hi)

        if mode == "euclid":
            a, b = float(v.min() - hi.max()) - 1.0, float(v.max() - lo.min()) + 1.0  # sum(a) >= 1 >= sum(b)
        else:
            a, b = 0.0, 1.0
            while point(b).sum() < 1 and b < 1e300:
                b *= 2.0
        for _ in range(100):
            mid = 0.5 * (a + b)
            s = point(mid).sum()
            if (s > 1) == (mode == "euclid"):
                a = mid
            else:
                b = mid
        return self._fix_sum(point(0.5 * (a + b)))

    def _fix_sum(self, w: np.ndarray) -> np.ndarray:
        """Clip to the box and spread the residual of ``sum(w) - 1`` over coordinates with slack (with
        groups: the hierarchy's projection, which leaves a feasible point unchanged)."""
        if self.hierarchy is not None:
            return self.hierarchy.project_rows(w[None, :], self.lo, self.hi)[0]
        w = np.clip(w, self.lo, self.hi)
        for _ in range(5):
            r = 1.0 - w.sum()
            if abs(r) < 1e-15:
                break
            slack = (self.hi - w) if r > 0 else (w - self.lo)
            if slack.sum() <= 0:
                break
            w = np.clip(w + r * slack / slack.sum(), self.lo, self.hi)
        return w

    def project_rows(self, V) -> np.ndarray:
        """:meth:`project` of every row of ``V`` ``(n, k)`` (vectorised for the continuous set)."""
        V = np.atleast_2d(np.asarray(V, float))
        if self.points is not None:
            return np.stack([self.project(v) for v in V])
        lo, hi = self.lo, self.hi
        if self.hierarchy is not None:
            out = self.hierarchy.project_rows(V, lo, hi)
        else:
            a = V.min(axis=1, keepdims=True) - hi.max() - 1.0
            b = V.max(axis=1, keepdims=True) - lo.min() + 1.0
            for _ in range(100):
                mid = 0.5 * (a + b)
                big = np.clip(V - mid, lo, hi).sum(axis=1, keepdims=True) > 1
                a, b = np.where(big, mid, a), np.where(big, b, mid)
            out = np.clip(V - 0.5 * (a + b), lo, hi)
            for i in np.flatnonzero(np.abs(out.sum(axis=1) - 1) > 1e-13):
                out[i] = self._fix_sum(out[i])
        if self.kl_max is not None:
            bad = np.flatnonzero(self._kl_rows(out) > self.kl_max)
            if bad.size:  # vectorised bisection on the step towards the KL anchor
                Wb = out[bad]
                a, b = np.zeros((len(bad), 1)), np.ones((len(bad), 1))
                for _ in range(50):
                    mid = 0.5 * (a + b)
                    ok = self._kl_rows((1 - mid) * Wb + mid * self.kl_anchor)[:, None] <= self.kl_max
                    a, b = np.where(ok, a, mid), np.where(ok, mid, b)
                out[bad] = (1 - b) * Wb + b * self.kl_anchor
                if self.hierarchy is not None:
                    out[bad] = self.hierarchy.project_rows(out[bad], lo, hi)
                for i in bad:
                    if self.hierarchy is None:
                        out[i] = self._fix_sum(out[i])
                    if not self.kl_ok(out[i]):
                        out[i] = self.project(out[i])
        return out

    def _kl_rows(self, W: np.ndarray) -> np.ndarray:
        p = self.prior
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(W > 0, W * np.log(W / np.where(p > 0, p, 1.0)), 0.0)
        terms = np.where((W > 0) & (p <= 0), np.inf, terms)
        return terms.sum(axis=1)

    def kl_ok(self, w: np.ndarray) -> bool:
        return self.kl_max is None or kl_divergence(w, self.prior) <= self.kl_max + 1e-12

    def project(self, v) -> np.ndarray:
        """A feasible point near ``v`` ``(k,)``: exact up to float rounding (bounds within 1e-12); for a
        finite set, the nearest allowed point."""
        v = np.asarray(v, float)
        if self.points is not None:
            return self.points[int(np.argmin(((self.points - v) ** 2).sum(axis=1)))].copy()
        w = self._box_simplex(v)
        if self.kl_ok(w):
            return w
        a, b = 0.0, 1.0  # mix towards the KL anchor (feasible, convex set) until the KL bound holds
        for _ in range(60):
            mid = 0.5 * (a + b)
            if self.kl_ok((1 - mid) * w + mid * self.kl_anchor):
                b = mid
            else:
                a = mid
        out = self._fix_sum((1 - b) * w + b * self.kl_anchor)
        return out if self.kl_ok(out) else self.kl_anchor.copy()

    # ------------------------------------------------------------------ checks
    def _in_constraints(self, w, tol: float = 1e-9) -> bool:
        w = np.asarray(w, float)
        return bool(abs(w.sum() - 1) <= tol and (w >= self.lo - tol).all() and (w <= self.hi + tol).all()
                    and (self.hierarchy is None or self.hierarchy.in_bounds(w, tol))
                    and (self.kl_max is None or kl_divergence(w, self.prior) <= self.kl_max + tol))

    def is_feasible(self, w, tol: float = 1e-9) -> bool:
        """Whether ``w`` satisfies every constraint (and, for a finite set, is one of its points)."""
        if not self._in_constraints(w, tol):
            return False
        return self.points is None or bool(np.any(np.abs(self.points - np.asarray(w, float)).max(axis=1) <= 1e-8))

    def active(self, w, tol: float = 1e-6) -> list[str]:
        """Names of the constraints that bind at ``w``, e.g. ``"max_weight[web]"`` (a domain or a group),
        ``"floor[code]"``, ``"kl_to_prior"``."""
        out = [] if self.hierarchy is None else self.hierarchy.active(np.asarray(w, float), tol)
        for i, d in enumerate(self.domains):
            if w[i] <= self.lo[i] + tol and self.lo[i] > 0:
                out.append(f"{'floor' if d in self.floored else 'min_weight'}[{d}]")
            if w[i] >= self.hi[i] - tol and self.hi[i] < 1:
                out.append(f"{self.cap_kind[i]}[{d}]")
        if self.kl_max is not None and kl_divergence(w, self.prior) >= self.kl_max - max(tol, 1e-4 * self.kl_max):
            out.append("kl_to_prior")
        return out
