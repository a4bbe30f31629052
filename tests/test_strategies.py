"""Search strategies: what they ask for, what they never ask for, and what they recommend."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.errors import MixoptError
from mixopt.strategies import History, available_strategies, make_strategy

K = 4
W_STAR = np.array([0.5, 0.3, 0.15, 0.05])


def _candidates(n=120, seed=0):
    return np.random.default_rng(seed).dirichlet(np.ones(K), size=n)


def _targets(X):
    """(n, 2) per-target losses: two smooth bowls whose mean is lowest near W_STAR."""
    a = 2.0 + 3.0 * ((X - W_STAR) ** 2).sum(1) + 0.2 * X[:, 0]
    b = 2.0 + 3.0 * ((X - W_STAR) ** 2).sum(1) - 0.2 * X[:, 0]
    return np.column_stack([a, b])


def _history(X, idx, fids=None, costs=None):
    Y = _targets(X[idx])
    fids = np.zeros(len(idx), int) if fids is None else np.asarray(fids)
    costs = np.ones(len(idx)) if costs is None else np.asarray(costs)
    return History(X[idx], fids, Y.mean(1), costs, Y, np.array([0.5, 0.5]))


def test_registry_and_errors():
    assert set(available_strategies()) == {"random", "regmix", "mixing_law", "bo"}
    with pytest.raises(MixoptError, match="unknown strategy"):
        make_strategy("annealing")
    with pytest.raises(MixoptError, match="bad parameters"):
        make_strategy("random", temperature=3)
    with pytest.raises(MixoptError, match="recommend"):
        make_strategy("bo", recommend="oracle")


def test_history_checks_lengths_and_finiteness():
    with pytest.raises(MixoptError, match="rows"):
        History(np.ones((3, 2)) / 2, [0, 0], [1.0, 2.0, 3.0], [1, 1, 1])
    with pytest.raises(MixoptError, match="finite"):
        History(np.ones((2, 2)) / 2, [0, 0], [1.0, np.nan], [1, 1])


@pytest.mark.parametrize("name", ["random", "regmix", "mixing_law", "bo"])
def test_ask_returns_distinct_unrevealed_pairs_and_is_seeded(name):
    X = _candidates()
    seen = list(range(0, 40, 2))  # 20 revealed at the only fidelity
    h = _history(X, seen)
    picks = make_strategy(name, seed=1).ask(h, X, [1.0], 3)
    again = make_strategy(name, seed=1).ask(h, X, [1.0], 3)
    assert picks == again
    assert len(picks) == 3 and len(set(picks)) == 3
    assert all(f == 0 and c not in seen and 0 <= c < len(X) for c, f in picks)


@pytest.mark.parametrize("name", ["regmix", "mixing_law", "bo"])
def test_model_based_asks_beat_random_picks(name):
    X = _candidates(200, seed=1)
    truth = _targets(X).mean(1)
    seen = list(range(30))
    h = _history(X, seen)
    picks = make_strategy(name, seed=0, **({"explore": 0.0} if name == "mixing_law" else {})).ask(h, X, [1.0], 4)
    unseen = np.setdiff1d(np.arange(len(X)), seen)
    # the picked mixtures are much better than a typical unrevealed one
    assert np.mean([truth[c] for c, _ in picks]) < np.quantile(truth[unseen], 0.2)


def test_random_asks_only_at_target_and_recommends_best_revealed():
    X = _candidates()
    s = make_strategy("random", seed=0)
    init = s.initial(X, 5, [0.1, 1.0])
    assert all(f == 1 for _, f in init)
    h = _history(X, [c for c, _ in init], fids=[1] * 5)
    assert s.recommend(h, X) == init[int(np.argmin(h.y))][0]


def test_recommend_ignores_cheap_runs_once_target_runs_exist():
    X = _candidates()
    h = History(X[[0, 1, 2]], [0, 1, 1], [0.1, 5.0, 4.0], [0.1, 1, 1])
    assert make_strategy("random", seed=0).recommend(h, X, [0.1, 1.0]) == 2


def test_predicted_recommendation_can_pick_an_unrevealed_candidate():
    X = _candidates(200, seed=2)
    truth = _targets(X).mean(1)
    seen = list(range(40))
    h = _history(X, seen)
    s = make_strategy("regmix", seed=0, recommend="predicted")
    rec = s.recommend(h, X, [1.0])
    assert truth[rec] <= np.quantile(truth, 0.1)


def test_bo_multi_fidelity_initial_design_uses_cheap_runs():
    X = _candidates()
    init = make_strategy("bo", seed=0).initial(X, 8, [0.125, 1.0])
    cheap = [c for c, f in init if f == 0]
    target = [c for c, f in init if f == 1]
    assert len(cheap) == 6 and len(target) == 2 and set(target) <= set(cheap)


def test_bo_multi_fidelity_ask_never_repeats_a_revealed_pair():
    X = _candidates(80)
    idx = list(range(12))
    fids = [0] * 8 + [1] * 4
    Y = _targets(X[idx]) + np.where(np.array(fids)[:, None] == 0, 0.3, 0.0)
    h = History(X[idx], fids, Y.mean(1), np.where(np.array(fids) == 0, 0.125, 1.0), Y)
    picks = make_strategy("bo", seed=0).ask(h, X, [0.125, 1.0], 3)
    revealed = set(zip(idx, fids, strict=True))
    assert len(picks) == 3 and len(set(picks)) == 3
    assert not revealed & set(picks)
    assert all(f in (0, 1) for _, f in picks)
