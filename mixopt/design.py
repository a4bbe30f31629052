"""Initial design: RegMix-style Dirichlet sampling of mixtures around the (sharpened) prior.

Each mixture is drawn from ``Dirichlet(c * k * prior**t / sum(prior**t))`` with one concentration ``c`` per
draw, log-uniform over ``concentrations``: a small ``c`` gives sparse mixtures far from the prior, a large
``c`` mixtures close to it, so the design covers both. Bounds (``min_weight``, ``max_weight`` and the epoch
cap ``w_i * target_tokens <= max_epochs * domain_tokens_i``) are enforced by projecting each draw onto the
bounded simplex; draws that round to the same mixture (1e-3 grid) are dropped.

>>> import numpy as np
>>> X = sample_mixtures(np.array([0.5, 0.3, 0.2]), 4, seed=0)
>>> X.shape, bool(np.allclose(X.sum(1), 1))
((4, 3), True)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixopt.errors import DataError

__all__ = ["bounds_for", "project_to_bounded_simplex", "sample_mixtures"]

_ALPHA_FLOOR = 1e-3  # Dirichlet needs alpha > 0; a domain with zero prior keeps a tiny chance of weight
_ROUND = 3  # de-duplication grid: 1e-3


def _as_vector(value, k: int, name: str, default: float) -> np.ndarray:
    if value is None:
        return np.full(k, default, dtype=np.float64)
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(k, float(arr))
    if arr.shape != (k,) or not np.all(np.isfinite(arr)):
        raise DataError(f"{name} must be a finite number or a length-{k} sequence, got {value!r}")
    return arr


def bounds_for(
    k: int,
    *,
    min_weight=None,
    max_weight=None,
    domain_tokens=None,
    target_tokens: float | None = None,
    max_epochs: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-domain weight bounds ``(lo, hi)``, each (k,), from weight limits and the epoch cap.

    The epoch cap adds ``hi_i <= max_epochs * domain_tokens_i / target_tokens`` when all three are given.
    Raises :class:`DataError` when no mixture satisfies the bounds (``sum(lo) > 1`` or ``sum(hi) < 1``).
    """
    lo = np.clip(_as_vector(min_weight, k, "min_weight", 0.0), 0.0, 1.0)
    hi = np.clip(_as_vector(max_weight, k, "max_weight", 1.0), 0.0, 1.0)
    if max_epochs is not None and target_tokens is not None and domain_tokens is not None:
        tok = _as_vector(domain_tokens, k, "domain_tokens", 0.0)
        if max_epochs <= 0 or target_tokens <= 0 or np.any(tok < 0):
            raise DataError("max_epochs, target_tokens and domain_tokens must be positive")
        hi = np.minimum(hi, max_epochs * tok / float(target_tokens))
    if np.any(lo > hi + 1e-12):
        bad = int(np.argmax(lo - hi))
        raise DataError(f"domain {bad}: min_weight {lo[bad]:.4g} exceeds its upper bound {hi[bad]:.4g}")
    if lo.sum() > 1 + 1e-9:
        raise DataError(f"min_weight sums to {lo.sum():.4g} > 1: no mixture satisfies the bounds")
    if hi.sum() < 1 - 1e-9:
        raise DataError(
            f"upper bounds (max_weight / epoch cap) sum to {hi.sum():.4g} < 1: no mixture satisfies them"
        )
    return lo, hi


