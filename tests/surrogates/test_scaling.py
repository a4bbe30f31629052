"""The nested step / size laws on sparse grids: mixtures run at one size only, two sizes, any row order."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.runs import match_rows
from mixopt.surrogates import make_surrogate, nested_extrapolate

K = 4
T = np.array([-1.2, 0.4, 0.9, -0.1])
BETA = 0.35


def _truth(W, size):
    """A mixing law for the large-size loss plus a power law in model size whose amplitude moves with the
    mixture: ``L = 2 + 0.8 exp(t.w) + B(w) N^-0.35``."""
    E = 2.0 + 0.8 * np.exp(W @ T)
    B = 25.0 * np.exp(0.3 * (W @ np.array([1.0, -0.5, 0.2, 0.0])))
    return E + B * size**-BETA


def _table(sizes, *, n_mix=60, noise=0.0, seed=0):
    """Half the mixtures at every size, half at the smallest only."""
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.ones(K), n_mix)
    rows, ys = [], []
    for i in range(n_mix):
        for s in (sizes if i % 2 == 0 else sizes[:1]):
            rows.append(np.r_[W[i], s])
            ys.append(_truth(W[i][None, :], s)[0] + noise * rng.standard_normal())
    return W, np.array(rows), np.array(ys)


@pytest.mark.parametrize("noise", [0.0, 0.005])
def test_extrapolated_target_size_loss_within_one_percent_for_any_row_order(noise):
    sizes, target = np.array([1e6, 3e6, 1e7]), 3e7  # the target is beyond every size that was run
    W, X, y = _table(sizes, noise=noise)
    rng = np.random.default_rng(1)
    results = []
    for _ in range(3):
        perm = rng.permutation(len(X))
        Wg, Yg, shapes = nested_extrapolate(X[perm, :K], X[perm, K:], y[perm, None], [target])
        idx = match_rows(W, Wg)
        assert sorted(idx.tolist()) == list(range(len(W)))  # one row per mixture, every mixture kept
        truth = _truth(W[idx], target)
        assert np.max(np.abs(Yg[:, 0] - truth) / truth) < 0.01
        assert shapes[0][0][1] == pytest.approx(BETA, abs=0.05)
        results.append(Yg[np.argsort(idx), 0])
    assert np.array_equal(results[0], results[1]) and np.array_equal(results[0], results[2])


def test_two_sizes_correct_single_size_mixtures_by_the_paired_ones():
    # with two sizes no curve has 3 points; a mixture run only at the small size is moved by the amplitude
    # its mixture predicts from the mixtures run at both sizes, not averaged with the target as if equal
    sizes = np.array([1e6, 1e7])
    W, X, y = _table(sizes)
    Wg, Yg, _ = nested_extrapolate(X[:, :K], X[:, K:], y[:, None], [1e7])
    idx = match_rows(W, Wg)
    truth = _truth(W[idx], 1e7)
    gap = _truth(W[idx], 1e6) - truth  # what treating the small size as the target would get wrong
    assert gap.min() > 0.1
    assert np.max(np.abs(Yg[:, 0] - truth)) < 0.1 * gap.min()


def test_mixing_law_on_a_sparse_size_grid_predicts_the_target_size():
    sizes, target = np.array([1e6, 3e6, 1e7]), 3e7
    W, X, y = _table(sizes, n_mix=80, noise=0.002)
    s = make_surrogate("mixing_law", fidelity_columns=[K], target_fidelity=target, random_state=0).fit(X, y)
    Wt = np.random.default_rng(5).dirichlet(np.ones(K), 40)
    truth = _truth(Wt, target)
    assert np.max(np.abs(s.predict(Wt) - truth) / truth) < 0.01
    # predictions at a run size move along the fitted size law
    assert np.abs(s.predict(np.column_stack([Wt, np.full(40, 1e6)])) - _truth(Wt, 1e6)).mean() < 0.05
