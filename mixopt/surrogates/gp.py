"""Gaussian-process surrogate on the simplex (BoTorch), single- or multi-fidelity.

Inputs are the weights warped by ``log(w + 1e-3)`` (``warp="log"``, the default; ``"none"`` = the first
``k-1`` raw weights, the last being implied by the simplex) plus, when ``fidelity_columns``
are declared, each fidelity column mapped to ``[0, 1]`` on a log scale (1 = the target fidelity, the
largest seen unless ``target_fidelity`` says otherwise). Without fidelity: ``SingleTaskGP``; with:
``SingleTaskMultiFidelityGP(data_fidelities=...)``. Outcomes are standardised (``Standardize``), the noise
has a floor (``GreaterThan(noise_floor)``), hyper-parameters are fitted by ``fit_gpytorch_mll``.
``predict(X, return_std=True)`` returns the posterior std of the latent function (no observation noise).

Heteroscedastic noise: ``fit(X, y, y_var=...)`` gives each run its own known noise variance (from repeated
runs, :func:`mixopt.noise.estimate_noise`); the GP then keeps every run as its own row with a fixed noise
(BoTorch's ``train_Yvar``: a ``FixedNoiseGaussianLikelihood``) instead of learning one noise level. Per-row
noise rather than the mean of each mixture's repeats with variance ``var / r``: for a Gaussian likelihood
both give the same posterior, and per-row keeps one row per run (the run table's rule), works unchanged
with repeats at several fidelities and with cross-validation folds. Without ``y_var`` nothing changes.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import numpy as np

from mixopt.errors import DataError
from mixopt.events import fallback
from mixopt.surrogates.base import Surrogate

__all__ = ["GPSurrogate", "encode_inputs", "fit_gp", "torch_threads"]

log = logging.getLogger(__name__)


@contextmanager
def torch_threads(n: int | None):
    """Temporarily cap torch's intra-op threads (small GPs are much faster single-threaded)."""
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def encode_inputs(W: np.ndarray, F: np.ndarray | None, f_lo=None, f_hi=None, *, warp: str = "log",
                  eps: float = 1e-3) -> np.ndarray:
    """``(n, k)`` weights (+ ``(n, f)`` fidelity) -> GP inputs in ``[0, 1]``.

    warp ``"log"`` (default): every weight as ``log(w + eps)`` rescaled to ``[0, 1]`` (``k`` dims) — losses
    move with the log of a domain's share, so this is much closer to stationary than raw weights;
    ``"none"``: the first ``k-1`` raw weights (the last is implied by the simplex). Fidelity columns are
    mapped to ``[0, 1]`` on a log scale between ``f_lo`` and ``f_hi`` (1 = the target fidelity).
    """
    if warp == "log":
        Z = (np.log(W + eps) - np.log(eps)) / (np.log(1.0 + eps) - np.log(eps))
    elif warp == "none":
        Z = W[:, :-1] if W.shape[1] > 1 else W
    else:
        raise ValueError(f"unknown input warp {warp!r} (log, none)")
    if F is None:
        return Z
    lf, lo, hi = np.log(F), np.log(np.asarray(f_lo, float)), np.log(np.asarray(f_hi, float))
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.hstack([Z, np.clip((lf - lo) / span, 0.0, 1.5)])


def _fit_hyper(model, max_iter: int) -> str | None:
    """Fit a model's hyper-parameters by L-BFGS (one attempt); the failure message, or ``None``."""
    from botorch.optim.fit import fit_gpytorch_mll_scipy
    from gpytorch.mlls import ExactMarginalLogLikelihood

    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    mll.train()
    try:
        fit_gpytorch_mll_scipy(mll, options={"maxiter": int(max_iter)})
    except Exception as e:  # noqa: BLE001 - numerical trouble: the prior hyper-parameters still give a GP
        return f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    return None


