"""BiMix: parameter recovery of L_i(r_i, s) = A_i / r_i^alpha_i * (B_i / s^beta_i + C_i)."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.errors import DataError
from mixopt.runs import match_targets_to_domains
from mixopt.surrogates import make_surrogate


def _bimix_runs(seed=0):
    rng = np.random.default_rng(seed)
    k = 3
    W = rng.dirichlet(np.full(k, 2.0), 30)
    steps = np.array([100.0, 300.0, 1000.0, 3000.0, 10000.0])
    alpha = np.array([0.10, 0.05, 0.15])
    A, B, beta, C = np.array([1.2, 0.9, 1.0]), np.array([20.0, 35.0, 10.0]), np.array([0.5, 0.6, 0.4]), \
        np.array([2.5, 3.0, 2.0])
    X, Y = [], []
    for w in W:
        for s in steps:
            X.append(np.r_[w, s])
            Y.append(A / w**alpha * (B / s**beta + C))
    return np.array(X), np.array(Y), dict(alpha=alpha, AB=A * B, beta=beta, AC=A * C)


def test_recovers_bimix_parameters_from_loss_curves():
    X, Y, true = _bimix_runs()
    s = make_surrogate("bimix", fidelity_columns=[3], random_state=0).fit(X, Y)
    np.testing.assert_allclose(s.alpha_, true["alpha"], atol=0.01)
    np.testing.assert_allclose(s.beta_, true["beta"], atol=0.02)
    np.testing.assert_allclose(s.B_, true["AB"], rtol=0.1)
    np.testing.assert_allclose(s.C_, true["AC"], rtol=0.02)
    assert (s.eps_ < 1e-3).all()  # no offset needed: proportions are never 0 here
    # default prediction quantity = the largest seen
    w = np.array([[0.2, 0.3, 0.5]])
    expect = (1.2 / 0.2**0.10 * (20 / 1e4**0.5 + 2.5))
    assert s.predict(w)[0, 0] == pytest.approx(expect, rel=1e-3)


def test_target_domain_mapping():
    X, Y, _ = _bimix_runs()
    with pytest.raises(DataError, match="target_domains"):
        make_surrogate("bimix", fidelity_columns=[3]).fit(X, Y[:, :2])
    s = make_surrogate("bimix", fidelity_columns=[3], target_domains=[2, 0], random_state=0).fit(X, Y[:, [2, 0]])
    np.testing.assert_allclose(s.alpha_, [0.15, 0.10], atol=0.01)
    assert match_targets_to_domains(["val/pubmed_abstracts_loss", "val/pubmed_loss", "loss_cc"],
                                    ["pubmed", "cc", "pubmed_abstracts"]) == [2, 0, 1]
    assert match_targets_to_domains(["average"], ["a", "b"]) is None
