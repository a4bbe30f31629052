"""One contract test over every registered surrogate: shapes, determinism, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from synth_data import FAST, mixing_law_data

from mixopt.errors import DataError, MixoptError
from mixopt.surrogates import available_surrogates, make_surrogate

NAMES = available_surrogates()


def _make(name, **extra):
    return make_surrogate(name, random_state=0, **{**FAST.get(name, {}), **extra})


def test_registry_lists_the_required_surrogates():
    assert {"linear", "lightgbm", "mixing_law", "bimix", "gp", "auto"} <= set(NAMES)
    with pytest.raises(MixoptError, match="unknown surrogate"):
        make_surrogate("nope")
    with pytest.raises(MixoptError, match="unknown parameter"):
        make_surrogate("linear", n_trees=3)


@pytest.mark.parametrize("name", NAMES)
def test_fit_predict_shapes_and_sklearn_contract(name):
    X, Y, _ = mixing_law_data(n=40, k=4, m=4, noise=0.001, seed=0)
    s = _make(name)
    assert s.fit(X, Y) is s
    P = s.predict(X[:7])
    assert P.shape == (7, 4) and np.isfinite(P).all()
    mean, std = s.predict(X[:7], return_std=True)
    assert mean.shape == std.shape == (7, 4) and (std >= 0).all()
    # a fitted surrogate is close to the data it was fitted on (all of them beat predicting the mean)
    assert np.abs(s.predict(X) - Y).mean() < np.abs(Y - Y.mean(0)).mean()
    # 1-D target -> 1-D predictions (bimix needs the domain of its single target)
    s1 = _make(name, **({"target_domains": [0]} if name in ("bimix",) else {}))
    p1 = s1.fit(X, Y[:, 0]).predict(X[:5])
    assert p1.shape == (5,)
    # get_params / clone work (the constructor only stores parameters)
    c = clone(s)
    assert c.get_params() == s.get_params() and not hasattr(c, "n_targets_")


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_with_random_state(name):
    X, Y, _ = mixing_law_data(n=40, k=4, m=4, noise=0.01, seed=3)
    a = _make(name).fit(X, Y).predict(X[:10])
    b = _make(name).fit(X, Y).predict(X[:10])
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_clear_errors_on_bad_input(name):
    X, Y, _ = mixing_law_data(n=30, k=4, m=4, seed=2)
    s = _make(name)
    with pytest.raises(DataError, match="not fitted"):
        s.predict(X)
    bad = X.copy()
    bad[3, 1] = -0.2
    with pytest.raises(DataError, match="row 3 has a negative weight"):
        s.fit(bad, Y)
    bad = X.copy()
    bad[5, 0] = np.nan
    with pytest.raises(DataError, match="row 5 has NaN"):
        s.fit(bad, Y)
    with pytest.raises(DataError, match="sum to"):
        s.fit(X * 1.5, Y)
    with pytest.raises(DataError, match="rows but X has"):
        s.fit(X, Y[:-1])
    Yn = Y.copy()
    Yn[2, 0] = np.nan
    with pytest.raises(DataError, match="NaN or infinite target"):
        s.fit(X, Yn)
    s.fit(X, Y)
    with pytest.raises(DataError, match="columns"):
        s.predict(X[:, :3])


@pytest.mark.parametrize("name", NAMES)
def test_rows_slightly_off_the_simplex_are_renormalised(name):
    X, Y, _ = mixing_law_data(n=40, k=4, m=4, seed=4)
    a = _make(name).fit(X, Y).predict(X[:5])
    b = _make(name).fit(X * 1.02, Y).predict(X[:5] * 0.98)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "auto"])
def test_fidelity_columns_are_accepted(name):
    rng = np.random.default_rng(0)
    W = rng.dirichlet(np.ones(3), 20)
    steps = np.array([100.0, 200.0, 400.0, 800.0])
    X = np.vstack([np.hstack([W, np.full((20, 1), s)]) for s in steps])
    Y = np.vstack([2.0 + np.exp(W @ [-1.0, 0.5, 1.0])[:, None] + 5.0 / np.sqrt(s) * np.ones((20, 3))
                   for s in steps])
    s = _make(name, fidelity_columns=[3]).fit(X, Y)
    at_target = s.predict(W[:4])  # weights only -> predicted at the largest fidelity seen
    explicit = s.predict(np.hstack([W[:4], np.full((4, 1), 800.0)]))
    assert at_target.shape == (4, 3)
    np.testing.assert_allclose(at_target, explicit, rtol=1e-6)
    with pytest.raises(DataError, match="fidelity columns must be positive"):
        _make(name, fidelity_columns=[3]).fit(np.hstack([W, np.zeros((20, 1))]), Y[:20])
