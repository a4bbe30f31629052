"""Run-to-run noise from repeated runs (mixopt/noise.py): the per-mixture variance a user's seeds show."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.noise import estimate_noise, mixture_spread, noise_at, repeat_groups
from mixopt.runs import RunTable


def _repeated(seed: int = 0, r: int = 4, n: int = 12):
    """Mixtures over 3 domains, each run ``r`` times; the noise std grows with the weight on domain 0."""
    rng = np.random.default_rng(seed)
    W0 = rng.dirichlet(np.ones(3), n)
    W = np.repeat(W0, r, axis=0)
    sd = 0.005 + 0.2 * W[:, 0]
    y = 3.0 - 0.4 * W[:, 1] + sd * rng.standard_normal(len(W))
    return W0, W, y


def test_repeat_groups_tell_which_rows_repeat_one_another():
    X = np.array([[0.5, 0.5], [0.2, 0.8], [0.5, 0.5], [0.2 + 1e-12, 0.8 - 1e-12], [0.1, 0.9]])
    g = repeat_groups(X)
    assert g.tolist() == [0, 1, 0, 1, 4]


def test_noise_follows_the_mixture_where_it_grows_with_one_domain():
    W0, W, y = _repeated()
    est = estimate_noise(W, y)
    assert est.n_groups == 12 and est.var.shape == (len(W), 1)
    true_sd = 0.005 + 0.2 * W0[:, 0]
    est_sd = np.sqrt(est.at(W0)[:, 0])
    # the estimate ranks the mixtures by their noise, and the noisy corner is far noisier than the quiet one
    rank = np.corrcoef(np.argsort(np.argsort(true_sd)), np.argsort(np.argsort(est_sd)))[0, 1]
    assert rank > 0.7
    assert est_sd[np.argmax(true_sd)] > 3 * est_sd[np.argmin(true_sd)]
    # far from every repeated mixture the estimate leans on the pooled noise: between the extremes
    far = np.sqrt(est.at(np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]]))[:, 0])
    assert est_sd.min() < far[1] < far[0] < est_sd.max()
    # the pooled variance is the dof-weighted mean of the groups' sample variances
    assert est.pooled[0] == pytest.approx(np.mean(est.group_var[:, 0]))


def test_a_mixture_run_once_borrows_its_noise_from_repeated_neighbours():
    W0, W, y = _repeated(r=3)
    once = np.array([[0.85, 0.1, 0.05], [0.02, 0.49, 0.49]])  # noisy corner, quiet edge: one run each
    est = estimate_noise(np.vstack([W, once]), np.r_[y, [3.1, 2.8]])
    noisy, quiet = np.sqrt(est.var[-2:, 0])
    assert noisy > 2 * quiet
    assert est.n_groups == 12  # the single runs are no group


def test_no_repeats_means_no_noise_estimate():
    W = np.random.default_rng(1).dirichlet(np.ones(3), 10)
    assert estimate_noise(W, W[:, 0]) is None


def test_repeats_at_another_fidelity_are_another_group():
    W = np.array([[0.5, 0.5]] * 4)
    F = np.array([[1.0], [1.0], [4.0], [4.0]])
    est = estimate_noise(np.hstack([W, F]), np.array([3.0, 3.4, 2.0, 2.02]), k=2)
    assert est.n_groups == 2
    assert est.var[0, 0] > 50 * est.var[2, 0]  # the cheap level is the noisy one


def test_table_spread_and_noise_at_a_mixture():
    W0, W, y = _repeated(r=2, n=6)
    W = np.vstack([W, [[0.3, 0.3, 0.4]]])
    t = RunTable.from_arrays(W, np.r_[y, 2.9], domains=list("abc"), target_names=["loss"])
    spread = mixture_spread(t)
    assert len(spread) == 6 and all(g["n"] == 2 for g in spread)
    assert [g["mean"] for g in spread] == sorted(g["mean"] for g in spread)
    g = spread[0]
    rows = [t.run_ids.index(r) for r in g["run_ids"]]
    assert g["std"] == pytest.approx(np.std(t.objective()[rows], ddof=1))
    n = noise_at(t, W0[0])
    assert n["repeats"] == 2 and n["n_groups"] == 6 and n["std"] > 0
    assert noise_at(t, [0.3, 0.3, 0.4])["repeats"] == 1
    single = RunTable.from_arrays(W0, W0[:, 1], domains=list("abc"), target_names=["loss"])
    assert noise_at(single, W0[0]) is None and mixture_spread(single) == []
    assert mixture_spread(RunTable.empty(list("abc"), ["loss"])) == []  # no run at the target fidelity yet
