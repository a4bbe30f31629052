"""The RegMix-style initial design: on the simplex, within bounds, distinct, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.design import project_to_bounded_simplex, sample_mixtures
from mixopt.errors import DataError

PRIOR = np.array([0.55, 0.25, 0.1, 0.06, 0.04])


def test_rows_on_simplex_and_distinct():
    X = sample_mixtures(PRIOR, 300, seed=0)
    assert X.shape == (300, 5)
    assert np.all(X >= 0) and np.allclose(X.sum(1), 1.0)
    assert len({r.tobytes() for r in np.round(X, 3)}) == 300


def test_same_seed_same_mixtures_other_seed_other_mixtures():
    a = sample_mixtures(PRIOR, 50, seed=3)
    b = sample_mixtures(PRIOR, 50, seed=3)
    c = sample_mixtures(PRIOR, 50, seed=4)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_design_centred_on_sharpened_prior():
    # temperature 1: centred on the prior; temperature 0: centred on uniform
    m1 = sample_mixtures(PRIOR, 2000, seed=0, temperature=1.0, concentrations=(5.0,)).mean(0)
    m0 = sample_mixtures(PRIOR, 2000, seed=0, temperature=0.0, concentrations=(5.0,)).mean(0)
    assert np.abs(m1 - PRIOR).max() < 0.02
    assert np.abs(m0 - 0.2).max() < 0.02


def test_small_concentrations_give_sparser_mixtures():
    sparse = sample_mixtures(PRIOR, 500, seed=0, concentrations=(0.1,))
    dense = sample_mixtures(PRIOR, 500, seed=0, concentrations=(5.0,))
    assert (sparse < 0.01).mean() > 2 * (dense < 0.01).mean()
    # a range of concentrations covers both regimes
    both = sample_mixtures(PRIOR, 500, seed=0, concentrations=(0.1, 5.0))
    assert (sparse < 0.01).mean() > (both < 0.01).mean() > (dense < 0.01).mean()


def test_weight_bounds_respected():
    X = sample_mixtures(PRIOR, 200, seed=1, min_weight=0.05, max_weight=[0.4, 0.5, 0.5, 0.5, 0.5])
    assert X.min() >= 0.05 - 1e-9
    assert X[:, 0].max() <= 0.4 + 1e-9
    assert np.allclose(X.sum(1), 1.0)


def test_epoch_cap_respected():
    tokens = np.array([1e9, 1e9, 1e7, 1e7, 1e7])  # three small domains
    X = sample_mixtures(PRIOR, 200, seed=2, domain_tokens=tokens, target_tokens=1e8, max_epochs=2.0)
    epochs = X * 1e8 / tokens
    assert epochs.max() <= 2.0 + 1e-6
    assert np.allclose(X.sum(1), 1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(min_weight=0.3), "min_weight sums"),
        (dict(max_weight=0.1), "upper bounds"),
        (dict(domain_tokens=[1, 1, 1, 1, 1], target_tokens=100, max_epochs=1), "upper bounds"),
        (dict(temperature=-1), "temperature"),
        (dict(concentrations=(0.0, 1.0)), "concentrations"),
    ],
)
def test_infeasible_or_bad_arguments_raise(kwargs, match):
    with pytest.raises(DataError, match=match):
        sample_mixtures(PRIOR, 10, seed=0, **kwargs)


def test_bad_prior_raises():
    with pytest.raises(DataError, match="prior"):
        sample_mixtures([0.5, -0.1, 0.6], 4, seed=0)


def test_too_tight_bounds_cannot_give_enough_distinct_mixtures():
    # only one mixture satisfies these bounds
    with pytest.raises(DataError, match="distinct"):
        sample_mixtures([0.5, 0.5], 5, seed=0, min_weight=0.5, max_draws=200)


def test_projection_is_identity_inside_and_feasible_outside():
    lo, hi = np.full(3, 0.1), np.full(3, 0.6)
    inside = np.array([[0.2, 0.3, 0.5]])
    assert np.allclose(project_to_bounded_simplex(inside, lo, hi), inside)
    out = project_to_bounded_simplex(np.array([[1.0, 0.0, 0.0]]), lo, hi)
    assert np.allclose(out, [[0.6, 0.2, 0.2]])
