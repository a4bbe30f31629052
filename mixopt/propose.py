"""The proposer: the mixture that minimises a fitted surrogate's predicted objective under constraints.

Methods (``method=``):

- ``"sample_topk"`` — RegMix: sample many Dirichlet candidates (around the prior at several
  concentrations, plus uniform and sparse ones), project each into the feasible set, predict, and average
  the ``top_k`` best (the average of feasible points is feasible: the set is convex).
- ``"slsqp"`` — gradient-based: ``scipy.optimize.minimize(method="SLSQP")`` over the simplex with bounds,
  the sum-to-one equality and the KL inequality, started from the best sampled candidates.
- ``"auto"`` — ``sample_topk`` for piecewise-constant surrogates (trees), both for smooth ones (laws, GP,
  linear), keeping the better predicted objective.

The result is projected onto the feasible set at the end, so constraints hold exactly (to ~1e-12).
Lower objective is better. Batch Bayesian-optimisation selection for the search loop lives in
:mod:`mixopt.acquisition` (re-exported here as :func:`select_batch`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from mixopt.acquisition import select_batch
from mixopt.constraints import Constraints, FeasibleSet, kl_divergence
from mixopt.errors import MixoptError

__all__ = ["Constraints", "Proposal", "propose", "sample_candidates", "select_batch", "surrogate_name"]


@dataclass
class Proposal:
    """A proposed mixture with its predicted objective (lower is better) and provenance.

    weights: ``{domain: weight}`` on the simplex; predicted: the predicted objective; predicted_targets:
    ``{target: loss}`` when the surrogate predicts several targets; std: the objective's predictive std
    (``None`` without an uncertainty model); surrogate / reason / cv_table: which surrogate and why;
    active_constraints: the constraints that bind at the proposal.
    """

    weights: dict[str, float]
    predicted: float
    predicted_targets: dict[str, float] | None = None
    std: float | None = None
    surrogate: str = ""
    reason: str = ""
    cv_table: list[dict] | None = None
    active_constraints: list[str] = field(default_factory=list)
    method: str = ""
    kl_to_prior: float | None = None

    def to_dict(self) -> dict:
        """JSON-able dict (plain floats and strings)."""
        return json.loads(json.dumps(asdict(self), default=_json_default))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def surrogate_name(surrogate) -> str:
    """Registry name of a surrogate (``"auto->lightgbm"`` for a fitted ``auto``)."""
    from mixopt.surrogates.registry import _REGISTRY

    cls = f"{type(surrogate).__module__}:{type(surrogate).__name__}"
    name = next((n for n, path in _REGISTRY.items() if path == cls), type(surrogate).__name__)
    chosen = getattr(surrogate, "chosen_", None)
    return f"{name}->{chosen}" if chosen else name


def sample_candidates(n: int, prior: np.ndarray, feasible: FeasibleSet, rng: np.random.Generator) -> np.ndarray:
    """``(n, k)`` feasible candidates: Dirichlet around the prior at concentrations 1..1000 (by thirds),
    uniform Dirichlet(1), and sparse Dirichlet(0.1) draws, each projected into the feasible set."""
    k = len(prior)
    p = np.clip(prior, 1e-6, None)
    p = p / p.sum()
    parts = []
    n_prior, n_unif = n // 2, n // 4
    conc = np.exp(rng.uniform(np.log(1.0), np.log(1000.0), n_prior))
    G = rng.gamma(conc[:, None] * p[None, :] + 1e-3)  # Dirichlet(c * prior) draws, vectorised
    parts.append(G / np.clip(G.sum(axis=1, keepdims=True), 1e-300, None))
    parts.append(rng.dirichlet(np.ones(k), n_unif))
    parts.append(rng.dirichlet(np.full(k, 0.1), n - n_prior - n_unif))
    C = np.vstack(parts)
    C = np.clip(C, 0, None)
    C = C / np.clip(C.sum(axis=1, keepdims=True), 1e-300, None)
    return feasible.project_rows(C)


def _objective_fn(surrogate, objective_weights):
    def f(W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean, std = surrogate.predict(np.atleast_2d(W), return_std=True)
        mean = np.asarray(mean, float).reshape(len(np.atleast_2d(W)), -1)
        std = np.asarray(std, float).reshape(mean.shape)
        w = (np.full(mean.shape[1], 1.0 / mean.shape[1]) if objective_weights is None or mean.shape[1] == 1
             else np.asarray(objective_weights, float))
        if w.shape != (mean.shape[1],):
            raise MixoptError(f"objective_weights: expected {mean.shape[1]} weights, got {w.size}")
        return mean @ w, np.sqrt((std**2) @ (w**2)), mean

    return f


def _slsqp(f, starts, fs: FeasibleSet) -> list[np.ndarray]:
    cons = [{"type": "eq", "fun": lambda w: np.sum(w) - 1.0, "jac": lambda w: np.ones_like(w)}]
    if fs.prior is not None:
        p = fs.prior

        def kl_slack(w):
            w = np.clip(w, 1e-12, None)
            mask = p > 0
            return fs.kl_max - np.sum(w[mask] * np.log(w[mask] / p[mask]))

        cons.append({"type": "ineq", "fun": kl_slack})
    out = []
    for x0 in starts:
        res = minimize(lambda w: float(f(fs._fix_sum(w))[0][0]), x0, method="SLSQP",
                       bounds=list(zip(fs.lo, fs.hi, strict=True)), constraints=cons,
                       options={"maxiter": 100, "ftol": 1e-10, "eps": 1e-5})
        out.append(fs.project(res.x))
    return out


def propose(surrogate, domains: Sequence[str], *, objective_weights=None, constraints: Constraints | None = None,
            prior=None, method: str = "auto", seed: int = 0, n_candidates: int | None = None, top_k: int = 64,
            n_starts: int = 4, target_names: Sequence[str] | None = None) -> Proposal:
    """Minimise the fitted ``surrogate``'s predicted objective over feasible mixtures of ``domains``.

    objective_weights: ``(m,)`` weights of the targets in the objective (default: mean).
    constraints: :class:`Constraints` (default: only the simplex). prior: ``(k,)`` natural mixture
    (default uniform) — the centre of the candidate sampler and the reference of the KL bound.
    method: ``"auto" | "sample_topk" | "slsqp"``; n_candidates sampled for ``sample_topk`` (and as SLSQP
    starts; default 8000, or ``max(2000, 40000 // m)`` for tree surrogates with ``m`` targets, whose
    prediction dominates the cost), averaged over the ``top_k`` best; ``n_starts`` SLSQP starts; target_names label
    ``predicted_targets``. Returns a :class:`Proposal`; infeasible constraints raise a one-line
    :class:`MixoptError`.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _propose(surrogate, domains, objective_weights=objective_weights, constraints=constraints,
                        prior=prior, method=method, seed=seed, n_candidates=n_candidates, top_k=top_k,
                        n_starts=n_starts, target_names=target_names)


def _propose(surrogate, domains: Sequence[str], *, objective_weights=None, constraints: Constraints | None = None,
            prior=None, method: str = "auto", seed: int = 0, n_candidates: int | None = None, top_k: int = 64,
            n_starts: int = 4, target_names: Sequence[str] | None = None) -> Proposal:
    domains = list(domains)
    k = len(domains)
    if not hasattr(surrogate, "n_targets_"):
        raise MixoptError("propose: the surrogate is not fitted")
    if getattr(surrogate, "n_domains_", k) != k:
        raise MixoptError(f"propose: the surrogate was fitted on {surrogate.n_domains_} domains, got {k} names")
    if method not in ("auto", "sample_topk", "slsqp"):
        raise MixoptError(f"propose: unknown method {method!r} (auto, sample_topk, slsqp)")
    p = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, float)
    if p.shape != (k,) or (p < 0).any() or p.sum() <= 0:
        raise MixoptError(f"propose: prior must be {k} non-negative weights")
    p = p / p.sum()
    fs = (constraints or Constraints()).resolve(domains, prior=p)
    rng = np.random.default_rng(seed)
    f = _objective_fn(surrogate, objective_weights)
    smooth = bool(getattr(surrogate, "smooth", False))
    if n_candidates is None:
        n_candidates = 8000 if smooth else max(2000, 40000 // max(1, int(surrogate.n_targets_)))

    C = sample_candidates(n_candidates, p, fs, rng)
    C = np.vstack([C, fs.project(p)])
    obj = f(C)[0]
    order = np.argsort(obj)
    top = C[order[: max(1, min(top_k, len(C)))]]
    results = {"sample_topk": fs.project(top.mean(axis=0))}
    if method == "slsqp" or (method == "auto" and smooth):
        starts = [results["sample_topk"]] + [C[i] for i in order[: max(0, n_starts - 1)]]
        cand = _slsqp(f, starts, fs)
        vals = [float(f(c)[0][0]) for c in cand]
        results["slsqp"] = cand[int(np.argmin(vals))]
    if method == "auto":
        used = min(results, key=lambda m: float(f(results[m])[0][0]))
    else:
        used = method
    w = results[used]
    if not fs.is_feasible(w):  # should not happen: fall back to the best sampled (projected) candidate
        w = C[order[0]]
    val, std, per = f(w)
    m = per.shape[1]
    names = list(target_names) if target_names is not None else [f"target_{j}" for j in range(m)]
    cv = getattr(surrogate, "cv_table_", None)
    chosen = getattr(surrogate, "chosen_", None)
    reason = (f"chosen by {getattr(surrogate, 'n_folds', '?')}-fold CV on the objective (Spearman)"
              if chosen else "requested")
    return Proposal(
        weights={d: float(x) for d, x in zip(domains, w, strict=True)},
        predicted=float(val[0]),
        predicted_targets={n: float(v) for n, v in zip(names, per[0], strict=False)} if m > 1 else None,
        std=float(std[0]) if getattr(surrogate, "has_std", False) else None,
        surrogate=surrogate_name(surrogate),
        reason=reason,
        cv_table=cv,
        active_constraints=fs.active(w),
        method=used,
        kl_to_prior=kl_divergence(w, p) if np.isfinite(kl_divergence(w, p)) else None,
    )
