"""auto: chooses or stacks by cross-validation on the training runs, extrapolates in fidelity honestly,
and reports a calibrated uncertainty."""

from __future__ import annotations

import numpy as np
import pytest
from synth_data import mixing_law_data

from mixopt.surrogates import make_surrogate
from mixopt.surrogates.auto import _convex_weights, calibrate

FAST_GBM = {"lightgbm": {"n_estimators": 200, "learning_rate": 0.05}}


def test_auto_picks_the_mixing_law_on_mixing_law_data():
    X, Y, _ = mixing_law_data(n=80, k=5, m=2, noise=0.003, seed=11)
    s = make_surrogate("auto", candidates=["linear", "lightgbm", "mixing_law"], n_folds=4, random_state=0,
                       candidate_params=FAST_GBM).fit(X, Y)
    assert s.chosen_ == "mixing_law" and s.weights_ == {"mixing_law": 1.0}
    table = {r["surrogate"]: r for r in s.cv_table_}
    assert set(table) == {"linear", "lightgbm", "mixing_law", "stack"}
    assert table["mixing_law"]["spearman"] > table["linear"]["spearman"]
    assert table["mixing_law"]["chosen"] and not table["linear"]["chosen"] and not table["stack"]["chosen"]
    assert s.predict(X[:3]).shape == (3, 2)


def test_auto_picks_linear_on_linear_data_and_skips_failing_candidates():
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(4), 60)
    y = 3.0 + X @ np.array([0.4, -0.3, 0.1, -0.2]) + 0.002 * rng.normal(size=60)
    s = make_surrogate("auto", candidates=["linear", "lightgbm", "bimix"], n_folds=4, random_state=0,
                       candidate_params=FAST_GBM).fit(X, y)
    assert s.chosen_ == "linear"
    bimix = next(r for r in s.cv_table_ if r["surrogate"] == "bimix")
    assert "target_domains" in bimix["skipped"]  # 1 target, 4 domains: cannot map, reported not hidden


def test_auto_skips_the_gp_on_large_tables():
    X, Y, _ = mixing_law_data(n=50, k=3, m=1, seed=2)
    s = make_surrogate("auto", candidates=["linear", "gp"], gp_max_n=40, n_folds=3, random_state=0).fit(X, Y)
    gp = next(r for r in s.cv_table_ if r["surrogate"] == "gp")
    assert "gp_max_n" in gp["skipped"] and s.chosen_ == "linear"


def test_convex_stacking_weights_recover_a_known_blend():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(200, 3))
    y = P @ np.array([0.3, 0.7, 0.0])
    a = _convex_weights(P, y)
    assert a == pytest.approx([0.3, 0.7, 0.0], abs=1e-3) and a.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [3, 4])
def test_a_stack_is_kept_when_it_beats_the_best_single_model(seed):
    # a log-shaped effect plus a linear trend: neither the exponential mixing law nor the trees get it
    # right alone; their errors differ, and the cross-validated blend beats both
    rng = np.random.default_rng(seed)
    X = rng.dirichlet(np.ones(4), 100)
    y = 3 + 0.4 * np.log(X[:, 0] + 0.05) - X[:, 1] + 0.6 * X[:, 2] + 0.01 * rng.normal(size=100)
    s = make_surrogate("auto", candidates=["mixing_law", "lightgbm"], n_folds=5, random_state=0,
                       candidate_params=FAST_GBM).fit(X, y)
    rows = {r["surrogate"]: r for r in s.cv_table_}
    assert rows["stack"]["spearman"] > max(rows["mixing_law"]["spearman"], rows["lightgbm"]["spearman"])
    assert s.chosen_ == "stack" and set(s.weights_) == {"mixing_law", "lightgbm"} and rows["stack"]["chosen"]
    assert sum(s.weights_.values()) == pytest.approx(1.0)
    # the stack's prediction is the weighted blend of its members
    members = {spec: est.predict(X[:5]) for spec, (est, _) in s.members_.items()}
    blend = sum(s.weights_[spec] * members[spec] for spec in members)
    np.testing.assert_allclose(s.predict(X[:5]), blend)


