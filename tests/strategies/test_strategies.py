"""Search strategies: what they ask for, what they never ask for, and what they recommend."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from mixopt.errors import MixoptError
from mixopt.feasible import Constraints, FeasibleSet
from mixopt.runs import RunTable, match_rows
from mixopt.strategies import available_strategies, make_strategy

DOMAINS = ["a", "b", "c", "d"]
TARGETS = ["x", "y"]
W_STAR = np.array([0.5, 0.3, 0.15, 0.05])
LEVELS = [[1.0], [8.0]]  # tokens: a cheap level (1/8 of the cost) and the target level
CHEAP_SHIFT = 0.3  # a cheap run's losses are the target's plus this


def _candidates(n=120, seed=0):
    return np.random.default_rng(seed).dirichlet(np.ones(len(DOMAINS)), size=n)


def _targets(X):
    """(n, 2) per-target losses at the target level: two smooth bowls whose mean is lowest near W_STAR."""
    X = np.atleast_2d(X)
    a = 2.0 + 3.0 * ((X - W_STAR) ** 2).sum(1) + 0.2 * X[:, 0]
    b = 2.0 + 3.0 * ((X - W_STAR) ** 2).sum(1) - 0.2 * X[:, 0]
    return np.column_stack([a, b])


def _truth(X):
    """(n,) the true objective (mean of the targets) at the target level."""
    return _targets(X).mean(1)


def _table(X, idx, level=None):
    """The runs of candidates ``idx``; with ``level`` (one index per run) on the two LEVELS."""
    idx = list(idx)
    W, Y = X[idx], _targets(X[idx])
    ids = [f"run{i}" for i in range(len(idx))]
    if level is None:
        return RunTable.from_arrays(W, Y, domains=DOMAINS, target_names=TARGETS, run_ids=ids)
    level = np.asarray(level)
    Y = Y + np.where(level[:, None] == 0, CHEAP_SHIFT, 0.0)
    return RunTable(weights=W, targets=Y, domains=DOMAINS, target_names=TARGETS,
                    fidelity=np.asarray(LEVELS)[level], fidelity_names=["tokens"], levels=LEVELS, run_ids=ids)


def _runs(W, y, level):
    """Runs of mixtures ``W`` with objective ``y`` (one target) at the given LEVELS indices."""
    level = np.asarray(level)
    return RunTable(weights=np.asarray(W, float), targets=np.asarray(y, float)[:, None], domains=DOMAINS,
                    target_names=["loss"], fidelity=np.asarray(LEVELS)[level], fidelity_names=["tokens"],
                    levels=LEVELS, run_ids=[f"run{i}" for i in range(len(level))])


def _index(X, w):
    """Index of mixture ``w`` among the rows of ``X`` (-1 if it is none of them)."""
    return int(match_rows(X, np.asarray(w)[None, :])[0])


# ---------------------------------------------------------------------------------------------- registry
def test_registry_lists_every_strategy():
    assert set(available_strategies()) == {"random", "regmix", "mixing_law", "bo", "surrogate"}


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("annealing", {}, "unknown strategy 'annealing'"),
        ("random", {"temperature": 3}, "unknown parameter(s) ['temperature']"),
        ("bo", {"temperature": 3}, "bad parameters"),
        ("bo", {"recommend": "oracle"}, "recommend must be one of"),
        ("surrogate", {"surrogate": "magic"}, "unknown surrogate 'magic'"),
        ("bo", {"surrogate": "magic"}, "unknown surrogate 'magic'"),
        ("mixing_law", {"explore": 1.5}, "explore must be in [0, 1]"),
    ],
)
def test_bad_names_and_parameters_give_one_line_errors(name, params, message):
    with pytest.raises(MixoptError) as e:
        make_strategy(name, **params)
    assert message in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------- asking
@pytest.mark.parametrize("name", ["random", "regmix", "mixing_law", "bo", "surrogate"])
def test_ask_returns_distinct_unrevealed_pairs_and_is_seeded(name):
    X = _candidates()
    seen = list(range(0, 40, 2))  # 20 runs at the only level
    t = _table(X, seen)
    picks = make_strategy(name, seed=1).ask(t, X, 3)
    again = make_strategy(name, seed=1).ask(t, X, 3)
    assert picks == again
    assert len(picks) == 3 and len(set(picks)) == 3
    assert all(f == 0 and c not in seen and 0 <= c < len(X) for c, f in picks)


def test_random_picks_depend_on_the_seed():
    X = _candidates()
    t = _table(X, range(10))
    assert make_strategy("random", seed=1).ask(t, X, 5) != make_strategy("random", seed=2).ask(t, X, 5)


@pytest.mark.parametrize("name", ["regmix", "mixing_law", "bo"])
def test_model_based_asks_beat_random_picks(name):
    X = _candidates(200, seed=1)
    truth = _truth(X)
    seen = list(range(30))
    params = {"explore": 0.0} if name == "mixing_law" else {}
    picks = make_strategy(name, seed=0, **params).ask(_table(X, seen), X, 4)
    unseen = np.setdiff1d(np.arange(len(X)), seen)
    assert all(c in unseen for c, _ in picks)
    # the picked mixtures are much better than a typical unrevealed one
    assert np.mean([truth[c] for c, _ in picks]) < np.quantile(truth[unseen], 0.2)


def test_random_asks_only_at_target_and_recommends_best_revealed():
    X = _candidates(12)
    s = make_strategy("random", seed=0)
    init = s.initial(RunTable.empty(DOMAINS, TARGETS, fidelity_names=["tokens"], levels=LEVELS), X, 5)
    assert len({c for c, _ in init}) == 5 and all(f == 1 for _, f in init)
    # five candidates run at the target, five others only at the cheap level
    first = [c for c, _ in init]
    cheap_only = [c for c in range(12) if c not in first][:5]
    t = _table(X, first + cheap_only, level=[1] * 5 + [0] * 5)
    picks = s.ask(t, X, 12)
    # only the target level, and every candidate not yet run there (cheap runs do not count)
    assert all(f == 1 for _, f in picks)
    assert sorted(c for c, _ in picks) == sorted(set(range(12)) - set(first))

    p = s.recommend(t, FeasibleSet.simplex(DOMAINS))
    y = t.objective()
    best = int(np.argmin(np.where(t.at_level(-1), y, np.inf)))
    assert p.rule == "revealed" and p.strategy == "random"
    assert p.run_id == t.run_ids[best] and p.observed == pytest.approx(y[best])
    assert np.allclose(p.vector(DOMAINS), t.weights[best])
    assert p.predicted is None  # random search has no model


def test_recommend_ignores_cheap_runs_once_target_runs_exist():
    X = _candidates()
    s = make_strategy("random", seed=0)
    fs = FeasibleSet.simplex(DOMAINS)
    cheap = _runs(X[[0]], [0.1], level=[0])
    p = s.recommend(cheap, fs)  # before any target run: the best cheap run, and it says so
    assert p.run_id == "run0" and "none at the target" in p.reason
    t = _runs(X[[0, 1, 2]], [0.1, 5.0, 4.0], level=[0, 1, 1])
    p = s.recommend(t, fs)
    assert p.run_id == "run2" and p.observed == pytest.approx(4.0)
    assert np.allclose(p.vector(DOMAINS), X[2])


def test_recommend_before_any_run_is_the_prior_projected_into_the_feasible_set():
    prior = [0.7, 0.1, 0.1, 0.1]
    fs = Constraints(max_weight=0.4).resolve(DOMAINS, prior=prior)
    p = make_strategy("bo", seed=0).recommend(RunTable.empty(DOMAINS, TARGETS), fs)
    w = p.vector(DOMAINS)
    assert p.method == "prior" and p.run_id is None
    assert fs.is_feasible(w) and w[0] == pytest.approx(0.4) and np.argmax(w) == 0


# ---------------------------------------------------------------------------------------------- recommending
def test_predicted_recommendation_can_pick_an_unrevealed_candidate():
    X = _candidates(200, seed=2)
    truth = _truth(X)
    # the runs never include the 20 best candidates
    rest = np.setdiff1d(np.arange(len(X)), np.argsort(truth)[:20])
    seen = np.random.default_rng(0).choice(rest, 40, replace=False)
    t = _table(X, seen)
    p = make_strategy("bo", seed=0).recommend(t, FeasibleSet.simplex(DOMAINS).restrict(X))
    rec = _index(X, p.vector(DOMAINS))
    assert p.rule == "predicted" and p.method == "finite" and p.predicted is not None
    assert rec >= 0 and rec not in seen  # a pool mixture nobody has run ...
    assert p.observed is None and p.run_id is None
    assert truth[rec] < truth[seen].min()  # ... that is truly better than every run


@pytest.mark.parametrize("name", ["regmix", "bo"])
def test_continuous_feasible_set_gives_a_new_mixture_better_than_the_runs(name):
    X = _candidates(200, seed=2)
    seen = list(range(40))
    t = _table(X, seen)
    fs = FeasibleSet.simplex(DOMAINS)
    p = make_strategy(name, seed=0).recommend(t, fs)
    w = p.vector(DOMAINS)
    assert p.rule == "predicted" and fs.is_feasible(w)
    assert _index(t.weights, w) == -1 and p.observed is None  # not one of the runs
    assert _truth(w)[0] < _truth(X[seen]).min()


@pytest.mark.parametrize(
    "name, n_runs, why",
    [("regmix", 2, "too few runs for a lightgbm model"), ("mixing_law", 4, "too few runs for a mixing_law model"),
     ("bo", 1, "too few runs for a gp model")],
)
def test_predicted_rule_with_too_few_runs_falls_back_to_the_best_run(name, n_runs, why):
    X = _candidates()
    t = _table(X, range(n_runs))
    s = make_strategy(name, seed=0)
    assert s.recommend_rule == "predicted" and s.predict(t, X) is None
    p = s.recommend(t, FeasibleSet.simplex(DOMAINS))
    best = int(np.argmin(t.objective()))
    assert p.rule == "revealed" and p.run_id == t.run_ids[best] and p.observed == pytest.approx(t.objective()[best])
    assert why in p.reason


def test_runs_with_equal_objectives_are_too_few_for_a_model():
    X = _candidates()
    t = RunTable.from_arrays(X[:3], [2.0, 2.0, 2.0], domains=DOMAINS, target_names=["loss"])
    p = make_strategy("bo", seed=0).recommend(t, FeasibleSet.simplex(DOMAINS))
    assert p.rule == "revealed" and "too few runs" in p.reason


def test_a_model_that_cannot_be_fitted_falls_back_and_says_why():
    X = _candidates()
    t = _table(X, range(20))
    s = make_strategy("surrogate", seed=0, surrogate="lightgbm", surrogate_params={"no_such_param": 1})
    p = s.recommend(t, FeasibleSet.simplex(DOMAINS))
    assert p.rule == "revealed" and p.run_id == t.run_ids[int(np.argmin(t.objective()))]
    assert "could not be fitted" in p.reason and "no_such_param" in p.reason


@pytest.mark.parametrize("name", ["random", "regmix", "bo"])
def test_recommend_respects_the_max_weight_of_the_feasible_set(name):
    X = _candidates(200, seed=2)
    t = _table(X, range(40))
    fs = Constraints(max_weight=0.35).resolve(DOMAINS)  # the optimum's 0.5 on "a" is out of reach
    p = make_strategy(name, seed=0).recommend(t, fs)
    w = p.vector(DOMAINS)
    assert fs.is_feasible(w) and w.max() <= 0.35 + 1e-9
    y = t.objective()
    allowed = np.flatnonzero(t.weights.max(axis=1) <= 0.35)
    if p.rule == "revealed":  # the best run within the constraints, not the best run overall
        assert y.argmin() not in allowed
        assert p.run_id == t.run_ids[allowed[np.argmin(y[allowed])]]
    else:  # at least as good as every allowed run
        assert _truth(w)[0] <= y[allowed].min() + 1e-9


def test_predict_is_none_without_a_model_and_mean_and_std_for_bo():
    X = _candidates(200, seed=1)
    seen = list(range(30))
    t = _table(X, seen)
    assert make_strategy("random", seed=0).predict(t, X) is None
    out = make_strategy("bo", seed=0).predict(t, X)
    assert out is not None
    mean, std = out
    assert mean.shape == std.shape == (len(X),) and np.isfinite(mean).all() and (std > 0).all()
    unseen = np.arange(30, len(X))
    assert spearmanr(mean[unseen], _truth(X[unseen])).statistic > 0.8
    # more uncertain far from every run than at the runs
    dist = ((X[:, None, :] - X[None, seen, :]) ** 2).sum(-1).min(axis=1)
    far = np.argsort(dist)[-10:]
    assert std[far].mean() > 1.5 * std[seen].mean()


# ---------------------------------------------------------------------------------------------- multi-fidelity bo
def test_bo_multi_fidelity_initial_design_uses_cheap_runs():
    X = _candidates()
    empty = RunTable.empty(DOMAINS, TARGETS, fidelity_names=["tokens"], levels=LEVELS)
    init = make_strategy("bo", seed=0).initial(empty, X, 8)
    cheap = [c for c, f in init if f == 0]
    target = [c for c, f in init if f == 1]
    assert len(cheap) == 6 and len(target) == 2 and set(target) <= set(cheap)
    assert len(set(cheap)) == 6
    # one level only: every run at it
    single = make_strategy("bo", seed=0).initial(RunTable.empty(DOMAINS, TARGETS), X, 8)
    assert len({c for c, _ in single}) == 8 and all(f == 0 for _, f in single)


def test_bo_multi_fidelity_ask_never_repeats_a_revealed_pair():
    X = _candidates(80)
    idx = list(range(8)) + list(range(4))  # candidates 0-7 at the cheap level, 0-3 also at the target
    level = [0] * 8 + [1] * 4
    t = _table(X, idx, level=level)
    assert t.n_levels == 2 and t.level_costs.tolist() == [0.125, 1.0]
    picks = make_strategy("bo", seed=0).ask(t, X, 3)
    assert len(picks) == 3 and len(set(picks)) == 3
    assert not set(zip(idx, level, strict=True)) & set(picks)
    assert all(f in (0, 1) for _, f in picks)


# ---------------------------------------------------------------------------------------------- known bugs
def test_a_strategy_refits_on_a_new_table_with_as_many_runs():
    # refit_every=1 (the default) means "refit every time": the same strategy object shown another table of
    # the same size must not answer with the model of the first one.
    X = _candidates(100, seed=1)
    t1 = _table(X, range(20))
    t2 = RunTable.from_arrays(X[:20], -_targets(X[:20]), domains=DOMAINS, target_names=TARGETS)  # upside down
    s = make_strategy("bo", seed=0)
    s.predict(t1, X)
    again = s.predict(t2, X)[0]
    fresh = make_strategy("bo", seed=0).predict(t2, X)[0]
    assert np.allclose(again, fresh)


def test_surrogate_search_initial_design_runs_at_its_fidelity_level():
    # a search told to run the cheap level (fidelity=0) must not buy its initial design at the target level
    X = _candidates(30)
    empty = RunTable.empty(DOMAINS, TARGETS, fidelity_names=["tokens"], levels=LEVELS)
    s = make_strategy("regmix", seed=0, fidelity=0)
    init = s.initial(empty, X, 4)
    assert len({c for c, _ in init}) == 4 and all(f == 0 for _, f in init)


def test_the_best_observed_mixture_is_judged_by_the_mean_of_its_repeats():
    a, b = np.array([0.7, 0.1, 0.1, 0.1]), np.array([0.1, 0.1, 0.1, 0.7])
    W = np.stack([a, a, b, b])
    t = RunTable.from_arrays(W, [3.0, 3.6, 3.2, 3.2], domains=DOMAINS, target_names=["loss"])
    p = make_strategy("random", seed=0).recommend(t, FeasibleSet.simplex(DOMAINS))
    # a's best run (3.0) was a lucky draw: its mean is 3.3; b's is 3.2
    assert np.allclose(p.vector(DOMAINS), b) and p.observed == pytest.approx(3.2)
    assert "mean of its 2 repeats" in p.reason
