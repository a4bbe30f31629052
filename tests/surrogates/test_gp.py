"""The GP surrogate's fidelity models: smooth downsampling kernel vs a multitask model over levels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from mixopt.errors import DataError
from mixopt.surrogates import make_surrogate

K = 4
T = np.array([-1.5, 0.5, 1.0, 0.0])
LEVELS = np.array([[1e4], [4e4], [1.6e5]])


def _truth(W, level):
    """The target level is a mixing law; cheaper levels add a bias that depends on the mixture."""
    return 2.0 + np.exp(W @ T) + [0.8, 0.3, 0.0][level] * (1 + W[:, 0])


def _table(seed=0, n=60):
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.ones(K), n)
    lv = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    y = np.array([_truth(W[i:i + 1], lv[i])[0] for i in range(n)]) + 0.01 * rng.normal(size=n)
    return np.column_stack([W, LEVELS[lv]]), y


@pytest.mark.parametrize("model", ["downsampling", "multitask"])
def test_both_fidelity_models_rank_the_target_level(model):
    X, y = _table()
    g = make_surrogate("gp", random_state=0, max_iter=40, fidelity_columns=[K], target_fidelity=[1.6e5],
                       fidelity_model=model).fit(X, y)
    assert g.fidelity_model_ == model
    Wt = np.random.default_rng(9).dirichlet(np.ones(K), 200)
    mean, std = g.predict(Wt, return_std=True)  # at the target fidelity by default
    assert spearmanr(mean, _truth(Wt, 2)).statistic > 0.85 and (std > 0).all()
    # predictions at a cheap level see its bias
    cheap = g.predict(np.column_stack([Wt, np.full(200, 1e4)]))
    assert np.mean(cheap - mean) > 0.4


def test_multitask_needs_a_run_at_the_target_and_says_when_it_falls_back():
    X, y = _table()
    cheap_only = X[:, K] < 1.6e5
    g = make_surrogate("gp", random_state=0, max_iter=30, fidelity_columns=[K], target_fidelity=[1.6e5],
                       fidelity_model="multitask").fit(X[cheap_only], y[cheap_only])
    assert g.fidelity_model_ == "downsampling"
    mt = make_surrogate("gp", random_state=0, max_iter=30, fidelity_columns=[K], target_fidelity=[1.6e5],
                        fidelity_model="multitask").fit(X, y)
    with pytest.raises(DataError, match="not one of the fitted levels"):
        mt.predict(np.column_stack([X[:2, :K], np.full(2, 2e4)]))
    with pytest.raises(DataError, match="fidelity_model"):
        make_surrogate("gp", fidelity_columns=[K], fidelity_model="ar2").fit(X, y)


def test_a_failed_hyper_parameter_fit_is_reported_not_swallowed(caplog, monkeypatch):
    import botorch.optim.fit

    def broken(mll, **kw):  # the numerical trouble L-BFGS sometimes hits, made certain
        raise RuntimeError("Cholesky failed")

    monkeypatch.setattr(botorch.optim.fit, "fit_gpytorch_mll_scipy", broken)
    X, y = _table(n=20)
    with caplog.at_level("WARNING"):
        g = make_surrogate("gp", random_state=0).fit(X[:, :K], y)
    assert g.fit_failures_ == ["RuntimeError: Cholesky failed"]
    assert "GP hyper-parameter fit failed (RuntimeError: Cholesky failed)" in caplog.text
    assert np.isfinite(g.predict(X[:3, :K])).all()  # the prior hyper-parameters still give a usable GP
