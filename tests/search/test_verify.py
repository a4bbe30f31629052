"""A search with budget left runs a low-trust proposal that was never run (search.verify_proposals)."""

from __future__ import annotations

from mixopt.search.loop import _Search


def test_a_low_trust_proposal_is_run_next_once(tiny_job, fake_runs):
    cfg = tiny_job("verify", search={"strategy": "surrogate", "surrogate": "linear"}, budget={"runs": 30})
    s = _Search(cfg, progress=False, train_fn=None)
    for e in fake_runs(s.domains):  # clustered near uniform, losses falling towards the first domain
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


def test_verification_can_be_switched_off(tiny_job, fake_runs):
    cfg = tiny_job("noverify", search={"strategy": "surrogate", "surrogate": "linear", "verify_proposals": False})
    s = _Search(cfg, progress=False, train_fn=None)
    for e in fake_runs(s.domains):  # clustered near uniform, losses falling towards the first domain
        s.state.append_run(e)
    assert s.verification() is None
    assert all(x.source == "ask" for x in s.ask(2))