def fit_gp(Z: np.ndarray, Y: np.ndarray, *, fidelity_dims=None, noise_floor: float = 1e-6, seed: int = 0,
           max_iter: int = 75, share_hyper: bool = True, task_feature: int | None = None,
           output_task: int | None = None, n_tasks: int | None = None, init_state: dict | None = None,
           Yvar: np.ndarray | None = None) -> tuple[list, list[str]]:
    """Fit BoTorch GPs on inputs ``Z (n, d)`` and outcomes ``Y (n, m)`` (sign as given).

    One single-output GP per target. ``share_hyper``: hyper-parameters fitted once (L-BFGS, ``max_iter``
    steps, one attempt) on the mean of the standardised targets and shared by every target's GP (one fit
    plus ``m`` Cholesky factorisations); else each target gets its own.
    fidelity_dims: input dims holding fidelities in [0, 1] -> ``SingleTaskMultiFidelityGP``; or
    task_feature: the input dim holding a fidelity level index -> ``MultiTaskGP`` over ``n_tasks`` levels
    (levels without a run included) predicting ``output_task``. init_state: hyper-parameters to start
    L-BFGS from (``GPSurrogate.hyper_state()`` of a fit on related data: a warm start).
    Yvar: ``(n, m)`` known noise variances of ``Y`` (a fixed, per-row noise; ``None``: learned, homoscedastic).
    Returns the ``m`` fitted models (float64, eval mode) and the hyper-parameter fits that failed (each
    logged as a warning; such a model keeps its prior hyper-parameters).
    """
    import torch

    torch.manual_seed(seed)
    tX = torch.as_tensor(Z, dtype=torch.float64)
    tY = torch.as_tensor(Y, dtype=torch.float64)
    tV = None
    if Yvar is not None:  # a floor keeps the kernel matrix positive definite when repeats happened to agree
        floor = noise_floor * tY.var(dim=0).clamp_min(1e-12) if len(tY) > 1 else torch.full((tY.shape[1],), noise_floor)
        tV = torch.maximum(torch.as_tensor(Yvar, dtype=torch.float64), floor)
    failures: list[str] = []
    all_tasks = None if task_feature is None else list(range(int(n_tasks or (tX[:, task_feature].max() + 1))))
    base = None
    if share_hyper or tY.shape[1] == 1:
        sd = tY.std(dim=0).clamp_min(1e-12) if len(tY) > 1 else torch.ones(tY.shape[1], dtype=torch.float64)
        # the mean of the standardised targets; its noise: the mean of theirs over m (independent noise)
        bV = None if tV is None else (tV / sd**2).mean(dim=1, keepdim=True) / tY.shape[1]
        base = _make_gp(tX, ((tY - tY.mean(dim=0)) / sd).mean(dim=1, keepdim=True), fidelity_dims, noise_floor,
                        task_feature, output_task, all_tasks, bV)
        if init_state:
            for name, state in init_state.items():
                if tV is None or name != "likelihood":  # a fixed noise is the data's, never a warm start's
                    getattr(base, name).load_state_dict(state)
        failures.append(_fit_hyper(base, max_iter) if max_iter > 0 else None)
    models = []
    for j in range(tY.shape[1]):
        mj = _make_gp(tX, tY[:, j:j + 1], fidelity_dims, noise_floor, task_feature, output_task, all_tasks,
                      None if tV is None else tV[:, j:j + 1])
        if base is not None:
            for name in ("covar_module", "mean_module") + (("likelihood",) if tV is None else ()):
                getattr(mj, name).load_state_dict(getattr(base, name).state_dict())
        else:
            failures.append(_fit_hyper(mj, max_iter))
        mj.eval()
        _ensure_pd(mj, tX[:1])
        models.append(mj)
    failures = [f for f in failures if f]
    for f in failures:
        fallback("gp.hyper_fit_failed", f"GP hyper-parameter fit failed ({f}); using the prior hyper-parameters", log)
    return models, failures