def test_fidelity_columns_make_the_cv_extrapolate_and_pick_a_model_that_can():
    # losses follow a mixing law at every size plus a size law; the highest size is held out: LightGBM
    # cannot extrapolate its size feature, the nested mixing law can
    rng = np.random.default_rng(1)
    W = rng.dirichlet(np.ones(4), 40)
    t = np.array([-1.0, 0.5, 0.8, 0.0])
    rows, ys = [], []
    for size in (1e6, 3e6, 1e7):
        for w in W:
            rows.append(np.r_[w, size])
            ys.append(2.0 + np.exp(w @ t) + 30.0 * size**-0.35 + 0.003 * rng.normal())
    X, y = np.array(rows), np.array(ys)
    s = make_surrogate("auto", candidates=["lightgbm", "mixing_law"], fidelity_columns=[4], random_state=0,
                       candidate_params=FAST_GBM).fit(X, y)
    assert s.cv_kind_.startswith("extrapolation")
    table = {r["surrogate"]: r for r in s.cv_table_}
    assert s.weights_.get("mixing_law", 0) > 0.5
    assert table["mixing_law"]["mae"] < 0.5 * table["lightgbm"]["mae"]
    Wt = rng.dirichlet(np.ones(4), 20)
    truth = 2.0 + np.exp(Wt @ t) + 30.0 * 1e7**-0.35
    assert np.abs(s.predict(np.column_stack([Wt, np.full(20, 1e7)])) - truth).mean() < 0.05


def test_uncertainty_is_calibrated_on_held_out_mixtures():
    X, Y, (c, k, t) = mixing_law_data(n=200, k=4, m=1, noise=0.05, seed=5)
    s = make_surrogate("auto", candidates=["linear", "lightgbm"], n_folds=5, random_state=0,
                       candidate_params=FAST_GBM).fit(X, Y[:, 0])
    chosen = next(r for r in s.cv_table_ if r["chosen"])
    assert 0.55 <= chosen["coverage68"] <= 0.80 and 0.85 <= chosen["coverage95"] <= 1.0
    Xt, _, _ = mixing_law_data(n=400, k=4, m=1, seed=6)
    rng = np.random.default_rng(7)
    yt = (c + k * np.exp(Xt @ t.T))[:, 0] + 0.05 * rng.normal(size=400)
    mean, std = s.predict(Xt, return_std=True)
    assert (std > 0).all()
    inside = np.mean(np.abs(yt - mean) <= std)
    assert 0.55 <= inside <= 0.85


def test_calibrate_scales_a_model_std_or_falls_back_to_a_constant():
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.5, 2.0, 2000)
    resid = 3.0 * sigma * rng.normal(size=2000)  # the model's std is 3x too small
    s, tau = calibrate(resid, sigma)
    assert s == pytest.approx(3.0, rel=0.1) and tau == 0.0
    s, tau = calibrate(resid, np.zeros(2000))  # no std: the 68% quantile of the errors
    assert s == 0.0 and np.mean(np.abs(resid) <= tau) == pytest.approx(0.6827, abs=0.01)


def test_objective_mode_members_keep_the_objective_exact_and_say_so():
    X, Y, _ = mixing_law_data(n=60, k=4, m=3, noise=0.003, seed=4)
    w = np.array([0.5, 0.25, 0.25])
    s = make_surrogate("auto", candidates=["lightgbm:objective"], n_folds=3, objective_weights=w,
                       random_state=0, candidate_params=FAST_GBM).fit(X, Y)
    assert s.chosen_ == "lightgbm:objective" and not s.per_target_valid_
    mean, _ = s.predict_objective(X[:4])
    np.testing.assert_allclose(s.predict(X[:4]) @ w, mean)
