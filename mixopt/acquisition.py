"""Batch Bayesian-optimisation selection over a finite candidate set (BoTorch), cost-aware multi-fidelity.

:func:`select_batch` picks ``q`` (candidate, fidelity level) pairs to run next with a fitted
:class:`~mixopt.surrogates.gp.GPSurrogate` of the objective (the same model the ``bo`` strategy recommends
with; lower is better):

- several levels and a GP with fidelity columns: ``qMultiFidelityMaxValueEntropy`` (minimising) with an
  ``InverseCostWeightedUtility`` (cost per level, piecewise linear on the encoded fidelity axis),
  maximised over candidates x levels (sequential greedy for ``q > 1``);
- one level, or when the multi-fidelity acquisition fails or runs out of ``time_budget`` (if one is set):
  ``qLogNoisyExpectedImprovement`` at the target level. A fallback is logged as a warning with its cause.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from mixopt.errors import MixoptError
from mixopt.events import fallback
from mixopt.surrogates.base import validate_weights_matrix
from mixopt.surrogates.gp import torch_threads

__all__ = ["select_batch"]

log = logging.getLogger(__name__)


def select_batch(gp, candidates, *, q: int, level_fidelity=None, level_costs=None, seed: int = 0,
                 time_budget: float | None = None, max_candidates: int = 1024, mes_candidates: int = 256,
                 mes_fantasies: int = 2, n_threads: int | None = 1) -> list[tuple[int, int]]:
    """Choose ``q`` distinct (candidate index, level index) pairs to evaluate next.

    gp: a fitted single-output ``GPSurrogate`` of the objective. candidates: ``(c, k)`` mixtures.
    level_fidelity: ``(F, f)`` the values of the GP's fidelity columns at each level, cheapest first; the
    last is the target (``None``: one level). level_costs: ``(F,)`` positive cost of a run at each level
    (default: proportional to the product of the fidelity values). Candidates beyond ``max_candidates``
    are subsampled (seeded); the multi-fidelity MES scores at most ``mes_candidates`` of them (x levels).
    time_budget: seconds after which the multi-fidelity MES stops and the rest of the batch is picked by
    qLogNEI at the target fidelity (``None``, the default: no limit, so the picks never depend on the
    machine's load; one step at 300 runs x 20 domains x 3 fidelities takes ~10 s on one thread).
    mes_fantasies: fantasy samples for the MES's pending picks (the 2nd..q-th pick of a batch); each one
    multiplies the cost of those picks (2: the same picks as 8 on the timing benchmark at a quarter of the
    time, see ``experiments/LOG.md``).
    """
    import torch

    C = validate_weights_matrix(candidates, what="candidates")
    if not hasattr(gp, "models_") or len(gp.models_) != 1:
        raise MixoptError("select_batch: needs a fitted single-output GP of the objective")
    if C.shape[1] != gp.n_domains_:
        raise MixoptError(f"select_batch: candidates have {C.shape[1]} domains, the GP {gp.n_domains_}")
    if q < 1:
        raise MixoptError("select_batch: q must be >= 1")
    q = int(min(q, len(C)))
    rng = np.random.default_rng(seed)
    cand_idx = np.arange(len(C)) if len(C) <= max_candidates else np.sort(
        rng.choice(len(C), max_candidates, replace=False))
    t0 = time.perf_counter()
    LF = None if level_fidelity is None else np.atleast_2d(np.asarray(level_fidelity, float))
    n_levels = 1 if LF is None else len(LF)
    target = n_levels - 1
    model = gp.models_[0]
    base = _at_target(gp, gp.Z_)
    with torch_threads(n_threads):
        torch.manual_seed(seed)
        if n_levels > 1 and gp.fidelity_dims_ is not None:
            if LF.shape[1] != len(gp.f_hi_):
                raise MixoptError(f"select_batch: level_fidelity has {LF.shape[1]} columns, the GP "
                                  f"{len(gp.f_hi_)} fidelity columns")
            cost = (np.prod(LF / LF[-1], axis=1) if level_costs is None
                    else np.asarray(level_costs, float).ravel())
            if cost.shape != (n_levels,) or not (cost > 0).all():
                raise MixoptError("select_batch: level_costs must be one positive value per level")
            mes_idx = cand_idx if len(cand_idx) <= mes_candidates else np.sort(
                rng.choice(cand_idx, mes_candidates, replace=False))
            try:
                deadline = float("inf") if time_budget is None else t0 + float(time_budget)
                picks = _mf_mes(gp, model, C[mes_idx], mes_idx, LF, cost, q, seed, deadline,
                                mes_fantasies)
            except (RuntimeError, ValueError, ArithmeticError) as e:  # numerical trouble in MES
                fallback("acquisition.mes_failed", f"multi-fidelity acquisition failed ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200] if str(e) else ''}); using qLogNEI at the target fidelity",
                         log)
                picks = []
            if len(picks) < q:
                if picks:
                    fallback("acquisition.time_budget", f"multi-fidelity acquisition hit its time budget after "
                             f"{len(picks)} of {q} picks; the rest by qLogNEI at the target fidelity", log)
                rest = np.setdiff1d(cand_idx, [c for c, _ in picks])
                picks += [(int(rest[i]), target) for i in _log_nei(model, base, gp.encode(C[rest]), q - len(picks))]
            return picks
        picks = _log_nei(model, base, gp.encode(C[cand_idx]), q)
        return [(int(cand_idx[i]), target) for i in picks]


def _at_target(gp, Z: np.ndarray) -> np.ndarray:
    """Encoded inputs moved to the target fidelity (the fidelity dims set to the target's code)."""
    Z = np.array(Z, dtype=np.float64, copy=True)
    if gp.fidelity_dims_:
        Z[:, gp.fidelity_dims_] = gp.target_code_
    return Z


def _match_rows(chosen, choices) -> list[int]:
    import torch

    out = []
    for row in chosen:
        d = (choices - row).abs().sum(dim=-1)
        d[out] = float("inf")
        out.append(int(torch.argmin(d)))
    return out


def _log_nei(model, Z_base, Z_cand, q) -> list[int]:
    import torch
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.acquisition.objective import LinearMCObjective
    from botorch.optim import optimize_acqf_discrete

    tb = torch.as_tensor(Z_base, dtype=torch.float64)
    tc = torch.as_tensor(Z_cand, dtype=torch.float64)
    minimise = LinearMCObjective(weights=torch.tensor([-1.0], dtype=torch.float64))
    acq = qLogNoisyExpectedImprovement(model, X_baseline=tb, objective=minimise, prune_baseline=True)
    chosen, _ = optimize_acqf_discrete(acq, q=q, choices=tc, unique=True, max_batch_size=512)
    return _match_rows(chosen, tc)


def _mf_mes(gp, model, Cw, cand_idx, LF, cost, q, seed, deadline, n_fantasies: int) -> list[tuple[int, int]]:
    import torch
    from botorch.acquisition.cost_aware import InverseCostWeightedUtility
    from botorch.acquisition.max_value_entropy_search import qMultiFidelityMaxValueEntropy
    from botorch.acquisition.utils import project_to_target_fidelity
    from botorch.models.deterministic import GenericDeterministicModel

    nf = len(LF)
    dims = list(gp.fidelity_dims_)
    Z_levels = np.stack([gp.encode(Cw[:1], LF[j][None, :])[0, dims] for j in range(nf)])  # (F, f) encoded
    # cost on the encoded fidelity axis: interpolate by the mean encoded fidelity of each level
    zs_np = Z_levels.mean(axis=1)
    order = np.argsort(zs_np, kind="stable")
    zs = torch.as_tensor(zs_np[order], dtype=torch.float64)
    cs = torch.as_tensor(cost[order], dtype=torch.float64)

    def cost_fn(X):  # piecewise-linear cost, exact at the levels
        z = X[..., dims].mean(dim=-1).clamp(zs[0], zs[-1])
        if len(zs) == 1:
            return cs[0].expand(z.shape).unsqueeze(-1)
        i = torch.searchsorted(zs, z.contiguous()).clamp(1, len(zs) - 1)
        z0, z1, c0, c1 = zs[i - 1], zs[i], cs[i - 1], cs[i]
        frac = torch.where(z1 > z0, (z - z0) / (z1 - z0).clamp_min(1e-12), torch.zeros_like(z))
        return (c0 + frac * (c1 - c0)).unsqueeze(-1)

    utility = InverseCostWeightedUtility(cost_model=GenericDeterministicModel(cost_fn, num_outputs=1))
    Zt = torch.as_tensor(_at_target(gp, gp.encode(Cw)), dtype=torch.float64)
    d = Zt.shape[-1]

    def project(X):
        return project_to_target_fidelity(X=X, target_fidelities={j: gp.target_code_ for j in dims}, d=d)

    torch.manual_seed(seed)
    acq = qMultiFidelityMaxValueEntropy(model, candidate_set=Zt, cost_aware_utility=utility, project=project,
                                        num_fantasies=int(n_fantasies), num_mv_samples=10, maximize=False)
    choices, pairs = [], []
    for j in range(nf):
        Zf = Zt.clone()
        Zf[:, dims] = torch.as_tensor(Z_levels[j], dtype=torch.float64)
        choices.append(Zf)
        pairs += [(int(c), j) for c in cand_idx]
    choices = torch.cat(choices)
    return [pairs[i] for i in _greedy_distinct(acq, choices, [p[0] for p in pairs], q, deadline)]


def _greedy_distinct(acq, choices, keys, q, deadline: float) -> list[int]:
    """Sequential greedy batch over a finite set, at most one choice per key (candidate), with the earlier
    picks set as pending points of the acquisition; stops early (fewer picks) past ``deadline``."""
    import torch

    keys = np.asarray(keys)
    taken: list[int] = []
    for _ in range(q):
        with torch.no_grad():
            vals = torch.cat([acq(chunk.unsqueeze(-2)) for chunk in choices.split(512)])
        mask = np.isin(keys, keys[taken]) if taken else np.zeros(len(keys), bool)
        vals[torch.as_tensor(mask)] = -float("inf")
        if torch.isinf(vals).all():
            break
        taken.append(int(torch.argmax(vals)))
        if len(taken) == q or time.perf_counter() > deadline:
            break
        acq.set_X_pending(choices[taken])
    return taken