def _ensure_pd(model, x) -> None:
    """Raise the noise (x10 per try, up to 1e-2 in standardised units) until the posterior factorises."""
    import torch
    from linear_operator.utils.errors import NotPSDError

    for _ in range(6):
        try:
            with torch.no_grad():
                model.posterior(x).mean  # noqa: B018 (builds the prediction cache)
            return
        except NotPSDError:
            noise = model.likelihood.noise.detach()
            if float(noise.max()) >= 1e-2:
                raise
            model.likelihood.noise = (noise * 10).clamp_min(1e-5)
            model.prediction_strategy = None


def _make_gp(tX, tY, fidelity_dims, noise_floor, task_feature=None, output_task=None, all_tasks=None, tV=None):
    from botorch.models import MultiTaskGP, SingleTaskGP, SingleTaskMultiFidelityGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.constraints import GreaterThan
    from gpytorch.likelihoods import GaussianLikelihood

    if tV is not None:  # known per-row noise: BoTorch builds a FixedNoiseGaussianLikelihood from train_Yvar
        kw = {"train_Yvar": tV}
    else:
        kw = {"likelihood": GaussianLikelihood(noise_constraint=GreaterThan(noise_floor))}
    if task_feature is not None:
        if tV is not None:
            return _fixed_noise_multitask()(
                tX, tY, task_feature=task_feature, output_tasks=[int(output_task)], **kw, all_tasks=all_tasks,
                outcome_transform=Standardize(m=1))
        return MultiTaskGP(tX, tY, task_feature=task_feature, output_tasks=[int(output_task)], **kw,
                           all_tasks=all_tasks, outcome_transform=Standardize(m=1))
    if fidelity_dims:
        return SingleTaskMultiFidelityGP(tX, tY, data_fidelities=list(fidelity_dims), **kw,
                                         outcome_transform=Standardize(m=1))
    return SingleTaskGP(tX, tY, **kw, outcome_transform=Standardize(m=1))


def _fixed_noise_multitask():
    """``MultiTaskGP`` whose predictive noise works with fixed per-run noise in every case the multi-fidelity
    MES needs. BoTorch 0.18's ``MultiTaskGP`` refuses a noise tensor for new points (a fantasy's: the mean
    training noise) and its per-task mean noise fails on batched fantasy models; here a noise tensor is
    added as is, and the per-task mean training noise is computed batch-aware."""
    import torch
    from botorch.models import MultiTaskGP
    from gpytorch.distributions import MultivariateNormal
    from linear_operator.operators import DiagLinearOperator

    class FixedNoiseMultiTaskGP(MultiTaskGP):
        def _apply_noise(self, X, mvn, observation_noise):
            if observation_noise is False:
                return mvn
            if torch.is_tensor(observation_noise):
                noise = observation_noise.mean().expand(mvn.mean.shape)
            else:  # each test point gets the mean training noise of its task (level)
                tf = self._map_tasks(self.train_inputs[0][..., self._task_feature]).long()  # (*b, n)
                nz, tf = torch.broadcast_tensors(self.likelihood.noise, tf)
                onehot = torch.nn.functional.one_hot(tf, self.num_tasks).to(nz)  # (*b, n, T)
                per_task = (nz.unsqueeze(-1) * onehot).sum(-2) / onehot.sum(-2).clamp_min(1)  # (*b, T)
                test = self._map_tasks(X[..., self._task_feature]).long()  # (*bx, q)
                shape = torch.broadcast_shapes(per_task.shape[:-1] + test.shape[-1:], test.shape)
                idx = test.expand(shape).unsqueeze(-1)
                noise = per_task.unsqueeze(-2).expand(*shape, per_task.shape[-1]).gather(-1, idx).squeeze(-1)
                noise = noise.expand(mvn.mean.shape)
            return MultivariateNormal(mvn.mean, mvn.lazy_covariance_matrix + DiagLinearOperator(noise.to(mvn.mean)))

    return FixedNoiseMultiTaskGP