def project_to_bounded_simplex(W: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row of ``W`` (n, k) onto ``{w: lo <= w <= hi, sum(w) = 1}``.

    Solves ``sum(clip(w - tau, lo, hi)) = 1`` for the shift ``tau`` by bisection (rows already inside are
    returned unchanged up to rounding). Assumes the set is non-empty (see :func:`bounds_for`).
    """
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    inside = np.all((lo - 1e-12 <= W) & (hi + 1e-12 >= W), axis=1) & np.isclose(W.sum(1), 1.0)
    out = W.copy()
    todo = np.flatnonzero(~inside)
    if todo.size:
        V = W[todo]
        a = (V - hi).min(axis=1) - 1.0  # sum(clip(V - a)) >= sum(hi) >= 1
        b = (V - lo).max(axis=1) + 1.0  # sum(clip(V - b)) == sum(lo) <= 1
        for _ in range(80):
            mid = 0.5 * (a + b)
            s = np.clip(V - mid[:, None], lo, hi).sum(axis=1)
            a = np.where(s > 1.0, mid, a)
            b = np.where(s > 1.0, b, mid)
        P = np.clip(V - (0.5 * (a + b))[:, None], lo, hi)
        out[todo] = P
    return out / out.sum(axis=1, keepdims=True)


def sample_mixtures(
    prior,
    n: int,
    *,
    seed: int,
    concentrations: Sequence[float] = (0.1, 5.0),
    temperature: float = 0.5,
    min_weight=None,
    max_weight=None,
    domain_tokens=None,
    target_tokens: float | None = None,
    max_epochs: float | None = None,
    max_draws: int | None = None,
) -> np.ndarray:
    """Draw ``n`` distinct mixtures around the temperature-sharpened prior.

    Args:
        prior: (k,) non-negative natural mixture (token shares); renormalised.
        n: number of mixtures wanted.
        seed: seed of the draw; the same seed gives the same mixtures.
        concentrations: ``(low, high)``; each draw's total concentration is ``c * k`` with ``c`` log-uniform
            in that range (one value gives a fixed concentration).
        temperature: ``t`` in ``prior**t``; ``t < 1`` flattens the prior towards uniform, ``t = 0`` is uniform.
        min_weight, max_weight: float or (k,) per-domain bounds on each weight.
        domain_tokens: (k,) available training tokens per domain; with ``target_tokens`` (tokens of the full
            run) and ``max_epochs`` caps ``w_i <= max_epochs * domain_tokens_i / target_tokens``.
        max_draws: give up after this many draws (default ``50 * n + 1000``).

    Returns:
        (n, k) float64 rows on the simplex within the bounds, distinct on a 1e-3 grid.

    Raises:
        DataError: bad prior/bounds, or fewer than ``n`` distinct mixtures found (bounds too tight).
    """
    p = np.asarray(prior, dtype=np.float64).ravel()
    k = p.size
    if k < 2 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise DataError(f"prior must be a finite non-negative vector with k >= 2 entries and positive sum, got {prior!r}")
    if n <= 0:
        raise DataError(f"number of mixtures must be positive, got {n}")
    if temperature < 0:
        raise DataError(f"temperature must be >= 0, got {temperature}")
    c = np.asarray(concentrations, dtype=np.float64).ravel()
    if c.size not in (1, 2) or np.any(c <= 0) or not np.all(np.isfinite(c)):
        raise DataError(f"concentrations must be one or two positive numbers, got {concentrations!r}")
    c_lo, c_hi = float(c.min()), float(c.max())
    lo, hi = bounds_for(
        k, min_weight=min_weight, max_weight=max_weight, domain_tokens=domain_tokens,
        target_tokens=target_tokens, max_epochs=max_epochs,
    )
    base = (p / p.sum()) ** temperature if temperature > 0 else np.ones(k)
    base = np.where(p > 0, base, 0.0)
    base = base / base.sum()
    rng = np.random.default_rng(seed)
    limit = max_draws if max_draws is not None else 50 * n + 1000
    kept: list[np.ndarray] = []
    seen: set[bytes] = set()
    drawn = 0
    while len(kept) < n and drawn < limit:
        m = min(max(2 * (n - len(kept)), 16), limit - drawn)
        conc = np.exp(rng.uniform(np.log(c_lo), np.log(c_hi), size=m)) * k
        W = np.stack([rng.dirichlet(np.maximum(ci * base, _ALPHA_FLOOR)) for ci in conc])
        W = project_to_bounded_simplex(W, lo, hi)
        drawn += m
        for w in W:
            key = np.round(w, _ROUND).tobytes()
            if key not in seen:
                seen.add(key)
                kept.append(w)
                if len(kept) == n:
                    break
    if len(kept) < n:
        raise DataError(
            f"found only {len(kept)} distinct mixtures of the {n} asked for in {drawn} draws: "
            "the weight bounds leave too little room"
        )
    return np.stack(kept)
