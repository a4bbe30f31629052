"""Where the scored floor applies (constraints.scored_floor_scope): every proxy and the proposal, or the
proposal only."""

from __future__ import annotations

import numpy as np

from mixopt.search.loop import _Search


def _search(tiny_job, name, scope):
    cfg = tiny_job(name, search={"strategy": "surrogate", "surrogate": "linear"}, budget={"runs": 40})
    cfg.constraints = cfg.constraints.model_copy(update={"scored_floor_scope": scope})
    return cfg, _Search(cfg, progress=False, train_fn=None)


def test_a_proposal_scoped_floor_binds_the_proposal_and_leaves_the_proxies_free(tiny_job, fake_runs):
    cfg, s = _search(tiny_job, "floor-proposal", "proposal")
    floors = cfg.scored_floors()
    assert len(floors) == len(s.domains) >= 2  # `mean` scores every domain
    lo = np.array([floors[d] for d in s.domains])
    # the proxies: the initial design and each round's candidates may go below the floor
    cands = s.candidates(0)
    assert (cands < lo - 1e-6).any()
    np.testing.assert_array_equal(s.space.design_set.lo, np.zeros(len(s.domains)))
    # the proposal keeps every floor; the domain the runs say to drop sits on its floor and is named so
    for e in fake_runs(s.domains, n=24, concentration=1.0, slope=(-0.5, 3.0)):  # losses rise with the last
        s.state.append_run(e)
    p = s.strategy.recommend(s.table(), s.space.feasible)
    w = p.vector(s.domains)
    assert (w >= lo - 1e-9).all()
    last = s.domains[-1]
    assert abs(p.weights[last] - floors[last]) < 1e-6
    assert f"floor[{last}]" in p.active_constraints


def test_a_search_scoped_floor_binds_every_candidate(tiny_job):
    cfg, s = _search(tiny_job, "floor-search", "search")
    lo = np.array([cfg.scored_floors()[d] for d in s.domains])
    cands = s.candidates(0)
    assert (cands >= lo - 1e-9).all()
    np.testing.assert_array_equal(s.space.design_set.lo, s.space.feasible.lo)