class GPSurrogate(Surrogate):
    """BoTorch GP (``SingleTaskGP``; with fidelity columns ``SingleTaskMultiFidelityGP`` or ``MultiTaskGP``)
    with a posterior std.

    fidelity_model: how fidelities relate. ``"downsampling"``: fidelity columns as inputs on a log scale
    with BoTorch's downsampling kernel (smooth in fidelity; can extrapolate to an unseen target).
    ``"multitask"``: each distinct fidelity is a task of an intrinsic-coregionalisation model whose
    full-rank task covariance is learned (target ~ correlated with each cheaper level: the autoregressive
    idea, with the correlation fitted); needs runs at the target fidelity (without any it falls back to
    ``downsampling``, logged). ``fidelity_levels`` ``(L, f)`` lists every level (also those without a
    run yet), so the acquisition can price and predict them. ``fidelity_model_`` says which was used.

    max_n: fit on at most this many runs (a seeded random subset) to bound the O(n^3) cost.
    share_hyper: with several targets, one set of hyper-parameters for all (fitted on their standardised
    mean) or one per target. ``fit_failures_`` lists hyper-parameter fits that failed (also logged).
    warp: input warp of the weights (``"log"`` or ``"none"``, see :func:`encode_inputs`).
    max_iter: L-BFGS steps for the (shared) hyper-parameters (0: keep ``init_state`` as it is). init_state:
    hyper-parameters to start from (:meth:`hyper_state` of another fit). n_threads: torch threads while fitting and
    predicting (``None`` = leave torch's setting). predict_chunk: rows per posterior call in ``predict``
    (bounds memory when scoring many candidates).
    """

    smooth = True
    has_std = True
    uses_noise = True  # fit(X, y, y_var=...): known per-run noise (heteroscedastic); see the module docstring
    per_target = False  # fitted on the objective (its hyper-parameters are then the objective's own)

    def __init__(self, noise_floor: float = 1e-6, max_n: int = 1000, max_iter: int = 75,
                 n_threads: int | None = 1, warp: str = "log", share_hyper: bool = True,
                 fidelity_model: str = "downsampling", fidelity_levels=None, init_state=None,
                 fidelity_columns=None, target_fidelity=None, random_state=None, predict_chunk: int = 2048):
        self.noise_floor = noise_floor
        self.init_state = init_state
        self.fidelity_levels = fidelity_levels
        self.share_hyper = share_hyper
        self.fidelity_model = fidelity_model
        self.predict_chunk = predict_chunk
        self.max_iter = max_iter
        self.n_threads = n_threads
        self.warp = warp
        self.max_n = max_n
        self.fidelity_columns = fidelity_columns
        self.target_fidelity = target_fidelity
        self.random_state = random_state

    def _fit(self, W, F, Y, Yvar=None):
        seed = 0 if self.random_state is None else int(self.random_state)
        if len(W) > self.max_n:
            idx = np.sort(np.random.default_rng(seed).choice(len(W), self.max_n, replace=False))
            W, Y = W[idx], Y[idx]
            F = None if F is None else F[idx]
            Yvar = None if Yvar is None else Yvar[idx]
        self.noise_var_ = Yvar  # (n, m) the fixed noise variances fitted with, or None (learned noise)
        if self.fidelity_model not in ("downsampling", "multitask"):
            raise DataError(f"gp: fidelity_model must be 'downsampling' or 'multitask', got {self.fidelity_model!r}")
        self.f_lo_ = None if F is None else F.min(axis=0)
        self.f_hi_ = None if F is None else self.target_fidelity_
        self.tasks_, self.fidelity_model_ = None, None if F is None else "downsampling"
        if F is not None and self.fidelity_model == "multitask":
            if np.any(np.isclose(F, self.f_hi_[None, :], rtol=1e-9, atol=0).all(axis=1)):
                known = [] if self.fidelity_levels is None else [np.atleast_2d(np.asarray(self.fidelity_levels, float))]
                levels = np.unique(np.vstack([F, self.f_hi_[None, :], *known]), axis=0)
                self.tasks_ = levels[np.argsort(np.log(levels).sum(axis=1), kind="stable")]
                self.fidelity_model_ = "multitask"
            else:
                fallback("gp.multitask_without_target", "gp: no run at the target fidelity yet; the multitask "
                         "model needs one, using the downsampling kernel", log)
        self.Z_ = self.encode(W, F)
        dims = None if F is None else ([self.Z_.shape[1] - 1] if self.tasks_ is not None
                                       else list(range(self.Z_.shape[1] - F.shape[1], self.Z_.shape[1])))
        self.fidelity_dims_ = dims
        self.target_code_ = float(self._task_index(self.f_hi_[None, :])[0]) if self.tasks_ is not None else 1.0
        with torch_threads(self.n_threads):
            self.models_, self.fit_failures_ = fit_gp(
                self.Z_, Y, fidelity_dims=None if self.tasks_ is not None else dims, noise_floor=self.noise_floor,
                seed=seed, max_iter=self.max_iter, share_hyper=self.share_hyper,
                task_feature=self.Z_.shape[1] - 1 if self.tasks_ is not None else None,
                output_task=int(self.target_code_) if self.tasks_ is not None else None,
                n_tasks=None if self.tasks_ is None else len(self.tasks_),
                init_state=self.init_state if self.share_hyper or Y.shape[1] == 1 else None, Yvar=Yvar)

    def hyper_state(self) -> dict:
        """The fitted hyper-parameters (kernel, mean, likelihood) of the first model: ``init_state`` for a
        warm-started fit on related data (e.g. a cross-validation fold)."""
        m = self.models_[0]
        return {name: {k: v.clone() for k, v in getattr(m, name).state_dict().items()}
                for name in ("covar_module", "mean_module", "likelihood")}

    def _task_index(self, F: np.ndarray) -> np.ndarray:
        """``(n,)`` the level (task) index of each fidelity row; DataError for a fidelity never seen."""
        F = np.atleast_2d(F)
        out = np.full(len(F), -1, dtype=np.int64)
        for j, lv in enumerate(self.tasks_):
            out[np.isclose(F, lv[None, :], rtol=1e-9, atol=0).all(axis=1)] = j
        if (out < 0).any():
            raise DataError(f"gp (multitask): fidelity {F[int(np.argmax(out < 0))].tolist()} is not one of the "
                            f"fitted levels {self.tasks_.tolist()}")
        return out

    def encode(self, W, F=None) -> np.ndarray:
        """GP inputs of weights ``W (n, k)`` at fidelity ``F (n, f)`` (default: the target fidelity)."""
        if F is None and getattr(self, "f_hi_", None) is not None:
            F = np.tile(self.f_hi_, (len(W), 1))
        if getattr(self, "tasks_", None) is not None:
            return np.hstack([encode_inputs(W, None, warp=self.warp), self._task_index(F)[:, None].astype(float)])
        return encode_inputs(W, F, getattr(self, "f_lo_", None), getattr(self, "f_hi_", None), warp=self.warp)

    def _predict(self, W, F):
        import torch

        tZ = torch.as_tensor(self.encode(W, F), dtype=torch.float64)
        mean, std = [], []
        # Predict in chunks: a posterior over many candidates at once materialises an (n, n) covariance
        # (20k proposer candidates -> tens of GB), while only its diagonal is needed here.
        with torch.no_grad(), torch_threads(self.n_threads):
            for model in self.models_:
                m_parts, s_parts = [], []
                for chunk in torch.split(tZ, self.predict_chunk):
                    post = model.posterior(chunk)
                    m_parts.append(post.mean.numpy().reshape(-1))
                    s_parts.append(post.variance.clamp_min(0).sqrt().numpy().reshape(-1))
                mean.append(np.concatenate(m_parts))
                std.append(np.concatenate(s_parts))
        return np.column_stack(mean), np.column_stack(std)
