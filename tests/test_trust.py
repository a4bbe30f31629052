"""The trust report: a proposal predicted far outside what the runs support says so and what to do."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.feasible import FeasibleSet
from mixopt.replay import Pool, replay
from mixopt.runs import RunTable
from mixopt.strategies import make_strategy
from mixopt.trust import assess, needs_run, warnings_line

DOMAINS = ["a", "b", "c", "d"]
SLOPE = np.array([-2.0, 0.5, 0.8, 1.0])


def _near_uniform_table(n=16, seed=0):
    """Runs clustered around the uniform mixture; the loss falls steeply towards domain a."""
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.full(4, 60.0), n)
    y = 6.0 + W @ SLOPE + 0.01 * rng.normal(size=n)
    return RunTable.from_arrays(W, y, domains=DOMAINS, target_names=["loss"])


def test_a_proposal_far_outside_the_observed_range_is_low_trust_and_says_what_to_do():
    t = _near_uniform_table()
    s = make_strategy("surrogate", seed=0, surrogate="linear", n_min=2)
    p = s.recommend(t, FeasibleSet.simplex(DOMAINS))
    assert p.vector(DOMAINS)[0] == pytest.approx(1.0)  # a straight line extrapolated to the corner
    y = t.objective()
    assert p.predicted < y.min() - 0.5  # far below every run: the new user's case
    r = s.trust(t, p)
    assert r["level"] == "low" and r["needs_run"]
    p.trust = r
    assert needs_run(p)
    assert any("better than every observed run" in w for w in r["warnings"])
    assert any("typical spacing" in w for w in r["warnings"])
    best = t.run_ids[int(np.argmin(y))]
    assert r["fallback"]["run_id"] == best and best in r["recommendation"]
    assert r["observed_range"] == [pytest.approx(y.min(), abs=1e-5), pytest.approx(y.max(), abs=1e-5)]


def test_a_proposal_among_well_spread_runs_is_trusted():
    rng = np.random.default_rng(1)
    W = rng.dirichlet(np.ones(4), 60)
    centre = np.array([0.4, 0.3, 0.2, 0.1])
    y = 3.0 + 4.0 * ((W - centre) ** 2).sum(1) + 0.005 * rng.normal(size=60)
    t = RunTable.from_arrays(W, y, domains=DOMAINS, target_names=["loss"])
    s = make_strategy("bo", seed=0, surrogate_params={"max_iter": 40})
    p = s.recommend(t, FeasibleSet.simplex(DOMAINS))
    r = s.trust(t, p)
    assert r["level"] in ("high", "medium") and not r["needs_run"]
    assert y.min() - p.predicted <= 2 * max(r["cv_mae"], p.std)  # a modest predicted gain
    assert r["cv_spearman"] > 0.8


def test_the_best_observed_run_needs_no_check():
    t = _near_uniform_table()
    s = make_strategy("random", seed=0)
    p = s.recommend(t, FeasibleSet.simplex(DOMAINS))
    assert p.rule == "revealed"
    p.trust = s.trust(t, p)
    assert not p.trust["needs_run"] and not needs_run(p)


def test_assess_without_runs_is_low_trust():
    t = RunTable.empty(DOMAINS, ["loss"])
    p = make_strategy("random", seed=0).recommend(t, FeasibleSet.simplex(DOMAINS))
    assert assess(p, None, t)["level"] == "low"


def test_replay_reveals_a_low_trust_recommendation_next_as_the_search_does():
    # the pool: a cloud of mixtures near uniform plus the four corners; the linear model's recommendation
    # after the first runs is a corner no run has visited
    rng = np.random.default_rng(0)
    W = np.vstack([rng.dirichlet(np.full(4, 60.0), 40), np.eye(4) * 0.97 + 0.01])
    y = 6.0 + W @ SLOPE
    pool = Pool.from_arrays(W, y, domains=DOMAINS, target_names=["loss"])
    # asks are random (explore=1): only the verification can bring the corner in at once
    kw = dict(seeds=[0], budget=8.0, n_init=5,
              strategy_params={"surrogate": {"surrogate": "linear", "n_min": 2, "explore": 1.0}})
    on = replay(pool, ["surrogate"], verify=True, **kw).curves
    off = replay(pool, ["surrogate"], verify=False, **kw).curves
    corner = int(np.argmin(pool.values[:, -1]))
    first_ask = on.iloc[5]
    assert on.iloc[4]["recommended"] == corner and first_ask["candidate"] == corner  # verified at once
    assert off.iloc[4]["recommended"] == corner and off.iloc[5]["candidate"] != corner


def test_a_model_without_uncertainty_gets_its_cross_validated_error_as_std():
    rng = np.random.default_rng(2)
    W = rng.dirichlet(np.ones(4), 40)
    y = 6.0 + W @ SLOPE + 0.05 * rng.normal(size=40)
    t = RunTable.from_arrays(W, y, domains=DOMAINS, target_names=["loss"])
    s = make_strategy("regmix", seed=0, surrogate_params={"n_estimators": 100, "learning_rate": 0.05})
    p = s.recommend(t, FeasibleSet.simplex(DOMAINS))
    assert p.std is None  # LightGBM alone has no uncertainty model
    r = s.trust(t, p)
    assert p.std == pytest.approx(r["cv_std"]) and p.context["std_source"] == "cv"
    assert 0 < r["cv_std"] <= 2 * r["cv_mae"]


def _repeated_table(noise: float, seed: int = 0, r: int = 3):
    """Well-spread mixtures, each run ``r`` times; a gentle bowl with run-to-run noise std ``noise``."""
    rng = np.random.default_rng(seed)
    W = np.repeat(rng.dirichlet(np.ones(4), 12), r, axis=0)
    y = 3.0 + 0.05 * ((W - 0.25) ** 2).sum(1) + noise * rng.normal(size=len(W))
    return RunTable.from_arrays(W, y, domains=DOMAINS, target_names=["loss"])


def test_a_predicted_gain_within_the_run_to_run_noise_is_called_a_tie():
    from mixopt.trust import noise_line

    t = _repeated_table(noise=0.05)
    s = make_strategy("surrogate", seed=0, surrogate="linear", n_min=2)
    p = s.recommend(t, FeasibleSet.simplex(DOMAINS))
    r = s.trust(t, p)
    n = r["noise"]
    assert n["n_groups"] == 12 and 0.02 < n["pooled_std"] < 0.1  # the runs' noise is 0.05
    best_mean = min(t.objective()[i:i + 3].mean() for i in range(0, len(t), 3))
    assert n["best_observed_mean"] == pytest.approx(best_mean, abs=1e-5)
    assert n["predicted_gain"] == pytest.approx(best_mean - p.predicted, abs=1e-4)
    assert abs(n["predicted_gain"]) < n["std"]
    assert any("within the run-to-run noise" in w and "repeat the proposal or treat it as a tie" in w
               for w in r["warnings"])
    assert r["level"] != "high"
    assert noise_line(r).startswith(f"noise: run-to-run std {n['std']:.4f} at the proposal")
    # the same runs, measured without noise: no tie
    quiet = _repeated_table(noise=0.0)
    r2 = s.trust(quiet, s.recommend(quiet, FeasibleSet.simplex(DOMAINS)))
    assert not any("run-to-run noise" in w for w in r2["warnings"])
    # no repeats: no noise section
    single = t.take(np.arange(0, len(t), 3))
    assert "noise" not in s.trust(single, s.recommend(single, FeasibleSet.simplex(DOMAINS)))


def _per_domain_table(n=20, seed=3):
    """Well-spread runs with one loss per domain (each falls with its own share)."""
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.ones(4), n)
    Y = 5.0 - np.log(W + 0.01) * 0.3 + 0.01 * rng.normal(size=W.shape)
    return RunTable.from_arrays(W, Y, domains=DOMAINS, target_names=DOMAINS)


def _proposal(w):
    from mixopt.proposal import Proposal

    return Proposal(weights=dict(zip(DOMAINS, w, strict=True)), rule="predicted")


def test_a_proposal_that_starves_a_scored_domain_says_which_and_how_to_lift_it():
    t = _per_domain_table()
    r = assess(_proposal([0.6, 0.38, 0.02, 0.0]), None, t, "mean")
    # four scored domains: the floor is a quarter of an even share, 0.0625; c and d are below it
    assert r["starved"] == {"domains": {"c": 0.02, "d": 0.0}, "floor": 0.0625}
    assert r["level"] == "medium" and not r["needs_run"]
    (msg,) = [m for m in r["warnings"] if "barely sees" in m]
    assert "c 0.020, d 0.000" in msg and "constraints.min_weight: {c: 0.07, d: 0.07}" in msg
    # the same mixture when the objective scores only a and b: nothing it scores is starved
    r2 = assess(_proposal([0.6, 0.38, 0.02, 0.0]), None, t, {"a": 1.0, "b": 1.0})
    assert "starved" not in r2 and not any("barely sees" in m for m in r2["warnings"])
    # scored a and c: c (0.02) is below 0.125, a quarter of an even share of two
    r3 = assess(_proposal([0.6, 0.38, 0.02, 0.0]), None, t, {"a": 1.0, "c": 1.0})
    assert r3["starved"] == {"domains": {"c": 0.02}, "floor": 0.125}
    # one scored domain: all of its share is the point, no warning
    assert "starved" not in assess(_proposal([0.0, 1.0, 0.0, 0.0]), None, t, "a")
    # every scored domain above the floor: no warning
    assert "starved" not in assess(_proposal([0.4, 0.3, 0.2, 0.1]), None, t, "mean")


def test_a_model_whose_held_out_error_exceeds_the_runs_spread_says_so():
    rng = np.random.default_rng(2)
    W = rng.dirichlet(np.ones(4), 16)
    noise = RunTable.from_arrays(W, 4.0 + 0.1 * rng.normal(size=16), domains=DOMAINS, target_names=["loss"])
    s = make_strategy("surrogate", seed=0, surrogate="linear", n_min=2)
    r = s.trust(noise, s.recommend(noise, FeasibleSet.simplex(DOMAINS)))  # a line through pure noise
    y = noise.objective()
    assert r["cv_mae"] > np.mean(np.abs(y - y.mean()))
    assert r["level"] != "high" and any("larger than predicting every run by the runs' mean" in w for w in r["warnings"])
    t = _near_uniform_table()  # a line through a line: the model knows better than the mean
    r = s.trust(t, s.recommend(t, FeasibleSet.simplex(DOMAINS)))
    assert not any("runs' mean" in w for w in r["warnings"])


def test_the_one_line_summary_never_cuts_a_warning_and_counts_what_it_leaves_out():
    warnings = ["only 7 successful runs for 6 domains", "the model ranks held-out runs poorly (CV Spearman -0.50)",
                "the model's held-out error (CV MAE 0.3149) is larger than predicting every run by the runs' mean "
                "(0.2000)"]
    line = warnings_line(warnings)
    assert line == "; ".join(warnings[:2]) + "; 1 more in the trust report"
    assert warnings_line(warnings, limit=1000) == "; ".join(warnings)
    assert warnings_line(warnings[2:], limit=10) == warnings[2]  # one long warning is shown whole
    assert warnings_line([]) == ""
