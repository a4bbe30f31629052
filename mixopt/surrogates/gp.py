"""Gaussian-process surrogate on the simplex (BoTorch), single- or multi-fidelity.

Inputs are the weights warped by ``log(w + 1e-3)`` (``warp="log"``, the default; ``"none"`` = the first
``k-1`` raw weights, the last being implied by the simplex) plus, when ``fidelity_columns``
are declared, each fidelity column mapped to ``[0, 1]`` on a log scale (1 = the target fidelity, the
largest seen unless ``target_fidelity`` says otherwise). Without fidelity: ``SingleTaskGP``; with:
``SingleTaskMultiFidelityGP(data_fidelities=...)``. Outcomes are standardised (``Standardize``), the noise
has a floor (``GreaterThan(noise_floor)``), hyper-parameters are fitted by ``fit_gpytorch_mll``.
``predict(X, return_std=True)`` returns the posterior std of the latent function (no observation noise).
"""

from __future__ import annotations

import contextlib
from contextlib import contextmanager

import numpy as np

from mixopt.surrogates.base import Surrogate

__all__ = ["GPSurrogate", "encode_inputs", "fit_gp", "torch_threads"]


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


def fit_gp(Z: np.ndarray, Y: np.ndarray, *, fidelity_dims=None, noise_floor: float = 1e-6, seed: int = 0,
           max_iter: int = 75) -> list:
    """Fit BoTorch GPs on inputs ``Z (n, d)`` and outcomes ``Y (n, m)`` (sign as given).

    One single-output GP per target. Hyper-parameters are fitted once (L-BFGS, ``max_iter`` steps, one
    attempt) on the mean of the standardised targets and shared by every target's GP, which keeps the
    cost of many targets at one fit plus ``m`` Cholesky factorisations.
    fidelity_dims: input dims holding fidelities in [0, 1] -> ``SingleTaskMultiFidelityGP``.
    Returns the list of ``m`` fitted models (float64, eval mode).
    """
    import torch
    from botorch.optim.fit import fit_gpytorch_mll_scipy
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.manual_seed(seed)
    tX = torch.as_tensor(Z, dtype=torch.float64)
    tY = torch.as_tensor(Y, dtype=torch.float64)
    sd = tY.std(dim=0).clamp_min(1e-12) if len(tY) > 1 else torch.ones(tY.shape[1], dtype=torch.float64)
    base = _make_gp(tX, ((tY - tY.mean(dim=0)) / sd).mean(dim=1, keepdim=True), fidelity_dims, noise_floor)
    mll = ExactMarginalLogLikelihood(base.likelihood, base)
    mll.train()
    # a rare numerical failure leaves the prior hyper-parameters, which still give a usable GP
    with contextlib.suppress(Exception):
        fit_gpytorch_mll_scipy(mll, options={"maxiter": int(max_iter)})
    models = []
    for j in range(tY.shape[1]):
        mj = _make_gp(tX, tY[:, j:j + 1], fidelity_dims, noise_floor)
        for name in ("covar_module", "mean_module", "likelihood"):
            getattr(mj, name).load_state_dict(getattr(base, name).state_dict())
        mj.eval()
        _ensure_pd(mj, tX[:1])
        models.append(mj)
    return models


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


def _make_gp(tX, tY, fidelity_dims, noise_floor):
    from botorch.models import SingleTaskGP, SingleTaskMultiFidelityGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.constraints import GreaterThan
    from gpytorch.likelihoods import GaussianLikelihood

    lik = GaussianLikelihood(noise_constraint=GreaterThan(noise_floor))
    if fidelity_dims:
        return SingleTaskMultiFidelityGP(tX, tY, data_fidelities=list(fidelity_dims), likelihood=lik,
                                         outcome_transform=Standardize(m=1))
    return SingleTaskGP(tX, tY, likelihood=lik, outcome_transform=Standardize(m=1))


class GPSurrogate(Surrogate):
    """BoTorch GP (``SingleTaskGP`` / ``SingleTaskMultiFidelityGP``) with a posterior std.

    max_n: fit on at most this many runs (a seeded random subset) to bound the O(n^3) cost.
    warp: input warp of the weights (``"log"`` or ``"none"``, see :func:`encode_inputs`).
    max_iter: L-BFGS steps for the (shared) hyper-parameters. n_threads: torch threads while fitting and
    predicting (``None`` = leave torch's setting). predict_chunk: rows per posterior call in ``predict``
    (bounds memory when scoring many candidates).
    """

    smooth = True
    has_std = True
    per_target = False  # fitted on the objective (its hyper-parameters are then the objective's own)

    def __init__(self, noise_floor: float = 1e-6, max_n: int = 1000, max_iter: int = 75,
                 n_threads: int | None = 1, warp: str = "log", fidelity_columns=None, target_fidelity=None,
                 random_state=None, predict_chunk: int = 2048):
        self.noise_floor = noise_floor
        self.predict_chunk = predict_chunk
        self.max_iter = max_iter
        self.n_threads = n_threads
        self.warp = warp
        self.max_n = max_n
        self.fidelity_columns = fidelity_columns
        self.target_fidelity = target_fidelity
        self.random_state = random_state

    def _fit(self, W, F, Y):
        seed = 0 if self.random_state is None else int(self.random_state)
        if len(W) > self.max_n:
            idx = np.sort(np.random.default_rng(seed).choice(len(W), self.max_n, replace=False))
            W, Y = W[idx], Y[idx]
            F = None if F is None else F[idx]
        self.f_lo_ = None if F is None else F.min(axis=0)
        self.f_hi_ = None if F is None else self.target_fidelity_
        self.Z_ = self.encode(W, F)
        dims = None if F is None else list(range(self.Z_.shape[1] - F.shape[1], self.Z_.shape[1]))
        self.fidelity_dims_ = dims
        with torch_threads(self.n_threads):
            self.models_ = fit_gp(self.Z_, Y, fidelity_dims=dims, noise_floor=self.noise_floor, seed=seed,
                                  max_iter=self.max_iter)

    def encode(self, W, F=None) -> np.ndarray:
        """GP inputs of weights ``W (n, k)`` at fidelity ``F (n, f)`` (default: the target fidelity)."""
        if F is None and getattr(self, "f_hi_", None) is not None:
            F = np.tile(self.f_hi_, (len(W), 1))
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
