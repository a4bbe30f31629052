"""Batch BO selection over a finite candidate set: distinct, seeded, leaning to the good region; the
multi-fidelity acquisition is cost-aware."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.acquisition import select_batch
from mixopt.errors import MixoptError
from mixopt.surrogates import make_surrogate

T = np.array([0.5, -2.0, 0.8, 1.0, 0.2])  # loss falls with more code (column 1)
FIDS = [1e6, 4e6, 1.6e7]  # tokens per level, cheapest first; the last is the target


def law(W) -> np.ndarray:
    return 2.0 + np.exp(W @ T)


@pytest.fixture(scope="module")
def single():
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(5), 25)
    gp = make_surrogate("gp", random_state=0, max_iter=30).fit(X, law(X))
    return gp, rng.dirichlet(np.ones(5), 300)


@pytest.fixture(scope="module")
def multi():
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(5), 30)
    fo = rng.choice(FIDS, 30)
    y = law(X) + 300.0 / np.sqrt(fo)  # a cheaper run sees a higher loss, the same ranking of mixtures
    gp = make_surrogate("gp", random_state=0, max_iter=30, fidelity_columns=[5], target_fidelity=FIDS[-1])
    gp.fit(np.column_stack([X, fo]), y)
    return gp, rng.dirichlet(np.ones(5), 200)


def test_single_fidelity_picks_distinct_candidates_in_the_good_region(single):
    gp, cands = single
    picks = select_batch(gp, cands, q=4, seed=0)
    assert len(picks) == 4 and len({i for i, _ in picks}) == 4
    assert all(0 <= i < 300 and f == 0 for i, f in picks)
    # the picks lean towards the region the data says is good (more code than a random candidate)
    assert np.mean([cands[i, 1] for i, _ in picks]) > cands[:, 1].mean()
    assert np.mean(law(cands[[i for i, _ in picks]])) < np.mean(law(cands))
    assert picks == select_batch(gp, cands, q=4, seed=0)


def test_q_larger_than_the_candidates_gives_each_candidate_once(single):
    gp, cands = single
    picks = select_batch(gp, cands[:3], q=10, seed=0)
    assert sorted(i for i, _ in picks) == [0, 1, 2]


def test_multi_fidelity_is_cost_aware(multi):
    gp, cands = multi
    levels = np.array(FIDS)[:, None]
    picks = select_batch(gp, cands, q=3, level_fidelity=levels, level_costs=[1, 4, 16], seed=0)
    assert len(picks) == 3 and len({i for i, _ in picks}) == 3
    assert all(0 <= i < 200 and 0 <= f < 3 for i, f in picks)
    # when the higher fidelities cost orders of magnitude more, the cheapest one is chosen
    cheap = select_batch(gp, cands, q=2, level_fidelity=levels, level_costs=[1, 1e3, 1e6], seed=0)
    assert [f for _, f in cheap] == [0, 0]


def test_one_level_on_a_fidelity_gp_picks_at_the_target(multi):
    gp, cands = multi
    picks = select_batch(gp, cands, q=2, seed=0)
    assert len(picks) == 2 and all(f == 0 for _, f in picks)


def test_bad_inputs_are_one_line_errors(single, multi):
    gp, cands = single
    mgp, mcands = multi
    rng = np.random.default_rng(1)
    X = rng.dirichlet(np.ones(5), 10)
    two_outputs = make_surrogate("gp", random_state=0, max_iter=5).fit(X, np.column_stack([law(X), law(X)]))
    levels = np.array(FIDS)[:, None]
    cases = [
        (lambda: select_batch(make_surrogate("gp"), cands, q=2), "fitted single-output GP"),
        (lambda: select_batch(two_outputs, cands, q=2), "fitted single-output GP"),
        (lambda: select_batch(gp, cands[:, :4] / cands[:, :4].sum(1, keepdims=True), q=2),
         "candidates have 4 domains, the GP 5"),
        (lambda: select_batch(gp, cands, q=0), "q must be >= 1"),
        (lambda: select_batch(gp, -cands, q=2), "negative weight"),
        (lambda: select_batch(mgp, mcands, q=2, level_fidelity=np.column_stack([levels, levels])),
         "level_fidelity has 2 columns"),
        (lambda: select_batch(mgp, mcands, q=2, level_fidelity=levels, level_costs=[1, 2]),
         "one positive value per level"),
        (lambda: select_batch(mgp, mcands, q=2, level_fidelity=levels, level_costs=[1, 0, 4]),
         "one positive value per level"),
    ]
    for call, msg in cases:
        with pytest.raises(MixoptError, match=msg) as e:
            call()
        assert "\n" not in str(e.value)
