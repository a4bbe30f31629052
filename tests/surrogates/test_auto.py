"""auto: chooses the true family by cross-validation on the training runs, reports its CV table."""

from __future__ import annotations

import numpy as np
from synth_data import mixing_law_data

from mixopt.surrogates import make_surrogate


def test_auto_picks_the_mixing_law_on_mixing_law_data():
    X, Y, _ = mixing_law_data(n=80, k=5, m=2, noise=0.003, seed=11)
    s = make_surrogate("auto", candidates=["linear", "lightgbm", "mixing_law"], n_folds=4, random_state=0,
                       candidate_params={"lightgbm": {"n_estimators": 200, "learning_rate": 0.05}}).fit(X, Y)
    assert s.chosen_ == "mixing_law"
    table = {r["surrogate"]: r for r in s.cv_table_}
    assert set(table) == {"linear", "lightgbm", "mixing_law"}
    assert table["mixing_law"]["spearman"] > table["linear"]["spearman"]
    assert table["mixing_law"]["chosen"] and not table["linear"]["chosen"]
    assert s.predict(X[:3]).shape == (3, 2)


def test_auto_picks_linear_on_linear_data_and_skips_failing_candidates():
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(4), 60)
    y = 3.0 + X @ np.array([0.4, -0.3, 0.1, -0.2]) + 0.002 * rng.normal(size=60)
    s = make_surrogate("auto", candidates=["linear", "lightgbm", "bimix"], n_folds=4, random_state=0,
                       candidate_params={"lightgbm": {"n_estimators": 200, "learning_rate": 0.05}}).fit(X, y)
    assert s.chosen_ == "linear"
    bimix = next(r for r in s.cv_table_ if r["surrogate"] == "bimix")
    assert "target_domains" in bimix["skipped"]  # 1 target, 4 domains: cannot map, reported not hidden


def test_auto_skips_the_gp_on_large_tables():
    X, Y, _ = mixing_law_data(n=50, k=3, m=1, seed=2)
    s = make_surrogate("auto", candidates=["linear", "gp"], gp_max_n=40, n_folds=3, random_state=0).fit(X, Y)
    gp = next(r for r in s.cv_table_ if r["surrogate"] == "gp")
    assert "gp_max_n" in gp["skipped"] and s.chosen_ == "linear"
