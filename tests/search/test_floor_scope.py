"""Where the scored floor applies (constraints.scored_floor_scope): every proxy and the proposal, or the
proposal only."""

from __future__ import annotations

import numpy as np

from mixopt.search.loop import _Search
from mixopt.search.state import RunEntry


def _runs(domains, n=24, seed=0):
    """Runs spread over the simplex whose losses rise steeply with the last domain's share."""
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.full(len(domains), 1.0), n)
    slope = np.linspace(-0.5, 3.0, len(domains))
    out = []
    for i, w in enumerate(W):
        loss = 5.0 + slope * w * len(domains) + 0.005 * rng.normal(size=len(domains))
        out.append(RunEntry(run_id=f"r{i:04d}", weights=dict(zip(domains, w.tolist(), strict=True)), fidelity=0,
                            preset="dense-tiny", tokens=16384, seed=i, source="init", status="ok", objective=None,
                            final_loss=dict(zip(domains, loss.tolist(), strict=True)), flops=1e9, wall_time=1.0))
    return out


def _search(tiny_job, name, scope):
    cfg = tiny_job(name, search={"strategy": "surrogate", "surrogate": "linear"}, budget={"runs": 40})
    cfg.constraints = cfg.constraints.model_copy(update={"scored_floor_scope": scope})
    return cfg, _Search(cfg, progress=False, train_fn=None)


def test_a_proposal_scoped_floor_binds_the_proposal_and_leaves_the_proxies_free(tiny_job):
    cfg, s = _search(tiny_job, "floor-proposal", "proposal")
    floors = cfg.scored_floors()
    assert len(floors) == len(s.domains) >= 2  # `mean` scores every domain
    lo = np.array([floors[d] for d in s.domains])
    # the proxies: the initial design and each round's candidates may go below the floor
    cands = s.candidates(0)
    assert (cands < lo - 1e-6).any()
    np.testing.assert_array_equal(s.space.design_set.lo, np.zeros(len(s.domains)))
    # the proposal keeps every floor; the domain the runs say to drop sits on its floor and is named so
    for e in _runs(s.domains):
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
