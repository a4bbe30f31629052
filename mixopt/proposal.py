"""The proposal (the weights mixopt recommends, with what it knows about them) and the proposer.

:class:`Proposal` is the one schema of a recommendation: :meth:`mixopt.strategies.Strategy.recommend`
returns it, the search writes it to ``proposal.json`` and MLflow, ``mixopt propose`` / ``mixopt fit
--propose`` print it, and replay scores its weights.

:func:`propose` minimises a fitted model's predicted objective over a
:class:`~mixopt.feasible.FeasibleSet`:

- a **finite** set (replay's pool): the allowed mixture with the best prediction;
- a **continuous** set: RegMix's sample-top-k (sample many feasible mixtures, predict, average the
  ``top_k`` best: the average of feasible points is feasible, the set is convex) and, for smooth models
  (laws, GP, linear), SLSQP refinements started from the best samples under the bounds, the sum-to-one
  equality, the group bounds and the KL inequality; the better predicted objective wins (``method="auto"``).

The result is projected onto the feasible set at the end, so constraints hold exactly (to ~1e-12).
Lower objective is better.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from mixopt.errors import MixoptError
from mixopt.feasible import FeasibleSet, kl_divergence

__all__ = ["Proposal", "propose"]

_METHODS = ("auto", "sample_topk", "slsqp")


@dataclass
class Proposal:
    """A recommended mixture and what is known about it (lower objective is better).

    weights: ``{domain: weight}`` on the simplex. predicted / std: the model's predicted objective at the
    target fidelity and its predictive std (``None`` without a model / without an uncertainty model).
    predicted_targets: ``{target: value}`` when the model predicts each target. observed: the objective
    of a run of exactly these weights at the target fidelity (the chosen run, or a confirmation run).
    rule: how the weights were chosen (``"predicted"``: best prediction over the feasible set;
    ``"revealed"``: the best run observed at the target fidelity). strategy / surrogate / reason /
    cv_table: which strategy and model, and why. method: the optimiser (``sample_topk``, ``slsqp``,
    ``finite``, ``revealed``). active_constraints: the constraints that bind. n_runs / n_fit: runs in
    the table, rows the model was fitted on. run_id: the run whose weights these are (``revealed``).
    baselines: the same model's view of reference mixtures (``prior``, ``uniform``, ``best_run``: each
    ``{weights, predicted, std, observed, ...}``). trust: how far to trust it (:func:`mixopt.trust.assess`:
    ``level`` high / medium / low, ``warnings``, ``recommendation``, ``fallback``). context: where the
    proposal was made (a search adds its fidelity, key and confirmation run). reference_curves:
    ``{domain: [E, B, beta]}``, each domain's predicted loss ``E + B n^-beta`` after ``n`` total training
    tokens of these weights at the target model (:func:`mixopt.curves.proposal_curves`; a search writes them when
    its runs have eval curves), the curves an online mixer's ``reference=`` follows.
    """

    weights: dict[str, float]
    predicted: float | None = None
    std: float | None = None
    predicted_targets: dict[str, float] | None = None
    observed: float | None = None
    rule: str = "predicted"
    strategy: str = ""
    surrogate: str = ""
    reason: str = ""
    cv_table: list[dict] | None = None
    method: str = ""
    active_constraints: list[str] = field(default_factory=list)
    kl_to_prior: float | None = None
    objective: str | dict = "mean"
    n_runs: int = 0
    n_fit: int = 0
    run_id: str | None = None
    baselines: dict[str, dict] = field(default_factory=dict)
    trust: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict)
    reference_curves: dict[str, list[float]] | None = None

    def vector(self, domains) -> np.ndarray:
        """``(k,)`` the weights in the order of ``domains``."""
        return np.array([self.weights[d] for d in domains], dtype=np.float64)

    def to_dict(self) -> dict:
        """JSON-able dict (plain floats and strings)."""
        return json.loads(json.dumps(asdict(self), default=_json_default))

    @classmethod
    def from_dict(cls, d: dict) -> Proposal:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "to_dict") and hasattr(o, "columns"):
        return o.to_dict(orient="records")
    return str(o)


def _candidates(n: int, feasible: FeasibleSet, seed: int) -> np.ndarray:
    """``(n, k)`` feasible mixtures: half RegMix's design distribution (wide, around the flattened prior),
    half close to the prior; plus the prior itself."""
    wide = feasible.sample(n - n // 2, seed, concentrations=(0.05, 5.0), temperature=0.5, distinct=False)
    near = feasible.sample(n // 2, seed + 1, concentrations=(1.0, 300.0), temperature=1.0, distinct=False)
    return np.vstack([wide, near, feasible.project(feasible.prior)])


def _slsqp(f, starts, fs: FeasibleSet) -> list[np.ndarray]:
    cons = [{"type": "eq", "fun": lambda w: np.sum(w) - 1.0, "jac": lambda w: np.ones_like(w)}]
    if fs.kl_max is not None:
        p = fs.prior

        def kl_slack(w):
            w = np.clip(w, 1e-12, None)
            mask = p > 0
            return fs.kl_max - np.sum(w[mask] * np.log(w[mask] / p[mask]))

        cons.append({"type": "ineq", "fun": kl_slack})
    if fs.hierarchy is not None:  # group bounds: lo_g <= sum(w[members]) <= hi_g
        h = fs.hierarchy
        for g in h.names:
            m = np.zeros(fs.k)
            m[h.members[g]] = 1.0
            lo_g, hi_g = h.groups[g].min_weight, h.groups[g].max_weight
            cons.append({"type": "ineq", "fun": lambda w, m=m, lo_g=lo_g: m @ w - lo_g, "jac": lambda w, m=m: m})
            cons.append({"type": "ineq", "fun": lambda w, m=m, hi_g=hi_g: hi_g - m @ w, "jac": lambda w, m=m: -m})
    out = []
    for x0 in starts:
        res = minimize(lambda w: float(f(fs._fix_sum(w)[None, :])[0]), x0, method="SLSQP",
                       bounds=list(zip(fs.lo, fs.hi, strict=True)), constraints=cons,
                       options={"maxiter": 100, "ftol": 1e-10, "eps": 1e-5})
        out.append(fs.project(res.x))
    return out


def propose(model, feasible: FeasibleSet, *, seed: int = 0, method: str = "auto", n_candidates: int | None = None,
            top_k: int = 64, n_starts: int = 4) -> Proposal:
    """The feasible mixture with the best predicted objective under a fitted ``model``.

    model: anything with ``predict(W (n, k)) -> (mean (n,), std (n,) | None)`` at the target fidelity,
    ``predict_targets(W) -> (n, m) | None``, ``target_names``, ``smooth`` and ``describe()``
    (:class:`mixopt.surrogates.TableModel`). method: ``auto | sample_topk | slsqp`` (continuous sets);
    n_candidates: mixtures sampled (default 8000 for smooth models, 4000 otherwise); top_k averaged;
    n_starts SLSQP starts. Returns a :class:`Proposal` with ``rule="predicted"``.
    """
    if method not in _METHODS:
        raise MixoptError(f"propose: unknown method {method!r} ({', '.join(_METHODS)})")
    with threadpool_limits(limits=1, user_api="blas"):
        return _propose(model, feasible, seed=seed, method=method, n_candidates=n_candidates, top_k=top_k,
                        n_starts=n_starts)


def _propose(model, fs: FeasibleSet, *, seed, method, n_candidates, top_k, n_starts) -> Proposal:
    def f(W):
        return model.predict(W)[0]

    if fs.finite:
        pred = f(fs.points)
        w, used = fs.points[int(np.argmin(pred))].copy(), "finite"
    else:
        smooth = bool(getattr(model, "smooth", False))
        n = n_candidates or (8000 if smooth else 4000)
        C = _candidates(n, fs, seed)
        obj = f(C)
        order = np.argsort(obj, kind="stable")
        results = {"sample_topk": fs.project(C[order[: max(1, min(top_k, len(C)))]].mean(axis=0))}
        if method == "slsqp" or (method == "auto" and smooth):
            starts = [results["sample_topk"]] + [C[i] for i in order[: max(0, n_starts - 1)]]
            cand = _slsqp(f, starts, fs)
            vals = f(np.stack(cand))
            results["slsqp"] = cand[int(np.argmin(vals))]
        if method == "auto":
            keys = list(results)
            vals = f(np.stack([results[m] for m in keys]))
            used = keys[int(np.argmin(vals))]
        else:
            used = method
        w = results[used]
        if not fs.is_feasible(w):  # should not happen: fall back to the best sampled (projected) candidate
            w, used = C[order[0]], "sample"
    mean, std = model.predict(w[None, :])
    per = model.predict_targets(w[None, :])
    kl = kl_divergence(w, fs.prior)
    return Proposal(
        weights={d: float(x) for d, x in zip(fs.domains, w, strict=True)},
        predicted=float(mean[0]),
        std=None if std is None else float(std[0]),
        predicted_targets=None if per is None else {t: float(v) for t, v in zip(model.target_names, per[0], strict=True)},
        rule="predicted",
        surrogate=model.describe(),
        reason=getattr(model, "reason", ""),
        cv_table=getattr(model, "cv_table", None),
        method=used,
        active_constraints=fs.active(w),
        kl_to_prior=kl if np.isfinite(kl) else None,
        n_fit=int(getattr(model, "n_fit", 0)),
    )
