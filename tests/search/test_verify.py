"""A search with budget left runs a low-trust proposal that was never run (search.verify_proposals)."""

from __future__ import annotations

import numpy as np

from mixopt.search.loop import _Search
from mixopt.search.state import RunEntry


def _clustered_entries(domains, n=14, seed=0):
    """Runs near the uniform mixture whose losses fall steeply towards the first domain."""
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.full(len(domains), 80.0), n)
    slope = np.linspace(-2.0, 1.0, len(domains))
    out = []
    for i, w in enumerate(W):
        loss = 5.0 + slope * w * len(domains) + 0.005 * rng.normal(size=len(domains))
        out.append(RunEntry(run_id=f"r{i:04d}", weights=dict(zip(domains, w.tolist(), strict=True)), fidelity=0,
                            preset="dense-tiny", tokens=16384, seed=i, source="init", status="ok", objective=None,
                            final_loss=dict(zip(domains, loss.tolist(), strict=True)), flops=1e9, wall_time=1.0))
    return out


def test_a_low_trust_proposal_is_run_next_once(tiny_job):
    cfg = tiny_job("verify", search={"strategy": "surrogate", "surrogate": "linear"}, budget={"runs": 30})
    s = _Search(cfg, progress=False, train_fn=None)
    for e in _clustered_entries(s.domains):
        s.state.append_run(e)
    launch = s.verification()
    assert launch is not None and launch.source == "verify" and launch.fidelity == len(s.fidelities) - 1
    proposal = s.strategy.recommend(s.table(), s.space.feasible)
    assert launch.weights == proposal.weights  # exactly the mixture the search would propose
    assert max(launch.weights.values()) > 0.5  # a corner no run has been near
    assert s.verification() is None  # each distinct proposal is run at most once
    # an ask round starts with it: a fresh session asks the verification first, then the strategy
    s2 = _Search(cfg, progress=False, train_fn=None)
    s2.state.meta["verified"] = []
    assert [x.source for x in s2.ask(2)] == ["verify"]


def test_verification_can_be_switched_off(tiny_job):
    cfg = tiny_job("noverify", search={"strategy": "surrogate", "surrogate": "linear", "verify_proposals": False})
    s = _Search(cfg, progress=False, train_fn=None)
    for e in _clustered_entries(s.domains):
        s.state.append_run(e)
    assert s.verification() is None
    assert all(x.source == "ask" for x in s.ask(2))
