"""Data Mixing Laws surrogate and the nested step law: parameter recovery on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
from synth_data import mixing_law_data

from mixopt.errors import DataError
from mixopt.surrogates import fit_step_law, make_surrogate, nested_extrapolate


def test_recovers_mixing_law_parameters():
    X, Y, (c, k, t) = mixing_law_data(n=120, k=5, m=2, noise=0.001, seed=7)
    s = make_surrogate("mixing_law", random_state=0).fit(X, Y)
    np.testing.assert_allclose(s.c_, c, atol=0.05)
    # identifiable part of t: its shape up to a common shift (sum of weights is 1); k absorbs the shift
    tc = t - t.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(s.t_ - s.t_.mean(axis=1, keepdims=True), tc, atol=0.1)
    np.testing.assert_allclose(s.k_ * np.exp(s.t_.mean(axis=1)), k * np.exp(t.mean(axis=1)), rtol=0.05)
    Xt, Yt, _ = mixing_law_data(n=50, k=5, m=2, seed=8)
    # held-out mixtures from the same law (different draw of true params -> regenerate with the true ones)
    Yt = c + k * np.exp(Xt @ t.T)
    assert np.abs(s.predict(Xt) - Yt).max() < 0.02


def test_huber_fit_is_robust_to_an_outlier_run():
    X, Y, (c, k, t) = mixing_law_data(n=80, k=4, m=1, noise=0.001, seed=3)
    Y = Y.copy()
    Y[5, 0] += 3.0  # a diverged run
    s = make_surrogate("mixing_law", random_state=0).fit(X, Y[:, 0])
    clean = np.delete(np.arange(80), 5)
    truth = (c + k * np.exp(X @ t.T))[:, 0]
    assert np.abs(s.predict(X[clean]) - truth[clean]).max() < 0.05


def test_step_law_recovery_and_extrapolation():
    s = np.array([50, 100, 200, 400, 800, 1600.0])
    law = fit_step_law(s, 2.5 + 30.0 * s**-0.6)
    assert pytest.approx(2.5, abs=0.02) == law.E
    assert law.beta == pytest.approx(0.6, abs=0.03)
    assert law(10_000) == pytest.approx(2.5 + 30.0 * 10_000**-0.6, abs=0.01)
    with pytest.raises(DataError, match="at least 3 distinct"):
        fit_step_law([1, 2], [3.0, 2.9])


def _curves(n_mix=25, seed=0):
    """Runs observed at 4 early steps; the loss at step 3200 follows a mixing law."""
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.ones(3), n_mix)
    t = np.array([-1.5, 0.3, 1.0])
    steps = np.array([100.0, 200.0, 400.0, 800.0])
    final = 2.0 + np.exp(W @ t)  # E per mixture
    rows, ys = [], []
    for i in range(n_mix):
        for s in steps:
            rows.append(np.r_[W[i], s])
            ys.append(final[i] + 40.0 * s**-0.7)
    return W, np.array(rows), np.array(ys), t


def test_nested_laws_predict_the_larger_scale_loss():
    W, X, y, t = _curves()
    target = 1e6  # effectively the asymptote E
    Wg, Yg, shapes = nested_extrapolate(X[:, :3], X[:, 3:], y[:, None], [target])
    assert len(Wg) == 25 and shapes[0][0][1] == pytest.approx(0.7, abs=0.05)
    s = make_surrogate("mixing_law", fidelity_columns=[3], target_fidelity=target, random_state=0).fit(X, y)
    truth = 2.0 + np.exp(W @ t) + 40.0 * target**-0.7
    assert np.abs(s.predict(W) - truth).max() < 0.03
    # a model fitted on the raw (not extrapolated) last-step losses is off by the remaining curve
    assert np.abs(y[3::4] - truth).mean() > 0.3
