"""Constraints on a proposed mixture, and exact projection onto the feasible set.

The feasible set is ``{w : sum(w) = 1, lo <= w <= hi, KL(w || prior) <= kl_to_prior}`` where ``lo`` /
``hi`` come from per-domain min/max weights and **repetition caps**: a domain with ``D_i`` tokens may not
be repeated more than ``max_epochs`` times in a run of ``target_tokens`` tokens, so
``w_i <= max_epochs * D_i / target_tokens``. The set is convex; :meth:`Constraints.project` maps any point
into it (Euclidean projection onto the box-simplex, then a convex step towards the KL-closest feasible
point to the prior when the KL bound is violated).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mixopt.errors import MixoptError

__all__ = ["Constraints", "kl_divergence"]

_TOL = 1e-9


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
    return np.full(len(domains), float(default if value is None else value))


@dataclass
class Constraints:
    """Constraints on the proposal (all optional).

    min_weight / max_weight: a float for every domain or ``{domain: value}`` (others 0 / 1).
    max_epochs, target_tokens, domain_tokens (``{domain: tokens available}``): repetition caps.
    kl_to_prior: max ``KL(w || prior)`` in nats (needs ``prior`` when bounds are computed).
    """

    min_weight: float | dict[str, float] = 0.0
    max_weight: float | dict[str, float] = 1.0
    max_epochs: float | None = None
    target_tokens: float | None = None
    domain_tokens: dict[str, float] | None = None
    kl_to_prior: float | None = None

    @classmethod
    def from_settings(cls, settings, domain_tokens: dict[str, float] | None = None) -> Constraints:
        """From ``JobConfig.constraints`` (``ConstraintSettings``) plus the tokens available per domain."""
        return cls(min_weight=settings.min_weight, max_weight=settings.max_weight,
                   max_epochs=settings.max_epochs, target_tokens=settings.target_tokens,
                   domain_tokens=domain_tokens, kl_to_prior=settings.kl_to_prior)

    def to_dict(self) -> dict:
        return {"min_weight": self.min_weight, "max_weight": self.max_weight, "max_epochs": self.max_epochs,
                "target_tokens": self.target_tokens, "domain_tokens": self.domain_tokens,
                "kl_to_prior": self.kl_to_prior}

    def resolve(self, domains: Sequence[str], prior=None) -> FeasibleSet:
        """Bounds for ``domains`` (in order); :class:`MixoptError` (one line) if the set is empty."""
        domains = list(domains)
        k = len(domains)
        lo = _per_domain(self.min_weight, domains, 0.0, "min_weight")
        hi = _per_domain(self.max_weight, domains, 1.0, "max_weight")
        cap_kind = ["max_weight"] * k
        if (lo < 0).any() or (hi < 0).any():
            raise MixoptError("constraints: min/max weights must be >= 0")
        if self.max_epochs is not None and self.target_tokens is not None:
            if not self.domain_tokens:
                raise MixoptError("constraints: repetition caps (max_epochs, target_tokens) need domain_tokens")
            missing = [d for d in domains if d not in self.domain_tokens]
            if missing:
                raise MixoptError(f"constraints: domain_tokens lacks {missing}")
            cap = np.array([self.max_epochs * float(self.domain_tokens[d]) / self.target_tokens
                            for d in domains])
            for i in range(k):
                if cap[i] < hi[i]:
                    hi[i], cap_kind[i] = cap[i], "repetition_cap"
        p = None
        if self.kl_to_prior is not None:
            if prior is None:
                raise MixoptError("constraints: kl_to_prior needs the prior mixture")
            p = np.asarray(prior, float)
            if p.shape != (k,) or (p < 0).any() or p.sum() <= 0:
                raise MixoptError(f"constraints: prior must be {k} non-negative weights")
            p = p / p.sum()
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
        fs = FeasibleSet(domains, lo, np.maximum(hi, lo), cap_kind, p, self.kl_to_prior)
        if p is not None:
            kl_min = kl_divergence(fs.kl_anchor, p)
            if kl_min > self.kl_to_prior + _TOL:
                raise MixoptError(f"infeasible constraints: the closest mixture to the prior within the bounds "
                                  f"has KL {kl_min:.4g} > kl_to_prior {self.kl_to_prior:.4g}")
        return fs


class FeasibleSet:
    """Resolved constraints: ``lo``, ``hi`` ``(k,)`` bounds, optional ``prior`` and ``kl_max``."""

    def __init__(self, domains, lo, hi, cap_kind, prior, kl_max):
        self.domains, self.lo, self.hi, self.cap_kind = list(domains), lo, hi, cap_kind
        self.prior, self.kl_max = prior, kl_max
        self.kl_anchor = self._box_simplex(prior, mode="kl") if prior is not None else None

    def _box_simplex(self, v: np.ndarray, mode: str = "euclid") -> np.ndarray:
        """Projection onto ``{sum = 1, lo <= w <= hi}``: Euclidean (``clip(v - tau)``) or KL (``clip(c v)``)."""
        lo, hi = self.lo, self.hi

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
        """Clip to the box and spread the residual of ``sum(w) - 1`` over coordinates with slack."""
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
        """Vectorised :meth:`project` for ``(n, k)`` points (Euclidean box-simplex step for all rows at
        once; rows that still violate the KL bound go through :meth:`project`)."""
        V = np.asarray(V, float)
        lo, hi = self.lo, self.hi
        a = V.min(axis=1, keepdims=True) - hi.max() - 1.0
        b = V.max(axis=1, keepdims=True) - lo.min() + 1.0
        for _ in range(100):
            mid = 0.5 * (a + b)
            big = np.clip(V - mid, lo, hi).sum(axis=1, keepdims=True) > 1
            a, b = np.where(big, mid, a), np.where(big, b, mid)
        out = np.clip(V - 0.5 * (a + b), lo, hi)
        for i in np.flatnonzero(np.abs(out.sum(axis=1) - 1) > 1e-13):
            out[i] = self._fix_sum(out[i])
        if self.prior is not None:
            bad = np.flatnonzero(self._kl_rows(out) > self.kl_max)
            if bad.size:  # vectorised bisection on the step towards the KL anchor
                Wb = out[bad]
                a, b = np.zeros((len(bad), 1)), np.ones((len(bad), 1))
                for _ in range(50):
                    mid = 0.5 * (a + b)
                    ok = self._kl_rows((1 - mid) * Wb + mid * self.kl_anchor)[:, None] <= self.kl_max
                    a, b = np.where(ok, a, mid), np.where(ok, mid, b)
                out[bad] = (1 - b) * Wb + b * self.kl_anchor
                for i in bad:
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
        return self.prior is None or kl_divergence(w, self.prior) <= self.kl_max + 1e-12

    def project(self, v) -> np.ndarray:
        """A feasible point near ``v`` (``(k,)``); exact up to float rounding (bounds within 1e-12)."""
        w = self._box_simplex(np.asarray(v, float))
        if self.prior is None or self.kl_ok(w):
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

    def is_feasible(self, w, tol: float = 1e-9) -> bool:
        w = np.asarray(w, float)
        return bool(abs(w.sum() - 1) <= tol and (w >= self.lo - tol).all() and (w <= self.hi + tol).all()
                    and (self.prior is None or kl_divergence(w, self.prior) <= self.kl_max + tol))

    def active(self, w, tol: float = 1e-6) -> list[str]:
        """Names of the constraints that bind at ``w``, e.g. ``"max_weight[web]"``, ``"kl_to_prior"``."""
        out = []
        for i, d in enumerate(self.domains):
            if w[i] <= self.lo[i] + tol and self.lo[i] > 0:
                out.append(f"min_weight[{d}]")
            if w[i] >= self.hi[i] - tol and self.hi[i] < 1:
                out.append(f"{self.cap_kind[i]}[{d}]")
        if self.prior is not None and kl_divergence(w, self.prior) >= self.kl_max - max(tol, 1e-4 * self.kl_max):
            out.append("kl_to_prior")
        return out
