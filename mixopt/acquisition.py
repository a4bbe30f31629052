"""Batch Bayesian-optimisation selection over a finite candidate set (BoTorch), cost-aware multi-fidelity.

:func:`select_batch` picks ``q`` (candidate, fidelity) pairs to run next:

- several fidelities: a ``SingleTaskMultiFidelityGP`` on (weights, log-scaled fidelity) and
  ``qMultiFidelityMaxValueEntropy`` with an ``InverseCostWeightedUtility`` (cost per fidelity from
  ``costs``, interpolated on the fidelity axis), maximised over candidates × fidelities with
  ``optimize_acqf_discrete`` (sequential greedy for ``q > 1``);
- one fidelity, or as a fallback when the multi-fidelity acquisition fails or the GP fit already used
  half of ``time_budget``: ``qLogNoisyExpectedImprovement`` at the target fidelity.

The objective is minimised (the GP models ``-y``).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from mixopt.errors import MixoptError
from mixopt.surrogates.base import validate_weights_matrix
from mixopt.surrogates.gp import encode_inputs, fit_gp, torch_threads

__all__ = ["select_batch"]

log = logging.getLogger(__name__)


def _check(X_obs, y_obs, candidates, q):
    W = validate_weights_matrix(X_obs, what="X_obs")
    y = np.asarray(y_obs, float).ravel()
    if y.shape != (len(W),) or not np.isfinite(y).all():
        raise MixoptError(f"select_batch: y_obs must be {len(W)} finite objective values")
    C = validate_weights_matrix(candidates, what="candidates")
    if C.shape[1] != W.shape[1]:
        raise MixoptError(f"select_batch: candidates have {C.shape[1]} domains, observations {W.shape[1]}")
    if q < 1:
        raise MixoptError("select_batch: q must be >= 1")
    return W, y, C


def select_batch(X_obs, y_obs, candidates, *, q: int, fidelity_obs=None, fidelity_values=None, costs=None,
                 target_fidelity=None, seed: int = 0, time_budget: float = 20.0, max_candidates: int = 1024,
                 mes_candidates: int = 256, n_threads: int | None = 1) -> list[tuple[int, int]]:
    """Choose ``q`` distinct (candidate index, fidelity index) pairs to evaluate next.

    X_obs: ``(n, k)`` observed mixtures; y_obs: ``(n,)`` their objective (lower is better).
    candidates: ``(c, k)`` mixtures to choose from. fidelity_values: ``(F,)`` fidelities (tokens, steps or
    size; cheapest first, the last is the target unless ``target_fidelity`` names another) and
    fidelity_obs: ``(n,)`` the fidelity value of each observation. costs: ``(F,)`` cost per fidelity
    (default: proportional to the fidelity value). Candidates beyond ``max_candidates`` are subsampled
    (seeded); the multi-fidelity MES scores at most ``mes_candidates`` of them (x fidelities). If the
    acquisition runs past ``time_budget`` seconds, the rest of the batch comes from qLogNEI at the target
    fidelity. Without fidelities every pair has fidelity index 0.
    """
    import torch

    W, y, C = _check(X_obs, y_obs, candidates, q)
    q = int(min(q, len(C)))
    rng = np.random.default_rng(seed)
    cand_idx = np.arange(len(C)) if len(C) <= max_candidates else np.sort(
        rng.choice(len(C), max_candidates, replace=False))
    t0 = time.perf_counter()
    fv = None if fidelity_values is None else np.asarray(fidelity_values, float).ravel()
    with torch_threads(n_threads):
        torch.manual_seed(seed)
        if fv is None or len(fv) < 2:
            model = fit_gp(encode_inputs(W, None), -y[:, None], seed=seed)[0]
            picks = _log_nei(model, encode_inputs(W, None), encode_inputs(C[cand_idx], None), q)
            return [(int(cand_idx[i]), 0) for i in picks]
        if fidelity_obs is None:
            raise MixoptError("select_batch: fidelity_values given but fidelity_obs missing")
        fo = np.asarray(fidelity_obs, float).ravel()
        if fo.shape != (len(W),) or (fo <= 0).any() or (fv <= 0).any():
            raise MixoptError("select_batch: fidelity_obs must be n positive values (same units as fidelity_values)")
        t_idx = int(np.argmax(fv)) if target_fidelity is None else int(np.argmin(np.abs(fv - target_fidelity)))
        lo, hi = np.array([fv.min()]), np.array([fv[t_idx]])
        Zo = encode_inputs(W, fo[:, None], lo, hi)
        model = fit_gp(Zo, -y[:, None], fidelity_dims=[Zo.shape[1] - 1], seed=seed)[0]
        Zc = encode_inputs(C[cand_idx], np.full((len(cand_idx), 1), fv[t_idx]), lo, hi)
        elapsed = time.perf_counter() - t0
        if elapsed < 0.5 * time_budget:
            try:
                cost = np.asarray(costs, float).ravel() if costs is not None else fv / fv.max()
                if cost.shape != fv.shape or (cost <= 0).any():
                    raise MixoptError("select_batch: costs must be one positive value per fidelity")
                mes_idx = cand_idx if len(cand_idx) <= mes_candidates else np.sort(
                    rng.choice(cand_idx, mes_candidates, replace=False))
                deadline = t0 + time_budget
                picks = _mf_mes(model, C[mes_idx], mes_idx, fv, cost, lo, hi, q, seed, deadline)
                if len(picks) < q:  # out of time: top up at the target fidelity with qLogNEI
                    log.info("multi-fidelity acquisition hit the time budget after %d picks", len(picks))
                    rest = np.setdiff1d(cand_idx, [c for c, _ in picks])
                    Zb = Zo.copy()
                    Zb[:, -1] = 1.0
                    Zr = encode_inputs(C[rest], np.full((len(rest), 1), fv[t_idx]), lo, hi)
                    picks += [(int(rest[i]), t_idx) for i in _log_nei(model, Zb, Zr, q - len(picks))]
                return picks
            except MixoptError:
                raise
            except Exception as e:  # numerical trouble in MES: fall back to the target-fidelity EI
                log.warning("multi-fidelity acquisition failed (%s); using qLogNEI at the target fidelity", e)
        else:
            log.info("GP fit took %.1fs; using qLogNEI at the target fidelity", elapsed)
        Zb = Zo.copy()
        Zb[:, -1] = encode_inputs(W[:1], np.array([[fv[t_idx]]]), lo, hi)[0, -1]
        picks = _log_nei(model, Zb, Zc, q)
        return [(int(cand_idx[i]), t_idx) for i in picks]


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
    from botorch.optim import optimize_acqf_discrete

    tb = torch.as_tensor(Z_base, dtype=torch.float64)
    tc = torch.as_tensor(Z_cand, dtype=torch.float64)
    acq = qLogNoisyExpectedImprovement(model, X_baseline=tb, prune_baseline=True)
    chosen, _ = optimize_acqf_discrete(acq, q=q, choices=tc, unique=True, max_batch_size=512)
    return _match_rows(chosen, tc)


def _mf_mes(model, Cw, cand_idx, fv, cost, lo, hi, q, seed, deadline) -> list[tuple[int, int]]:
    import torch
    from botorch.acquisition.cost_aware import InverseCostWeightedUtility
    from botorch.acquisition.max_value_entropy_search import qMultiFidelityMaxValueEntropy
    from botorch.acquisition.utils import project_to_target_fidelity
    from botorch.models.deterministic import GenericDeterministicModel

    nf = len(fv)
    z_fid = encode_inputs(Cw[:1].repeat(nf, 0), fv[:, None], lo, hi)[:, -1]
    zs, cs = torch.as_tensor(z_fid), torch.as_tensor(cost)
    order = torch.argsort(zs)
    zs, cs = zs[order], cs[order]

    def cost_fn(X):  # piecewise-linear cost on the fidelity axis, exact at the given fidelities
        z = X[..., -1].clamp(zs[0], zs[-1])
        i = torch.searchsorted(zs, z.contiguous()).clamp(1, len(zs) - 1) if len(zs) > 1 else torch.zeros_like(z)
        z0, z1, c0, c1 = zs[i - 1], zs[i], cs[i - 1], cs[i]
        frac = torch.where(z1 > z0, (z - z0) / (z1 - z0).clamp_min(1e-12), torch.zeros_like(z))
        return (c0 + frac * (c1 - c0)).unsqueeze(-1)

    cost_model = GenericDeterministicModel(cost_fn, num_outputs=1)
    utility = InverseCostWeightedUtility(cost_model=cost_model)
    Zt = torch.as_tensor(encode_inputs(Cw, np.full((len(Cw), 1), fv.max()), lo, hi), dtype=torch.float64)
    Zt[:, -1] = 1.0
    d = Zt.shape[-1]  # weight dims + 1 fidelity dim (the last)

    def project(X):
        return project_to_target_fidelity(X=X, target_fidelities={d - 1: 1.0}, d=d)

    torch.manual_seed(seed)
    acq = qMultiFidelityMaxValueEntropy(model, candidate_set=Zt, cost_aware_utility=utility, project=project,
                                        num_fantasies=8, num_mv_samples=10)
    choices, pairs = [], []
    for fi in range(nf):
        Zf = Zt.clone()
        Zf[:, -1] = float(z_fid[fi])
        choices.append(Zf)
        pairs += [(int(c), fi) for c in cand_idx]
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
